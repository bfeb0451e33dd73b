//! End to end: `kubectl logs`, `exec`, `port-forward`, `attach` and `cp`
//! through the API server to the node agent's HTTPS endpoint, with kubectl
//! 1.33 (WebSocket for exec/attach/cp/port-forward) and 1.27 (SPDY/3.1 for
//! all). Needs root, like the other node tests.

mod common;
mod node;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use node::Node;
use serde_json::Value;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-through-port-forward > /www/index.html && echo web-started && echo web-warning >&2 && exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Pod
metadata: {name: restarts}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo run-$(cat /proc/sys/kernel/random/uuid); sleep 1; exit 1"]
"#;

fn follow_pod(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},
        "spec":{{"restartPolicy":"Never","terminationGracePeriodSeconds":1,"containers":[{{"name":"main","image":"busybox",
        "command":["sh","-c","echo one; echo two; echo three; sleep 4; echo four-later; sleep 1"]}}]}}}}"#
    )
}

fn pod(node: &Node, name: &str) -> Value {
    let out = node.cluster().ok(&["get", "pod", name, "-o", "json"]);
    serde_json::from_str(&out).expect("pod json")
}

fn kubectl(node: &Node, minor: u32, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    node.cluster().kubectl_v(Some(minor), args, stdin)
}

fn ok(node: &Node, minor: u32, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(node, minor, args, stdin);
    assert!(
        out.status.success(),
        "kubectl 1.{minor} {args:?} failed ({}):\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(&node.cluster().log(), 30)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn logs_exec_port_forward_attach_and_cp_reach_the_node_agent() {
    let node = Node::start("e2e-streams", &[]);
    let c = node.cluster();
    c.ok_in(None, &["apply", "-f", "-"], Some(PODS));
    c.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);

    for minor in [33, 27] {
        logs(&node, minor);
        exec(&node, minor);
        port_forward(&node, minor);
        cp(&node, minor);
        attach(&node, minor);
    }
    previous_logs(&node);
}

