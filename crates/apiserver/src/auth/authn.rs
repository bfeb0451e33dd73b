//! Turns a request's credentials into a [`UserInfo`]: the verified client
//! certificate first, then a bearer token (a service-account token or the node
//! join token), as Kubernetes' union authenticator does.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::token::{ServiceAccountRef, TokenBinding, TokenSigner, VerifiedToken};
use super::{AuthError, UserInfo, groups};

/// The issuer and default audience of service-account tokens, as in Kubernetes.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Decides whether what a verified token names still exists: its service
/// account, and the pod, secret or node it is bound to, each with the uid the
/// token carries (Kubernetes' service-account token validator). `Err` says
/// why not. Without it a token outlives its service account and its pod
/// until it expires.
pub type ServiceAccountCheck = Arc<dyn Fn(&VerifiedToken) -> Result<(), String> + Send + Sync>;

/// Authenticates requests and issues service-account tokens.
pub struct Authenticator {
    signer: TokenSigner,
    /// Audiences a token must carry one of to authenticate to this API server.
    api_audiences: Vec<String>,
    /// SHA-256 of the join token's secret part, compared in constant time.
    join_secret: Option<[u8; 32]>,
    service_account_check: Option<ServiceAccountCheck>,
}

impl Authenticator {
    /// `service_account_key_pem` is the PKCS#8 P-256 key from the PKI;
    /// `join_token` the cluster token agents present before they have a certificate.
    pub fn new(service_account_key_pem: &str, join_token: Option<&str>) -> Result<Self, AuthError> {
        Ok(Authenticator {
            signer: TokenSigner::new(service_account_key_pem, DEFAULT_ISSUER.to_string())?,
            api_audiences: vec![DEFAULT_ISSUER.to_string()],
            join_secret: join_token
                .filter(|t| !t.is_empty())
                .map(|t| digest(join_secret(t))),
            service_account_check: None,
        })
    }

    /// Checks every service-account token against the live service accounts.
    pub fn with_service_account_check(mut self, check: ServiceAccountCheck) -> Self {
        self.service_account_check = Some(check);
        self
    }

    /// The `iss` of issued tokens, for OIDC discovery.
    pub fn issuer(&self) -> &str {
        self.signer.issuer()
    }

    /// The audiences tokens default to and this server accepts.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// The JSON Web Key Set that verifies issued tokens (`/openid/v1/jwks`).
    pub fn jwks(&self) -> serde_json::Value {
        self.signer.jwks()
    }

    /// Who sent a request: `peer` is the client certificate the TLS layer has
    /// already verified against the cluster CA, `authorization_header` the raw
    /// `Authorization` value. `Ok(None)` means no credentials (anonymous);
    /// credentials that were presented but do not hold up are an error (401).
    pub fn authenticate(
        &self,
        peer: Option<&CertificateDer<'_>>,
        authorization_header: Option<&str>,
    ) -> Result<Option<UserInfo>, AuthError> {
        // A valid certificate wins over a token, as in Kubernetes, where the
        // first authenticator that succeeds decides.
        if let Some(cert) = peer {
            return user_from_certificate(cert).map(Some);
        }
        let Some(token) = authorization_header.and_then(bearer_token) else {
            return Ok(None);
        };
        self.authenticate_token(token, &self.api_audiences)
            .map(|(user, _)| Some(user))
    }

    /// TokenReview: authenticates `token` for `audiences` (this server's when
    /// empty) and returns the user with the audiences the token matched.
    pub fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>), AuthError> {
        let audiences = if audiences.is_empty() {
            &self.api_audiences[..]
        } else {
            audiences
        };
        self.authenticate_token(token, audiences)
    }

    /// A token for the `serviceaccounts/token` subresource. Empty `audiences`
    /// means this API server's.
    pub fn issue_service_account_token(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        expiration_seconds: i64,
    ) -> Result<String, AuthError> {
        let sa = ServiceAccountRef {
            namespace,
            name,
            uid,
        };
        self.issue_bound_service_account_token(
            sa,
            TokenBinding::default(),
            audiences,
            expiration_seconds,
        )
    }

    /// Like [`Self::issue_service_account_token`] for a TokenRequest whose
    /// `boundObjectRef` names a pod (and the node it runs on), a secret or a node.
    pub fn issue_bound_service_account_token(
        &self,
        sa: ServiceAccountRef<'_>,
        binding: TokenBinding<'_>,
        audiences: &[String],
        expiration_seconds: i64,
    ) -> Result<String, AuthError> {
        let audiences = if audiences.is_empty() {
            &self.api_audiences[..]
        } else {
            audiences
        };
        self.signer.issue(
            sa,
            binding,
            audiences,
            expiration_seconds,
            crate::clock::unix_now(),
        )
    }

    fn authenticate_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>), AuthError> {
        if let Some(expected) = &self.join_secret
            && constant_time_eq(&digest(join_secret(token)), expected)
        {
            let user = UserInfo {
                name: groups::BOOTSTRAP_NODE_USER.to_string(),
                groups: vec![
                    groups::BOOTSTRAPPERS.to_string(),
                    groups::AUTHENTICATED.to_string(),
                ],
                ..UserInfo::default()
            };
            return Ok((user, audiences.to_vec()));
        }
        let verified: VerifiedToken =
            self.signer
                .verify(token, audiences, crate::clock::unix_now())?;
        if let Some(check) = &self.service_account_check {
            check(&verified).map_err(AuthError::InvalidToken)?;
        }
        Ok((verified.user, verified.audiences))
    }
}

