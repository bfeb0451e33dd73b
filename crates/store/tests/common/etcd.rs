//! Starts real etcd members for tests and benchmarks: the `etcd` binary from
//! PATH, free loopback ports, a temporary data directory. Each member is a
//! child process killed (by its own PID) when the cluster is dropped.

#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::time::Instant;

/// Finds `etcd` on PATH or fails the test with how to install it.
pub fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("etcd");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("etcd not found on PATH: install Debian etcd-server (scripts/setup.sh does)");
}

/// A free loopback port: bind to port 0 and let the kernel choose. The kernel may
/// hand the same port out again once the probe closes, so ports already given to
/// this process are skipped (a client and a peer port must differ).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILLs this member (only the process this helper started).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if text.contains("no space left on device") {
            // A machine fault, not a store fault: say so before the log.
            format!(
                "this machine's disk is full (etcd wrote \"no space left on device\" under {}); \
                 free disk space and run again. etcd's log:\n{tail}",
                self.log
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        } else {
            tail
        }
    }
}

pub struct EtcdCluster {
    pub members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts an `n`-member cluster and waits until it serves linearizable reads.
    pub async fn start(n: usize) -> EtcdCluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        Self::start_on(&ports).await
    }

    /// Starts members on the given (client, peer) ports.
    pub async fn start_on(ports: &[(u16, u16)]) -> EtcdCluster {
        let binary = etcd_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let token = format!("flotilla-{}-{}", std::process::id(), ports[0].0);
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        for (i, &(client_port, peer_port)) in ports.iter().enumerate() {
            let name = format!("m{i}");
            let log = dir.path().join(format!("{name}.log"));
            let child = spawn(
                &binary,
                dir.path(),
                &name,
                client_port,
                peer_port,
                &initial,
                &token,
                &log,
            );
            members.push(Member {
                name,
                client_port,
                peer_port,
                child: Some(child),
                log,
            });
        }
        let mut cluster = EtcdCluster { members, dir };
        cluster.wait_ready().await;
        cluster
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in 0..self.members.len() {
            let endpoint = self.members[i].endpoint();
            loop {
                if let Some(child) = self.members[i].child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!(
                        "etcd member {} exited with {status}:\n{}",
                        self.members[i].name,
                        self.members[i].log_tail()
                    );
                }
                if answers(&endpoint).await {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "etcd member {} did not answer within 30s:\n{}",
                        self.members[i].name,
                        self.members[i].log_tail()
                    );
                }
                // Polling an external process for readiness.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The index of the current leader, asked of the running members.
    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for m in self.members.iter().filter(|m| m.is_running()) {
                let Ok(mut client) = Client::connect([m.endpoint()], None).await else {
                    continue;
                };
                let Ok(Ok(status)) =
                    tokio::time::timeout(Duration::from_secs(2), client.status()).await
                else {
                    continue;
                };
                if status.leader() != 0
                    && status.leader() == status.header().map_or(0, |h| h.member_id())
                {
                    return self
                        .members
                        .iter()
                        .position(|x| x.name == m.name)
                        .expect("member");
                }
            }
            assert!(Instant::now() < deadline, "no etcd leader within 20s");
            // Polling an external process for its state.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    binary: &Path,
    dir: &Path,
    name: &str,
    client_port: u16,
    peer_port: u16,
    initial: &str,
    token: &str,
    log: &Path,
) -> Child {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log_file = File::create(log).expect("etcd log file");
    Command::new(binary)
        .arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", dir.join(name).display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster={initial}"))
        .arg("--initial-cluster-state=new")
        .arg(format!("--initial-cluster-token={token}"))
        .arg("--logger=zap")
        .arg("--log-outputs=stderr")
        // Room for the store's largest values (1.5 MiB plus the request).
        .arg("--max-request-bytes=2097152")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start etcd")
}

/// Whether the member at `endpoint` serves a linearizable read.
async fn answers(endpoint: &str) -> bool {
    let options = ConnectOptions::new().with_connect_timeout(Duration::from_millis(500));
    let Ok(mut client) = Client::connect([endpoint], Some(options)).await else {
        return false;
    };
    let read = client.get(vec![0], Some(GetOptions::new().with_count_only()));
    matches!(
        tokio::time::timeout(Duration::from_secs(2), read).await,
        Ok(Ok(_))
    )
}

/// The number of open watch streams on a member, from its metrics
/// (`etcd_debugging_mvcc_watch_stream_total`), read with a bare HTTP/1.0 GET.
pub fn watch_streams(member: &Member) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", member.client_port)) else {
        return 0;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return 0;
    }
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watch_stream_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
