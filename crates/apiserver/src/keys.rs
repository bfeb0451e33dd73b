//! Every store key the server uses. Objects' keys come from the resource table's
//! `Resource::key`, so their layout lives in one place; the few keys that hold no
//! API object are named here too, with where the watch cache stands on them.
//!
//! | keys | what | watch cache |
//! |---|---|---|
//! | `/registry/<resource>/…` ([`OBJECTS`]) | API objects | ingests them |
//! | `/registry/ranges/…` | service IP and node port claims | keeps only the key set ([`is_claim`]) |
//! | `/bootstrap/pki` ([`SHARED_PKI`]) | the shared CA and signing key, sealed | never sees it |

use std::borrow::Cow;
use std::fmt::Display;

use apimachinery::resources::{Resource, builtin_by_kind};

/// The prefix of every API object's key, which the watch cache lists and watches.
pub const OBJECTS: &str = "/registry/";

/// Where the allocators claim values, one key each. It sits under [`OBJECTS`], as
/// Kubernetes keeps its allocations under `/registry/ranges/`, and existing data
/// directories hold claims there; no resource is stored as `ranges`, and the
/// watch cache keeps these keys apart from objects.
const CLAIMS: &str = "/registry/ranges/";

/// The cluster secrets every server shares (`shared_pki`): outside [`OBJECTS`],
/// so no list, watch or cache ever holds them.
pub const SHARED_PKI: &str = "/bootstrap/pki";

/// The claim of one service cluster IP (as a Service spells it).
pub fn service_ip(ip: impl Display) -> String {
    format!("{CLAIMS}serviceips/{ip}")
}

/// The claim of one node port.
pub fn node_port(port: impl Display) -> String {
    format!("{CLAIMS}nodeports/{port}")
}

/// Whether `key` is an allocator's claim rather than an object.
pub fn is_claim(key: &str) -> bool {
    key.starts_with(CLAIMS)
}

/// The prefix of the keys of a stored resource (`pods`, `widgets.example.com`), as
/// `Resource::storage_resource` names it.
pub fn storage_prefix(storage_resource: &str) -> String {
    format!("{OBJECTS}{storage_resource}/")
}

/// The prefix of a custom resource's keys, for its group and plural alone (what
/// a CustomResourceDefinition's spec names).
pub fn custom_prefix(group: &str, plural: &str) -> String {
    Resource {
        group: Cow::Owned(group.to_string()),
        version: Cow::Borrowed(""),
        kind: Cow::Borrowed(""),
        plural: Cow::Owned(plural.to_string()),
        singular: Cow::Borrowed(""),
        namespaced: true,
        short_names: Cow::Borrowed(&[]),
        categories: Cow::Borrowed(&[]),
        subresources: Cow::Borrowed(&[]),
        verbs: Cow::Borrowed(&[]),
        fields: &[],
    }
    .key_prefix()
}

/// The built-in resource of `api_version` and `kind`; the table is fixed, so a
/// miss is a programming error caught by the tests below.
fn resource(api_version: &str, kind: &str) -> &'static Resource {
    builtin_by_kind(api_version, kind)
        .unwrap_or_else(|| panic!("{api_version} {kind} is not in the built-in resource table"))
}

/// The key of a built-in object; `namespace` is ignored for cluster-scoped kinds.
pub fn of(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> String {
    resource(api_version, kind).key(namespace, name)
}

/// The prefix of all of a built-in kind's keys.
pub fn prefix(api_version: &str, kind: &str) -> String {
    resource(api_version, kind).key_prefix()
}

/// The prefix of a namespaced built-in kind's keys in one namespace.
pub fn in_namespace(api_version: &str, kind: &str, namespace: &str) -> String {
    resource(api_version, kind).namespace_prefix(namespace)
}

pub fn namespace(name: &str) -> String {
    of("v1", "Namespace", None, name)
}

pub fn pod(namespace: &str, name: &str) -> String {
    of("v1", "Pod", Some(namespace), name)
}

pub fn node(name: &str) -> String {
    of("v1", "Node", None, name)
}

pub fn priority_class(name: &str) -> String {
    of("scheduling.k8s.io/v1", "PriorityClass", None, name)
}

pub fn service_account(namespace: &str, name: &str) -> String {
    of("v1", "ServiceAccount", Some(namespace), name)
}

pub fn secret(namespace: &str, name: &str) -> String {
    of("v1", "Secret", Some(namespace), name)
}

pub fn persistent_volume(name: &str) -> String {
    of("v1", "PersistentVolume", None, name)
}

pub fn persistent_volume_claim(namespace: &str, name: &str) -> String {
    of("v1", "PersistentVolumeClaim", Some(namespace), name)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn keys_follow_the_resource_table() {
        assert_eq!(namespace("default"), "/registry/namespaces/default");
        assert_eq!(pod("ns", "p"), "/registry/pods/ns/p");
        assert_eq!(node("n1"), "/registry/nodes/n1");
        assert_eq!(priority_class("high"), "/registry/priorityclasses/high");
        assert_eq!(
            of(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                Some("x"),
                "view"
            ),
            "/registry/clusterroles/view"
        );
        assert_eq!(
            prefix("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            "/registry/customresourcedefinitions/"
        );
        assert_eq!(
            in_namespace("policy/v1", "PodDisruptionBudget", "ns"),
            "/registry/poddisruptionbudgets/ns/"
        );
        assert_eq!(
            service_account("ns", "sa"),
            "/registry/serviceaccounts/ns/sa"
        );
        assert_eq!(secret("ns", "s"), "/registry/secrets/ns/s");
        assert_eq!(persistent_volume("pv"), "/registry/persistentvolumes/pv");
        assert_eq!(
            persistent_volume_claim("ns", "c"),
            "/registry/persistentvolumeclaims/ns/c"
        );
        assert_eq!(storage_prefix("roles"), "/registry/roles/");
    }

    #[test]
    fn custom_resource_prefixes_match_their_resources_keys() {
        assert_eq!(
            custom_prefix("example.com", "widgets"),
            "/registry/widgets.example.com/"
        );
        let crd = serde_json::json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}],
            },
        });
        let served = apimachinery::crd::served_resources(&crd);
        assert_eq!(served.len(), 1);
        let r = Resource::custom(&served[0]);
        let prefix = custom_prefix("example.com", "widgets");
        assert_eq!(r.key_prefix(), prefix);
        assert!(r.key(Some("ns"), "w").starts_with(&prefix));
    }

    /// Every object key is under the prefix the watch cache follows; the
    /// allocators' claims are too but are told apart, and no resource could be
    /// stored among them; the shared PKI is outside.
    #[test]
    fn internal_keys_are_told_apart_from_objects() {
        for r in apimachinery::resources::BUILTIN {
            let key = r.key(Some("ns"), "name");
            assert!(key.starts_with(OBJECTS), "{key}");
            assert!(!is_claim(&key), "{key}");
            assert_eq!(storage_prefix(&r.storage_resource()), r.key_prefix());
        }
        assert!(!is_claim(&custom_prefix("example.com", "ranges")));
        let ip = service_ip(Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(ip, "/registry/ranges/serviceips/10.43.0.1");
        assert_eq!(node_port(30080), "/registry/ranges/nodeports/30080");
        assert!(is_claim(&ip) && is_claim(&node_port(30080)));
        assert!(!SHARED_PKI.starts_with(OBJECTS));
    }
}
