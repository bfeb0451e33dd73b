//! PUT and PATCH of an object, its status, a namespace's finalizers or a pod's
//! ephemeral containers.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use store::Revision;

use super::{Change, Outcome, Target, guaranteed_update, name_of, same_but_rv};
use crate::error::{ApiError, ApiResult, Cause};
use crate::rest::strategy::{self, Op};
use crate::rest::{Api, Call, decode_body};

pub async fn update_or_patch(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let is_patch = call.info.verb == "patch";
    let is_apply = crate::rest::patch::is_apply(call);
    let name = call.info.name.as_str();
    let target = Target::of(call, name);
    let body = if is_patch {
        None
    } else {
        Some(decode_body(&call.body, call.content_type())?)
    };
    if let Some(b) = &body
        && name_of(b) != name
    {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(b)
        )));
    }
    let outcome = guaranteed_update(api, &target, call.dry_run(), |cur, rev| {
        let new = match &body {
            Some(b) => b.clone(),
            None => crate::rest::patch::apply_patch(call, &cur)?,
        };
        change(api, call, cur, rev, new)
    })
    .await?;
    match outcome {
        Outcome::Absent if is_apply && call.info.subresource.is_empty() => {
            // Server-side apply of an absent object creates it.
            let obj = crate::rest::patch::server_side_apply(call, None)?;
            let body = serde_json::to_vec(&obj)
                .map_err(|e| ApiError::internal_from("encoding the applied object failed", e))?;
            super::create(
                api,
                &Call {
                    body: body.into(),
                    ..*call
                },
            )
            .await
        }
        Outcome::Deleted(ref last, _) => {
            if !call.dry_run() {
                strategy::after_delete(api, call, last).await;
            }
            outcome.respond(StatusCode::OK, &target.key, target.not_found())
        }
        other => other.respond(StatusCode::OK, &target.key, target.not_found()),
    }
}

/// The checks and defaulting of an update, on the object the client sent or
/// the patch produced.
fn change(
    api: &Api,
    call: &Call<'_>,
    cur: Value,
    rev: Revision,
    mut new: Value,
) -> ApiResult<Change> {
    if !new.is_object() {
        return Err(ApiError::BadRequest(format!(
            "the {} object must be a JSON object, not {}",
            if call.info.verb == "patch" {
                "patched"
            } else {
                "submitted"
            },
            json_type(&new)
        )));
    }
    strategy::decode_check(call, &mut new)?;
    check_identity(call, &cur, &new)?;
    let wanted_rv = apimachinery::json::str_ptr(&new, "/metadata/resourceVersion");
    if !wanted_rv.is_empty() && wanted_rv != rev.to_string() {
        return Err(ApiError::stale(
            &call.resource.group,
            &call.resource.plural,
            &call.info.name,
        ));
    }
    strategy::merge_subresource(call, &cur, &mut new)?;
    strategy::prepare(api, call, Op::Update, &mut new, Some(&cur))?;
    if same_but_rv(&cur, &new) {
        return Ok(Change::Unchanged(cur));
    }
    if strategy::finalized(call.strategy, &new) {
        // The last finalizer of an object being deleted is gone: delete it now.
        return Ok(Change::Delete(new));
    }
    Ok(Change::Put(new))
}

/// The JSON type of a value, as error messages name it.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An update or patch may not rename the object, move it to another namespace
/// or change its uid, as Kubernetes checks.
fn check_identity(call: &Call<'_>, cur: &Value, new: &Value) -> ApiResult<()> {
    use apimachinery::json::meta;
    let name = meta::name(new);
    if name != call.info.name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            call.info.name
        )));
    }
    let ns = meta::namespace(new);
    if let Some(url_ns) = call.namespace()
        && !ns.is_empty()
        && ns != url_ns
    {
        return Err(ApiError::BadRequest(format!(
            "the namespace of the object ({ns}) does not match the namespace on the URL ({url_ns})"
        )));
    }
    let (uid, old_uid) = (meta::uid(new), meta::uid(cur));
    if !uid.is_empty() && uid != old_uid {
        return Err(ApiError::invalid(
            &call.resource.group,
            &call.resource.kind,
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("metadata.uid: Invalid value: {uid:?}: field is immutable"),
                field: "metadata.uid".into(),
            }],
        ));
    }
    Ok(())
}
