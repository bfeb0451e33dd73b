//! How an agent joins the cluster knowing only the server's URL and the join
//! token, the way k3s does it:
//!
//! 1. **Trust.** The token `DATA_DIR/token` holds is in k3s's "secure" format,
//!    `K10<sha256 of the CA certificate PEM, hex>::server:<secret>`. The agent
//!    fetches the CA from the unauthenticated [`CACERTS_PATH`] without
//!    verifying the server (it cannot yet), and accepts it only when its
//!    SHA-256 is the hash in the token: a server that is not this cluster's
//!    cannot answer with a CA of that hash, so the agent never shows the
//!    secret to it. A plain token (any string without that prefix, such as a
//!    `--token` an operator chose) carries no hash and still authenticates;
//!    the agent then trusts the CA it is first given, as k3s does, and warns.
//! 2. **Credentials.** With the pinned CA the agent calls
//!    [`NODE_CREDENTIALS_PATH`], presenting the token as a bearer token (the
//!    authenticator makes it `system:bootstrap:node` in
//!    `system:bootstrappers`), with two PEM certificate signing requests for
//!    keys it generated and keeps. The server signs a client certificate for
//!    `system:node:<name>` in `system:nodes` (the identity the node authorizer
//!    and NodeRestriction know) and a serving certificate for the node's name
//!    and addresses (its port 10250), and returns them with the CA.
//!
//! This is k3s's small endpoint rather than Kubernetes' CertificateSigningRequest
//! API with an auto-approver and a signer controller: same trust model (the
//! join token may obtain a certificate for any node name, as k3s's node
//! password aside and kubeadm's auto-approval both allow), one round trip,
//! and no CSR objects to garbage-collect. A node may also renew its own
//! credentials with its current client certificate.

use std::net::IpAddr;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub use crate::auth::{JoinToken, ca_hash, join_secret as secret};
use crate::auth::{UserInfo, groups};
use crate::error::ApiError;
use crate::pki::Pki;

/// The cluster CA certificate in PEM, served to anyone (it is public).
pub const CACERTS_PATH: &str = "/cacerts";
/// `POST` a [`NodeCredentialsRequest`], get [`NodeCredentials`].
pub const NODE_CREDENTIALS_PATH: &str = "/v1-flotilla/node-credentials";

/// Largest request body the endpoint reads (two CSRs are well under 2 KiB).
const MAX_REQUEST_BYTES: usize = 64 << 10;

/// What an agent asks [`NODE_CREDENTIALS_PATH`] for.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentialsRequest {
    pub node_name: String,
    /// The node's addresses, put into the serving certificate.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// PEM CSR for the client key (its subject is ignored).
    pub client_csr: String,
    /// PEM CSR for the serving key (its subject and names are ignored).
    pub serving_csr: String,
}

/// The answer: PEM certificates for the two keys, and the CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentials {
    pub client_cert: String,
    pub serving_cert: String,
    pub ca: String,
}

/// `GET /cacerts`.
pub fn cacerts(pki: &Pki, method: &Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed(format!("{method} is not allowed on {CACERTS_PATH}"))
            .into_response();
    }
    let mut r = Response::new(Body::from(pki.ca_pem().to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    r
}

/// `POST /v1-flotilla/node-credentials` by `user`.
pub async fn node_credentials(pki: &Pki, user: &UserInfo, method: &Method, body: Body) -> Response {
    if method != Method::POST {
        return ApiError::MethodNotAllowed(format!(
            "{method} is not allowed on {NODE_CREDENTIALS_PATH}"
        ))
        .into_response();
    }
    match sign(pki, user, body).await {
        Ok(creds) => match serde_json::to_vec(&creds) {
            Ok(bytes) => {
                let mut r = Response::new(Body::from(bytes));
                *r.status_mut() = StatusCode::CREATED;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            Err(e) => ApiError::internal(e.to_string()).into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Who may obtain credentials for `node_name`: a holder of the join token,
/// or the node itself renewing with its current certificate.
fn may_obtain(user: &UserInfo, node_name: &str) -> bool {
    user.in_group(groups::BOOTSTRAPPERS)
        || (user.in_group(groups::NODES)
            && user.name.strip_prefix(groups::NODE_USER_PREFIX) == Some(node_name))
}

async fn sign(pki: &Pki, user: &UserInfo, body: Body) -> Result<NodeCredentials, ApiError> {
    let body = crate::body::read(body, MAX_REQUEST_BYTES).await?;
    let req: NodeCredentialsRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("a node credentials request: {e}")))?;
    let problems = apimachinery::validation::is_dns1123_subdomain(&req.node_name);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "node name {:?}: {}",
            req.node_name,
            problems.join("; ")
        )));
    }
    if !may_obtain(user, &req.node_name) {
        return Err(ApiError::Forbidden(format!(
            "User \"{}\" cannot obtain credentials for node \"{}\": only holders of the join \
             token (group {}) and the node itself may",
            user.name,
            req.node_name,
            groups::BOOTSTRAPPERS
        )));
    }
    let bad = |e: crate::pki::PkiError| ApiError::BadRequest(e.to_string());
    let client_cert = pki
        .sign_node_csr(&req.client_csr, &req.node_name, None)
        .map_err(bad)?;
    let serving_cert = pki
        .sign_node_csr(&req.serving_csr, &req.node_name, Some(&req.addresses))
        .map_err(bad)?;
    tracing::info!(node = %req.node_name, by = %user.name, "issued node credentials");
    Ok(NodeCredentials {
        client_cert,
        serving_cert,
        ca: pki.ca_pem().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn only_bootstrappers_and_the_node_itself_obtain_credentials() {
        let user = |name: &str, groups: &[&str]| UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        };
        let joiner = user("system:bootstrap:node", &["system:bootstrappers"]);
        assert!(may_obtain(&joiner, "n1"));
        let n1 = user("system:node:n1", &["system:nodes"]);
        assert!(may_obtain(&n1, "n1"));
        assert!(!may_obtain(&n1, "n2"));
        let admin = user("system:admin", &["system:masters"]);
        assert!(!may_obtain(&admin, "n1"));
    }

    #[test]
    fn signed_node_certificates_name_the_node_whatever_the_request_says() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_create(dir.path(), &Default::default()).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["evil.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:admin");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();

        let client = pki.sign_node_csr(&csr, "n1", None).unwrap();
        let der = rustls_pemfile::certs(&mut client.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let authn = crate::auth::Authenticator::new(pki.service_account_key_pem(), None).unwrap();
        let user = authn.authenticate(Some(&der), None).unwrap().unwrap();
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.public_key().raw, key.subject_public_key_info());
        assert!(cert.subject_alternative_name().unwrap().is_none());

        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let serving = pki.sign_node_csr(&csr, "n1", Some(&[ip])).unwrap();
        let der = rustls_pemfile::certs(&mut serving.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans = format!(
            "{:?}",
            cert.subject_alternative_name().unwrap().unwrap().value
        );
        assert!(sans.contains("n1") && !sans.contains("evil"), "{sans}");
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );

        // A request whose signature does not hold is refused.
        let mut forged = csr.clone().into_bytes();
        let at = forged.len() / 2;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        assert!(
            pki.sign_node_csr(std::str::from_utf8(&forged).unwrap(), "n1", None)
                .is_err()
        );
    }
}
