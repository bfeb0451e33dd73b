//! Whether a CRD schema is structural (`schema.ValidateStructural`) and whether its
//! defaults fit it (`defaulting.ValidateDefaults`), read from the schema's JSON.

use serde_json::{Map, Value, json};

use super::openapi::Validator;
use super::structural::{Pattern, Structural};
use crate::json::{array_at, bool_at, entries_at, has, str_at};
use crate::validation::{FieldError, Path};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// The structural errors of a root schema, sorted by message as Kubernetes sorts them.
pub(crate) fn structural_errors(schema: &Value, p: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    invariants(schema, Level::Root, p, &mut errs);
    junctors_complete(schema, Some(schema), p, p, &mut errs);
    errs.sort_by_key(FieldError::message);
    errs
}

/// `anyOf: [{type: integer}, {type: string}]`, the one shape int-or-string may use.
fn is_int_or_string_any_of(s: &Value) -> bool {
    s.get("anyOf") == Some(&json!([{"type": "integer"}, {"type": "string"}]))
}

fn invariants(s: &Value, lvl: Level, p: &Path, errs: &mut Vec<FieldError>) {
    if !s.is_object() {
        return;
    }
    let ty = str_at(s, "type");
    let items = s.get("items").filter(|i| i.is_object());
    if ty == "array" && items.is_none() {
        errs.push(FieldError::required(p.child("items"), "must be specified"));
    }
    if let Some(items) = items {
        invariants(items, Level::Item, &p.child("items"), errs);
    }
    for (k, v) in entries_at(s, "properties") {
        invariants(v, Level::Field, &p.child("properties").key(k), errs);
    }
    let additional = s
        .get("additionalProperties")
        .filter(|a| a.is_boolean() || a.is_object());
    if let Some(additional) = additional {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                p.child("additionalProperties"),
                "must not be used at the root",
            ));
        }
        if additional.is_object() {
            invariants(
                additional,
                Level::Field,
                &p.child("additionalProperties"),
                errs,
            );
        }
    }
    let int_or_string = bool_at(s, "x-kubernetes-int-or-string");
    let preserve = bool_at(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = bool_at(s, "x-kubernetes-embedded-resource");
    let incompatible = "must be false if x-kubernetes-int-or-string is true";
    if int_or_string && preserve {
        errs.push(FieldError::invalid(
            p.child("x-kubernetes-preserve-unknown-fields"),
            true,
            incompatible,
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid(
            p.child("x-kubernetes-embedded-resource"),
            true,
            incompatible,
        ));
    }
    let first_all_of_is_int_or_string = array_at(s, "allOf")
        .first()
        .is_some_and(is_int_or_string_any_of);
    junctors(
        s,
        is_int_or_string_any_of(s),
        first_all_of_is_int_or_string,
        lvl,
        p,
        errs,
    );
    if embedded && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        errs.push(if ty.is_empty() {
            FieldError::required(p.child("type"), detail)
        } else {
            FieldError::invalid(p.child("type"), ty, detail)
        });
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(p.child("type"), detail));
    }
    if embedded && additional.is_some() {
        let detail = "must not be used if x-kubernetes-embedded-resource is set";
        errs.push(FieldError::forbidden(
            p.child("additionalProperties"),
            detail,
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid(
            p.child("type"),
            ty,
            "must be object at the root",
        ));
    }
    let check_metadata = lvl == Level::Root || embedded;
    let property = |k: &str| s.get("properties").and_then(|ps| ps.get(k));
    if check_metadata {
        for k in ["kind", "apiVersion"] {
            if let Some(prop) = property(k).filter(|prop| str_at(prop, "type") != "string") {
                let field = p.child("properties").key(k).child("type");
                errs.push(FieldError::invalid(
                    field,
                    str_at(prop, "type"),
                    "must be string",
                ));
            }
        }
    }
    if let Some(meta) = property("metadata") {
        metadata(
            meta,
            check_metadata,
            lvl,
            &p.child("properties").key("metadata"),
            errs,
        );
    }
    if embedded && !preserve && entries_at(s, "properties").next().is_none() {
        let detail = "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields";
        errs.push(FieldError::required(p.child("properties"), detail));
    }
}

