//! Store keys of built-in objects, for code that reads or writes an object of a
//! kind other than the request's: every key comes from the resource table's
//! `Resource::key`, so the layout lives in one place.

use apimachinery::resources::{Resource, builtin_by_kind};

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

#[cfg(test)]
mod tests {
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
    }
}
