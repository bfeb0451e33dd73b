//! Strict decoding of built-in kinds without a hand-written schema: the object is
//! decoded into its k8s-openapi type (which skips unknown fields), encoded again,
//! and compared with the input. Whatever did not survive is unknown.

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

macro_rules! kinds {
    ($($av:literal, $kind:literal => $ty:ty;)*) => {
        /// Decodes and re-encodes an object through its typed form; `None` for kinds
        /// that have no built-in type, `Err` with the failing field's path and reason.
        fn roundtrip(api_version: &str, kind: &str, obj: Value) -> Option<Result<Value, String>> {
            Some(match (api_version, kind) {
                $(($av, $kind) => roundtrip_as::<$ty>(obj),)*
                _ => return None,
            })
        }

        /// Decodes an object into its typed form without keeping it; `None` for kinds
        /// that have no built-in type, `Err` with the failing field's path and reason.
        fn decodes(api_version: &str, kind: &str, obj: &Value) -> Option<Result<(), String>> {
            Some(match (api_version, kind) {
                $(($av, $kind) => decodes_as::<$ty>(obj),)*
                _ => return None,
            })
        }

        /// Decodes an object into its typed form once, gathering the fields the type
        /// does not have; `None` for kinds that have no built-in type.
        fn checks(api_version: &str, kind: &str, obj: &Value) -> Option<Result<Vec<UnknownField>, String>> {
            Some(match (api_version, kind) {
                $(($av, $kind) => checks_as::<$ty>(obj),)*
                _ => return None,
            })
        }

        /// Whether `unknown_fields` and `decode_error` know this kind.
        pub fn has_schema(api_version: &str, kind: &str) -> bool {
            matches!((api_version, kind), $(($av, $kind))|*)
        }
    };
}

kinds! {
    "v1", "Namespace" => api::core::v1::Namespace;
    "v1", "Pod" => api::core::v1::Pod;
    "v1", "Node" => api::core::v1::Node;
    "v1", "Service" => api::core::v1::Service;
    "v1", "Endpoints" => api::core::v1::Endpoints;
    "v1", "ConfigMap" => api::core::v1::ConfigMap;
    "v1", "Secret" => api::core::v1::Secret;
    "v1", "ServiceAccount" => api::core::v1::ServiceAccount;
    "v1", "Event" => api::core::v1::Event;
    "v1", "PersistentVolume" => api::core::v1::PersistentVolume;
    "v1", "PersistentVolumeClaim" => api::core::v1::PersistentVolumeClaim;
    "v1", "LimitRange" => api::core::v1::LimitRange;
    "v1", "ResourceQuota" => api::core::v1::ResourceQuota;
    "v1", "ReplicationController" => api::core::v1::ReplicationController;
    "v1", "PodTemplate" => api::core::v1::PodTemplate;
    "v1", "Binding" => api::core::v1::Binding;
    "apps/v1", "Deployment" => api::apps::v1::Deployment;
    "apps/v1", "ReplicaSet" => api::apps::v1::ReplicaSet;
    "apps/v1", "StatefulSet" => api::apps::v1::StatefulSet;
    "apps/v1", "DaemonSet" => api::apps::v1::DaemonSet;
    "apps/v1", "ControllerRevision" => api::apps::v1::ControllerRevision;
    "batch/v1", "Job" => api::batch::v1::Job;
    "batch/v1", "CronJob" => api::batch::v1::CronJob;
    "autoscaling/v2", "HorizontalPodAutoscaler" => api::autoscaling::v2::HorizontalPodAutoscaler;
    "coordination.k8s.io/v1", "Lease" => api::coordination::v1::Lease;
    "discovery.k8s.io/v1", "EndpointSlice" => api::discovery::v1::EndpointSlice;
    "rbac.authorization.k8s.io/v1", "Role" => api::rbac::v1::Role;
    "rbac.authorization.k8s.io/v1", "ClusterRole" => api::rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io/v1", "RoleBinding" => api::rbac::v1::RoleBinding;
    "rbac.authorization.k8s.io/v1", "ClusterRoleBinding" => api::rbac::v1::ClusterRoleBinding;
    "networking.k8s.io/v1", "Ingress" => api::networking::v1::Ingress;
    "networking.k8s.io/v1", "IngressClass" => api::networking::v1::IngressClass;
    "networking.k8s.io/v1", "NetworkPolicy" => api::networking::v1::NetworkPolicy;
    "storage.k8s.io/v1", "StorageClass" => api::storage::v1::StorageClass;
    "events.k8s.io/v1", "Event" => api::events::v1::Event;
    "scheduling.k8s.io/v1", "PriorityClass" => api::scheduling::v1::PriorityClass;
    "policy/v1", "PodDisruptionBudget" => api::policy::v1::PodDisruptionBudget;
    "policy/v1", "Eviction" => api::policy::v1::Eviction;
    "authorization.k8s.io/v1", "SelfSubjectAccessReview" => api::authorization::v1::SelfSubjectAccessReview;
    "authorization.k8s.io/v1", "SubjectAccessReview" => api::authorization::v1::SubjectAccessReview;
    "authorization.k8s.io/v1", "LocalSubjectAccessReview" => api::authorization::v1::LocalSubjectAccessReview;
    "authorization.k8s.io/v1", "SelfSubjectRulesReview" => api::authorization::v1::SelfSubjectRulesReview;
    "authentication.k8s.io/v1", "TokenReview" => api::authentication::v1::TokenReview;
    "authentication.k8s.io/v1", "SelfSubjectReview" => api::authentication::v1::SelfSubjectReview;
    "authentication.k8s.io/v1", "TokenRequest" => api::authentication::v1::TokenRequest;
    "apiextensions.k8s.io/v1", "CustomResourceDefinition" => apiextensions::CustomResourceDefinition;
}

