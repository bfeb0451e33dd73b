//! The server under test: this same binary run as `flotilla server` (API server
//! only) on a temporary data dir through testkit, which waits for `/readyz` and
//! kills the process when the guard drops (also when the benchmark fails).

use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct ServerProcess {
    process: testkit::ServerProcess,
    pid: u32,
    /// The data dir; declared after `process`, so removed once it is gone.
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
    /// Starts the server and returns once `/readyz` answers `ok`.
    pub async fn start(datastore_endpoint: Option<&str>) -> anyhow::Result<ServerProcess> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let dir = tempfile::Builder::new()
            .prefix("flotilla-bench-")
            .tempdir()
            .context("creating the data dir")?;
        let mut server = testkit::ServerProcess::builder()
            .bin(exe)
            .data_dir(dir.path())
            .arg("--disable-agent")
            // The API server alone is measured; a scheduler or pod GC would also
            // act on the benchmark's pods (bound to nodes that do not exist).
            .args(["--disable-scheduler", "--disable-controller-manager"]);
        if let Some(url) = datastore_endpoint {
            server = server.args(["--datastore-endpoint", url]);
        }
        // Per-request logging would be measured along with the server.
        if std::env::var_os("RUST_LOG").is_none() {
            server = server.env("RUST_LOG", "warn");
        }
        let process = tokio::task::spawn_blocking(move || server.try_start())
            .await
            .context("starting `flotilla server`")??;
        let pid = process.pid().context("the server is not running")?;
        Ok(ServerProcess {
            process,
            pid,
            dir,
            external_store: datastore_endpoint.is_some(),
        })
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.process.kubeconfig()
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
        self.process.log_tail(lines)
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