/// The schema of `metadata` may only constrain `name` and `generateName`, and at the
/// root only.
fn metadata(s: &Value, check: bool, lvl: Level, p: &Path, errs: &mut Vec<FieldError>) {
    let ty = str_at(s, "type");
    if check && ty != "object" {
        errs.push(FieldError::invalid(p.child("type"), ty, "must be object"));
    }
    if lvl != Level::Root {
        return;
    }
    let mut rest: Map<String, Value> = s.as_object().cloned().unwrap_or_default();
    rest.remove("type");
    rest.remove("default");
    let names: Vec<&String> = entries_at(s, "properties").map(|(k, _)| k).collect();
    let only_names =
        !names.is_empty() && names.iter().all(|k| *k == "name" || *k == "generateName");
    if only_names || names.is_empty() {
        rest.remove("properties");
    }
    let is_zero = |v: &Value| matches!(v, Value::Null | Value::Bool(false)) || v == "";
    if rest.values().any(|v| !is_zero(v)) {
        let detail = "must not specify anything other than name and generateName, but metadata is implicitly specified";
        errs.push(FieldError::forbidden(p, detail));
    }
}

/// `validateValueValidation`: the `anyOf` / `allOf` / `oneOf` / `not` of a node, and its pattern.
fn junctors(
    s: &Value,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    lvl: Level,
    p: &Path,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, x) in array_at(s, "anyOf").iter().enumerate() {
            nested(x, false, false, lvl, &p.child("anyOf").index(i), errs);
        }
    }
    for (i, x) in array_at(s, "allOf").iter().enumerate() {
        nested(
            x,
            skip_first_all_of_any_of && i == 0,
            false,
            lvl,
            &p.child("allOf").index(i),
            errs,
        );
    }
    for (i, x) in array_at(s, "oneOf").iter().enumerate() {
        nested(x, false, false, lvl, &p.child("oneOf").index(i), errs);
    }
    if let Some(not) = s.get("not").filter(|n| n.is_object()) {
        nested(not, false, false, lvl, &p.child("not"), errs);
    }
    let pattern = str_at(s, "pattern");
    if let (false, Err(e)) = (pattern.is_empty(), Pattern::new(pattern).compiled()) {
        let detail = format!("must be a valid regular expression, but isn't: {e}");
        errs.push(FieldError::invalid(p.child("pattern"), pattern, detail));
    }
}

