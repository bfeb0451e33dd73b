//! PATCH bodies by content type (JSON, merge, strategic merge, server-side apply)
//! and the field-ownership record every write keeps.

use serde_json::Value;

use super::{Call, decode_body};
use crate::clock::now_rfc3339;
use crate::error::{ApiError, ApiResult};

/// Applies a PATCH body to the current object by its content type.
pub fn apply_patch(call: &Call<'_>, cur: &Value) -> ApiResult<Value> {
    let r = call.resource;
    apply_patch_to(call, cur, &r.api_version(), &r.kind)
}

pub fn apply_patch_to(
    call: &Call<'_>,
    cur: &Value,
    api_version: &str,
    kind: &str,
) -> ApiResult<Value> {
    use apimachinery::patch;
    let ct = call.content_type();
    let ct = ct.split(';').next().unwrap_or("").trim();
    // As Kubernetes: too many operations is 413, a patch that does not apply
    // (a failed test, a missing path, copies past the limit) 422, a malformed
    // one 400.
    let bad = |e: patch::PatchError| match e {
        patch::PatchError::TooLarge(m) => ApiError::TooLarge(m),
        patch::PatchError::Apply(m) => ApiError::Invalid {
            message: m,
            kind: call.resource.kind.to_string(),
            group: call.resource.group.to_string(),
            name: call.info.name.clone(),
            causes: Vec::new(),
        },
        other => ApiError::BadRequest(other.to_string()),
    };
    match ct {
        "application/json-patch+json" => patch::json_patch(cur, &call.body).map_err(bad),
        "application/merge-patch+json" => {
            let p = decode_patch(&call.body)?;
            Ok(patch::merge_patch(cur, &p))
        }
        // A Scale has no lists, so its strategic merge patch is a merge patch.
        "application/strategic-merge-patch+json" if kind == "Scale" => {
            let p = decode_patch(&call.body)?;
            Ok(patch::merge_patch(cur, &p))
        }
        "application/strategic-merge-patch+json" => {
            let p = decode_patch(&call.body)?;
            patch::strategic_merge_patch(cur, &p, api_version, kind).map_err(|e| match e {
                patch::PatchError::UnsupportedForKind { .. } => ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml ({e})"
                )),
                other => bad(other),
            })
        }
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            server_side_apply(call, Some(cur))
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
        ))),
    }
}

/// Whether this write is a server-side apply.
pub fn is_apply(call: &Call<'_>) -> bool {
    call.info.verb == "patch" && call.content_type().starts_with("application/apply-patch")
}

/// Server-side apply: merges the applied configuration into `live` (or a new
/// object), tracking field ownership; conflicts with other managers are a 409
/// unless `force=true`.
pub fn server_side_apply(call: &Call<'_>, live: Option<&Value>) -> ApiResult<Value> {
    let config = decode_body(&call.body, "application/yaml")?;
    // The applied configuration names its object; it must be the one on the URL,
    // or a user allowed to patch one object could create or change another.
    let name = apimachinery::json::meta::name(&config);
    if !name.is_empty() && name != call.info.name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            call.info.name
        )));
    }
    let ns = apimachinery::json::meta::namespace(&config);
    if let Some(url_ns) = call.namespace()
        && !ns.is_empty()
        && ns != url_ns
    {
        return Err(ApiError::BadRequest(format!(
            "the namespace of the object ({ns}) does not match the namespace on the URL ({url_ns})"
        )));
    }
    let Some(manager) = call.q("fieldManager") else {
        return Err(ApiError::BadRequest(
            "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"
                .into(),
        ));
    };
    let now = now_rfc3339();
    let av = call.resource.api_version();
    let m = apimachinery::apply::Manager {
        name: manager,
        api_version: &av,
        kind: &call.resource.kind,
        time: &now,
        subresource: &call.info.subresource,
    };
    let force = call.q("force") == Some("true");
    apimachinery::apply::apply(live, &config, &m, force).map_err(|e| match e {
        apimachinery::apply::ApplyError::Conflicts(_) => ApiError::Conflict {
            message: e.to_string(),
            kind: call.resource.plural.to_string(),
            group: call.resource.group.to_string(),
            name: call.info.name.clone(),
        },
        other => ApiError::BadRequest(other.to_string()),
    })
}

/// Records who changed which fields (`metadata.managedFields`) on ordinary writes,
/// named by `fieldManager` or else the client's user agent, as Kubernetes does.
pub fn record_managed_fields(call: &Call<'_>, obj: &mut Value, old: Option<&Value>) {
    if is_apply(call) || call.resource.is_virtual() {
        return;
    }
    let agent = call
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .unwrap_or("unknown");
    let name = call.q("fieldManager").unwrap_or(agent).to_string();
    let now = now_rfc3339();
    let av = call.resource.api_version();
    let m = apimachinery::apply::Manager {
        name: &name,
        api_version: &av,
        kind: &call.resource.kind,
        time: &now,
        subresource: &call.info.subresource,
    };
    apimachinery::apply::record_update(old, obj, &m);
}

fn decode_patch(body: &[u8]) -> ApiResult<Value> {
    apimachinery::decode::json(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
}
