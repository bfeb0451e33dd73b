//! Kubernetes' strategic merge patch: maps merge, lists merge by key where the
//! type says so, and the `$patch`, `$retainKeys`, `$setElementOrder/…` and
//! `$deleteFromPrimitiveList/…` directives steer the rest.

use serde_json::{Map, Value};

use super::PatchError;
use super::table::{field_type, list_strategy};

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
        let keep =
            string_list(&keep).ok_or_else(|| invalid("$retainKeys must be a list of strings"))?;
        original.retain(|k, _| keep.contains(&k.as_str()));
    }
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for key in order_keys {
        let order = patch.remove(&key).unwrap_or_default();
        let field = &key[SET_ORDER.len()..];
        let Value::Array(order) = order else {
            return Err(invalid(format!("{key} must be a list")));
        };
        let strategy = ty.and_then(|t| list_strategy(t, field));
        let merge_key = strategy.and_then(|s| s.merge_key);
        let current = original
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
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
        let (in_order, server_only) = partition(merged, &order, merge_key);
        original.insert(
            field.to_string(),
            Value::Array(normalize_order(
                in_order,
                server_only,
                &order,
                &current,
                merge_key,
            )),
        );
    }
    for (k, pv) in patch {
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVES) {
            let Value::Array(remove) = &pv else {
                return Err(invalid(format!("{k} must be a list")));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|x| !remove.contains(x));
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

fn string_list(v: &Value) -> Option<Vec<&str>> {
    v.as_array()?.iter().map(Value::as_str).collect()
}

/// How list items are identified: their merge key's value, or themselves.
fn identity<'a>(v: &'a Value, merge_key: Option<&str>) -> Option<&'a Value> {
    match merge_key {
        Some(k) => v.get(k),
        None => Some(v),
    }
}

fn position(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    let id = identity(item, merge_key)?;
    list.iter().position(|x| identity(x, merge_key) == Some(id))
}

/// Merges list `patch` into `original`, items matched by `merge_key` (or by value for primitives).
fn merge_list(
    original: &[Value],
    patch: &[Value],
    item_ty: Option<&str>,
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let is_directive = |v: &Value, d: &str| v.get("$patch").and_then(Value::as_str) == Some(d);
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
    let key = if maps {
        if original.iter().chain(patch).any(|v| !v.is_object()) {
            return Err(invalid("list mixes maps and other values"));
        }
        Some(merge_key.ok_or_else(|| invalid("cannot merge lists without merge key"))?)
    } else {
        None
    };
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original {
        if position(&merged, item, key).is_none() || key.is_some() {
            merged.push(item.clone());
        }
    }
    for item in patch {
        let Some(k) = key else {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
            continue;
        };
        let Some(m) = item.as_object() else { continue };
        let Some(id) = m.get(k) else {
            return Err(invalid(format!(
                "map: {item} does not contain declared merge key: {k}"
            )));
        };
        match m.get("$patch").map(|d| d.as_str()) {
            Some(Some("delete")) => {
                merged.retain(|o| o.get(k) != Some(id));
                continue;
            }
            None | Some(Some("merge")) => {}
            Some(_) => return Err(invalid(format!("unknown patch type in list item {item}"))),
        }
        match merged.iter().position(|o| o.get(k) == Some(id)) {
            Some(i) => {
                let base = merged[i].as_object().cloned().unwrap_or_default();
                merged[i] = merge_map(&base, m, item_ty)?;
            }
            None => merged.push(merge_map(&Map::new(), m, item_ty)?),
        }
    }
    let (in_patch, server_only) = partition(merged, patch, key);
    Ok(normalize_order(in_patch, server_only, patch, original, key))
}

/// Splits `merged` into the items named in `order` and the rest.
fn partition(
    merged: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
) -> (Vec<Value>, Vec<Value>) {
    merged
        .into_iter()
        .partition(|v| position(order, v, merge_key).is_some())
}

/// Orders the patch's items as `patch_order` says and the server's as they were,
/// then interleaves them as Kubernetes does.
fn normalize_order(
    mut in_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    in_patch.sort_by_key(|v| position(patch_order, v, merge_key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v, merge_key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        in_patch.into_iter().peekable(),
    );
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let li = position(server_order, l, merge_key);
                let ri = position(server_order, r, merge_key);
                let take_left = matches!((li, ri), (Some(a), Some(b)) if a < b);
                out.extend(if take_left { left.next() } else { right.next() });
            }
        }
    }
    out
}
