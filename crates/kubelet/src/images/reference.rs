//! Image references as Docker and containerd read them: `busybox` is
//! `docker.io/library/busybox:latest`; the first path component is a registry
//! host only if it has a `.` or a `:`, is `localhost`, or has upper case;
//! `name:tag`, `name@sha256:<hex>` and `name:tag@sha256:<hex>` are accepted.

use std::fmt;

use super::digest::{Digest, is_sha256_hex};
use super::error::ImageError;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes `reference`. A reference with neither tag nor
    /// digest gets the tag `latest`.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason,
        };
        if reference.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if is_sha256_hex(reference) {
            return Err(invalid(
                "a 64-digit hex string is an image id, write it as sha256:<hex>".into(),
            ));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|e| invalid(e.to_string()))?),
            ),
            None => (reference, None),
        };
        let (domain, remainder) = split_domain(rest);
        let (path, tag) = match remainder.rfind(':') {
            Some(i) => (&remainder[..i], Some(&remainder[i + 1..])),
            None => (remainder, None),
        };
        validate_domain(domain).map_err(&invalid)?;
        validate_path(path).map_err(&invalid)?;
        if let Some(tag) = tag {
            validate_tag(tag).map_err(&invalid)?;
        }
        let domain = if domain == LEGACY_DEFAULT_DOMAIN {
            DEFAULT_DOMAIN
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{path}")
        } else {
            path.to_string()
        };
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "repository name longer than {MAX_NAME_LEN} characters"
            )));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            domain: domain.to_string(),
            path,
            tag,
            digest,
        })
    }

    /// The registry host, with its port if any (`docker.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `domain/path@digest`, the form of a repo digest.
    pub fn with_digest(&self, digest: &Digest) -> String {
        format!("{}@{}", self.repository(), digest)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits off the registry host as Docker's `splitDockerDomain` does.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    }
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "registry host {domain:?} is not a valid host[:port]"
        ))
    };
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return bad();
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        match after {
            "" => return Ok(()),
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return bad(),
            },
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    if domain.starts_with('[') {
        return Ok(());
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && !c.starts_with('-')
            && !c.ends_with('-')
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.split('.').all(component_ok) {
        Ok(())
    } else {
        bad()
    }
}

/// Path components are `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".into());
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository name {path:?} must be lowercase"));
    }
    for component in path.split('/') {
        if !path_component_ok(component) {
            return Err(format!(
                "repository path component {component:?} must be lowercase letters and digits, \
                 separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        Reference::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    #[test]
    fn docker_hub_names_are_normalized() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            norm("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn registry_hosts_are_detected() {
        assert_eq!(norm("127.0.0.1:5000/x/y:t"), "127.0.0.1:5000/x/y:t");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(norm("quay.io/coreos/etcd"), "quay.io/coreos/etcd:latest");
        assert_eq!(
            norm("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(norm("Registry/app"), "Registry/app:latest");
        assert_eq!(norm("[::1]:5000/app"), "[::1]:5000/app:latest");
        // Without a '.', ':' or "localhost" the first component is a path.
        assert_eq!(norm("myhost/app"), "docker.io/myhost/app:latest");
        let r = Reference::parse("127.0.0.1:5000/x/y:t").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("127.0.0.1:5000", "x/y", Some("t"))
        );
        assert_eq!(r.repository(), "127.0.0.1:5000/x/y");
    }

    #[test]
    fn digests_are_kept_and_suppress_the_default_tag() {
        let d = format!("sha256:{HEX}");
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            norm(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().as_str(), d);
        assert_eq!(
            r.with_digest(r.digest().unwrap()),
            format!("docker.io/library/busybox@{d}")
        );
    }

    #[test]
    fn separators_in_paths() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "x/a.b-c_d/e"] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a..b", "a___b", "-a", "a-", "a/", "/a", "a//b", "_a", "a._b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Library/busybox",
            "busybox:",
            "busybox:-x",
            "busybox:a b",
            "busybox@sha256:abc",
            "busybox@md5:abc",
            "host:port/app",
            HEX,
        ] {
            let err = Reference::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid image reference"), "{err}");
        }
        let long_tag = format!("busybox:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        let long_name = "a".repeat(300);
        assert!(Reference::parse(&long_name).is_err());
    }
}
