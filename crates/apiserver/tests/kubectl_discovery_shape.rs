//! The shape of the discovery documents, checked against what client-go decodes.

use apimachinery::resources::BUILTIN;
use apiserver::discovery::*;
use serde_json::json;

#[test]
fn accept_header_picks_the_aggregated_version() {
    let kubectl_132 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
        application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    assert_eq!(wants_aggregated(kubectl_132), Some(AggregatedVersion::V2));
    let kubectl_127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    assert_eq!(
        wants_aggregated(kubectl_127),
        Some(AggregatedVersion::V2Beta1)
    );
    assert_eq!(wants_aggregated("application/json"), None);
    assert_eq!(wants_aggregated(""), None);
    assert_eq!(
        wants_aggregated(
            "application/json;q=1,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5"
        ),
        None
    );
    assert_eq!(
        wants_aggregated("application/json; g=apidiscovery.k8s.io; v=v3; as=APIGroupDiscoveryList"),
        None
    );
    assert_eq!(wants_aggregated(";;,=,q=x"), None);
}

#[test]
fn core_resource_list_has_subresources_with_their_verbs() {
    let list = api_resource_list("", "v1", BUILTIN).expect("core group");
    assert_eq!(list["groupVersion"], "v1");
    let find = |name: &str| {
        list["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name))
            .cloned()
    };
    let pods = find("pods").expect("pods");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    assert_eq!(pods["namespaced"], true);
    assert!(
        pods["storageVersionHash"]
            .as_str()
            .is_some_and(|h| h.len() == 12)
    );
    assert_eq!(
        find("pods/status").expect("status")["verbs"],
        json!(["get", "patch", "update"])
    );
    assert_eq!(
        find("pods/exec").expect("exec")["verbs"],
        json!(["create", "get"])
    );
    let eviction = find("pods/eviction").expect("eviction");
    assert_eq!(
        (eviction["group"].as_str(), eviction["kind"].as_str()),
        (Some("policy"), Some("Eviction"))
    );
    let token = find("serviceaccounts/token").expect("token");
    assert_eq!(token["kind"], "TokenRequest");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(api_resource_list("apps", "v9", BUILTIN).is_none());
}

#[test]
fn scale_subresource_answers_with_autoscaling_scale() {
    let list = api_resource_list("apps", "v1", BUILTIN).expect("apps");
    let scale = list["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "deployments/scale"))
        .cloned();
    assert_eq!(
        scale,
        Some(
            json!({"name": "deployments/scale", "singularName": "", "namespaced": true,
            "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]})
        )
    );
}

#[test]
fn group_list_names_every_group_once_with_preferred_version() {
    let list = api_group_list(BUILTIN);
    let groups = list["groups"].as_array().cloned().unwrap_or_default();
    assert!(
        groups.iter().all(|g| g["name"] != ""),
        "core group belongs to /api"
    );
    let apps = groups.iter().find(|g| g["name"] == "apps").expect("apps");
    assert_eq!(
        apps["preferredVersion"],
        json!({"groupVersion": "apps/v1", "version": "v1"})
    );
    assert_eq!(
        api_group("apps", BUILTIN).map(|g| g["kind"].clone()),
        Some(json!("APIGroup"))
    );
}

#[test]
fn versions_sort_by_kubernetes_priority() {
    let mut versions = vec![
        "v1alpha1", "foo", "v2beta1", "v1", "v1beta1", "v2", "v1beta2", "bar",
    ];
    versions.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(
        versions,
        [
            "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"
        ]
    );
}

#[test]
fn aggregated_core_and_groups_split() {
    let core = aggregated_discovery(DiscoveryRoot::Core, AggregatedVersion::V2, BUILTIN);
    assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
    let items = core["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"], json!({"creationTimestamp": null}));
    let v1 = &items[0]["versions"][0];
    assert_eq!(v1["freshness"], "Current");
    let pods = v1["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["resource"] == "pods"))
        .cloned();
    let pods = pods.expect("pods");
    assert_eq!(pods["scope"], "Namespaced");
    assert_eq!(
        pods["responseKind"],
        json!({"group": "", "version": "", "kind": "Pod"})
    );
    let binding = pods["subresources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["subresource"] == "binding"))
        .cloned();
    assert_eq!(binding.map(|b| b["verbs"].clone()), Some(json!(["create"])));

    let apis = aggregated_discovery(DiscoveryRoot::Groups, AggregatedVersion::V2Beta1, BUILTIN);
    assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let names: Vec<&str> = apis["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert!(names.contains(&"apps") && !names.contains(&""));
    let nodes_scope = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["resource"] == "nodes"))
        .map(|n| n["scope"].clone());
    assert_eq!(nodes_scope, Some(json!("Cluster")));
}

#[test]
fn storage_version_hash_is_stable_and_per_kind() {
    let hashes = |r| {
        let list = api_resource_list("", "v1", r).expect("core");
        list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_string(),
                    e["storageVersionHash"].as_str()?.to_string(),
                ))
            })
            .collect::<Vec<_>>()
    };
    let first = hashes(BUILTIN);
    assert_eq!(first, hashes(BUILTIN));
    let pods = first
        .iter()
        .find(|(n, _)| n == "pods")
        .map(|(_, h)| h.clone());
    let nodes = first
        .iter()
        .find(|(n, _)| n == "nodes")
        .map(|(_, h)| h.clone());
    assert_ne!(pods, nodes);
    // Eight bytes in padded base64, like Kubernetes' own hashes.
    assert!(pods.is_some_and(|h| h.len() == 12 && h.ends_with('=')));
}
