//! Per-kind behaviour on top of the generic handlers, as Kubernetes' registry
//! strategies: each kind that differs from the defaults has a [`Strategy`] in a
//! file of its own here, looked up once per request ([`for_resource`]); the
//! generic steps every write takes (type and field checks, metadata, defaulting,
//! validation, subresource merging, graceful deletion) are in the files beside it.

mod crd;
mod fields;
mod job;
mod meta;
mod namespace;
mod pod;
mod secret;
mod service;
mod subresources;

use apimachinery::resources::Resource;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::{Api, Call};
use crate::error::{ApiError, ApiResult, Cause};

use crate::clock::format_rfc3339;
pub use fields::{decode_check, drop_unknown};
pub use meta::{bump_generation, check_type, prepare_meta_for_create};
pub use subresources::merge_subresource;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
}

/// What one kind does differently from the generic handlers. Every method has
/// the behaviour most kinds want as its default.
pub trait Strategy: Send + Sync {
    /// Whether changes outside metadata and status bump `metadata.generation`:
    /// by default, kinds with a status subresource (custom resources always).
    fn has_generation(&self, r: &Resource) -> bool {
        r.has_subresource("status")
    }

    /// Normalizes a written object before defaulting (a Secret's `stringData`).
    fn normalize(&self, _obj: &mut Value) {}

    /// Carries what the server owns over from the stored object on an update,
    /// before defaulting (a Service's allocated IPs and ports).
    fn prepare_for_update(&self, _obj: &mut Value, _old: &Value) {}

    /// The status a new object starts with: by default none for kinds whose
    /// status only the status subresource writes, else as sent.
    fn initial_status(&self, r: &Resource, obj: &mut Map<String, Value>) {
        if r.has_subresource("status") {
            obj.remove("status");
        }
    }

    /// Admission of a new object, on what its creator wrote (before the generic
    /// defaults): a pod's priority and tolerations, a Job's selector.
    fn admit_create(&self, _api: &Api, _obj: &mut Value) -> ApiResult<()> {
        Ok(())
    }

    /// Checks beyond the kind's validation, on every write (a CRD's own rules; a
    /// custom resource's schema). `None` means: validate as a built-in kind.
    fn validate(
        &self,
        _call: &Call<'_>,
        _obj: &mut Value,
        _old: Option<&Value>,
    ) -> Option<ApiResult<()>> {
        None
    }

    /// The stored object a subresource update is validated against, when the
    /// subresource may change what an update of the object may not.
    fn old_for_validation(&self, _sub: &str, _obj: &Value, _old: &Value) -> Option<Value> {
        None
    }

    /// Claims what a new object holds besides its key (a Service's cluster IP).
    fn allocate<'a>(&'a self, _api: &'a Api, _obj: &'a mut Value) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Refuses deletes no one may make (the cluster's own namespaces).
    fn check_delete(&self, _name: &str) -> ApiResult<()> {
        Ok(())
    }

    /// Seconds an object stays after a delete before it goes (a running pod's
    /// grace period); 0 for most kinds.
    fn deletion_grace(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Whether something of the kind's own (a namespace's finalizers, a pod its
    /// node has not yet stopped) still holds an object that is being deleted.
    fn holds_deletion(&self, _obj: &Value) -> bool {
        false
    }

    /// Marks an object that stays while it is being deleted (a namespace's phase).
    fn on_deleting(&self, _obj: &mut Map<String, Value>) {}

    /// Releases what a deleted object held (IPs, a definition's objects).
    fn after_delete<'a>(&'a self, _api: &'a Api, _obj: &'a Value) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Whether a delete answers with the deleted object rather than a Status.
    fn returns_deleted_object(&self) -> bool {
        false
    }
}

/// The behaviour of kinds that differ from the defaults in nothing.
struct Default;
impl Strategy for Default {}

/// Kinds whose status is written by their creator too and that have no
/// generation (nodes, persistent volumes and their claims).
struct KeepsStatus;
impl Strategy for KeepsStatus {
    fn has_generation(&self, _: &Resource) -> bool {
        false
    }
    fn initial_status(&self, _: &Resource, _: &mut Map<String, Value>) {}
}

/// The strategy of a resource; custom resources share one.
pub fn for_resource(r: &Resource, custom: bool) -> &'static dyn Strategy {
    if custom {
        return &crd::CustomResource;
    }
    match (r.group.as_ref(), r.plural.as_ref()) {
        ("", "pods") => &pod::Pod,
        ("", "services") => &service::Service,
        ("", "namespaces") => &namespace::Namespace,
        ("", "secrets") => &secret::Secret,
        ("", "nodes" | "persistentvolumes" | "persistentvolumeclaims") => &KeepsStatus,
        ("batch", "jobs") => &job::Job,
        ("apiextensions.k8s.io", "customresourcedefinitions") => &crd::Definition,
        _ => &Default,
    }
}

pub(super) fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

/// Nothing may be created in a missing or terminating namespace.
pub async fn check_namespace_usable(api: &Api, call: &Call<'_>) -> ApiResult<()> {
    let Some(ns) = call.namespace() else {
        return Ok(());
    };
    api.consistent().await?;
    let Some(entry) = api.cache.get(&crate::keys::namespace(ns)) else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    if entry
        .value()?
        .pointer("/metadata/deletionTimestamp")
        .is_some()
    {
        return Err(ApiError::Forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            call.resource.plural, call.info.name
        )));
    }
    Ok(())
}

