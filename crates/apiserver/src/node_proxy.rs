//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: proxied to
//! the node agent of the pod's node, over HTTPS with a client certificate the
//! server issues itself (user `kube-apiserver-kubelet-client`, group
//! `system:masters`, as kube-apiserver's `--kubelet-client-certificate`),
//! verifying the agent's serving certificate against the cluster CA.
//! Upgrades (WebSocket, SPDY) pass through unchanged: the 101 comes back from
//! the agent, then bytes are copied both ways.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::auth::Authorizer;
use crate::auth::{Attributes, Decision, UserInfo};
use crate::error::ApiError;
use crate::rest::Api;
use crate::rest::request::RequestInfo;

/// The identity the API server presents to node agents.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Whether the request is one this module serves.
pub fn handles(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.group.is_empty()
        && info.resource == "pods"
        && !info.name.is_empty()
        && matches!(
            info.subresource.as_str(),
            "log" | "exec" | "attach" | "portforward"
        )
}

/// Kubernetes authorizes a WebSocket upgrade (a GET) of exec, attach and
/// port-forward as `create` as well as `get`
/// (AuthorizePodWebsocketUpgradeCreatePermission, on by default since 1.35):
/// reading a pod must not be enough to run commands in it.
pub fn authorize_upgrade(
    authz: &Authorizer,
    user: &UserInfo,
    info: &RequestInfo,
    path: &str,
) -> Result<(), ApiError> {
    if info.verb != "get" || info.subresource == "log" {
        return Ok(());
    }
    let attrs = Attributes {
        user,
        verb: "create",
        api_group: "",
        resource: "pods",
        subresource: &info.subresource,
        namespace: &info.namespace,
        name: &info.name,
        path,
        is_resource_request: true,
    };
    match authz.authorize(&attrs) {
        Decision::Allow => Ok(()),
        Decision::Deny { reason } => Err(ApiError::Forbidden(format!(
            "pods \"{}\" is forbidden: User \"{}\" cannot create resource \"pods/{}\" in API group \"\" in the namespace \"{}\": {reason}",
            info.name, user.name, info.subresource, info.namespace
        ))),
    }
}

/// `tls`: the API server's client configuration for node agents.
pub async fn serve(
    tls: Arc<rustls::ClientConfig>,
    api: &Api,
    info: &RequestInfo,
    parts: Parts,
) -> Response {
    match proxy(tls, api, info, parts).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn proxy(
    tls: Arc<rustls::ClientConfig>,
    api: &Api,
    info: &RequestInfo,
    parts: Parts,
) -> Result<Response, ApiError> {
    let allowed = match info.subresource.as_str() {
        "log" => parts.method == Method::GET,
        _ => parts.method == Method::GET || parts.method == Method::POST,
    };
    if !allowed {
        return Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow {} on pods/{}",
            parts.method, info.subresource
        )));
    }
    let pod = api
        .cache
        .get(&crate::keys::pod(&info.namespace, &info.name))
        .ok_or_else(|| ApiError::NotFound {
            message: format!("pods \"{}\" not found", info.name),
            kind: "pods".into(),
            group: String::new(),
            name: info.name.clone(),
        })?
        .value()?;
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "pod {} does not have a host assigned",
            info.name
        )));
    }
    let query = parts.uri.query().unwrap_or_default();
    let mut pairs: Vec<(String, String)> = url_pairs(query);
    let kubelet_path = if info.subresource == "portforward" {
        format!("/portForward/{}/{}", info.namespace, info.name)
    } else {
        let container = container_of(&pod, &info.name, &mut pairs)?;
        let prefix = match info.subresource.as_str() {
            "log" => "containerLogs",
            other => other,
        };
        format!("/{prefix}/{}/{}/{container}", info.namespace, info.name)
    };
    let node = api
        .cache
        .get(&crate::keys::node(node_name))
        .and_then(|n| n.value().ok())
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "node {node_name} of pod {} is not known",
                info.name
            ))
        })?;
    let (ip, port) = kubelet_address(&node, &pod)?;
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let target = if query.is_empty() {
        kubelet_path
    } else {
        format!("{kubelet_path}?{query}")
    };
    forward(tls, ip, port, &target, parts).await
}

