//! Starts the real `flotilla server` (through testkit) on an ephemeral port
//! with a temp data dir and drives it with the real kubectl.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use testkit::ServerProcess;

pub struct Cluster {
    /// The server process, killed when the cluster is dropped.
    server: ServerProcess,
    pub data: PathBuf,
    pub kubeconfig: PathBuf,
}

/// This crate's `flotilla` binary as a control plane alone (no node agent),
/// with `extra` arguments.
pub fn server(extra: &[&str]) -> testkit::Builder {
    ServerProcess::builder()
        .bin(env!("CARGO_BIN_EXE_flotilla"))
        .args(["--disable-agent", "--node-name", "test-node"])
        .args(extra)
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
        Cluster::new(server(extra).start())
    }

    /// Starts a server with its node agent, on a data dir the caller owns.
    pub fn start_with_agent(data: PathBuf, extra: &[&str]) -> Cluster {
        let builder = ServerProcess::builder()
            .bin(env!("CARGO_BIN_EXE_flotilla"))
            .data_dir(data)
            .args(extra);
        Cluster::new(builder.start())
    }

    /// Starts a server on a data dir the caller owns and a fixed port, so that
    /// a restart keeps its address (agents that joined it reconnect).
    pub fn start_in_at(data: PathBuf, port: u16, extra: &[&str]) -> Cluster {
        Cluster::new(server(extra).data_dir(data).port(port).start())
    }

    /// Starts a server on a data dir the caller owns (to restart on it).
    pub fn start_in(data: PathBuf, extra: &[&str]) -> Cluster {
        Cluster::new(server(extra).data_dir(data).start())
    }

    /// Starts a server and returns once it serves HTTPS, ready or not.
    pub fn spawn_in(data: PathBuf, extra: &[&str]) -> Cluster {
        Cluster::new(server(extra).data_dir(data).spawn())
    }

    fn new(server: ServerProcess) -> Cluster {
        Cluster {
            data: server.data_dir().to_path_buf(),
            kubeconfig: server.kubeconfig(),
            server,
        }
    }

    /// `/readyz` as the server answers it now: whether it is ready, and the
    /// status and body (or why there was no answer).
    pub fn readyz(&self) -> (bool, String) {
        match self.server.readyz() {
            Ok(r) => (r.is_ready(), format!("{} {}", r.status, r.body)),
            Err(e) => (false, e.to_string()),
        }
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    pub fn wait_ready(&mut self, limit: Duration) {
        self.server.wait_ready(limit);
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
            self.server.log_tail(30)
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

    /// Kills the server and starts it again on the same data dir, waiting
    /// until it is ready (its port, and so the kubeconfig, may change).
    pub fn restart(&mut self) {
        self.server.restart();
        self.kubeconfig = self.server.kubeconfig();
    }

    /// Kills the server without consuming the handle.
    pub fn stop_in_place(&mut self) {
        self.server.stop();
    }

    /// Stops the server; a data dir the caller owns stays for a restart.
    pub fn stop(mut self) {
        self.server.stop();
    }
}
