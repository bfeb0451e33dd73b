//! Service-account tokens: ES256 JSON Web Tokens with the claims of Kubernetes'
//! bound tokens, signed with the cluster's service-account key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{KeyPair, PublicKeyData};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AuthError, UserInfo, groups};

/// Tolerated clock difference for `nbf`, as Kubernetes allows.
const NOT_BEFORE_LEEWAY: i64 = 60;

/// A service account a token is issued for.
#[derive(Clone, Copy, Debug)]
pub struct ServiceAccountRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// An object a token is bound to (TokenRequest `boundObjectRef`), which the
/// token then names in its claims and in the user's extra fields.
#[derive(Clone, Copy, Debug)]
pub struct BoundObject<'a> {
    pub name: &'a str,
    pub uid: &'a str,
}

/// What a token is bound to, as Kubernetes' claims carry it: a pod (with the
/// node it runs on, for information), a secret, or a node alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenBinding<'a> {
    pub pod: Option<BoundObject<'a>>,
    pub secret: Option<BoundObject<'a>>,
    pub node: Option<BoundObject<'a>>,
}

/// A bound object named in a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundRef {
    pub name: String,
    pub uid: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audiences,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

/// JWT allows `aud` as one string or a list; we issue lists but accept both.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audiences {
    One(String),
    Many(Vec<String>),
}

