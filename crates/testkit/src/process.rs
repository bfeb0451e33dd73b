//! `flotilla server` as a child process.

use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bin::{Profile, flotilla_bin};
use crate::readyz::{self, Readyz};

/// Lines of the server log an [`Error`]'s message ends with.
const LOG_TAIL_LINES: usize = 40;

/// How to start a server; made by [`ServerProcess::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    bin: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    port: u16,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Builder {
    /// The binary to run; [`flotilla_bin`]`(Profile::Debug)` when not set.
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// Runs on this data dir, which the caller owns and which outlives the
    /// server (to restart on it, or to start a second server on it). Without
    /// one the server gets `data/` in a temp dir removed when it is dropped.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// `--https-listen-port`. The default, 0, has the server bind a free
    /// loopback port itself, which no other process can take in between; the
    /// port it got is read from the kubeconfig it writes ([`ServerProcess::url`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// One more argument after `server --data-dir DIR --https-listen-port PORT`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More arguments after `server --data-dir DIR --https-listen-port PORT`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for the server (`RUST_LOG`, say); the rest of
    /// the environment is inherited. `RUST_LIB_BACKTRACE` is 0 unless set
    /// here: with `RUST_BACKTRACE=1` an error that stops the server would
    /// otherwise end the log with a backtrace of `main` instead of its cause
    /// (panics keep their backtraces).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long [`Builder::start`] waits for `/readyz`, and [`Builder::spawn`]
    /// for the kubeconfig (60 s unless set).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Starts the server and waits until `/readyz` answers 200 `ok`. Panics,
    /// with the tail of the server's log, when it exits or is not ready in
    /// time; the process is killed first.
    pub fn start(self) -> ServerProcess {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Builder::start`], returning the failure instead of panicking.
    pub fn try_start(self) -> Result<ServerProcess, Error> {
        let limit = self.timeout;
        let mut server = self.try_spawn()?;
        server.try_wait_ready(limit)?;
        Ok(server)
    }

    /// Starts the server and returns once it has bound its port (its
    /// kubeconfig is written then), ready or not: for tests of readiness
    /// itself. Panics as [`Builder::start`] does.
    pub fn spawn(self) -> ServerProcess {
        self.try_spawn().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Builder::spawn`], returning the failure instead of panicking.
    pub fn try_spawn(self) -> Result<ServerProcess, Error> {
        let (tmp, data_dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::tempdir().map_err(|e| Error::setup("a temp dir", e))?;
                let data = tmp.path().join("data");
                (Some(tmp), data)
            }
        };
        let bin = match &self.bin {
            Some(bin) => bin.clone(),
            None => flotilla_bin(Profile::Debug),
        };
        let mut server = ServerProcess {
            child: None,
            url: String::new(),
            bin,
            data_dir,
            opts: self,
            _tmp: tmp,
        };
        server.launch()?;
        Ok(server)
    }
}

