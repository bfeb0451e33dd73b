//! The node rule: what a kubelet identity (`system:node:NAME` in
//! `system:nodes`) may do, decided before RBAC. It allows what every node needs,
//! refuses writes to other nodes' objects, and leaves everything else to RBAC
//! (the `system:node` ClusterRole).

use super::groups;
use super::rbac::Attributes;

pub(super) enum NodeDecision {
    Allow,
    Deny(String),
    /// Not a node, or a request the rule does not cover.
    NoOpinion,
}

const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub(super) fn node_rule(
    attrs: &Attributes<'_>,
    pod_node: &dyn Fn(&str, &str) -> Option<String>,
) -> NodeDecision {
    let Some(node) = node_name(attrs) else {
        return NodeDecision::NoOpinion;
    };
    if !attrs.is_resource_request {
        return NodeDecision::NoOpinion;
    }
    let read = matches!(attrs.verb, "get" | "list" | "watch");
    let allow_if = |ok: bool, why: String| {
        if ok {
            NodeDecision::Allow
        } else {
            NodeDecision::Deny(why)
        }
    };
    let bound_here = || pod_node(attrs.namespace, attrs.name).is_some_and(|n| n == node);

    match (attrs.api_group, attrs.resource, attrs.subresource) {
        ("", "nodes", "" | "status") => match attrs.verb {
            "get" | "list" | "watch" => NodeDecision::Allow,
            // A create names its object in the body, which the admission step
            // must check against the node's own name.
            "create" if attrs.subresource.is_empty() => allow_if(
                attrs.name.is_empty() || attrs.name == node,
                format!("node '{node}' cannot create node '{}'", attrs.name),
            ),
            "update" | "patch" | "delete" => allow_if(
                attrs.name == node,
                format!("node '{node}' cannot modify node '{}'", attrs.name),
            ),
            _ => NodeDecision::NoOpinion,
        },
        ("coordination.k8s.io", "leases", "") => {
            let own_lease = attrs.namespace == NODE_LEASE_NAMESPACE
                && match attrs.verb {
                    "create" => attrs.name.is_empty() || attrs.name == node,
                    "get" | "update" | "patch" | "delete" => attrs.name == node,
                    _ => false,
                };
            allow_if(
                own_lease,
                format!(
                    "node '{node}' can only access its own lease in namespace {NODE_LEASE_NAMESPACE}"
                ),
            )
        }
        ("", "pods", "") => match attrs.verb {
            "get" | "list" | "watch" => NodeDecision::Allow,
            // The kubelet removes a pod it has finished stopping.
            "delete" => allow_if(
                bound_here(),
                format!("node '{node}' can only delete pods bound to it"),
            ),
            // Mirror pods (static pods) are not supported, so a node never creates pods.
            "create" => NodeDecision::Deny(format!("node '{node}' cannot create pods")),
            _ => NodeDecision::NoOpinion,
        },
        ("", "pods", "status") => match attrs.verb {
            "get" => NodeDecision::Allow,
            "update" | "patch" => allow_if(
                bound_here(),
                format!("node '{node}' can only update the status of pods bound to it"),
            ),
            _ => NodeDecision::NoOpinion,
        },
        ("", "pods", "eviction") if attrs.verb == "create" => allow_if(
            bound_here(),
            format!("node '{node}' can only evict pods bound to it"),
        ),
        ("" | "events.k8s.io", "events", "")
            if matches!(attrs.verb, "create" | "update" | "patch") =>
        {
            NodeDecision::Allow
        }
        // Kubernetes' node authorizer lets a node read only the secrets and
        // configmaps that pods bound to it reference (a graph of pods, volumes
        // and references). Until that graph exists nodes may read them all.
        ("", "secrets" | "configmaps" | "services" | "endpoints", "") if read => {
            NodeDecision::Allow
        }
        // Service routing on the node reads endpoint slices, as kube-proxy does.
        ("discovery.k8s.io", "endpointslices", "") if read => NodeDecision::Allow,
        // Kubernetes requires the token to be bound to a pod on this node; that
        // check belongs with the TokenRequest handler, which sees the body.
        ("", "serviceaccounts", "token") if attrs.verb == "create" => NodeDecision::Allow,
        _ => NodeDecision::NoOpinion,
    }
}

/// The node a user is, when it is one: `system:node:NAME` in `system:nodes`.
fn node_name<'a>(attrs: &Attributes<'a>) -> Option<&'a str> {
    let user = attrs.user;
    if !user.in_group(groups::NODES) {
        return None;
    }
    user.name
        .strip_prefix(groups::NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use crate::auth::Decision;
    use crate::auth::bootstrap::bootstrap_objects;
    use crate::auth::rbac::tests::{authorizer_with, decide, user};

    #[test]
    fn node_may_write_only_its_own_objects() {
        let (_, authorizer) = authorizer_with(&bootstrap_objects());
        let n1 = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        let pods = |ns: &str, name: &str| match (ns, name) {
            ("default", "here") => Some("n1".to_string()),
            ("default", "there") => Some("n2".to_string()),
            _ => None,
        };
        let cases = [
            ("get /nodes /n2", true),
            ("watch /nodes", true),
            ("create /nodes", true),
            ("update /nodes /n1", true),
            ("patch /nodes/status /n1", true),
            ("patch /nodes/status /n2", false),
            ("update /nodes /n2", false),
            ("delete /nodes /n2", false),
            ("update coordination.k8s.io/leases kube-node-lease/n1", true),
            ("create coordination.k8s.io/leases kube-node-lease", true),
            (
                "update coordination.k8s.io/leases kube-node-lease/n2",
                false,
            ),
            ("get coordination.k8s.io/leases kube-system/n1", false),
            ("list coordination.k8s.io/leases kube-node-lease", false),
            ("patch /pods/status default/here", true),
            ("patch /pods/status default/there", false),
            ("update /pods/status default/unscheduled", false),
            ("delete /pods default/here", true),
            ("delete /pods default/there", false),
            ("create /pods default", false),
            ("watch /pods", true),
            ("get /secrets default/db", true),
            ("list /configmaps", true),
            ("list /services", true),
            ("list discovery.k8s.io/endpointslices", true),
            ("create /events default", true),
            ("create events.k8s.io/events default", true),
            ("create /serviceaccounts/token default/app", true),
            // Left to RBAC's system:node role.
            ("create authentication.k8s.io/tokenreviews", true),
            (
                "create certificates.k8s.io/certificatesigningrequests",
                true,
            ),
            ("create apps/deployments default", false),
            ("delete /secrets default/db", false),
        ];
        for (request, want) in cases {
            let got = decide(&authorizer, &n1, request, &pods) == Decision::Allow;
            assert_eq!(got, want, "{request}");
        }
    }

    #[test]
    fn node_denial_says_why() {
        let (_, authorizer) = authorizer_with(&bootstrap_objects());
        let n1 = user("system:node:n1", &["system:nodes"]);
        let Decision::Deny { reason } = decide(&authorizer, &n1, "update /nodes /n2", &|_, _| None)
        else {
            panic!("allowed");
        };
        assert_eq!(
            reason,
            r#"User "system:node:n1" cannot update resource "nodes" in API group "" at the cluster scope: node 'n1' cannot modify node 'n2'"#
        );
    }

    #[test]
    fn node_name_without_the_group_is_not_a_node() {
        let (_, authorizer) = authorizer_with(&bootstrap_objects());
        let impostor = user("system:node:n1", &["system:authenticated"]);
        assert_ne!(
            decide(
                &authorizer,
                &impostor,
                "get /secrets default/db",
                &|_, _| None
            ),
            Decision::Allow
        );
    }
}