/// `validateNestedValueValidation`: what a schema under a junctor may not say.
fn nested(
    s: &Value,
    skip_any_of: bool,
    skip_all_of_any_of: bool,
    lvl: Level,
    p: &Path,
    errs: &mut Vec<FieldError>,
) {
    if !s.is_object() {
        return;
    }
    junctors(s, skip_any_of, skip_all_of_any_of, lvl, p, errs);
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        nested(items, false, false, lvl, &p.child("items"), errs);
    }
    for (k, v) in entries_at(s, "properties") {
        nested(
            v,
            false,
            false,
            Level::Field,
            &p.child("properties").key(k),
            errs,
        );
    }
    let forbidden: &[(&str, bool, &str)] = &[
        (
            "type",
            !str_at(s, "type").is_empty(),
            "must be empty to be structural",
        ),
        (
            "additionalProperties",
            matches!(
                s.get("additionalProperties"),
                Some(Value::Bool(true) | Value::Object(_))
            ),
            "must be undefined to be structural",
        ),
        (
            "default",
            has(s, "default"),
            "must be undefined to be structural",
        ),
        (
            "title",
            !str_at(s, "title").is_empty(),
            "must be empty to be structural",
        ),
        (
            "description",
            !str_at(s, "description").is_empty(),
            "must be empty to be structural",
        ),
        (
            "nullable",
            bool_at(s, "nullable"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-preserve-unknown-fields",
            bool_at(s, "x-kubernetes-preserve-unknown-fields"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            bool_at(s, "x-kubernetes-embedded-resource"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            bool_at(s, "x-kubernetes-int-or-string"),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            !array_at(s, "x-kubernetes-list-map-keys").is_empty(),
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            has(s, "x-kubernetes-list-type"),
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-map-type",
            has(s, "x-kubernetes-map-type"),
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-validations",
            !array_at(s, "x-kubernetes-validations").is_empty(),
            "must be empty to be structural",
        ),
    ];
    for (key, set, detail) in forbidden {
        if *set {
            errs.push(FieldError::forbidden(p.child(key), *detail));
        }
    }
    if s.get("properties")
        .and_then(|ps| ps.get("metadata"))
        .is_some()
    {
        let field = p.child("properties").key("metadata");
        errs.push(FieldError::forbidden(
            field,
            "must not be specified in a nested context",
        ));
    }
}

/// `validateStructuralCompleteness`: every field a root junctor talks about must also be
/// specified outside of it.
fn junctors_complete(
    v: &Value,
    s: Option<&Value>,
    sp: &Path,
    vp: &Path,
    errs: &mut Vec<FieldError>,
) {
    if let Some(not) = v.get("not").filter(|n| n.is_object()) {
        nested_complete(not, s, sp, &vp.child("not"), errs);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, x) in array_at(v, key).iter().enumerate() {
            nested_complete(x, s, sp, &vp.child(key).index(i), errs);
        }
    }
}

fn nested_complete(v: &Value, s: Option<&Value>, sp: &Path, vp: &Path, errs: &mut Vec<FieldError>) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            sp,
            format!("because it is defined in {vp}"),
        ));
        return;
    };
    junctors_complete(v, Some(s), sp, vp, errs);
    if let Some(items) = v.get("items").filter(|i| i.is_object()) {
        let s_items = s.get("items").filter(|i| i.is_object());
        nested_complete(items, s_items, &sp.child("items"), &vp.child("items"), errs);
    }
    for (k, field) in entries_at(v, "properties") {
        let s_field = s.get("properties").and_then(|ps| ps.get(k));
        let (sk, vk) = (sp.child("properties").key(k), vp.child("properties").key(k));
        match s_field {
            Some(s_field) => nested_complete(field, Some(s_field), &sk, &vk, errs),
            None => errs.push(FieldError::required(
                &sk,
                format!("because it is defined in {vk}"),
            )),
        }
    }
}

/// `ValidateDefaults`: every default outside resource metadata is pruned already and
/// valid against its own schema.
pub(crate) fn default_errors(
    s: &Value,
    p: &Path,
    resource_root: bool,
    inside_meta: bool,
    errs: &mut Vec<FieldError>,
) {
    if !s.is_object() {
        return;
    }
    let embedded = resource_root || bool_at(s, "x-kubernetes-embedded-resource");
    let inside_meta = inside_meta && !embedded;
    if let Some(default) = s.get("default").filter(|d| !d.is_null() && !inside_meta) {
        let node = Structural::new(s);
        let mut pruned = default.clone();
        node.prune_at(&mut pruned, embedded);
        if &pruned != default {
            errs.push(FieldError::invalid(
                p.child("default"),
                default,
                "must not have unknown fields",
            ));
        }
        let at = p.child("default");
        errs.extend(Validator::new(Some(at.as_str())).run(&node, default));
    }
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        default_errors(items, &p.child("items"), false, inside_meta, errs);
    }
    for (k, v) in entries_at(s, "properties") {
        let meta = inside_meta || (embedded && META_FIELDS.contains(&k.as_str()));
        default_errors(v, &p.child("properties").key(k), false, meta, errs);
    }
}
