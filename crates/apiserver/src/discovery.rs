//! Discovery documents: what `/api`, `/apis`, `/api/v1` and `/apis/{group}/{version}` answer,
//! in both the legacy shape (`APIVersions`, `APIGroupList`, `APIResourceList`) and the
//! aggregated one (`apidiscovery.k8s.io` `APIGroupDiscoveryList`) that kubectl 1.27+ asks for
//! first. Everything is derived from the resource table, so a custom resource appears here as
//! soon as it is in the slice the caller passes.

use std::cmp::Ordering;

use apimachinery::resources::Resource;
use serde_json::{Map, Value, json};

/// Content type of an aggregated discovery response, v2.
pub const AGGREGATED_V2_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// Content type of an aggregated discovery response, v2beta1 (kubectl 1.26–1.29 ask only this).
pub const AGGREGATED_V2BETA1_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// The aggregated discovery versions a client may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregatedVersion {
    V2,
    V2Beta1,
}

impl AggregatedVersion {
    /// The `Content-Type` the response must carry: client-go decides by it, not by the body,
    /// whether it received aggregated discovery.
    pub fn content_type(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => AGGREGATED_V2_CONTENT_TYPE,
            AggregatedVersion::V2Beta1 => AGGREGATED_V2BETA1_CONTENT_TYPE,
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "apidiscovery.k8s.io/v2",
            AggregatedVersion::V2Beta1 => "apidiscovery.k8s.io/v2beta1",
        }
    }
}

/// Which aggregated document a request for `/api` or `/apis` wants, if any.
///
/// Media ranges are tried by descending `q` and then in the client's order, as Kubernetes'
/// negotiation does; `application/json` without the `g`/`v`/`as` parameters means the
/// legacy document, so the first acceptable range decides.
pub fn wants_aggregated(accept: &str) -> Option<AggregatedVersion> {
    let mut ranges: Vec<(f32, Option<AggregatedVersion>)> = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let base = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut g, mut v, mut r#as, mut q) = (None, None, None, 1.0f32);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim() {
                "g" => g = Some(value),
                "v" => v = Some(value),
                "as" => r#as = Some(value),
                "q" => q = value.parse().unwrap_or(0.0),
                _ => {}
            }
        }
        if q <= 0.0 {
            continue;
        }
        let aggregated = match (g, v, r#as) {
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                Some(AggregatedVersion::V2)
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                Some(AggregatedVersion::V2Beta1)
            }
            _ => None,
        };
        let json_like = matches!(base.as_str(), "application/json" | "application/*" | "*/*");
        if aggregated.is_some() && base == "application/json" {
            ranges.push((q, aggregated));
        } else if json_like && g.is_none() {
            ranges.push((q, None));
        }
    }
    // Stable sort keeps the client's order among equal q values.
    ranges.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal));
    ranges.first().and_then(|(_, version)| *version)
}

