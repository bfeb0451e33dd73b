//! The `x-kubernetes-*` extensions of a CRD schema: map and list types, list map keys,
//! and the shape of `x-kubernetes-validations` rules.

use serde_json::Value;

use crate::json::{array_at, bool_at, has, str_at, str_opt};
use crate::validation::{FieldError, Path};

/// The `x-kubernetes-*` extensions: map and list types, map keys, validation rules.
pub(crate) fn extensions(s: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    let ty = str_at(s, "type");
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        let field = p.child("x-kubernetes-preserve-unknown-fields");
        errs.push(FieldError::invalid(
            field,
            false,
            "must be true or undefined",
        ));
    }
    let wrong_type = |detail: &str| {
        if ty.is_empty() {
            FieldError::required(p.child("type"), detail)
        } else {
            FieldError::invalid(p.child("type"), ty, detail)
        }
    };
    let map_type = s.get("x-kubernetes-map-type").filter(|m| !m.is_null());
    if let Some(map_type) = map_type {
        if ty != "object" {
            errs.push(wrong_type(
                "must be object if x-kubernetes-map-type is specified",
            ));
        }
        let value = map_type.as_str().unwrap_or_default();
        if value != "atomic" && value != "granular" {
            let field = p.child("x-kubernetes-map-type");
            errs.push(FieldError::not_supported(
                field,
                value,
                &["atomic", "granular"],
            ));
        }
    }
    let list_type = s
        .get("x-kubernetes-list-type")
        .filter(|l| !l.is_null())
        .map(|l| l.as_str().unwrap_or_default());
    let items = s.get("items").filter(|i| i.is_object());
    if let Some(list_type) = list_type {
        if ty != "array" {
            errs.push(wrong_type(
                "must be array if x-kubernetes-list-type is specified",
            ));
        } else if let (Some(items), "set") = (items, list_type) {
            atomic_set_items(items, p, errs);
        }
        if !matches!(list_type, "atomic" | "set" | "map") {
            let field = p.child("x-kubernetes-list-type");
            errs.push(FieldError::not_supported(
                field,
                list_type,
                &["atomic", "set", "map"],
            ));
        }
    }
    let keys: Vec<&str> = array_at(s, "x-kubernetes-list-map-keys")
        .iter()
        .map(|k| k.as_str().unwrap_or_default())
        .collect();
    let keys_value = s
        .get("x-kubernetes-list-map-keys")
        .cloned()
        .unwrap_or(Value::Null);
    if !keys.is_empty() {
        let detail = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type {
            None => errs.push(FieldError::required(
                p.child("x-kubernetes-list-type"),
                detail,
            )),
            Some("map") => {}
            Some(other) => errs.push(FieldError::invalid(
                p.child("x-kubernetes-list-type"),
                other,
                detail,
            )),
        }
    }
    if list_type == Some("map") {
        list_map(s, items, &keys, &keys_value, p, errs);
    }
    if let (Some(lt @ ("set" | "map")), Some(items)) = (list_type, items) {
        list_items(items, lt, &keys, p, errs);
    }
    rules(s, p, errs);
}

/// `validateMapListKeysMapSet`: items of sets and maps, and map keys, are never null and
/// map keys always have a value.
fn list_items(items: &Value, list_type: &str, keys: &[&str], p: &Path, errs: &mut Vec<FieldError>) {
    if bool_at(items, "nullable") {
        let detail = format!("cannot be nullable when x-kubernetes-list-type is {list_type}");
        errs.push(FieldError::forbidden(
            p.child("items").child("nullable"),
            detail,
        ));
    }
    if list_type != "map" {
        return;
    }
    let required: Vec<&str> = array_at(items, "required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for k in keys {
        let Some(prop) = items.get("properties").and_then(|ps| ps.get(*k)) else {
            continue;
        };
        let key_path = p.child("items").child("properties").key(k);
        if !required.contains(k) && !has(prop, "default") {
            let detail = "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property";
            errs.push(FieldError::required(key_path.child("default"), detail));
        }
        if bool_at(prop, "nullable") {
            let detail = "this property is in x-kubernetes-list-map-keys, so it cannot be nullable";
            errs.push(FieldError::forbidden(key_path.child("nullable"), detail));
        }
    }
}

fn atomic_set_items(items: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    let detail = "must be atomic as item of a list with x-kubernetes-list-type=set";
    match str_at(items, "type") {
        "array" => {
            if let Some(lt) = items
                .get("x-kubernetes-list-type")
                .filter(|l| !l.is_null() && *l != "atomic")
            {
                errs.push(FieldError::invalid(
                    p.child("items").child("x-kubernetes-list-type"),
                    lt,
                    detail,
                ));
            }
        }
        "object" if str_opt(items, "x-kubernetes-map-type") != Some("atomic") => {
            // Kubernetes shows the items' list type here, which an object does not have.
            let shown = items
                .get("x-kubernetes-list-type")
                .cloned()
                .unwrap_or(Value::Null);
            errs.push(FieldError::invalid(
                p.child("items").child("x-kubernetes-map-type"),
                &shown,
                detail,
            ));
        }
        _ => {}
    }
}