/// The container a request is about: `?container=`, or the pod's only one.
fn container_of(
    pod: &Value,
    name: &str,
    pairs: &mut Vec<(String, String)>,
) -> Result<String, ApiError> {
    if let Some(i) = pairs.iter().position(|(k, _)| k == "container") {
        let (_, c) = pairs.remove(i);
        if !c.is_empty() {
            return Ok(c);
        }
    }
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    match names.as_slice() {
        [one] => Ok((*one).to_owned()),
        _ => Err(ApiError::BadRequest(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The node's InternalIP (else the pod's hostIP) and the agent's port.
fn kubelet_address(node: &Value, pod: &Value) -> Result<(IpAddr, u16), ApiError> {
    let addresses = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let internal = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str());
    let ip = internal
        .or_else(|| pod["status"]["hostIP"].as_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::Unavailable("the pod's node has no address".into()))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((ip, port))
}

/// Headers that belong to this hop or to the caller's credentials.
const DROPPED: &[&str] = &[
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
];

async fn forward(
    tls: Arc<rustls::ClientConfig>,
    ip: IpAddr,
    port: u16,
    target: &str,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        ApiError::Unavailable(format!("{what} the node agent at {ip}:{port}: {e}"))
    };
    let config = tls;
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    .map_err(|e| unavailable("connecting to", &e))?
    .map_err(|e| unavailable("connecting to", &e))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::IpAddress(ip.into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| unavailable("TLS with", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unavailable("HTTP with", &e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "node agent connection ended");
        }
    });
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(target)
        .header(header::HOST, format!("{ip}:{port}"));
    for (k, v) in &parts.headers {
        let n = k.as_str();
        if DROPPED.contains(&n) || n.starts_with("impersonate-") {
            continue;
        }
        builder = builder.header(k, v);
    }
    let upstream = builder
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal_from("building the node agent request", e))?;
    let mut resp = sender
        .send_request(upstream)
        .await
        .map_err(|e| unavailable("requesting from", &e))?;
    let status = resp.status();
    let mut out = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if k == header::CONTENT_LENGTH || k == header::TRANSFER_ENCODING {
            continue;
        }
        out = out.header(k, v);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let theirs = hyper::upgrade::on(&mut resp);
        let ours = hyper::upgrade::on(Request::from_parts(
            std::mem::replace(&mut parts, Request::new(()).into_parts().0),
            (),
        ));
        tokio::spawn(async move {
            let (Ok(a), Ok(b)) = (ours.await, theirs.await) else {
                tracing::debug!("an upgrade to the node agent failed");
                return;
            };
            let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        return out
            .body(Body::empty())
            .map_err(|e| ApiError::internal_from("building the upgrade response", e));
    }
    if !resp.headers().contains_key(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    out.body(Body::new(resp.into_body()))
        .map_err(|e| ApiError::internal_from("building the proxied response", e))
}

/// `k=v` pairs of a query string, percent-decoded (`+` is a space).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The TLS client configuration towards node agents.
pub fn client_tls(pki: &crate::pki::Pki) -> Result<Arc<rustls::ClientConfig>, ApiError> {
    let internal = |e: &dyn std::fmt::Display| ApiError::Internal {
        message: format!("the kubelet client certificate: {e}"),
        source: None,
    };
    let (cert_pem, key_pem) = pki
        .issue_client_cert(KUBELET_CLIENT_USER, &["system:masters"])
        .map_err(|e| internal(&e))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| internal(&e))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| internal(&e))?
        .ok_or_else(|| internal(&"no key"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der().clone()).map_err(|e| internal(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| internal(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| internal(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_defaults_to_the_only_one() {
        let pod = json!({"spec": {"containers": [{"name": "app"}]}});
        let mut q = url_pairs("follow=true");
        assert_eq!(container_of(&pod, "p", &mut q).unwrap(), "app");
        let mut q = url_pairs("container=side&follow=true");
        assert_eq!(container_of(&pod, "p", &mut q).unwrap(), "side");
        assert_eq!(q, vec![("follow".to_string(), "true".to_string())]);
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = container_of(&two, "p", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("choose one of: [a b]"), "{err}");
    }

    #[test]
    fn the_agent_is_found_by_internal_ip_and_endpoint_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        let (ip, port) = kubelet_address(&node, &json!({})).unwrap();
        assert_eq!((ip.to_string(), port), ("10.0.0.5".into(), 10251));
        let bare = json!({"status": {}});
        let (ip, port) =
            kubelet_address(&bare, &json!({"status": {"hostIP": "127.0.0.1"}})).unwrap();
        assert_eq!((ip.to_string(), port), ("127.0.0.1".into(), 10250));
    }

    #[test]
    fn queries_survive_the_round_trip() {
        let q = url_pairs("command=sh&command=-c&command=exit%207&stdin=true");
        let back: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        assert_eq!(
            back.join("&"),
            "command=sh&command=-c&command=exit%207&stdin=true"
        );
    }
}
