//! Starting the API server: data dir, store, certificates, kubeconfig, the watch
//! cache, bootstrap objects, and the one HTTP entry point every request goes through
//! (authentication → authorization → routing).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query as AxumQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use store::Store;

use crate::alloc::Cidr;
use crate::auth::{Attributes, Authenticator, Authorizer, Decision, UserInfo};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pki::{Pki, ServerSans};
use crate::rest::{Api, MAX_BODY_BYTES, Query, request};
use crate::tls::PeerCertificate;

/// What `flotilla server` was asked to run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub https_port: u16,
    pub datastore_endpoint: Option<String>,
    pub token: Option<String>,
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
    pub cluster_cidr: String,
    pub service_cidr: Cidr,
    pub cluster_dns: Ipv4Addr,
}

/// Shared by every request.
pub struct Server {
    pub config: ServerConfig,
    pub pki: Pki,
    pub authn: Arc<Authenticator>,
    pub authz: Arc<Authorizer>,
    /// Set once the store answered and the cache is loaded; until then resource
    /// requests get 503 and /readyz says why.
    pub api: OnceLock<Arc<Api>>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub server_url: String,
    /// TLS towards node agents, with the kubelet client certificate.
    kubelet_tls: OnceLock<Arc<rustls::ClientConfig>>,
}

/// A started server: where it listens, and the task serving it.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Arc<Server>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn read_or_create_token(dir: &Path, given: Option<&str>) -> anyhow::Result<String> {
    let path = dir.join("token");
    if let Some(t) = given {
        crate::pki::write_atomic(&path, t.as_bytes(), 0o600)?;
        return Ok(t.to_string());
    }
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    // The secret alone; `write_secure_token` adds the CA hash once the CA is known.
    let token = uuid::Uuid::new_v4().simple().to_string();
    crate::pki::write_atomic(&path, token.as_bytes(), 0o600)?;
    Ok(token)
}

/// Writes `DIR/token` in k3s's secure form, `K10<CA hash>::server:<secret>`,
/// which agents verify the server's CA with (see [`crate::join`]). A token
/// given in that form with another CA's hash is a mistake worth a warning:
/// agents given it would refuse this server.
fn write_secure_token(dir: &Path, token: &str, ca_pem: &str) -> anyhow::Result<()> {
    let parsed =
        crate::join::JoinToken::parse(token).map_err(|e| anyhow::anyhow!("--token: {e}"))?;
    let secure = parsed.secure(ca_pem);
    if parsed
        .ca_hash
        .is_some_and(|h| h != crate::join::ca_hash(ca_pem))
    {
        tracing::warn!(
            "the --token names a CA hash other than this cluster's; agents need the token in {}",
            dir.join("token").display()
        );
    }
    crate::pki::write_atomic(&dir.join("token"), secure.as_bytes(), 0o600)?;
    Ok(())
}

/// The cluster CA and token-signing key come from the store when another server
/// already created them; otherwise this server creates and publishes them. Waits
/// (logging why) while the store is unreachable, since nothing can be served
/// securely without them.
async fn load_shared_pki(
    store: &dyn Store,
    token: &str,
    tls_dir: &Path,
    sans: &ServerSans,
) -> anyhow::Result<Pki> {
    use crate::shared_pki::{SharedPkiError, fetch, publish};
    // A server that has run before holds the certificates already: it starts
    // serving (and reports not-ready) even while the datastore is away.
    let have_local = tls_dir.join(crate::pki::CA_CERT).exists();
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            if fetch(store, token, tls_dir).await? {
                return Ok::<_, SharedPkiError>(());
            }
            Pki::load_or_create(tls_dir, sans)
                .map_err(|e| SharedPkiError::Malformed(e.to_string()))?;
            if !publish(store, token, tls_dir).await? {
                // Another server published first: use theirs.
                fetch(store, token, tls_dir).await?;
            }
            Ok(())
        };
        let result = if have_local {
            tokio::time::timeout(Duration::from_secs(3), attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(SharedPkiError::Store(store::StoreError::Unavailable(
                        "timed out".into(),
                    )))
                })
        } else {
            attempt.await
        };
        match result {
            Ok(()) => break,
            Err(SharedPkiError::Store(e)) if have_local => {
                tracing::warn!(error = %e, "datastore unreachable; starting with the local cluster certificates");
                break;
            }
            Err(SharedPkiError::Store(e)) => {
                tracing::warn!(error = %e, "waiting for the datastore to load the cluster certificates");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Pki::load_or_create(tls_dir, sans)?)
}

