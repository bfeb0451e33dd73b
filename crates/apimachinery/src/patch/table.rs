//! The patch strategies of built-in types and the type graph to find them. One
//! table serves strategic merge patch here and the `x-kubernetes-patch-*` and
//! `x-kubernetes-list-*` extensions of the OpenAPI documents.

use super::types::{FIELD_TYPES, META};
use crate::resources::builtin_by_kind;

/// How a field is patched, as in the struct tags of Kubernetes' API types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListStrategy {
    /// `merge`, `merge,retainKeys` or `retainKeys` (`x-kubernetes-patch-strategy`).
    pub strategy: &'static str,
    /// The key list items are matched by (`x-kubernetes-patch-merge-key`).
    pub merge_key: Option<&'static str>,
    /// `map`, `set` or `atomic` (`x-kubernetes-list-type`), for server-side apply.
    pub list_type: Option<&'static str>,
    /// The keys of a `map` list (`x-kubernetes-list-map-keys`).
    pub list_map_keys: &'static [&'static str],
}

const CORE: &str = "io.k8s.api.core.v1.";

macro_rules! entry {
    ($ty:literal, $field:literal, $strategy:literal, $key:expr, $list_type:expr, [$($k:literal),*]) => {
        ($ty, $field, ListStrategy { strategy: $strategy, merge_key: $key, list_type: $list_type, list_map_keys: &[$($k),*] })
    };
}

/// (type, field) → strategy. Fields not listed are atomic lists or plain struct fields.
pub static PATCH_STRATEGIES: &[(&str, &str, ListStrategy)] = &[
    entry!(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        None,
        Some("set"),
        []
    ),
    entry!(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        Some("uid"),
        Some("map"),
        ["uid"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        "merge",
        Some("ip"),
        Some("map"),
        ["ip"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        Some("topologyKey"),
        Some("map"),
        ["topologyKey", "whenUnsatisfiable"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        Some("containerPort"),
        Some("map"),
        ["containerPort", "protocol"]
    ),
    entry!(
        "io.k8s.api.core.v1.Container",
        "env",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        Some("mountPath"),
        Some("map"),
        ["mountPath"]
    ),
    entry!(
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        Some("devicePath"),
        Some("map"),
        ["devicePath"]
    ),
    entry!(
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        Some("containerPort"),
        Some("map"),
        ["containerPort", "protocol"]
    ),
    entry!(
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        Some("mountPath"),
        Some("map"),
        ["mountPath"]
    ),
    entry!(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        Some("devicePath"),
        Some("map"),
        ["devicePath"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.core.v1.PodStatus",
        "podIPs",
        "merge",
        Some("ip"),
        Some("atomic"),
        []
    ),
    entry!(
        "io.k8s.api.core.v1.PodStatus",
        "hostIPs",
        "merge",
        Some("ip"),
        Some("atomic"),
        []
    ),
    entry!(
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "merge",
        Some("port"),
        Some("map"),
        ["port", "protocol"]
    ),
    entry!(
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.core.v1.NodeSpec",
        "podCIDRs",
        "merge",
        None,
        Some("set"),
        []
    ),
    entry!(
        "io.k8s.api.core.v1.NodeStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.core.v1.NodeStatus",
        "addresses",
        "merge",
        Some("type"),
        Some("atomic"),
        []
    ),
    entry!(
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        Some("name"),
        Some("map"),
        ["name"]
    ),
    entry!(
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        None,
        None,
        []
    ),
    entry!(
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.batch.v1.JobStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("atomic"),
        []
    ),
    entry!(
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
    entry!(
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        "merge",
        Some("type"),
        Some("map"),
        ["type"]
    ),
];

/// The patch strategy of `field` in the struct `type_name` (OpenAPI name).
pub fn list_strategy(type_name: &str, field: &str) -> Option<ListStrategy> {
    PATCH_STRATEGIES
        .iter()
        .find(|(t, f, _)| *t == type_name && *f == field)
        .map(|(_, _, s)| *s)
}

/// The struct type of `field` in `type_name`, for the fields that lead to patch strategies.
/// Every top-level kind's `metadata` is an `ObjectMeta`.
pub fn field_type(type_name: &str, field: &str) -> Option<&'static str> {
    if let Some((_, _, t)) = FIELD_TYPES
        .iter()
        .find(|(t, f, _)| *t == type_name && *f == field)
    {
        return Some(t);
    }
    (field == "metadata" && is_root_type(type_name)).then_some(META)
}

fn is_root_type(type_name: &str) -> bool {
    let Some((package, kind)) = type_name.rsplit_once('.') else {
        return false;
    };
    crate::resources::BUILTIN
        .iter()
        .any(|r| r.kind == kind && package_of(&r.group, &r.version) == package)
}

/// The OpenAPI package of a group/version: `io.k8s.api.apps.v1`.
fn package_of(group: &str, version: &str) -> String {
    match group {
        "" => CORE.trim_end_matches('.').to_string(),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}")
        }
        g => {
            let short = g.strip_suffix(".k8s.io").unwrap_or(g);
            let short = short
                .strip_suffix(".authorization")
                .map_or(short, |_| "rbac");
            format!("io.k8s.api.{short}.{version}")
        }
    }
}

/// The OpenAPI type name of a built-in kind, e.g. `io.k8s.api.apps.v1.Deployment`.
pub fn root_type(api_version: &str, kind: &str) -> Option<String> {
    let r = builtin_by_kind(api_version, kind)?;
    Some(format!("{}.{}", package_of(&r.group, &r.version), r.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_strategies_and_types() {
        let s = list_strategy("io.k8s.api.core.v1.PodSpec", "containers").expect("containers");
        assert_eq!((s.strategy, s.merge_key), ("merge", Some("name")));
        assert_eq!(
            list_strategy("io.k8s.api.core.v1.ServiceSpec", "ports").and_then(|s| s.merge_key),
            Some("port")
        );
        assert!(list_strategy("io.k8s.api.core.v1.PodSpec", "tolerations").is_none());
        assert_eq!(
            root_type("apps/v1", "Deployment").as_deref(),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        assert_eq!(
            root_type("v1", "Pod").as_deref(),
            Some("io.k8s.api.core.v1.Pod")
        );
        assert_eq!(
            root_type("rbac.authorization.k8s.io/v1", "Role").as_deref(),
            Some("io.k8s.api.rbac.v1.Role")
        );
        assert_eq!(
            root_type("coordination.k8s.io/v1", "Lease").as_deref(),
            Some("io.k8s.api.coordination.v1.Lease")
        );
        assert_eq!(
            field_type("io.k8s.api.apps.v1.Deployment", "metadata"),
            Some(META)
        );
        assert_eq!(
            field_type("io.k8s.api.coordination.v1.Lease", "metadata"),
            Some(META)
        );
        assert_eq!(field_type("io.k8s.api.core.v1.PodSpec", "metadata"), None);
        for (ty, _, _) in PATCH_STRATEGIES {
            let reachable = FIELD_TYPES.iter().any(|(_, _, t)| t == ty)
                || *ty == META
                || ty.ends_with("ServiceAccount");
            assert!(reachable, "{ty} cannot be reached from a kind");
        }
    }
}
