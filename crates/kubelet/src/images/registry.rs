//! A small client of the OCI distribution API: `GET /v2/<name>/manifests/<ref>`
//! and `GET /v2/<name>/blobs/<digest>`, redirects followed (credentials are
//! never sent to another host), `401` challenges answered with a bearer token
//! or basic credentials, then the request retried.
//!
//! Why not the `oci-client` crate: it is built on reqwest, a second HTTP
//! stack with its own TLS feature set beside the hyper + hyper-rustls (ring)
//! one kube already builds, for a few dozen more crates to compile; and it
//! hands blobs over in memory or to an async writer, while the store wants
//! them streamed into its own verified blob writer. The two GETs, the token
//! dance and the redirects are what a pull needs, and fit here.
//!
//! TLS: rustls with the webpki roots plus the system's CA certificates (a
//! registry behind a private CA installed on the host works). A registry
//! listed in `--insecure-registry HOST:PORT` is spoken to in plain HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::auth::{self, Challenge, Credentials};
use super::digest::Digest;
use super::error::ImageError;
use super::reference::Reference;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Until the response headers arrive.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two chunks of a body.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 5;
/// Error bodies and token answers read at most this much.
const MAX_SMALL_BODY: usize = 1 << 20;
const USER_AGENT: &str = concat!("flotilla/", env!("CARGO_PKG_VERSION"));

/// What a manifest GET accepts, most wanted first.
pub(super) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

type AuthKey = (String, String, Option<Credentials>);

type Http = HyperClient<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The HTTP client, shared by every pull; keeps the tokens it got.
pub(super) struct Client {
    http: Http,
    insecure: Vec<String>,
    /// `Authorization` values by (registry, repository, credentials): a
    /// token got with one pod's credentials never serves another's pull.
    auth: Mutex<HashMap<AuthKey, HeaderValue>>,
}

impl Client {
    pub fn new(insecure_registries: &[String]) -> Result<Self, ImageError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ImageError::RegistryUnreachable {
                registry: "(any)".into(),
                reason: format!("setting up TLS: {e}"),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            insecure: insecure_registries.to_vec(),
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// Requests about one repository of the reference's registry.
    pub fn repo<'a>(&'a self, r: &Reference, credentials: Option<&Credentials>) -> Repo<'a> {
        Repo {
            client: self,
            base: base_url(r.domain(), &self.insecure),
            registry: r.domain().to_string(),
            path: r.path().to_string(),
            reference: r.to_string(),
            credentials: credentials.cloned(),
        }
    }

    fn cached_auth(&self, key: &AuthKey) -> Option<HeaderValue> {
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}

/// `scheme://host[:port]` of a registry: Docker Hub's API host for
/// `docker.io`, plain HTTP for the insecure ones.
pub(super) fn base_url(domain: &str, insecure: &[String]) -> String {
    let host = if domain == "docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    };
    let scheme = if insecure.iter().any(|i| i == domain) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}")
}

/// One repository of a registry.
pub(super) struct Repo<'a> {
    client: &'a Client,
    base: String,
    registry: String,
    path: String,
    /// The image reference, for messages.
    reference: String,
    credentials: Option<Credentials>,
}

/// A fetched manifest or index: its bytes and its media type as served.
pub(super) struct Document {
    pub bytes: Bytes,
    pub media_type: Option<String>,
}

