//! The actions of probes and lifecycle hooks, as the kubelet runs them:
//! `httpGet` (a 2xx or 3xx answer succeeds; HTTPS without verifying the
//! certificate), `tcpSocket` (a connection succeeds), `exec` (exit code 0
//! succeeds), `grpc` (the gRPC health service answers SERVING) and `sleep`.

use std::net::IpAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{Container, GRPCAction, HTTPGetAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What an action found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure(String),
}

/// A named or numbered port of the container.
fn port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("couldn't find port {name:?} in the container")),
    }
}

pub(crate) async fn http_get(
    container: &Container,
    pod_ip: IpAddr,
    action: &HTTPGetAction,
    timeout: Duration,
) -> Outcome {
    let port = match port(container, &action.port) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let https = action.scheme.as_deref() == Some("HTTPS");
    let host: IpAddr = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => match h.parse() {
            Ok(ip) => ip,
            Err(_) => return Outcome::Failure(format!("host {h:?} is not an IP address")),
        },
        None => pod_ip,
    };
    let path = action.path.clone().unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let scheme = if https { "https" } else { "http" };
    let url = format!("{scheme}://{}{path}", std::net::SocketAddr::new(host, port));
    let get = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("Get {url:?}: dial tcp: {e}"))?;
        let mut sender = if https {
            // As the kubelet, HTTPS probes do not verify the certificate.
            let tls = tokio_rustls::TlsConnector::from(insecure_tls())
                .connect(
                    rustls::pki_types::ServerName::IpAddress(host.into()),
                    stream,
                )
                .await
                .map_err(|e| format!("Get {url:?}: {e}"))?;
            handshake(tls, &url).await?
        } else {
            handshake(stream, &url).await?
        };
        let mut req = hyper::Request::get(&path)
            .header("host", format!("{host}:{port}"))
            .header("user-agent", "kube-probe/1.33")
            .header("accept", "*/*");
        for h in action.http_headers.iter().flatten() {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        let status = resp.status();
        // Read (and drop) at most a little of the body, as the kubelet does.
        let _ = tokio::time::timeout(Duration::from_millis(100), resp.into_body().collect()).await;
        Ok::<_, String>(status)
    };
    match tokio::time::timeout(timeout, get).await {
        Err(_) => Outcome::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err(e)) => Outcome::Failure(e),
        Ok(Ok(s)) if s.is_success() || s.is_redirection() => Outcome::Success,
        Ok(Ok(s)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {}", s.as_u16())),
    }
}

async fn handshake<S>(
    stream: S,
    url: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A TLS client that accepts any server certificate, for HTTPS probes and
/// hooks (the kubelet's `InsecureSkipVerify`). Signatures are still checked.
fn insecure_tls() -> std::sync::Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            std::sync::Arc::new(config)
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) async fn tcp_socket(
    container: &Container,
    pod_ip: IpAddr,
    action: &TCPSocketAction,
    timeout: Duration,
) -> Outcome {
    let port = match port(container, &action.port) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host: IpAddr = action
        .host
        .as_deref()
        .and_then(|h| h.parse().ok())
        .unwrap_or(pod_ip);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
        Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
    }
}