impl Server {
    /// Prepares the data dir, certificates and kubeconfig, binds the port and starts
    /// serving; the store is connected in the background (readyz reports it).
    pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
        std::fs::create_dir_all(&config.data_dir)?;
        let token = read_or_create_token(&config.data_dir, config.token.as_deref())?;
        let store = store::open(config.datastore_endpoint.as_deref(), &config.data_dir).await?;

        let mut sans = ServerSans::default();
        sans.ips.push(IpAddr::V4(config.service_cidr.nth(1)));
        if !config.bind_address.is_unspecified() {
            sans.ips.push(config.bind_address);
        }
        if let Some(ip) = config.node_ip {
            sans.ips.push(ip);
        }
        sans.dns.push(config.node_name.clone());
        let tls_dir = config.data_dir.join("tls");
        // Sealed with the secret alone, so that the plain and the secure form
        // of one token open the cluster secrets alike.
        let secret = crate::join::secret(&token);
        let pki = load_shared_pki(&*store, secret, &tls_dir, &sans).await?;
        write_secure_token(&config.data_dir, &token, pki.ca_pem())?;
        let tls = pki.server_config()?;

        let listener =
            tokio::net::TcpListener::bind((config.bind_address, config.https_port)).await?;
        let addr = listener.local_addr()?;
        let host = if config.bind_address.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            config.bind_address
        };
        let server_url = format!("https://{}", SocketAddr::new(host, addr.port()));

        let (cert, key) = pki.issue_client_cert("system:admin", &["system:masters"])?;
        crate::kubeconfig::write_kubeconfig(
            &config.data_dir.join("kubeconfig.yaml"),
            &server_url,
            pki.ca_pem(),
            crate::kubeconfig::Credential::ClientCert {
                cert_pem: cert,
                key_pem: key,
            },
        )?;

        // The watch cache, once loaded, is the auth layer's view of RBAC objects,
        // of pods for the node authorizer, and of what bound tokens name.
        let rbac = Arc::new(crate::rbac_source::CacheRbac::default());
        let authn = Arc::new(
            Authenticator::new(pki.service_account_key_pem(), Some(&token))?
                .with_service_account_check(rbac.service_account_check()),
        );
        let authz = Arc::new(Authorizer::new(rbac.clone()).with_node_graph(rbac.clone()));
        let server = Arc::new(Server {
            config,
            pki,
            authn,
            authz,
            api: OnceLock::new(),
            store: store.clone(),
            metrics: Metrics::default(),
            server_url,
            kubelet_tls: OnceLock::new(),
        });

        let bg = server.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                let config = crate::rest::ApiConfig {
                    service_cidr: bg.config.service_cidr,
                };
                match Api::start(bg.store.clone(), config, bg.authn.clone(), bg.authz.clone()).await
                {
                    Ok(api) => {
                        rbac.set(api.cache.clone());
                        let _ = bg.api.set(api);
                        tracing::info!("API server ready");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "store not reachable yet; retrying"),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });

        let app = axum::Router::new()
            .fallback(handle)
            .with_state(server.clone());
        let task = tokio::spawn(crate::tls::serve(
            listener,
            tls,
            app,
            std::future::pending(),
        ));
        Ok(Running { addr, server, task })
    }
}

