//! Validation and defaulting of CustomResourceDefinitions themselves, as Kubernetes'
//! `apiextensions/validation` checks an `apiextensions.k8s.io/v1` object.
//!
//! Kubernetes validates the internal form of a CRD, into which per-version schemas,
//! subresources and printer columns that are identical across all versions are moved up
//! to the spec. Errors about them are therefore reported at `spec.validation`,
//! `spec.subresources` and `spec.additionalPrinterColumns` for a CRD with a single
//! version, and here too.

use serde_json::Value;

use super::conversion::{validate_conversion, validate_stored_versions};
use super::jsonpath::validate_simple_json_path;
use super::schema_rules::validate_schema;
use crate::json::{
    array_at, array_ptr, bool_at, bool_ptr, child, child_ptr, meta, str_at, str_opt, str_ptr,
};
use crate::validation::{FieldError, Path, is_dns1035_label, is_dns1123_subdomain};

const PRINTER_COLUMN_TYPES: &str = "boolean,date,integer,number,string";
const PRINTER_COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];
const APPROVAL_ANNOTATION: &str = "api-approved.kubernetes.io";

/// Fills in what `apiextensions.k8s.io/v1` defaults: `names.singular` (the lower-case
/// kind), `names.listKind` (`<Kind>List`), `conversion.strategy: None`, a conversion
/// webhook service's port 443, and `status.storedVersions` (the storage version).
pub fn default_crd(crd: &mut Value) {
    let storage = array_ptr(crd, "/spec/versions")
        .iter()
        .find(|v| bool_at(v, "storage"))
        .map(|v| str_at(v, "name").to_string());
    let names = child_ptr(crd, "/spec/names");
    let kind = str_at(names, "kind").to_string();
    let no_singular = str_at(names, "singular").is_empty();
    let no_list_kind = str_at(names, "listKind").is_empty();
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        if no_singular {
            names.insert("singular".into(), kind.to_lowercase().into());
        }
        if !kind.is_empty() && no_list_kind {
            names.insert("listKind".into(), format!("{kind}List").into());
        }
    }
    let conversion = spec
        .entry("conversion")
        .or_insert_with(|| serde_json::json!({"strategy": "None"}));
    if let Some(service) = conversion
        .pointer_mut("/webhook/clientConfig/service")
        .and_then(Value::as_object_mut)
    {
        service.entry("port").or_insert(443.into());
    }
    let Some(obj) = crd.as_object_mut() else {
        return;
    };
    let status = obj.entry("status").or_insert_with(|| serde_json::json!({}));
    if let (Some(status), Some(storage)) = (status.as_object_mut(), storage) {
        let stored = status
            .entry("storedVersions")
            .or_insert_with(|| serde_json::json!([]));
        if stored.as_array().is_some_and(Vec::is_empty) {
            *stored = serde_json::json!([storage]);
        }
    }
}

