//! The agent's side of joining (see `apiserver::join` for the protocol): pin
//! the cluster CA by the hash in the token, send two CSRs for keys generated
//! here, and keep what comes back under `DATA_DIR/agent`, k3s's file names:
//!
//! | file                  | what                                   | mode |
//! |-----------------------|----------------------------------------|------|
//! | `server-ca.crt`       | the cluster CA                         | 0644 |
//! | `client-kubelet.crt`  | client cert, `system:node:<name>`      | 0644 |
//! | `client-kubelet.key`  | its key (never leaves the machine)     | 0600 |
//! | `serving-kubelet.crt` | serving cert for the node's name + IPs | 0644 |
//! | `serving-kubelet.key` | its key                                | 0600 |
//! | `kubelet.kubeconfig`  | server URL, CA, client cert and key    | 0600 |
//!
//! A restart reuses them unless they no longer fit: another CA than the
//! token names, another node name or address, a key that does not match, or
//! less than a fifth of the certificate's lifetime left.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use apiserver::join::{
    CACERTS_PATH, JoinToken, NODE_CREDENTIALS_PATH, NodeCredentials, NodeCredentialsRequest,
    ca_hash,
};
use rcgen::PublicKeyData;

const CA: &str = "server-ca.crt";
const CLIENT_CERT: &str = "client-kubelet.crt";
const CLIENT_KEY: &str = "client-kubelet.key";
const SERVING_CERT: &str = "serving-kubelet.crt";
const SERVING_KEY: &str = "serving-kubelet.key";
pub const KUBECONFIG: &str = "kubelet.kubeconfig";

/// A node's credentials, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
}

/// Who the node is: what its certificates must name.
#[derive(Clone, Debug)]
pub struct Identity {
    pub node_name: String,
    pub addresses: Vec<IpAddr>,
}

impl Credentials {
    /// The credentials stored in `dir`, if all files are there.
    pub fn load(dir: &Path) -> Option<Credentials> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        Some(Credentials {
            ca_pem: read(CA)?,
            client_cert_pem: read(CLIENT_CERT)?,
            client_key_pem: read(CLIENT_KEY)?,
            serving_cert_pem: read(SERVING_CERT)?,
            serving_key_pem: read(SERVING_KEY)?,
        })
    }

    /// Writes them to `dir`, keys readable by the owner only.
    pub fn store(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, text, mode) in [
            (CA, &self.ca_pem, 0o644),
            (CLIENT_KEY, &self.client_key_pem, 0o600),
            (CLIENT_CERT, &self.client_cert_pem, 0o644),
            (SERVING_KEY, &self.serving_key_pem, 0o600),
            (SERVING_CERT, &self.serving_cert_pem, 0o644),
        ] {
            apiserver::pki::write_atomic(&dir.join(name), text.as_bytes(), mode)?;
        }
        Ok(())
    }

    /// Writes `dir/kubelet.kubeconfig` for `server_url` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, server_url: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(KUBECONFIG);
        apiserver::kubeconfig::write_kubeconfig(
            &path,
            server_url,
            &self.ca_pem,
            apiserver::kubeconfig::Credential::ClientCert {
                cert_pem: self.client_cert_pem.clone(),
                key_pem: self.client_key_pem.clone(),
            },
        )?;
        Ok(path)
    }

    /// Why these credentials cannot be used for `who` in the cluster `token`
    /// names, as of `now` (Unix seconds); `Ok` when they can.
    pub fn check(&self, token: &JoinToken, who: &Identity, now: i64) -> Result<(), String> {
        if let Some(hash) = &token.ca_hash
            && *hash != ca_hash(&self.ca_pem)
        {
            return Err("they are of another cluster than the token's".into());
        }
        let ca_der = pem_der(&self.ca_pem).ok_or("the CA is not a PEM certificate")?;
        let (_, ca) =
            x509_parser::parse_x509_certificate(&ca_der).map_err(|e| format!("the CA: {e}"))?;
        let user = format!("system:node:{}", who.node_name);
        for (what, cert_pem, key_pem, serving) in [
            ("client", &self.client_cert_pem, &self.client_key_pem, false),
            (
                "serving",
                &self.serving_cert_pem,
                &self.serving_key_pem,
                true,
            ),
        ] {
            let der = pem_der(cert_pem).ok_or(format!("the {what} certificate is not PEM"))?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| format!("the {what} certificate: {e}"))?;
            if cert.issuer().as_raw() != ca.subject().as_raw()
                || authority_key_id(&cert).is_some_and(|id| Some(id) != subject_key_id(&ca))
            {
                return Err(format!("the {what} certificate was issued by another CA"));
            }
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok());
            if cn != Some(user.as_str()) {
                return Err(format!("the {what} certificate is not for {user}"));
            }
            let key =
                rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("the {what} key: {e}"))?;
            if key.subject_public_key_info() != cert.public_key().raw {
                return Err(format!("the {what} key does not match its certificate"));
            }
            let validity = cert.validity();
            let (from, to) = (
                validity.not_before.timestamp(),
                validity.not_after.timestamp(),
            );
            if now >= to - (to - from) / 5 {
                return Err(format!("the {what} certificate expires soon"));
            }
            if serving {
                let sans = cert
                    .subject_alternative_name()
                    .ok()
                    .flatten()
                    .map(|s| s.value.general_names.clone())
                    .unwrap_or_default();
                let has_ip = |ip: &IpAddr| {
                    sans.iter().any(|n| match n {
                        x509_parser::extensions::GeneralName::IPAddress(b) => {
                            ip_bytes(ip) == b.to_vec()
                        }
                        _ => false,
                    })
                };
                if let Some(ip) = who.addresses.iter().find(|ip| !has_ip(ip)) {
                    return Err(format!("the serving certificate does not name {ip}"));
                }
            }
        }
        Ok(())
    }
}

