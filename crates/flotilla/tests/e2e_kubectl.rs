//! End to end: the real binary, driven by the real kubectl.

mod common;

use common::Cluster;
use serde_json::Value;

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: httpd
        image: busybox:stable
        command: ["httpd", "-f", "-p", "80"]
        ports:
        - containerPort: 80
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef: {name: web-config, key: greeting}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn system_namespaces_and_version() {
    let c = Cluster::start(&[]);
    let out = c.ok(&["get", "namespaces"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(ns), "namespace {ns} missing from:\n{out}");
    }
    assert!(
        out.starts_with("NAME"),
        "kubectl did not print a table:\n{out}"
    );
    let v = c.ok(&["version", "-o", "json"]);
    assert_eq!(json(&v)["serverVersion"]["minor"], "33");
    let svc = json(&c.ok(&["get", "service", "kubernetes", "-o", "json"]));
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
}

#[test]
fn apply_reapply_and_read_back() {
    let c = Cluster::start(&[]);
    let out = c.ok_in(None, &["apply", "-f", "-"], Some(MANIFEST));
    for line in [
        "configmap/web-config created",
        "secret/web-secret created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let changed = MANIFEST
        .replace("replicas: 2", "replicas: 3")
        .replace("greeting: hello", "greeting: bonjour");
    let out = c.ok_in(None, &["apply", "-f", "-"], Some(&changed));
    assert!(out.contains("configmap/web-config configured"), "{out}");
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let d = json(&c.ok(&["get", "deployment", "web", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["metadata"]["generation"], 2,
        "a spec change bumps the generation"
    );
    assert_eq!(
        d["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults applied"
    );
    let svc = json(&c.ok(&["get", "service", "web", "-o", "json"]));
    let ip = svc["spec"]["clusterIP"].as_str().unwrap_or("");
    assert!(
        ip.starts_with("10.43.") && ip != "10.43.0.1",
        "service got cluster IP {ip:?}"
    );
    let cm = json(&c.ok(&["get", "configmap", "web-config", "-o", "json"]));
    assert_eq!(cm["data"]["greeting"], "bonjour");
    let secret = json(&c.ok(&["get", "secret", "web-secret", "-o", "json"]));
    assert_eq!(
        secret["data"]["password"], "czNjcmV0",
        "stringData is folded into data"
    );
}

#[test]
fn label_annotate_patch_replace_delete() {
    let c = Cluster::start(&[]);
    c.ok(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    c.ok(&["label", "configmap", "cfg", "tier=backend"]);
    c.ok(&["annotate", "configmap", "cfg", "owner=team-a"]);
    let out = c.ok(&["get", "configmaps", "-l", "tier=backend", "-o", "name"]);
    assert_eq!(out.trim(), "configmap/cfg");
    let out = c.ok(&["get", "configmaps", "-l", "tier!=backend", "-o", "name"]);
    assert!(!out.contains("configmap/cfg"), "{out}");
    c.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    c.ok(&[
        "patch",
        "configmap",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/a","value":"10"}]"#,
    ]);
    c.ok(&["patch", "configmap", "cfg", "-p", r#"{"data":{"c":"3"}}"#]);
    let cm = json(&c.ok(&["get", "configmap", "cfg", "-o", "json"]));
    assert_eq!(
        cm["data"],
        serde_json::json!({"a": "10", "b": "2", "c": "3"})
    );
    assert_eq!(cm["metadata"]["annotations"]["owner"], "team-a");
    // A replace with a stale resourceVersion is refused with a conflict.
    let mut stale = cm.clone();
    stale["metadata"]["resourceVersion"] = Value::String("1".into());
    let err = c.fails(&["replace", "-f", "-"], Some(&stale.to_string()));
    assert!(err.contains("the object has been modified"), "{err}");
    let mut fresh = cm.clone();
    fresh["data"]["d"] = Value::String("4".into());
    c.ok_in(None, &["replace", "-f", "-"], Some(&fresh.to_string()));
    c.ok(&["delete", "configmap", "cfg", "--wait"]);
    let err = c.fails(&["get", "configmap", "cfg"], None);
    assert!(err.contains("configmaps \"cfg\" not found"), "{err}");
}

#[test]
fn invalid_objects_are_refused_naming_the_field() {
    let c = Cluster::start(&[]);
    let bad_name = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n";
    let err = c.fails(&["apply", "-f", "-"], Some(bad_name));
    assert!(
        err.contains("metadata.name") && err.contains("Invalid value: \"Bad_Name\""),
        "{err}"
    );
    let no_image =
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n";
    let err = c.fails(&["apply", "-f", "-"], Some(no_image));
    assert!(err.contains("spec.containers[0].image"), "{err}");
    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\ndatta:\n  a: b\n";
    let err = c.fails(&["create", "-f", "-"], Some(unknown));
    assert!(err.contains("datta"), "unknown field not named: {err}");
    let err = c.fails(&["create", "namespace", "bad_ns"], None);
    assert!(err.contains("metadata.name"), "{err}");
}

#[test]
fn pagination_and_selectors() {
    let c = Cluster::start(&[]);
    let mut many = String::new();
    for i in 0..25 {
        many.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\n  labels: {{batch: \"{}\"}}\n", i % 2));
    }
    c.ok_in(None, &["create", "-f", "-"], Some(&many));
    let out = c.ok(&["get", "configmaps", "--chunk-size=7", "-o", "name"]);
    let names: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("configmap/cm-"))
        .collect();
    assert_eq!(names.len(), 25, "{out}");
    let out = c.ok(&[
        "get",
        "configmaps",
        "-l",
        "batch=1",
        "--chunk-size=3",
        "-o",
        "name",
    ]);
    assert_eq!(out.lines().count(), 12, "{out}");
    let out = c.ok(&[
        "get",
        "configmaps",
        "--field-selector",
        "metadata.name=cm-07",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "configmap/cm-07");
}

#[test]
fn watch_sees_changes() {
    let c = Cluster::start(&[]);
    let mut cmd = std::process::Command::new(common::kubectl_bin(None));
    cmd.arg("--kubeconfig").arg(&c.kubeconfig).args([
        "get",
        "configmaps",
        "--watch",
        "--output-watch-events",
        "-o",
        "name",
    ]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut watcher = cmd.spawn().expect("kubectl watch");
    let stdout = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The watch is established once the first list (empty) has been printed; a
    // creation after it must arrive as an event.
    c.ok(&["create", "configmap", "watched", "--from-literal=a=1"]);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(line);
            if seen.iter().any(|l| l.contains("configmap/watched")) {
                break;
            }
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(
        seen.iter().any(|l| l.contains("configmap/watched")),
        "watch printed {seen:?}"
    );
}

#[test]
fn older_and_newer_kubectl_work() {
    let c = Cluster::start(&[]);
    for minor in [27, 33] {
        let out = c.ok_in(Some(minor), &["get", "namespaces"], None);
        assert!(out.contains("kube-system"), "kubectl 1.{minor}: {out}");
        let name = format!("from-{minor}");
        let cm =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n");
        c.ok_in(Some(minor), &["apply", "-f", "-"], Some(&cm));
        let out = c.ok_in(
            Some(minor),
            &["get", "configmap", &name, "-o", "jsonpath={.data.a}"],
            None,
        );
        assert_eq!(out, "b");
    }
}

#[test]
fn restart_keeps_objects_and_credentials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let c = Cluster::start_in(data.clone(), &[]);
    c.ok(&["create", "configmap", "survivor", "--from-literal=a=1"]);
    let ca_before = std::fs::read(data.join("tls/server-ca.crt")).expect("CA written");
    let token_before = std::fs::read_to_string(data.join("token")).expect("token written");
    c.stop();
    let c2 = Cluster::start_in(data.clone(), &[]);
    let out = c2.ok(&["get", "configmap", "survivor", "-o", "name"]);
    assert_eq!(out.trim(), "configmap/survivor");
    assert_eq!(
        std::fs::read(data.join("tls/server-ca.crt")).expect("CA"),
        ca_before,
        "CA regenerated"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("token")).expect("token"),
        token_before,
        "token regenerated"
    );
}

/// A watch resumed from before a restart (older than the new watch cache's
/// history) gets what Kubernetes sends: 200 and one ERROR event with the 410
/// Expired status, on which clients relist. An HTTP 410 instead left kube-rs
/// watchers (the node agent's) retrying the same watch forever.
#[test]
fn a_watch_from_before_a_restart_ends_with_an_expired_event() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let c = Cluster::start_in(data.clone(), &[]);
    let created = c.ok(&[
        "create",
        "configmap",
        "old",
        "--from-literal=a=1",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    c.ok(&["create", "configmap", "newer", "--from-literal=a=1"]);
    c.stop();
    let c2 = Cluster::start_in(data, &[]);
    let out = c2.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}&timeoutSeconds=5",
            created.trim()
        ),
    ]);
    let event: Value = serde_json::from_str(out.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(event["type"], "ERROR", "{out}");
    assert_eq!(event["object"]["code"], 410, "{out}");
    assert_eq!(event["object"]["reason"], "Expired", "{out}");
}

#[test]
fn server_side_apply_tracks_owners_and_conflicts() {
    let c = Cluster::start(&[]);
    let out = c.ok_in(None, &["apply", "--server-side", "-f", "-"], Some(MANIFEST));
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let managers = c.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.metadata.managedFields[?(@.operation==\"Apply\")].manager}",
    ]);
    // The deployment controller's status updates have a manager of their own.
    assert_eq!(managers.trim(), "kubectl");
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
        "--field-manager=autoscaler",
    ]);
    let err = c.fails(&["apply", "--server-side", "-f", "-"], Some(MANIFEST));
    assert!(
        err.contains("conflict with \"autoscaler\"") && err.contains(".spec.replicas"),
        "{err}"
    );
    c.ok_in(
        None,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(MANIFEST),
    );
    let replicas = c.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "2");
}

#[test]
fn access_is_checked_per_user() {
    let c = Cluster::start(&[]);
    c.ok_in(
        None,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: bob\n"),
    );
    let req = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}"#;
    let file = c.data.join("tokenrequest.json");
    std::fs::write(&file, req).expect("write");
    let out = c.ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/serviceaccounts/bob/token",
        "-f",
        file.to_str().expect("path"),
    ]);
    let token = json(&out)["status"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    // A kubeconfig for bob: the admin's cluster entry with bob's token as the user.
    let mut cfg = json(&c.ok(&["config", "view", "--raw", "-o", "json"]));
    cfg["users"] = serde_json::json!([{"name": "default", "user": {"token": token}}]);
    let bob_config = c.data.join("bob.kubeconfig");
    std::fs::write(&bob_config, cfg.to_string()).expect("write kubeconfig");
    let as_bob = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::kubectl_bin(None));
        cmd.arg("--kubeconfig").arg(&bob_config).args(args);
        cmd.output().expect("kubectl")
    };
    let out = as_bob(&["get", "pods"]);
    assert!(!out.status.success(), "bob listed pods without rights");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"User "system:serviceaccount:default:bob" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{err}"
    );
    // `auth can-i` answers "no" with exit status 1.
    let out = c.kubectl(&[
        "auth",
        "can-i",
        "list",
        "pods",
        "--as=system:serviceaccount:default:bob",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("no"),
        "{out:?}"
    );
    c.ok(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--serviceaccount=default:bob",
    ]);
    let out = as_bob(&["get", "pods"]);
    assert!(
        out.status.success(),
        "bob with view could not list pods: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_bob(&["create", "configmap", "x"]);
    assert!(!out.status.success(), "view must not allow create");
    let rules = as_bob(&["auth", "can-i", "--list", "-n", "default"]);
    let listed = String::from_utf8_lossy(&rules.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{listed}"
    );
    assert_eq!(
        c.ok(&["auth", "can-i", "create", "deployments"]).trim(),
        "yes"
    );
    let anonymous = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/api/v1/namespaces", server_url(&c)))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");
}

