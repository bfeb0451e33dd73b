//! What the node authorizer knows about pods. Kubernetes keeps a graph of pods
//! and the objects they reference, and lets a node at an object only when a
//! path leads from the object to the node:
//!
//! ```text
//! node <- pod <- secret | configmap | service account | resource claim
//! node <- pod <- pvc <- pv <- secret
//! ```
//!
//! Flotilla asks the same questions through [`NodeGraph`], answered from the
//! watch cache by looking at the asking node's own pods only (a node runs at
//! most a few hundred), so no answer costs more as the cluster grows. The
//! functions here say what one pod or volume references; they do no I/O.

use apimachinery::json::{self, nonempty_ptr};
use serde_json::Value;

/// The kinds of object a path from a node can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vertex {
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    /// Cluster-scoped: reached through the claim it is bound to.
    PersistentVolume,
    ResourceClaim,
    ServiceAccount,
}

/// The questions the node authorizer asks about pods. Implemented over the
/// watch cache by `crate::rbac_source::CacheRbac` and by fakes in tests.
pub trait NodeGraph: Send + Sync {
    /// The node pod `namespace/name` is bound to (`spec.nodeName`), when the
    /// pod exists and is bound.
    fn pod_node(&self, namespace: &str, name: &str) -> Option<String>;

    /// Whether a path leads from `vertex` `namespace/name` to `node`: a pod
    /// bound to `node` references it (a secret, configmap, claim or service
    /// account in the pod's namespace), or for a PersistentVolume (namespace
    /// empty) such a pod uses the claim it is bound to, or for a secret such a
    /// volume names it.
    fn has_path(&self, node: &str, vertex: Vertex, namespace: &str, name: &str) -> bool;
}

/// A graph with no pods: what an authorizer built without one (or before the
/// watch cache is loaded) knows. Every path question is answered no.
pub struct NoPods;

impl NodeGraph for NoPods {
    fn pod_node(&self, _: &str, _: &str) -> Option<String> {
        None
    }

    fn has_path(&self, _: &str, _: Vertex, _: &str, _: &str) -> bool {
        false
    }
}

/// The annotation that marks a mirror pod (a static pod's copy in the API).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The service account a pod runs as. Kubernetes' ServiceAccount admission
/// writes `default` into pods that name none, which Flotilla leaves unwritten;
/// the effective account is the same.
pub fn pod_service_account(pod: &Value) -> &str {
    ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|pointer| json::nonempty_ptr(pod, pointer))
        .unwrap_or("default")
}

