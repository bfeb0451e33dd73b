//! Writes through a subresource change only their part of the object.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::rest::Call;

/// Main resource writes keep the stored status; status writes keep everything but
/// the status; namespace finalize writes change only spec.finalizers; a pod's
/// ephemeralcontainers writes only that list.
pub fn merge_subresource(call: &Call<'_>, cur: &Value, new: &mut Value) -> ApiResult<()> {
    let r = call.resource;
    match call.info.subresource.as_str() {
        "" if r.has_subresource("status") => {
            let status = cur.get("status").cloned();
            let map = new
                .as_object_mut()
                .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
            match status {
                Some(s) => map.insert("status".into(), s),
                None => map.remove("status"),
            };
        }
        "status" => {
            let status = new.get("status").cloned();
            let mut merged = cur.clone();
            match status {
                Some(s) => {
                    if let Some(m) = merged.as_object_mut() {
                        m.insert("status".into(), s);
                    }
                }
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            copy_resource_version(new, &mut merged);
            *new = merged;
        }
        "ephemeralcontainers" => super::pod::merge_ephemeral_containers(call, cur, new)?,
        "finalize" => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let mut merged = cur.clone();
            if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), finalizers);
            }
            copy_resource_version(new, &mut merged);
            *new = merged;
        }
        _ => {}
    }
    Ok(())
}

/// A subresource write's precondition: the resourceVersion the client sent.
pub(super) fn copy_resource_version(from: &Value, to: &mut Value) {
    let rv = from.pointer("/metadata/resourceVersion").cloned();
    if let Some(meta) = to.get_mut("metadata").and_then(Value::as_object_mut) {
        match rv {
            Some(rv) => meta.insert("resourceVersion".into(), rv),
            None => meta.remove("resourceVersion"),
        };
    }
}
