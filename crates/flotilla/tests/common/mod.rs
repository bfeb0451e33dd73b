//! Starts the real `flotilla server` on an ephemeral port with a temp data dir and
//! drives it with the real kubectl.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    child: Child,
    /// The temp dir holding `data`, when this cluster made it.
    _tmp: Option<tempfile::TempDir>,
    pub data: PathBuf,
    pub kubeconfig: PathBuf,
}

/// The kubectl binary of a given minor version, from the directory the default one
/// lives in (`kubectl.1.27`, …), or the default for `None`.
pub fn kubectl_bin(minor: Option<u32>) -> PathBuf {
    let default = which("kubectl").unwrap_or_else(|| {
        panic!("kubectl not found on PATH: the end-to-end tests drive the real kubectl")
    });
    let Some(minor) = minor else { return default };
    let real = std::fs::canonicalize(&default).unwrap_or(default);
    let path = real.with_file_name(format!("kubectl.1.{minor}"));
    assert!(
        path.exists(),
        "{} not found: the machine is expected to carry kubectl 1.{minor} beside kubectl",
        path.display()
    );
    path
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

impl Cluster {
    pub fn start(extra: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut c = Cluster::start_in(tmp.path().join("data"), extra);
        c._tmp = Some(tmp);
        c
    }

    /// Starts a server on a data dir the caller owns (to restart on it).
    pub fn start_in(data: PathBuf, extra: &[&str]) -> Cluster {
        let mut c = Cluster::spawn_in(data, extra);
        c.wait_ready(Duration::from_secs(60));
        c
    }

    /// Starts a server and returns once it serves HTTPS, ready or not.
    pub fn spawn_in(data: PathBuf, extra: &[&str]) -> Cluster {
        std::fs::create_dir_all(&data).expect("data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .arg("server")
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--https-listen-port",
                "0",
                "--disable-agent",
                "--node-name",
                "test-node",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start flotilla server");
        let kubeconfig = data.join("kubeconfig.yaml");
        // A kubeconfig left by an earlier run names an old port.
        let _ = std::fs::remove_file(&kubeconfig);
        let cluster = Cluster {
            child,
            _tmp: None,
            data,
            kubeconfig,
        };
        let start = Instant::now();
        while !cluster.kubeconfig.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no kubeconfig after 60 s:\n{}",
                cluster.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `/readyz` as the server answers it now.
    pub fn readyz(&self) -> (bool, String) {
        let out = self.kubectl(&["get", "--raw", "/readyz"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }

    pub fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "flotilla server exited with {status} before becoming ready:\n{}",
                    self.log()
                );
            }
            if self.kubeconfig.exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                    return;
                }
            }
            assert!(
                start.elapsed() < limit,
                "flotilla server not ready after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_v(None, args, None)
    }

    /// Runs kubectl of a given minor version, with optional standard input.
    pub fn kubectl_v(&self, minor: Option<u32>, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(kubectl_bin(minor));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns its standard output, failing the test with both
    /// streams and the server log when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(None, args, None)
    }

    pub fn ok_in(&self, minor: Option<u32>, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_v(minor, args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns standard error.
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_v(None, args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed but printed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Only the child this harness started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
