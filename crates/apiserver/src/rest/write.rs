//! create, update, patch, delete and the write subresources (binding, eviction,
//! scale). Every write is a compare-and-swap on the stored object's revision.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use store::{Revision, StoreError};

use super::strategy::{self, Op};
use super::{Api, Call, decode_body, json_bytes, json_value};
use crate::cache::entry_from;
use crate::error::{ApiError, ApiResult};

/// Attempts at a write that races with others before giving up with a 409.
const MAX_ATTEMPTS: usize = 16;

/// Serializes an object for the store: the resourceVersion is the key's revision
/// and is never stored, as in Kubernetes.
fn to_stored(obj: &mut Value) -> ApiResult<Bytes> {
    let meta = obj.get_mut("metadata").and_then(Value::as_object_mut);
    let rv = meta.and_then(|m| m.remove("resourceVersion"));
    let out = serde_json::to_vec(obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(e.to_string()));
    if let Some(rv) = rv
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("resourceVersion".into(), rv);
    }
    out
}

/// The response body for an object: as stored, stamped with its revision.
fn respond(code: StatusCode, key: &str, mut obj: Value, rev: Revision) -> Response {
    let entry = entry_from(key.to_string(), &mut obj, rev);
    json_bytes(code, entry.json)
}

/// The response body for an object just written: the bytes stored, stamped with
/// the write's revision (no second encoding).
fn respond_stored(
    code: StatusCode,
    key: &str,
    stored: &Bytes,
    obj: Value,
    rev: Revision,
) -> Response {
    match crate::stored::stamp(stored, rev) {
        Some(json) => json_bytes(code, json),
        None => respond(code, key, obj, rev),
    }
}

/// Stores `new` over revision `rev` and answers with it as stored.
async fn store_update(
    api: &Api,
    key: &str,
    mut new: Value,
    rev: Revision,
) -> ApiResult<Result<Response, StoreError>> {
    let stored = to_stored(&mut new)?;
    Ok(api
        .store
        .update(key, stored.clone(), rev)
        .await
        .map(|kv| respond_stored(StatusCode::OK, key, &stored, new, kv.mod_revision)))
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub async fn create(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let mut obj = decode_body(&call.body, call.content_type())?;
    strategy::check_type(&mut obj, call.resource)?;
    strategy::decode_check(call, &mut obj)?;
    strategy::prepare_meta_for_create(&mut obj, call)?;
    strategy::check_namespace_usable(api, call).await?;
    strategy::prepare(api, call, Op::Create, &mut obj, None).await?;
    let name = name_of(&obj).to_string();
    let key = call.resource.key(call.namespace(), &name);
    if call.dry_run() {
        if api.cache.get(&key).is_some() {
            return Err(ApiError::already_exists(
                &call.resource.group,
                &call.resource.plural,
                &name,
            ));
        }
        return Ok(respond(StatusCode::CREATED, &key, obj, 0));
    }
    let stored = to_stored(&mut obj)?;
    match api.store.create(&key, stored.clone()).await {
        Ok(kv) => Ok(respond_stored(
            StatusCode::CREATED,
            &key,
            &stored,
            obj,
            kv.mod_revision,
        )),
        Err(StoreError::AlreadyExists(_)) => {
            strategy::release_on_failed_create(api, call, &obj).await;
            Err(ApiError::already_exists(
                &call.resource.group,
                &call.resource.plural,
                &name,
            ))
        }
        Err(e) => {
            strategy::release_on_failed_create(api, call, &obj).await;
            Err(e.into())
        }
    }
}

/// The current stored object: from the cache first, from the store after a lost race.
async fn current(api: &Api, key: &str, fresh: bool) -> ApiResult<Option<(Value, Revision)>> {
    if !fresh && let Some(e) = api.cache.get(key) {
        return Ok(Some((e.value()?, e.mod_revision)));
    }
    match api.store.get(key, None).await? {
        Some(kv) => {
            let mut v: Value = serde_json::from_slice(&kv.value)
                .map_err(|e| ApiError::Internal(format!("stored object is corrupt: {e}")))?;
            if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "resourceVersion".into(),
                    Value::String(kv.mod_revision.to_string()),
                );
            }
            Ok(Some((v, kv.mod_revision)))
        }
        None => Ok(None),
    }
}

