//! Field sets as server-side apply tracks them: leaf paths such as
//! `f:spec` `f:containers` `k:{"name":"web"}` `f:image`, converted to and from
//! the `fieldsV1` tree of `managedFields`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::{field_type, list_strategy};

/// One leaf path: `f:<field>`, `k:<key json>`, `v:<value json>` and `.` elements.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is owned and merged by server-side apply.
pub(crate) enum ListKind {
    /// Items identified by the values of these fields.
    Map(&'static [&'static str]),
    /// Items are unique scalars.
    Set,
    /// The list is one value.
    Atomic,
}

pub(crate) fn list_kind(ty: Option<&str>, field: &str) -> ListKind {
    match ty.and_then(|t| list_strategy(t, field)) {
        Some(s) if s.list_type == Some("map") && !s.list_map_keys.is_empty() => {
            ListKind::Map(s.list_map_keys)
        }
        Some(s) if s.list_type == Some("set") => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

/// The key element of a map-list item; key fields a client may leave to their default are filled in.
pub(crate) fn item_key(item: &Value, keys: &[&str]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        match item.get(*k) {
            Some(v) if !v.is_null() => {
                m.insert(k.to_string(), v.clone());
            }
            _ if *k == "protocol" => {
                m.insert(k.to_string(), json!("TCP"));
            }
            _ => {}
        }
    }
    if m.is_empty() {
        None
    } else {
        Some(format!("k:{}", Value::Object(m)))
    }
}

/// Fields of `obj` (a struct of type `ty`) that an applier or updater sets.
pub fn fields_of(obj: &Value, ty: Option<&str>) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = obj {
        walk_map(m, ty, &mut Vec::new(), &mut out);
    }
    out
}

fn walk_map(m: &Map<String, Value>, ty: Option<&str>, at: &mut FieldPath, out: &mut FieldSet) {
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        at.push(format!("f:{k}"));
        walk_value(v, ty, k, at, out);
        at.pop();
    }
}

fn walk_value(
    v: &Value,
    parent: Option<&str>,
    field: &str,
    at: &mut FieldPath,
    out: &mut FieldSet,
) {
    let fty = parent.and_then(|t| field_type(t, field));
    match v {
        Value::Object(m) if !m.is_empty() => walk_map(m, fty, at, out),
        Value::Array(items) => match list_kind(parent, field) {
            ListKind::Map(keys) => {
                for item in items {
                    let Some(key) = item_key(item, keys) else {
                        continue;
                    };
                    at.push(key);
                    at.push(".".into());
                    out.insert(at.clone());
                    at.pop();
                    if let Value::Object(m) = item {
                        walk_map(m, fty, at, out);
                    }
                    at.pop();
                }
            }
            ListKind::Set => {
                for item in items {
                    at.push(format!("v:{item}"));
                    out.insert(at.clone());
                    at.pop();
                }
            }
            ListKind::Atomic => {
                out.insert(at.clone());
            }
        },
        _ => {
            out.insert(at.clone());
        }
    }
}

/// The value at a leaf path, with its list item for `.`.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        if el == "." {
            continue;
        }
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            let names: Vec<&str> = key.keys().map(String::as_str).collect();
            cur.as_array()?
                .iter()
                .find(|item| item_key(item, &names).as_deref() == Some(el.as_str()))?
        } else if let Some(v) = el.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|item| **item == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the field or list item a leaf path names; returns whether anything was removed.
pub(crate) fn remove_at(obj: &mut Value, path: &[String]) -> bool {
    let path: Vec<&String> = path.iter().filter(|e| *e != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = obj;
    for el in parents {
        let Some(next) = step_mut(cur, el) else {
            return false;
        };
        cur = next;
    }
    if let Some(f) = last.strip_prefix("f:") {
        return cur.as_object_mut().is_some_and(|m| m.remove(f).is_some());
    }
    let Some(items) = cur.as_array_mut() else {
        return false;
    };
    let before = items.len();
    let target = value_index(items, last);
    if let Some(i) = target {
        items.remove(i);
    }
    items.len() != before
}

fn value_index(items: &[Value], el: &str) -> Option<usize> {
    if let Some(k) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        let names: Vec<&str> = key.keys().map(String::as_str).collect();
        items
            .iter()
            .position(|item| item_key(item, &names).as_deref() == Some(el))
    } else {
        let want: Value = serde_json::from_str(el.strip_prefix("v:")?).ok()?;
        items.iter().position(|item| *item == want)
    }
}

fn step_mut<'a>(cur: &'a mut Value, el: &str) -> Option<&'a mut Value> {
    if let Some(f) = el.strip_prefix("f:") {
        return cur.get_mut(f);
    }
    let i = value_index(cur.as_array()?, el)?;
    cur.get_mut(i)
}

/// The `fieldsV1` tree of a field set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for el in path {
            let next = cur.entry(el.clone()).or_insert_with(|| json!({}));
            let Value::Object(m) = next else { break };
            cur = m;
        }
    }
    Value::Object(root)
}

/// The field set of a `fieldsV1` tree: every node without children is a leaf.
pub fn from_fields_v1(tree: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    collect(tree, &mut Vec::new(), &mut out);
    out
}

fn collect(tree: &Value, at: &mut FieldPath, out: &mut FieldSet) {
    match tree {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                at.push(k.clone());
                collect(v, at, out);
                at.pop();
            }
        }
        _ if !at.is_empty() => {
            out.insert(at.clone());
        }
        _ => {}
    }
}

/// A path as Kubernetes prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}
