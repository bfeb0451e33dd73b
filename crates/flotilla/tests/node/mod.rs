//! A node for end-to-end tests: `flotilla server` with its agent, in a
//! network namespace of the test's own, so pods, bridges and routes never
//! touch the machine's network; and a cleanup that leaves nothing behind
//! (containers, mounts, cgroups) even when the test fails.
//!
//! The test thread moves itself into a fresh network namespace
//! (`unshare(CLONE_NEWNET)` affects only the calling thread); everything it
//! starts afterwards (the server, kubectl) inherits it. The namespace goes
//! away with the last process in it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::Cluster;

pub const IMAGE: &str = "docker.io/library/busybox:latest";

pub struct Node {
    pub cluster: Option<Cluster>,
    pub name: String,
    pub data: PathBuf,
    _tmp: tempfile::TempDir,
}

fn must_be_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the node agent tests run real containers (runc, mounts, network namespaces, cgroups): \
         run them as root"
    );
}

impl Node {
    /// A node named uniquely for this test; extra server flags in `extra`.
    pub fn start(test: &str, extra: &[&str]) -> Node {
        must_be_root();
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET) for the test's own network namespace");
        run("ip", &["link", "set", "lo", "up"]);
        let tmp = tempfile::Builder::new()
            .prefix("flotilla-node-")
            .tempdir()
            .expect("temp dir");
        let data = tmp.path().join("data");
        let images = data.join("agent/images");
        std::fs::create_dir_all(&images).unwrap();
        testkit::image::busybox_oci_archive(&images.join("busybox.tar"), IMAGE)
            .expect("building the busybox test image from /bin/busybox (package busybox-static)");
        let name = format!("{test}-{}", std::process::id());
        let mut args = vec!["--node-name", &name, "--node-ip", "127.0.0.1"];
        args.extend_from_slice(extra);
        let cluster = Cluster::start_with_agent(data.clone(), &args);
        let node = Node {
            cluster: Some(cluster),
            name,
            data,
            _tmp: tmp,
        };
        node.cluster().ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("node/{}", node.name),
            "--timeout=60s",
        ]);
        node
    }

    /// Kills the server (and its agent) and starts it again on the same data
    /// dir; the containers' shims keep running meanwhile.
    pub fn restart(&mut self) {
        let mut c = self.cluster.take().expect("running");
        c.restart();
        self.cluster = Some(c);
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("running")
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.data.join("agent/runtime")
    }

    /// Containers the OCI runtime knows.
    pub fn oci_containers(&self) -> Vec<String> {
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.runtime_root().join("oci"))
            .args(["list", "-q"])
            .output()
            .expect("runc list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Mount points under the data dir.
    pub fn mounts(&self) -> Vec<PathBuf> {
        mounts_under(&self.data)
    }

    /// cgroup directories under this node's cgroup root, in any hierarchy.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in hierarchies() {
            walk_dirs(&h.join("flotilla").join(&self.name), &mut out);
        }
        out
    }

    /// Waits for `cond`, failing with `what` and the server log's tail.
    pub fn wait_for(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting for {what}\nserver log tail:\n{}",
                    self.cluster
                        .as_ref()
                        .map(|c| c.log())
                        .unwrap_or_default()
                        .lines()
                        .rev()
                        .take(40)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn hierarchies() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") {
        out.extend(
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    out
}

/// Directories under `dir` (and `dir`), deepest first.
fn walk_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk_dirs(&e.path(), out);
        }
    }
    out.push(dir.to_owned());
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.cluster.take() {
            c.stop_in_place();
        }
        // Whatever the agent left: containers, their shims, mounts, cgroups.
        let root = self.runtime_root().join("oci");
        for id in self.oci_containers() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["kill", &id, "KILL"])
                .output();
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", &id])
                .output();
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        for dir in self.cgroups() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
