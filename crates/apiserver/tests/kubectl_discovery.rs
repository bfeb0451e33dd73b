//! The real kubectl against the discovery, OpenAPI and Table documents, served by a tiny
//! router over plain HTTP on 127.0.0.1. kubectl is the judge here: it must list resources,
//! explain fields and print a server-side table exactly as it does against Kubernetes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use apimachinery::resources::{BUILTIN, builtin};
use apiserver::discovery::{self, DiscoveryRoot};
use apiserver::{openapi, table};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// What the router saw and keeps: requests as `path accept`, PATCH requests as
/// `content-type query body`, and the deployments kubectl apply created.
#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<String>>,
    patches: Mutex<Vec<String>>,
    deployments: Mutex<HashMap<String, Value>>,
}

type Log = Arc<Shared>;

fn respond(code: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

fn json_response(v: &Value) -> Response {
    respond(StatusCode::OK, "application/json", v.to_string())
}

fn not_found() -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                        "message": "the server could not find the requested resource"});
    respond(
        StatusCode::NOT_FOUND,
        "application/json",
        status.to_string(),
    )
}

/// Two pods created five minutes before the request.
fn pods() -> Vec<Value> {
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let created = Timestamp::from_second(now - 300)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string();
    let pod = |name: &str, phase: &str, status: Value| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "creationTimestamp": created, "uid": name, "resourceVersion": "5"},
               "spec": {"containers": [{"name": "app", "image": "busybox"}], "nodeName": "node-1"},
               "status": {"phase": phase, "containerStatuses": [status]}})
    };
    vec![
        pod(
            "web-1",
            "Running",
            json!({"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}),
        ),
        pod(
            "web-2",
            "Pending",
            json!({"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}),
        ),
    ]
}

async fn handle(State(log): State<Log>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Ok(mut requests) = log.requests.lock() {
        requests.push(format!("{path} {accept}"));
    }
    if let Some(name) = path.strip_prefix("/apis/apps/v1/namespaces/default/deployments") {
        return deployments(&log, name.trim_start_matches('/'), req).await;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => json_response(
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}),
        ),
        ["api"] | ["apis"] => {
            let root = if parts[0] == "api" {
                DiscoveryRoot::Core
            } else {
                DiscoveryRoot::Groups
            };
            match discovery::wants_aggregated(&accept) {
                Some(v) => {
                    let doc = discovery::aggregated_discovery(root, v, BUILTIN);
                    respond(StatusCode::OK, v.content_type(), doc.to_string())
                }
                None if root == DiscoveryRoot::Core => {
                    json_response(&discovery::api_versions("127.0.0.1:6443"))
                }
                None => json_response(&discovery::api_group_list(BUILTIN)),
            }
        }
        ["api", v] => discovery::api_resource_list("", v, BUILTIN)
            .map_or_else(not_found, |d| json_response(&d)),
        ["apis", g, v] => discovery::api_resource_list(g, v, BUILTIN)
            .map_or_else(not_found, |d| json_response(&d)),
        ["openapi", ..] => match openapi::serve(&path, &accept, BUILTIN) {
            Some((content_type, body)) => respond(StatusCode::OK, content_type, body),
            None => not_found(),
        },
        ["api", "v1", "namespaces", "default", "pods"] => {
            let items = pods();
            if accept.contains("as=Table") {
                let refs: Vec<&Value> = items.iter().collect();
                let r = builtin("", "v1", "pods").expect("pods are built in");
                let include = table::IncludeObject::Metadata;
                json_response(&table::to_table(
                    r,
                    &refs,
                    include,
                    json!({"resourceVersion": "9"}),
                    SystemTime::now(),
                ))
            } else {
                json_response(
                    &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": items}),
                )
            }
        }
        _ => not_found(),
    }
}

/// Just enough of a deployments endpoint for client-side `kubectl apply`: create, get, patch.
async fn deployments(log: &Shared, name: &str, req: Request) -> Response {
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let Ok(mut stored) = log.deployments.lock() else {
        return not_found();
    };
    match (method.as_str(), name) {
        ("POST", "") => {
            let Ok(mut obj) = serde_json::from_slice::<Value>(&body) else {
                return not_found();
            };
            obj["metadata"]["resourceVersion"] = json!("1");
            obj["metadata"]["uid"] = json!("d1");
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            stored.insert(name, obj.clone());
            respond(StatusCode::CREATED, "application/json", obj.to_string())
        }
        ("GET", name) if stored.contains_key(name) => json_response(&stored[name]),
        ("PATCH", name) if stored.contains_key(name) => {
            if let Ok(mut patches) = log.patches.lock() {
                patches.push(format!(
                    "{content_type} {query} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            json_response(&stored[name])
        }
        _ => {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": format!("deployments.apps \"{name}\" not found"),
                "details": {"name": name, "group": "apps", "kind": "deployments"}});
            respond(
                StatusCode::NOT_FOUND,
                "application/json",
                status.to_string(),
            )
        }
    }
}

struct Fixture {
    server: String,
    log: Log,
    home: tempfile::TempDir,
}

async fn start() -> Fixture {
    let log: Log = Arc::default();
    let router = axum::Router::new().fallback(handle).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Fixture {
        server: format!("http://{addr}"),
        log,
        home: tempfile::tempdir().expect("temp dir"),
    }
}

/// The kubectl on PATH, or `kubectl.1.27`-style siblings of it.
fn kubectl_binary(version: Option<&str>) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    let Some(on_path) = on_path else {
        panic!("kubectl is not on PATH: this end-to-end test needs the real kubectl (1.27+)");
    };
    match version {
        None => on_path,
        Some(v) => {
            let real = std::fs::canonicalize(&on_path).unwrap_or(on_path);
            let sibling = real.with_file_name(format!("kubectl.{v}"));
            assert!(
                sibling.is_file(),
                "kubectl {v} is missing: expected {}",
                sibling.display()
            );
            sibling
        }
    }
}

