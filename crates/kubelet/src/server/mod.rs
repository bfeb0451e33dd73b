//! The agent's HTTPS endpoint (the kubelet's port 10250): container logs,
//! exec, attach and port-forward, reached by the API server's proxy.
//!
//! Clients must present a certificate signed by the client CA. Authorization
//! is deliberately simple: the API server's kubelet client identity
//! (`CN=kube-apiserver-kubelet-client`, as kube-apiserver's
//! `--kubelet-client-certificate`) and members of `system:masters` may do
//! everything; anyone else gets 403. (The kubelet asks the API server with a
//! SubjectAccessReview instead; this endpoint only serves the API server.)
//!
//! Streams (exec, attach, port-forward) are upgraded connections: WebSocket
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`, and SPDY tunnelled in
//! WebSocket for port-forward) or SPDY/3.1 (`v4.channel.k8s.io`,
//! `portforward.k8s.io`), the same protocols the API server's clients speak,
//! since the API server passes upgrades through unchanged.

mod logs;
mod spdy;
mod streams;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;

use crate::runtime::{ContainerState, ContainerStatus, Runtime};
use crate::{Error, Result, ServingTls};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// The API server's identity towards kubelets.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// Serves until the listener fails.
pub(crate) async fn serve(
    addr: SocketAddr,
    tls: &ServingTls,
    runtime: Arc<dyn Runtime>,
) -> Result<()> {
    let config = tls_config(tls)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(Error::io(
            "binding",
            std::path::Path::new(&addr.to_string()),
        ))?;
    tracing::info!(%addr, "node agent endpoint listening");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let allowed = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .is_some_and(authorized);
            let service = hyper::service::service_fn(move |req| {
                let runtime = runtime.clone();
                async move {
                    if !allowed {
                        return Ok::<_, Infallible>(status_response(
                            StatusCode::FORBIDDEN,
                            "Forbidden",
                            "only the API server may use the node agent's endpoint",
                        ));
                    }
                    Ok(route(runtime, req).await)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended");
            }
        });
    }
}

fn tls_config(tls: &ServingTls) -> Result<Arc<rustls::ServerConfig>> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::Config(format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut tls.cert_pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("serving certificate", &e))?;
    let key = rustls_pemfile::private_key(&mut tls.key_pem.as_bytes())
        .map_err(|e| bad("serving key", &e))?
        .ok_or_else(|| Error::Config("serving key: no key in PEM".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut tls.client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| bad("client CA", &e))?;
        roots.add(ca).map_err(|e| bad("client CA", &e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| bad("client verifier", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad("serving certificate", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether a (verified) client certificate may use the endpoint.
fn authorized(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert) else {
        return false;
    };
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .any(|a| a.as_str() == Ok(KUBELET_CLIENT_USER));
    let masters = subject
        .iter_organization()
        .any(|a| a.as_str() == Ok("system:masters"));
    cn || masters
}

async fn route(runtime: Arc<dyn Runtime>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["containerLogs", ns, pod, container] => {
            container_logs(runtime, ns, pod, container, &query).await
        }
        ["exec", ns, pod, container] | ["exec", ns, pod, _, container] => {
            match find_container(&*runtime, ns, pod, container, false).await {
                Ok(c) => streams::exec(runtime, c, req, &query, false).await,
                Err(r) => r,
            }
        }
        ["attach", ns, pod, container] | ["attach", ns, pod, _, container] => {
            match find_container(&*runtime, ns, pod, container, false).await {
                Ok(c) => streams::exec(runtime, c, req, &query, true).await,
                Err(r) => r,
            }
        }
        ["portForward", ns, pod] | ["portForward", ns, pod, _] => {
            match find_sandbox(&*runtime, ns, pod).await {
                Ok(sandbox) => streams::port_forward(runtime, sandbox, req, &query).await,
                Err(r) => r,
            }
        }
        ["healthz"] => text_response(StatusCode::OK, "ok"),
        _ => status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no handler for {path}"),
        ),
    }
}

async fn container_logs(
    runtime: Arc<dyn Runtime>,
    ns: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let opts = match logs::LogOptions::parse(query, std::time::SystemTime::now()) {
        Ok(o) => o,
        Err(e) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let c = match find_container(&*runtime, ns, pod, container, opts.previous).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let id = c.id.clone();
    let path = c.log_path.clone();
    tokio::spawn(async move {
        let running = || {
            let runtime = runtime.clone();
            let id = id.clone();
            async move {
                matches!(
                    runtime.container_status(&id).await.map(|s| s.state),
                    Ok(ContainerState::Running { .. } | ContainerState::Created)
                )
            }
        };
        if let Err(e) = logs::send(&path, &opts, tx, running).await {
            tracing::debug!(path = %path.display(), error = %e, "reading a container log");
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// The newest sandbox of the pod.
async fn find_sandbox(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
) -> std::result::Result<crate::runtime::PodSandboxStatus, Response<Body>> {
    let sandboxes = runtime.list_pod_sandboxes().await.map_err(|e| {
        status_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        )
    })?;
    sandboxes
        .into_iter()
        .filter(|s| s.namespace == ns && s.name == pod)
        .max_by_key(|s| (s.ready, s.created_at))
        .ok_or_else(|| {
            status_response(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("pod \"{pod}\" in namespace \"{ns}\" is not running on this node"),
            )
        })
}

/// The container's newest attempt, or the one before it (`previous`).
async fn find_container(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> std::result::Result<ContainerStatus, Response<Body>> {
    let internal = |e: crate::runtime::RuntimeError| {
        status_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        )
    };
    let newest = find_sandbox(runtime, ns, pod).await?;
    let sandboxes: Vec<_> = runtime
        .list_pod_sandboxes()
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|s| s.uid == newest.uid)
        .collect();
    let mut attempts = Vec::new();
    for s in &sandboxes {
        for c in runtime
            .list_containers(Some(&s.id))
            .await
            .map_err(internal)?
        {
            if c.name == container {
                attempts.push((s.created_at, c));
            }
        }
    }
    attempts.sort_by_key(|(at, c)| std::cmp::Reverse((*at, c.attempt)));
    let pick = attempts
        .into_iter()
        .nth(usize::from(previous))
        .map(|(_, c)| c);
    pick.ok_or_else(|| {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is not available")
        };
        status_response(StatusCode::BAD_REQUEST, "BadRequest", &message)
    })
}

/// A `metav1.Status` failure.
pub(crate) fn status_response(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn text_response(code: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(text.to_owned()));
    *r.status_mut() = code;
    r
}

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(b.into()))
}

/// `k=v` pairs of a query string, percent-decoded (`+` is a space).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(
            query_pairs("command=sh&command=-c&command=echo+a%20b%3B&x"),
            vec![
                ("command".to_string(), "sh".to_string()),
                ("command".into(), "-c".into()),
                ("command".into(), "echo a b;".into()),
                ("x".into(), "".into()),
            ]
        );
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
