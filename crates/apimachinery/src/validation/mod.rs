//! Validation of objects as Kubernetes' API server does it: generic name and
//! metadata rules, per-kind rules, and what an update may not change.

mod error;
mod names;

pub use error::{BadValue, FieldError, FieldErrorKind, Path, aggregate};
pub use names::*;
mod json;
mod meta;

pub use meta::{
    GENERATED_NAME_ALPHABET, GENERATED_NAME_SUFFIX_LEN, NameRule, TOTAL_ANNOTATION_SIZE_LIMIT,
    generate_name, validate_annotations, validate_labels, validate_object_meta,
    validate_object_meta_update, validate_object_meta_with,
};
mod pod;

pub use pod::{validate_pod_spec, validate_pod_spec_update, validate_resources, validate_taints};
mod core;
mod workloads;

pub use self::core::{
    MAX_DATA_SIZE, validate_config_map, validate_data_update, validate_ingress, validate_lease,
    validate_namespace, validate_node, validate_node_update, validate_secret, validate_service,
    validate_service_update,
};
pub use workloads::{
    validate_apps_spec, validate_apps_update, validate_cronjob, validate_job_spec,
    validate_job_update, validate_pod_update,
};

use serde_json::Value;

use crate::json::child;
use crate::resources::builtin_by_kind;

/// Validates an object of a built-in kind for create (`old` is `None`) or update.
/// Kinds without specific rules get the metadata checks only.
pub fn validate(
    api_version: &str,
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let namespaced = builtin_by_kind(api_version, kind).is_none_or(|r| r.namespaced);
    let meta = child(obj, "metadata");
    let mut errs = validate_object_meta_with(meta, namespaced, NameRule::for_kind(kind));
    if !obj.is_object() {
        return errs;
    }
    let spec = child(obj, "spec");
    match (api_version, kind) {
        ("v1", "Namespace") => errs.extend(validate_namespace(obj)),
        ("v1", "Pod") => errs.extend(validate_pod_spec(spec, &Path::new("spec"))),
        ("v1", "Service") => errs.extend(validate_service(obj)),
        ("v1", "ConfigMap") => errs.extend(validate_config_map(obj)),
        ("v1", "Secret") => errs.extend(validate_secret(obj)),
        ("v1", "Node") => errs.extend(validate_node(obj)),
        ("v1", "PodTemplate") => {
            let template = child(obj, "template");
            let spec = child(template, "spec");
            errs.extend(validate_pod_spec(
                spec,
                &Path::new("template").child("spec"),
            ));
        }
        ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            errs.extend(validate_apps_spec(kind, spec));
        }
        ("batch/v1", "Job") => errs.extend(validate_job_spec(spec, &Path::new("spec"), true)),
        ("batch/v1", "CronJob") => errs.extend(validate_cronjob(obj)),
        ("coordination.k8s.io/v1", "Lease") => errs.extend(validate_lease(obj)),
        ("networking.k8s.io/v1", "Ingress") => errs.extend(validate_ingress(obj)),
        _ => {}
    }
    if let Some(old) = old {
        let old_meta = child(old, "metadata");
        errs.extend(validate_object_meta_update(meta, old_meta));
        match (api_version, kind) {
            ("v1", "Pod") => errs.extend(validate_pod_update(obj, old)),
            ("v1", "Service") => errs.extend(validate_service_update(obj, old)),
            ("v1", "ConfigMap" | "Secret") => errs.extend(validate_data_update(kind, obj, old)),
            ("v1", "Node") => errs.extend(validate_node_update(obj, old)),
            ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
                errs.extend(validate_apps_update(kind, obj, old));
            }
            ("batch/v1", "Job") => errs.extend(validate_job_update(obj, old)),
            _ => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests;