impl Fixture {
    /// Whether the router saw a request (`path accept`) matching `pred`.
    fn saw(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.log
            .requests
            .lock()
            .map(|l| l.iter().any(|r| pred(r)))
            .unwrap_or(false)
    }

    /// Runs kubectl against the router with its own cache and no kubeconfig; returns stdout.
    async fn kubectl(&self, version: Option<&str>, args: &[&str]) -> String {
        self.kubectl_with_stderr(version, args).await.0
    }

    /// Like [`Fixture::kubectl`], also returning stderr (warnings).
    async fn kubectl_with_stderr(&self, version: Option<&str>, args: &[&str]) -> (String, String) {
        let bin = kubectl_binary(version);
        let cache = self
            .home
            .path()
            .join(format!("cache-{}", version.unwrap_or("default")));
        let mut cmd = Command::new(&bin);
        cmd.args(["--server", &self.server, "--cache-dir"])
            .arg(&cache)
            .args(args)
            .env("KUBECONFIG", self.home.path().join("no-kubeconfig"))
            .env("HOME", self.home.path());
        let output = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let requests = self
            .log
            .requests
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        assert!(
            output.status.success(),
            "{} {args:?} failed: {stderr}\nstdout: {stdout}\nrequests:\n{requests}",
            bin.display()
        );
        (stdout, stderr)
    }
}

