//! Objects every cluster starts with: the four system namespaces, the `kubernetes`
//! Service, and the default RBAC roles and bindings.

use serde_json::{Value, json};
use store::StoreError;

use crate::alloc::Allocator;
use crate::cache::Cache;
use crate::clock::now_rfc3339;
use crate::error::{ApiError, ApiResult};
use store::Store;

/// Creates whatever is missing; existing objects are left as users changed them.
pub async fn ensure(store: &dyn Store, cache: &Cache, alloc: &Allocator) -> ApiResult<()> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        create_if_absent(store, cache, &crate::keys::namespace(ns), obj).await?;
    }
    for (name, value) in [
        ("system-node-critical", 2_000_001_000),
        ("system-cluster-critical", 2_000_000_000),
    ] {
        let obj = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "preemptionPolicy": "PreemptLowerPriority",
            "description": "Used for system critical pods that must not be moved from their current node.",
        });
        create_if_absent(store, cache, &crate::keys::priority_class(name), obj).await?;
    }
    let ip = alloc.claim_first_ip().await?;
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    });
    let key = crate::keys::of("v1", "Service", Some("default"), "kubernetes");
    create_if_absent(store, cache, &key, svc).await?;
    for obj in crate::auth::bootstrap::bootstrap_objects() {
        let kind = apimachinery::json::str_at(&obj, "kind");
        let name = apimachinery::json::str_ptr(&obj, "/metadata/name").to_string();
        if !matches!(
            kind,
            "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
        ) {
            continue;
        }
        let ns = apimachinery::json::str_ptr_opt(&obj, "/metadata/namespace");
        let key = crate::keys::of("rbac.authorization.k8s.io/v1", kind, ns, &name);
        reconcile_rbac(store, cache, &key, obj).await?;
    }
    Ok(())
}

/// Default roles and bindings marked `autoupdate` are brought back to this
/// version's rules on every start, as Kubernetes' RBAC bootstrap does; a user who
/// sets the annotation to "false" keeps their changes.
async fn reconcile_rbac(store: &dyn Store, cache: &Cache, key: &str, obj: Value) -> ApiResult<()> {
    let Some(kv) = store.get(key, None).await? else {
        return create_if_absent(store, cache, key, obj).await;
    };
    let Ok(mut stored) = serde_json::from_slice::<Value>(&kv.value) else {
        return Ok(());
    };
    let auto = apimachinery::json::meta::annotation(
        &stored,
        "rbac.authorization.kubernetes.io/autoupdate",
    ) != Some("false");
    let fields = ["rules", "aggregationRule", "subjects", "roleRef"];
    if !auto || fields.iter().all(|f| stored.get(*f) == obj.get(*f)) {
        return Ok(());
    }
    for f in fields {
        match obj.get(f) {
            Some(v) => stored[f] = v.clone(),
            None => {
                if let Some(m) = stored.as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
    let bytes = serde_json::to_vec(&stored)
        .map_err(|e| ApiError::internal_from("encoding a bootstrap object failed", e))?;
    match store.update(key, bytes.into(), kv.mod_revision).await {
        // Another server reconciled it at the same moment.
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn create_if_absent(
    store: &dyn Store,
    cache: &Cache,
    key: &str,
    mut obj: Value,
) -> ApiResult<()> {
    if cache.get(key).is_some() {
        return Ok(());
    }
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    let bytes = serde_json::to_vec(&obj)
        .map_err(|e| ApiError::internal_from("encoding a bootstrap object failed", e))?;
    match store.create(key, bytes.into()).await {
        Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
