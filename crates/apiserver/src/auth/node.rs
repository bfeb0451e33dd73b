//! The node authorizer: what a kubelet identity (`system:node:NAME` in
//! `system:nodes`) may do, decided before RBAC as Kubernetes' Node authorizer
//! does. A node reads only the secrets, configmaps, claims, volumes and
//! resource claims its own pods reference, creates tokens only for its pods'
//! service accounts, and reads only its own Node and Lease (a list or watch
//! with a `metadata.name` field selector counts as a read of that one name).
//! Writes Kubernetes checks in NodeRestriction admission (a node's own Node,
//! Lease, pod status, TokenRequest binding) are allowed here and checked in
//! `rest::node_restriction`, which sees the bodies; pod deletion and eviction,
//! which never reach admission in Flotilla, are checked here.
//!
//! Kubernetes' node authorizer answers "no opinion" for what it refuses and
//! relies on the `system:node` role being bound to nobody; Flotilla binds that
//! role to `system:nodes`, so what the node authorizer refuses is denied here
//! outright, before RBAC could grant it.

use super::graph::{NodeGraph, Vertex};
use super::rbac::Attributes;
use super::{UserInfo, groups};

pub(super) enum NodeDecision {
    Allow,
    Deny(String),
    /// Not a node, or a request the rule leaves to RBAC.
    NoOpinion,
}

/// The namespace of node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Kubernetes' node identity: `Some(name)` for a member of `system:nodes`
/// named `system:node:NAME`. A member of the group whose name does not say
/// which node it is gets `Some("")`, an unknown node, refused rather than
/// handed the `system:node` role's rights. Anyone else is `None`.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    if !user.in_group(groups::NODES) {
        return None;
    }
    Some(
        user.name
            .strip_prefix(groups::NODE_USER_PREFIX)
            .unwrap_or_default(),
    )
}

pub(super) fn node_rule(attrs: &Attributes<'_>, graph: &dyn NodeGraph) -> NodeDecision {
    let Some(node) = node_identity(attrs.user) else {
        return NodeDecision::NoOpinion;
    };
    if node.is_empty() {
        return NodeDecision::Deny(format!("unknown node for user {:?}", attrs.user.name));
    }
    if !attrs.is_resource_request {
        return NodeDecision::NoOpinion;
    }
    let rule = Rule { node, attrs, graph };
    let read = matches!(attrs.verb, "get" | "list" | "watch");
    match (attrs.api_group, attrs.resource) {
        ("", "secrets") => rule.read_namespaced(Vertex::Secret),
        ("", "configmaps") => rule.read_namespaced(Vertex::ConfigMap),
        ("", "persistentvolumeclaims") if attrs.subresource == "status" => {
            rule.status_update(Vertex::PersistentVolumeClaim)
        }
        ("", "persistentvolumeclaims") => rule.get(Vertex::PersistentVolumeClaim),
        ("", "persistentvolumes") => rule.get(Vertex::PersistentVolume),
        ("resource.k8s.io", "resourceclaims") => rule.get(Vertex::ResourceClaim),
        ("", "serviceaccounts") => rule.create_token(),
        ("coordination.k8s.io", "leases") => rule.lease(),
        ("", "nodes") => rule.node_object(),
        ("", "pods") => rule.pod(),
        ("" | "events.k8s.io", "events") if matches!(attrs.verb, "create" | "update" | "patch") => {
            NodeDecision::Allow
        }
        ("", "services" | "endpoints") if read => NodeDecision::Allow,
        // Service routing on the node reads endpoint slices, as kube-proxy does.
        ("discovery.k8s.io", "endpointslices") if read => NodeDecision::Allow,
        _ => NodeDecision::NoOpinion,
    }
}

/// One request by node `node`, with Kubernetes' refusal messages.
struct Rule<'a> {
    node: &'a str,
    attrs: &'a Attributes<'a>,
    graph: &'a dyn NodeGraph,
}

fn deny(why: impl Into<String>) -> NodeDecision {
    NodeDecision::Deny(why.into())
}

