//! One API server started as `flotilla server` starts it, over a temp SQLite
//! store, with client certificates for an admin, node n1 and a user without
//! roles; curl is the client, as in `security_tls.rs`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::{Running, Server, ServerConfig};
use base64::Engine;
use serde_json::{Value, json};

/// A started server, its files, and one client certificate per identity.
pub struct Cluster {
    running: Running,
    dir: tempfile::TempDir,
    url: String,
    ca: PathBuf,
}

/// Who sends a request.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Admin,
    Node1,
    /// A user with no roles of its own.
    Alice,
    Bearer(&'a str),
}

pub const NODE1: &str = "system:node:n1";

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ServerConfig {
            data_dir: dir.path().join("data"),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https_port: 0,
            datastore_endpoint: None,
            token: Some("node-authz-test-token".into()),
            node_name: "server".into(),
            node_ip: None,
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".parse().expect("cidr"),
            cluster_dns: Ipv4Addr::new(10, 43, 0, 10),
        };
        let running = Server::start(config).await.expect("server starts");
        let url = running.server.server_url.clone();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, running.server.pki.ca_pem()).expect("ca");
        for (file, user, groups) in [
            ("admin", "system:admin", &["system:masters"][..]),
            ("node1", NODE1, &["system:nodes"][..]),
            ("alice", "alice", &[][..]),
        ] {
            let (cert, key) = running
                .server
                .pki
                .issue_client_cert(user, groups)
                .expect("client cert");
            std::fs::write(dir.path().join(format!("{file}.crt")), cert).expect("cert");
            std::fs::write(dir.path().join(format!("{file}.key")), key).expect("key");
        }
        let cluster = Cluster {
            running,
            dir,
            url,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, _) = cluster.call(As::Admin, "GET", "/readyz", None).await;
            if code == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cluster
    }

    fn cert(&self, name: &str) -> [String; 4] {
        let path = |ext: &str| self.dir.path().join(format!("{name}.{ext}"));
        [
            "--cert".into(),
            path("crt").display().to_string(),
            "--key".into(),
            path("key").display().to_string(),
        ]
    }

    /// Sends one request and returns the status code and the JSON body (Null
    /// when the body is not JSON). PATCH bodies are merge patches.
    pub async fn call(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "--max-time".into(),
            "20".into(),
            "--cacert".into(),
            self.ca.display().to_string(),
            "-X".into(),
            method.into(),
            "-w".into(),
            "\n%{http_code}".into(),
        ];
        match who {
            As::Admin => args.extend(self.cert("admin")),
            As::Node1 => args.extend(self.cert("node1")),
            As::Alice => args.extend(self.cert("alice")),
            As::Bearer(token) => {
                args.push("-H".into());
                args.push(format!("Authorization: Bearer {token}"));
            }
        }
        if let Some(body) = body {
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            args.push("-H".into());
            args.push(format!("Content-Type: {content_type}"));
            args.push("--data-binary".into());
            args.push(body.to_string());
        }
        args.push(format!("{}{path}", self.url));
        let out = tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .expect("curl runs")
        })
        .await
        .expect("curl task");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code = code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "{method} {path}: no status from curl: {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Like [`Cluster::call`], asserting the status code; returns the body.
    pub async fn expect(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<Value>,
        code: u16,
    ) -> Value {
        let (got, body) = self.call(who, method, path, body).await;
        assert_eq!(got, code, "{method} {path}: {body}");
        body
    }

    pub async fn admin_create(&self, path: &str, body: Value) -> Value {
        self.expect(As::Admin, "POST", path, Some(body), 201).await
    }

    /// Namespaces `team` and `ops`; nodes n1 (with a pod CIDR) and n2; pod
    /// `team/web` on n1 (service account `app`, secret `web-secret` as a volume,
    /// configmap `web-config` in env) and pod `team/far` on n2 (service account
    /// `builder`, secret `far-secret` through envFrom); an unreferenced secret;
    /// and `kube-system/root`, a cluster-admin service account.
    pub async fn populate(&self) {
        for ns in ["team", "ops"] {
            self.admin_create("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
                .await;
        }
        self.admin_create(
            "/api/v1/nodes",
            json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24"]}}),
        )
        .await;
        self.admin_create("/api/v1/nodes", json!({"metadata": {"name": "n2"}}))
            .await;
        for name in ["web-secret", "far-secret", "unused"] {
            self.admin_create(
                "/api/v1/namespaces/team/secrets",
                json!({"metadata": {"name": name}, "stringData": {"k": "v"}}),
            )
            .await;
        }
        self.admin_create(
            "/api/v1/namespaces/team/configmaps",
            json!({"metadata": {"name": "web-config"}, "data": {"k": "v"}}),
        )
        .await;
        for (ns, name) in [
            ("team", "app"),
            ("team", "builder"),
            ("kube-system", "root"),
        ] {
            self.admin_create(
                &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
                json!({"metadata": {"name": name}}),
            )
            .await;
        }
        self.admin_create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json!({
                "metadata": {"name": "root"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "root", "namespace": "kube-system"}],
            }),
        )
        .await;
        self.admin_create("/api/v1/namespaces/team/pods", web_pod())
            .await;
        self.admin_create(
            "/api/v1/namespaces/team/pods",
            json!({
                "metadata": {"name": "far"},
                "spec": {
                    "nodeName": "n2",
                    "serviceAccountName": "builder",
                    "containers": [{"name": "c", "image": "busybox", "envFrom": [{"secretRef": {"name": "far-secret"}}]}],
                },
            }),
        )
        .await;
    }

    pub async fn uid(&self, path: &str) -> String {
        let obj = self.expect(As::Admin, "GET", path, None, 200).await;
        obj["metadata"]["uid"].as_str().expect("uid").to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.running.task.abort();
    }
}

pub fn web_pod() -> Value {
    json!({
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": "n1",
            "serviceAccountName": "app",
            "containers": [{
                "name": "c",
                "image": "busybox",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "k"}}}],
            }],
            "volumes": [{"name": "s", "secret": {"secretName": "web-secret"}}],
        },
    })
}

pub fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or("")
}

pub fn token_request(pod: Option<(&str, &str)>) -> Value {
    let mut spec = json!({"audiences": []});
    if let Some((name, uid)) = pod {
        spec["boundObjectRef"] =
            json!({"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid});
    }
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
}

/// The `kubernetes.io` claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["kubernetes.io"].clone()
}

pub async fn whoami(c: &Cluster, token: &str) -> (u16, Value) {
    c.call(
        As::Bearer(token),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
    )
    .await
}