/// Runs `change` on the current object until its compare-and-swap wins.
/// `change` edits the object in place and says whether it changed it.
async fn guaranteed_update<F>(
    api: &Api,
    call: &Call<'_>,
    name: &str,
    mut change: F,
) -> ApiResult<(Value, Revision)>
where
    F: FnMut(&mut Value) -> ApiResult<bool>,
{
    let key = call.resource.key(call.namespace(), name);
    let mut fresh = false;
    for _ in 0..MAX_ATTEMPTS {
        let Some((cur, rev)) = current(api, &key, fresh).await? else {
            return Err(call.not_found(name));
        };
        let mut new = cur;
        if !change(&mut new)? || call.dry_run() {
            return Ok((new, rev));
        }
        match api.store.update(&key, to_stored(&mut new)?, rev).await {
            Ok(kv) => return Ok((new, kv.mod_revision)),
            Err(StoreError::Conflict { .. }) => fresh = true,
            Err(StoreError::NotFound(_)) => return Err(call.not_found(name)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::stale(
        &call.resource.group,
        &call.resource.plural,
        name,
    ))
}

/// PUT and PATCH on an object, its status or a namespace's finalizers.
pub async fn update_or_patch(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let is_patch = call.info.verb == "patch";
    let is_apply = super::patch::is_apply(call);
    let name = call.info.name.clone();
    let key = call.resource.key(call.namespace(), &name);
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
    let mut fresh = false;
    for _ in 0..MAX_ATTEMPTS {
        let Some((cur, rev)) = current(api, &key, fresh).await? else {
            if is_apply && call.info.subresource.is_empty() {
                // Server-side apply of an absent object creates it.
                let obj = super::patch::server_side_apply(call, None)?;
                let body =
                    serde_json::to_vec(&obj).map_err(|e| ApiError::Internal(e.to_string()))?;
                return create(
                    api,
                    &Call {
                        body: body.into(),
                        ..*call
                    },
                )
                .await;
            }
            return Err(call.not_found(&name));
        };
        let mut new = match &body {
            Some(b) => b.clone(),
            None => super::patch::apply_patch(call, &cur)?,
        };
        if !new.is_object() {
            return Err(ApiError::BadRequest(format!(
                "the {} object must be a JSON object, not {}",
                if is_patch { "patched" } else { "submitted" },
                json_type(&new)
            )));
        }
        strategy::decode_check(call, &mut new)?;
        check_identity(call, &cur, &new)?;
        let wanted_rv = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !wanted_rv.is_empty() && wanted_rv != rev.to_string() {
            return Err(ApiError::stale(
                &call.resource.group,
                &call.resource.plural,
                &name,
            ));
        }
        strategy::merge_subresource(call, &cur, &mut new)?;
        strategy::prepare(api, call, Op::Update, &mut new, Some(&cur)).await?;
        if same_but_rv(&cur, &new) {
            return Ok(respond(StatusCode::OK, &key, cur, rev));
        }
        if call.dry_run() {
            return Ok(respond(StatusCode::OK, &key, new, rev));
        }
        if strategy::finalized(&new) {
            // The last finalizer of an object being deleted is gone: delete it now.
            return match api.store.delete(&key, Some(rev)).await {
                Ok((_, del_rev)) => Ok(respond(StatusCode::OK, &key, new, del_rev)),
                Err(StoreError::Conflict { .. }) => {
                    fresh = true;
                    continue;
                }
                Err(StoreError::NotFound(_)) => Err(call.not_found(&name)),
                Err(e) => Err(e.into()),
            };
        }
        match store_update(api, &key, new, rev).await? {
            Ok(resp) => return Ok(resp),
            Err(StoreError::Conflict { .. }) => fresh = true,
            Err(StoreError::NotFound(_)) => return Err(call.not_found(&name)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::stale(
        &call.resource.group,
        &call.resource.plural,
        &name,
    ))
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
    let meta = |v: &Value, field: &str| {
        v.get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = meta(new, "name");
    if name != call.info.name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            call.info.name
        )));
    }
    let ns = meta(new, "namespace");
    if let Some(url_ns) = call.namespace()
        && !ns.is_empty()
        && ns != url_ns
    {
        return Err(ApiError::BadRequest(format!(
            "the namespace of the object ({ns}) does not match the namespace on the URL ({url_ns})"
        )));
    }
    let (uid, old_uid) = (meta(new, "uid"), meta(cur, "uid"));
    if !uid.is_empty() && uid != old_uid {
        return Err(ApiError::invalid(
            &call.resource.group,
            &call.resource.kind,
            &name,
            vec![crate::error::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("metadata.uid: Invalid value: {uid:?}: field is immutable"),
                field: "metadata.uid".into(),
            }],
        ));
    }
    Ok(())
}

