//! Metadata every write handles alike: apiVersion and kind, name generation,
//! the server-owned fields, generation.

use apimachinery::resources::Resource;
use serde_json::{Map, Value, json};

use super::cause;
use crate::error::{ApiError, ApiResult};
use crate::rest::Call;

/// Fills in or checks `apiVersion` and `kind` against the URL's resource.
pub fn check_type(obj: &mut Value, r: &Resource) -> ApiResult<()> {
    let want_av = r.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
    match apimachinery::json::str_opt(&*map, "kind") {
        None | Some("") => {
            map.insert("kind".into(), Value::String(r.kind.to_string()));
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({}) does not match the expected API version ({want_av}), or kind {k} is not {}",
                apimachinery::json::str_at(&*map, "apiVersion"),
                r.kind
            )));
        }
    }
    match apimachinery::json::str_opt(&*map, "apiVersion") {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(want_av));
        }
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    Ok(())
}

pub(super) fn meta_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    meta.as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))
}

/// Namespace from the URL, the name (or one generated from generateName), and the
/// server-owned metadata of a new object.
pub fn prepare_meta_for_create(obj: &mut Value, call: &Call<'_>) -> ApiResult<()> {
    let r = call.resource;
    let url_ns = call.namespace().map(str::to_string);
    let meta = meta_mut(obj)?;
    if r.namespaced {
        let Some(ns) = url_ns else {
            return Err(ApiError::BadRequest(format!(
                "the namespace is required to create {}",
                r.plural
            )));
        };
        match apimachinery::json::str_opt(&*meta, "namespace") {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => {
                meta.insert("namespace".into(), Value::String(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let name = apimachinery::json::str_at(&*meta, "name").to_string();
    if name.is_empty() {
        let prefix = apimachinery::json::str_at(&*meta, "generateName").to_string();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &r.group,
                &r.kind,
                "",
                vec![cause(
                    "FieldValueRequired",
                    "metadata.name",
                    "metadata.name: Required value: name or generateName is required".into(),
                )],
            ));
        }
        meta.insert("name".into(), Value::String(generate_name(&prefix)));
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert(
        "creationTimestamp".into(),
        Value::String(crate::clock::now_rfc3339()),
    );
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    if call.strategy.has_generation(r) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    Ok(())
}

/// `prefix` plus five random characters from Kubernetes' alphabet (no vowels).
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

pub fn bump_generation(obj: &mut Value) {
    let g = apimachinery::json::meta::generation(obj).unwrap_or(0);
    obj["metadata"]["generation"] = json!(g + 1);
}

/// Metadata only the server sets survives any update.
pub(super) fn keep_server_meta(obj: &mut Value, old: &Value) -> ApiResult<()> {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the body must be an object".into()))?;
    for key in ["kind", "apiVersion"] {
        if !map.contains_key(key)
            && let Some(v) = old.get(key)
        {
            map.insert(key.into(), v.clone());
        }
    }
    let meta = meta_mut(obj)?;
    for key in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old_meta.get(key) {
            Some(v) => meta.insert(key.into(), v.clone()),
            None => meta.remove(key),
        };
    }
    Ok(())
}

/// Whether two objects differ outside `metadata` and `status` (what bumps
/// `metadata.generation`), compared in place.
pub(super) fn spec_differs(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a != b;
    };
    let outside = |m: &Map<String, Value>| {
        m.keys()
            .filter(|k| *k != "metadata" && *k != "status")
            .count()
    };
    outside(a) != outside(b)
        || a.iter()
            .any(|(k, v)| k != "metadata" && k != "status" && b.get(k) != Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_differs_looks_past_metadata_and_status() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 1}});
        let b = json!({"metadata": {"name": "b"}, "spec": {"x": 1}, "status": {"y": 2}});
        assert!(!spec_differs(&a, &b));
        let c = json!({"metadata": {}, "spec": {"x": 2}});
        assert!(spec_differs(&a, &c));
        let d = json!({"metadata": {}, "spec": {"x": 1}, "data": {}});
        assert!(spec_differs(&a, &d));
        assert!(spec_differs(&d, &a));
    }

    #[test]
    fn generated_names_keep_the_prefix_and_fit() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        let long = generate_name(&"x".repeat(80));
        assert_eq!(long.len(), 63);
    }
}