fn roundtrip_as<T: DeserializeOwned + Serialize>(obj: Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(obj).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn decodes_as<T: DeserializeOwned>(obj: &Value) -> Result<(), String> {
    // Decoding from a borrowed tree copies nothing that the type skips; the path of
    // a failure is found by decoding once more, only then.
    if T::deserialize(obj).is_ok() {
        return Ok(());
    }
    serde_path_to_error::deserialize::<_, T>(obj)
        .map(|_| ())
        .map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        })
}

/// One step of the path to a field.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A field of an object that its Kubernetes type does not have. Shown as
/// Kubernetes names it, `spec.containers[0].imagePullPolcy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField(Vec<Step>);

impl std::fmt::Display for UnknownField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl UnknownField {
    /// The same field below `metadata`, for a check of the metadata alone.
    fn under(mut self, key: &str) -> Self {
        self.0.insert(0, Step::Key(key.to_string()));
        self
    }

    /// Removes this field from `obj` (the object it was found in).
    pub fn remove_from(&self, obj: &mut Value) {
        let Some((last, parents)) = self.0.split_last() else {
            return;
        };
        let mut cur = obj;
        for step in parents {
            let next = match (step, cur) {
                (Step::Key(k), Value::Object(m)) => m.get_mut(k),
                (Step::Index(n), Value::Array(a)) => a.get_mut(*n),
                _ => None,
            };
            let Some(next) = next else {
                return;
            };
            cur = next;
        }
        if let (Step::Key(k), Value::Object(m)) = (last, cur) {
            m.remove(k);
        }
    }
}

fn path_steps(path: &serde_ignored::Path<'_>, out: &mut Vec<Step>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            path_steps(parent, out);
            out.push(Step::Index(*index));
        }
        Path::Map { parent, key } => {
            path_steps(parent, out);
            out.push(Step::Key(key.clone()));
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_steps(parent, out),
    }
}

fn checks_as<T: DeserializeOwned>(obj: &Value) -> Result<Vec<UnknownField>, String> {
    let mut unknown = Vec::new();
    let decoded: Result<T, _> = serde_ignored::deserialize(obj, |path| {
        let mut steps = Vec::new();
        path_steps(&path, &mut steps);
        unknown.push(UnknownField(steps));
    });
    match decoded {
        Ok(_) => {
            // A null value decodes to "absent"; it is not an unknown field.
            unknown.retain(|f| !is_null_at(obj, f));
            Ok(unknown)
        }
        Err(_) => decodes_as::<T>(obj).map(|()| Vec::new()),
    }
}

