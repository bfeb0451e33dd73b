//! Checks of a CRD version's `openAPIV3Schema` (`validateCustomResourceDefinitionValidation`):
//! the keywords and extensions a CRD may use, how they combine, and, through
//! `structural_rules`, that the schema is structural and its defaults fit.

use serde_json::Value;

use super::schema_extensions::extensions;
use super::structural_rules::{default_errors, structural_errors};
use crate::json::{array_at, bool_at, entries_at, has, object_at, str_at};
use crate::validation::{FieldError, Path};

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];
const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// Keywords in the order of Kubernetes' `JSONSchemaProps`, with whether the root may
/// use them when the status subresource is enabled.
const ROOT_KEYWORDS: &[(&str, bool)] = &[
    ("id", false),
    ("$schema", false),
    ("$ref", false),
    ("description", true),
    ("type", true),
    ("format", true),
    ("title", true),
    ("default", false),
    ("maximum", true),
    ("exclusiveMaximum", true),
    ("minimum", true),
    ("exclusiveMinimum", true),
    ("maxLength", true),
    ("minLength", true),
    ("pattern", true),
    ("maxItems", true),
    ("minItems", true),
    ("uniqueItems", true),
    ("multipleOf", true),
    ("enum", false),
    ("maxProperties", false),
    ("minProperties", false),
    ("required", true),
    ("items", true),
    ("allOf", false),
    ("oneOf", false),
    ("anyOf", false),
    ("not", false),
    ("properties", true),
    ("additionalProperties", false),
    ("patternProperties", false),
    ("dependencies", false),
    ("additionalItems", false),
    ("definitions", false),
    ("externalDocs", true),
    ("example", true),
    ("nullable", false),
    ("x-kubernetes-preserve-unknown-fields", true),
    ("x-kubernetes-embedded-resource", false),
    ("x-kubernetes-int-or-string", false),
    ("x-kubernetes-list-map-keys", false),
    ("x-kubernetes-list-type", false),
    ("x-kubernetes-map-type", false),
    ("x-kubernetes-validations", true),
];
const ROOT_ALLOWED_NAMES: &str = "[Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations]";

fn non_empty(s: &Value, key: &str) -> bool {
    match s.get(key) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::String(t)) => !t.is_empty(),
        _ => false,
    }
}