impl Repo<'_> {
    /// The manifest (or index) named by a tag or a digest; at most `limit`
    /// bytes.
    pub async fn manifest(&self, target: &str, limit: usize) -> Result<Document, ImageError> {
        let url = format!("{}/v2/{}/manifests/{target}", self.base, self.path);
        let what = format!("manifest {target}");
        let resp = self.get(&url, Some(MANIFEST_ACCEPT), &what).await?;
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string());
        let bytes = read_limited(resp.into_body(), limit, &self.registry, &what).await?;
        Ok(Document { bytes, media_type })
    }

    /// A blob's response, its body not read yet.
    pub async fn blob(&self, digest: &Digest) -> Result<Incoming, ImageError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.path);
        let resp = self.get(&url, None, &format!("blob {digest}")).await?;
        Ok(resp.into_body())
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// A GET that follows redirects and answers one authentication
    /// challenge; anything but a 2xx becomes an error.
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Response<Incoming>, ImageError> {
        let key = (
            self.registry.clone(),
            self.path.clone(),
            self.credentials.clone(),
        );
        let mut url = url.to_string();
        let mut authenticated = false;
        let mut redirects = 0;
        loop {
            let same_origin = origin(&url) == origin(&self.base);
            let authorization = if same_origin {
                self.client.cached_auth(&key)
            } else {
                None
            };
            let resp = self.send(&url, accept, authorization).await?;
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_string);
                redirects += 1;
                match location {
                    Some(l) if redirects <= MAX_REDIRECTS => {
                        url = resolve(&url, &l);
                        continue;
                    }
                    _ => {
                        return Err(ImageError::Registry {
                            registry: self.registry.clone(),
                            what: what.to_string(),
                            status: status.as_u16(),
                            message: "a redirect without a Location, or too many redirects".into(),
                        });
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED && !authenticated && same_origin {
                authenticated = true;
                let challenges: Vec<Challenge> = resp
                    .headers()
                    .get_all(header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(auth::parse_challenges)
                    .collect();
                let value = self.authenticate(&challenges).await?;
                self.client
                    .auth
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), value);
                continue;
            }
            if status.is_success() {
                return Ok(resp);
            }
            let message = error_message(resp.into_body()).await;
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ImageError::Unauthorized {
                    reference: self.reference.clone(),
                    reason: format!("{} {what}: {message}", status.as_u16()),
                },
                StatusCode::NOT_FOUND => ImageError::ManifestUnknown {
                    reference: self.reference.clone(),
                    registry: self.registry.clone(),
                    detail: format!(" ({what}: {message})"),
                },
                _ => ImageError::Registry {
                    registry: self.registry.clone(),
                    what: what.to_string(),
                    status: status.as_u16(),
                    message,
                },
            });
        }
    }

    async fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        authorization: Option<HeaderValue>,
    ) -> Result<Response<Incoming>, ImageError> {
        let unreachable = |reason: String| ImageError::RegistryUnreachable {
            registry: self.registry.clone(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| unreachable(format!("bad URL {url}: {e}")))?;
        let mut req = Request::get(uri).header(header::USER_AGENT, USER_AGENT);
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT, accept);
        }
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| unreachable(format!("building a request for {url}: {e}")))?;
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.http.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                let hint = if url.starts_with("https:") && origin(url) == origin(&self.base) {
                    format!(
                        " (if {} serves plain HTTP, list it with --insecure-registry)",
                        self.registry
                    )
                } else {
                    String::new()
                };
                Err(unreachable(format!("GET {url}: {}{hint}", error_chain(&e))))
            }
            Err(_) => Err(unreachable(format!(
                "GET {url}: no answer within {}s",
                RESPONSE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Answers a `401`: a bearer token from the challenge's realm (with the
    /// credentials, if any), or the credentials themselves for Basic.
    async fn authenticate(&self, challenges: &[Challenge]) -> Result<HeaderValue, ImageError> {
        let denied = |reason: String| ImageError::Unauthorized {
            reference: self.reference.clone(),
            reason,
        };
        let header = |s: String| {
            HeaderValue::from_str(&s)
                .map_err(|_| denied("the credentials are not a valid header value".into()))
        };
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = bearer.param("realm") else {
                return Err(denied("a Bearer challenge without a realm".into()));
            };
            let scopes = match bearer.param("scope") {
                Some(s) => s.split(' ').map(str::to_string).collect(),
                None => vec![format!("repository:{}:pull", self.path)],
            };
            let url = auth::token_url(realm, bearer.param("service"), &scopes);
            let basic = self
                .credentials
                .as_ref()
                .map(|c| header(c.basic()))
                .transpose()?;
            let resp = self.send(&url, None, basic).await?;
            let status = resp.status();
            let body = read_limited(resp.into_body(), MAX_SMALL_BODY, &self.registry, "token")
                .await
                .unwrap_or_default();
            if !status.is_success() {
                let detail = String::from_utf8_lossy(&body).trim().to_string();
                return Err(denied(format!(
                    "the token server {realm} answered {}: {detail}",
                    status.as_u16()
                )));
            }
            let Some(token) = auth::token_from_response(&body) else {
                return Err(denied(format!("the token server {realm} sent no token")));
            };
            return header(format!("Bearer {token}"));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match &self.credentials {
                Some(c) => header(c.basic()),
                None => Err(denied(
                    "the registry wants a user name and password (Basic) and the pod has no \
                     imagePullSecret for it"
                        .into(),
                )),
            };
        }
        Err(denied(
            "the registry answered 401 without a Bearer or Basic challenge".into(),
        ))
    }
}

/// Reads a whole body of at most `limit` bytes.
pub(super) async fn read_limited(
    mut body: Incoming,
    limit: usize,
    registry: &str,
    what: &str,
) -> Result<Bytes, ImageError> {
    let mut out = BytesMut::new();
    while let Some(frame) = next_chunk(&mut body, registry, what).await? {
        if out.len() + frame.len() > limit {
            return Err(ImageError::Registry {
                registry: registry.to_string(),
                what: what.to_string(),
                status: 200,
                message: format!("more than {limit} bytes, too big"),
            });
        }
        out.extend_from_slice(&frame);
    }
    Ok(out.freeze())
}

/// The next data chunk of a body; `None` at its end.
pub(super) async fn next_chunk(
    body: &mut Incoming,
    registry: &str,
    what: &str,
) -> Result<Option<Bytes>, ImageError> {
    let unreachable = |reason: String| ImageError::RegistryUnreachable {
        registry: registry.to_string(),
        reason,
    };
    loop {
        match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "{what}: the transfer stalled for {}s",
                    IDLE_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(unreachable(format!(
                    "{what}: the transfer broke off: {}",
                    error_chain(&e)
                )));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// The registry's error list (`{"errors":[{"code":...,"message":...}]}`) as
/// one line, or the body's text.
async fn error_message(body: Incoming) -> String {
    let Ok(bytes) = read_limited(body, MAX_SMALL_BODY, "", "").await else {
        return String::new();
    };
    format_errors(&bytes)
}

pub(super) fn format_errors(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(bytes) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            if text.is_empty() {
                "(no details)".into()
            } else {
                text.chars().take(300).collect()
            }
        }
    }
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(u) => format!(
            "{}://{}",
            u.scheme_str().unwrap_or_default(),
            u.authority().map(|a| a.as_str()).unwrap_or_default()
        ),
        Err(_) => String::new(),
    }
}