fn server_url(c: &Cluster) -> String {
    let cfg = std::fs::read_to_string(&c.kubeconfig).expect("kubeconfig");
    cfg.lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server line")
        .trim()
        .to_string()
}

#[test]
fn scale_describe_explain_dry_run() {
    let c = Cluster::start(&[]);
    c.ok_in(None, &["apply", "-f", "-"], Some(MANIFEST));
    c.ok(&["scale", "deployment", "web", "--replicas=4"]);
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "4"
    );
    let out = c.ok(&["describe", "deployment", "web"]);
    assert!(
        out.contains("Replicas:") && out.contains("busybox:stable"),
        "{out}"
    );
    let out = c.ok(&["explain", "pods.spec.containers.image"]);
    assert!(out.contains("FIELD: image <string>"), "{out}");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n";
    c.ok_in(None, &["apply", "--dry-run=server", "-f", "-"], Some(cm));
    let err = c.fails(&["get", "configmap", "dry"], None);
    assert!(err.contains("not found"), "{err}");
    let out = c.ok(&["get", "deployments", "-o", "wide"]);
    assert!(out.contains("CONTAINERS") && out.contains("httpd"), "{out}");
}

#[test]
fn namespace_deletion_removes_its_contents() {
    let c = Cluster::start(&[]);
    c.ok(&["create", "namespace", "doomed"]);
    c.ok(&[
        "create",
        "configmap",
        "inside",
        "-n",
        "doomed",
        "--from-literal=a=1",
    ]);
    c.ok(&[
        "create",
        "deployment",
        "inside",
        "-n",
        "doomed",
        "--image=busybox",
    ]);
    let err = c.fails(&["create", "namespace", "Doomed"], None);
    assert!(err.contains("metadata.name"), "{err}");
    c.ok(&[
        "delete",
        "namespace",
        "doomed",
        "--wait=true",
        "--timeout=60s",
    ]);
    let err = c.fails(&["get", "namespace", "doomed"], None);
    assert!(err.contains("not found"), "{err}");
    let out = c.ok(&["get", "configmaps", "-n", "doomed", "-o", "name"]);
    assert!(out.trim().is_empty(), "contents survived: {out}");
}