/// Validates a CRD for create (`old` is `None`) or update, as Kubernetes validates the
/// decoded object: [`default_crd`] is applied to a copy first, so store the defaulted
/// object. The generic `metadata` rules are not repeated here (`validation::validate`
/// checks them for every kind); the name must in addition be
/// `<spec.names.plural>.<spec.group>`. Scope and kind become immutable once the old CRD
/// is `Established`, as in Kubernetes; group and plural always are.
/// `x-kubernetes-validations` rules are checked for shape, not compiled.
pub fn validate_crd(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut defaulted = crd.clone();
    default_crd(&mut defaulted);
    let crd = &defaulted;
    let spec = child(crd, "spec");
    let mut errs = Vec::new();
    if old.is_none() {
        let name = meta::name(crd);
        let wanted = format!(
            "{}.{}",
            str_at(child(spec, "names"), "plural"),
            str_at(spec, "group")
        );
        if !name.is_empty() && name != wanted {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
    }
    validate_spec(spec, &mut errs);
    if let Some(old) = old {
        let old_spec = child(old, "spec");
        let p = Path::new("spec");
        let mut immutable = vec![
            (p.child("group"), "/group"),
            (p.child("names").child("plural"), "/names/plural"),
        ];
        if is_established(old) {
            immutable.splice(
                0..0,
                [
                    (p.child("scope"), "/scope"),
                    (p.child("names").child("kind"), "/names/kind"),
                ],
            );
        }
        for (field, pointer) in immutable {
            let new = child_ptr(spec, pointer);
            if new != child_ptr(old_spec, pointer) {
                errs.push(FieldError::invalid(field, new, "field is immutable"));
            }
        }
    }
    let status = child(crd, "status");
    validate_names(
        child(status, "acceptedNames"),
        &Path::new("status").child("acceptedNames"),
        &mut errs,
    );
    if let Some(stored) = status.get("storedVersions").and_then(Value::as_array) {
        validate_stored_versions(stored, array_at(spec, "versions"), &mut errs);
    }
    validate_approval(crd, old, &mut errs);
    let preserves = |c: &Value| bool_ptr(c, "/spec/preserveUnknownFields");
    if preserves(crd) && !old.is_some_and(preserves) {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            true,
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    errs
}

fn is_established(crd: &Value) -> bool {
    array_ptr(crd, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "type") == "Established" && str_at(c, "status") == "True")
}

/// Whether every version has the same value at `key`; absent and empty lists count as equal
/// for printer columns, as Kubernetes' semantic equality treats nil and empty slices.
fn identical(versions: &[Value], key: &str) -> bool {
    fn at<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
        match v.get(key) {
            Some(Value::Array(a)) if a.is_empty() => None,
            other => other.filter(|x| !x.is_null()),
        }
    }
    !versions.is_empty() && versions.iter().all(|v| at(v, key) == at(&versions[0], key))
}

