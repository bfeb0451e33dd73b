//! One `GET /readyz` over HTTPS, trusting the cluster CA. `/readyz` needs no
//! credentials, so a plain TLS connection and an HTTP/1.0 request (answered
//! without chunking, then closed) are all it takes.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// What `/readyz` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readyz {
    /// The HTTP status code: 200 when ready, 503 while the store is not.
    pub status: u16,
    /// The body: `ok`, or the failed checks.
    pub body: String,
}

impl Readyz {
    /// 200 with the body `ok`.
    pub fn is_ready(&self) -> bool {
        self.status == 200 && self.body.trim() == "ok"
    }
}

/// Connect, TLS handshake and answer each get this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET {url}/readyz`, with `url` like `https://127.0.0.1:6443`, verifying the
/// server certificate against the PEM CA certificate in `ca_file`.
pub(crate) fn get(url: &str, ca_file: &Path) -> io::Result<Readyz> {
    let authority = url
        .strip_prefix("https://")
        .ok_or_else(|| invalid(format!("not an https URL: {url}")))?
        .trim_end_matches('/');
    let (host, _port) = authority
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("no port in {url}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(pem_error)? {
        roots
            .add(cert.map_err(pem_error)?)
            .map_err(io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| invalid(e.to_string()))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;

    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{authority} resolves to nothing")))?;
    let sock = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    sock.set_write_timeout(Some(TIMEOUT))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET /readyz HTTP/1.0\r\nHost: {authority}\r\nAccept: text/plain\r\n\r\n"
    )?;
    tls.flush()?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server that closes without close_notify still sent the whole answer.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse(&raw)
}

/// Status code and body of an HTTP/1.x response read to its end.
fn parse(raw: &[u8]) -> io::Result<Readyz> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid(format!("incomplete HTTP response: {text:?}")))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("no status line in {head:?}")))?;
    Ok(Readyz {
        status,
        body: body.to_string(),
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> io::Error {
    invalid(format!("reading the CA certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let r = parse(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nok").expect("parse");
        assert_eq!(r.status, 200);
        assert!(r.is_ready());
        let r =
            parse(b"HTTP/1.0 503 Service Unavailable\r\n\r\n[-]store failed: x\n").expect("parse");
        assert_eq!(r.status, 503);
        assert!(!r.is_ready());
        assert!(r.body.contains("store failed"));
    }

    #[test]
    fn rejects_what_is_not_a_response() {
        assert!(parse(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
    }
}