impl Audiences {
    fn as_slice(&self) -> &[String] {
        match self {
            Audiences::One(one) => std::slice::from_ref(one),
            Audiences::Many(many) => many,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: ObjectClaim,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<ObjectClaim>,
}

#[derive(Serialize, Deserialize)]
struct ObjectClaim {
    name: String,
    uid: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// What a verified token says.
#[derive(Debug)]
pub struct VerifiedToken {
    pub user: UserInfo,
    /// The token's audiences that the verifier accepted.
    pub audiences: Vec<String>,
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    /// The objects the token is bound to; it is good only while they exist.
    pub pod: Option<BoundRef>,
    pub secret: Option<BoundRef>,
    pub node: Option<BoundRef>,
}

/// Issues and verifies service-account tokens with one P-256 key.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    /// Uncompressed EC point, `04 || x || y`.
    public_key: Vec<u8>,
    key_id: String,
    issuer: String,
    rng: SystemRandom,
}

impl TokenSigner {
    /// Loads the PKCS#8 P-256 key in `key_pem`; tokens name `issuer` as `iss`.
    pub fn new(key_pem: &str, issuer: String) -> Result<Self, AuthError> {
        let parsed = KeyPair::from_pem(key_pem)
            .map_err(|e| AuthError::SigningKey(format!("reading the service-account key: {e}")))?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &parsed.serialize_der(),
            &rng,
        )
        .map_err(|e| {
            AuthError::SigningKey(format!("the service-account key is not a P-256 key: {e}"))
        })?;
        // Kubernetes derives the key id from the public key, so every server
        // holding the same key announces the same id.
        let digest = ring::digest::digest(&ring::digest::SHA256, &parsed.subject_public_key_info());
        Ok(TokenSigner {
            key,
            public_key: parsed.public_key_raw().to_vec(),
            key_id: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            issuer,
            rng,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JSON Web Key Set served at `/openid/v1/jwks`.
    pub fn jwks(&self) -> serde_json::Value {
        let (x, y) = self.public_key[1..].split_at(32);
        json!({
            "keys": [{
                "use": "sig",
                "kty": "EC",
                "kid": self.key_id,
                "crv": "P-256",
                "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }]
        })
    }

    /// Signs a token for `sa`, valid from `now` for `expiration_seconds`.
    pub fn issue(
        &self,
        sa: ServiceAccountRef<'_>,
        binding: TokenBinding<'_>,
        audiences: &[String],
        expiration_seconds: i64,
        now: i64,
    ) -> Result<String, AuthError> {
        let object = |o: BoundObject<'_>| ObjectClaim {
            name: o.name.to_string(),
            uid: o.uid.to_string(),
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: groups::service_account_user(sa.namespace, sa.name),
            aud: Audiences::Many(audiences.to_vec()),
            exp: now.saturating_add(expiration_seconds),
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaims {
                namespace: sa.namespace.to_string(),
                serviceaccount: ObjectClaim {
                    name: sa.name.to_string(),
                    uid: sa.uid.to_string(),
                },
                pod: binding.pod.map(object),
                secret: binding.secret.map(object),
                node: binding.node.map(object),
            },
        };
        let header = json!({ "alg": "ES256", "kid": self.key_id });
        let signing_input = format!("{}.{}", encode_json(&header)?, encode_json(&claims)?);
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| AuthError::SigningKey("signing a token failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// Checks signature, issuer, validity period and audience (one of
    /// `audiences` must be among the token's), as of `now`.
    pub fn verify(
        &self,
        token: &str,
        audiences: &[String],
        now: i64,
    ) -> Result<VerifiedToken, AuthError> {
        let invalid = |why: &str| AuthError::InvalidToken(why.to_string());
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a JSON web token"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| invalid("malformed base64"))
        };

        let header: Header = serde_json::from_slice(&decode(header)?)
            .map_err(|_| invalid("malformed token header"))?;
        if header.alg != "ES256" {
            return Err(invalid("unsupported signing algorithm"));
        }
        if header.kid.as_deref().is_some_and(|kid| kid != self.key_id) {
            return Err(invalid("signed by an unknown key"));
        }
        let signing_input = &token[..token.len() - signature.len() - 1];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public_key)
            .verify(signing_input.as_bytes(), &decode(signature)?)
            .map_err(|_| invalid("bad signature"))?;

        // Only now, with the signature checked, are the claims worth reading.
        let claims: Claims = serde_json::from_slice(&decode(payload)?)
            .map_err(|_| invalid("malformed token claims"))?;
        if claims.iss != self.issuer {
            return Err(invalid("issued by another issuer"));
        }
        if now >= claims.exp {
            return Err(AuthError::ExpiredToken);
        }
        if claims.nbf > now + NOT_BEFORE_LEEWAY {
            return Err(invalid("token is not valid yet"));
        }
        let accepted: Vec<String> = claims
            .aud
            .as_slice()
            .iter()
            .filter(|aud| audiences.contains(aud))
            .cloned()
            .collect();
        if accepted.is_empty() {
            return Err(invalid("token audiences are not accepted"));
        }
        let k8s = claims.kubernetes;
        let user_name = groups::service_account_user(&k8s.namespace, &k8s.serviceaccount.name);
        if claims.sub != user_name {
            return Err(invalid("subject does not match the service account"));
        }

        let mut extra = std::collections::BTreeMap::new();
        extra.insert(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec![format!("JTI={}", claims.jti)],
        );
        for (kind, object) in [("pod", &k8s.pod), ("node", &k8s.node)] {
            if let Some(object) = object {
                extra.insert(
                    format!("authentication.kubernetes.io/{kind}-name"),
                    vec![object.name.clone()],
                );
                extra.insert(
                    format!("authentication.kubernetes.io/{kind}-uid"),
                    vec![object.uid.clone()],
                );
            }
        }
        let bound = |o: Option<ObjectClaim>| {
            o.map(|o| BoundRef {
                name: o.name,
                uid: o.uid,
            })
        };
        Ok(VerifiedToken {
            user: UserInfo {
                name: user_name,
                uid: k8s.serviceaccount.uid.clone(),
                groups: vec![
                    groups::SERVICE_ACCOUNTS.to_string(),
                    format!("{}:{}", groups::SERVICE_ACCOUNTS, k8s.namespace),
                    groups::AUTHENTICATED.to_string(),
                ],
                extra,
            },
            audiences: accepted,
            namespace: k8s.namespace,
            service_account: k8s.serviceaccount.name,
            service_account_uid: k8s.serviceaccount.uid,
            pod: bound(k8s.pod),
            secret: bound(k8s.secret),
            node: bound(k8s.node),
        })
    }
}

fn encode_json<T: Serialize>(value: &T) -> Result<String, AuthError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| AuthError::SigningKey(format!("encoding a token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn signer() -> TokenSigner {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        TokenSigner::new(
            &key.serialize_pem(),
            "https://kubernetes.default.svc.cluster.local".into(),
        )
        .unwrap()
    }

    fn sa() -> ServiceAccountRef<'static> {
        ServiceAccountRef {
            namespace: "team",
            name: "builder",
            uid: "uid-1",
        }
    }

    fn api() -> Vec<String> {
        vec!["https://kubernetes.default.svc.cluster.local".to_string()]
    }

    #[test]
    fn issued_token_verifies_as_the_service_account() {
        let signer = signer();
        let pod = BoundObject {
            name: "web-0",
            uid: "pod-uid",
        };
        let binding = TokenBinding {
            pod: Some(pod),
            ..TokenBinding::default()
        };
        let token = signer.issue(sa(), binding, &api(), 3600, NOW).unwrap();
        let verified = signer.verify(&token, &api(), NOW + 10).unwrap();
        assert_eq!(verified.user.name, "system:serviceaccount:team:builder");
        assert_eq!(verified.user.uid, "uid-1");
        assert_eq!(
            verified.user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        assert_eq!(
            verified.user.extra["authentication.kubernetes.io/pod-name"],
            ["web-0"]
        );
        assert!(
            verified.user.extra["authentication.kubernetes.io/credential-id"][0]
                .starts_with("JTI=")
        );
        assert_eq!(verified.audiences, api());
        assert_eq!(
            verified.pod,
            Some(BoundRef {
                name: "web-0".into(),
                uid: "pod-uid".into()
            })
        );
        assert_eq!((verified.secret, verified.node), (None, None));
    }

    #[test]
    fn expired_token_is_rejected() {
        let signer = signer();
        let token = signer
            .issue(sa(), TokenBinding::default(), &api(), 600, NOW)
            .unwrap();
        assert!(matches!(
            signer.verify(&token, &api(), NOW + 600),
            Err(AuthError::ExpiredToken)
        ));
    }

    #[test]
    fn tampered_token_is_rejected() {
        let signer = signer();
        let token = signer
            .issue(sa(), TokenBinding::default(), &api(), 600, NOW)
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["kubernetes.io"]["namespace"] = "kube-system".into();
        claims["sub"] = "system:serviceaccount:kube-system:builder".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        );
        assert!(matches!(
            signer.verify(&forged, &api(), NOW),
            Err(AuthError::InvalidToken(_))
        ));
        // A token from another key with the same issuer is no better.
        let other = super::tests::signer()
            .issue(sa(), TokenBinding::default(), &api(), 600, NOW)
            .unwrap();
        assert!(signer.verify(&other, &api(), NOW).is_err());
        assert!(signer.verify("a.b", &api(), NOW).is_err());
    }

    #[test]
    fn audience_must_match() {
        let signer = signer();
        let token = signer
            .issue(
                sa(),
                TokenBinding::default(),
                &["vault".to_string()],
                600,
                NOW,
            )
            .unwrap();
        assert!(signer.verify(&token, &api(), NOW).is_err());
        let verified = signer.verify(&token, &["vault".to_string()], NOW).unwrap();
        assert_eq!(verified.audiences, ["vault"]);
    }

    #[test]
    fn jwks_names_the_signing_key() {
        let signer = signer();
        let jwks = signer.jwks();
        assert_eq!(jwks["keys"][0]["kid"], signer.key_id.as_str());
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
    }
}
