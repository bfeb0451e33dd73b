use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::auth::bootstrap::bootstrap_objects;
use crate::auth::graph::{NodeGraph, Vertex};
use crate::auth::rbac::tests::{authorizer_with, decide, user};
use crate::auth::{Authorizer, Decision, UserInfo};

/// Pods and the paths from objects to nodes, given outright.
#[derive(Default)]
struct FakeGraph {
    pods: HashMap<(String, String), String>,
    paths: HashSet<(String, Vertex, String, String)>,
}

impl FakeGraph {
    fn pod(mut self, namespace: &str, name: &str, node: &str) -> Self {
        self.pods
            .insert((namespace.into(), name.into()), node.into());
        self
    }

    fn path(mut self, vertex: Vertex, namespace: &str, name: &str, node: &str) -> Self {
        self.paths
            .insert((node.into(), vertex, namespace.into(), name.into()));
        self
    }
}

impl NodeGraph for FakeGraph {
    fn pod_node(&self, namespace: &str, name: &str) -> Option<String> {
        self.pods
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn has_path(&self, node: &str, vertex: Vertex, namespace: &str, name: &str) -> bool {
        self.paths
            .contains(&(node.into(), vertex, namespace.into(), name.into()))
    }
}

/// Pod `default/here` on n1 references secret `db`, configmap `conf`, claim
/// `data` (bound to volume `pv-data`), resource claim `gpu` and service
/// account `app`; pod `default/there` on n2 references secret `other` and
/// service account `builder`.
fn authorizer() -> Authorizer {
    use Vertex::*;
    let graph = FakeGraph::default()
        .pod("default", "here", "n1")
        .pod("default", "there", "n2")
        .path(Secret, "default", "db", "n1")
        .path(ConfigMap, "default", "conf", "n1")
        .path(PersistentVolumeClaim, "default", "data", "n1")
        .path(PersistentVolume, "", "pv-data", "n1")
        .path(ResourceClaim, "default", "gpu", "n1")
        .path(ServiceAccount, "default", "app", "n1")
        .path(Secret, "default", "other", "n2")
        .path(ServiceAccount, "default", "builder", "n2");
    let (_, authorizer) = authorizer_with(&bootstrap_objects());
    authorizer.with_node_graph(Arc::new(graph))
}

fn n1() -> UserInfo {
    user("system:node:n1", &["system:nodes", "system:authenticated"])
}

fn check(cases: &[(&str, bool)]) {
    let authorizer = authorizer();
    let n1 = n1();
    for (request, want) in cases {
        let got = decide(&authorizer, &n1, request) == Decision::Allow;
        assert_eq!(got, *want, "{request}");
    }
}

fn reason(request: &str) -> String {
    match decide(&authorizer(), &n1(), request) {
        Decision::Deny { reason } => reason,
        Decision::Allow => panic!("{request} was allowed"),
    }
}

#[test]
fn secrets_and_configmaps_only_of_its_own_pods() {
    // A list or watch carries a name here when its field selector names one.
    check(&[
        ("get /secrets default/db", true),
        ("list /secrets default/db", true),
        ("watch /secrets default/db", true),
        ("get /configmaps default/conf", true),
        ("watch /configmaps default/conf", true),
        ("get /secrets default/other", false),
        ("get /secrets kube-system/db", false),
        ("get /secrets default/conf", false),
        ("get /configmaps default/db", false),
        ("list /secrets default", false),
        ("watch /secrets default", false),
        ("list /secrets", false),
        ("list /secrets /db", false),
        ("list /configmaps", false),
        ("delete /secrets default/db", false),
        ("update /configmaps default/conf", false),
        ("create /secrets default", false),
        ("get /secrets/status default/db", false),
    ]);
    assert_eq!(
        reason("get /secrets default/other"),
        r#"User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#
    );
    assert!(reason("list /secrets default").ends_with(": No Object name found"));
    assert!(reason("list /secrets").ends_with(": can only read namespaced object of this type"));
    assert!(
        reason("delete /secrets default/db").ends_with(": can only read resources of this type")
    );
    assert!(reason("get /secrets/x default/db").ends_with(": cannot read subresource"));
}

#[test]
fn claims_volumes_and_resource_claims_by_get_only() {
    check(&[
        ("get /persistentvolumeclaims default/data", true),
        ("get /persistentvolumeclaims default/elsewhere", false),
        ("list /persistentvolumeclaims default/data", false),
        ("update /persistentvolumeclaims/status default/data", true),
        ("patch /persistentvolumeclaims/status default/data", true),
        (
            "patch /persistentvolumeclaims/status default/elsewhere",
            false,
        ),
        ("get /persistentvolumeclaims/status default/data", false),
        ("update /persistentvolumeclaims default/data", false),
        ("get /persistentvolumes /pv-data", true),
        ("get /persistentvolumes /pv-other", false),
        ("list /persistentvolumes", false),
        ("get resource.k8s.io/resourceclaims default/gpu", true),
        ("get resource.k8s.io/resourceclaims default/tpu", false),
        ("watch resource.k8s.io/resourceclaims default/gpu", false),
    ]);
    assert!(
        reason("list /persistentvolumes")
            .ends_with(": can only get individual resources of this type")
    );
    assert!(
        reason("get /persistentvolumeclaims/status default/data")
            .ends_with(": can only get/update/patch this type")
    );
}

#[test]
fn tokens_only_for_its_pods_service_accounts() {
    check(&[
        ("create /serviceaccounts/token default/app", true),
        ("create /serviceaccounts/token default/builder", false),
        ("create /serviceaccounts/token kube-system/app", false),
        ("create /serviceaccounts/token default", false),
        ("get /serviceaccounts default/app", false),
        ("list /serviceaccounts default", false),
        ("create /serviceaccounts default", false),
    ]);
    assert!(
        reason("create /serviceaccounts/token default/builder")
            .ends_with(": no relationship found between node 'n1' and this object")
    );
    assert!(
        reason("get /serviceaccounts default/app")
            .ends_with(": can only create tokens for individual service accounts")
    );
    assert!(
        reason("create /serviceaccounts/other default/app")
            .ends_with(": can only create token subresource of serviceaccount")
    );
}

#[test]
fn its_own_node_and_lease() {
    check(&[
        ("get /nodes /n1", true),
        ("watch /nodes /n1", true),
        ("list /nodes /n1", true),
        ("get /nodes /n2", false),
        ("list /nodes", false),
        ("watch /nodes", false),
        // Which Node a write touches is admission's to check, with the body.
        ("create /nodes", true),
        ("update /nodes /n1", true),
        ("patch /nodes/status /n1", true),
        ("patch /nodes/status /n2", true),
        ("delete /nodes /n1", false),
        ("delete /nodes /n2", false),
        ("get /nodes/status /n1", false),
        ("update coordination.k8s.io/leases kube-node-lease/n1", true),
        ("get coordination.k8s.io/leases kube-node-lease/n1", true),
        ("delete coordination.k8s.io/leases kube-node-lease/n1", true),
        ("create coordination.k8s.io/leases kube-node-lease", true),
        (
            "update coordination.k8s.io/leases kube-node-lease/n2",
            false,
        ),
        ("get coordination.k8s.io/leases kube-node-lease/n2", false),
        ("get coordination.k8s.io/leases kube-system/n1", false),
        ("create coordination.k8s.io/leases kube-system", false),
        ("list coordination.k8s.io/leases kube-node-lease", false),
        ("watch coordination.k8s.io/leases kube-node-lease/n1", false),
    ]);
    assert!(
        reason("get /nodes /n2")
            .ends_with(": node 'n1' cannot read 'n2', only its own Node object")
    );
    assert!(
        reason("list /nodes")
            .ends_with(": node 'n1' cannot read all nodes, only its own Node object")
    );
    assert!(
        reason("create coordination.k8s.io/leases kube-system")
            .ends_with(r#": can only access leases in the "kube-node-lease" system namespace"#)
    );
    assert!(
        reason("update coordination.k8s.io/leases kube-node-lease/n2")
            .ends_with(": can only access node lease with the same name as the requesting node")
    );
    assert!(
        reason("list coordination.k8s.io/leases kube-node-lease")
            .ends_with(": can only get, create, update, patch, or delete a node lease")
    );
}

#[test]
fn pods_deleted_and_evicted_only_when_bound_here() {
    check(&[
        ("delete /pods default/here", true),
        ("delete /pods default/there", false),
        ("delete /pods default/nowhere", false),
        ("create /pods/eviction default/here", true),
        ("create /pods/eviction default/there", false),
        ("create /pods/eviction default/nowhere", false),
        // Status writes and creation are checked by admission, with the objects.
        ("patch /pods/status default/here", true),
        ("update /pods/status default/there", true),
        ("create /pods default", true),
        ("get /pods default/there", true),
        ("watch /pods", true),
        ("deletecollection /pods default", false),
        ("create /pods/binding default/here", false),
        ("update /pods default/here", false),
    ]);
    assert!(
        reason("delete /pods default/there")
            .ends_with(r#": node "n1" can only delete pods with spec.nodeName set to itself"#)
    );
    assert!(
        reason("create /pods/eviction default/there")
            .ends_with(": node n1 can only evict pods with spec.nodeName set to itself")
    );
}

#[test]
fn what_every_node_needs_and_what_rbac_decides() {
    check(&[
        ("list /services", true),
        ("watch /endpoints", true),
        ("list discovery.k8s.io/endpointslices", true),
        ("create /events default", true),
        ("patch events.k8s.io/events default/e", true),
        // Left to RBAC's system:node role.
        ("create authentication.k8s.io/tokenreviews", true),
        (
            "create certificates.k8s.io/certificatesigningrequests",
            true,
        ),
        ("create apps/deployments default", false),
        ("delete /services default/kubernetes", false),
    ]);
}

#[test]
fn denial_says_why() {
    assert_eq!(
        reason("get /nodes /n2"),
        r#"User "system:node:n1" cannot get resource "nodes" in API group "" at the cluster scope: node 'n1' cannot read 'n2', only its own Node object"#
    );
}

#[test]
fn only_members_of_system_nodes_are_nodes() {
    let authorizer = authorizer();
    // The node's name without the group: an ordinary user with no roles.
    let impostor = user("system:node:n1", &["system:authenticated"]);
    assert_ne!(
        decide(&authorizer, &impostor, "get /secrets default/db"),
        Decision::Allow
    );
    // The group without a node name: refused everything, not given the
    // system:node role's rights.
    for name in ["system:node:", "kubelet"] {
        let unknown = user(name, &["system:nodes", "system:authenticated"]);
        for request in ["list /secrets", "get /nodes /n1", "create /events default"] {
            assert_eq!(
                decide(&authorizer, &unknown, request),
                Decision::Deny {
                    reason: format!(
                        "{}: unknown node for user {name:?}",
                        forbidden(&unknown, request)
                    )
                },
                "{name} {request}"
            );
        }
    }
}

/// The RBAC half of a denial message, for comparing whole reasons.
fn forbidden(who: &UserInfo, request: &str) -> String {
    let (verb, target) = request.split_once(' ').unwrap();
    let (what, place) = target.split_once(' ').unwrap_or((target, ""));
    let mut parts = what.split('/');
    let (group, resource) = (parts.next().unwrap(), parts.next().unwrap());
    let (namespace, name) = place.split_once('/').unwrap_or((place, ""));
    crate::auth::forbidden_message(&crate::auth::Attributes {
        user: who,
        verb,
        api_group: group,
        resource,
        subresource: parts.next().unwrap_or(""),
        namespace,
        name,
        path: "",
        is_resource_request: true,
    })
}

#[test]
fn a_server_without_a_graph_knows_no_pods() {
    let (_, authorizer) = authorizer_with(&bootstrap_objects());
    let n1 = n1();
    for request in [
        "get /secrets default/db",
        "delete /pods default/here",
        "create /serviceaccounts/token default/app",
    ] {
        assert_ne!(
            decide(&authorizer, &n1, request),
            Decision::Allow,
            "{request}"
        );
    }
    assert_eq!(decide(&authorizer, &n1, "get /nodes /n1"), Decision::Allow);
}
