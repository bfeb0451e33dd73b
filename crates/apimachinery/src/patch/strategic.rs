//! Kubernetes' strategic merge patch: maps merge, lists merge by key where the
//! type says so, and the `$patch`, `$retainKeys`, `$setElementOrder/…` and
//! `$deleteFromPrimitiveList/…` directives steer the rest.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::PatchError;
use super::lists::{Id, order};
use super::table::{field_type, list_strategy};
use crate::json::{array_at, str_opt};

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

fn invalid(msg: impl Into<String>) -> PatchError {
    PatchError::Malformed(msg.into())
}

/// Merges `patch` into `original`, a struct of OpenAPI type `ty` (`None` when unknown).
pub(crate) fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<&str>,
) -> Result<Value, PatchError> {
    let mut patch = patch.clone();
    if let Some(directive) = patch.remove("$patch") {
        match directive.as_str() {
            Some("replace") => return merge_map(&Map::new(), &patch, ty),
            Some("delete") => return Ok(Value::Object(Map::new())),
            Some("merge") => {}
            _ => return Err(invalid(format!("unknown patch type: {directive} in map"))),
        }
    }
    let mut original = original.clone();
    if let Some(keep) = patch.remove("$retainKeys") {
        let keep: HashSet<&str> =
            string_list(&keep).ok_or_else(|| invalid("$retainKeys must be a list of strings"))?;
        original.retain(|k, _| keep.contains(k.as_str()));
    }
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for key in order_keys {
        let element_order = patch.remove(&key).unwrap_or_default();
        let field = &key[SET_ORDER.len()..];
        let Value::Array(element_order) = element_order else {
            return Err(invalid(format!("{key} must be a list")));
        };
        let strategy = ty.and_then(|t| list_strategy(t, field));
        let merge_key = strategy.and_then(|s| s.merge_key);
        let current = array_at(&original, field).to_vec();
        let merged = match patch.remove(field) {
            None => current.clone(),
            Some(Value::Array(p)) if strategy.is_some_and(|s| s.strategy.contains("merge")) => {
                merge_list(
                    &current,
                    &p,
                    ty.and_then(|t| field_type(t, field)),
                    merge_key,
                )?
            }
            Some(Value::Array(p)) => p,
            Some(other) => {
                patch.insert(field.to_string(), other);
                continue;
            }
        };
        if merged.is_empty() && !original.contains_key(field) {
            continue;
        }
        original.insert(
            field.to_string(),
            Value::Array(order(merged, &element_order, &current, merge_key)),
        );
    }
    for (k, pv) in patch {
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVES) {
            let Value::Array(remove) = &pv else {
                return Err(invalid(format!("{k} must be a list")));
            };
            let remove: HashSet<Id<'_>> = remove.iter().map(Id).collect();
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|x| !remove.contains(&Id(x)));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(invalid(format!("unknown patch directive {k}")));
        }
        if pv.is_null() {
            original.remove(&k);
            continue;
        }
        let fty = ty.and_then(|t| field_type(t, &k));
        let strategy = ty.and_then(|t| list_strategy(t, &k));
        let merges = strategy.is_some_and(|s| s.strategy.contains("merge"));
        let merged = match (original.get(&k), &pv) {
            (Some(Value::Object(o)), Value::Object(p)) => merge_map(o, p, fty)?,
            (_, Value::Object(p)) => merge_map(&Map::new(), p, fty)?,
            (Some(Value::Array(o)), Value::Array(p)) if merges => {
                Value::Array(merge_list(o, p, fty, strategy.and_then(|s| s.merge_key))?)
            }
            (_, Value::Array(p)) if merges => {
                Value::Array(merge_list(&[], p, fty, strategy.and_then(|s| s.merge_key))?)
            }
            _ => pv,
        };
        original.insert(k, merged);
    }
    Ok(Value::Object(original))
}

fn string_list(v: &Value) -> Option<HashSet<&str>> {
    v.as_array()?.iter().map(Value::as_str).collect()
}

/// Merges list `patch` into `original`, items matched by `merge_key` (or by value for primitives).
fn merge_list(
    original: &[Value],
    patch: &[Value],
    item_ty: Option<&str>,
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let is_directive = |v: &Value, d: &str| str_opt(v, "$patch") == Some(d);
    if patch.iter().any(|v| is_directive(v, "replace")) {
        return patch
            .iter()
            .filter(|v| !is_directive(v, "replace"))
            .map(|v| match v {
                Value::Object(m) => merge_map(&Map::new(), m, item_ty),
                other => Ok(other.clone()),
            })
            .collect();
    }
    let maps = original.iter().chain(patch).any(Value::is_object);
    let merged = if maps {
        if original.iter().chain(patch).any(|v| !v.is_object()) {
            return Err(invalid("list mixes maps and other values"));
        }
        let key = merge_key.ok_or_else(|| invalid("cannot merge lists without merge key"))?;
        merge_by_key(original, patch, item_ty, key)?
    } else {
        // Primitives: the original's and then the patch's, each value once.
        let mut seen = HashSet::new();
        original
            .iter()
            .chain(patch)
            .filter(|v| seen.insert(Id(v)))
            .cloned()
            .collect()
    };
    let key = if maps { merge_key } else { None };
    Ok(order(merged, patch, original, key))
}

/// Merges lists of maps: a patch item merges into the first original item
/// with its key, deletes every such item (`$patch: delete`), or is added.
fn merge_by_key(
    original: &[Value],
    patch: &[Value],
    item_ty: Option<&str>,
    key: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut merged: Vec<Option<Value>> = original.iter().cloned().map(Some).collect();
    let mut with_key: HashMap<Id<'_>, Vec<usize>> = HashMap::new();
    for (i, item) in original.iter().enumerate() {
        if let Some(id) = item.get(key) {
            with_key.entry(Id(id)).or_default().push(i);
        }
    }
    for item in patch {
        let Some(m) = item.as_object() else { continue };
        let Some(id) = m.get(key) else {
            return Err(invalid(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        match m.get("$patch").map(|d| d.as_str()) {
            Some(Some("delete")) => {
                for i in with_key.remove(&Id(id)).unwrap_or_default() {
                    if let Some(slot) = merged.get_mut(i) {
                        *slot = None;
                    }
                }
                continue;
            }
            None | Some(Some("merge")) => {}
            Some(_) => return Err(invalid(format!("unknown patch type in list item {item}"))),
        }
        let first = with_key.get(&Id(id)).and_then(|at| at.first().copied());
        match first.and_then(|i| merged.get_mut(i)) {
            Some(slot) => {
                let base = slot.as_ref().and_then(Value::as_object);
                let out = merge_map(base.unwrap_or(&Map::new()), m, item_ty)?;
                *slot = Some(out);
            }
            None => {
                with_key.insert(Id(id), vec![merged.len()]);
                merged.push(Some(merge_map(&Map::new(), m, item_ty)?));
            }
        }
    }
    Ok(merged.into_iter().flatten().collect())
}