/// `GET /api`: the core group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`: every named group with its versions, preferred version first.
pub fn api_group_list(resources: &[Resource]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group_value(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`: one group, or `None` when nothing is served in it.
pub fn api_group(group: &str, resources: &[Resource]) -> Option<Value> {
    let (name, versions) = groups(resources)
        .into_iter()
        .find(|(g, _)| !g.is_empty() && g == group)?;
    let mut value = api_group_value(&name, &versions);
    if let Value::Object(map) = &mut value {
        map.insert("kind".into(), "APIGroup".into());
        map.insert("apiVersion".into(), "v1".into());
    }
    Some(value)
}

/// `GET /api/v1` (group `""`) and `GET /apis/{group}/{version}`; `None` when the group
/// version serves nothing, which the caller answers with 404.
pub fn api_resource_list(group: &str, version: &str, resources: &[Resource]) -> Option<Value> {
    let served: Vec<&Resource> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut entries: Vec<Value> = Vec::new();
    for r in served {
        let mut entry = Map::new();
        entry.insert("name".into(), r.plural.as_ref().into());
        entry.insert("singularName".into(), r.singular.as_ref().into());
        entry.insert("namespaced".into(), r.namespaced.into());
        entry.insert("kind".into(), r.kind.as_ref().into());
        entry.insert("verbs".into(), strings(&r.verbs));
        if !r.short_names.is_empty() {
            entry.insert("shortNames".into(), strings(&r.short_names));
        }
        if !r.categories.is_empty() {
            entry.insert("categories".into(), strings(&r.categories));
        }
        if !r.is_virtual() {
            entry.insert("storageVersionHash".into(), storage_version_hash(r).into());
        }
        entries.push(Value::Object(entry));
        for sub in r.subresources.iter() {
            let info = subresource(r, sub);
            let mut entry = Map::new();
            entry.insert("name".into(), format!("{}/{}", r.plural, sub).into());
            entry.insert("singularName".into(), "".into());
            entry.insert("namespaced".into(), r.namespaced.into());
            if let Some((g, v)) = info.group_version {
                entry.insert("group".into(), g.into());
                entry.insert("version".into(), v.into());
            }
            entry.insert("kind".into(), info.kind.into());
            entry.insert("verbs".into(), strings(info.verbs));
            entries.push(Value::Object(entry));
        }
    }
    entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

/// Which aggregated document: `/api` holds only the core group, `/apis` every named group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryRoot {
    /// `/api`
    Core,
    /// `/apis`
    Groups,
}

/// `GET /api` or `GET /apis` when [`wants_aggregated`] says so: groups, versions and
/// resources in one document. Serve it with [`AggregatedVersion::content_type`].
pub fn aggregated_discovery(
    root: DiscoveryRoot,
    version: AggregatedVersion,
    resources: &[Resource],
) -> Value {
    let items: Vec<Value> = groups(resources)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == (root == DiscoveryRoot::Core))
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let mut served: Vec<&Resource> = resources
                        .iter()
                        .filter(|r| r.group == group && r.version == *v)
                        .collect();
                    served.sort_by(|a, b| a.plural.cmp(&b.plural));
                    let resources: Vec<Value> =
                        served.into_iter().map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut metadata = Map::new();
            if !group.is_empty() {
                metadata.insert("name".into(), group.clone().into());
            }
            metadata.insert("creationTimestamp".into(), Value::Null);
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": version.api_version(),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut entry = Map::new();
    entry.insert("resource".into(), r.plural.as_ref().into());
    entry.insert(
        "responseKind".into(),
        json!({"group": "", "version": "", "kind": r.kind}),
    );
    entry.insert(
        "scope".into(),
        if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }
        .into(),
    );
    entry.insert("singularResource".into(), r.singular.as_ref().into());
    entry.insert("verbs".into(), strings(&r.verbs));
    if !r.short_names.is_empty() {
        entry.insert("shortNames".into(), strings(&r.short_names));
    }
    if !r.categories.is_empty() {
        entry.insert("categories".into(), strings(&r.categories));
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|sub| {
                let info = subresource(r, sub);
                let (g, v) = info.group_version.unwrap_or(("", ""));
                json!({
                    "subresource": sub,
                    "responseKind": {"group": g, "version": v, "kind": info.kind},
                    "verbs": info.verbs,
                })
            })
            .collect();
        entry.insert("subresources".into(), subs.into());
    }
    Value::Object(entry)
}

/// What a subresource answers with and which verbs it takes, as Kubernetes registers them.
struct Subresource<'a> {
    /// Set when the response is of another group version than the parent's.
    group_version: Option<(&'static str, &'static str)>,
    kind: &'a str,
    verbs: &'static [&'static str],
}

fn subresource<'a>(parent: &'a Resource, name: &str) -> Subresource<'a> {
    const READ_WRITE: &[&str] = &["get", "patch", "update"];
    const CREATE: &[&str] = &["create"];
    const CONNECT: &[&str] = &["create", "get"];
    const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];
    let own = |verbs| Subresource {
        group_version: None,
        kind: &parent.kind,
        verbs,
    };
    let other = |group, version, kind, verbs| Subresource {
        group_version: Some((group, version)),
        kind,
        verbs,
    };
    match name {
        "scale" => other("autoscaling", "v1", "Scale", READ_WRITE),
        "binding" => Subresource {
            group_version: None,
            kind: "Binding",
            verbs: CREATE,
        },
        "eviction" => other("policy", "v1", "Eviction", CREATE),
        "token" => other("authentication.k8s.io", "v1", "TokenRequest", CREATE),
        "log" => own(&["get"]),
        "exec" => Subresource {
            group_version: None,
            kind: "PodExecOptions",
            verbs: CONNECT,
        },
        "attach" => Subresource {
            group_version: None,
            kind: "PodAttachOptions",
            verbs: CONNECT,
        },
        "portforward" => Subresource {
            group_version: None,
            kind: "PodPortForwardOptions",
            verbs: CONNECT,
        },
        "proxy" if parent.kind == "Node" => Subresource {
            group_version: None,
            kind: "NodeProxyOptions",
            verbs: PROXY,
        },
        "proxy" => Subresource {
            group_version: None,
            kind: "ServiceProxyOptions",
            verbs: PROXY,
        },
        "finalize" => own(&["update"]),
        // status, ephemeralcontainers, resize and anything new read and write the parent.
        _ => own(READ_WRITE),
    }
}

/// Groups in table order (core first when present), each with its versions ordered
/// preferred-first by Kubernetes' version priority.
fn groups(resources: &[Resource]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in resources {
        match out.iter_mut().find(|(g, _)| g == r.group.as_ref()) {
            Some((_, versions)) if !versions.iter().any(|v| v == r.version.as_ref()) => {
                versions.push(r.version.to_string())
            }
            Some(_) => {}
            None => out.push((r.group.to_string(), vec![r.version.to_string()])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by(|a, b| compare_versions(a, b));
    }
    out
}

fn api_group_value(group: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = entries.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": entries, "preferredVersion": preferred})
}

/// Orders versions as Kubernetes does: GA before beta before alpha, higher numbers first,
/// anything not shaped like `v1beta2` last and alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `(stability, major, minor)` where a larger tuple is preferred.
fn parse_version(v: &str) -> Option<(u8, u64, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let major: u64 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    let (stability, minor) = if tail.is_empty() {
        return Some((2, major, 0));
    } else if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else {
        return None;
    };
    // Kubernetes treats a missing minor as 0, so v1beta sorts below v1beta1.
    let minor = if minor.is_empty() {
        0
    } else {
        minor.parse().ok()?
    };
    Some((stability, major, minor))
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(*s)).collect())
}

/// A stable, opaque hash of the storage version, as clients only compare it for equality.
/// Kubernetes uses 8 bytes of SHA-256 in base64; FNV-1a keeps the shape without a crypto
/// dependency.
fn storage_version_hash(r: &Resource) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("{}/{}/{}", r.group, r.version, r.kind).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    base64(&hash.to_be_bytes())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
