//! The checks Kubernetes runs on a custom resource besides its OpenAPI schema: embedded
//! resources (`x-kubernetes-embedded-resource`) must look like objects, and lists of type
//! `set` and `map` must not repeat elements or keys.

use serde_json::{Map, Value};

use super::structural::Structural;
use crate::json::str_at;
use crate::validation::{FieldError, NameRule, Path, is_dns1035_label, validate_object_meta_with};

/// `objectmeta.Validate` below the root: `apiVersion`, `kind` and `metadata` of every
/// embedded resource.
pub(crate) fn embedded_resources(
    s: &Structural,
    x: &Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    match x {
        Value::Object(fields) => {
            if s.embedded_resource {
                embedded_resource(fields, path, errs);
            }
            for (key, v) in fields {
                if let Some(p) = s.property(key) {
                    embedded_resources(p, v, &path.child(key), errs);
                } else if let Some(Some(extra)) = s.additional_schema() {
                    embedded_resources(extra, v, &path.key(key), errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &s.items {
                for (i, v) in items.iter().enumerate() {
                    embedded_resources(item, v, &path.index(i), errs);
                }
            }
        }
        _ => {}
    }
}

fn embedded_resource(fields: &Map<String, Value>, path: &Path, errs: &mut Vec<FieldError>) {
    for key in ["apiVersion", "kind"] {
        if !fields.contains_key(key) {
            errs.push(FieldError::required(path.child(key), ""));
        }
    }
    for (key, v) in fields {
        let at = path.child(key);
        match (key.as_str(), v.as_str()) {
            ("apiVersion" | "kind", None) => {
                errs.push(FieldError::invalid(at, v, "must be a string"))
            }
            ("apiVersion" | "kind", Some("")) => {
                errs.push(FieldError::invalid(at, "", "must not be empty"))
            }
            ("apiVersion", Some(av)) if av != "/" && av.matches('/').count() > 1 => {
                let detail = format!("unexpected GroupVersion string: {av}");
                errs.push(FieldError::invalid(at, av, detail));
            }
            ("kind", Some(kind)) => {
                let problems = is_dns1035_label(&kind.to_lowercase());
                if !problems.is_empty() {
                    let detail = format!(
                        "may have mixed case, but should otherwise match: {}",
                        problems.join(",")
                    );
                    errs.push(FieldError::invalid(at, kind, detail));
                }
            }
            ("metadata", _) => embedded_metadata(v, &at, errs),
            _ => {}
        }
    }
}

/// Metadata of an embedded resource: any name may be left out, the namespace decides
/// whether it is namespaced, names only need to be usable as path segments.
fn embedded_metadata(meta: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    let Some(fields) = meta.as_object() else {
        errs.push(FieldError::invalid(at, meta, "must be an object"));
        return;
    };
    let mut meta = fields.clone();
    if str_at(&meta, "name").is_empty() {
        meta.insert("name".into(), "fakename".into());
    }
    let namespaced = !str_at(&meta, "namespace").is_empty();
    let found = validate_object_meta_with(&Value::Object(meta), namespaced, NameRule::PathSegment);
    for mut e in found {
        let rest = e.field.strip_prefix("metadata").unwrap_or(&e.field);
        e.field = format!("{at}{rest}");
        errs.push(e);
    }
}

/// `ValidateListSetsAndMaps`: no element of a `set` twice, no key of a `map` twice.
pub(crate) fn list_sets_and_maps(
    s: &Structural,
    x: &Value,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    match x {
        Value::Object(fields) => {
            if let Some(Some(extra)) = s.additional_schema() {
                for (key, v) in fields {
                    list_sets_and_maps(extra, v, &path.key(key), errs);
                }
            }
            for (key, v) in fields {
                if let Some(p) = s.property(key) {
                    list_sets_and_maps(p, v, &path.child(key), errs);
                }
            }
        }
        Value::Array(items) => {
            match s.list_type.as_deref() {
                Some("set") => {
                    for i in first_repeats(items) {
                        errs.push(FieldError::duplicate(path.index(i), &items[i]));
                    }
                }
                Some("map") => list_map(s, items, path, errs),
                _ => {}
            }
            if let Some(item) = &s.items {
                for (i, v) in items.iter().enumerate() {
                    list_sets_and_maps(item, v, &path.index(i), errs);
                }
            }
        }
        _ => {}
    }
}

fn list_map(s: &Structural, items: &[Value], path: &Path, errs: &mut Vec<FieldError>) {
    if let Some(i) = items.iter().position(|x| !x.is_null() && !x.is_object()) {
        let detail = "must be an object for an array of list-type map";
        errs.push(FieldError::invalid(path.index(i), &items[i], detail));
        return;
    }
    // An absent key (or a null element) is a key of its own, distinct from any value.
    let keys: Vec<Map<String, Value>> = items
        .iter()
        .map(|x| {
            s.list_map_keys
                .iter()
                .filter_map(|k| Some((k.clone(), x.get(k)?.clone())))
                .collect()
        })
        .collect();
    let keys: Vec<Value> = keys.into_iter().map(Value::Object).collect();
    for i in first_repeats(&keys) {
        errs.push(FieldError::duplicate(path.index(i), &keys[i]));
    }
}

/// Indexes of the second occurrence of every repeated value, in order.
fn first_repeats(items: &[Value]) -> Vec<usize> {
    // Serialized JSON is canonical here: object keys are sorted, and `1` differs from `1.0`
    // as Go's int64 differs from float64.
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (i, x) in items.iter().enumerate() {
        let times = seen.entry(x.to_string()).or_insert(0);
        *times += 1;
        if *times == 2 {
            out.push(i);
        }
    }
    out
}