/// Calls `visit` with every object `pod` references in its own namespace, as
/// Kubernetes' `AddPod` adds edges: its service account, image pull secrets,
/// the secrets and configmaps of every (init, ephemeral) container's `env` and
/// `envFrom`, of its volumes (projected sources included), its claims (ephemeral
/// volumes' too) and resource claims. Stops and returns true as soon as
/// `visit` does. A mirror pod references nothing: a node may create those.
pub fn visit_pod_references(pod: &Value, visit: &mut dyn FnMut(Vertex, &str) -> bool) -> bool {
    let mut visit = |vertex: Vertex, name: Option<&str>| match name {
        Some(n) if !n.is_empty() => visit(vertex, n),
        _ => false,
    };
    if pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
        .is_some()
    {
        return false;
    }
    let Some(spec) = pod.get("spec") else {
        return false;
    };
    if visit(Vertex::ServiceAccount, Some(pod_service_account(pod))) {
        return true;
    }
    for secret in items(spec, "imagePullSecrets") {
        if visit(Vertex::Secret, nonempty_ptr(secret, "/name")) {
            return true;
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in items(spec, list) {
            for from in items(container, "envFrom") {
                if visit(Vertex::Secret, nonempty_ptr(from, "/secretRef/name"))
                    || visit(Vertex::ConfigMap, nonempty_ptr(from, "/configMapRef/name"))
                {
                    return true;
                }
            }
            for env in items(container, "env") {
                if visit(
                    Vertex::Secret,
                    nonempty_ptr(env, "/valueFrom/secretKeyRef/name"),
                ) || visit(
                    Vertex::ConfigMap,
                    nonempty_ptr(env, "/valueFrom/configMapKeyRef/name"),
                ) {
                    return true;
                }
            }
        }
    }
    let pod_name = nonempty_ptr(pod, "/metadata/name").unwrap_or("");
    for volume in items(spec, "volumes") {
        if visit_volume(pod_name, volume, &mut visit) {
            return true;
        }
    }
    let claim_statuses = pod
        .pointer("/status/resourceClaimStatuses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for claim in items(spec, "resourceClaims") {
        // A claim made from a template is named in the pod's status once created.
        let name = nonempty_ptr(claim, "/resourceClaimName").or_else(|| {
            let own = nonempty_ptr(claim, "/name")?;
            claim_statuses
                .iter()
                .find(|s| nonempty_ptr(s, "/name") == Some(own))
                .and_then(|s| nonempty_ptr(s, "/resourceClaimName"))
        });
        if visit(Vertex::ResourceClaim, name) {
            return true;
        }
    }
    visit(
        Vertex::ResourceClaim,
        nonempty_ptr(pod, "/status/extendedResourceClaimStatus/resourceClaimName"),
    )
}

fn visit_volume(
    pod_name: &str,
    volume: &Value,
    visit: &mut dyn FnMut(Vertex, Option<&str>) -> bool,
) -> bool {
    let secret_refs = [
        "/secret/secretName",
        "/azureFile/secretName",
        "/cephfs/secretRef/name",
        "/cinder/secretRef/name",
        "/flexVolume/secretRef/name",
        "/rbd/secretRef/name",
        "/scaleIO/secretRef/name",
        "/iscsi/secretRef/name",
        "/storageos/secretRef/name",
        "/csi/nodePublishSecretRef/name",
    ];
    for pointer in secret_refs {
        if visit(Vertex::Secret, nonempty_ptr(volume, pointer)) {
            return true;
        }
    }
    if visit(Vertex::ConfigMap, nonempty_ptr(volume, "/configMap/name")) {
        return true;
    }
    let sources = volume
        .pointer("/projected/sources")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for source in sources {
        if visit(Vertex::Secret, nonempty_ptr(source, "/secret/name"))
            || visit(Vertex::ConfigMap, nonempty_ptr(source, "/configMap/name"))
        {
            return true;
        }
    }
    if visit(
        Vertex::PersistentVolumeClaim,
        nonempty_ptr(volume, "/persistentVolumeClaim/claimName"),
    ) {
        return true;
    }
    // An ephemeral volume's claim is named after the pod and the volume.
    if volume.get("ephemeral").is_some_and(|e| !e.is_null())
        && let Some(volume_name) = nonempty_ptr(volume, "/name")
    {
        let claim = format!("{pod_name}-{volume_name}");
        return visit(Vertex::PersistentVolumeClaim, Some(&claim));
    }
    false
}

/// Whether `pod` references `vertex` `name` (in the pod's own namespace).
pub fn pod_references(pod: &Value, vertex: Vertex, name: &str) -> bool {
    visit_pod_references(pod, &mut |v, n| v == vertex && n == name)
}

/// The claim a PersistentVolume is bound to (`spec.claimRef`).
pub fn pv_claim(pv: &Value) -> Option<(&str, &str)> {
    Some((
        nonempty_ptr(pv, "/spec/claimRef/namespace")?,
        nonempty_ptr(pv, "/spec/claimRef/name")?,
    ))
}

/// Whether PersistentVolume `pv` names secret `namespace/name` for the kubelet
/// to use (Kubernetes' `VisitPVSecretNames`, the kubelet-visible ones). A
/// reference without a namespace means the bound claim's.
pub fn pv_references_secret(pv: &Value, namespace: &str, name: &str) -> bool {
    let Some(spec) = pv.get("spec") else {
        return false;
    };
    let claim_ns = nonempty_ptr(pv, "/spec/claimRef/namespace").unwrap_or("");
    let refs: [(&str, Option<&str>); 11] = [
        (
            "/azureFile/secretName",
            nonempty_ptr(spec, "/azureFile/secretNamespace"),
        ),
        (
            "/cephfs/secretRef/name",
            nonempty_ptr(spec, "/cephfs/secretRef/namespace"),
        ),
        (
            "/flexVolume/secretRef/name",
            nonempty_ptr(spec, "/flexVolume/secretRef/namespace"),
        ),
        (
            "/rbd/secretRef/name",
            nonempty_ptr(spec, "/rbd/secretRef/namespace"),
        ),
        (
            "/scaleIO/secretRef/name",
            nonempty_ptr(spec, "/scaleIO/secretRef/namespace"),
        ),
        (
            "/iscsi/secretRef/name",
            nonempty_ptr(spec, "/iscsi/secretRef/namespace"),
        ),
        (
            "/cinder/secretRef/name",
            nonempty_ptr(spec, "/cinder/secretRef/namespace"),
        ),
        (
            "/storageos/secretRef/name",
            nonempty_ptr(spec, "/storageos/secretRef/namespace"),
        ),
        (
            "/csi/nodePublishSecretRef/name",
            nonempty_ptr(spec, "/csi/nodePublishSecretRef/namespace"),
        ),
        (
            "/csi/nodeStageSecretRef/name",
            nonempty_ptr(spec, "/csi/nodeStageSecretRef/namespace"),
        ),
        (
            "/csi/nodeExpandSecretRef/name",
            nonempty_ptr(spec, "/csi/nodeExpandSecretRef/namespace"),
        ),
    ];
    refs.iter().any(|(pointer, ns)| {
        let ns = ns.filter(|n| !n.is_empty()).unwrap_or(claim_ns);
        nonempty_ptr(spec, pointer) == Some(name) && ns == namespace
    })
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn all(pod: &Value) -> Vec<(Vertex, String)> {
        let mut out = Vec::new();
        visit_pod_references(pod, &mut |v, n| {
            out.push((v, n.to_string()));
            false
        });
        out
    }

    #[test]
    fn every_kind_of_reference_is_seen() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "serviceAccountName": "app",
                "imagePullSecrets": [{"name": "pull"}],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{
                    "name": "c",
                    "envFrom": [{"configMapRef": {"name": "cm-env"}}],
                    "env": [
                        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s-key", "key": "k"}}},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "k"}}},
                        {"name": "C", "value": "plain"},
                    ],
                }],
                "ephemeralContainers": [{"name": "e", "env": [{"name": "D", "valueFrom": {"secretKeyRef": {"name": "debug", "key": "k"}}}]}],
                "volumes": [
                    {"name": "v1", "secret": {"secretName": "vol-secret"}},
                    {"name": "v2", "configMap": {"name": "vol-cm"}},
                    {"name": "v3", "projected": {"sources": [
                        {"secret": {"name": "proj-secret"}},
                        {"configMap": {"name": "proj-cm"}},
                        {"serviceAccountToken": {"path": "token"}},
                    ]}},
                    {"name": "v4", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "v6", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}},
                ],
                "resourceClaims": [
                    {"name": "gpu", "resourceClaimName": "gpu-claim"},
                    {"name": "tpl", "resourceClaimTemplateName": "t"},
                ],
            },
            "status": {"resourceClaimStatuses": [{"name": "tpl", "resourceClaimName": "web-tpl-x1"}]},
        });
        use Vertex::*;
        let want = [
            (ServiceAccount, "app"),
            (Secret, "pull"),
            (Secret, "init-env"),
            (ConfigMap, "cm-env"),
            (Secret, "s-key"),
            (ConfigMap, "cm-key"),
            (Secret, "debug"),
            (Secret, "vol-secret"),
            (ConfigMap, "vol-cm"),
            (Secret, "proj-secret"),
            (ConfigMap, "proj-cm"),
            (PersistentVolumeClaim, "data"),
            (PersistentVolumeClaim, "web-scratch"),
            (Secret, "csi-secret"),
            (ResourceClaim, "gpu-claim"),
            (ResourceClaim, "web-tpl-x1"),
        ];
        let want: Vec<(Vertex, String)> = want.iter().map(|(v, n)| (*v, n.to_string())).collect();
        assert_eq!(all(&pod), want);
        assert!(pod_references(&pod, Secret, "debug"));
        assert!(!pod_references(&pod, ConfigMap, "debug"));
        assert!(!pod_references(&pod, Secret, "plain"));
    }

    #[test]
    fn mirror_pods_and_odd_shapes_reference_nothing_unexpected() {
        let mirror = json!({
            "metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "x"}},
            "spec": {"volumes": [{"name": "s", "secret": {"secretName": "s"}}]},
        });
        assert!(all(&mirror).is_empty());
        // No service account named: Kubernetes' admission would have written `default`.
        assert_eq!(
            all(&json!({"spec": {"containers": []}})),
            [(Vertex::ServiceAccount, "default".to_string())]
        );
        for odd in [
            json!("pod"),
            json!([1]),
            json!({"spec": "x"}),
            json!({"spec": {"volumes": "x", "containers": [1, "a", {"env": 3}]}}),
        ] {
            assert!(all(&odd).len() <= 1, "{odd}");
        }
    }

    #[test]
    fn persistent_volume_secrets_default_to_the_claims_namespace() {
        let pv = json!({"spec": {
            "claimRef": {"namespace": "team", "name": "data"},
            "csi": {
                "driver": "d",
                "nodeStageSecretRef": {"name": "stage"},
                "nodePublishSecretRef": {"name": "publish", "namespace": "infra"},
                "controllerPublishSecretRef": {"name": "controller", "namespace": "team"},
            },
        }});
        assert_eq!(pv_claim(&pv), Some(("team", "data")));
        assert!(pv_references_secret(&pv, "team", "stage"));
        assert!(pv_references_secret(&pv, "infra", "publish"));
        assert!(!pv_references_secret(&pv, "team", "publish"));
        // Controller secrets are not the kubelet's.
        assert!(!pv_references_secret(&pv, "team", "controller"));
        assert_eq!(pv_claim(&json!({"spec": {}})), None);
    }
}