fn line_with<'a>(out: &'a str, first_word: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(first_word))
        .unwrap_or_else(|| panic!("no {first_word} in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_and_versions_across_kubectl_versions() {
    let f = start().await;
    for version in [None, Some("1.27"), Some("1.33")] {
        let out = f.kubectl(version, &["api-resources"]).await;
        let header: Vec<&str> = out
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
            "{version:?}"
        );
        assert_eq!(
            line_with(&out, "pods")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["pods", "po", "v1", "true", "Pod"]
        );
        assert_eq!(
            line_with(&out, "deployments")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["deployments", "deploy", "apps/v1", "true", "Deployment"]
        );
        assert_eq!(
            line_with(&out, "clusterroles")
                .split_whitespace()
                .collect::<Vec<_>>(),
            [
                "clusterroles",
                "rbac.authorization.k8s.io/v1",
                "false",
                "ClusterRole"
            ]
        );
        assert!(
            !out.contains("pods/status"),
            "subresources are not resources"
        );
        let resources = out.lines().count() - 1;
        assert_eq!(
            resources,
            BUILTIN.len(),
            "{version:?} lists every built-in once:\n{out}"
        );
    }
    assert!(f.saw(|r| r.starts_with("/apis ") && r.contains("as=APIGroupDiscoveryList")));

    let out = f.kubectl(None, &["api-versions"]).await;
    let versions: Vec<&str> = out.lines().collect();
    for want in [
        "v1",
        "apps/v1",
        "batch/v1",
        "autoscaling/v2",
        "rbac.authorization.k8s.io/v1",
        "apiextensions.k8s.io/v1",
    ] {
        assert!(versions.contains(&want), "{want} in {versions:?}");
    }
    // Subresource-only group versions (autoscaling/v1 for scale) are not served groups.
    assert!(!versions.contains(&"autoscaling/v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_the_openapi_v3_documents() {
    let f = start().await;
    let out = f.kubectl(None, &["explain", "pods.spec.containers"]).await;
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["KIND:", "Pod"]),
        "{out}"
    );
    assert!(
        out.contains("FIELD: containers <[]Container>")
            || out.contains("RESOURCE: containers <[]Container>"),
        "{out}"
    );
    assert!(
        out.contains("List of containers belonging to the pod."),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("image") && l.contains("<string>")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("name") && l.contains("-required-")),
        "{out}"
    );

    let out = f
        .kubectl(None, &["explain", "deployment.spec.strategy"])
        .await;
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["GROUP:", "apps"]),
        "{out}"
    );
    assert!(out.contains("strategy <DeploymentStrategy>"), "{out}");
    assert!(
        out.contains("The deployment strategy to use to replace existing pods with new ones."),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("rollingUpdate")
                && l.contains("<RollingUpdateDeployment>")),
        "{out}"
    );

    let out = f
        .kubectl(Some("1.27"), &["explain", "deployment.spec.strategy"])
        .await;
    assert!(out.contains("DeploymentStrategy"), "kubectl 1.27:\n{out}");
    // The protobuf v2 document: kubectl 1.27 parses it eagerly, and this reads from it.
    let out = f
        .kubectl(
            None,
            &[
                "explain",
                "--output",
                "plaintext-openapiv2",
                "pods.spec.containers.ports",
            ],
        )
        .await;
    assert!(
        out.contains("RESOURCE: ports <[]Object>") || out.contains("ports <[]Object>"),
        "{out}"
    );
    assert!(out.contains("containerPort\t<integer> -required-"), "{out}");
    assert!(f.saw(|r| r.starts_with("/openapi/v3/apis/apps/v1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_prints_the_server_side_table() {
    let f = start().await;
    let out = f.kubectl(None, &["get", "pods", "-n", "default"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert_eq!(rows[1], ["web-1", "1/1", "Running", "0", "5m"], "{out}");
    assert_eq!(
        rows[2],
        ["web-2", "0/1", "ContainerCreating", "0", "5m"],
        "{out}"
    );
    let out = f
        .kubectl(None, &["get", "pods", "-n", "default", "-o", "wide"])
        .await;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert!(line_with(&out, "web-1").contains("node-1"), "{out}");
    assert!(f.saw(|r| r.contains("/pods ") && r.contains("as=Table")));
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: httpd, image: busybox:1.36}
      - {name: log, image: alpine:3.19}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_uses_server_side_validation_and_openapi_merge_keys() {
    let f = start().await;
    let manifest = f.home.path().join("web.yaml");
    std::fs::write(&manifest, DEPLOYMENT).expect("write manifest");
    let file = manifest.to_string_lossy().into_owned();
    let out = f.kubectl(None, &["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");

    std::fs::write(
        &manifest,
        DEPLOYMENT.replace("busybox:1.36", "busybox:1.37"),
    )
    .expect("write manifest");
    let (out, stderr) = f.kubectl_with_stderr(None, &["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(!stderr.contains("error calculating patch"), "{stderr}");
    assert!(
        !f.saw(|r| r.starts_with("/openapi/v2 ")),
        "kubectl 1.32 needs no v2 to apply"
    );
    let patches = f.log.patches.lock().map(|p| p.clone()).unwrap_or_default();
    let [patch] = patches.as_slice() else {
        panic!("one PATCH expected: {patches:?}")
    };
    assert!(
        patch.starts_with("application/strategic-merge-patch+json "),
        "{patch}"
    );
    // kubectl sends fieldValidation only when the PATCH operation of the v3 document lists it.
    assert!(patch.contains("fieldValidation=Strict"), "{patch}");
    // Merge keys: only the changed container, matched by name, with the list order.
    assert!(
        patch.contains(r#""$setElementOrder/containers":[{"name":"httpd"},{"name":"log"}]"#),
        "{patch}"
    );
    assert!(
        patch.contains(r#""containers":[{"image":"busybox:1.37","name":"httpd"}]"#),
        "{patch}"
    );
}
