//! Pruning of unknown fields and defaulting, as Kubernetes' `pruning` and `defaulting`
//! packages do them on every custom resource that is written or read.

use serde_json::Value;

use super::openapi::join;
use super::structural::Structural;

/// Fields of a resource that belong to the server, never pruned at a resource's root.
const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

impl Structural {
    /// Removes the fields this schema does not specify, except below
    /// `x-kubernetes-preserve-unknown-fields: true` and except `apiVersion`, `kind` and
    /// `metadata` at the root and in embedded resources. Returns the removed fields'
    /// paths, sorted, as `spec.foo` or `spec.items[0].bar`.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        self.prune_at(obj, true)
    }

    /// Pruning of a value this schema describes; `resource_root` keeps the resource
    /// fields at its top, as for a whole object.
    pub(crate) fn prune_at(&self, obj: &mut Value, resource_root: bool) -> Vec<String> {
        let mut removed = Vec::new();
        prune(obj, Some(self), resource_root, "", &mut removed);
        removed.sort();
        removed
    }

    /// Applies the schema's `default`s: first drops `null`s where the schema neither allows
    /// them nor has a default, then fills in every absent (or disallowed `null`) field that
    /// has one, at any depth, including inside defaults just applied.
    pub fn apply_defaults(&self, obj: &mut Value) {
        drop_nulls(obj, Some(self));
        default(obj, self);
    }
}

fn is_meta(key: &str) -> bool {
    META_FIELDS.contains(&key)
}

fn prune(x: &mut Value, s: Option<&Structural>, root: bool, path: &str, removed: &mut Vec<String>) {
    if let Some(s) = s.filter(|s| s.preserve_unknown_fields) {
        prune_known(x, s, root, path, removed);
        return;
    }
    match x {
        Value::Object(fields) => {
            let Some(s) = s else {
                removed.extend(fields.keys().map(|k| join(path, k)));
                fields.clear();
                return;
            };
            let keep_meta = root || s.embedded_resource;
            fields.retain(|key, v| {
                if keep_meta && is_meta(key) {
                    return true;
                }
                match s.property(key) {
                    Some(p) => prune(v, Some(p), false, &join(path, key), removed),
                    None => match s.additional_schema() {
                        Some(extra) => prune(v, extra, false, &join(path, key), removed),
                        None => {
                            if !is_meta(key) || !path.is_empty() {
                                removed.push(join(path, key));
                            }
                            return false;
                        }
                    },
                }
                true
            });
        }
        Value::Array(items) => {
            let item = s.and_then(|s| s.items.as_deref());
            for (i, v) in items.iter_mut().enumerate() {
                prune(v, item, false, &format!("{path}[{i}]"), removed);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: unknown fields stay, known ones are still
/// pruned by their own schema.
fn prune_known(x: &mut Value, s: &Structural, root: bool, path: &str, removed: &mut Vec<String>) {
    match x {
        Value::Object(fields) => {
            let keep_meta = root || s.embedded_resource;
            for (key, v) in fields.iter_mut() {
                if keep_meta && is_meta(key) {
                    continue;
                }
                match s.property(key) {
                    Some(p) => prune(v, Some(p), false, &join(path, key), removed),
                    None => {
                        if let Some(extra) = s.additional_schema() {
                            prune(v, extra, false, &join(path, key), removed);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for (i, v) in items.iter_mut().enumerate() {
                    prune_known(v, item, false, &format!("{path}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

/// `PruneNonNullableNullsWithoutDefaults`.
fn drop_nulls(x: &mut Value, s: Option<&Structural>) {
    match x {
        Value::Object(fields) => fields.retain(|key, v| {
            let field = s.and_then(|s| s.field(key));
            if v.is_null() && field.is_some_and(|f| !f.nullable && f.default.is_none()) {
                return false;
            }
            drop_nulls(v, field);
            true
        }),
        Value::Array(items) => {
            let item = s.and_then(|s| s.items.as_deref());
            for v in items {
                drop_nulls(v, item);
            }
        }
        _ => {}
    }
}

fn default(x: &mut Value, s: &Structural) {
    match x {
        Value::Object(fields) => {
            for (key, prop) in &s.properties {
                let Some(d) = &prop.default else { continue };
                let missing = match fields.get(key) {
                    None => true,
                    Some(v) => v.is_null() && !prop.nullable,
                };
                if missing {
                    fields.insert(key.clone(), d.clone());
                }
            }
            for (key, v) in fields.iter_mut() {
                if let Some(p) = s.property(key) {
                    default(v, p);
                } else if let Some(Some(extra)) = s.additional_schema() {
                    fill_null(v, extra);
                    default(v, extra);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for v in items {
                    fill_null(v, item);
                    default(v, item);
                }
            }
        }
        _ => {}
    }
}

/// A disallowed `null` becomes the schema's default.
fn fill_null(v: &mut Value, s: &Structural) {
    if let (true, false, Some(d)) = (v.is_null(), s.nullable, &s.default) {
        *v = d.clone();
    }
}
