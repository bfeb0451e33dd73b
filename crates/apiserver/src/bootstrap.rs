//! Objects every cluster starts with: the four system namespaces, the `kubernetes`
//! Service, and the default RBAC roles and bindings.

use serde_json::{Value, json};
use store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::rest::Api;
use crate::rest::strategy::now_rfc3339;

/// Creates whatever is missing; existing objects are left as users changed them.
pub async fn ensure(api: &Api) -> ApiResult<()> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        create_if_absent(api, &format!("/registry/namespaces/{ns}"), obj).await?;
    }
    let ip = crate::alloc::claim_first_ip(api).await?;
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
    create_if_absent(api, "/registry/services/default/kubernetes", svc).await?;
    for obj in crate::auth::bootstrap::bootstrap_objects() {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let plural = match kind {
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            "Role" => "roles",
            "RoleBinding" => "rolebindings",
            _ => continue,
        };
        let key = match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) => format!("/registry/{plural}/{ns}/{name}"),
            None => format!("/registry/{plural}/{name}"),
        };
        create_if_absent(api, &key, obj).await?;
    }
    Ok(())
}

async fn create_if_absent(api: &Api, key: &str, mut obj: Value) -> ApiResult<()> {
    if api.cache.get(key).is_some() {
        return Ok(());
    }
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    let bytes = serde_json::to_vec(&obj).map_err(|e| ApiError::Internal(e.to_string()))?;
    match api.store.create(key, bytes.into()).await {
        Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
