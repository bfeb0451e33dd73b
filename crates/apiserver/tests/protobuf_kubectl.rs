//! Real kubectl protobuf request bodies, decoded by `apiserver::protobuf::decode`, must
//! equal the JSON kubectl itself prints for the same command with `--dry-run=client -o json`.
//! A tiny router on 127.0.0.1 serves discovery, records every POST body and answers with the
//! decoded object, so kubectl sees a normal create.

use std::process::Command;
use std::sync::{Arc, Mutex};

use apimachinery::resources::BUILTIN;
use apiserver::discovery::{self, DiscoveryRoot};
use apiserver::protobuf;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

/// One POST as received: path, content type, body.
type Post = (String, String, Vec<u8>);

#[derive(Default)]
struct Shared {
    posts: Mutex<Vec<Post>>,
}

fn respond(code: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    respond(code, "application/json", v.to_string())
}

fn not_found() -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found"});
    json_response(StatusCode::NOT_FOUND, &status)
}

fn header_text(req: &Request, name: header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The answer to a create: the decoded object, or a Status carrying the decode error.
fn created(path: &str, decoded: Result<Value, String>) -> Response {
    match decoded {
        Ok(mut object) => {
            // What kubectl reads back from these two kinds' responses.
            if path.ends_with("/token") {
                object["status"] = json!({"token": "t0k3n", "expirationTimestamp": null});
            } else if path.ends_with("selfsubjectaccessreviews") {
                object["status"] = json!({"allowed": true});
            }
            json_response(StatusCode::CREATED, &object)
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "code": 400, "message": e}),
        ),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let accept = header_text(&req, header::ACCEPT);
    let content_type = header_text(&req, header::CONTENT_TYPE);
    if req.method() == axum::http::Method::POST {
        let body = axum::body::to_bytes(req.into_body(), 3 << 20)
            .await
            .unwrap_or_default();
        let decoded = if content_type == protobuf::CONTENT_TYPE {
            protobuf::decode(&body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&body).map_err(|e| e.to_string())
        };
        if let Ok(mut posts) = shared.posts.lock() {
            posts.push((path.clone(), content_type, body.to_vec()));
        }
        return created(&path, decoded);
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0"}),
        ),
        ["api"] | ["apis"] => {
            let root = if path == "/api" {
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
                    json_response(StatusCode::OK, &discovery::api_versions("127.0.0.1"))
                }
                None => json_response(StatusCode::OK, &discovery::api_group_list(BUILTIN)),
            }
        }
        ["api", v] => discovery::api_resource_list("", v, BUILTIN)
            .map_or_else(not_found, |d| json_response(StatusCode::OK, &d)),
        ["apis", g, v] => discovery::api_resource_list(g, v, BUILTIN)
            .map_or_else(not_found, |d| json_response(StatusCode::OK, &d)),
        _ => not_found(),
    }
}