/// A running `flotilla server` child process. Its standard error goes to
/// `DATA_DIR/server.log` (appended to across restarts). Dropping it kills the
/// process (only this one, by its handle) and then removes the temp data dir,
/// if it made one.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    url: String,
    bin: PathBuf,
    data_dir: PathBuf,
    opts: Builder,
    /// Declared last: removed after the process is gone.
    _tmp: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Options for a server: the debug build, a temp data dir, a free port.
    pub fn builder() -> Builder {
        Builder {
            bin: None,
            data_dir: None,
            port: 0,
            args: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The data dir (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `DATA_DIR/kubeconfig.yaml`: the admin's kubeconfig the server writes.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig.yaml")
    }

    /// `DATA_DIR/tls/server-ca.crt`: the cluster CA, which signed the serving
    /// certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.data_dir.join("tls/server-ca.crt")
    }

    /// The server's URL as its kubeconfig names it (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The binary this server runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The process id, while the process runs (for `/proc/PID/…` figures).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `DATA_DIR/server.log`, where the server's standard error goes.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// Everything the server has logged (every run on this data dir).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of [`ServerProcess::log`].
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Asks `/readyz` once.
    pub fn readyz(&self) -> std::io::Result<Readyz> {
        readyz::get(&self.url, &self.ca_cert())
    }

    /// Waits until `/readyz` answers 200 `ok`; panics (after killing the
    /// process) when the server exits or `limit` passes, with its log tail.
    pub fn wait_ready(&mut self, limit: Duration) {
        if let Err(e) = self.try_wait_ready(limit) {
            panic!("{e}");
        }
    }

    /// [`ServerProcess::wait_ready`], returning the failure instead of
    /// panicking. The process is killed on failure.
    pub fn try_wait_ready(&mut self, limit: Duration) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            self.check_running()?;
            let last = match self.readyz() {
                Ok(r) if r.is_ready() => return Ok(()),
                Ok(r) => format!("{} {}", r.status, r.body.trim()),
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= limit {
                return Err(self.fail(format!(
                    "flotilla server not ready after {limit:?} (last /readyz: {last})"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process and waits for it; the data dir stays. Does nothing
    /// when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same data dir with the same
    /// arguments, waiting until it is ready. With the default port 0 it gets a
    /// new port: read [`ServerProcess::url`] (or the kubeconfig) again.
    /// Panics as [`Builder::start`] does.
    pub fn restart(&mut self) {
        self.stop();
        let limit = self.opts.timeout;
        if let Err(e) = self.launch().and_then(|()| self.try_wait_ready(limit)) {
            panic!("{e}");
        }
    }

    /// Spawns the process and waits for its kubeconfig, which the server writes
    /// once its port is bound. Kills the process when that fails.
    fn launch(&mut self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| Error::setup("the data dir", e))?;
        // A kubeconfig left by an earlier run names an old port.
        match std::fs::remove_file(self.kubeconfig()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::setup("the old kubeconfig", e)),
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| Error::setup("the server log", e))?;
        let _ = writeln!(log, "testkit: starting {}", self.bin.display());
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--https-listen-port")
            .arg(self.opts.port.to_string())
            .args(&self.opts.args)
            .env("RUST_LIB_BACKTRACE", "0")
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| Error::setup(&format!("`{} server` (spawning)", self.bin.display()), e))?;
        self.child = Some(child);

        let start = Instant::now();
        let limit = self.opts.timeout;
        loop {
            self.check_running()?;
            if let Some(url) = kubeconfig_server(&self.kubeconfig()) {
                self.url = url;
                return Ok(());
            }
            if start.elapsed() >= limit {
                return Err(self.fail(format!(
                    "flotilla server wrote no kubeconfig within {limit:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An error when the process has exited (or was stopped).
    fn check_running(&mut self) -> Result<(), Error> {
        let status = match self.child.as_mut().map(Child::try_wait) {
            None => return Err(self.fail("flotilla server is not running".into())),
            Some(Ok(Some(status))) => status,
            Some(Ok(None)) => return Ok(()),
            Some(Err(e)) => return Err(self.fail(format!("flotilla server: waiting: {e}"))),
        };
        self.child = None;
        Err(self.fail(format!("flotilla server exited with {status}")))
    }

    /// Kills the process and describes why, with the log's tail.
    fn fail(&mut self, what: String) -> Error {
        self.stop();
        Error {
            what,
            log_path: self.log_path(),
            log: self.log(),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `server:` URL of a kubeconfig, once the file is there.
fn kubeconfig_server(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let url = line.trim().strip_prefix("server:")?.trim();
        let url = url.trim_matches(|c| c == '"' || c == '\'');
        (!url.is_empty()).then(|| url.to_string())
    })
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A server that could not be started or did not become ready. By the time
/// this exists the process has been killed. Its message ends with the last
/// lines of the server's log; it holds the whole log, as a temp data dir is
/// gone with the server.
pub struct Error {
    what: String,
    log_path: PathBuf,
    log: String,
}

impl Error {
    fn setup(what: &str, e: std::io::Error) -> Error {
        Error {
            what: format!("flotilla server: preparing {what}: {e}"),
            log_path: PathBuf::new(),
            log: String::new(),
        }
    }

    /// Everything the server logged (on this data dir) until it was killed.
    pub fn log(&self) -> &str {
        &self.log
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if !self.log_path.as_os_str().is_empty() {
            write!(
                f,
                "\n--- last lines of {} ---\n{}",
                self.log_path.display(),
                tail(&self.log, LOG_TAIL_LINES)
            )?;
        }
        Ok(())
    }
}

// As Display: `.expect()` and `?` in tests then show the log with real line
// breaks.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_server_url_from_a_kubeconfig() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig.yaml");
        assert_eq!(kubeconfig_server(&path), None);
        std::fs::write(
            &path,
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAAA\n    \
             server: https://127.0.0.1:40123\n  name: default\n",
        )
        .expect("write");
        assert_eq!(
            kubeconfig_server(&path).as_deref(),
            Some("https://127.0.0.1:40123")
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
