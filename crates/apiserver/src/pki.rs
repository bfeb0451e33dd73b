//! The cluster's certificate authority, the API server's serving certificate and
//! the service-account signing key, kept as files so that a restart (or another
//! server given the same files) trusts and is trusted by everything issued before.
//!
//! Layout of the TLS directory (keys are 0600):
//! `server-ca.crt`, `server-ca.key`, `serving.crt`, `serving.key`, `service-account.key`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use time::{Duration, OffsetDateTime};

pub(crate) const CA_CERT: &str = "server-ca.crt";
pub(crate) const CA_KEY: &str = "server-ca.key";
const SERVING_CERT: &str = "serving.crt";
const SERVING_KEY: &str = "serving.key";
pub(crate) const SERVICE_ACCOUNT_KEY: &str = "service-account.key";

const CA_VALIDITY: Duration = Duration::days(3650);
/// Leaf certificates live a year, like k3s's; a start renews the serving
/// certificate once less than `RENEW_BEFORE` is left.
const LEAF_VALIDITY: Duration = Duration::days(365);
const RENEW_BEFORE: Duration = Duration::days(90);
/// Back-dating tolerates clocks of other machines running slightly behind.
const CLOCK_SKEW: Duration = Duration::hours(1);

/// Names every API server certificate carries, whatever the flags say: loopback
/// clients and in-cluster clients through the `kubernetes` Service.
const DEFAULT_DNS: &[&str] = &[
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Extra subject alternative names of the serving certificate: node IPs, the
/// first Service IP (10.43.0.1), load balancer names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerSans {
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
}

/// Failures of loading, creating or using the cluster's keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory under the TLS directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A key or certificate could not be generated, parsed or signed.
    #[error("{what}: {source}")]
    Certificate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    /// A certificate on disk is not a valid X.509 certificate.
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// Only one of the CA's two files exists; regenerating would orphan every
    /// certificate issued so far, so an operator has to decide.
    #[error(
        "{present} exists but {missing} does not; restore it or remove both to create a new cluster CA"
    )]
    IncompleteCa { present: PathBuf, missing: PathBuf },
    /// The subject of a certificate can hold one `O` attribute of each kind, so
    /// at most two organizations fit (see `subject`).
    #[error("a client certificate holds at most two organizations, {0} were asked for")]
    TooManyOrganizations(usize),
    /// rustls refused the certificate or key.
    #[error("building the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The client certificate verifier could not be built from the CA.
    #[error("building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The cluster CA with the API server's serving certificate and the
