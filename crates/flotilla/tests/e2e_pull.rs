//! End to end: the node agent pulls a pod's image from a registry (Debian's
//! `docker-registry`, plain HTTP on the test's own loopback, passed as
//! `--insecure-registry`), reports `Pulling` and `Pulled`, and shows a
//! missing image as `ErrImagePull` then `ImagePullBackOff`. Needs root.

mod common;
mod node;

use std::time::Duration;

use node::Node;
use serde_json::Value;
use testkit::registry::Registry;

/// The test's network namespace is its own: this port is free in it.
const REGISTRY_PORT: u16 = 5000;

fn pods(registry: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: pulled}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {registry}/lib/busybox:1
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: missing}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {registry}/lib/missing:1
---
apiVersion: v1
kind: Pod
metadata: {{name: never}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {registry}/lib/busybox:2
    imagePullPolicy: Never
"#
    )
}

fn waiting_reason(node: &Node, pod: &str) -> Option<String> {
    let out = node.cluster().ok(&["get", "pod", pod, "-o", "json"]);
    let pod: Value = serde_json::from_str(&out).expect("pod json");
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .map(str::to_owned)
}

/// `(reason, message)` of the events about `pod`.
fn events(node: &Node, pod: &str) -> Vec<(String, String)> {
    let out = node.cluster().ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).expect("events json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn pods_pull_their_images_and_show_pull_errors() {
    let registry = format!("127.0.0.1:{REGISTRY_PORT}");
    let node = Node::start("e2e-pull", &["--insecure-registry", &registry]);
    // Started from this thread, which Node::start moved into the node's
    // network namespace: the registry shares the server's loopback.
    let reg = Registry::start_on(REGISTRY_PORT).expect("starting docker-registry");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("busybox.tar");
    testkit::image::busybox_oci_archive(&archive, "busybox:1").expect("busybox archive");
    reg.push_oci_archive(&archive, "lib/busybox:1", &[])
        .expect("pushing busybox");

    let c = node.cluster();
    c.ok_in(None, &["apply", "-f", "-"], Some(&pods(&registry)));
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/pulled",
        "--timeout=90s",
    ]);
    let image = format!("{registry}/lib/busybox:1");
    let mut seen = Vec::new();
    node.wait_for("Pulling and Pulled events", Duration::from_secs(20), || {
        seen = events(&node, "pulled");
        seen.iter()
            .any(|(r, m)| r == "Pulled" && m.starts_with("Successfully pulled"))
    });
    assert!(
        seen.contains(&("Pulling".into(), format!("Pulling image \"{image}\""))),
        "{seen:?}"
    );
    let (_, pulled) = seen.iter().find(|(r, _)| r == "Pulled").unwrap();
    assert!(
        pulled.starts_with(&format!("Successfully pulled image \"{image}\" in "))
            && pulled.contains("including waiting). Image size: ")
            && pulled.ends_with(" bytes."),
        "{pulled}"
    );

    // The missing image: ErrImagePull, then ImagePullBackOff.
    node.wait_for("ErrImagePull", Duration::from_secs(60), || {
        waiting_reason(&node, "missing").as_deref() == Some("ErrImagePull")
    });
    node.wait_for("ImagePullBackOff", Duration::from_secs(30), || {
        waiting_reason(&node, "missing").as_deref() == Some("ImagePullBackOff")
    });
    let seen = events(&node, "missing");
    assert!(
        seen.iter().any(|(r, m)| r == "Failed"
            && m.starts_with("Failed to pull image")
            && m.contains("not found")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(r, _)| r == "BackOff"), "{seen:?}");

    // Never, and not present.
    node.wait_for("ErrImageNeverPull", Duration::from_secs(30), || {
        waiting_reason(&node, "never").as_deref() == Some("ErrImageNeverPull")
    });

    c.ok(&[
        "delete",
        "pod",
        "pulled",
        "missing",
        "never",
        "--timeout=60s",
    ]);
    drop(reg);
}

/// The images the node reports in its status, by name.
fn node_images(node: &Node) -> Vec<String> {
    let out = node
        .cluster()
        .ok(&["get", "node", &node.name, "-o", "json"]);
    let n: Value = serde_json::from_str(&out).expect("node json");
    n["status"]["images"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn unused_pulled_images_are_removed_under_disk_pressure() {
    let registry = format!("127.0.0.1:{REGISTRY_PORT}");
    // A threshold no disk meets: the node is under disk pressure at once.
    let node = Node::start(
        "e2e-imagegc",
        &[
            "--insecure-registry",
            &registry,
            "--eviction-hard",
            "memory.available<1Mi,nodefs.available<100%",
        ],
    );
    let reg = Registry::start_on(REGISTRY_PORT).expect("starting docker-registry");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("gc.tar");
    // Another config than the imported busybox's, so another image.
    testkit::image::busybox_image()
        .expect("busybox image")
        .env(&["FLAVOUR=reclaimable"])
        .write_oci_archive(&archive, "gc:1")
        .expect("archive");
    reg.push_oci_archive(&archive, "lib/gc:1", &[])
        .expect("pushing");
    let image = format!("{registry}/lib/gc:1");
    let pod = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: once}}
spec:
  restartPolicy: Never
  tolerations: [{{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}}]
  containers:
  - {{name: main, image: "{image}", command: ["true"]}}
"#
    );
    let c = node.cluster();
    c.ok_in(None, &["apply", "-f", "-"], Some(&pod));
    node.wait_for(
        "the pulled image in the node's status",
        Duration::from_secs(60),
        || node_images(&node).contains(&image),
    );
    // Once no container uses it, it goes; the imported (pinned) busybox stays.
    c.ok(&["delete", "pod", "once", "--timeout=60s"]);
    node.wait_for(
        "the unused image to be removed",
        Duration::from_secs(60),
        || !node_images(&node).contains(&image),
    );
    assert!(
        node_images(&node)
            .iter()
            .any(|n| n.contains("library/busybox")),
        "{:?}",
        node_images(&node)
    );
    drop(reg);
}