fn is_null_at(obj: &Value, field: &UnknownField) -> bool {
    let mut cur = obj;
    for step in &field.0 {
        let next = match (step, cur) {
            (Step::Key(k), Value::Object(m)) => m.get(k),
            (Step::Index(n), Value::Array(a)) => a.get(*n),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return false,
        }
    }
    cur.is_null()
}

/// Decodes `obj` as its kind once, as Kubernetes' strict decoder does: `Err` with
/// Kubernetes' words for a field of the wrong type (see [`decode_error`]), else the
/// fields the type does not have. `None` for kinds without a built-in type.
pub fn check(
    api_version: &str,
    kind: &str,
    obj: &Value,
) -> Option<Result<Vec<UnknownField>, String>> {
    if !obj.is_object() {
        return Some(Err(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: expected an object",
            version(api_version)
        )));
    }
    Some(checks(api_version, kind, obj)?.map_err(|err| {
        format!(
            "{kind} in version {:?} cannot be handled as a {kind}: {err}",
            version(api_version)
        )
    }))
}

/// The same check for `metadata` alone (as `ObjectMeta`), for any kind, custom
/// resources included: fields of the wrong type (`namespace: 1`,
/// `creationTimestamp: "bad"`) are an `Err`, unknown ones are returned.
pub fn check_metadata(
    api_version: &str,
    kind: &str,
    obj: &Value,
) -> Result<Vec<UnknownField>, String> {
    let Some(meta) = obj.get("metadata") else {
        return Ok(Vec::new());
    };
    type ObjectMeta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    if let Ok(fields) = checks_as::<ObjectMeta>(meta) {
        return Ok(fields.into_iter().map(|f| f.under("metadata")).collect());
    }
    let err = match serde_path_to_error::deserialize::<_, ObjectMeta>(meta) {
        Ok(_) => return Ok(Vec::new()),
        Err(e) => e,
    };
    let path = err.path().to_string();
    let at = if path == "." {
        "metadata".to_string()
    } else {
        format!("metadata.{path}")
    };
    Err(format!(
        "{kind} in version {:?} cannot be handled as a {kind}: {at}: {}",
        version(api_version),
        err.inner()
    ))
}