/// service-account signing key, loaded from (or first written to) one directory.
pub struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    serving_der: CertificateDer<'static>,
    serving_key: PrivatePkcs8KeyDer<'static>,
    service_account_key_pem: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the CA, serving certificate and service-account key from `dir` (for
    /// example `DATA_DIR/tls`), creating whatever is missing. The CA is never
    /// replaced once present; the serving certificate is reissued when the wanted
    /// names changed, it nears expiry, or it was not signed by this CA.
    pub fn load_or_create(dir: &Path, sans: &ServerSans) -> Result<Pki, PkiError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;

        let (ca_pem, ca_key) = load_or_create_ca(dir)?;
        let ca_der = pem_to_der(&ca_pem, &dir.join(CA_CERT))?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key)
            .map_err(cert_err(format!("{}", dir.join(CA_CERT).display())))?;

        let sa_path = dir.join(SERVICE_ACCOUNT_KEY);
        let service_account_key_pem = match read_optional(&sa_path)? {
            Some(pem) => pem,
            None => {
                let key = new_key()?;
                let pem = key.serialize_pem();
                write_atomic(&sa_path, pem.as_bytes(), 0o600)?;
                pem
            }
        };

        let (serving_der, serving_key) = load_or_create_serving(dir, sans, &ca_der, &issuer)?;
        Ok(Pki {
            ca_pem,
            ca_der,
            issuer,
            serving_der,
            serving_key,
            service_account_key_pem,
        })
    }

    /// The CA certificate in PEM, for kubeconfigs and agents.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate in DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The PKCS#8 PEM of the P-256 key that signs service-account tokens.
    pub fn service_account_key_pem(&self) -> &str {
        &self.service_account_key_pem
    }

    /// Issues a client certificate for user `common_name` in groups
    /// `organizations`, valid for a year, with a fresh key. Returns PEM
    /// `(certificate, private key)`.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), PkiError> {
        let key = new_key()?;
        let mut params = leaf_params(subject(common_name, organizations)?)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_err(format!(
                "signing a client certificate for {common_name:?}"
            )))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues a serving certificate for a node agent's endpoint, for its IP
    /// addresses and DNS names, valid for a year, with a fresh key. Returns
    /// PEM `(certificate, private key)`.
    pub fn issue_serving_cert(
        &self,
        common_name: &str,
        ips: &[IpAddr],
        dns: &[&str],
    ) -> Result<(String, String), PkiError> {
        let key = new_key()?;
        let mut params = leaf_params(subject(common_name, &[])?)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut sans: Vec<SanType> = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for name in dns {
            sans.push(SanType::DnsName((*name).to_string().try_into().map_err(
                cert_err(format!("subject alternative name {name:?}")),
            )?));
        }
        params.subject_alt_names = sans;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_err(format!(
                "signing a serving certificate for {common_name:?}"
            )))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs the public key of the PEM certificate signing request `csr_pem`
    /// (whose signature proves the requester holds the key) as a node's
    /// credentials: a client certificate for `system:node:<node_name>` in
    /// `system:nodes`, and with `serving` a serving certificate for the node's
    /// name and `addresses` (the agent's port 10250). Whatever subject or
    /// names the request asks for are ignored: the server decides them.
    pub fn sign_node_csr(
        &self,
        csr_pem: &str,
        node_name: &str,
        serving: Option<&[IpAddr]>,
    ) -> Result<String, PkiError> {
        let what = || format!("the certificate signing request of node {node_name:?}");
        let csr =
            rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(cert_err(what()))?;
        let user = format!("system:node:{node_name}");
        let mut params = leaf_params(subject(&user, &["system:nodes"])?)?;
        match serving {
            None => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
            Some(addresses) => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                let dns = node_name
                    .to_string()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(cert_err(format!("subject alternative name {node_name:?}")))?;
                params.subject_alt_names = std::iter::once(dns)
                    .chain(addresses.iter().map(|ip| SanType::IpAddress(*ip)))
                    .collect();
            }
        }
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(cert_err(what()))?;
        Ok(cert.pem())
    }

    /// A rustls configuration serving the API server's certificate, offering h2
    /// and HTTP/1.1, and asking for (but not requiring) a client certificate
    /// issued by the cluster CA.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, PkiError> {
        // Named explicitly so that another crate enabling aws-lc-rs in the same
        // build cannot make the process-wide default ambiguous.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.serving_der.clone()],
                PrivateKeyDer::Pkcs8(self.serving_key.clone_key()),
            )?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The serving certificate and key on disk if they are still right, else new ones.
fn load_or_create_serving(
    dir: &Path,
    sans: &ServerSans,
    ca_der: &CertificateDer<'_>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>), PkiError> {
    let cert_path = dir.join(SERVING_CERT);
    let key_path = dir.join(SERVING_KEY);
    let wanted = wanted_sans(sans);
    if let (Some(cert_pem), Some(key_pem)) = (read_optional(&cert_path)?, read_optional(&key_path)?)
    {
        let der = pem_to_der(&cert_pem, &cert_path)?;
        if serving_cert_is_current(&der, ca_der, &wanted, &cert_path)? {
            let key =
                KeyPair::from_pem(&key_pem).map_err(cert_err(format!("{}", key_path.display())))?;
            return Ok((der, PrivatePkcs8KeyDer::from(key.serialize_der())));
        }
        tracing::info!(path = %cert_path.display(), "reissuing the serving certificate");
    }

    let key = new_key()?;
    let mut params = leaf_params(subject("kube-apiserver", &[])?)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = wanted
        .iter()
        .map(|san| match san {
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            San::Dns(name) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(cert_err(format!("subject alternative name {name:?}"))),
        })
        .collect::<Result<_, _>>()?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_err("signing the serving certificate".to_string()))?;
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok((
        cert.der().clone(),
        PrivatePkcs8KeyDer::from(key.serialize_der()),
    ))
}

