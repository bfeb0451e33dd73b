//! The server under test: this same binary run as `flotilla server` (API server
//! only) on a temporary data dir, killed when the guard drops (also when the
//! benchmark fails).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::ApiClient;

pub struct ServerProcess {
    child: Child,
    pid: u32,
    dir: tempfile::TempDir,
    /// The store is an etcd outside the data dir.
    external_store: bool,
}

/// Resident and peak memory of the server, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

impl ServerProcess {
    pub async fn start(datastore_endpoint: Option<&str>) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let dir = tempfile::Builder::new()
            .prefix("flotilla-bench-")
            .tempdir()
            .context("creating the data dir")?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--https-listen-port", "0", "--disable-agent"])
            // The API server alone is measured; a scheduler or pod GC would also
            // act on the benchmark's pods (bound to nodes that do not exist).
            .args(["--disable-scheduler", "--disable-controller-manager"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(url) = datastore_endpoint {
            cmd.args(["--datastore-endpoint", url]);
        }
        // Per-request logging would be measured along with the server.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let child = cmd.spawn().context("spawning `flotilla server`")?;
        let pid = child.id();
        let srv = ServerProcess {
            child,
            pid,
            dir,
            external_store: datastore_endpoint.is_some(),
        };
        srv.wait_for_kubeconfig(Duration::from_secs(30)).await?;
        Ok(srv)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    /// The kubeconfig is written once the port is bound, so its URL has the real port.
    async fn wait_for_kubeconfig(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while !self.kubeconfig().exists() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server wrote no kubeconfig within {limit:?}; log:\n{}",
                self.log_tail(20)
            );
            anyhow::ensure!(
                Path::new(&format!("/proc/{}", self.pid)).exists(),
                "the server exited; log:\n{}",
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Polls `/readyz` until it answers `ok`.
    pub async fn wait_ready(&self, api: &ApiClient, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(r) = api.get("/readyz").await
                && r.status == 200
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server was not ready within {limit:?}; log:\n{}",
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss: kib("VmRSS:") * 1024,
            peak: kib("VmHWM:") * 1024,
        }
    }

    /// User plus system CPU time the server has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// Bytes of everything under the data dir but the certificates and the log:
    /// the SQLite database and its WAL. None when the store is an external etcd.
    pub fn store_bytes(&self) -> Option<u64> {
        if self.external_store {
            return None;
        }
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        let dir = self.dir.path();
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Some(0);
        };
        let bytes = rd
            .flatten()
            .filter(|e| !matches!(e.file_name().to_str(), Some("tls" | "server.log")))
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                }
            })
            .sum();
        Some(bytes)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only the child this guard started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime from a `/proc/.../stat` file. Linux reports them in clock ticks,
/// which are 1/100 s on every architecture Flotilla targets.
pub fn proc_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name may hold spaces; fields are counted after its ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; the first field after the name is 3.
    (tick(11) + tick(12)) as f64 / 100.0
}