/// The key identifiers that tell apart CAs whose names are alike.
fn subject_key_id<'a>(cert: &'a x509_parser::certificate::X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
            _ => None,
        })
}

fn authority_key_id<'a>(
    cert: &'a x509_parser::certificate::X509Certificate<'_>,
) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0)
            }
            _ => None,
        })
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(pem.contents)
}

/// The credentials in `dir` when they still fit, else new ones from the
/// server (stored in `dir`). Waits for a server that is not answering yet;
/// fails at once when it answers no.
pub async fn credentials(
    dir: &Path,
    server: &str,
    token_text: &str,
    who: &Identity,
) -> anyhow::Result<Credentials> {
    let token = JoinToken::parse(token_text).map_err(|e| anyhow!("--token: {e}"))?;
    if let Some(creds) = Credentials::load(dir) {
        match creds.check(&token, who, unix_now()) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "using the node's stored credentials");
                return Ok(creds);
            }
            Err(why) => tracing::info!(%why, "joining again: the stored credentials do not fit"),
        }
    }
    let mut delay = Duration::from_millis(500);
    let creds = loop {
        match join(server, &token, token_text, who).await {
            Ok(creds) => break creds,
            Err(JoinError::Refused(e)) => return Err(e),
            Err(JoinError::Unreachable(e)) => {
                tracing::warn!(server, error = %format!("{e:#}"), "cannot join yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    };
    creds.store(dir)?;
    tracing::info!(node = %who.node_name, server, "joined the cluster");
    Ok(creds)
}

enum JoinError {
    /// The server answered, and not with credentials: retrying will not help.
    Refused(anyhow::Error),
    /// No answer (yet).
    Unreachable(anyhow::Error),
}

fn classify(e: kube::Error, what: &str) -> JoinError {
    match e {
        kube::Error::Api(status) if status.code == 401 => JoinError::Refused(anyhow!(
            "{what}: the server refused the join token (401 Unauthorized): check --token"
        )),
        kube::Error::Api(status) if status.code != 503 && status.code != 429 => {
            JoinError::Refused(anyhow!(
                "{what}: the server refused ({} {}): {}",
                status.code,
                status.reason,
                status.message
            ))
        }
        other => JoinError::Unreachable(anyhow::Error::new(other).context(what.to_string())),
    }
}

fn client(server: &str, ca_pem: Option<&str>) -> anyhow::Result<kube::Client> {
    let url: http::Uri = server
        .parse()
        .with_context(|| format!("--server {server:?} is not a URL"))?;
    if url.scheme_str() != Some("https") {
        bail!("--server {server:?}: the API server is reached over https://");
    }
    let mut config = kube::Config::new(url);
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    config.default_retry = false;
    match ca_pem {
        Some(pem) => {
            config.root_cert = Some(vec![
                pem_der(pem).ok_or_else(|| anyhow!("the CA is not PEM"))?,
            ]);
        }
        // Only to read the CA, which is then checked against the token.
        None => config.accept_invalid_certs = true,
    }
    Ok(kube::Client::try_from(config)?)
}

async fn join(
    server: &str,
    token: &JoinToken,
    token_text: &str,
    who: &Identity,
) -> Result<Credentials, JoinError> {
    let refused = JoinError::Refused;
    let get = http::Request::get(CACERTS_PATH)
        .body(Vec::new())
        .map_err(|e| refused(e.into()))?;
    let ca_pem = client(server, None)
        .map_err(refused)?
        .request_text(get)
        .await
        .map_err(|e| classify(e, "fetching the cluster CA"))?;
    pem_der(&ca_pem).ok_or_else(|| {
        refused(anyhow!(
            "{server}{CACERTS_PATH} did not answer with a PEM certificate"
        ))
    })?;
    verify_ca(token, &ca_pem, server).map_err(refused)?;

    let new_key = || {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| refused(anyhow!("generating a key: {e}")))
    };
    let csr = |key: &rcgen::KeyPair| -> Result<String, JoinError> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("system:node:{}", who.node_name),
        );
        params
            .serialize_request(key)
            .and_then(|r| r.pem())
            .map_err(|e| refused(anyhow!("writing a certificate signing request: {e}")))
    };
    let (client_key, serving_key) = (new_key()?, new_key()?);
    let body = NodeCredentialsRequest {
        node_name: who.node_name.clone(),
        addresses: who.addresses.clone(),
        client_csr: csr(&client_key)?,
        serving_csr: csr(&serving_key)?,
    };
    let post = http::Request::post(NODE_CREDENTIALS_PATH)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token_text.trim()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).map_err(|e| refused(e.into()))?)
        .map_err(|e| refused(e.into()))?;
    let answer: NodeCredentials = client(server, Some(&ca_pem))
        .map_err(refused)?
        .request(post)
        .await
        .map_err(|e| classify(e, "obtaining the node's credentials"))?;
    if answer.ca != ca_pem {
        return Err(refused(anyhow!(
            "the server answered with another CA than it serves at {CACERTS_PATH}"
        )));
    }
    Ok(Credentials {
        ca_pem,
        client_cert_pem: answer.client_cert,
        client_key_pem: client_key.serialize_pem(),
        serving_cert_pem: answer.serving_cert,
        serving_key_pem: serving_key.serialize_pem(),
    })
}

