//! Cluster secrets shared by every server through the store, so servers that
//! share an etcd cluster trust one CA and sign ServiceAccount tokens with one key
//! (an HA control plane). The files are encrypted with a key derived from the
//! cluster token: the store alone does not give them away, and a server started
//! with another token cannot join.

use std::num::NonZeroU32;
use std::path::Path;

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};
use store::{Store, StoreError};

use crate::pki::{CA_CERT, CA_KEY, SERVICE_ACCOUNT_KEY};

const KEY: &str = crate::keys::SHARED_PKI;
const SHARED_FILES: [&str; 3] = [CA_CERT, CA_KEY, SERVICE_ACCOUNT_KEY];
const PBKDF2_ROUNDS: u32 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SharedPkiError {
    #[error(
        "the datastore holds the cluster secrets of a cluster with another token; start this server with that cluster's --token"
    )]
    WrongToken,
    #[error("cluster secrets in the datastore are malformed: {0}")]
    Malformed(String),
    #[error("reading or writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
}

fn cipher(token: &str) -> LessSafeKey {
    let mut key = [0u8; 32];
    let rounds = NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        b"flotilla-cluster-secrets",
        token.as_bytes(),
        &mut key,
    );
    // A 32-byte key is always valid for AES-256-GCM.
    let unbound =
        UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!("32-byte AES key"));
    LessSafeKey::new(unbound)
}

fn seal(token: &str, plain: &[u8]) -> Result<Vec<u8>, SharedPkiError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SharedPkiError::Malformed("no randomness".into()))?;
    let mut buf = plain.to_vec();
    cipher(token)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .map_err(|_| SharedPkiError::Malformed("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open(token: &str, sealed: &[u8]) -> Result<Vec<u8>, SharedPkiError> {
    if sealed.len() < NONCE_LEN {
        return Err(SharedPkiError::Malformed("too short".into()));
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| SharedPkiError::Malformed("bad nonce".into()))?;
    let mut buf = rest.to_vec();
    let plain = cipher(token)
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| SharedPkiError::WrongToken)?;
    Ok(plain.to_vec())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SharedPkiError + '_ {
    move |source| SharedPkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Before the local PKI is loaded: if the store already holds cluster secrets,
/// write them into `tls_dir` (replacing local ones, which a joining server must
/// not use). Returns whether the store had them.
pub async fn fetch(store: &dyn Store, token: &str, tls_dir: &Path) -> Result<bool, SharedPkiError> {
    let Some(kv) = store.get(KEY, None).await? else {
        return Ok(false);
    };
    let plain = open(token, &kv.value)?;
    let files: Map<String, Value> =
        serde_json::from_slice(&plain).map_err(|e| SharedPkiError::Malformed(e.to_string()))?;
    std::fs::create_dir_all(tls_dir).map_err(io(tls_dir))?;
    for name in SHARED_FILES {
        let text = apimachinery::json::str_opt(&files, name)
            .ok_or_else(|| SharedPkiError::Malformed(format!("{name} missing")))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| SharedPkiError::Malformed(e.to_string()))?;
        let path = tls_dir.join(name);
        let current = std::fs::read(&path).ok();
        if current.as_deref() != Some(&bytes[..]) {
            crate::pki::write_atomic(&path, &bytes, 0o600)?;
        }
    }
    Ok(true)
}

/// After the local PKI was created: publish its shared files. Returns false when
/// another server published first (the caller then fetches theirs).
pub async fn publish(
    store: &dyn Store,
    token: &str,
    tls_dir: &Path,
) -> Result<bool, SharedPkiError> {
    let mut files = Map::new();
    for name in SHARED_FILES {
        let path = tls_dir.join(name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        files.insert(
            name.into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
    let plain = serde_json::to_vec(&files).map_err(|e| SharedPkiError::Malformed(e.to_string()))?;
    match store.create(KEY, seal(token, &plain)?.into()).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_token() {
        let sealed = seal("token-a", b"secret").expect("seal");
        assert_eq!(open("token-a", &sealed).expect("open"), b"secret");
        assert!(matches!(
            open("token-b", &sealed),
            Err(SharedPkiError::WrongToken)
        ));
        assert!(open("token-a", &sealed[..5]).is_err());
    }
}