struct Fixture {
    server: String,
    shared: Arc<Shared>,
    home: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        let shared = Arc::<Shared>::default();
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Fixture {
            server: format!("http://{addr}"),
            shared,
            home: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs kubectl against the router with its own cache and no kubeconfig; returns stdout.
    async fn kubectl(&self, args: &[&str]) -> String {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("kubectl"))
                .find(|p| p.is_file())
        });
        let Some(bin) = on_path else {
            panic!("kubectl is not on PATH: this test needs the real kubectl (1.32)");
        };
        let mut cmd = Command::new(&bin);
        cmd.args(["--server", &self.server, "-n", "default", "--cache-dir"])
            .arg(self.home.path().join("cache"))
            .args(args)
            .env("KUBECONFIG", self.home.path().join("no-kubeconfig"))
            .env("HOME", self.home.path());
        let output = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("join")
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}\nstdout: {stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs a create command and returns the one POST it made, decoded.
    async fn posted(&self, args: &[&str]) -> (String, Value) {
        let before = self.shared.posts.lock().map(|p| p.len()).unwrap_or(0);
        self.kubectl(args).await;
        let posts = self.shared.posts.lock().expect("posts");
        let new = posts.get(before..).unwrap_or_default();
        let [(path, content_type, body)] = new else {
            panic!("kubectl {args:?} made {} POSTs, expected 1", new.len());
        };
        assert_eq!(
            content_type, "application/vnd.kubernetes.protobuf",
            "kubectl {args:?} did not send protobuf to {path}"
        );
        match protobuf::decode(body) {
            Ok(v) => (path.clone(), v),
            Err(e) => panic!("kubectl {args:?}: {e}\nbody: {body:x?}"),
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_protobuf_bodies_decode_to_kubectls_own_json() {
    let fx = Fixture::start().await;
    // Binary file contents go to ConfigMap.binaryData (map<string, bytes>).
    let binary = fx.home.path().join("blob.bin");
    std::fs::write(&binary, [0xff, 0x00, 0xfe]).expect("write blob");
    let from_file = format!(
        "create configmap cm2 --from-file=blob={} --from-literal=t=x",
        binary.display()
    );
    let commands = [
        "create configmap cm1 --from-literal=a=1 --from-literal=b=2",
        &from_file,
        "create secret generic s1 --from-literal=p=x --type=Opaque",
        "create secret docker-registry reg1 --docker-server=r.io --docker-username=u \
         --docker-password=p",
        "create deployment d1 --image=busybox --replicas=2 --port=80",
        "create deployment d0 --image=busybox --replicas=0",
        "create namespace n1",
        "create service clusterip svc1 --tcp=80:8080",
        "create service nodeport svc2 --tcp=80:http --node-port=30080",
        "create job j1 --image=busybox",
        "create cronjob cj1 --image=busybox --schedule=@hourly",
        "create serviceaccount sa1",
        "create role r1 --verb=get,list --resource=pods,deployments.apps",
        "create rolebinding rb1 --role=r1 --serviceaccount=default:sa1",
        "create clusterrole cr1 --verb=get --non-resource-url=/healthz",
        "create clusterrolebinding crb1 --clusterrole=cr1 --user=u1 --group=g1",
        "create quota q1 --hard=cpu=500m,memory=1Gi,pods=2 --scopes=NotTerminating",
        "create priorityclass pc1 --value=1000 --preemption-policy=Never",
        "create poddisruptionbudget pdb1 --selector=app=x --min-available=50%",
        "create poddisruptionbudget pdb2 --selector=app=y --max-unavailable=1",
        "create ingress ing1 --rule=example.com/p*=svc1:80 --class=c1",
    ];
    let mut failures = Vec::new();
    for command in commands {
        let args: Vec<&str> = command.split_whitespace().collect();
        let (path, decoded) = fx.posted(&args).await;
        let dry = [&args[..], &["--dry-run=client", "-o", "json"]].concat();
        let expected: Value = serde_json::from_str(&fx.kubectl(&dry).await).expect("kubectl JSON");
        if decoded != expected {
            failures.push(format!(
                "kubectl {args:?} POST {path}\ndecoded: {}\nkubectl -o json: {}",
                pretty(&decoded),
                pretty(&expected)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_subresource_and_review_bodies() {
    let fx = Fixture::start().await;

    // TokenRequest to serviceaccounts/default/token; kubectl prints the token it got back.
    let (path, token) = fx
        .posted(&[
            "create",
            "token",
            "default",
            "--audience=a1",
            "--duration=1h",
        ])
        .await;
    assert_eq!(
        path,
        "/api/v1/namespaces/default/serviceaccounts/default/token"
    );
    assert_eq!(
        token,
        json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": ["a1"], "expirationSeconds": 3600},
            "status": {"token": "", "expirationTimestamp": null}
        }),
        "{}",
        pretty(&token)
    );

    // `kubectl auth can-i` asks with a SelfSubjectAccessReview.
    let (path, review) = fx.posted(&["auth", "can-i", "create", "pods"]).await;
    assert_eq!(
        path,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    );
    assert_eq!(
        review,
        json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
            "status": {"allowed": false}
        }),
        "{}",
        pretty(&review)
    );
}
