use serde_json::{Value, json};

use super::*;
use crate::testing::{mutations, samples};

fn manager(name: &str) -> Manager<'_> {
    Manager {
        name,
        api_version: "apps/v1",
        kind: "Deployment",
        time: "2026-01-01T00:00:00Z",
        subresource: "",
    }
}

fn config(replicas: i64, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}})
}

fn entries_of(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").into(),
                        e["operation"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn apply_creates_and_records_fields_v1() {
    let obj = apply(
        None,
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    assert_eq!(obj["spec"]["replicas"], 3);
    let entry = &obj["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    let f = &entry["fieldsV1"];
    assert_eq!(f["f:metadata"], json!({"f:labels": {"f:app": {}}}));
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    let container = &f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
    assert_eq!(container["."], json!({}));
    assert_eq!(container["f:image"], json!({}));
    assert_eq!(
        container["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"],
        json!({})
    );
    assert!(f.get("f:apiVersion").is_none() && f["f:metadata"].get("f:name").is_none());
}

#[test]
fn conflicts_with_other_managers_unless_forced() {
    let live = apply(
        None,
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(Some(&live), &mut scaled, &manager("hpa"));
    assert_eq!(
        entries_of(&scaled),
        vec![
            ("kubectl".into(), "Apply".into()),
            ("hpa".into(), "Update".into())
        ]
    );

    let err = apply(
        Some(&scaled),
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"hpa\" using apps/v1: .spec.replicas"
    );

    // The same value is no conflict: both own the field.
    let same = apply(
        Some(&scaled),
        &config(5, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("no conflict");
    assert_eq!(entries_of(&same).len(), 2);

    let forced = apply(
        Some(&scaled),
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        true,
    )
    .expect("forced");
    assert_eq!(forced["spec"]["replicas"], 3);
    assert_eq!(
        entries_of(&forced),
        vec![("kubectl".into(), "Apply".into())],
        "hpa lost its only field"
    );
}

#[test]
fn fields_dropped_from_the_configuration_are_removed() {
    let live = apply(
        None,
        &config(3, json!({"app": "web", "tier": "front"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    let next = apply(
        Some(&live),
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    assert_eq!(next["metadata"]["labels"], json!({"app": "web"}));

    let mut shared = live.clone();
    shared["metadata"]["labels"]["tier"] = json!("back");
    record_update(Some(&live), &mut shared, &manager("editor"));
    let kept = apply(
        Some(&shared),
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    assert_eq!(
        kept["metadata"]["labels"]["tier"], "back",
        "another manager owns it"
    );

    let mut with_sidecar = config(3, json!({"app": "web"}));
    with_sidecar["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("list")
        .push(json!({"name": "log", "image": "busybox"}));
    let two = apply(Some(&live), &with_sidecar, &manager("kubectl"), false).expect("applies");
    assert_eq!(
        two["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let one = apply(
        Some(&two),
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    assert_eq!(
        one["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn updates_take_fields_from_appliers() {
    let live = apply(
        None,
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    record_update(Some(&live), &mut edited, &manager("kubectl-edit"));
    let fields = &edited["metadata"]["managedFields"];
    assert_eq!(
        fields[1]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]
            ["f:image"],
        json!({})
    );
    let kubectl = from_fields_v1(&fields[0]["fieldsV1"]);
    assert!(
        !kubectl
            .iter()
            .any(|p| p.last().map(String::as_str) == Some("f:image"))
    );

    let mut created = json!({"metadata": {"name": "a", "finalizers": ["x"]}, "data": {"k": "v"}});
    let m = Manager {
        name: "kubectl-create",
        api_version: "v1",
        kind: "ConfigMap",
        time: "t",
        subresource: "",
    };
    record_update(None, &mut created, &m);
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:finalizers": {"v:\"x\"": {}}}})
    );
}

#[test]
fn fields_v1_round_trips() {
    let obj = apply(
        None,
        &config(3, json!({"app": "web"})),
        &manager("kubectl"),
        false,
    )
    .expect("applies");
    let tree = &obj["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(&to_fields_v1(&from_fields_v1(tree)), tree);
    let p: Vec<String> = [
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"web\"}",
        "f:image",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        display(&p),
        ".spec.template.spec.containers[name=\"web\"].image"
    );
}

#[test]
fn malformed_objects_never_panic() {
    for (v, k, obj) in samples() {
        let m = Manager {
            name: "m",
            api_version: v,
            kind: k,
            time: "t",
            subresource: "",
        };
        let live = apply(None, &obj, &m, false).expect("sample applies");
        for bad in mutations(&obj) {
            let _ = apply(Some(&live), &bad, &m, false);
            let _ = apply(Some(&bad), &obj, &m, true);
            let mut b = bad.clone();
            record_update(Some(&live), &mut b, &m);
            let mut l = live.clone();
            record_update(Some(&bad), &mut l, &m);
        }
    }
    let mut odd = json!({"metadata": {"managedFields": [1, {"fieldsV1": 5}, {"fieldsV1": {"f:a": {"k:not json": {}}}}]}});
    let m = manager("x");
    let _ = apply(Some(&odd), &json!({"a": [1]}), &m, false);
    record_update(None, &mut odd, &m);
}
