//! DELETE of one object or of a collection, with DeleteOptions from the query
//! string or the body (grace period, propagation, preconditions, dry run).

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Change, Outcome, Target, guaranteed_update, name_of, respond, same_but_rv};
use crate::error::{ApiError, ApiResult, Cause};
use crate::rest::strategy;
use crate::rest::{Api, Call, decode_body, json_bytes, json_value};

/// DeleteOptions from the body or the query string.
pub(super) struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    /// From the query string or the body's `dryRun: ["All"]`, as kubectl sends it.
    pub(super) dry_run: bool,
}

/// The call's DeleteOptions; `body` is given where they sit inside another
/// object (an Eviction's `deleteOptions`), else the request body is read.
pub(super) fn delete_options(call: &Call<'_>, body: Option<&Value>) -> ApiResult<DeleteOptions> {
    let body = match body {
        Some(b) => Some(b.clone()),
        None if !call.body.is_empty() => Some(decode_body(&call.body, call.content_type())?),
        None => None,
    };
    if let Some(b) = &body {
        // Fields of the wrong type are refused, as Kubernetes' decoder does.
        use serde::Deserialize;
        type Options = k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
        if let Err(e) = Options::deserialize(b) {
            return Err(ApiError::BadRequest(format!(
                "the DeleteOptions in the request body could not be decoded: {e}"
            )));
        }
    }
    let from_body = |p: &str| body.as_ref().and_then(|b| b.pointer(p)).cloned();
    let grace = match call.q("gracePeriodSeconds") {
        Some(g) => Some(
            g.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid gracePeriodSeconds {g}")))?,
        ),
        None => from_body("/gracePeriodSeconds").and_then(|v| v.as_i64()),
    };
    let propagation = call
        .q("propagationPolicy")
        .map(str::to_string)
        .or_else(|| from_body("/propagationPolicy").and_then(|v| v.as_str().map(str::to_string)))
        .or_else(
            || match from_body("/orphanDependents").and_then(|v| v.as_bool()) {
                Some(true) => Some("Orphan".into()),
                _ => None,
            },
        );
    if let Some(p) = &propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid(
            "",
            "DeleteOptions",
            "",
            vec![Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                field: "propagationPolicy".into(),
            }],
        ));
    }
    Ok(DeleteOptions {
        dry_run: call.dry_run() || crate::rest::options::body_dry_run(body.as_ref())?,
        grace,
        propagation,
        uid: from_body("/preconditions/uid").and_then(|v| v.as_str().map(str::to_string)),
        resource_version: from_body("/preconditions/resourceVersion")
            .and_then(|v| v.as_str().map(str::to_string)),
    })
}

pub async fn delete(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let opts = delete_options(call, None)?;
    delete_one(api, call, &call.info.name, &opts).await
}

/// Deletes one object, or marks it as being deleted when finalizers, a pod's
/// grace period or a namespace's contents hold it.
pub(super) async fn delete_one(
    api: &Api,
    call: &Call<'_>,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Response> {
    strategy::check_delete(call, name)?;
    let target = Target::of(call, name);
    let outcome = guaranteed_update(api, &target, opts.dry_run, |cur, rev| {
        check_preconditions(call, name, opts, &cur, rev)?;
        let mut new = cur.clone();
        let pending = strategy::begin_delete(
            call.strategy,
            &mut new,
            opts.grace,
            opts.propagation.as_deref(),
        );
        Ok(match pending {
            true if same_but_rv(&new, &cur) => Change::Unchanged(cur),
            true => Change::Put(new),
            false => Change::Delete(cur),
        })
    })
    .await?;
    let Outcome::Deleted(last, rev) = outcome else {
        return outcome.respond(StatusCode::OK, &target.key, target.not_found());
    };
    if !opts.dry_run {
        strategy::after_delete(api, call, &last).await;
    }
    if call.strategy.returns_deleted_object() {
        return Ok(respond(StatusCode::OK, &target.key, last, rev));
    }
    let uid = apimachinery::json::str_ptr(&last, "/metadata/uid");
    json_value(
        StatusCode::OK,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": call.resource.group, "kind": call.resource.plural, "uid": uid},
        }),
    )
}

/// `preconditions.uid` and `preconditions.resourceVersion` of DeleteOptions.
fn check_preconditions(
    call: &Call<'_>,
    name: &str,
    opts: &DeleteOptions,
    cur: &Value,
    rev: store::Revision,
) -> ApiResult<()> {
    let failed =
        |why: String| ApiError::conflict(&call.resource.group, &call.resource.plural, name, &why);
    let uid = apimachinery::json::str_ptr(cur, "/metadata/uid");
    if let Some(want) = &opts.uid
        && want != uid
    {
        return Err(failed(format!(
            "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
        )));
    }
    if let Some(want) = &opts.resource_version
        && want != &rev.to_string()
    {
        return Err(failed(format!(
            "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
        )));
    }
    Ok(())
}

pub async fn delete_collection(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let selectors = call.selectors()?;
    let opts = delete_options(call, None)?;
    api.consistent().await?;
    let prefix = crate::rest::read::list_prefix(call);
    let (snap, _) = api.cache.list(&prefix, None, 0, &|e| selectors.matches(e));
    let mut deleted = Vec::new();
    for entry in &snap.items {
        let v = entry.value()?;
        let name = name_of(&v).to_string();
        let ns = apimachinery::json::str_ptr(&v, "/metadata/namespace").to_string();
        let info = crate::rest::request::RequestInfo {
            name: name.clone(),
            namespace: ns,
            ..call.info.clone()
        };
        let one = Call {
            info: &info,
            body: Bytes::new(),
            ..*call
        };
        match delete_one(api, &one, &name, &opts).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => deleted.push(entry.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(json_bytes(
        StatusCode::OK,
        crate::rest::read::list_body(call, &deleted, api.cache.revision(), None),
    ))
}