impl Rule<'_> {
    /// get, list and watch of one object of a namespaced kind (a list or watch
    /// names it with a `metadata.name` field selector).
    fn read_namespaced(&self, vertex: Vertex) -> NodeDecision {
        if !matches!(self.attrs.verb, "get" | "list" | "watch") {
            return deny("can only read resources of this type");
        }
        if !self.attrs.subresource.is_empty() {
            return deny("cannot read subresource");
        }
        if self.attrs.namespace.is_empty() {
            return deny("can only read namespaced object of this type");
        }
        self.related(vertex)
    }

    fn get(&self, vertex: Vertex) -> NodeDecision {
        if self.attrs.verb != "get" {
            return deny("can only get individual resources of this type");
        }
        if !self.attrs.subresource.is_empty() {
            return deny("cannot get subresource");
        }
        self.related(vertex)
    }

    fn status_update(&self, vertex: Vertex) -> NodeDecision {
        if !matches!(self.attrs.verb, "update" | "patch") {
            return deny("can only get/update/patch this type");
        }
        if self.attrs.subresource != "status" {
            return deny("can only update status subresource");
        }
        self.related(vertex)
    }

    /// Whether a path leads from the named object to this node.
    fn related(&self, vertex: Vertex) -> NodeDecision {
        if self.attrs.name.is_empty() {
            return deny("No Object name found");
        }
        self.path_from(vertex, self.attrs.name)
    }

    fn path_from(&self, vertex: Vertex, name: &str) -> NodeDecision {
        if self
            .graph
            .has_path(self.node, vertex, self.attrs.namespace, name)
        {
            NodeDecision::Allow
        } else {
            deny(format!(
                "no relationship found between node '{}' and this object",
                self.node
            ))
        }
    }

    /// TokenRequests for the service account of a pod on this node; that the
    /// token is bound to such a pod is checked with the body, in admission.
    fn create_token(&self) -> NodeDecision {
        if self.attrs.verb != "create" || self.attrs.name.is_empty() {
            return deny("can only create tokens for individual service accounts");
        }
        if self.attrs.subresource != "token" {
            return deny("can only create token subresource of serviceaccount");
        }
        self.path_from(Vertex::ServiceAccount, self.attrs.name)
    }

    /// The node's own Lease in `kube-node-lease`; a create names it in the
    /// body, which admission checks.
    fn lease(&self) -> NodeDecision {
        let verb = self.attrs.verb;
        if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
            return deny("can only get, create, update, patch, or delete a node lease");
        }
        if self.attrs.namespace != NODE_LEASE_NAMESPACE {
            return deny(format!(
                "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
            ));
        }
        if verb != "create" && self.attrs.name != self.node {
            return deny("can only access node lease with the same name as the requesting node");
        }
        NodeDecision::Allow
    }

    /// Node objects: reads of its own only; writes are admission's to check.
    fn node_object(&self) -> NodeDecision {
        let (verb, name) = (self.attrs.verb, self.attrs.name);
        match (self.attrs.subresource, verb) {
            ("", "create" | "update" | "patch") | ("status", "update" | "patch") => {
                NodeDecision::Allow
            }
            ("", "get" | "list" | "watch") if name == self.node => NodeDecision::Allow,
            ("", "get" | "list" | "watch") if name.is_empty() => deny(format!(
                "node '{}' cannot read all nodes, only its own Node object",
                self.node
            )),
            ("", "get" | "list" | "watch") => deny(format!(
                "node '{}' cannot read '{name}', only its own Node object",
                self.node
            )),
            _ => NodeDecision::NoOpinion,
        }
    }

    /// Pods. Reads stay open: Kubernetes limits a node's pod lists to its own
    /// (`spec.nodeName` field selector), which needs the field selector here.
    /// Creation and status writes are admission's to check; deletion and
    /// eviction, which do not pass admission, only of pods bound to this node.
    fn pod(&self) -> NodeDecision {
        let bound_here = || {
            self.graph
                .pod_node(self.attrs.namespace, self.attrs.name)
                .is_some_and(|n| n == self.node)
        };
        match (self.attrs.subresource, self.attrs.verb) {
            ("", "get" | "list" | "watch" | "create") | ("status", "update" | "patch") => {
                NodeDecision::Allow
            }
            ("", "delete") if bound_here() => NodeDecision::Allow,
            ("", "delete") => deny(format!(
                "node {:?} can only delete pods with spec.nodeName set to itself",
                self.node
            )),
            ("eviction", "create") if bound_here() => NodeDecision::Allow,
            ("eviction", "create") => deny(format!(
                "node {} can only evict pods with spec.nodeName set to itself",
                self.node
            )),
            _ => NodeDecision::NoOpinion,
        }
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