#[test]
fn server_dry_run_deletes_and_scales_nothing_with_old_and_new_kubectl() {
    let c = Cluster::start(&[]);
    c.ok_in(None, &["apply", "-f", "-"], Some(MANIFEST));
    c.ok(&["create", "namespace", "d2"]);
    c.ok(&["create", "configmap", "y", "-n", "d2", "--from-literal=a=1"]);
    for minor in [Some(27), None] {
        let out = c.ok_in(
            minor,
            &["delete", "configmap", "y", "-n", "d2", "--dry-run=server"],
            None,
        );
        assert!(out.contains("(server dry run)"), "{out}");
        c.ok_in(
            minor,
            &["delete", "namespace", "d2", "--dry-run=server"],
            None,
        );
        c.ok_in(
            minor,
            &[
                "scale",
                "deployment",
                "web",
                "--replicas=5",
                "--dry-run=server",
            ],
            None,
        );
    }
    assert_eq!(
        c.ok(&["get", "namespace", "d2", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );
    c.ok(&["get", "configmap", "y", "-n", "d2"]);
    assert_eq!(
        c.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let err = c.fails(&["delete", "namespace", ns, "--wait=false"], None);
        assert!(
            err.contains("this namespace may not be deleted"),
            "{ns}: {err}"
        );
    }
    // Unknown fields are dropped with a warning kubectl prints (it asks for
    // fieldValidation=Strict only with --validate=strict, its default on create).
    let pod = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odd\n  foo: bar\ndata: {a: b}\n";
    let out = c.kubectl_v(None, &["create", "--validate=warn", "-f", "-"], Some(pod));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown field \"metadata.foo\""),
        "{stderr}"
    );
    let err = c.fails(&["create", "-f", "-"], Some(&pod.replace("odd", "odd2")));
    assert!(err.contains("unknown field \"metadata.foo\""), "{err}");
}
