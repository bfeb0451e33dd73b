use apimachinery::resources::{BUILTIN, Resource};
use serde_json::{Value, json};

use super::*;

fn doc(key: &str) -> Value {
    let d = OpenApiV3::builtin()
        .group_version(key)
        .unwrap_or_else(|| panic!("{key} document"));
    serde_json::from_slice(d.bytes()).expect("valid JSON")
}

#[test]
fn root_points_at_every_served_group_version_with_its_hash() {
    let root = OpenApiV3::builtin().root(BUILTIN);
    let apps = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap_or_default();
    let hash = OpenApiV3::builtin()
        .group_version("apis/apps/v1")
        .map(|d| d.hash().to_string());
    assert_eq!(
        Some(apps.to_string()),
        hash.map(|h| format!("/openapi/v3/apis/apps/v1?hash={h}"))
    );
    assert!(root["paths"]["api/v1"].is_object());
    let only_core: Vec<Resource> = BUILTIN
        .iter()
        .filter(|r| r.group.is_empty())
        .cloned()
        .collect();
    let root = OpenApiV3::builtin().root(&only_core);
    assert_eq!(root["paths"].as_object().map(|p| p.len()), Some(1));
}

#[test]
fn kinds_carry_gvk_descriptions_and_patch_metadata() {
    let apps = doc("apis/apps/v1");
    let schemas = &apps["components"]["schemas"];
    let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    assert!(
        deployment["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Deployment enables declarative updates"))
    );
    assert!(
        deployment.get("required").is_none(),
        "metadata is not required"
    );
    assert_eq!(
        deployment["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert_eq!(
        schemas["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"][0]["kind"],
        "DeploymentList"
    );
    assert_eq!(
        schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"][0]["group"],
        "autoscaling"
    );
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    let finalizers =
        &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
    assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
    assert!(
        schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"]
            == true
    );
}

#[test]
fn patch_operations_advertise_field_validation_and_strategic_merge() {
    let apps = doc("apis/apps/v1");
    let path = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &path["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"fieldValidation") && names.contains(&"dryRun"));
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    let scale =
        &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"];
    assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
    assert!(apps["paths"]["/apis/apps/v1/deployments"]["get"]["x-kubernetes-action"] == "list");
    assert!(
        apps["paths"]["/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}"]["get"]
            .is_object()
    );
    let core = doc("api/v1");
    assert!(core["paths"]["/api/v1/nodes/{name}/status"]["patch"].is_object());
    assert!(
        core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"].is_object()
    );
    let reviews = doc("apis/authorization.k8s.io/v1");
    let ssar = &reviews["paths"]["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"];
    assert!(ssar["post"].is_object() && ssar.get("get").is_none());
}

#[test]
fn documents_are_built_once() {
    let a = OpenApiV3::builtin()
        .group_version("api/v1")
        .map(|d| d.bytes().as_ptr());
    let b = OpenApiV3::builtin()
        .group_version("api/v1")
        .map(|d| d.bytes().as_ptr());
    assert_eq!(a, b);
    assert!(std::ptr::eq(v2::document(), v2::document()));
}

#[test]
fn serve_answers_v3_and_both_v2_encodings() {
    let (ct, body) = serve(
        "/openapi/v3/apis/apps/v1?hash=X",
        "application/json",
        BUILTIN,
    )
    .expect("apps doc");
    assert_eq!(ct, JSON);
    assert!(!body.is_empty());
    assert!(serve("/openapi/v3/apis/nope/v1", "", BUILTIN).is_none());
    let core_only: Vec<Resource> = BUILTIN
        .iter()
        .filter(|r| r.group.is_empty())
        .cloned()
        .collect();
    assert!(
        serve("/openapi/v3/apis/apps/v1", "", &core_only).is_none(),
        "unserved groups are hidden"
    );
    let (ct, proto) = serve("/openapi/v2", V2_PROTOBUF, BUILTIN).expect("v2 protobuf");
    assert_eq!(
        (ct, proto.get(..5)),
        (V2_PROTOBUF_RESPONSE, Some(&b"\x0a\x032.0"[..]))
    );
    assert!(serve("/openapi/v2", "text/html", BUILTIN).is_none());
    let (_, v2) = serve("/openapi/v2", "application/json", BUILTIN).expect("v2 json");
    let v2: Value = serde_json::from_slice(&v2).expect("json");
    assert_eq!(v2["swagger"], "2.0");
    assert!(
        v2["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["$ref"]
            == "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    assert!(
        !String::from_utf8_lossy(&serde_json::to_vec(&v2).unwrap_or_default())
            .contains("#/components/")
    );
    let patch = &v2["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(
        patch["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["in"] == "body"))
    );
}

#[test]
fn custom_resources_get_their_own_document() {
    let widget = Resource {
        group: "example.com".into(),
        version: "v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
        singular: "widget".into(),
        subresources: std::borrow::Cow::Borrowed(&["status"]),
        ..BUILTIN[1].clone()
    };
    let schema = json!({"type": "object", "description": "A widget.",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "description": "How big."}}}}});
    let spec = OpenApiV3::with_custom(&[CustomResourceSchema {
        resource: widget.clone(),
        schema,
    }]);
    let doc: Value = serde_json::from_slice(
        spec.group_version("apis/example.com/v1")
            .expect("doc")
            .bytes(),
    )
    .expect("json");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["com.example.v1.Widget"]["properties"]["spec"]["properties"]["size"]["description"],
        "How big."
    );
    assert_eq!(
        schemas["com.example.v1.Widget"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Widget"
    );
    assert!(schemas["com.example.v1.WidgetList"].is_object());
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
    let patch =
        &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
    assert!(
        doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status"]["patch"]
            .is_object()
    );
    assert!(spec.group_version("api/v1").is_some(), "built-ins stay");
    let mut served = BUILTIN.to_vec();
    served.push(widget);
    assert!(spec.root(&served)["paths"]["apis/example.com/v1"].is_object());
}