/// Whether two objects differ in nothing but `metadata.resourceVersion`.
fn same_but_rv(a: &Value, b: &Value) -> bool {
    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    if x.len() != y.len()
        || !x
            .iter()
            .all(|(k, v)| k == "metadata" || y.get(k) == Some(v))
    {
        return false;
    }
    match (x.get("metadata"), y.get("metadata")) {
        (Some(Value::Object(mx)), Some(Value::Object(my))) => {
            let rest = |m: &serde_json::Map<String, Value>| {
                m.keys().filter(|k| *k != "resourceVersion").count()
            };
            rest(mx) == rest(my)
                && mx
                    .iter()
                    .all(|(k, v)| k == "resourceVersion" || my.get(k) == Some(v))
        }
        (mx, my) => mx == my,
    }
}

/// DeleteOptions from the body or the query string.
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    /// From the query string or the body's `dryRun: ["All"]`, as kubectl sends it.
    dry_run: bool,
}

fn delete_options(call: &Call<'_>, body: Option<&Value>) -> ApiResult<DeleteOptions> {
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
            vec![crate::error::Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                field: "propagationPolicy".into(),
            }],
        ));
    }
    Ok(DeleteOptions {
        dry_run: call.dry_run() || super::options::body_dry_run(body.as_ref())?,
        grace,
        propagation,
        uid: from_body("/preconditions/uid").and_then(|v| v.as_str().map(str::to_string)),
        resource_version: from_body("/preconditions/resourceVersion")
            .and_then(|v| v.as_str().map(str::to_string)),
    })
}

pub async fn delete(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let opts = delete_options(call, None)?;
    delete_one(api, call, &call.info.name.clone(), &opts).await
}