/// Accepts `ca_pem` from `server` when its hash is the token's; a plain
/// token has none to compare, and the first CA is trusted (k3s does the same).
pub fn verify_ca(token: &JoinToken, ca_pem: &str, server: &str) -> anyhow::Result<()> {
    let actual = ca_hash(ca_pem);
    match &token.ca_hash {
        Some(expected) if *expected == actual => Ok(()),
        Some(expected) => bail!(
            "the server at {server} presented a cluster CA with SHA-256 {actual}, but the token \
             names {expected}: wrong --server, or a token of another cluster (use the token in \
             the server's DATA_DIR/token)"
        ),
        None => {
            tracing::warn!(
                server,
                ca_sha256 = %actual,
                "the token carries no CA hash: trusting the CA the server presented; give the \
                 token from the server's DATA_DIR/token (K10<hash>::server:<secret>) to verify it"
            );
            Ok(())
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster CA that signs node credentials the way the server does.
    fn cluster() -> (tempfile::TempDir, apiserver::pki::Pki) {
        let dir = tempfile::tempdir().unwrap();
        let pki = apiserver::pki::Pki::load_or_create(dir.path(), &Default::default()).unwrap();
        (dir, pki)
    }

    fn issue(pki: &apiserver::pki::Pki, name: &str, ips: &[IpAddr]) -> Credentials {
        let key = |_| rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (ck, sk) = (key(0), key(1));
        let csr = |k: &rcgen::KeyPair| {
            rcgen::CertificateParams::default()
                .serialize_request(k)
                .unwrap()
                .pem()
                .unwrap()
        };
        Credentials {
            ca_pem: pki.ca_pem().to_string(),
            client_cert_pem: pki.sign_node_csr(&csr(&ck), name, None).unwrap(),
            client_key_pem: ck.serialize_pem(),
            serving_cert_pem: pki.sign_node_csr(&csr(&sk), name, Some(ips)).unwrap(),
            serving_key_pem: sk.serialize_pem(),
        }
    }

    fn who(name: &str, ip: &str) -> Identity {
        Identity {
            node_name: name.into(),
            addresses: vec![ip.parse().unwrap()],
        }
    }

    #[test]
    fn the_ca_is_pinned_by_the_tokens_hash() {
        let (_d, pki) = cluster();
        let secure = JoinToken::parse("s3cret").unwrap().secure(pki.ca_pem());
        let token = JoinToken::parse(&secure).unwrap();
        verify_ca(&token, pki.ca_pem(), "https://s").unwrap();
        let (_d2, other) = cluster();
        let err = verify_ca(&token, other.ca_pem(), "https://s").unwrap_err();
        assert!(err.to_string().contains("wrong --server"), "{err}");
        // A plain token has nothing to pin with: the first CA is taken.
        verify_ca(
            &JoinToken::parse("s3cret").unwrap(),
            other.ca_pem(),
            "https://s",
        )
        .unwrap();
    }

    #[test]
    fn stored_credentials_are_reused_while_they_fit() {
        let (_d, pki) = cluster();
        let dir = tempfile::tempdir().unwrap();
        let creds = issue(&pki, "n1", &["10.0.0.1".parse().unwrap()]);
        creds.store(dir.path()).unwrap();
        let path = creds
            .write_kubeconfig(dir.path(), "https://127.0.0.1:6443")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        for file in [CLIENT_KEY, SERVING_KEY, KUBECONFIG] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        assert!(
            std::fs::read_to_string(path)
                .unwrap()
                .contains("https://127.0.0.1:6443")
        );

        let loaded = Credentials::load(dir.path()).expect("stored");
        assert_eq!(loaded, creds);
        let token = JoinToken::parse(&JoinToken::parse("s").unwrap().secure(pki.ca_pem())).unwrap();
        let now = unix_now();
        loaded.check(&token, &who("n1", "10.0.0.1"), now).unwrap();
        // A plain token cannot tell clusters apart; the certificates still must fit.
        loaded
            .check(&JoinToken::parse("s").unwrap(), &who("n1", "10.0.0.1"), now)
            .unwrap();

        let refuse = |t: &JoinToken, w: &Identity, now: i64| loaded.check(t, w, now).unwrap_err();
        assert!(refuse(&token, &who("n2", "10.0.0.1"), now).contains("system:node:n2"));
        assert!(refuse(&token, &who("n1", "10.0.0.2"), now).contains("10.0.0.2"));
        // Within the last fifth of a year's validity: renewed.
        assert!(refuse(&token, &who("n1", "10.0.0.1"), now + 300 * 86400).contains("expires"));
        let (_d2, other) = cluster();
        let other_token =
            JoinToken::parse(&JoinToken::parse("s").unwrap().secure(other.ca_pem())).unwrap();
        assert!(refuse(&other_token, &who("n1", "10.0.0.1"), now).contains("another cluster"));

        // A key that is not the certificate's.
        let mut swapped = loaded.clone();
        swapped.client_key_pem = loaded.serving_key_pem.clone();
        assert!(
            swapped
                .check(&token, &who("n1", "10.0.0.1"), now)
                .unwrap_err()
                .contains("match")
        );
        // Certificates of another CA next to this CA.
        let mut mixed = issue(&other, "n1", &["10.0.0.1".parse().unwrap()]);
        mixed.ca_pem = pki.ca_pem().to_string();
        assert!(
            mixed
                .check(&token, &who("n1", "10.0.0.1"), now)
                .unwrap_err()
                .contains("another CA")
        );

        // A missing file means joining again.
        std::fs::remove_file(dir.path().join(SERVING_KEY)).unwrap();
        assert!(Credentials::load(dir.path()).is_none());
    }
}
