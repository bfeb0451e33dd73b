//! Component schemas, generated from the k8s-openapi types through their `schemars`
//! implementations (which carry Kubernetes' definition names and field descriptions), then
//! finished the way kube-apiserver publishes them: list kinds, `x-kubernetes-group-version-kind`
//! and the strategic-merge-patch extensions.

use apimachinery::patch;
use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz, autoscaling,
    batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::paths::Gvk;

/// Adds `T` (and everything it references) to the generator; returns its definition name.
type AddSchema = fn(&mut SchemaGenerator) -> String;

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// A generator writing `#/components/schemas/...` references, whose OpenAPI 3.0 transforms
/// also turn `$ref` with a sibling description into `allOf: [$ref]` as kube-apiserver does.
pub(crate) fn generator() -> SchemaGenerator {
    SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator()
}

/// The Rust type behind a built-in kind, by group, version and kind.
pub(crate) fn kind_schema(group: &str, version: &str, kind: &str) -> Option<AddSchema> {
    Some(match (group, version, kind) {
        ("", "v1", "Namespace") => add::<core::Namespace>,
        ("", "v1", "Pod") => add::<core::Pod>,
        ("", "v1", "Node") => add::<core::Node>,
        ("", "v1", "Service") => add::<core::Service>,
        ("", "v1", "Endpoints") => add::<core::Endpoints>,
        ("", "v1", "ConfigMap") => add::<core::ConfigMap>,
        ("", "v1", "Secret") => add::<core::Secret>,
        ("", "v1", "ServiceAccount") => add::<core::ServiceAccount>,
        ("", "v1", "Event") => add::<core::Event>,
        ("", "v1", "PersistentVolume") => add::<core::PersistentVolume>,
        ("", "v1", "PersistentVolumeClaim") => add::<core::PersistentVolumeClaim>,
        ("", "v1", "LimitRange") => add::<core::LimitRange>,
        ("", "v1", "ResourceQuota") => add::<core::ResourceQuota>,
        ("", "v1", "ReplicationController") => add::<core::ReplicationController>,
        ("", "v1", "PodTemplate") => add::<core::PodTemplate>,
        ("", "v1", "Binding") => add::<core::Binding>,
        ("apps", "v1", "Deployment") => add::<apps::Deployment>,
        ("apps", "v1", "ReplicaSet") => add::<apps::ReplicaSet>,
        ("apps", "v1", "StatefulSet") => add::<apps::StatefulSet>,
        ("apps", "v1", "DaemonSet") => add::<apps::DaemonSet>,
        ("apps", "v1", "ControllerRevision") => add::<apps::ControllerRevision>,
        ("batch", "v1", "Job") => add::<batch::Job>,
        ("batch", "v1", "CronJob") => add::<batch::CronJob>,
        ("autoscaling", "v1", "Scale") => add::<autoscaling::v1::Scale>,
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            add::<autoscaling::v2::HorizontalPodAutoscaler>
        }
        ("coordination.k8s.io", "v1", "Lease") => add::<coordination::Lease>,
        ("discovery.k8s.io", "v1", "EndpointSlice") => add::<discovery::EndpointSlice>,
        ("rbac.authorization.k8s.io", "v1", "Role") => add::<rbac::Role>,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => add::<rbac::ClusterRole>,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => add::<rbac::RoleBinding>,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            add::<rbac::ClusterRoleBinding>
        }
        ("networking.k8s.io", "v1", "Ingress") => add::<networking::Ingress>,
        ("networking.k8s.io", "v1", "IngressClass") => add::<networking::IngressClass>,
        ("networking.k8s.io", "v1", "NetworkPolicy") => add::<networking::NetworkPolicy>,
        ("storage.k8s.io", "v1", "StorageClass") => add::<storage::StorageClass>,
        ("events.k8s.io", "v1", "Event") => add::<events::Event>,
        ("scheduling.k8s.io", "v1", "PriorityClass") => add::<scheduling::PriorityClass>,
        ("policy", "v1", "PodDisruptionBudget") => add::<policy::PodDisruptionBudget>,
        ("policy", "v1", "Eviction") => add::<policy::Eviction>,
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => {
            add::<authz::SelfSubjectAccessReview>
        }
        ("authorization.k8s.io", "v1", "SubjectAccessReview") => add::<authz::SubjectAccessReview>,
        ("authorization.k8s.io", "v1", "LocalSubjectAccessReview") => {
            add::<authz::LocalSubjectAccessReview>
        }
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview") => {
            add::<authz::SelfSubjectRulesReview>
        }
        ("authentication.k8s.io", "v1", "TokenReview") => add::<authn::TokenReview>,
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => add::<authn::SelfSubjectReview>,
        ("authentication.k8s.io", "v1", "TokenRequest") => add::<authn::TokenRequest>,
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            add::<apiextensions::CustomResourceDefinition>
        }
        _ => return None,
    })
}

