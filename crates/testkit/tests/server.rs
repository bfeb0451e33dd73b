//! `ServerProcess` against the real binary (`cargo build -p flotilla` first, or
//! FLOTILLA_BIN): it starts, answers, restarts on its data dir, and leaves no
//! process behind, also when the server fails.

use std::path::Path;
use std::time::Duration;

use testkit::{Profile, ServerProcess, flotilla_bin};

/// The control plane alone: nothing else needs to run for these tests.
const API_ONLY: [&str; 3] = [
    "--disable-agent",
    "--disable-scheduler",
    "--disable-controller-manager",
];

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn starts_answers_restarts_and_is_killed_on_drop() {
    let mut server = ServerProcess::builder()
        .bin(flotilla_bin(Profile::Debug))
        .args(API_ONLY)
        .start();
    let data = server.data_dir().to_path_buf();
    assert!(server.kubeconfig().starts_with(&data));
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).expect("kubeconfig");
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );
    assert!(kubeconfig.contains(server.url()), "{kubeconfig}");
    let ready = server.readyz().expect("readyz");
    assert!(ready.is_ready(), "{ready:?}");
    let first = server.pid().expect("running");
    assert!(server.log().contains("testkit: starting"));

    server.restart();
    let second = server.pid().expect("running again");
    assert_ne!(first, second);
    assert!(!alive(first), "the first process is gone");
    assert_eq!(server.data_dir(), data);
    assert!(server.readyz().expect("readyz").is_ready());
    assert_eq!(server.log().matches("testkit: starting").count(), 2);

    server.stop();
    assert_eq!(server.pid(), None);
    assert!(!alive(second));
    assert!(server.readyz().is_err(), "nothing listens after stop");
    server.restart();
    let third = server.pid().expect("running after stop");

    drop(server);
    assert!(!alive(third), "dropping kills the process");
    assert!(!data.exists(), "the temp data dir is removed");
}

#[test]
fn a_server_that_exits_fails_with_its_log() {
    let err = ServerProcess::builder()
        .bin(flotilla_bin(Profile::Debug))
        .arg("--no-such-flag")
        .try_start()
        .expect_err("an unknown flag stops the server");
    let text = err.to_string();
    assert!(text.contains("exited with"), "{text}");
    assert!(err.log().contains("--no-such-flag"), "{text}");
    assert!(
        text.contains("--no-such-flag"),
        "the message ends with the log: {text}"
    );
}

#[test]
fn the_message_ends_with_the_error_that_stopped_the_server() {
    // main returns an error; with RUST_BACKTRACE=1 (as test runs often have)
    // the log would end with a backtrace of main, pushing the cause out of
    // the message's tail.
    let err = ServerProcess::builder()
        .bin(flotilla_bin(Profile::Debug))
        .args(API_ONLY)
        .args(["--service-cidr", "not-a-cidr"])
        .try_start()
        .expect_err("a bad --service-cidr stops the server");
    let text = err.to_string();
    let tail = text
        .split_once("--- last lines of")
        .map(|(_, t)| t)
        .unwrap_or_default();
    assert!(tail.contains("--service-cidr"), "{text}");
    assert!(!tail.contains("Stack backtrace"), "{text}");
}

#[test]
fn a_server_never_ready_is_killed_and_its_log_shown() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    // An etcd nobody runs: the server waits for it and never gets ready.
    let builder = ServerProcess::builder()
        .bin(flotilla_bin(Profile::Debug))
        .data_dir(&data)
        .args(API_ONLY)
        .args(["--datastore-endpoint", "http://127.0.0.1:9"])
        .timeout(Duration::from_secs(3));
    let panic = std::panic::catch_unwind(move || builder.start())
        .expect_err("start panics when the server is not ready in time");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("within 3s") || msg.contains("after 3s"),
        "{msg}"
    );
    assert!(msg.contains("last lines of"), "{msg}");
    let log = std::fs::read_to_string(data.join("server.log")).expect("log");
    assert!(
        msg.contains(log.lines().last().unwrap_or_default()),
        "{msg}"
    );
    // The one process it started was killed: no server holds the data dir.
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(data.to_str().unwrap_or("-")))
        })
        .collect();
    assert!(pids.is_empty(), "still running: {pids:?}");
}