/// Whether a serving certificate on disk was signed by this CA, has the
/// wanted names and is not about to expire.
fn serving_cert_is_current(
    der: &[u8],
    ca_der: &[u8],
    wanted: &BTreeSet<San>,
    path: &Path,
) -> Result<bool, PkiError> {
    let parse_err = |reason: String| PkiError::Parse {
        path: path.to_owned(),
        reason,
    };
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der)
        .map_err(|e| parse_err(format!("cluster CA: {e}")))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| parse_err(e.to_string()))?;
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Ok(false);
    }
    let renew_at = OffsetDateTime::now_utc() + RENEW_BEFORE;
    if cert.validity().not_after.timestamp() < renew_at.unix_timestamp() {
        return Ok(false);
    }
    let mut present = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    present.insert(San::Dns(dns.to_string()));
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        present.insert(San::Ip(ip));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(&present == wanted)
}

/// One subject alternative name, ordered so that sets compare regardless of the
/// order flags were given in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum San {
    Ip(IpAddr),
    Dns(String),
}

fn wanted_sans(sans: &ServerSans) -> BTreeSet<San> {
    let mut set: BTreeSet<San> = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
    .into_iter()
    .chain(sans.ips.iter().copied())
    .map(San::Ip)
    .collect();
    set.extend(DEFAULT_DNS.iter().map(|d| San::Dns(d.to_string())));
    set.extend(sans.dns.iter().map(|d| San::Dns(d.to_ascii_lowercase())));
    set
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn load_or_create_ca(dir: &Path) -> Result<(String, KeyPair), PkiError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => {
            let key =
                KeyPair::from_pem(&key_pem).map_err(cert_err(format!("{}", key_path.display())))?;
            Ok((cert_pem, key))
        }
        (Some(_), None) => Err(PkiError::IncompleteCa {
            present: cert_path,
            missing: key_path,
        }),
        (None, Some(_)) => Err(PkiError::IncompleteCa {
            present: key_path,
            missing: cert_path,
        }),
        (None, None) => {
            let key = new_key()?;
            let now = OffsetDateTime::now_utc();
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            // k3s names its CA after the creation time, which tells two clusters' CAs apart.
            dn.push(
                DnType::CommonName,
                format!("flotilla-server-ca@{}", now.unix_timestamp()),
            );
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_before = now - CLOCK_SKEW;
            params.not_after = now + CA_VALIDITY;
            params.serial_number = Some(random_serial()?);
            let cert = params
                .self_signed(&key)
                .map_err(cert_err("creating the cluster CA".to_string()))?;
            // Key first: a crash in between leaves a key without a certificate,
            // which `IncompleteCa` reports instead of silently making a new CA.
            write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
            Ok((cert.pem(), key))
        }
    }
}

fn leaf_params(subject: DistinguishedName) -> Result<CertificateParams, PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + LEAF_VALIDITY;
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// A subject with `CN=common_name` and up to two `O` attributes. rcgen keeps one
/// attribute per type, so the second organization is written under the same OID
/// spelled as a custom type; parsers read both as `O`.
fn subject(common_name: &str, organizations: &[&str]) -> Result<DistinguishedName, PkiError> {
    const ORGANIZATION_OID: &[u64] = &[2, 5, 4, 10];
    let mut dn = DistinguishedName::new();
    match organizations {
        [] => {}
        [one] => dn.push(DnType::OrganizationName, *one),
        [one, two] => {
            dn.push(DnType::OrganizationName, *one);
            dn.push(DnType::CustomDnType(ORGANIZATION_OID.to_vec()), *two);
        }
        more => return Err(PkiError::TooManyOrganizations(more.len())),
    }
    dn.push(DnType::CommonName, common_name);
    Ok(dn)
}

fn new_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(cert_err("generating a P-256 key".to_string()))
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    // A positive integer: DER would otherwise read a set top bit as negative.
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

fn pem_to_der(pem: &str, path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let mut reader = pem.as_bytes();
    match rustls_pemfile::certs(&mut reader).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(e)) => Err(PkiError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        None => Err(PkiError::Parse {
            path: path.to_owned(),
            reason: "no certificate in file".into(),
        }),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Writes `data` to `path` with `mode` so that readers see the old file or the
/// whole new one, never a torn or briefly world-readable one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` applies only on creation; a leftover temp file keeps its own.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(io_err(path))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cert_err(what: String) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Certificate { what, source }
}

#[cfg(test)]
mod tests;
