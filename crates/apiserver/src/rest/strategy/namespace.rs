//! Namespaces: born Active, held while their finalizers (the namespace
//! controller's content cleanup) remain, Terminating meanwhile; the cluster's
//! own namespaces can never be deleted.

use apimachinery::resources::Resource;
use serde_json::{Map, Value, json};

use super::Strategy;
use crate::error::{ApiError, ApiResult};

/// Namespaces every cluster needs, which Kubernetes' NamespaceLifecycle admission
/// never lets anyone delete.
const IMMORTAL: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

pub(super) struct Namespace;

impl Strategy for Namespace {
    fn has_generation(&self, _: &Resource) -> bool {
        false
    }

    fn initial_status(&self, _: &Resource, obj: &mut Map<String, Value>) {
        obj.insert("status".into(), json!({"phase": "Active"}));
    }

    fn check_delete(&self, name: &str) -> ApiResult<()> {
        if IMMORTAL.contains(&name) {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }

    fn holds_deletion(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    }

    fn on_deleting(&self, obj: &mut Map<String, Value>) {
        let status = obj.entry("status").or_insert_with(|| json!({}));
        if !status.is_object() {
            *status = json!({});
        }
        if let Some(s) = status.as_object_mut() {
            s.insert("phase".into(), json!("Terminating"));
        }
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_namespaces_are_immortal() {
        for ns in IMMORTAL {
            assert_eq!(Namespace.check_delete(ns).unwrap_err().code().as_u16(), 403);
        }
        assert!(Namespace.check_delete("team-a").is_ok());
    }

    #[test]
    fn finalizers_hold_a_namespace() {
        assert!(Namespace.holds_deletion(&json!({"spec": {"finalizers": ["kubernetes"]}})));
        assert!(!Namespace.holds_deletion(&json!({"spec": {"finalizers": []}})));
        let mut m = Map::new();
        Namespace.on_deleting(&mut m);
        assert_eq!(m["status"]["phase"], "Terminating");
    }
}