/// Validates `schema` (a version's `schema`, or the shared one) found at `at`.
pub(crate) fn validate_schema(
    validation: &Value,
    at: &Path,
    status_enabled: bool,
) -> Vec<FieldError> {
    let Some(schema) = validation.get("openAPIV3Schema").filter(|s| s.is_object()) else {
        return Vec::new();
    };
    let p = at.child("openAPIV3Schema");
    let mut errs = Vec::new();
    if status_enabled {
        status_root(schema, &p, &mut errs);
    }
    if bool_at(schema, "nullable") {
        errs.push(FieldError::forbidden(
            p.child("nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let not_structural = unsupported(schema);
    if not_structural.is_none() {
        let structural = structural_errors(schema, &p);
        if structural.is_empty() {
            default_errors(schema, &p, true, false, &mut errs);
        }
        errs.extend(structural);
    }
    let rules = Rules {
        forbid_defaults: None,
        inside_meta: false,
    };
    keywords(schema, &p, &rules, true, &mut errs);
    if let (true, Some(why)) = (errs.is_empty(), not_structural) {
        errs.push(FieldError::invalid(&p, "", why));
    }
    errs
}

/// With the status subresource, the root may only hold what still holds once `status`
/// is validated on its own.
fn status_root(schema: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    for (key, allowed) in ROOT_KEYWORDS {
        let set = match schema.get(*key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b || *key == "x-kubernetes-preserve-unknown-fields",
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if !set {
            continue;
        }
        if *key == "type" {
            let ty = str_at(schema, "type");
            if ty != "object" {
                let detail = "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled";
                errs.push(FieldError::invalid(p.child("type"), ty, detail));
                return;
            }
            continue;
        }
        if !allowed {
            let detail = format!(
                "only {ROOT_ALLOWED_NAMES} fields are allowed at the root of the schema if the status subresource is enabled"
            );
            errs.push(FieldError::invalid(p, schema, detail));
            return;
        }
    }
}

/// Why Kubernetes cannot read the schema as structural at all, if it cannot.
fn unsupported(s: &Value) -> Option<String> {
    if !s.is_object() {
        return None;
    }
    let keyword = [
        ("id", "id"),
        ("$schema", "schema"),
        ("$ref", "$ref"),
        ("patternProperties", "patternProperties"),
        ("dependencies", "dependencies"),
        ("definitions", "definitions"),
    ]
    .into_iter()
    .find(|(key, _)| non_empty(s, key))
    .map(|(_, name)| name)
    .or_else(|| has(s, "additionalItems").then_some("additionalItems"));
    if let Some(name) = keyword {
        return Some(format!("OpenAPIV3Schema '{name}' is not supported"));
    }
    let junctors = ["not", "allOf", "anyOf", "oneOf"]
        .into_iter()
        .flat_map(|k| match s.get(k) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        });
    if let Some(why) = junctors.into_iter().find_map(unsupported) {
        return Some(why);
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        return Some(
            "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined"
                .into(),
        );
    }
    if s.get("items").is_some_and(Value::is_array) {
        return Some("OpenAPIV3Schema 'items' must be a schema, but is an array".into());
    }
    let children = s
        .get("items")
        .into_iter()
        .chain(entries_at(s, "properties").map(|(_, v)| v))
        .chain(s.get("additionalProperties"));
    children.into_iter().find_map(unsupported)
}

/// What holds for a sub-schema because of where it is.
#[derive(Clone)]
struct Rules {
    /// Why `default` may not be used here, if it may not.
    forbid_defaults: Option<String>,
    /// Inside `apiVersion`, `kind` or `metadata` of a resource.
    inside_meta: bool,
}

/// `ValidateCustomResourceDefinitionOpenAPISchema` without the CEL compilation.
fn keywords(s: &Value, p: &Path, rules: &Rules, root: bool, errs: &mut Vec<FieldError>) {
    if !s.is_object() {
        return;
    }
    basics(s, p, rules, errs);
    if bool_at(s, "uniqueItems") {
        let detail =
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic";
        errs.push(FieldError::forbidden(p.child("uniqueItems"), detail));
    }
    let embedded = bool_at(s, "x-kubernetes-embedded-resource");
    if let Some(additional) = s.get("additionalProperties").filter(|a| !a.is_null()) {
        let restricts = !matches!(additional, Value::Bool(true));
        if non_empty(s, "properties") && restricts {
            let detail = "additionalProperties and properties are mutual exclusive";
            errs.push(FieldError::forbidden(
                p.child("additionalProperties"),
                detail,
            ));
        }
        let mut sub = rules.clone();
        if rules.inside_meta {
            sub.forbid_defaults =
                Some("inside additionalProperties applying to object metadata".into());
        }
        keywords(
            additional,
            &p.child("additionalProperties"),
            &sub,
            false,
            errs,
        );
    }
    if let Some(props) = object_at(s, "properties") {
        for (k, v) in props {
            let mut sub = rules.clone();
            if (root || embedded) && META_FIELDS.contains(&k.as_str()) {
                sub.inside_meta = true;
                if root {
                    sub.forbid_defaults = Some(format!("in top-level {k}"));
                }
            }
            keywords(v, &p.child("properties").key(k), &sub, false, errs);
        }
    }
    if let Some(not) = s.get("not") {
        keywords(not, &p.child("not"), rules, false, errs);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for (i, x) in array_at(s, key).iter().enumerate() {
            keywords(x, &p.child(key).index(i), rules, false, errs);
        }
    }
    for key in ["definitions", "dependencies"] {
        for (k, x) in entries_at(s, key) {
            keywords(x, &p.child(key).key(k), rules, false, errs);
        }
    }
    match s.get("items") {
        Some(Value::Array(items)) => {
            for (i, x) in items.iter().enumerate() {
                keywords(x, &p.child("items").index(i), rules, false, errs);
            }
        }
        Some(items) => keywords(items, &p.child("items"), rules, false, errs),
        None => {}
    }
    extensions(s, p, errs);
}

/// `specStandardValidatorV3.validate`: keywords a CRD may not use at all.
fn basics(s: &Value, p: &Path, rules: &Rules, errs: &mut Vec<FieldError>) {
    let ty = str_at(s, "type");
    if !ty.is_empty() && !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(p.child("type"), ty, TYPES));
    }
    if let (true, Some(why)) = (has(s, "default"), &rules.forbid_defaults) {
        errs.push(FieldError::forbidden(
            p.child("default"),
            format!("must not be set {why}"),
        ));
    }
    let unsupported = [
        ("id", non_empty(s, "id")),
        ("additionalItems", has(s, "additionalItems")),
        ("patternProperties", non_empty(s, "patternProperties")),
        ("definitions", non_empty(s, "definitions")),
        ("dependencies", has(s, "dependencies")),
        ("$ref", has(s, "$ref")),
    ];
    for (key, set) in unsupported {
        if set {
            errs.push(FieldError::forbidden(
                p.child(key),
                format!("{key} is not supported"),
            ));
        }
    }
    if ty == "null" {
        let detail = "type cannot be set to null, use nullable as an alternative";
        errs.push(FieldError::forbidden(p.child("type"), detail));
    }
    if non_empty(s, "items") && s.get("items").is_some_and(Value::is_array) {
        let detail = "items must be a schema object and not an array";
        errs.push(FieldError::forbidden(p.child("items"), detail));
    }
    if rules.inside_meta && bool_at(s, "x-kubernetes-embedded-resource") {
        let detail = "must not be used inside of resource meta";
        errs.push(FieldError::forbidden(
            p.child("x-kubernetes-embedded-resource"),
            detail,
        ));
    }
}
