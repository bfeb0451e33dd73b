//! The join token's two forms (see `crate::join`): k3s's secure
//! `K10<sha256 of the CA PEM>::<user>:<secret>` and a plain secret.

/// A join token, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The SHA-256 of the cluster CA certificate's PEM, lower-case hex, when
    /// the token is in the secure format.
    pub ca_hash: Option<String>,
    /// What the API server compares: the password part, or the whole token.
    pub secret: String,
}

impl JoinToken {
    /// Parses `K10<hash>::<user>:<secret>` or a plain token.
    pub fn parse(text: &str) -> Result<JoinToken, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the join token is empty".into());
        }
        let Some((hash, _)) = text.strip_prefix("K10").and_then(|r| r.split_once("::")) else {
            return Ok(JoinToken {
                ca_hash: None,
                secret: text.to_string(),
            });
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "the join token's CA hash {hash:?} is not a SHA-256 in hex (a token is \
                 K10<64 hex digits>::server:<secret>, or a plain secret)"
            ));
        }
        let secret = join_secret(text);
        if secret.is_empty() {
            return Err("the join token has an empty secret".into());
        }
        Ok(JoinToken {
            ca_hash: Some(hash.to_ascii_lowercase()),
            secret: secret.to_string(),
        })
    }

    /// The secure form of this token for a cluster with CA `ca_pem`.
    pub fn secure(&self, ca_pem: &str) -> String {
        format!("K10{}::server:{}", ca_hash(ca_pem), self.secret)
    }
}

/// The secret of a token in either form; infallible, for the authenticator
/// (a malformed token then simply does not match).
pub fn join_secret(token: &str) -> &str {
    let token = token.trim();
    match token
        .strip_prefix("K10")
        .and_then(|rest| rest.split_once("::"))
    {
        Some((_, credentials)) => credentials
            .split_once(':')
            .map_or(credentials, |(_, password)| password),
        None => token,
    }
}

/// SHA-256 of the CA certificate exactly as served at `/cacerts`, hex.
pub fn ca_hash(ca_pem: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn secure_and_plain_tokens_parse() {
        let t = JoinToken::parse(&format!("K10{HASH}::server:s3cret\n")).unwrap();
        assert_eq!(t.ca_hash.as_deref(), Some(HASH));
        assert_eq!(t.secret, "s3cret");
        // The tokens servers generated before they wrote the secure form.
        let plain = JoinToken::parse("K10a1b2c3d4e5f60718293a4b5c6d7e8f9").unwrap();
        assert_eq!(plain.ca_hash, None);
        assert_eq!(plain.secret, "K10a1b2c3d4e5f60718293a4b5c6d7e8f9");
        assert_eq!(JoinToken::parse("hunter2").unwrap().secret, "hunter2");
        // Without a user part the credentials are the secret.
        let no_user = JoinToken::parse(&format!("K10{}::pw", HASH.to_uppercase())).unwrap();
        assert_eq!(no_user.ca_hash.as_deref(), Some(HASH));
        assert_eq!(no_user.secret, "pw");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(JoinToken::parse("  ").is_err());
        assert!(
            JoinToken::parse("K10abc::server:pw")
                .unwrap_err()
                .contains("SHA-256")
        );
        assert!(JoinToken::parse(&format!("K10{HASH}::server:")).is_err());
    }

    #[test]
    fn secure_form_round_trips_and_matches_the_authenticator() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let t = JoinToken::parse("plain-secret").unwrap();
        let secure = t.secure(ca);
        let back = JoinToken::parse(&secure).unwrap();
        assert_eq!(back.ca_hash, Some(ca_hash(ca)));
        assert_eq!(back.secret, "plain-secret");
        assert_eq!(join_secret(&secure), "plain-secret");
        assert_eq!(join_secret("plain-secret"), "plain-secret");
    }
}
