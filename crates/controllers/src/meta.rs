//! Object metadata the controllers share: controller references, adoption and
//! release of objects by selector, selectors and times.

use std::fmt::Debug;
use std::sync::Arc;

use apimachinery::selectors::LabelSelector as Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{Context, Error, Result, is_not_found};

/// A reference from a dependent to `owner`, as its managing controller.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner reference marked as controller, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// True when the object's controller is the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

pub fn is_deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// A workload's label selector in matchable form.
pub fn selector(sel: Option<&LabelSelector>) -> Result<Selector> {
    let value = match sel {
        Some(s) => serde_json::to_value(s).map_err(|source| Error::Encode {
            what: "label selector".into(),
            source,
        })?,
        None => Value::Null,
    };
    Selector::from_metav1(&value)
        .map_err(|e| Error::Invalid(format!("invalid label selector: {e}")))
}

pub fn matches(sel: &Selector, meta: &ObjectMeta) -> bool {
    match &meta.labels {
        Some(l) => sel.matches_map(l),
        None => sel.matches_map(&Default::default()),
    }
}

pub fn now() -> Time {
    Time(Timestamp::now())
}

/// Seconds from `t` to `now`, negative when `t` is in the future.
pub fn seconds_since(t: &Time, now: &Time) -> f64 {
    let span = now.0.as_millisecond() - t.0.as_millisecond();
    span as f64 / 1000.0
}

/// `t` plus whole seconds.
pub fn add_seconds(t: &Time, secs: i64) -> Time {
    let ms =
        t.0.as_millisecond()
            .saturating_add(secs.saturating_mul(1000));
    Time(Timestamp::from_millisecond(ms).unwrap_or(t.0))
}

/// Kubernetes' `rand.SafeEncodeString` alphabet: no vowels, no look-alikes.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-32a of `data` with the collision count mixed in, spelled as Kubernetes
/// spells template and revision hashes.
pub fn safe_hash(data: &[u8], collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(data);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&c.to_le_bytes());
        feed(&bytes);
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Adopts orphans that match and releases owned objects that no longer match,
/// returning the objects `owner` controls afterwards — Kubernetes'
/// `ControllerRefManager.Claim*`. An owner being deleted adopts nothing.
pub async fn claim<O, K>(
    owner: &O,
    sel: &Selector,
    candidates: Vec<Arc<K>>,
    api_for: impl Fn(&str) -> Api<K>,
) -> Result<Vec<Arc<K>>>
where
    O: Resource<DynamicType = ()>,
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let owner_uid = owner.uid().unwrap_or_default();
    let owner_deleting = is_deleting(owner.meta());
    let mut claimed = Vec::new();
    for obj in candidates {
        let meta = obj.meta();
        let ns = meta.namespace.clone().unwrap_or_default();
        match controller_of(meta) {
            Some(r) if r.uid == owner_uid => {
                if matches(sel, meta) || owner_deleting {
                    claimed.push(obj);
                    continue;
                }
                // Released objects go their own way (a new owner may adopt them).
                if is_deleting(meta) {
                    continue;
                }
                let refs: Vec<&OwnerReference> = meta
                    .owner_references
                    .iter()
                    .flatten()
                    .filter(|r| r.uid != owner_uid)
                    .collect();
                let patch = guarded_owner_patch(meta, &refs);
                match api_for(&ns)
                    .patch(
                        &obj.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        return Err(e).ctx(|| {
                            format!("releasing {} {}/{}", K::kind(&()), ns, obj.name_any())
                        });
                    }
                }
            }
            Some(_) => {}
            None => {
                if owner_deleting || is_deleting(meta) || !matches(sel, meta) {
                    continue;
                }
                let ours = controller_ref(owner);
                let mut refs: Vec<&OwnerReference> =
                    meta.owner_references.iter().flatten().collect();
                refs.push(&ours);
                let patch = guarded_owner_patch(meta, &refs);
                match api_for(&ns)
                    .patch(
                        &obj.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(adopted) => claimed.push(Arc::new(adopted)),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        return Err(e).ctx(|| {
                            format!("adopting {} {}/{}", K::kind(&()), ns, obj.name_any())
                        });
                    }
                }
            }
        }
    }
    Ok(claimed)
}

/// A merge patch setting the owner references, applied only if the object is
/// still at the resourceVersion the decision was made on (the server answers a
/// stale one with 409 Conflict).
fn guarded_owner_patch(meta: &ObjectMeta, refs: &[&OwnerReference]) -> Value {
    let refs = if refs.is_empty() {
        Value::Null
    } else {
        json!(refs)
    };
    json!({"metadata": {"resourceVersion": meta.resource_version, "ownerReferences": refs}})
}