fn validate_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let p = Path::new("spec");
    let group = str_at(spec, "group");
    if group.is_empty() {
        errs.push(FieldError::required(p.child("group"), ""));
    } else if let problems @ [_, ..] = is_dns1123_subdomain(group).as_slice() {
        errs.push(FieldError::invalid(
            p.child("group"),
            group,
            problems.join(","),
        ));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            p.child("group"),
            group,
            "should be a domain with at least one dot",
        ));
    }
    match str_at(spec, "scope") {
        "" => errs.push(FieldError::required(p.child("scope"), "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            p.child("scope"),
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = array_at(spec, "versions");
    let vp = p.child("versions");
    for (i, v) in versions.iter().enumerate() {
        if child_ptr(v, "/schema/openAPIV3Schema").is_null() {
            errs.push(FieldError::required(
                vp.index(i).child("schema").child("openAPIV3Schema"),
                "",
            ));
        }
    }
    let preserve_unknown = bool_at(spec, "preserveUnknownFields");
    if preserve_unknown
        && versions
            .iter()
            .any(|v| has_defaults(v.pointer("/schema/openAPIV3Schema")))
    {
        errs.push(FieldError::invalid(
            p.child("preserveUnknownFields"),
            true,
            "must be false in order to use defaults in the schema",
        ));
    }
    let same_schema = identical(versions, "schema");
    let same_subresources = identical(versions, "subresources");
    let same_columns = identical(versions, "additionalPrinterColumns");
    let status_on = |v: &Value| !child_ptr(v, "/subresources/status").is_null();
    let mut storage = 0;
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let at = vp.index(i);
        storage += usize::from(bool_at(v, "storage"));
        let name = str_at(v, "name");
        unique &= !versions[..i].iter().any(|o| str_at(o, "name") == name);
        if let problems @ [_, ..] = is_dns1035_label(name).as_slice() {
            errs.push(FieldError::invalid(
                at.child("name"),
                name,
                problems.join(","),
            ));
        }
        validate_deprecation(v, &at, errs);
        if !same_schema && let Some(schema) = v.get("schema").filter(|s| !s.is_null()) {
            errs.extend(validate_schema(schema, &at.child("schema"), status_on(v)));
        }
        if !same_subresources {
            validate_subresources(child(v, "subresources"), &at.child("subresources"), errs);
        }
        if !same_columns {
            validate_columns(
                array_at(v, "additionalPrinterColumns"),
                &at.child("additionalPrinterColumns"),
                errs,
            );
        }
    }
    if !unique {
        errs.push(FieldError::invalid(
            &vp,
            Value::Array(versions.to_vec()),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            &vp,
            Value::Array(versions.to_vec()),
            "must have exactly one version marked as storage version",
        ));
    }
    if let Some(first) = versions.first() {
        let name = str_at(first, "name");
        if let problems @ [_, ..] = is_dns1035_label(name).as_slice() {
            errs.push(FieldError::invalid(
                p.child("version"),
                name,
                problems.join(","),
            ));
        }
    }
    let names = child(spec, "names");
    for key in ["plural", "singular", "kind", "listKind"] {
        if str_at(names, key).is_empty() {
            errs.push(FieldError::required(p.child("names").child(key), ""));
        }
    }
    validate_names(names, &p.child("names"), errs);
    if let (true, Some(first)) = (same_schema, versions.first())
        && let Some(schema) = first.get("schema").filter(|s| !s.is_null())
    {
        errs.extend(validate_schema(
            schema,
            &p.child("validation"),
            versions.iter().any(status_on),
        ));
    }
    if let (true, Some(first)) = (same_subresources, versions.first()) {
        validate_subresources(child(first, "subresources"), &p.child("subresources"), errs);
    }
    if let (true, Some(first)) = (same_columns, versions.first()) {
        validate_columns(
            array_at(first, "additionalPrinterColumns"),
            &p.child("additionalPrinterColumns"),
            errs,
        );
    }
    if let Some(conversion) = spec.get("conversion").filter(|c| !c.is_null()) {
        if preserve_unknown && str_at(conversion, "strategy") != "None" {
            let strategy = str_at(conversion, "strategy");
            let detail = "must be None if spec.preserveUnknownFields is true";
            errs.push(FieldError::invalid(
                p.child("conversion").child("strategy"),
                strategy,
                detail,
            ));
        }
        validate_conversion(conversion, &p.child("conversion"), errs);
    }
}

fn has_defaults(schema: Option<&Value>) -> bool {
    match schema {
        Some(Value::Object(m)) => {
            m.contains_key("default") || m.values().any(|v| has_defaults(Some(v)))
        }
        Some(Value::Array(a)) => a.iter().any(|v| has_defaults(Some(v))),
        _ => false,
    }
}

/// `ValidateCustomResourceDefinitionNames`, for `spec.names` and `status.acceptedNames`.
fn validate_names(names: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    for key in ["plural", "singular"] {
        let value = str_at(names, key);
        if let (false, problems @ [_, ..]) = (value.is_empty(), is_dns1035_label(value).as_slice())
        {
            errs.push(FieldError::invalid(p.child(key), value, problems.join(",")));
        }
    }
    for key in ["kind", "listKind"] {
        let value = str_at(names, key);
        let lower = value.to_lowercase();
        if let (false, problems @ [_, ..]) = (value.is_empty(), is_dns1035_label(&lower).as_slice())
        {
            let detail = format!(
                "may have mixed case, but should otherwise match: {}",
                problems.join(",")
            );
            errs.push(FieldError::invalid(p.child(key), value, detail));
        }
    }
    for key in ["shortNames", "categories"] {
        for (i, v) in array_at(names, key).iter().enumerate() {
            let value = v.as_str().unwrap_or_default();
            if let problems @ [_, ..] = is_dns1035_label(value).as_slice() {
                errs.push(FieldError::invalid(
                    p.child(key).index(i),
                    value,
                    problems.join(","),
                ));
            }
        }
    }
    let kind = str_at(names, "kind");
    if !kind.is_empty() && kind == str_at(names, "listKind") {
        errs.push(FieldError::invalid(
            p.child("listKind"),
            kind,
            "kind and listKind may not be the same",
        ));
    }
}

fn validate_deprecation(v: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    let Some(warning) = str_opt(v, "deprecationWarning") else {
        return;
    };
    let field = at.child("deprecationWarning");
    let mut push = |detail: String| errs.push(FieldError::invalid(&field, warning, detail));
    if !bool_at(v, "deprecated") {
        push("can only be set for deprecated versions".into());
        return;
    }
    if warning.len() > 256 {
        push("must be <= 256 characters long".into());
    }
    if warning.is_empty() {
        push("must not be an empty string".into());
    }
    if let Some((i, _)) = warning.char_indices().find(|(_, c)| c.is_control()) {
        push(format!(
            "must only contain printable UTF-8 characters; control character found at index {i}"
        ));
    }
}

fn validate_subresources(sub: &Value, p: &Path, errs: &mut Vec<FieldError>) {
    let Some(scale) = sub.get("scale").filter(|s| !s.is_null()) else {
        return;
    };
    let rules = [
        (
            "specReplicasPath",
            true,
            &[".spec."][..],
            "should be a json path under .spec",
        ),
        (
            "statusReplicasPath",
            true,
            &[".status."][..],
            "should be a json path under .status",
        ),
        (
            "labelSelectorPath",
            false,
            &[".spec.", ".status."][..],
            "should be a json path under either .spec or .status",
        ),
    ];
    for (key, required, prefixes, detail) in rules {
        let field = format!("{p}.scale.{key}");
        let path = str_at(scale, key);
        if path.is_empty() {
            if required {
                errs.push(FieldError::required(&field, ""));
            }
            continue;
        }
        let problems = validate_simple_json_path(path, &field);
        if !problems.is_empty() {
            errs.extend(problems);
        } else if !prefixes.iter().any(|pre| path.starts_with(pre)) {
            errs.push(FieldError::invalid(&field, path, detail));
        }
    }
}

fn validate_columns(columns: &[Value], p: &Path, errs: &mut Vec<FieldError>) {
    for (i, c) in columns.iter().enumerate() {
        let at = p.index(i);
        if str_at(c, "name").is_empty() {
            errs.push(FieldError::required(at.child("name"), ""));
        }
        let types = format!("must be one of {PRINTER_COLUMN_TYPES}");
        match str_at(c, "type") {
            "" => errs.push(FieldError::required(at.child("type"), types)),
            t if PRINTER_COLUMN_TYPES.split(',').any(|ok| ok == t) => {}
            t => errs.push(FieldError::invalid(at.child("type"), t, types)),
        }
        let format = str_at(c, "format");
        if !format.is_empty() && !PRINTER_COLUMN_FORMATS.contains(&format) {
            let detail = format!("must be one of {}", PRINTER_COLUMN_FORMATS.join(","));
            errs.push(FieldError::invalid(at.child("format"), format, detail));
        }
        let path = str_at(c, "jsonPath");
        let field = at.child("JSONPath");
        if path.is_empty() {
            errs.push(FieldError::required(&field, ""));
        } else {
            errs.extend(validate_simple_json_path(path, field.as_str()));
        }
    }
}

/// Groups under `k8s.io` and `kubernetes.io` need an API review link (or a reason
/// starting with `unapproved`) in the `api-approved.kubernetes.io` annotation.
fn validate_approval(crd: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let group = str_ptr(crd, "/spec/group");
    let protected = ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|g| group == *g || group.ends_with(&format!(".{g}")));
    if !protected {
        return;
    }
    let annotation = |c: &Value| {
        meta::annotation(c, APPROVAL_ANNOTATION)
            .unwrap_or_default()
            .to_string()
    };
    let state = |a: &str| {
        if a.is_empty() {
            "missing"
        } else if a.starts_with("unapproved") {
            "bypassed"
        } else if a.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty() && !rest.is_empty() && !rest.starts_with('/')
        }) {
            "approved"
        } else {
            "invalid"
        }
    };
    let value = annotation(crd);
    let now = state(&value);
    if old.is_some_and(|o| state(&annotation(o)) == now) {
        return;
    }
    let field = format!("metadata.annotations[{APPROVAL_ANNOTATION}]");
    match now {
        "missing" => errs.push(FieldError::required(
            field,
            format!("protected groups must have approval annotation {APPROVAL_ANNOTATION:?}, see https://github.com/kubernetes/enhancements/pull/1111"),
        )),
        "invalid" => errs.push(FieldError::invalid(
            field,
            value.as_str(),
            format!("protected groups must have approval annotation {APPROVAL_ANNOTATION:?} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"),
        )),
        _ => {}
    }
}