async fn handle(State(srv): State<Arc<Server>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query: Query = AxumQuery::<Query>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let watch_param = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let info = request::parse(&parts.method, &path, watch_param);

    let resp = async {
        if let Some(r) = health(&srv, &path).await {
            return r;
        }
        if path == crate::join::CACERTS_PATH {
            return crate::join::cacerts(&srv.pki, &parts.method);
        }
        let peer = parts
            .extensions
            .get::<PeerCertificate>()
            .and_then(|p| p.0.clone());
        let auth_header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let user = match srv.authn.authenticate(peer.as_deref(), auth_header) {
            Ok(Some(u)) => u,
            Ok(None) if path == "/version" => UserInfo {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
                ..Default::default()
            },
            Ok(None) => return ApiError::Unauthorized("Unauthorized".into()).into_response(),
            Err(e) => {
                tracing::debug!(error = %e, "authentication failed");
                return ApiError::Unauthorized("Unauthorized".into()).into_response();
            }
        };
        let user = match impersonate(&srv, user, &parts.headers) {
            Ok(u) => u,
            Err(e) => return e.into_response(),
        };
        if path == crate::join::NODE_CREDENTIALS_PATH {
            return crate::join::node_credentials(&srv.pki, &user, &parts.method, body).await;
        }
        let selected =
            request::selected_name(&info, query.get("fieldSelector").map(String::as_str));
        let attrs = Attributes {
            user: &user,
            verb: &info.verb,
            api_group: &info.group,
            resource: &info.resource,
            subresource: &info.subresource,
            namespace: &info.namespace,
            name: selected.as_deref().unwrap_or(&info.name),
            path: &path,
            is_resource_request: info.is_resource_request,
        };
        let api = srv.api.get();
        if path != "/version"
            && let Decision::Deny { reason } = srv.authz.authorize(&attrs)
        {
            return ApiError::Forbidden(forbidden(&info, &reason)).into_response();
        }
        let Some(api) = api else {
            return ApiError::Unavailable(
                "the API server is starting: the store is not reachable yet".into(),
            )
            .into_response();
        };
        if crate::node_proxy::handles(&info) {
            if let Err(e) = crate::node_proxy::authorize_upgrade(&srv.authz, &user, &info, &path) {
                return e.into_response();
            }
            let tls = match srv.kubelet_client_tls() {
                Ok(tls) => tls,
                Err(e) => return e.into_response(),
            };
            return crate::node_proxy::serve(tls, api, &info, parts).await;
        }
        if !info.is_resource_request {
            return crate::nonresource::serve(
                &srv.metrics,
                &srv.server_url,
                api,
                &parts.method,
                &path,
                &parts.headers,
            )
            .await;
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return ApiError::TooLarge("the request body is larger than 3 MiB".into())
                .into_response();
        }
        let body = match crate::body::read(body, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        api.serve(&user, &info, &query, &parts.headers, body).await
    }
    .await;
    srv.metrics.observe(
        &info.verb,
        &info.resource,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

impl Server {
    /// The TLS client configuration for node agents (made once).
    pub fn kubelet_client_tls(&self) -> Result<Arc<rustls::ClientConfig>, ApiError> {
        if let Some(c) = self.kubelet_tls.get() {
            return Ok(c.clone());
        }
        let c = crate::node_proxy::client_tls(&self.pki)?;
        Ok(self.kubelet_tls.get_or_init(|| c).clone())
    }

    /// Writes a kubeconfig for a component that runs beside the API server with its
    /// own identity (`system:kube-scheduler`, ...), signed by the cluster CA, and
    /// returns its path (DATA_DIR/cred/FILE).
    pub fn component_kubeconfig(
        &self,
        file: &str,
        user: &str,
        groups: &[&str],
    ) -> anyhow::Result<PathBuf> {
        let dir = self.config.data_dir.join("cred");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        let (cert_pem, key_pem) = self.pki.issue_client_cert(user, groups)?;
        crate::kubeconfig::write_kubeconfig(
            &path,
            &self.server_url,
            self.pki.ca_pem(),
            crate::kubeconfig::Credential::ClientCert { cert_pem, key_pem },
        )?;
        Ok(path)
    }
}

/// `Impersonate-User` / `-Group` / `-Uid` / `-Extra-*` (kubectl `--as`): the caller
/// must be allowed the `impersonate` verb on each; the request then runs as that user.
fn impersonate(
    srv: &Server,
    user: UserInfo,
    headers: &axum::http::HeaderMap,
) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    let Some(target) = values("impersonate-user").into_iter().next() else {
        if headers.contains_key("impersonate-group") {
            return Err(ApiError::BadRequest(
                "impersonating groups requires impersonating a user".into(),
            ));
        }
        return Ok(user);
    };
    let check =
        |resource: &str, group: &str, namespace: &str, name: &str| -> Result<(), ApiError> {
            let attrs = Attributes {
                user: &user,
                verb: "impersonate",
                api_group: group,
                resource,
                subresource: "",
                namespace,
                name,
                path: "",
                is_resource_request: true,
            };
            match srv.authz.authorize(&attrs) {
                Decision::Allow => Ok(()),
                Decision::Deny { reason } => Err(ApiError::Forbidden(format!(
                    "{resource} \"{name}\" is forbidden: {reason}"
                ))),
            }
        };
    let mut groups = values("impersonate-group");
    if let Some(rest) = target.strip_prefix("system:serviceaccount:") {
        let (ns, name) = rest.split_once(':').unwrap_or(("", rest));
        check("serviceaccounts", "", ns, name)?;
        if groups.is_empty() {
            groups = vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
    } else {
        check("users", "", "", &target)?;
    }
    for g in values("impersonate-group") {
        check("groups", "", "", &g)?;
    }
    let uid = values("impersonate-uid")
        .into_iter()
        .next()
        .unwrap_or_default();
    if !uid.is_empty() {
        check("uids", "authentication.k8s.io", "", &uid)?;
    }
    let mut extra = std::collections::BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-") {
            let v = value.to_str().unwrap_or("").to_string();
            check("userextras", "authentication.k8s.io", "", key)?;
            extra
                .entry(key.to_string())
                .or_insert_with(Vec::new)
                .push(v);
        }
    }
    if target != "system:anonymous" && !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    Ok(UserInfo {
        name: target,
        uid,
        groups,
        extra,
    })
}

/// Kubernetes' 403 text: `pods "web" is forbidden: User "alice" cannot get ...`.
fn forbidden(info: &request::RequestInfo, reason: &str) -> String {
    if !info.is_resource_request {
        return format!("forbidden: {reason}");
    }
    let mut what = info.resource.clone();
    if !info.subresource.is_empty() {
        what = format!("{what}/{}", info.subresource);
    }
    if !info.group.is_empty() {
        what = format!("{what}.{}", info.group);
    }
    if info.name.is_empty() {
        format!("{what} is forbidden: {reason}")
    } else {
        format!("{what} \"{}\" is forbidden: {reason}", info.name)
    }
}

/// `/readyz`, `/livez`, `/healthz`: unauthenticated, as kubelets and load balancers
/// probe them without credentials.
async fn health(srv: &Server, path: &str) -> Option<Response> {
    match path {
        "/livez" | "/healthz" => Some(text(StatusCode::OK, "ok")),
        "/readyz" => {
            if srv.api.get().is_none() {
                return Some(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[-]store failed: not connected yet\nreadyz check failed",
                ));
            }
            Some(
                match tokio::time::timeout(Duration::from_secs(5), srv.store.ready()).await {
                    Ok(Ok(())) => text(StatusCode::OK, "ok"),
                    Ok(Err(e)) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("[-]store failed: {e}\nreadyz check failed"),
                    ),
                    Err(_) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "[-]store failed: timed out\nreadyz check failed",
                    ),
                },
            )
        }
        _ => None,
    }
}

fn text(code: StatusCode, body: &str) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