/// Definition names of the meta types every group version's operations use.
pub(crate) struct MetaNames {
    pub delete_options: String,
    pub status: String,
    pub watch_event: String,
    pub patch: String,
}

pub(crate) fn add_meta(generator: &mut SchemaGenerator) -> MetaNames {
    MetaNames {
        delete_options: add::<meta::DeleteOptions>(generator),
        status: add::<meta::Status>(generator),
        watch_event: add::<meta::WatchEvent<Value>>(generator),
        patch: add::<meta::Patch>(generator),
    }
}

/// Adds `ListMeta` for list kinds.
pub(crate) fn add_list_meta(generator: &mut SchemaGenerator) -> String {
    add::<meta::ListMeta>(generator)
}

/// The `XList` definition Kubernetes publishes beside each kind `X`; k8s-openapi models
/// lists generically, so it has no schema of its own to generate from.
pub(crate) fn list_schema(item: &str, kind: &str, list_meta: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": API_VERSION_DESC, "type": "string"},
            "kind": {"description": KIND_DESC, "type": "string"},
            "items": {"description": format!("List of {kind} objects."), "type": "array",
                      "items": {"$ref": format!("#/components/schemas/{item}")}},
            "metadata": {"description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                         "allOf": [{"$ref": format!("#/components/schemas/{list_meta}")}]},
        },
        "required": ["items"],
    })
}

const API_VERSION_DESC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// Marks `definition` as the schema of `group/version/kind`: kubectl explain and apply find a
/// kind's schema by this extension, not by name.
pub(crate) fn set_gvk(definitions: &mut Map<String, Value>, definition: &str, gvk: &Gvk) {
    if let Some(Value::Object(schema)) = definitions.get_mut(definition) {
        let entry = json!({"group": gvk.group, "version": gvk.version, "kind": gvk.kind});
        let list = schema
            .entry("x-kubernetes-group-version-kind")
            .or_insert_with(|| json!([]));
        if let Value::Array(items) = list
            && !items.contains(&entry)
        {
            items.push(entry);
        }
        // k8s-openapi marks `metadata` required because its Rust field is not optional;
        // Kubernetes does not, and `kubectl explain` would print it as -required-.
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|r| r != "metadata");
            if required.is_empty() {
                schema.remove("required");
            }
        }
    }
}

/// Writes `x-kubernetes-patch-strategy`, `-patch-merge-key`, `-list-type` and
/// `-list-map-keys` onto every list property the apimachinery patch table knows: the same
/// table the server's strategic merge patch uses, so kubectl computes the patches the server
/// expects instead of replacing whole lists.
pub(crate) fn apply_patch_extensions(definitions: &mut Map<String, Value>) {
    for (name, schema) in definitions.iter_mut() {
        let Some(Value::Object(properties)) = schema.get_mut("properties") else {
            continue;
        };
        for (field, property) in properties.iter_mut() {
            let Some(strategy) = patch::list_strategy(name, field) else {
                continue;
            };
            let Value::Object(property) = property else {
                continue;
            };
            property.insert(
                "x-kubernetes-patch-strategy".into(),
                strategy.strategy.into(),
            );
            if let Some(key) = strategy.merge_key {
                property.insert("x-kubernetes-patch-merge-key".into(), key.into());
            }
            if let Some(list_type) = strategy.list_type {
                property.insert("x-kubernetes-list-type".into(), list_type.into());
            }
            if !strategy.list_map_keys.is_empty() {
                property.insert(
                    "x-kubernetes-list-map-keys".into(),
                    strategy.list_map_keys.into(),
                );
            }
        }
    }
}

/// The component schema of a custom resource from its CRD's `openAPIV3Schema`, with the
/// standard `apiVersion`/`kind`/`metadata` properties kube-apiserver adds, and its definition
/// name (`com.example.v1.Widget` for group `example.com`).
pub fn crd_schema(
    group: &str,
    version: &str,
    kind: &str,
    open_api_v3_schema: &Value,
) -> (String, Value) {
    let mut schema = match open_api_v3_schema {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    schema.entry("type").or_insert_with(|| "object".into());
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(properties) = properties {
        properties.insert(
            "apiVersion".into(),
            json!({"description": API_VERSION_DESC, "type": "string"}),
        );
        properties.insert(
            "kind".into(),
            json!({"description": KIND_DESC, "type": "string"}),
        );
        properties.insert(
            "metadata".into(),
            json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                   "allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}),
        );
    }
    schema.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": group, "version": version, "kind": kind}]),
    );
    (definition_name(group, version, kind), Value::Object(schema))
}

/// Kubernetes names a custom kind's definition after its reversed group.
pub(crate) fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// Adds `ObjectMeta` so custom resource documents can reference it.
pub(crate) fn add_object_meta(generator: &mut SchemaGenerator) -> String {
    add::<meta::ObjectMeta>(generator)
}
