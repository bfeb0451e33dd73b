//! The HTTPS listener: TLS per connection, HTTP/1.1 and HTTP/2 on top, and the
//! verified client certificate handed to every request as an extension.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A client that neither finishes nor abandons its handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests; watches never finish by
/// themselves, so the rest are cut off after it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// HTTP/2 pings find peers that vanished without closing, which would otherwise
/// hold a watch stream open forever.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);
/// Pause after a failed accept (usually out of file descriptors) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The end-entity certificate the client presented, already verified against
/// the cluster CA by the TLS layer; `None` when the client sent none.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub Option<Arc<CertificateDer<'static>>>);

/// Serves `app` over TLS on `listener` until `shutdown` completes, then lets
/// in-flight requests finish for a short grace period.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = Builder::new(TokioExecutor::new());
    // The timer enables hyper's HTTP/1 header read timeout (slow clients) and
    // HTTP/2 keep-alive pings.
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE);
    let builder = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _remote)) => {
                    connections.spawn(serve_connection(
                        tcp,
                        acceptor.clone(),
                        builder.clone(),
                        app.clone(),
                        stop_rx.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reaps finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    // Receivers see the change even if every one of them is busy right now.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing connections still open after the grace period"
        );
        connections.shutdown().await;
    }
    Ok(())
}

async fn serve_connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    builder: Arc<Builder<TokioExecutor>>,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    // Small writes such as watch events should leave at once.
    let _ = tcp.set_nodelay(true);
    let remote = tcp.peer_addr().ok();
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(?remote, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(?remote, "TLS handshake timed out");
                return;
            }
        },
        _ = stop.changed() => return,
    };

    let peer = PeerCertificate(
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| Arc::new(cert.clone().into_owned())),
    );
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(request).await.unwrap_or_else(|e| match e {})) }
    });

    // Upgrades carry exec, attach and port-forward streams over HTTP/1.1.
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(?remote, error = %e, "connection ended with an error");
    }
}
