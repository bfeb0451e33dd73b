//! Registry authentication as the distribution spec describes it: a request
//! answered `401` carries `WWW-Authenticate` challenges; `Bearer realm=...,
//! service=...,scope=...` sends the client to a token server (anonymously or
//! with basic credentials) for a token it then presents, `Basic realm=...`
//! wants the credentials themselves.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A user name and password for one registry (from an image pull secret).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// The value of an `Authorization: Basic ...` header.
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials {{ username: {:?}, .. }}", self.username)
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`bearer`, `basic`).
    pub scheme: String,
    /// Parameters by lower-cased name (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses the challenges of one `WWW-Authenticate` header value (RFC 7235:
/// `scheme param=value, param="quoted \" value", other-scheme ...`).
/// Unparsable tails are dropped rather than failing the whole header.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_separators();
        let Some(scheme) = p.token() else { break };
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        loop {
            p.skip_separators();
            let save = p.i;
            let Some(name) = p.token() else { break };
            p.skip_spaces();
            if !p.eat(b'=') {
                // A token not followed by '=' starts the next challenge
                // (token68 credentials are not used by registries).
                p.i = save;
                break;
            }
            p.skip_spaces();
            let Some(value) = p.value() else { break };
            challenge.params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(challenge);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t') {
            self.i += 1;
        }
    }

    fn skip_separators(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b',') {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// An RFC 7230 token.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.i < self.s.len() && is_tchar(self.s[self.i]) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A token or a quoted string (with `\` escapes).
    fn value(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return self.token();
        }
        let mut out = Vec::new();
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' if self.i + 1 < self.s.len() => {
                    out.push(self.s[self.i + 1]);
                    self.i += 2;
                }
                b => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
        None
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b)
}

/// The URL of a token request: the realm with `service` and each scope as
/// query parameters.
pub fn token_url(realm: &str, service: Option<&str>, scopes: &[String]) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(service) = service {
        url.push(sep);
        url.push_str("service=");
        url.push_str(&query_escape(service));
        sep = '&';
    }
    for scope in scopes {
        url.push(sep);
        url.push_str("scope=");
        url.push_str(&query_escape(scope));
        sep = '&';
    }
    url
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token in a token server's JSON answer (`token`, or OAuth2's
/// `access_token`).
pub fn token_from_response(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let r: TokenResponse = serde_json::from_slice(body).ok()?;
    r.token
        .filter(|t| !t.is_empty())
        .or(r.access_token.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn basic_challenge_and_several_challenges_in_one_header() {
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        let c = parse_challenges(
            r#"Basic realm="a, b", BEARER Realm=http://127.0.0.1:1/token , service=reg,error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("http://127.0.0.1:1/token"));
        assert_eq!(c[1].param("service"), Some("reg"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn quoted_strings_keep_escapes_and_odd_input_does_not_panic() {
        let c = parse_challenges(r#"Bearer realm="x\"y",scope="a b""#);
        assert_eq!(c[0].param("realm"), Some("x\"y"));
        assert_eq!(c[0].param("scope"), Some("a b"));
        for odd in [
            "",
            ",,,",
            "Bearer",
            "Bearer realm=\"open",
            "=x",
            "Bearer ,realm",
        ] {
            let _ = parse_challenges(odd);
        }
        assert_eq!(parse_challenges("Bearer")[0].params.len(), 0);
    }

    #[test]
    fn token_urls_escape_their_parameters() {
        let url = token_url(
            "https://auth.example/token",
            Some("registry.example"),
            &["repository:lib/busybox:pull".into()],
        );
        assert_eq!(
            url,
            "https://auth.example/token?service=registry.example&scope=repository%3Alib%2Fbusybox%3Apull"
        );
        assert_eq!(token_url("http://h/t?a=1", None, &[]), "http://h/t?a=1");
        assert_eq!(
            token_url("http://h/t?a=1", None, &["s".into()]),
            "http://h/t?a=1&scope=s"
        );
    }

    #[test]
    fn tokens_and_basic_credentials() {
        assert_eq!(
            token_from_response(br#"{"token":"abc","expires_in":300}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_from_response(br#"{"access_token":"xyz"}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(token_from_response(br#"{"token":""}"#), None);
        assert_eq!(token_from_response(b"not json"), None);
        let c = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(c.basic(), "Basic dXNlcjpwYXNz");
        assert!(!format!("{c:?}").contains("pass"));
    }
}
