//! NodeRestriction admission, as Kubernetes has it: what a node (`system:node:NAME`
//! in `system:nodes`) may write, judged with the objects themselves. A node
//! creates and updates only its own Node, may not set labels outside the
//! kubelet's set, change its taints or give itself a config source; it writes
//! only its own Lease in `kube-node-lease`, only the status of pods bound to it
//! (not their labels or resource claims), only the status conditions and
//! capacity of claims, and creates no pods (Flotilla has no mirror pods). Its
//! TokenRequests must be bound to a pod on it. The node authorizer
//! (`auth::node`) has already let the request through on its name; deletes and
//! evictions, which do not pass here, it checks itself.

use apimachinery::json::nonempty_ptr;
use apimachinery::resources::Resource;
use serde_json::Value;

use super::reviews::BoundObjectRef;
use super::strategy::Op;
use crate::auth::{NODE_LEASE_NAMESPACE, UserInfo, node_identity};
use crate::error::{ApiError, ApiResult};

/// The annotation that marks a mirror pod.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Labels under this prefix are the cluster's to set, never a node's.
const NODE_RESTRICTION_LABELS: &str = "node-restriction.kubernetes.io";
/// The `kubernetes.io` / `k8s.io` labels a kubelet may set on its own Node.
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];
/// Label namespaces (and their subdomains) a kubelet may set freely.
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// Admits a create or update of `obj` (`old` being the stored object on
/// update) by `user`; anyone but a node passes untouched. Refusals are 403s
/// worded as Kubernetes words them.
pub fn admit(
    user: &UserInfo,
    resource: &Resource,
    subresource: &str,
    op: Op,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let Some(node) = node_identity(user) else {
        return Ok(());
    };
    let forbid = |why: String| {
        Err(forbidden(
            resource,
            name_of(obj).or(old.and_then(name_of)),
            &why,
        ))
    };
    if node.is_empty() {
        return forbid(format!(
            "could not determine node from user {:?}",
            user.name
        ));
    }
    let why = match (resource.group.as_ref(), resource.plural.as_ref()) {
        ("", "pods") => pod(node, subresource, op, obj, old),
        ("", "nodes") => node_object(node, op, obj, old),
        ("", "persistentvolumeclaims") => claim(node, subresource, op, obj, old),
        ("coordination.k8s.io", "leases") => lease(node, obj, old),
        _ => None,
    };
    match why {
        Some(why) => forbid(why),
        None => Ok(()),
    }
}

/// Kubernetes' `pods "web" is forbidden: ...`: the resource without its
/// subresource, the object's name when it has one.
fn forbidden(resource: &Resource, name: Option<&str>, why: &str) -> ApiError {
    let what = if resource.group.is_empty() {
        resource.plural.to_string()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    };
    ApiError::Forbidden(match name {
        Some(name) => format!("{what} {name:?} is forbidden: {why}"),
        None => format!("{what} is forbidden: {why}"),
    })
}

fn name_of(obj: &Value) -> Option<&str> {
    nonempty_ptr(obj, "/metadata/name")
}

/// A value where absent, null, `[]` and `{}` are all "nothing", as
/// Kubernetes' semantic equality treats nil and empty alike.
fn meaningful(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    })
}

