//! The per-container shim: a small process (the `flotilla` binary run as
//! `flotilla shim …`) that outlives the agent, as containerd's shim and
//! CRI-O's conmon do. It
//!
//! 1. detaches into its own session and becomes a child subreaper, so the
//!    container's init process becomes its child once `runc create` exits;
//! 2. runs `runc create` with pipes for the container's stdout and stderr,
//!    and tells the agent on its own stdout: `created <pid>` or `error <text>`;
//! 3. copies the container's output into the CRI log file
//!    (`<RFC 3339 time> stdout|stderr F|P <text>`), which `kubectl logs` reads;
//! 4. reaps the container and writes its exit status to the exit file, which
//!    the agent watches (and finds after a restart of its own).
//!
//! It is synchronous and single-purpose: a few threads, no async runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What the shim is told to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// `runc` or `crun`.
    pub runtime: String,
    /// The runtime's `--root` (its state directory).
    pub runtime_root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    pub log: PathBuf,
    pub exit_file: PathBuf,
}

impl ShimArgs {
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec!["shim".into()];
        for (flag, value) in [
            ("--runtime", self.runtime.as_ref()),
            ("--runtime-root", self.runtime_root.as_os_str()),
            ("--bundle", self.bundle.as_os_str()),
            ("--id", self.id.as_ref()),
            ("--log", self.log.as_os_str()),
            ("--exit-file", self.exit_file.as_os_str()),
        ] {
            v.push(flag.into());
            v.push(value.to_owned());
        }
        v
    }

    /// Parses what [`Self::to_args`] wrote (after the `shim` word).
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let get = |flag: &str| -> Result<String, String> {
            let i = args
                .iter()
                .position(|a| a == flag)
                .ok_or_else(|| format!("shim: missing {flag}"))?;
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("shim: {flag} needs a value"))
        };
        Ok(Self {
            runtime: get("--runtime")?,
            runtime_root: get("--runtime-root")?.into(),
            bundle: get("--bundle")?.into(),
            id: get("--id")?,
            log: get("--log")?.into(),
            exit_file: get("--exit-file")?.into(),
        })
    }
}

/// The content of an exit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, or 128 + the signal that killed it.
    pub exit_code: i32,
    /// Nanoseconds since the Unix epoch.
    pub finished_at_ns: u128,
}

impl ExitStatus {
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
    pub fn finished_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(self.finished_at_ns as u64)
    }
}

/// The shim's `main`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let args = match ShimArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            println!("error {e}");
            return 2;
        }
    };
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            // The agent may already have stopped reading; that is fine.
            let _ = writeln!(std::io::stdout(), "error {e}");
            1
        }
    }
}

fn run(args: &ShimArgs) -> Result<(), String> {
    // Its own session: a signal to the agent's process group must not reach it.
    let _ = nix::unistd::setsid();
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("subreaper: {e}"))?;
    let (out_r, out_w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let pid_file = args.bundle.join("init.pid");
    let runtime_log = args.bundle.join("runtime.log");
    let status = Command::new(&args.runtime)
        .arg("--root")
        .arg(&args.runtime_root)
        .arg("--log")
        .arg(&runtime_log)
        .arg("--log-format")
        .arg("json")
        .arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(out_w)
        .stderr(err_w)
        .status()
        .map_err(|e| format!("running {}: {e}", args.runtime))?;
    // The write ends now belong to the container alone (the Command dropped
    // ours), so the readers see EOF when it is gone.
    if !status.success() {
        let mut stderr = String::new();
        let _ = BufReader::new(err_r).take(4096).read_to_string(&mut stderr);
        return Err(runtime_error(&runtime_log).unwrap_or(stderr.trim().to_owned()));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .map_err(|e| format!("reading {}: {e}", pid_file.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("pid file: {e}"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .map_err(|e| format!("opening {}: {e}", args.log.display()))?;
    let log = Arc::new(Mutex::new(log));
    let copiers = [("stdout", out_r), ("stderr", err_r)].map(|(stream, r)| {
        let log = log.clone();
        std::thread::spawn(move || copy_lines(r, stream, &log))
    });
    println!("created {pid}");
    let _ = std::io::stdout().flush();
    let exit_code = reap(pid);
    for c in copiers {
        let _ = c.join();
    }
    let finished_at_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let status = ExitStatus {
        exit_code,
        finished_at_ns,
    };
    let tmp = args.exit_file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&status).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &args.exit_file))
        .map_err(|e| format!("writing {}: {e}", args.exit_file.display()))
}

/// runc's last error-level message from its JSON log, if any.
fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error")
        .filter_map(|v| v["msg"].as_str().map(str::to_owned))
        .next_back()
}

/// Waits for the container's init; reaps every other orphan on the way.
fn reap(pid: i32) -> i32 {
    use nix::sys::wait::{WaitStatus, waitpid};
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return code,
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            // No children left: the container is gone without us seeing it.
            Err(_) => return 255,
        }
    }
}

/// Lines longer than this are split into partial (`P`) records, as the CRI
/// log format allows.
const MAX_LINE: usize = 16 * 1024;

fn copy_lines(r: impl Read, stream: &str, log: &Mutex<std::fs::File>) {
    let mut r = BufReader::with_capacity(MAX_LINE, r);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let full = line.last() == Some(&b'\n');
        if full {
            line.pop();
        }
        let record = cri_record(SystemTime::now(), stream, full, &line);
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(&record);
        }
    }
}

/// One CRI log record.
pub fn cri_record(at: SystemTime, stream: &str, full: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(rfc3339_nanos(at).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// `2026-12-02T19:43:21.123456789Z`, without a date library: days since the
/// epoch to a civil date (Howard Hinnant's algorithm).
pub fn rfc3339_nanos(at: SystemTime) -> String {
    let d = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            runtime: "runc".into(),
            runtime_root: "/r".into(),
            bundle: "/b".into(),
            id: "c1".into(),
            log: "/l/0.log".into(),
            exit_file: "/e/c1".into(),
        };
        let words: Vec<String> = a
            .to_args()
            .into_iter()
            .skip(1)
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(ShimArgs::parse(&words).unwrap(), a);
        assert!(ShimArgs::parse(&words[2..]).is_err());
    }

    #[test]
    fn records_are_in_the_cri_log_format() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_764_704_601, 5);
        assert_eq!(rfc3339_nanos(at), "2025-12-02T19:43:21.000000005Z");
        assert_eq!(
            rfc3339_nanos(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            cri_record(at, "stdout", true, b"hi"),
            b"2025-12-02T19:43:21.000000005Z stdout F hi\n"
        );
        assert_eq!(
            cri_record(at, "stderr", false, b"x"),
            b"2025-12-02T19:43:21.000000005Z stderr P x\n"
        );
    }

    #[test]
    fn long_lines_become_partial_records() {
        let text = vec![b'a'; MAX_LINE + 10];
        let mut input = text.clone();
        input.push(b'\n');
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let f = Mutex::new(std::fs::File::create(&path).unwrap());
        copy_lines(&input[..], "stdout", &f);
        let out = std::fs::read_to_string(&path).unwrap();
        let tags: Vec<&str> = out.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["P", "F"]);
    }
}
