//! Upgrades: choosing a subprotocol, the 101 answers of WebSocket and SPDY,
//! and a byte pipe over WebSocket binary messages (SPDY tunnelled in
//! WebSocket, as kubectl ≥ 1.31 sends port-forward).

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Body, full};

pub const WS_V5: &str = "v5.channel.k8s.io";
pub const WS_V4: &str = "v4.channel.k8s.io";
pub const SPDY_EXEC_V4: &str = "v4.channel.k8s.io";
pub const SPDY_PORTFORWARD: &str = "portforward.k8s.io";
pub const WS_PORTFORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How the client asks to upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Spdy,
}

pub fn transport<B>(req: &Request<B>) -> Option<Transport> {
    let upgrade = req.headers().get(header::UPGRADE)?.to_str().ok()?;
    if upgrade.eq_ignore_ascii_case("websocket") {
        Some(Transport::WebSocket)
    } else if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        Some(Transport::Spdy)
    } else {
        None
    }
}

/// Values of a header that may repeat and hold comma-separated lists.
pub fn offered<B>(req: &Request<B>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The first of `ours` (in our order of preference) the client offers.
pub fn choose<'a, B>(req: &Request<B>, header: &str, ours: &[&'a str]) -> Option<&'a str> {
    let theirs = offered(req, header);
    ours.iter().copied().find(|p| theirs.iter().any(|t| t == p))
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455, 4.2.2).
pub fn accept_key(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The 101 answer to an upgrade with `protocol` chosen.
pub fn switching<B>(req: &Request<B>, transport: Transport, protocol: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    let value = |s: &str| header::HeaderValue::from_str(s).ok();
    match transport {
        Transport::WebSocket => {
            h.insert(
                header::UPGRADE,
                header::HeaderValue::from_static("websocket"),
            );
            let key = req
                .headers()
                .get(header::SEC_WEBSOCKET_KEY)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if let Some(v) = value(&accept_key(key)) {
                h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
            if let Some(v) = value(protocol) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        Transport::Spdy => {
            h.insert(
                header::UPGRADE,
                header::HeaderValue::from_static("SPDY/3.1"),
            );
            if let Some(v) = value(protocol) {
                h.insert("X-Stream-Protocol-Version", v);
            }
        }
    }
    r
}

/// The WebSocket on an upgraded connection.
pub async fn websocket(upgraded: hyper::upgrade::Upgraded) -> WebSocket {
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await
}

/// A byte stream carried in binary messages both ways: what the client sends
/// is read from the returned pipe, what is written to it is sent.
pub fn tunnel(ws: WebSocket) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut pipe_r, mut pipe_w) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match pipe_r.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = sink.send(super::streams::normal_close()).await;
                    return;
                }
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if pipe_w.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = pipe_w.shutdown().await;
    });
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        // The example of RFC 6455, section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn protocols_are_chosen_in_our_order() {
        let req = Request::builder()
            .header(
                "Sec-WebSocket-Protocol",
                "v4.channel.k8s.io, v5.channel.k8s.io",
            )
            .header(header::UPGRADE, "websocket")
            .body(())
            .unwrap();
        assert_eq!(transport(&req), Some(Transport::WebSocket));
        assert_eq!(
            choose(&req, "Sec-WebSocket-Protocol", &[WS_V5, WS_V4]),
            Some(WS_V5)
        );
        let req = Request::builder()
            .header(header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
            .header("X-Stream-Protocol-Version", "v3.channel.k8s.io")
            .body(())
            .unwrap();
        assert_eq!(transport(&req), Some(Transport::Spdy));
        assert_eq!(
            choose(&req, "X-Stream-Protocol-Version", &[SPDY_EXEC_V4]),
            Some(SPDY_EXEC_V4)
        );
        assert_eq!(
            choose(&req, "X-Stream-Protocol-Version", &[SPDY_PORTFORWARD]),
            None
        );
    }
}