/// A `Location` resolved against the URL it answered.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{location}")
    }
}

/// An error and its sources on one line (hyper's own message is terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
    use super::*;

    #[test]
    fn registries_are_reached_by_https_unless_listed_insecure() {
        let insecure = vec!["127.0.0.1:5000".to_string()];
        assert_eq!(
            base_url("127.0.0.1:5000", &insecure),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            base_url("127.0.0.1:5001", &insecure),
            "https://127.0.0.1:5001"
        );
        assert_eq!(base_url("docker.io", &[]), "https://registry-1.docker.io");
        assert_eq!(base_url("quay.io", &[]), "https://quay.io");
    }

    #[test]
    fn redirects_resolve_against_the_request() {
        let base = "http://127.0.0.1:5000/v2/lib/busybox/blobs/sha256:ab";
        assert_eq!(resolve(base, "https://s3/x?sig=1"), "https://s3/x?sig=1");
        assert_eq!(
            resolve(base, "/other/path"),
            "http://127.0.0.1:5000/other/path"
        );
        assert_eq!(resolve(base, "//cdn/x"), "http://cdn/x");
        assert_eq!(
            resolve(base, "sha256:cd"),
            "http://127.0.0.1:5000/v2/lib/busybox/blobs/sha256:cd"
        );
        assert_eq!(origin(base), "http://127.0.0.1:5000");
        assert_ne!(origin("https://s3/x"), origin(base));
    }

    #[test]
    fn registry_errors_are_summarized() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"2"}}]}"#;
        assert_eq!(format_errors(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(format_errors(b"  not found \n"), "not found");
        assert_eq!(format_errors(b""), "(no details)");
    }

    #[test]
    fn accept_lists_indexes_and_manifests_of_both_formats() {
        for m in [
            OCI_INDEX,
            DOCKER_MANIFEST_LIST,
            OCI_MANIFEST,
            DOCKER_MANIFEST,
        ] {
            assert!(MANIFEST_ACCEPT.contains(m), "{m}");
        }
    }
}