fn logs(node: &Node, minor: u32) {
    node.wait_for("the web pod's first line", Duration::from_secs(10), || {
        ok(node, minor, &["logs", "web"], None).contains("web-started")
    });
    let all = ok(node, minor, &["logs", "web"], None);
    // stdout and stderr reach the log through separate pipes: either order.
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort();
    assert_eq!(lines, ["web-started", "web-warning"], "kubectl 1.{minor}");
    let last = format!("{}\n", all.lines().last().unwrap());
    assert_eq!(ok(node, minor, &["logs", "web", "--tail=1"], None), last);
    let stamped = ok(node, minor, &["logs", "web", "--timestamps"], None);
    assert!(
        stamped
            .lines()
            .all(|l| l.split(' ').next().is_some_and(|t| t.ends_with('Z'))),
        "{stamped}"
    );
    assert_eq!(
        ok(node, minor, &["logs", "web", "--limit-bytes=5"], None),
        &all[..5]
    );
    assert_eq!(
        ok(
            node,
            minor,
            &["logs", "web", "-c", "httpd", "--since=1h"],
            None
        ),
        all
    );

    // -f: a line written later arrives, and the stream ends with the container.
    let name = format!("follow-{minor}");
    node.cluster()
        .ok_in(None, &["apply", "-f", "-"], Some(&follow_pod(&name)));
    node.cluster().ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=60s",
    ]);
    let started = Instant::now();
    let followed = ok(node, minor, &["logs", "-f", &name], None);
    assert_eq!(
        followed, "one\ntwo\nthree\nfour-later\n",
        "kubectl 1.{minor}"
    );
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "it waited for the later line"
    );

    // Errors come back as Status objects.
    let out = kubectl(node, minor, &["logs", "web", "-c", "nope"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn exec(node: &Node, minor: u32) {
    assert_eq!(
        ok(
            node,
            minor,
            &["exec", "web", "--", "echo", "hi there"],
            None
        ),
        "hi there\n"
    );
    let out = kubectl(
        node,
        minor,
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(7), "kubectl 1.{minor}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("err"),
        "{out:?}"
    );
    // stdin, to its end.
    assert_eq!(
        ok(
            node,
            minor,
            &["exec", "-i", "web", "--", "cat"],
            Some("hi\nthere\n")
        ),
        "hi\nthere\n"
    );
    let big: String = (0..20_000).map(|i| format!("{i}\n")).collect();
    let counted = ok(
        node,
        minor,
        &["exec", "-i", "web", "--", "wc", "-c"],
        Some(&big),
    );
    assert_eq!(counted.trim(), big.len().to_string());
    // A command that does not exist.
    let out = kubectl(node, minor, &["exec", "web", "--", "no-such-command"], None);
    assert!(!out.status.success(), "{out:?}");
}

fn port_forward(node: &Node, minor: u32) {
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(common::kubectl_bin(Some(minor)))
        .arg("--kubeconfig")
        .arg(&node.cluster().kubeconfig)
        .args(["port-forward", "pod/web", &format!("{local}:8080")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let fetch = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", local))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    };
    let result = (|| {
        if !first.contains("Forwarding from") {
            return Err(format!("port-forward said {first:?}"));
        }
        // Two connections one after the other, each its own stream pair.
        for _ in 0..2 {
            let body = fetch().map_err(|e| e.to_string())?;
            if !body.contains("hello-through-port-forward") {
                return Err(format!("fetched {body:?}"));
            }
        }
        Ok(())
    })();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    if let Err(e) = result {
        panic!(
            "kubectl 1.{minor} port-forward: {e}\nstderr: {}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&node.cluster().log(), 30)
        );
    }
}

fn attach(node: &Node, minor: u32) {
    let name = format!("ticker-{minor}");
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},
        "spec":{{"restartPolicy":"Never","terminationGracePeriodSeconds":1,"containers":[{{"name":"main","image":"busybox",
        "command":["sh","-c","sleep 3; echo tick-1; echo tock >&2; sleep 1; echo tick-2; sleep 1"]}}]}}}}"#
    );
    node.cluster()
        .ok_in(None, &["apply", "-f", "-"], Some(&manifest));
    node.cluster().ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=60s",
    ]);
    let out = kubectl(node, minor, &["attach", &name], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tick-1\n") && stdout.contains("tick-2\n"),
        "kubectl 1.{minor} attach: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tock"),
        "{out:?}"
    );
}

fn cp(node: &Node, minor: u32) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.txt");
    let text = format!("copied by kubectl 1.{minor}\n");
    std::fs::write(&file, &text).unwrap();
    let src = file.to_str().unwrap();
    let dest = format!("web:/tmp/note-{minor}.txt");
    ok(node, minor, &["cp", src, &dest], None);
    assert_eq!(
        ok(
            node,
            minor,
            &[
                "exec",
                "web",
                "--",
                "cat",
                &format!("/tmp/note-{minor}.txt")
            ],
            None
        ),
        text
    );
    // And back out.
    let back = dir.path().join("back.txt");
    ok(node, minor, &["cp", &dest, back.to_str().unwrap()], None);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), text);
}

fn previous_logs(node: &Node) {
    node.wait_for(
        "the restarts pod to restart",
        Duration::from_secs(90),
        || {
            pod(node, "restarts")["status"]["containerStatuses"][0]["restartCount"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        },
    );
    for minor in [33, 27] {
        let previous = ok(node, minor, &["logs", "restarts", "--previous"], None);
        assert!(previous.starts_with("run-"), "{previous:?}");
        node.wait_for(
            "the restarted container's line",
            Duration::from_secs(10),
            || ok(node, minor, &["logs", "restarts"], None).starts_with("run-"),
        );
        let current = ok(node, minor, &["logs", "restarts"], None);
        assert_ne!(previous, current, "--previous shows the attempt before");
    }
}