/// The user a client certificate names: CN is the user, each O a group.
fn user_from_certificate(cert: &CertificateDer<'_>) -> Result<UserInfo, AuthError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| AuthError::Certificate(format!("unparseable: {e}")))?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| AuthError::Certificate("the subject has no common name".into()))?;
    let mut user_groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    user_groups.push(groups::AUTHENTICATED.to_string());
    Ok(UserInfo {
        name: name.to_string(),
        groups: user_groups,
        ..UserInfo::default()
    })
}

/// The token of an `Authorization: Bearer TOKEN` header; other schemes and
/// empty tokens count as no credentials, as in Kubernetes.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The secret of a k3s-style token: `K10<ca-hash>::<user>:<password>` carries
/// the password last; a plain token is all secret. Agents may be given either form.
fn join_secret(token: &str) -> &str {
    super::join_secret(token)
}

fn digest(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref());
    out
}

/// Comparing fixed-size digests byte by byte without an early exit keeps the
/// join token from being guessed one byte at a time through response timing.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::BoundObject;
    use crate::pki::{Pki, ServerSans};

    fn setup() -> (tempfile::TempDir, Pki, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &ServerSans::default()).unwrap();
        let authn =
            Authenticator::new(pki.service_account_key_pem(), Some("K10abc::server:s3cret"))
                .unwrap();
        (dir, pki, authn)
    }

    #[test]
    fn client_certificate_names_user_and_groups() {
        let (_dir, pki, authn) = setup();
        let (cert_pem, _) = pki
            .issue_client_cert("system:node:n1", &["system:nodes"])
            .unwrap();
        let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        // The bogus token is ignored: the certificate already identifies the caller.
        let user = authn
            .authenticate(Some(&der), Some("Bearer nonsense"))
            .unwrap()
            .unwrap();
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
    }

    #[test]
    fn no_credentials_is_anonymous_and_bad_token_is_an_error() {
        let (_dir, _pki, authn) = setup();
        assert_eq!(authn.authenticate(None, None).unwrap(), None);
        assert_eq!(
            authn
                .authenticate(None, Some("Basic dXNlcjpwdw=="))
                .unwrap(),
            None
        );
        assert_eq!(authn.authenticate(None, Some("Bearer ")).unwrap(), None);
        assert!(authn.authenticate(None, Some("Bearer wrong")).is_err());
        assert!(authn.authenticate(None, Some("Bearer a.b.c")).is_err());
    }

    #[test]
    fn join_token_in_either_form_is_the_bootstrap_user() {
        let (_dir, _pki, authn) = setup();
        for presented in [
            "Bearer s3cret",
            "Bearer K10abc::server:s3cret",
            "bearer  s3cret ",
        ] {
            let user = authn.authenticate(None, Some(presented)).unwrap().unwrap();
            assert_eq!(user.name, "system:bootstrap:node");
            assert_eq!(
                user.groups,
                ["system:bootstrappers", "system:authenticated"]
            );
        }
    }

    #[test]
    fn service_account_token_round_trip_and_check() {
        let (_dir, pki, authn) = setup();
        let token = authn
            .issue_service_account_token("default", "app", "u-1", &[], 3600)
            .unwrap();
        let header = format!("Bearer {token}");
        let user = authn.authenticate(None, Some(&header)).unwrap().unwrap();
        assert_eq!(user.name, "system:serviceaccount:default:app");

        // A token for another audience is good for TokenReview, not for this server.
        let vault = vec!["vault".to_string()];
        let other = authn
            .issue_service_account_token("default", "app", "u-1", &vault, 3600)
            .unwrap();
        assert!(
            authn
                .authenticate(None, Some(&format!("Bearer {other}")))
                .is_err()
        );
        let (_, audiences) = authn.review_token(&other, &vault).unwrap();
        assert_eq!(audiences, vault);

        let gone = Authenticator::new(pki.service_account_key_pem(), None)
            .unwrap()
            .with_service_account_check(Arc::new(|t: &VerifiedToken| {
                if t.service_account_uid == "u-1" {
                    Err("service account UID (u-2) does not match claim (u-1)".into())
                } else {
                    Ok(())
                }
            }));
        let err = gone.authenticate(None, Some(&header)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid bearer token: service account UID (u-2) does not match claim (u-1)"
        );
    }

    #[test]
    fn the_check_sees_what_the_token_is_bound_to() {
        let (_dir, pki, authn) = setup();
        let sa = ServiceAccountRef {
            namespace: "team",
            name: "app",
            uid: "sa-1",
        };
        let pod = BoundObject {
            name: "web",
            uid: "pod-1",
        };
        let node = BoundObject {
            name: "n1",
            uid: "node-1",
        };
        let binding = TokenBinding {
            pod: Some(pod),
            node: Some(node),
            ..TokenBinding::default()
        };
        let token = authn
            .issue_bound_service_account_token(sa, binding, &[], 3600)
            .unwrap();
        let header = format!("Bearer {token}");
        let live_pods = Arc::new(std::sync::Mutex::new(vec!["pod-1".to_string()]));
        let pods = live_pods.clone();
        let checked = Authenticator::new(pki.service_account_key_pem(), None)
            .unwrap()
            .with_service_account_check(Arc::new(move |t: &VerifiedToken| {
                let bound = t.pod.as_ref().ok_or("not bound")?;
                assert_eq!(
                    (bound.name.as_str(), t.node.as_ref().map(|n| n.uid.as_str())),
                    ("web", Some("node-1"))
                );
                if pods.lock().unwrap().contains(&bound.uid) {
                    Ok(())
                } else {
                    Err("service account token has been invalidated".into())
                }
            }));
        let user = checked.authenticate(None, Some(&header)).unwrap().unwrap();
        assert_eq!(user.extra["authentication.kubernetes.io/pod-name"], ["web"]);
        live_pods.lock().unwrap().clear();
        assert!(checked.authenticate(None, Some(&header)).is_err());
        assert!(checked.review_token(&token, &[]).is_err());
    }
}
