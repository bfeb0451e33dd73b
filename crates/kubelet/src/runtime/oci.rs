//! The OCI runtime binary (`runc` or `crun`), behind a trait. Creation goes
//! through the shim (see [`super::shim`]), which holds the container's output
//! and reports its exit; everything else is a plain command.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

use super::shim::ShimArgs;
use super::{RuntimeError, RuntimeResult};

/// What `runc state` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciState {
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    pub pid: i32,
}

/// An OCI runtime.
#[async_trait::async_trait]
pub trait OciRuntime: Send + Sync + 'static {
    /// Creates the container from its bundle (not started); returns its pid.
    /// Its output goes to `log`; its exit status to `exit_file`.
    async fn create(
        &self,
        id: &str,
        bundle: &Path,
        log: &Path,
        exit_file: &Path,
    ) -> RuntimeResult<i32>;
    async fn start(&self, id: &str) -> RuntimeResult<()>;
    /// Sends a signal to the container's init. A container that is already
    /// gone is not an error.
    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()>;
    /// Forgets the container (removing its cgroup). Absent is not an error.
    async fn delete(&self, id: &str) -> RuntimeResult<()>;
    /// `None` when the runtime does not know the container.
    async fn state(&self, id: &str) -> RuntimeResult<Option<OciState>>;
    /// The command that runs `cmd` in the running container `id` with the
    /// command's own stdio (`runc exec`); `None` when this runtime cannot.
    fn exec_command(&self, _id: &str, _cmd: &[String]) -> Option<tokio::process::Command> {
        None
    }
}

/// `runc`/`crun` run as commands, with their state under the agent's root.
#[derive(Debug, Clone)]
pub struct OciCli {
    pub binary: &'static str,
    /// The runtime's `--root`, per agent so agents on one host do not see
    /// each other's containers.
    pub root: PathBuf,
    /// The executable run as the shim (the `flotilla` binary).
    pub shim: PathBuf,
}

impl OciCli {
    fn fail(&self, action: impl Into<String>, message: impl Into<String>) -> RuntimeError {
        RuntimeError::Oci {
            runtime: self.binary,
            action: action.into(),
            message: message.into(),
        }
    }

    async fn command(&self, action: &str, args: &[&str]) -> RuntimeResult<std::process::Output> {
        tokio::process::Command::new(self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| self.fail(action, format!("running {}: {e}", self.binary)))
    }
}

/// runc and crun both say "does not exist" or "not found" for unknown IDs.
fn is_missing(stderr: &str) -> bool {
    stderr.contains("does not exist") || stderr.contains("not found") || stderr.contains("No such")
}

#[async_trait::async_trait]
impl OciRuntime for OciCli {
    async fn create(
        &self,
        id: &str,
        bundle: &Path,
        log: &Path,
        exit_file: &Path,
    ) -> RuntimeResult<i32> {
        let args = ShimArgs {
            runtime: self.binary.into(),
            runtime_root: self.root.clone(),
            bundle: bundle.to_owned(),
            id: id.into(),
            log: log.to_owned(),
            exit_file: exit_file.to_owned(),
        };
        let mut child = tokio::process::Command::new(&self.shim)
            .args(args.to_args())
            // One shim per container: with mimalloc's eager arena commit each
            // held 5.7 MiB of private memory, without it 1.9 MiB (measured
            // with /proc/PID/smaps_rollup; BENCHMARKS.md, node agent).
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| self.fail("create", format!("starting the shim: {e}")))?;
        let stdout = child.stdout.take().expect("piped");
        let mut first = String::new();
        let read = tokio::io::BufReader::new(stdout)
            .read_line(&mut first)
            .await;
        // The shim lives on after reporting; reap it whenever it ends so it
        // leaves no zombie behind (after an agent restart, init does).
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        read.map_err(|e| self.fail("create", format!("reading the shim: {e}")))?;
        let first = first.trim();
        match first.split_once(' ') {
            Some(("created", pid)) => pid
                .parse()
                .map_err(|_| self.fail("create", format!("shim said {first:?}"))),
            Some(("error", message)) => Err(self.fail("create", message)),
            _ => Err(self.fail("create", format!("the shim ended early: {first:?}"))),
        }
    }

    async fn start(&self, id: &str) -> RuntimeResult<()> {
        let out = self.command("start", &["start", id]).await?;
        if !out.status.success() {
            return Err(self.fail("start", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(())
    }

    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()> {
        let out = self.command("kill", &["kill", id, signal]).await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success()
            || is_missing(&stderr)
            || stderr.contains("not running")
            || stderr.contains("process already finished")
        {
            return Ok(());
        }
        Err(self.fail(format!("kill {signal}"), stderr.trim()))
    }

    async fn delete(&self, id: &str) -> RuntimeResult<()> {
        let out = self.command("delete", &["delete", "--force", id]).await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || is_missing(&stderr) {
            return Ok(());
        }
        Err(self.fail("delete", stderr.trim()))
    }

    async fn state(&self, id: &str) -> RuntimeResult<Option<OciState>> {
        let out = self.command("state", &["state", id]).await?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if is_missing(&stderr) {
                return Ok(None);
            }
            return Err(self.fail("state", stderr.trim()));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| self.fail("state", format!("unreadable state: {e}")))?;
        Ok(Some(OciState {
            status: v["status"].as_str().unwrap_or("unknown").to_owned(),
            pid: v["pid"].as_i64().unwrap_or(0) as i32,
        }))
    }

    fn exec_command(&self, id: &str, cmd: &[String]) -> Option<tokio::process::Command> {
        let mut c = tokio::process::Command::new(self.binary);
        c.arg("--root")
            .arg(&self.root)
            .arg("exec")
            .arg(id)
            .args(cmd);
        Some(c)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use crate::runtime::shim::ExitStatus;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Containers that "run" until killed; a kill writes the exit file as the
    /// shim would.
    #[derive(Debug, Default)]
    pub struct FakeOci {
        /// id → (exit file, status)
        pub containers: Mutex<HashMap<String, (PathBuf, String)>>,
    }

    #[async_trait::async_trait]
    impl OciRuntime for FakeOci {
        async fn create(
            &self,
            id: &str,
            bundle: &Path,
            _log: &Path,
            exit: &Path,
        ) -> RuntimeResult<i32> {
            assert!(
                bundle.join("config.json").exists(),
                "bundle written before create"
            );
            self.containers
                .lock()
                .unwrap()
                .insert(id.into(), (exit.to_owned(), "created".into()));
            Ok(4242)
        }
        async fn start(&self, id: &str) -> RuntimeResult<()> {
            let mut c = self.containers.lock().unwrap();
            c.get_mut(id).expect("created").1 = "running".into();
            Ok(())
        }
        async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()> {
            let mut c = self.containers.lock().unwrap();
            if let Some((exit, status)) = c.get_mut(id)
                && status != "stopped"
            {
                *status = "stopped".into();
                let code = if signal == "TERM" { 143 } else { 137 };
                let s = ExitStatus {
                    exit_code: code,
                    finished_at_ns: 1,
                };
                std::fs::write(exit, serde_json::to_vec(&s).unwrap()).unwrap();
            }
            Ok(())
        }
        async fn delete(&self, id: &str) -> RuntimeResult<()> {
            self.containers.lock().unwrap().remove(id);
            Ok(())
        }
        async fn state(&self, id: &str) -> RuntimeResult<Option<OciState>> {
            Ok(self
                .containers
                .lock()
                .unwrap()
                .get(id)
                .map(|(_, s)| OciState {
                    status: s.clone(),
                    pid: 4242,
                }))
        }
    }
}
