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

/// Eviction thresholds for test nodes: a machine whose disk is 90% full (as
/// build machines often are) would otherwise be under disk pressure and evict
/// the tests' pods. The eviction test sets its own.
pub const LENIENT_EVICTION: &str = "memory.available<1Mi,nodefs.available<1%";

pub const IMAGE: &str = "docker.io/library/busybox:latest";

pub struct Node {
    pub cluster: Option<Cluster>,
    pub name: String,
    /// The node's data dir: its agent keeps everything under `data/agent`.
    pub data: PathBuf,
    /// A separate `flotilla agent` process, for nodes that joined ([`Node::join`]).
    pub agent: Option<Agent>,
    /// The OCI runtime the agent runs containers with (`runc` or `crun`).
    pub oci: &'static str,
    _tmp: tempfile::TempDir,
}

/// A `flotilla agent` child process, its standard error in `DATA/agent.log`.
pub struct Agent {
    pub child: std::process::Child,
    pub args: Vec<String>,
    pub log: PathBuf,
}

impl Agent {
    /// Starts `flotilla agent ARGS`, appending its standard error to `log`.
    pub fn spawn(args: &[String], log: &Path) -> Agent {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .arg("agent")
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawning flotilla agent");
        Agent {
            child,
            args: args.to_vec(),
            log: log.to_owned(),
        }
    }

    /// Kills the process (by its handle) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still alive.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Moves the calling thread into a network namespace of its own with `lo` up.
fn own_network_namespace() {
    must_be_root();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET) for the test's own network namespace");
    run("ip", &["link", "set", "lo", "up"]);
}

