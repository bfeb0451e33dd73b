//! Lenient accessors over JSON objects: a field of the wrong type reads as absent,
//! since type errors are reported when the object is decoded, not here.

use serde_json::{Map, Value};

use super::{FieldError, Path};

pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(crate) fn int_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

pub(crate) fn list_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(crate) fn map_of<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// The child object at `key`, or `null` when absent.
pub(crate) fn child<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

/// An optional enumerated string field: absent is fine, empty is `Required`.
pub(crate) fn check_enum(
    errs: &mut Vec<FieldError>,
    path: &Path,
    v: &Value,
    key: &str,
    allowed: &[&str],
) {
    let Some(value) = v.get(key) else { return };
    match value.as_str() {
        Some("") => errs.push(FieldError::required(path.child(key), "")),
        Some(s) if allowed.contains(&s) => {}
        Some(_) | None if value.is_null() => {}
        _ => errs.push(FieldError::not_supported(path.child(key), value, allowed)),
    }
}

/// An optional integer that must be at least `min`.
pub(crate) fn check_min(errs: &mut Vec<FieldError>, path: &Path, v: &Value, key: &str, min: i64) {
    if let Some(n) = int_of(v, key).filter(|n| *n < min) {
        let detail = if min == 0 {
            "must be greater than or equal to 0".to_string()
        } else if min == 1 {
            "must be greater than 0".to_string()
        } else {
            format!("must be greater than or equal to {min}")
        };
        errs.push(FieldError::invalid(path.child(key), n, detail));
    }
}

/// Adds one `Invalid` error per message.
pub(crate) fn push_all(
    errs: &mut Vec<FieldError>,
    path: impl std::fmt::Display,
    value: &str,
    msgs: Vec<String>,
) {
    let path = path.to_string();
    for m in msgs {
        errs.push(FieldError::invalid(&path, value, m));
    }
}
