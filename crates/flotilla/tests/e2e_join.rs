//! End to end: a control plane alone (`flotilla server --disable-agent`) and
//! a separate `flotilla agent --server URL --token TOKEN` that joins it with
//! nothing but the token: it pins the cluster CA by the token's hash, obtains
//! its node credentials, registers a Ready node as `system:node:<name>` and
//! runs pods, with runc and with crun. A wrong token is refused. Needs root.

mod common;
mod node;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use node::{Node, pod};
use serde_json::Value;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "echo up on $(hostname) && exec httpd -f -p 8080 -h /"]
    resources:
      limits: {memory: 32Mi, cpu: 100m}
"#;

/// kubectl as the agent, with the kubeconfig it wrote for itself.
fn as_node(node: &Node, args: &[&str]) -> std::process::Output {
    Command::new(common::kubectl_bin(None))
        .arg("--kubeconfig")
        .arg(node.data.join("agent/kubelet.kubeconfig"))
        .args(args)
        .output()
        .expect("kubectl")
}

/// Runs the pod and checks it is Ready on the joined node; deletes it and
/// checks nothing is left.
fn pod_runs_and_leaves_nothing(node: &Node) {
    let c = node.cluster();
    c.ok_in(None, &["apply", "-f", "-"], Some(POD));
    c.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"]);
    let web = pod(node, "web");
    assert_eq!(web["spec"]["nodeName"], node.name.as_str());
    assert!(
        web["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.42.")),
        "{}",
        web["status"]
    );
    assert_eq!(
        node.oci_containers().len(),
        1,
        "{} runs the container",
        node.oci
    );

    c.ok(&["delete", "pod", "web", "--timeout=60s"]);
    node.assert_released();
}

#[test]
fn an_agent_joins_with_the_token_and_runs_pods_as_its_node() {
    let mut node = Node::join("e2e-join", &[]);
    let agent_dir = node.data.join("agent");

    // The token the server wrote pins its CA.
    let token = std::fs::read_to_string(node.cluster().data.join("token")).unwrap();
    assert!(
        token.starts_with("K10") && token.contains("::server:"),
        "{token}"
    );
    // Keys and the kubeconfig are the owner's only.
    for file in [
        "kubelet.kubeconfig",
        "client-kubelet.key",
        "serving-kubelet.key",
    ] {
        let mode = std::fs::metadata(agent_dir.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // The agent is its node to the API server.
    let who = as_node(&node, &["auth", "whoami", "-o", "json"]);
    let who: Value = serde_json::from_slice(&who.stdout).expect("whoami json");
    assert_eq!(
        who["status"]["userInfo"]["username"],
        format!("system:node:{}", node.name)
    );

    pod_runs_and_leaves_nothing(&node);

    // The node authorizer and NodeRestriction keep it to its own node.
    let other = format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"other-{}"}},
            "spec":{{"unschedulable":true}}}}"#,
        std::process::id()
    );
    node.cluster()
        .ok_in(None, &["apply", "-f", "-"], Some(&other));
    let other_name = format!("other-{}", std::process::id());
    let out = as_node(&node, &["label", "node", &other_name, "joined=no"]);
    assert!(
        !out.status.success(),
        "labelled another node: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
    let out = as_node(&node, &["delete", "node", &other_name]);
    assert!(!out.status.success(), "deleted another node");
    let out = as_node(&node, &["get", "secrets", "-n", "kube-system"]);
    assert!(!out.status.success(), "listed secrets as a node");
    let out = as_node(&node, &["label", "node", &node.name, "joined=yes"]);
    assert!(
        out.status.success(),
        "its own node: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A restart reuses the stored credentials rather than joining again.
    let cert_before = std::fs::read(agent_dir.join("client-kubelet.crt")).unwrap();
    node.restart_agent();
    let started = Instant::now();
    node.wait_for(
        "the restarted agent to use its credentials",
        Duration::from_secs(30),
        || {
            node.agent
                .as_ref()
                .unwrap()
                .log_text()
                .matches("using the node's stored credentials")
                .count()
                == 1
        },
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        std::fs::read(agent_dir.join("client-kubelet.crt")).unwrap(),
        cert_before
    );
    node.wait_node_ready(Duration::from_secs(60));
}

#[test]
fn crun_runs_the_pods_of_a_joined_agent() {
    let node = Node::join("e2e-join-crun", &["--oci-runtime", "crun"]);
    // On this hybrid layout the agent mounted a v1 hugetlb hierarchy for crun.
    if std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").is_ok() {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            mountinfo
                .lines()
                .any(|l| l.contains(" - cgroup ") && l.contains("hugetlb")),
            "a cgroup v1 hugetlb hierarchy is mounted"
        );
    }
    pod_runs_and_leaves_nothing(&node);
}