fn pod(node: &str, subresource: &str, op: Op, obj: &Value, old: Option<&Value>) -> Option<String> {
    match (subresource, op) {
        ("", Op::Create) => {
            let mirror = obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
                .is_some();
            Some(if mirror {
                format!("node {node:?} can not create pods: mirror pods are not supported")
            } else {
                format!(
                    "pod does not have {MIRROR_POD_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
                )
            })
        }
        ("", Op::Update) => Some(format!(
            "unexpected operation \"UPDATE\", node {node:?} can only create and delete mirror pods"
        )),
        ("status", Op::Update) => {
            let old = old.unwrap_or(&Value::Null);
            if nonempty_ptr(old, "/spec/nodeName") != Some(node) {
                return Some(format!(
                    "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                ));
            }
            let labels = |o: &Value| meaningful(o.pointer("/metadata/labels")).cloned();
            if labels(obj) != labels(old) {
                return Some(format!(
                    "node {node:?} cannot update labels through pod status"
                ));
            }
            let claims =
                |o: &Value| meaningful(o.pointer("/status/resourceClaimStatuses")).cloned();
            if claims(obj) != claims(old) {
                return Some(format!(
                    "node {node:?} cannot update resource claim statues"
                ));
            }
            None
        }
        ("status", Op::Create) => Some("unexpected operation \"CREATE\"".into()),
        (other, _) => Some(format!(
            "unexpected pod subresource {other:?}, only 'status' and 'eviction' are allowed"
        )),
    }
}

fn node_object(node: &str, op: Op, obj: &Value, old: Option<&Value>) -> Option<String> {
    let requested = name_of(obj).unwrap_or("");
    if requested != node {
        return Some(format!(
            "node {node:?} is not allowed to modify node {requested:?}"
        ));
    }
    let config_source = |o: &Value| meaningful(o.pointer("/spec/configSource")).cloned();
    let labels = |o: &Value| {
        o.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    match (op, old) {
        (Op::Create, _) | (Op::Update, None) => {
            if config_source(obj).is_some() {
                // Kubernetes' wording, "pods" and all.
                return Some(format!(
                    "node {node:?} is not allowed to create pods with a non-nil configSource"
                ));
            }
            let forbidden = forbidden_labels(&labels(obj), &Default::default());
            (!forbidden.is_empty()).then(|| {
                format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.join(", ")
                )
            })
        }
        (Op::Update, Some(old)) => {
            if let Some(source) = config_source(obj)
                && Some(&source) != config_source(old).as_ref()
            {
                return Some(format!(
                    "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                ));
            }
            let taints = |o: &Value| meaningful(o.pointer("/spec/taints")).cloned();
            if taints(obj) != taints(old) {
                return Some(format!("node {node:?} is not allowed to modify taints"));
            }
            let forbidden = forbidden_labels(&labels(obj), &labels(old));
            (!forbidden.is_empty())
                .then(|| format!("is not allowed to modify labels: {}", forbidden.join(", ")))
        }
    }
}

/// The labels added, removed or changed between `new` and `old` that a node
/// may not touch, sorted: `node-restriction.kubernetes.io` ones, and
/// `kubernetes.io` / `k8s.io` ones outside the kubelet's set.
fn forbidden_labels(
    new: &serde_json::Map<String, Value>,
    old: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let mut keys: Vec<&String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .chain(old.iter().filter(|(k, v)| new.get(*k) != Some(*v)))
        .map(|(k, _)| k)
        .filter(|k| !allowed_label(k))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().cloned().collect()
}

fn allowed_label(key: &str) -> bool {
    let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
    let under = |domain: &str| {
        namespace == domain
            || namespace
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    if under(NODE_RESTRICTION_LABELS) {
        return false;
    }
    let kubernetes = under("kubernetes.io") || under("k8s.io");
    !kubernetes
        || KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES.iter().any(|d| under(d))
}

fn claim(
    node: &str,
    subresource: &str,
    op: Op,
    obj: &Value,
    old: Option<&Value>,
) -> Option<String> {
    if subresource != "status" {
        return Some("may only update PVC status".into());
    }
    let Some(old) = old.filter(|_| op == Op::Update) else {
        return Some("unexpected operation \"CREATE\"".into());
    };
    // What a node may change: capacity, conditions and the resize bookkeeping.
    let comparable = |o: &Value| {
        let mut o = o.clone();
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        if let Some(status) = o.get_mut("status").and_then(Value::as_object_mut) {
            for key in [
                "capacity",
                "conditions",
                "allocatedResources",
                "allocatedResourceStatuses",
            ] {
                status.remove(key);
            }
        }
        o
    };
    let (new, old) = (comparable(obj), comparable(old));
    if new == old {
        return None;
    }
    let changed: Vec<&str> = ["metadata", "spec", "status"]
        .into_iter()
        .filter(|k| new.get(*k) != old.get(*k))
        .collect();
    Some(format!(
        "node {node:?} is not allowed to update fields other than status.capacity and status.conditions: {}",
        changed.join(", ")
    ))
}

fn lease(node: &str, obj: &Value, old: Option<&Value>) -> Option<String> {
    let namespace = nonempty_ptr(obj, "/metadata/namespace")
        .or_else(|| old.and_then(|o| nonempty_ptr(o, "/metadata/namespace")))
        .unwrap_or("");
    if namespace != NODE_LEASE_NAMESPACE {
        return Some(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    let name = old.and_then(name_of).or(name_of(obj)).unwrap_or("");
    (name != node)
        .then(|| "can only access node lease with the same name as the requesting node".into())
}

/// NodeRestriction for a TokenRequest (which does not pass [`admit`]): a node
/// gets tokens only bound to a pod, by uid, that runs on it. `find_pod`
/// looks a pod of the request's namespace up by name.
pub fn admit_token_request(
    user: &UserInfo,
    service_account: &str,
    bound: Option<&BoundObjectRef>,
    find_pod: &dyn Fn(&str) -> Option<Value>,
) -> ApiResult<()> {
    let Some(node) = node_identity(user) else {
        return Ok(());
    };
    let forbid = |why: &str| {
        Err(ApiError::Forbidden(format!(
            "serviceaccounts {service_account:?} is forbidden: {why}"
        )))
    };
    if node.is_empty() {
        return forbid(&format!(
            "could not determine node from user {:?}",
            user.name
        ));
    }
    let Some(r) = bound.filter(|r| r.api_version == "v1" && r.kind == "Pod" && !r.name.is_empty())
    else {
        return forbid("node requested token not bound to a pod");
    };
    if r.uid.is_empty() {
        return forbid("node requested token with a pod binding without a uid");
    }
    let Some(pod) = find_pod(&r.name) else {
        return Err(ApiError::not_found("", "pods", &r.name));
    };
    if nonempty_ptr(&pod, "/metadata/uid") != Some(r.uid.as_str()) {
        return forbid(&format!(
            "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
            r.uid
        ));
    }
    if nonempty_ptr(&pod, "/spec/nodeName") != Some(node) {
        return forbid("node requested token bound to a pod scheduled on a different node");
    }
    Ok(())
}

#[cfg(test)]
#[path = "node_restriction_tests.rs"]
mod tests;