fn list_map(
    s: &Value,
    items: Option<&Value>,
    keys: &[&str],
    keys_value: &Value,
    p: &Path,
    errs: &mut Vec<FieldError>,
) {
    if keys.is_empty() {
        let detail = "must not be empty if x-kubernetes-list-type is map";
        errs.push(FieldError::required(
            p.child("x-kubernetes-list-map-keys"),
            detail,
        ));
    }
    match s.get("items") {
        None | Some(Value::Null) => {
            let detail = "must have a schema if x-kubernetes-list-type is map";
            errs.push(FieldError::required(p.child("items"), detail));
        }
        Some(v @ Value::Array(_)) => {
            let detail = "must only have a single schema if x-kubernetes-list-type is map";
            errs.push(FieldError::invalid(p.child("items"), v, detail));
        }
        _ => {}
    }
    let Some(items) = items else { return };
    let item_type = str_at(items, "type");
    if item_type != "object" {
        let detail = "must be object if parent array's x-kubernetes-list-type is map";
        errs.push(FieldError::invalid(
            p.child("items").child("type"),
            item_type,
            detail,
        ));
        return;
    }
    let props = items.get("properties");
    for (i, k) in keys.iter().enumerate() {
        match props.and_then(|ps| ps.get(*k)) {
            Some(prop) => {
                if matches!(str_at(prop, "type"), "array" | "object") {
                    // Kubernetes shows the item's type here, not the key's.
                    let detail =
                        "must be a scalar type if parent array's x-kubernetes-list-type is map";
                    let field = p.child("items").child("properties").key(k).child("type");
                    errs.push(FieldError::invalid(field, item_type, detail));
                }
            }
            None => {
                let detail = "entries must all be names of item properties";
                errs.push(FieldError::invalid(
                    p.child("x-kubernetes-list-map-keys"),
                    keys_value,
                    detail,
                ));
            }
        }
        if keys[..i].contains(k) {
            let detail = "must not contain duplicate entries";
            errs.push(FieldError::invalid(
                p.child("x-kubernetes-list-map-keys"),
                keys_value,
                detail,
            ));
        }
    }
}

/// The shape of `x-kubernetes-validations` rules; the CEL itself is not compiled.
fn rules(s: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    const REASONS: &[&str] = &[
        "FieldValueDuplicate",
        "FieldValueForbidden",
        "FieldValueInvalid",
        "FieldValueRequired",
    ];
    for (i, r) in array_at(s, "x-kubernetes-validations").iter().enumerate() {
        let at = p.child("x-kubernetes-validations").index(i);
        let (rule, message) = (str_at(r, "rule"), str_at(r, "message"));
        if rule.trim().is_empty() {
            errs.push(FieldError::required(
                at.child("rule"),
                "rule is not specified",
            ));
        } else if !message.is_empty() && message.trim().is_empty() {
            errs.push(FieldError::invalid(
                at.child("message"),
                message,
                "must be non-empty if specified",
            ));
        } else if message.trim().contains(['\n', '\r']) {
            errs.push(FieldError::invalid(
                at.child("message"),
                message,
                "must not contain line breaks",
            ));
        } else if rule.trim().contains(['\n', '\r']) && message.trim().is_empty() {
            let detail = "message must be specified if rule contains line breaks";
            errs.push(FieldError::required(at.child("message"), detail));
        }
        let expr = str_at(r, "messageExpression");
        if !expr.is_empty() && expr.trim().is_empty() {
            let detail = "messageExpression must be non-empty if specified";
            errs.push(FieldError::required(at.child("messageExpression"), detail));
        }
        if let Some(reason) = str_opt(r, "reason")
            && !REASONS.contains(&reason)
        {
            errs.push(FieldError::not_supported(
                at.child("reason"),
                reason,
                REASONS,
            ));
        }
        let field_path = str_at(r, "fieldPath");
        if !field_path.is_empty() && field_path.trim().is_empty() {
            errs.push(FieldError::invalid(
                at.child("fieldPath"),
                field_path,
                "must be non-empty if specified",
            ));
        }
        if field_path.contains(['\n', '\r']) {
            errs.push(FieldError::invalid(
                at.child("fieldPath"),
                field_path,
                "must not contain line breaks",
            ));
        }
    }
}