/// Runs `flotilla agent` against `url` with `token` and returns its exit
/// status and standard error, killing it after a while.
fn agent_once(url: &str, token: &str, data: &std::path::Path) -> (bool, String) {
    let mut agent = node::Agent::spawn(
        &[
            "--server".into(),
            url.into(),
            "--token".into(),
            token.into(),
            "--data-dir".into(),
            data.to_str().unwrap().into(),
            "--node-name".into(),
            "refused".into(),
            "--node-ip".into(),
            "127.0.0.1".into(),
        ],
        &data.with_extension("log"),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = agent.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the agent did not give up: {}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    (status.success(), agent.log_text())
}

#[test]
fn a_wrong_token_is_refused_with_a_clear_message() {
    let c = common::Cluster::start(&[]);
    let token = std::fs::read_to_string(c.data.join("token")).unwrap();
    let token = token.trim();
    let url = std::fs::read_to_string(&c.kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // The right CA hash with a wrong secret: the server says no.
    let (hash, _) = token.rsplit_once(':').unwrap();
    let (ok, log) = agent_once(&url, &format!("{hash}:wrong"), &tmp.path().join("a"));
    assert!(!ok);
    assert!(
        log.contains("refused the join token") && log.contains("check --token"),
        "{log}"
    );
    assert!(!tmp.path().join("a/agent/kubelet.kubeconfig").exists());

    // Another cluster's CA hash: the agent refuses the server before it
    // shows it the secret.
    let secret = token.rsplit_once(':').unwrap().1;
    let wrong_ca = format!("K10{}::server:{secret}", "ab".repeat(32));
    let (ok, log) = agent_once(&url, &wrong_ca, &tmp.path().join("b"));
    assert!(!ok);
    assert!(log.contains("wrong --server"), "{log}");
    assert!(!c.log().contains("issued node credentials"), "{}", c.log());
}

#[test]
fn pods_keep_running_while_the_api_server_is_down_and_the_agent_catches_up() {
    let mut node = Node::join("e2e-apidown", &[]);
    node.cluster().ok_in(None, &["apply", "-f", "-"], Some(POD));
    node.cluster()
        .ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"]);
    let before = pod(&node, "web")["status"]["containerStatuses"][0].clone();

    // The control plane goes away; the container does not.
    let mut cluster = node.cluster.take().expect("running");
    cluster.stop_in_place();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        node.oci_containers().len(),
        1,
        "the container runs on without the API server"
    );
    assert!(
        node.agent.as_mut().unwrap().running(),
        "the agent waits for the server"
    );

    // Back on the same address: the agent reconnects, the node is Ready again,
    // the same container still runs, and a deletion made now reaches it.
    cluster.restart();
    node.cluster = Some(cluster);
    node.wait_node_ready(Duration::from_secs(90));
    let after = pod(&node, "web")["status"]["containerStatuses"][0].clone();
    assert_eq!(after["containerID"], before["containerID"]);
    assert_eq!(after["restartCount"], 0);
    let out = node
        .cluster()
        .kubectl(&["delete", "pod", "web", "--timeout=90s"]);
    assert!(
        out.status.success(),
        "deleting after the restart: {}\nagent log tail:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&node.agent.as_ref().unwrap().log_text(), 40)
    );
    assert!(
        node.oci_containers().is_empty(),
        "{:?}",
        node.oci_containers()
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