/// Paths of the fields of `obj` that its Kubernetes type does not have, e.g.
/// `spec.containers[0].imagePullPolcy`. Empty for kinds without a built-in type
/// and for objects that do not decode (see [`decode_error`]).
pub fn unknown_fields(api_version: &str, kind: &str, obj: &Value) -> Vec<String> {
    let Some(Ok(known)) = roundtrip(api_version, kind, obj.clone()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(obj, &known, &mut String::new(), &mut out);
    out
}

fn walk(input: &Value, known: &Value, path: &mut String, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, v) in i {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match k.get(key) {
                    // A null value decodes to "absent"; it is not an unknown field.
                    None if v.is_null() => {}
                    None => out.push(path.clone()),
                    Some(kv) => walk(v, kv, path, out),
                }
                path.truncate(len);
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (iv, kv)) in i.iter().zip(k).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{n}]"));
                walk(iv, kv, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Why `obj` does not decode as its kind (a field of the wrong type), in the words
/// Kubernetes uses: `Pod in version "v1" cannot be handled as a Pod: spec.containers[0].ports[0].containerPort: invalid type: ...`.
/// `None` when it decodes or the kind has no built-in type.
pub fn decode_error(api_version: &str, kind: &str, obj: &Value) -> Option<String> {
    if !obj.is_object() {
        return Some(format!(
            "{kind} in version {:?} cannot be handled as a {kind}: expected an object",
            version(api_version)
        ));
    }
    let err = decodes(api_version, kind, obj)?.err()?;
    Some(format!(
        "{kind} in version {:?} cannot be handled as a {kind}: {err}",
        version(api_version)
    ))
}

fn version(api_version: &str) -> &str {
    api_version.rsplit('/').next().unwrap_or(api_version)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::BUILTIN;
    use crate::testing::{mutations, samples};

    #[test]
    fn finds_misspelled_fields() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "lables": {}},
            "spec": {"containers": [{"name": "a", "image": "x", "imagePullPolcy": "Always"}], "extra": {"deep": 1}}});
        assert_eq!(
            unknown_fields("v1", "Pod", &pod),
            vec![
                "metadata.lables",
                "spec.containers[0].imagePullPolcy",
                "spec.extra"
            ]
        );
        assert!(unknown_fields("example.com/v1", "Widget", &pod).is_empty());
    }

    #[test]
    fn zero_values_survive_the_round_trip() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {}, "annotations": {}, "finalizers": [], "generation": 0, "ownerReferences": []},
            "spec": {"containers": [{"name": "", "image": "", "args": [], "env": [], "ports": [], "stdin": false, "tty": false,
                "resources": {}, "securityContext": {"privileged": false, "capabilities": {"add": []}}}],
                "volumes": [], "hostNetwork": false, "nodeSelector": {}, "securityContext": {}, "terminationGracePeriodSeconds": 0,
                "tolerations": [], "priority": 0, "enableServiceLinks": false, "nodeName": "", "affinity": {}},
            "status": {}});
        assert_eq!(unknown_fields("v1", "Pod", &pod), Vec::<String>::new());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {}, "binaryData": {}, "immutable": false});
        assert_eq!(unknown_fields("v1", "ConfigMap", &cm), Vec::<String>::new());
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": ""}, "stringData": {"b": ""}, "type": ""});
        assert_eq!(
            unknown_fields("v1", "Secret", &secret),
            Vec::<String>::new()
        );
        let with_nulls = json!({"metadata": {"name": "x", "labels": null}, "spec": null});
        assert!(unknown_fields("v1", "Pod", &with_nulls).is_empty());
    }

    #[test]
    fn samples_have_no_unknown_fields_and_decode() {
        for (v, k, obj) in samples() {
            let mut defaulted = obj.clone();
            crate::defaults::apply_defaults(v, k, &mut defaulted);
            assert_eq!(
                unknown_fields(v, k, &defaulted),
                Vec::<String>::new(),
                "{k}"
            );
            assert_eq!(decode_error(v, k, &defaulted), None, "{k}");
        }
    }

    #[test]
    fn every_builtin_kind_has_a_schema() {
        for r in BUILTIN {
            assert!(has_schema(&r.api_version(), &r.kind), "{}", r.kind);
        }
    }

    #[test]
    fn decode_errors_name_the_field() {
        let pod =
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}});
        let msg = decode_error("v1", "Pod", &pod).expect("error");
        assert!(msg.starts_with("Pod in version \"v1\" cannot be handled as a Pod: spec.containers[0].ports[0].containerPort: invalid type: string \"80\""), "{msg}");
        let msg = decode_error("apps/v1", "Deployment", &json!({"spec": {"replicas": "2"}}))
            .expect("error");
        assert!(
            msg.contains("spec.replicas: invalid type: string \"2\""),
            "{msg}"
        );
        let msg = decode_error("v1", "Pod", &json!({"apiVersion": "v2"})).expect("error");
        assert!(
            msg.contains("invalid value: string \"v2\", expected v1"),
            "{msg}"
        );
        assert_eq!(
            decode_error("v1", "Pod", &json!({"spec": {"containers": []}})),
            None
        );
        assert!(decode_error("v1", "Pod", &json!([])).is_some());
        assert_eq!(
            decode_error("example.com/v1", "Widget", &json!({"spec": 1})),
            None
        );
    }

    #[test]
    fn malformed_objects_never_panic() {
        for (v, k, obj) in samples() {
            for m in mutations(&obj) {
                let _ = unknown_fields(v, k, &m);
                let _ = decode_error(v, k, &m);
            }
        }
    }
}
