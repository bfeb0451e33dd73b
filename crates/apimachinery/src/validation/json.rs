//! Shared checks over JSON objects; fields are read with `crate::json`, where a field
//! of the wrong type reads as absent (type errors are reported when decoding).

use serde_json::Value;

use super::{FieldError, Path};
use crate::json::i64_at;

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
    if let Some(n) = i64_at(v, key).filter(|n| *n < min) {
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
