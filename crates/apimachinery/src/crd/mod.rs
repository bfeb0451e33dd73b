//! Custom resources: validation of CustomResourceDefinitions, and what a CRD version's
//! `openAPIV3Schema` does to its objects (pruning, defaulting, validation), following
//! Kubernetes' apiextensions-apiserver.
//!
//! The server serves each version returned by [`served_resources`] through the generic
//! handler. On every write and read it prunes ([`Structural::prune`]) and defaults
//! ([`Structural::apply_defaults`]); on writes it then validates
//! ([`Structural::validate`]). Parse a schema once with [`Structural::new`] and keep it
//! with the version; the free functions of the same names parse it on each call.

mod conversion;
mod definition;
mod formats;
mod gotext;
mod jsonpath;
mod lists;
mod openapi;
mod prune;
mod schema_extensions;
mod schema_rules;
mod structural;
mod structural_rules;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

pub use definition::{default_crd, validate_crd};
pub use jsonpath::eval_simple_jsonpath;
pub use structural::Structural;

use crate::json::{
    array_at, array_ptr, bool_at, child, child_ptr, i64_at, object_ptr, str_at, str_opt, str_ptr,
};
use crate::resources::{ALL_VERBS, Resource};
use crate::validation::{FieldError, Path};

/// Removes fields `schema` does not specify; see [`Structural::prune`].
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    Structural::new(schema).prune(obj)
}

/// Applies the `default`s of `schema`; see [`Structural::apply_defaults`].
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    Structural::new(schema).apply_defaults(obj);
}

/// Validates a custom resource against `schema`; see [`Structural::validate`].
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    Structural::new(schema).validate(obj)
}

impl Structural {
    /// Validates a whole custom resource as Kubernetes does after decoding it: the OpenAPI
    /// schema, embedded resources, and `x-kubernetes-list-type` `set` / `map` uniqueness.
    /// Root `apiVersion`, `kind` and `metadata` are the server's to check, as are
    /// `x-kubernetes-validations` rules, which are not evaluated.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = openapi::Validator::new(None).run(self, obj);
        lists::embedded_resources(self, obj, &Path::default(), &mut errs);
        lists::list_sets_and_maps(self, obj, &Path::default(), &mut errs);
        errs
    }

    /// Validates `status` for a write to the status subresource, against
    /// `properties.status` of the schema. Messages name fields relative to `status`, as
    /// Kubernetes' do (`status.replicas: … replicas in body must be of type integer`).
    pub fn validate_status(&self, obj: &Value) -> Vec<FieldError> {
        let (Some(status), Some(s)) = (obj.get("status"), self.property("status")) else {
            return Vec::new();
        };
        let mut errs = openapi::Validator::new(Some("status")).run(s, status);
        let at = Path::new("status");
        lists::embedded_resources(s, status, &at, &mut errs);
        lists::list_sets_and_maps(s, status, &at, &mut errs);
        errs
    }
}

/// Where the scale subresource of a version reads and writes its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// `.spec.replicas`
    pub spec_replicas: String,
    /// `.status.replicas`
    pub status_replicas: String,
    /// `.status.selector`, when the version exposes one.
    pub label_selector: Option<String>,
}

/// One `additionalPrinterColumns` entry of a CRD version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served version of a CRD, with what the server needs to serve it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrdVersion {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Whether `/status` is served.
    pub status: bool,
    /// The scale subresource, when `/scale` is served.
    pub scale: Option<ScalePaths>,
    /// Whether objects are stored in this version.
    pub storage: bool,
    pub deprecated: bool,
    pub deprecation_warning: Option<String>,
    /// `schema.openAPIV3Schema`, `null` when absent.
    pub schema: Value,
    pub printer_columns: Vec<PrinterColumn>,
}

/// The scale subresource of one `spec.versions[]` entry.
pub fn scale_paths(version: &Value) -> Option<ScalePaths> {
    let scale = Some(child_ptr(version, "/subresources/scale")).filter(|s| s.is_object())?;
    let text = |k: &str| str_opt(scale, k).map(str::to_string);
    Some(ScalePaths {
        spec_replicas: text("specReplicasPath")?,
        status_replicas: text("statusReplicasPath")?,
        label_selector: text("labelSelectorPath").filter(|p| !p.is_empty()),
    })
}

/// The `additionalPrinterColumns` of one `spec.versions[]` entry, as declared.
pub fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    let text = |c: &Value, k: &str| str_at(c, k).to_string();
    array_at(version, "additionalPrinterColumns")
        .iter()
        .map(|c| PrinterColumn {
            name: text(c, "name"),
            type_: text(c, "type"),
            format: text(c, "format"),
            description: text(c, "description"),
            priority: i64_at(c, "priority").unwrap_or(0),
            json_path: text(c, "jsonPath"),
        })
        .collect()
}

