//! create, update, patch, delete and the write subresources (binding, eviction,
//! scale). Every change to a stored object goes through [`guaranteed_update`],
//! one compare-and-swap loop on the object's revision, so conflicts, vanished
//! objects, dry runs and deletes of finalized objects are handled in one place.

mod create;
mod delete;
mod pods;
mod scale;
mod update;

pub use create::create;
pub use delete::{delete, delete_collection};
pub use pods::{bind, evict};
pub use scale::{get_scale, update_scale};
pub use update::update_or_patch;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use store::{Revision, StoreError};

use super::{Api, Call, json_bytes};
use crate::cache::entry_from;
use crate::error::{ApiError, ApiResult};

/// Attempts at a write that races with others before giving up with a 409.
const MAX_ATTEMPTS: usize = 16;

/// What a change makes of the current object.
pub(super) enum Change {
    /// Nothing to write: the current object, handed back for the answer.
    Unchanged(Value),
    /// Store this object in place of the current one.
    Put(Value),
    /// Remove the object now (it was being deleted and nothing holds it any
    /// more); `Value` is the object as last seen, for the answer.
    Delete(Value),
}

/// What [`guaranteed_update`] did.
pub(super) enum Outcome {
    /// No object under the key.
    Absent,
    /// Nothing was written; the current object and its revision.
    Unchanged(Value, Revision),
    /// The object was stored (or, in a dry run, would have been): the object,
    /// the bytes stored (`None` in a dry run) and the revision it now has.
    Put(Value, Option<Bytes>, Revision),
    /// The object was deleted (or, in a dry run, would have been) at this revision.
    Deleted(Value, Revision),
}

impl Outcome {
    /// The answer for a write that found its object: as stored, stamped with its
    /// revision; the not-found error for an absent one.
    pub(super) fn respond(
        self,
        code: StatusCode,
        key: &str,
        absent: ApiError,
    ) -> ApiResult<Response> {
        Ok(match self {
            Outcome::Absent => return Err(absent),
            Outcome::Unchanged(obj, rev) | Outcome::Deleted(obj, rev) => {
                respond(code, key, obj, rev)
            }
            Outcome::Put(obj, Some(stored), rev) => respond_stored(code, key, &stored, obj, rev),
            Outcome::Put(obj, None, rev) => respond(code, key, obj, rev),
        })
    }
}

/// The object a write is about: its store key and the names its errors use.
pub(super) struct Target<'a> {
    pub key: String,
    pub group: &'a str,
    pub plural: &'a str,
    pub name: &'a str,
}

impl<'a> Target<'a> {
    /// The object `name` of the call's resource, in the call's namespace.
    pub(super) fn of(call: &'a Call<'_>, name: &'a str) -> Self {
        Target {
            key: call.resource.key(call.namespace(), name),
            group: &call.resource.group,
            plural: &call.resource.plural,
            name,
        }
    }

    pub(super) fn not_found(&self) -> ApiError {
        ApiError::not_found(self.group, self.plural, self.name)
    }

    fn stale(&self) -> ApiError {
        ApiError::stale(self.group, self.plural, self.name)
    }
}

/// Runs `change` on the current object of `target` (which it owns and hands
/// back or replaces) until its compare-and-swap wins: reads from the cache first and from the store after a lost race; a dry
/// run runs the change and writes nothing.
pub(super) async fn guaranteed_update<F>(
    api: &Api,
    target: &Target<'_>,
    dry_run: bool,
    mut change: F,
) -> ApiResult<Outcome>
where
    F: FnMut(Value, Revision) -> ApiResult<Change>,
{
    let key = target.key.as_str();
    let mut fresh = false;
    for _ in 0..MAX_ATTEMPTS {
        let Some((cur, rev)) = current(api, key, fresh).await? else {
            return Ok(Outcome::Absent);
        };
        let result = match change(cur, rev)? {
            Change::Unchanged(cur) => return Ok(Outcome::Unchanged(cur, rev)),
            Change::Put(new) if dry_run => return Ok(Outcome::Put(new, None, rev)),
            Change::Delete(last) if dry_run => return Ok(Outcome::Deleted(last, rev)),
            Change::Put(mut new) => {
                let stored = to_stored(&mut new)?;
                match api.store.update(key, stored.clone(), rev).await {
                    Ok(kv) => return Ok(Outcome::Put(new, Some(stored), kv.mod_revision)),
                    Err(e) => e,
                }
            }
            Change::Delete(last) => match api.store.delete(key, Some(rev)).await {
                Ok((_, del_rev)) => return Ok(Outcome::Deleted(last, del_rev)),
                Err(e) => e,
            },
        };
        match result {
            StoreError::Conflict { .. } => fresh = true,
            StoreError::NotFound(_) => return Ok(Outcome::Absent),
            e => return Err(e.into()),
        }
    }
    Err(target.stale())
}

/// Serializes an object for the store: the resourceVersion is the key's revision
/// and is never stored, as in Kubernetes.
pub(super) fn to_stored(obj: &mut Value) -> ApiResult<Bytes> {
    let meta = obj.get_mut("metadata").and_then(Value::as_object_mut);
    let rv = meta.and_then(|m| m.remove("resourceVersion"));
    let out = serde_json::to_vec(obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal_from("encoding the object failed", e));
    if let Some(rv) = rv
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("resourceVersion".into(), rv);
    }
    out
}

/// The response body for an object: as stored, stamped with its revision.
pub(super) fn respond(code: StatusCode, key: &str, mut obj: Value, rev: Revision) -> Response {
    let entry = entry_from(key.to_string(), &mut obj, rev);
    json_bytes(code, entry.json)
}

/// The response body for an object just written: the bytes stored, stamped with
/// the write's revision (no second encoding).
pub(super) fn respond_stored(
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

pub(super) fn name_of(obj: &Value) -> &str {
    apimachinery::json::str_ptr(obj, "/metadata/name")
}

/// The current stored object: from the cache first, from the store after a lost race.
async fn current(api: &Api, key: &str, fresh: bool) -> ApiResult<Option<(Value, Revision)>> {
    if !fresh && let Some(e) = api.cache.get(key) {
        return Ok(Some((e.value()?, e.mod_revision)));
    }
    match api.store.get(key, None).await? {
        Some(kv) => {
            let mut v: Value = serde_json::from_slice(&kv.value)
                .map_err(|e| ApiError::internal_from("stored object is corrupt", e))?;
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

/// Whether two objects differ in nothing but `metadata.resourceVersion`.
pub(super) fn same_but_rv(a: &Value, b: &Value) -> bool {
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

/// Sets `value` at a JSON pointer, creating objects on the way.
pub(super) fn set_at(obj: &mut Value, pointer: &str, value: Value) {
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

/// The Status body Kubernetes answers a successful subresource POST with.
pub(super) fn success(code: StatusCode) -> ApiResult<Response> {
    super::json_value(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
    )
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

    #[test]
    fn set_at_creates_objects_on_the_way() {
        let mut v = json!({"spec": "x"});
        set_at(&mut v, "/spec/replicas", json!(3));
        assert_eq!(v, json!({"spec": {"replicas": 3}}));
        set_at(&mut v, "/status/a/b", json!(true));
        assert_eq!(v["status"]["a"]["b"], true);
    }
}