async fn delete_one(
    api: &Api,
    call: &Call<'_>,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Response> {
    strategy::check_delete(call.resource, name)?;
    let key = call.resource.key(call.namespace(), name);
    let mut fresh = false;
    for _ in 0..MAX_ATTEMPTS {
        let Some((cur, rev)) = current(api, &key, fresh).await? else {
            return Err(call.not_found(name));
        };
        let uid = cur
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(want) = &opts.uid
            && want != uid
        {
            return Err(ApiError::conflict(
                &call.resource.group,
                &call.resource.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = &opts.resource_version
            && want != &rev.to_string()
        {
            return Err(ApiError::conflict(
                &call.resource.group,
                &call.resource.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                ),
            ));
        }
        let mut new = cur.clone();
        let pending = strategy::begin_delete(
            call.resource,
            &mut new,
            opts.grace,
            opts.propagation.as_deref(),
        );
        if opts.dry_run {
            return Ok(respond(StatusCode::OK, &key, new, rev));
        }
        if pending {
            if same_but_rv(&new, &cur) {
                return Ok(respond(StatusCode::OK, &key, cur, rev));
            }
            match store_update(api, &key, new, rev).await? {
                Ok(resp) => return Ok(resp),
                Err(StoreError::Conflict { .. }) => {
                    fresh = true;
                    continue;
                }
                Err(StoreError::NotFound(_)) => return Err(call.not_found(name)),
                Err(e) => return Err(e.into()),
            }
        }
        match api.store.delete(&key, Some(rev)).await {
            Ok((_, del_rev)) => {
                strategy::after_delete(api, call, &cur).await;
                if strategy::returns_deleted_object(call.resource) {
                    return Ok(respond(StatusCode::OK, &key, cur, del_rev));
                }
                return json_value(
                    StatusCode::OK,
                    &json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": call.resource.group, "kind": call.resource.plural, "uid": uid},
                    }),
                );
            }
            Err(StoreError::Conflict { .. }) => fresh = true,
            Err(StoreError::NotFound(_)) => return Err(call.not_found(name)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::stale(
        &call.resource.group,
        &call.resource.plural,
        name,
    ))
}

pub async fn delete_collection(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let selectors = crate::selectors::Selectors::from_call(call)?;
    let opts = delete_options(call, None)?;
    api.consistent().await?;
    let prefix = super::read::list_prefix(call);
    let (snap, _) = api.cache.list(&prefix, None, 0, &|e| selectors.matches(e));
    let mut deleted = Vec::new();
    for entry in &snap.items {
        let v = entry.value()?;
        let name = name_of(&v).to_string();
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let info = super::request::RequestInfo {
            name: name.clone(),
            namespace: ns,
            ..call.info.clone()
        };
        let sub = Call {
            info: &info,
            custom: call.custom,
            user: call.user,
            resource: call.resource,
            query: call.query,
            headers: call.headers,
            body: Bytes::new(),
            warnings: call.warnings,
        };
        match delete_one(api, &sub, &name, &opts).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => deleted.push(entry.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(json_bytes(
        StatusCode::OK,
        super::read::list_body(call, &deleted, api.cache.revision(), None),
    ))
}

/// POST pods/NAME/binding: the scheduler's placement.
pub async fn bind(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let binding = decode_body(&call.body, call.content_type())?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &call.info.name,
            vec![crate::error::Cause {
                reason: "FieldValueRequired".into(),
                message: "target.name: Required value".into(),
                field: "target.name".into(),
            }],
        ));
    }
    let name = call.info.name.clone();
    let now = strategy::now_rfc3339();
    guaranteed_update(api, call, &name, |pod| {
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                "",
                "pods",
                &name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let current = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                "",
                "pods",
                &name,
                &format!("pod {name} is already assigned to node \"{current}\""),
            ));
        }
        set_at(pod, "/spec/nodeName", Value::String(node.clone()));
        strategy::set_condition(pod, "PodScheduled", "True", None, None, &now);
        Ok(true)
    })
    .await?;
    json_value(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// POST pods/NAME/eviction: a graceful delete on behalf of a disruption, refused
/// with 429 while a PodDisruptionBudget covering the pod allows no disruption.
pub async fn evict(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let eviction = decode_body(&call.body, call.content_type())?;
    let opts = delete_options(call, eviction.get("deleteOptions"))?;
    let name = call.info.name.clone();
    let key = call.resource.key(call.namespace(), &name);
    api.consistent().await?;
    let pod = api
        .cache
        .get(&key)
        .ok_or_else(|| call.not_found(&name))?
        .value()?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Pods that are done or not yet running cannot be disrupted.
    if !matches!(phase, "Succeeded" | "Failed" | "Pending") {
        for pdb in covering_budgets(api, &pod)? {
            take_disruption(api, &pdb, &name, opts.dry_run).await?;
        }
    }
    delete_one(api, call, &name, &opts).await?;
    json_value(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// Names of the PodDisruptionBudgets in the pod's namespace that select it.
fn covering_budgets(api: &Api, pod: &Value) -> ApiResult<Vec<String>> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (_, pdbs) = api
        .cache
        .objects(&format!("/registry/poddisruptionbudgets/{ns}/"));
    let mut out = Vec::new();
    for e in pdbs {
        let pdb = e.value()?;
        let Some(sel) = pdb.pointer("/spec/selector") else {
            continue;
        };
        let Ok(sel) = apimachinery::selectors::LabelSelector::from_metav1(sel) else {
            continue;
        };
        if sel.matches_object(pod) {
            out.push(e.key.clone());
        }
    }
    Ok(out)
}

/// Spends one allowed disruption of a budget (compare-and-swap on its status),
/// recording the pod in `disruptedPods` as Kubernetes does.
/// A dry run checks the budget and spends nothing.
async fn take_disruption(api: &Api, key: &str, pod: &str, dry_run: bool) -> ApiResult<()> {
    for _ in 0..MAX_ATTEMPTS {
        let Some((mut pdb, rev)) = current(api, key, true).await? else {
            return Ok(());
        };
        let name = pdb
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let observed = pdb
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        let generation = pdb.pointer("/metadata/generation").and_then(Value::as_i64);
        let allowed = pdb
            .pointer("/status/disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if observed != generation || allowed <= 0 {
            return Err(ApiError::TooManyRequests(format!(
                "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {name} needs {} healthy pods and has {} currently",
                pdb.pointer("/status/desiredHealthy")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                pdb.pointer("/status/currentHealthy")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            )));
        }
        if dry_run {
            return Ok(());
        }
        let Some(status) = pdb.get_mut("status").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        status.insert("disruptionsAllowed".into(), json!(allowed - 1));
        let disrupted = status.entry("disruptedPods").or_insert_with(|| json!({}));
        if !disrupted.is_object() {
            *disrupted = json!({});
        }
        if let Some(d) = disrupted.as_object_mut() {
            d.insert(pod.to_string(), json!(super::strategy::now_rfc3339()));
        }
        match api.store.update(key, to_stored(&mut pdb)?, rev).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::TooManyRequests(
        "the disruption budget is changing too fast; retry".into(),
    ))
}

/// The autoscaling/v1 Scale view of an object, reading replicas and the selector
/// where this resource keeps them.
fn scale_of(call: &Call<'_>, obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let (spec_path, status_path, selector_path) = super::custom::scale_paths(call);
    let selector = match selector_path {
        Some(p) => obj
            .pointer(&p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
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
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer(&spec_path).cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer(&status_path).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// Sets `value` at a JSON pointer, creating objects on the way.
fn set_at(obj: &mut Value, pointer: &str, value: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = pointer.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

pub async fn get_scale(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    api.consistent().await?;
    let key = call.resource.key(call.namespace(), &call.info.name);
    let entry = api
        .cache
        .get(&key)
        .ok_or_else(|| call.not_found(&call.info.name))?;
    json_value(StatusCode::OK, &scale_of(call, &entry.value()?))
}

pub async fn update_scale(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let name = call.info.name.clone();
    let (obj, rev) = guaranteed_update(api, call, &name, |obj| {
        let scale = match call.info.verb.as_str() {
            "patch" => super::patch::apply_patch_to(call, &scale_of(call, obj), "autoscaling/v1", "Scale")?,
            _ => decode_body(&call.body, call.content_type())?,
        };
        let wanted = scale.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
        let cur = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
        if !wanted.is_empty() && wanted != cur {
            return Err(ApiError::stale(&call.resource.group, &call.resource.plural, &name));
        }
        let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &name,
                vec![crate::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let (spec_path, _, _) = super::custom::scale_paths(call);
        if obj.pointer(&spec_path).and_then(Value::as_i64) == Some(replicas) {
            return Ok(false);
        }
        set_at(obj, &spec_path, json!(replicas));
        strategy::bump_generation(obj);
        if let Some(custom) = call.custom {
            // The scaled object must still satisfy its schema (a `maximum`, ...).
            super::custom::validate_scaled(call, custom, obj)?;
        }
        Ok(true)
    })
    .await?;
    let mut obj = obj;
    obj["metadata"]["resourceVersion"] = Value::String(rev.to_string());
    json_value(StatusCode::OK, &scale_of(call, &obj))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn same_but_rv_ignores_only_the_resource_version() {
        let a = json!({"metadata": {"name": "p", "resourceVersion": "1"}, "spec": {"x": 1}});
        let b = json!({"metadata": {"name": "p", "resourceVersion": "2"}, "spec": {"x": 1}});
        let no_rv = json!({"metadata": {"name": "p"}, "spec": {"x": 1}});
        assert!(same_but_rv(&a, &b));
        assert!(same_but_rv(&a, &no_rv));
        assert!(same_but_rv(&no_rv, &a));
        let label = json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"x": 1}});
        assert!(!same_but_rv(&no_rv, &label));
        let spec = json!({"metadata": {"name": "p", "resourceVersion": "1"}, "spec": {"x": 2}});
        assert!(!same_but_rv(&a, &spec));
        let extra = json!({"metadata": {"name": "p"}, "spec": {"x": 1}, "status": {}});
        assert!(!same_but_rv(&no_rv, &extra));
        assert!(!same_but_rv(
            &json!({"spec": {}}),
            &json!({"metadata": {}, "spec": {}})
        ));
        assert!(same_but_rv(&json!([1]), &json!([1])));
    }
}