/// The versions of a CRD the server serves (`served: true`), in `spec.versions` order.
pub fn served_resources(crd: &Value) -> Vec<CrdVersion> {
    let spec = child(crd, "spec");
    let text = |v: &Value, p: &str| str_ptr(v, p).to_string();
    let texts = |p: &str| -> Vec<String> {
        array_ptr(spec, p)
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let kind = text(spec, "/names/kind");
    let singular = Some(text(spec, "/names/singular"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = Some(text(spec, "/names/listKind"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{kind}List"));
    array_at(spec, "versions")
        .iter()
        .filter(|v| bool_at(v, "served"))
        .map(|v| CrdVersion {
            group: text(spec, "/group"),
            version: text(v, "/name"),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            plural: text(spec, "/names/plural"),
            singular: singular.clone(),
            short_names: texts("/names/shortNames"),
            categories: texts("/names/categories"),
            namespaced: str_opt(spec, "scope") != Some("Cluster"),
            status: object_ptr(v, "/subresources/status").is_some(),
            scale: scale_paths(v),
            storage: bool_at(v, "storage"),
            deprecated: bool_at(v, "deprecated"),
            deprecation_warning: str_opt(v, "deprecationWarning").map(str::to_string),
            schema: child_ptr(v, "/schema/openAPIV3Schema").clone(),
            printer_columns: printer_columns(v),
        })
        .collect()
}

impl Resource {
    /// The resource-table entry of one served CRD version.
    ///
    /// Short names and categories live for the rest of the process: the table holds them
    /// as `&'static str`, so each distinct one is kept once, however often CRDs change.
    pub fn custom(v: &CrdVersion) -> Resource {
        let subresources: &'static [&'static str] = match (v.status, v.scale.is_some()) {
            (true, true) => &["status", "scale"],
            (true, false) => &["status"],
            (false, true) => &["scale"],
            (false, false) => &[],
        };
        Resource {
            group: Cow::Owned(v.group.clone()),
            version: Cow::Owned(v.version.clone()),
            kind: Cow::Owned(v.kind.clone()),
            plural: Cow::Owned(v.plural.clone()),
            singular: Cow::Owned(v.singular.clone()),
            namespaced: v.namespaced,
            short_names: Cow::Owned(v.short_names.iter().map(|s| intern(s)).collect()),
            categories: Cow::Owned(v.categories.iter().map(|s| intern(s)).collect()),
            subresources: Cow::Borrowed(subresources),
            verbs: Cow::Borrowed(ALL_VERBS),
            fields: &[],
        }
    }
}

fn intern(s: &str) -> &'static str {
    static TABLE: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut table = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = table.get(s) {
        return known;
    }
    let kept: &'static str = Box::leak(s.to_owned().into_boxed_str());
    table.insert(kept);
    kept
}

/// `ValidateScaleSpec` and `ValidateScaleStatus`: the replica counts at the scale paths
/// must be integers in `0..=2147483647` when present, the selector a string. Fields are
/// named by the JSON path, leading dot included, as Kubernetes names them.
pub fn validate_scale(scale: &ScalePaths, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for path in [&scale.spec_replicas, &scale.status_replicas] {
        match nested(obj, path) {
            Err(detail) => errs.push(FieldError::invalid(path, 0i64, detail)),
            Ok(Some(v)) => match v.as_i64() {
                None => errs.push(FieldError::invalid(
                    path,
                    0i64,
                    accessor_error(path, v, "int64"),
                )),
                Some(n) if n < 0 => {
                    errs.push(FieldError::invalid(
                        path,
                        n,
                        "should be a non-negative integer",
                    ));
                }
                Some(n) if n > i64::from(i32::MAX) => errs.push(FieldError::invalid(
                    path,
                    n,
                    format!("should be less than or equal to {}", i32::MAX),
                )),
                Some(_) => {}
            },
            Ok(None) => {}
        }
    }
    if let Some(path) = &scale.label_selector {
        match nested(obj, path) {
            Err(detail) => errs.push(FieldError::invalid(path, "", detail)),
            Ok(Some(v)) if !v.is_string() => {
                errs.push(FieldError::invalid(
                    path,
                    "",
                    accessor_error(path, v, "string"),
                ));
            }
            _ => {}
        }
    }
    errs
}

/// The value at a dotted path (`None` when a step is absent or null), or the error
/// `unstructured.NestedFieldNoCopy` gives for a step that is not an object.
fn nested<'a>(obj: &'a Value, path: &str) -> Result<Option<&'a Value>, String> {
    let mut at = obj;
    let mut walked = String::new();
    for step in path.trim_start_matches('.').split('.') {
        walked = format!("{walked}.{step}");
        match at {
            Value::Null => return Ok(None),
            Value::Object(fields) => match fields.get(step) {
                Some(v) => at = v,
                None => return Ok(None),
            },
            other => return Err(accessor_error(&walked, other, "map[string]interface{}")),
        }
    }
    Ok(Some(at))
}

/// `.spec.replicas accessor error: x is of the type string, expected int64`, with Go's
/// names for the JSON types.
fn accessor_error(path: &str, v: &Value, expected: &str) -> String {
    let (shown, go_type) = match v {
        Value::String(s) => (s.clone(), "string"),
        Value::Bool(b) => (b.to_string(), "bool"),
        Value::Number(n) if n.is_i64() => (n.to_string(), "int64"),
        Value::Number(n) => (n.to_string(), "float64"),
        Value::Null => ("<nil>".to_string(), "<nil>"),
        Value::Array(_) => (v.to_string(), "[]interface {}"),
        Value::Object(_) => (v.to_string(), "map[string]interface {}"),
    };
    format!("{path} accessor error: {shown} is of the type {go_type}, expected {expected}")
}