/// Puts the busybox test image where an agent on `data` imports it at start.
fn drop_busybox_image(data: &Path) {
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images).unwrap();
    testkit::image::busybox_oci_archive(&images.join("busybox.tar"), IMAGE)
        .expect("building the busybox test image from /bin/busybox (package busybox-static)");
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
        own_network_namespace();
        let tmp = tempfile::Builder::new()
            .prefix("flotilla-node-")
            .tempdir()
            .expect("temp dir");
        let data = tmp.path().join("data");
        drop_busybox_image(&data);
        let name = format!("{test}-{}", std::process::id());
        let mut args = vec!["--node-name", &name, "--node-ip", "127.0.0.1"];
        args.extend_from_slice(extra);
        if !extra.contains(&"--eviction-hard") {
            args.extend_from_slice(&["--eviction-hard", LENIENT_EVICTION]);
        }
        let cluster = Cluster::start_with_agent(data.clone(), &args);
        let node = Node {
            cluster: Some(cluster),
            name,
            data,
            agent: None,
            oci: "runc",
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

    /// A control plane alone (`flotilla server --disable-agent`) and a
    /// separate `flotilla agent --server URL --token TOKEN` with a data dir
    /// and node name of its own (extra agent flags in `agent_extra`), both in
    /// the test's network namespace; returns once the node is Ready.
    pub fn join(test: &str, agent_extra: &[&str]) -> Node {
        own_network_namespace();
        let tmp = tempfile::Builder::new()
            .prefix("flotilla-join-")
            .tempdir()
            .expect("temp dir");
        let data = tmp.path().join("node");
        drop_busybox_image(&data);
        let name = format!("{test}-{}", std::process::id());
        // A fixed port: after a restart of the server the agent finds it again.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Cluster::start_in_at(tmp.path().join("server"), port, &[]);
        let token = std::fs::read_to_string(cluster.data.join("token")).expect("the join token");
        let url = kubeconfig_server(&cluster.kubeconfig);
        let mut args: Vec<String> = [
            "--server",
            &url,
            "--token",
            token.trim(),
            "--data-dir",
            data.to_str().unwrap(),
            "--node-name",
            &name,
            "--node-ip",
            "127.0.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(agent_extra.iter().map(|s| s.to_string()));
        if !agent_extra.contains(&"--eviction-hard") {
            args.extend(["--eviction-hard".to_string(), LENIENT_EVICTION.to_string()]);
        }
        let oci = if agent_extra
            .windows(2)
            .any(|w| w == ["--oci-runtime", "crun"])
        {
            "crun"
        } else {
            "runc"
        };
        let agent = Agent::spawn(&args, &data.join("agent.log"));
        let node = Node {
            cluster: Some(cluster),
            name,
            data,
            agent: Some(agent),
            oci,
            _tmp: tmp,
        };
        node.wait_node_ready(Duration::from_secs(90));
        node
    }

    /// Waits until the Node object exists and is Ready.
    pub fn wait_node_ready(&self, limit: Duration) {
        let path = "{.status.conditions[?(@.type==\"Ready\")].status}";
        self.wait_for(&format!("node {} to be Ready", self.name), limit, || {
            let out = self.cluster().kubectl(&[
                "get",
                "node",
                &self.name,
                "-o",
                &format!("jsonpath={path}"),
            ]);
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "True"
        });
    }

    /// Stops the separate agent (kill, as a crash would) and starts it again
    /// with the same arguments.
    pub fn restart_agent(&mut self) {
        let agent = self.agent.as_mut().expect("a joined node");
        agent.stop();
        let (args, log) = (agent.args.clone(), agent.log.clone());
        self.agent = Some(Agent::spawn(&args, &log));
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("running")
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.data.join("agent/runtime")
    }

    /// Containers the OCI runtime knows.
    pub fn oci_containers(&self) -> Vec<String> {
        let out = Command::new(self.oci)
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
                    "timed out after {limit:?} waiting for {what}\nserver log tail:\n{}{}",
                    tail(
                        &self.cluster.as_ref().map(|c| c.log()).unwrap_or_default(),
                        40
                    ),
                    self.agent
                        .as_ref()
                        .map(|a| format!("\nagent log tail:\n{}", tail(&a.log_text(), 40)))
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The `server:` URL of a kubeconfig.
fn kubeconfig_server(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("the admin kubeconfig");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("a server URL in the kubeconfig")
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
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
        if let Some(mut a) = self.agent.take() {
            a.stop();
        }
        if let Some(mut c) = self.cluster.take() {
            c.stop_in_place();
        }
        // Whatever the agent left: containers, their shims, mounts, cgroups.
        let root = self.runtime_root().join("oci");
        for id in self.oci_containers() {
            let _ = Command::new(self.oci)
                .arg("--root")
                .arg(&root)
                .args(["kill", &id, "KILL"])
                .output();
            let _ = Command::new(self.oci)
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

/// The pod as the API server has it now.
pub fn pod(node: &Node, name: &str) -> serde_json::Value {
    let out = node.cluster().ok(&["get", "pod", name, "-o", "json"]);
    serde_json::from_str(&out).expect("pod json")
}

/// What `container` of `pod` wrote (its first run), from the agent's CRI log.
pub fn log_of(node: &Node, pod: &serde_json::Value, container: &str) -> String {
    let m = &pod["metadata"];
    let dir = node.data.join("agent/logs").join(format!(
        "{}_{}_{}",
        m["namespace"].as_str().unwrap(),
        m["name"].as_str().unwrap(),
        m["uid"].as_str().unwrap()
    ));
    std::fs::read_to_string(dir.join(container).join("0.log")).unwrap_or_default()
}

impl Node {
    /// Checks that the agent holds nothing for pods any more: no container,
    /// mount, pod cgroup, runtime record, pod directory, reserved address,
    /// veth or process (shim, runc) under its data dir.
    pub fn assert_released(&self) {
        assert!(
            self.oci_containers().is_empty(),
            "containers: {:?}",
            self.oci_containers()
        );
        assert!(self.mounts().is_empty(), "mounts: {:?}", self.mounts());
        let pod_cgroups: Vec<_> = self
            .cgroups()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/pod"))
            .collect();
        assert!(pod_cgroups.is_empty(), "cgroups: {pod_cgroups:?}");
        let rt = self.runtime_root();
        for dir in ["sandboxes", "containers", "exits"] {
            let left: Vec<_> = std::fs::read_dir(rt.join(dir))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "{dir}: {left:?}");
        }
        let pods_dir: Vec<_> = std::fs::read_dir(self.data.join("agent/pods"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(pods_dir.is_empty(), "pod dirs: {pods_dir:?}");
        let reserved: Vec<String> = std::fs::read_dir(self.data.join("agent/cni/flotilla"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        assert!(reserved.is_empty(), "addresses: {reserved:?}");
        let links = std::process::Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output()
            .unwrap();
        let links = String::from_utf8_lossy(&links.stdout);
        assert!(links.trim().is_empty(), "veths: {links}");
        let procs = processes_under(&self.data);
        assert!(procs.is_empty(), "processes: {procs:?}");
    }
}

/// Processes whose command line names `dir` (the agent's shims and runc).
pub fn processes_under(dir: &std::path::Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| {
            c.contains(&needle) && !c.contains("flotilla server") && !c.contains("flotilla agent")
        })
        .collect()
}