/// The gRPC health check (`grpc.health.v1.Health/Check`) over plain HTTP/2,
/// as the kubelet's gRPC probe: SERVING succeeds. The two messages are one
/// field each, so they are encoded by hand rather than with a protobuf crate.
pub(crate) async fn grpc(pod_ip: IpAddr, action: &GRPCAction, timeout: Duration) -> Outcome {
    use http_body_util::Full;
    let Ok(port) = u16::try_from(action.port) else {
        return Outcome::Failure(format!("invalid port {}", action.port));
    };
    let service = action.service.clone().unwrap_or_default();
    let target = format!("{}", std::net::SocketAddr::new(pod_ip, port));
    let check = async {
        let stream = tokio::net::TcpStream::connect((pod_ip, port))
            .await
            .map_err(|e| format!("failed to connect service {target:?}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| format!("failed to connect service {target:?}: {e}"))?;
        tokio::spawn(conn);
        let mut message = Vec::new();
        if !service.is_empty() {
            message.push(0x0a); // field 1, length-delimited
            push_varint(&mut message, service.len() as u64);
            message.extend_from_slice(service.as_bytes());
        }
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        let req = hyper::Request::post(format!("http://{target}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "kube-probe/1.33")
            .body(Full::new(Bytes::from(frame)))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("health rpc probe failed: {e}"))?;
        let headers = resp.headers().clone();
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("health rpc probe failed: {e}"))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let status = trailers
            .get("grpc-status")
            .or_else(|| headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_owned();
        if status != "0" {
            let msg = trailers
                .get("grpc-message")
                .or_else(|| headers.get("grpc-message"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Err(format!("health rpc probe failed: status {status}: {msg}"));
        }
        let body = collected.to_bytes();
        // 5-byte gRPC prefix, then HealthCheckResponse { status = 1 (varint) }.
        let serving = body.len() >= 7 && body[5] == 0x08 && body[6] == 1;
        Ok(serving)
    };
    match tokio::time::timeout(timeout, check).await {
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Outcome::Failure(e),
        Ok(Ok(true)) => Outcome::Success,
        Ok(Ok(false)) => {
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        }
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Runs `cmd` in the container; exit code 0 succeeds. Output (the first
/// 10 KiB, as the kubelet keeps) goes into the failure message.
pub(crate) async fn exec(
    runtime: &dyn crate::runtime::Runtime,
    container_id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Outcome {
    use tokio::io::AsyncReadExt;
    let request = crate::runtime::ExecRequest {
        cmd: cmd.to_vec(),
        tty: false,
        stdin: false,
    };
    let run = async {
        let mut process = runtime
            .exec(container_id, &request)
            .await
            .map_err(|e| format!("exec {cmd:?}: {e}"))?;
        let mut output = Vec::new();
        let read = async |stream: Option<std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>>| {
            let mut buf = Vec::new();
            if let Some(s) = stream {
                let _ = s.take(10 * 1024).read_to_end(&mut buf).await;
            }
            buf
        };
        let (out, err) = tokio::join!(read(process.stdout.take()), read(process.stderr.take()));
        output.extend(out);
        output.extend(err);
        let code = process.exit.await;
        Ok::<_, String>((code, String::from_utf8_lossy(&output).trim().to_owned()))
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Outcome::Failure(format!("command {cmd:?} timed out after {timeout:?}")),
        Ok(Err(e)) => Outcome::Failure(e),
        Ok(Ok((0, _))) => Outcome::Success,
        Ok(Ok((code, output))) => {
            Outcome::Failure(format!("command {cmd:?} exited with {code}: {output}"))
        }
    }
}

/// Runs a lifecycle hook handler (postStart or preStop) within `limit`.
pub(crate) async fn hook(
    runtime: &dyn crate::runtime::Runtime,
    container_id: &str,
    container: &Container,
    pod_ip: IpAddr,
    handler: &k8s_openapi::api::core::v1::LifecycleHandler,
    limit: Duration,
) -> Outcome {
    if let Some(e) = &handler.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return exec(runtime, container_id, &cmd, limit).await;
    }
    if let Some(a) = &handler.http_get {
        return http_get(container, pod_ip, a, limit).await;
    }
    if let Some(a) = &handler.tcp_socket {
        return tcp_socket(container, pod_ip, a, limit).await;
    }
    if let Some(s) = &handler.sleep {
        let d = Duration::from_secs(s.seconds.max(0) as u64).min(limit);
        tokio::time::sleep(d).await;
        return Outcome::Success;
    }
    Outcome::Failure("the hook names no action".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn container() -> Container {
        serde_json::from_value(
            json!({"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}),
        )
        .unwrap()
    }

    /// A one-shot HTTP server answering `status`.
    async fn serve(status: u16) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn http_probes_succeed_on_2xx_and_3xx_only() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        for (status, ok) in [(200, true), (302, true), (404, false), (500, false)] {
            let port = serve(status).await;
            let action: HTTPGetAction =
                serde_json::from_value(json!({"path": "/healthz", "port": port})).unwrap();
            let out = http_get(&container(), lo, &action, Duration::from_secs(2)).await;
            assert_eq!(out == Outcome::Success, ok, "{status}: {out:?}");
        }
    }

    #[tokio::test]
    async fn https_probes_accept_any_certificate() {
        let cert = rcgen::generate_simple_self_signed(vec!["example.invalid".into()]).unwrap();
        let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let Ok(mut s) = acceptor.accept(s).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
                let _ = s.shutdown().await;
            }
        });
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let action: HTTPGetAction =
            serde_json::from_value(json!({"port": port, "scheme": "HTTPS"})).unwrap();
        assert_eq!(
            http_get(&container(), lo, &action, Duration::from_secs(2)).await,
            Outcome::Success
        );
        let plain: HTTPGetAction = serde_json::from_value(json!({"port": port})).unwrap();
        assert!(matches!(
            http_get(&container(), lo, &plain, Duration::from_secs(2)).await,
            Outcome::Failure(_)
        ));
    }

    /// A gRPC health service answering `status` (1 SERVING, 2 NOT_SERVING).
    async fn grpc_server(status: u8) -> u16 {
        use http_body_util::StreamBody;
        use hyper::body::Frame;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                        let mut trailers = hyper::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                            Ok(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let body = StreamBody::new(futures::stream::iter(frames));
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap(),
                        )
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc),
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn grpc_probes_ask_the_health_service() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let serving: GRPCAction =
            serde_json::from_value(json!({"port": grpc_server(1).await})).unwrap();
        assert_eq!(
            grpc(lo, &serving, Duration::from_secs(2)).await,
            Outcome::Success
        );
        let not: GRPCAction =
            serde_json::from_value(json!({"port": grpc_server(2).await, "service": "x"})).unwrap();
        assert!(
            matches!(grpc(lo, &not, Duration::from_secs(2)).await, Outcome::Failure(m) if m.contains("NOT_SERVING"))
        );
        let closed: GRPCAction = serde_json::from_value(json!({"port": 1})).unwrap();
        assert!(matches!(
            grpc(lo, &closed, Duration::from_secs(2)).await,
            Outcome::Failure(_)
        ));
    }

    #[tokio::test]
    async fn tcp_probes_and_named_ports() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let port = serve(200).await;
        let action: TCPSocketAction = serde_json::from_value(json!({"port": port})).unwrap();
        assert_eq!(
            tcp_socket(&container(), lo, &action, Duration::from_secs(1)).await,
            Outcome::Success
        );
        let closed: TCPSocketAction = serde_json::from_value(json!({"port": 1})).unwrap();
        assert!(matches!(
            tcp_socket(&container(), lo, &closed, Duration::from_secs(1)).await,
            Outcome::Failure(_)
        ));
        assert_eq!(port_of_name(), Ok(8080));
    }

    fn port_of_name() -> Result<u16, String> {
        port(&container(), &IntOrString::String("web".into()))
    }
}
