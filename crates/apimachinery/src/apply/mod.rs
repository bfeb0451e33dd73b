//! Server-side apply: merging an applied configuration into the live object and
//! keeping `metadata.managedFields` (`fieldsV1`) as Kubernetes does, with
//! conflicts between managers and `force` to take fields over.

mod fieldset;

use std::fmt;

use serde_json::{Value, json};

pub use fieldset::{FieldPath, FieldSet, display, fields_of, from_fields_v1, to_fields_v1};
use fieldset::{ListKind, item_key, list_kind, remove_at, value_at};

use crate::json::{child, meta, str_at};
use crate::patch::{field_type, root_type};

/// Who is applying or updating, and when.
#[derive(Debug, Clone)]
pub struct Manager<'a> {
    pub name: &'a str,
    pub api_version: &'a str,
    pub kind: &'a str,
    /// RFC 3339 time recorded in the entry.
    pub time: &'a str,
    /// `status`, `scale`, … or empty for the main resource.
    pub subresource: &'a str,
}

/// A field another manager set to a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// The API version the other manager used.
    pub api_version: String,
    /// As Kubernetes prints it: `.spec.replicas`.
    pub field: String,
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the configuration sets to other values; `force` takes them over.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration is not an object.
    #[error("invalid apply configuration: {0}")]
    Malformed(String),
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    let mut s = format!(
        "Apply failed with {n} conflict{}:",
        if n == 1 { "" } else { "s" }
    );
    for c in conflicts {
        s.push_str(&format!(" {c}"));
        if n > 1 {
            s.push(';');
        }
    }
    s.trim_end_matches(';').to_string()
}

struct Entry {
    raw: Value,
    set: FieldSet,
}

impl Entry {
    fn is(&self, m: &Manager, operation: &str) -> bool {
        let s = |k: &str| str_at(&self.raw, k);
        s("manager") == m.name && s("operation") == operation && s("subresource") == m.subresource
    }
}