/// Defaulting, server-owned fields, admission and validation, for a create or
/// an update (`old` is the stored object).
pub fn prepare(
    api: &Api,
    call: &Call<'_>,
    op: Op,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    super::node_restriction::admit(
        call.user,
        call.resource,
        &call.info.subresource,
        op,
        obj,
        old,
    )?;
    let (r, kind) = (call.resource, call.strategy);
    let av = r.api_version();
    if let Some(old) = old {
        meta::keep_server_meta(obj, old)?;
        kind.prepare_for_update(obj, old);
    }
    kind.normalize(obj);
    if op == Op::Create {
        kind.admit_create(api, obj)?;
    }
    apimachinery::defaults::apply_defaults(&av, &r.kind, obj);
    if op == Op::Create
        && let Some(map) = obj.as_object_mut()
    {
        kind.initial_status(r, map);
    }
    if let Some(old) = old
        && kind.has_generation(r)
        && call.info.subresource.is_empty()
        && meta::spec_differs(obj, old)
    {
        bump_generation(obj);
    }
    if let Some(done) = kind.validate(call, obj, old) {
        done?;
        super::patch::record_managed_fields(call, obj, old);
        return Ok(());
    }
    super::patch::record_managed_fields(call, obj, old);
    let old_view = old.and_then(|o| kind.old_for_validation(&call.info.subresource, obj, o));
    let errors = apimachinery::validation::validate(&av, &r.kind, obj, old_view.as_ref().or(old));
    if !errors.is_empty() {
        let name = apimachinery::json::str_ptr(obj, "/metadata/name").to_string();
        let causes = errors
            .iter()
            .map(|e| cause(e.reason(), &e.field, e.message()))
            .collect();
        return Err(ApiError::invalid(&r.group, &r.kind, &name, causes));
    }
    Ok(())
}

/// What a new object holds besides its own key (a Service's cluster IP and node
/// ports), claimed once it has passed every check; a dry run holds nothing.
pub async fn allocate(api: &Api, call: &Call<'_>, obj: &mut Value) -> ApiResult<()> {
    if call.dry_run() {
        return Ok(());
    }
    call.strategy.allocate(api, obj).await
}

/// True when an object being deleted has no finalizers left, so it goes now.
pub fn finalized(kind: &dyn Strategy, obj: &Value) -> bool {
    if obj.pointer("/metadata/deletionTimestamp").is_none() {
        return false;
    }
    let meta_empty = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    meta_empty && !kind.holds_deletion(obj)
}

/// Marks an object as being deleted when it cannot go at once (finalizers, a pod's
/// grace period, a namespace's contents). Returns true when the object stays.
pub fn begin_delete(
    kind: &dyn Strategy,
    obj: &mut Value,
    grace: Option<i64>,
    propagation: Option<&str>,
) -> bool {
    let now = crate::clock::unix_now();
    let mut finalizers: Vec<Value> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let add = |fs: &mut Vec<Value>, f: &str| {
        if !fs.iter().any(|v| v == f) {
            fs.push(Value::String(f.into()));
        }
    };
    match propagation {
        Some("Foreground") => add(&mut finalizers, "foregroundDeletion"),
        Some("Orphan") => add(&mut finalizers, "orphan"),
        _ => {}
    }
    let grace_secs = kind.deletion_grace(obj, grace);
    // Whether the kind holds the object is judged with the grace period this
    // delete gives it (a pod deleted with 0 s is not held).
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace_secs));
    }
    let held = kind.holds_deletion(obj);
    if finalizers.is_empty() && grace_secs == 0 && !held {
        return false;
    }
    let Some(map) = obj.as_object_mut() else {
        return false;
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        if !finalizers.is_empty() {
            meta.insert("finalizers".into(), Value::Array(finalizers));
        }
        if !meta.contains_key("deletionTimestamp") || grace_secs > 0 {
            meta.insert(
                "deletionTimestamp".into(),
                Value::String(format_rfc3339(now + grace_secs)),
            );
        }
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace_secs));
    }
    if held {
        kind.on_deleting(map);
    }
    true
}

/// Refuses deletes that no one may make.
pub fn check_delete(call: &Call<'_>, name: &str) -> ApiResult<()> {
    call.strategy.check_delete(name)
}

/// Releases what a deleted object held (a Service's cluster IP and node ports,
/// a definition's custom objects).
pub async fn after_delete(api: &Api, call: &Call<'_>, obj: &Value) {
    call.strategy.after_delete(api, obj).await;
}

/// Releases allocations made for a create that was then refused by the store.
pub async fn release_on_failed_create(api: &Api, call: &Call<'_>, obj: &Value) {
    after_delete(api, call, obj).await;
}

/// Sets one status condition, keeping the transition time when nothing changed.
pub fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conds = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    let mut new =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        new["reason"] = json!(r);
    }
    if let Some(m) = message {
        new["message"] = json!(m);
    }
    match conds
        .iter_mut()
        .find(|c| apimachinery::json::str_opt(&**c, "type") == Some(kind))
    {
        Some(c) => {
            if apimachinery::json::str_opt(&*c, "status") == Some(status) {
                new["lastTransitionTime"] =
                    c.get("lastTransitionTime").cloned().unwrap_or(json!(now));
            }
            *c = new;
        }
        None => conds.push(new),
    }
}
