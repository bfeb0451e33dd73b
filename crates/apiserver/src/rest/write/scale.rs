//! The scale subresource: an autoscaling/v1 Scale view of any resource that
//! keeps a replica count (built-in workloads, and custom resources whose
//! definition names the paths).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Change, Outcome, Target, guaranteed_update, set_at};
use crate::error::{ApiError, ApiResult, Cause};
use crate::rest::strategy;
use crate::rest::{Api, Call, decode_body, json_value};

/// The autoscaling/v1 Scale view of an object, reading replicas and the selector
/// where this resource keeps them.
fn scale_of(call: &Call<'_>, obj: &Value, rev: Option<store::Revision>) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(Value::Null);
    let (spec_path, status_path, selector_path) = crate::rest::custom::scale_paths(call);
    let selector = match selector_path {
        Some(p) => apimachinery::json::str_ptr(obj, &p).to_string(),
        None => obj
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
    };
    let rv = match rev {
        Some(r) => json!(r.to_string()),
        None => meta["resourceVersion"].clone(),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": rv, "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer(&spec_path).cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer(&status_path).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub async fn get_scale(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    api.consistent().await?;
    let key = call.resource.key(call.namespace(), &call.info.name);
    let entry = api
        .cache
        .get(&key)
        .ok_or_else(|| call.not_found(&call.info.name))?;
    json_value(StatusCode::OK, &scale_of(call, &entry.value()?, None))
}

pub async fn update_scale(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let name = call.info.name.as_str();
    let target = Target::of(call, name);
    let outcome = guaranteed_update(api, &target, call.dry_run(), |mut obj, _| {
        let scale = match call.info.verb.as_str() {
            "patch" => crate::rest::patch::apply_patch_to(
                call,
                &scale_of(call, &obj, None),
                "autoscaling/v1",
                "Scale",
            )?,
            _ => decode_body(&call.body, call.content_type())?,
        };
        let wanted = apimachinery::json::str_ptr(&scale, "/metadata/resourceVersion");
        let cur = apimachinery::json::str_ptr(&obj, "/metadata/resourceVersion");
        if !wanted.is_empty() && wanted != cur {
            return Err(ApiError::stale(
                &call.resource.group,
                &call.resource.plural,
                name,
            ));
        }
        let replicas = apimachinery::json::i64_ptr(&scale, "/spec/replicas").unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let (spec_path, _, _) = crate::rest::custom::scale_paths(call);
        if apimachinery::json::i64_ptr(&obj, &spec_path) == Some(replicas) {
            return Ok(Change::Unchanged(obj));
        }
        set_at(&mut obj, &spec_path, json!(replicas));
        strategy::bump_generation(&mut obj);
        if let Some(custom) = call.custom {
            // The scaled object must still satisfy its schema (a `maximum`, ...).
            crate::rest::custom::validate_scaled(call, custom, &obj)?;
        }
        Ok(Change::Put(obj))
    })
    .await?;
    let (obj, rev) = match outcome {
        Outcome::Absent => return Err(target.not_found()),
        Outcome::Unchanged(obj, rev) | Outcome::Put(obj, _, rev) | Outcome::Deleted(obj, rev) => {
            (obj, rev)
        }
    };
    json_value(StatusCode::OK, &scale_of(call, &obj, Some(rev)))
}