fn entries(obj: &Value) -> Vec<Entry> {
    let list = meta::managed_fields(obj).to_vec();
    list.into_iter()
        .filter(|e| e.is_object())
        .map(|raw| {
            let set = from_fields_v1(child(&raw, "fieldsV1"));
            Entry { raw, set }
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|mut e| {
            e.raw["fieldsType"] = json!("FieldsV1");
            e.raw["fieldsV1"] = to_fields_v1(&e.set);
            e.raw
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn new_entry(m: &Manager, operation: &str, set: FieldSet) -> Entry {
    let mut raw = json!({"manager": m.name, "operation": operation, "apiVersion": m.api_version, "time": m.time});
    if !m.subresource.is_empty() {
        raw["subresource"] = json!(m.subresource);
    }
    Entry { raw, set }
}

/// Fields nobody owns: identity and server-set metadata, and status of the main resource.
fn owned_fields(obj: &Value, m: &Manager) -> FieldSet {
    let ty = root_type(m.api_version, m.kind);
    let mut set = fields_of(obj, ty.as_deref());
    let server_set = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    set.retain(|p| {
        let first = p.first().map(String::as_str).unwrap_or_default();
        let second = p.get(1).map(String::as_str).unwrap_or_default();
        !(matches!(first, "f:apiVersion" | "f:kind")
            || (first == "f:metadata" && server_set.iter().any(|f| second == format!("f:{f}")))
            || (first == "f:status" && m.subresource != "status"))
    });
    set
}

/// Applies `config` for `manager` to `live` (`None` on create) and returns the new
/// object with its `managedFields`. Without `force`, fields other managers own
/// with different values are conflicts.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &Manager,
    force: bool,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Malformed("expected an object".into()));
    }
    let mut obj = live.cloned().unwrap_or_else(|| json!({}));
    if !obj.is_object() {
        obj = json!({});
    }
    let mut all = entries(&obj);
    let applied = owned_fields(config, manager);
    let mut conflicts = Vec::new();
    for e in all.iter_mut().filter(|e| !e.is(manager, "Apply")) {
        let differing: Vec<FieldPath> = e
            .set
            .intersection(&applied)
            .filter(|p| value_at(&obj, p) != value_at(config, p))
            .cloned()
            .collect();
        if force {
            for p in &differing {
                e.set.remove(p);
            }
        } else {
            let s = |k: &str| str_at(&e.raw, k).to_string();
            conflicts.extend(differing.iter().map(|p| Conflict {
                manager: s("manager"),
                api_version: s("apiVersion"),
                field: display(p),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    let previous = all
        .iter()
        .position(|e| e.is(manager, "Apply"))
        .map(|i| all.remove(i).set)
        .unwrap_or_default();
    let others: FieldSet = all.iter().flat_map(|e| e.set.iter().cloned()).collect();
    // Fields this manager applied before and no longer does, and nobody else owns, go away.
    let mut dropped: Vec<&FieldPath> = previous
        .iter()
        .filter(|p| !applied.contains(*p) && !others.contains(*p))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        remove_at(&mut obj, p);
    }
    let ty = root_type(manager.api_version, manager.kind);
    merge_into(&mut obj, config, ty.as_deref());
    all.push(new_entry(manager, "Apply", applied));
    write_entries(&mut obj, all);
    Ok(obj)
}

/// Merges an applied configuration into an object: maps by key, map-lists by their
/// keys, sets by value, everything else replaced.
fn merge_into(live: &mut Value, config: &Value, ty: Option<&str>) {
    let (Value::Object(l), Value::Object(c)) = (&mut *live, config) else {
        *live = config.clone();
        return;
    };
    for (k, cv) in c {
        if cv.is_null() || k == "managedFields" {
            continue;
        }
        let fty = ty.and_then(|t| field_type(t, k));
        match (l.get_mut(k), cv) {
            (Some(lv @ Value::Object(_)), Value::Object(_)) => merge_into(lv, cv, fty),
            (Some(Value::Array(la)), Value::Array(ca)) => match list_kind(ty, k) {
                ListKind::Map(keys) => {
                    for item in ca {
                        let key = item_key(item, keys);
                        match la
                            .iter_mut()
                            .find(|x| key.is_some() && item_key(x, keys) == key)
                        {
                            Some(existing) => merge_into(existing, item, fty),
                            None => la.push(item.clone()),
                        }
                    }
                }
                ListKind::Set => {
                    for item in ca {
                        if !la.contains(item) {
                            la.push(item.clone());
                        }
                    }
                }
                ListKind::Atomic => *la = ca.clone(),
            },
            _ => {
                l.insert(k.clone(), cv.clone());
            }
        }
    }
}

/// Records a create, update or patch (not an apply) by `manager`: the fields it
/// changed become its own and leave other managers; fields gone from the object
/// leave every manager.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &Manager) {
    if !new.is_object() {
        return;
    }
    let now = owned_fields(new, manager);
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let changed: FieldSet = now
        .iter()
        .filter(|p| value_at(old, p) != value_at(new, p))
        .cloned()
        .collect();
    // Entries come from the stored object: a client cannot forge them in an update.
    let mut all = entries(old);
    for e in all.iter_mut() {
        e.set.retain(|p| now.contains(p) && !changed.contains(p));
    }
    match all.iter_mut().find(|e| e.is(manager, "Update")) {
        Some(e) if !changed.is_empty() => {
            e.set.extend(changed);
            e.raw["time"] = json!(manager.time);
            e.raw["apiVersion"] = json!(manager.api_version);
        }
        Some(_) => {}
        None => all.push(new_entry(manager, "Update", changed)),
    }
    write_entries(new, all);
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conflict with {:?} using {}: {}",
            self.manager, self.api_version, self.field
        )
    }
}

#[cfg(test)]
mod tests;
