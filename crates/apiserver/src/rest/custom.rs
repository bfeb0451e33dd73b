//! Custom resources and their definitions: schema pruning, defaulting and
//! validation, the CRD's own checks, and the scale subresource's paths.

use apimachinery::validation::FieldError;
use serde_json::Value;

use super::Call;
use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::Custom;

fn invalid(call: &Call<'_>, kind: &str, obj: &Value, errors: Vec<FieldError>) -> ApiError {
    let name = apimachinery::json::str_ptr(obj, "/metadata/name");
    let causes = errors
        .iter()
        .map(|e| Cause {
            reason: e.reason().into(),
            message: e.message(),
            field: e.field.clone(),
        })
        .collect();
    ApiError::invalid(&call.resource.group, kind, name, causes)
}

/// Prunes fields the schema does not know (as fieldValidation says),
/// applies the schema's defaults and validates.
pub fn prepare(call: &Call<'_>, custom: &Custom, obj: &mut Value) -> ApiResult<()> {
    let pruned = custom.schema.prune(obj);
    super::strategy::drop_unknown(call, &pruned)?;
    custom.schema.apply_defaults(obj);
    validate(call, custom, obj)
}

/// A custom resource changed through its scale subresource must still satisfy
/// its schema (a `maximum` on the replicas field, ...).
pub fn validate_scaled(call: &Call<'_>, custom: &Custom, obj: &Value) -> ApiResult<()> {
    validate(call, custom, obj)
}

fn validate(call: &Call<'_>, custom: &Custom, obj: &Value) -> ApiResult<()> {
    let meta = obj.get("metadata").cloned().unwrap_or(Value::Null);
    let mut errors =
        apimachinery::validation::validate_object_meta(&meta, call.resource.namespaced);
    errors.extend(if call.info.subresource == "status" {
        custom.schema.validate_status(obj)
    } else {
        custom.schema.validate(obj)
    });
    if let Some(scale) = &custom.version.scale {
        errors.extend(apimachinery::crd::validate_scale(scale, obj));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(call, &call.resource.kind, obj, errors))
    }
}

/// A CustomResourceDefinition's own defaulting and validation.
pub fn prepare_definition(call: &Call<'_>, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    apimachinery::crd::default_crd(obj);
    let errors = apimachinery::crd::validate_crd(obj, old);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(call, "CustomResourceDefinition", obj, errors))
    }
}

/// `.spec.replicas` → `/spec/replicas`.
pub fn pointer(json_path: &str) -> String {
    json_path.replace('.', "/")
}

/// Where a resource's scale subresource reads spec and status replicas and the
/// selector: fixed for built-ins, declared by the CRD for custom resources.
pub fn scale_paths(call: &Call<'_>) -> (String, String, Option<String>) {
    match call.custom.and_then(|c| c.version.scale.as_ref()) {
        Some(s) => (
            pointer(&s.spec_replicas),
            pointer(&s.status_replicas),
            s.label_selector.as_deref().map(pointer),
        ),
        None => ("/spec/replicas".into(), "/status/replicas".into(), None),
    }
}
