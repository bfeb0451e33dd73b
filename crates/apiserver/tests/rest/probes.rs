//! Regressions found by probing the server with bad input: each request here once
//! lost data, crashed a handler or was accepted where Kubernetes answers 4xx.

use axum::http::{Method, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::{CMS, Harness, cm, harness};

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

async fn patch(h: &Harness, path: &str, ct: &str, body: &[u8]) -> (StatusCode, Value) {
    let resp = h
        .raw(Method::PATCH, path, Some(Bytes::copy_from_slice(body)), ct)
        .await;
    let code = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn delete_with(h: &Harness, path: &str, body: Value) -> (StatusCode, Value) {
    h.call(Method::DELETE, path, Some(body), "application/json")
        .await
}

#[tokio::test]
async fn kubectl_server_dry_run_deletes_and_scales_nothing() {
    let h = harness().await;
    let dry = json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]});
    // kubectl delete cm y --dry-run=server
    h.post(CMS, cm("y")).await;
    let (code, _) = delete_with(&h, &format!("{CMS}/y"), dry.clone()).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h.get(&format!("{CMS}/y")).await.0, StatusCode::OK);
    // kubectl delete ns d2 --dry-run=server
    h.post("/api/v1/namespaces", json!({"metadata": {"name": "d2"}}))
        .await;
    h.post("/api/v1/namespaces/d2/configmaps", cm("inside"))
        .await;
    let (code, _) = delete_with(&h, "/api/v1/namespaces/d2", dry.clone()).await;
    assert_eq!(code, StatusCode::OK);
    let (_, ns) = h.get("/api/v1/namespaces/d2").await;
    assert!(ns["metadata"]["deletionTimestamp"].is_null(), "{ns}");
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        h.get("/api/v1/namespaces/d2/configmaps/inside").await.0,
        StatusCode::OK
    );
    // kubectl scale deploy dd --replicas=5 --dry-run=server
    h.post(DEPLOYS, deployment("dd")).await;
    let (code, scale) = patch(
        &h,
        &format!("{DEPLOYS}/dd/scale?dryRun=All"),
        "application/merge-patch+json",
        br#"{"spec":{"replicas":5}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{scale}");
    assert_eq!(scale["spec"]["replicas"], 5, "the would-be Scale");
    let (_, d) = h.get(&format!("{DEPLOYS}/dd")).await;
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["metadata"]["generation"], 1);
}

#[tokio::test]
async fn the_cluster_namespaces_cannot_be_deleted() {
    let h = harness().await;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let (code, st) = h.delete(&format!("/api/v1/namespaces/{ns}")).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{ns}: {st}");
        assert_eq!(
            st["message"],
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
        let (_, got) = h.get(&format!("/api/v1/namespaces/{ns}")).await;
        assert!(got["metadata"]["deletionTimestamp"].is_null(), "{got}");
    }
    let (code, _) = h.delete("/api/v1/namespaces").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn patches_that_are_not_objects_are_refused_not_panicked_on() {
    let h = harness().await;
    h.post(CMS, cm("p")).await;
    let path = format!("{CMS}/p");
    for body in [&b"[1,2]"[..], b"\"x\"", b"1", b"true", b"null"] {
        for ct in [
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ] {
            let (code, st) = patch(&h, &path, ct, body).await;
            assert_eq!(
                code,
                StatusCode::BAD_REQUEST,
                "{ct} {}: {st}",
                String::from_utf8_lossy(body)
            );
        }
    }
    for doc in [json!([1, 2]), json!("x"), json!(null), json!(3)] {
        let ops = json!([{"op": "replace", "path": "", "value": doc}]);
        let (code, st) = patch(
            &h,
            &path,
            "application/json-patch+json",
            ops.to_string().as_bytes(),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{ops}: {st}");
    }
    let (_, got) = h.get(&path).await;
    assert_eq!(got["data"]["a"], "1");
}

#[tokio::test]
async fn server_side_apply_cannot_reach_another_object() {
    let h = harness().await;
    h.post(CMS, cm("allowed2")).await;
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "sneaky"}, "data": {"x": "1"}});
    let (code, st) = patch(
        &h,
        &format!("{CMS}/allowed2?fieldManager=m"),
        "application/apply-patch+yaml",
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{st}");
    assert_eq!(
        st["message"],
        "the name of the object (sneaky) does not match the name on the URL (allowed2)"
    );
    // Nor create one under another name when the URL's object is absent.
    let (code, _) = patch(
        &h,
        &format!("{CMS}/absent?fieldManager=m"),
        "application/apply-patch+yaml",
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let other_ns = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "allowed2", "namespace": "kube-system"}});
    let (code, _) = patch(
        &h,
        &format!("{CMS}/allowed2?fieldManager=m"),
        "application/apply-patch+yaml",
        other_ns.to_string().as_bytes(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.get(&format!("{CMS}/sneaky")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/api/v1/namespaces/kube-system/configmaps/allowed2")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

fn warnings(resp: &axum::response::Response) -> Vec<String> {
    resp.headers()
        .get_all(header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn unknown_fields_are_dropped_with_a_warning_or_refused_when_strict() {
    let h = harness().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "x": 1,
        "metadata": {"name": "p", "foo": "bar"},
        "spec": {"bogus": true, "containers": [{"name": "c", "image": "busybox", "imagePullPolcy": "Always"}]}});
    let pods = "/api/v1/namespaces/default/pods";
    let resp = h
        .raw(
            Method::POST,
            &format!("{pods}?fieldValidation=Strict"),
            Some(Bytes::from(pod.to_string())),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(h.get(&format!("{pods}/p")).await.0, StatusCode::NOT_FOUND);

    let resp = h
        .raw(
            Method::POST,
            pods,
            Some(Bytes::from(pod.to_string())),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let mut got = warnings(&resp);
    got.sort();
    assert_eq!(
        got,
        [
            r#"299 - "unknown field \"metadata.foo\"""#,
            r#"299 - "unknown field \"spec.bogus\"""#,
            r#"299 - "unknown field \"spec.containers[0].imagePullPolcy\"""#,
            r#"299 - "unknown field \"x\"""#,
        ]
    );
    let (_, stored) = h.get(&format!("{pods}/p")).await;
    assert!(stored.get("x").is_none(), "{stored}");
    assert!(stored["metadata"].get("foo").is_none(), "{stored}");
    assert!(stored["spec"].get("bogus").is_none(), "{stored}");
    assert!(
        stored["spec"]["containers"][0]
            .get("imagePullPolcy")
            .is_none()
    );

    // Ignore drops them silently; a patch adding one is treated alike.
    let resp = h
        .raw(
            Method::PATCH,
            &format!("{CMS}/c?fieldValidation=Ignore"),
            Some(Bytes::from_static(br#"{"z": 1}"#)),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    h.post(CMS, cm("c")).await;
    let resp = h
        .raw(
            Method::PATCH,
            &format!("{CMS}/c?fieldValidation=Ignore"),
            Some(Bytes::from_static(br#"{"z": 1}"#)),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(warnings(&resp).is_empty());
    assert!(h.get(&format!("{CMS}/c")).await.1.get("z").is_none());
}

#[tokio::test]
async fn request_options_are_checked() {
    let h = harness().await;
    let long = "m".repeat(129);
    let cases = [
        (
            format!("{CMS}?fieldManager={long}"),
            "fieldManager: Too long",
        ),
        (
            format!("{CMS}?fieldManager=a%07b"),
            "fieldManager: Invalid value",
        ),
        (
            format!("{CMS}?fieldValidation=bogus"),
            "fieldValidation: Unsupported value",
        ),
    ];
    for (path, want) in cases {
        let (code, st) = h.post(&path, cm("o")).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {st}");
        assert!(
            st["message"].as_str().unwrap_or("").contains(want),
            "{path}: {st}"
        );
    }
    let ok = format!("{CMS}?fieldManager={}", "m".repeat(128));
    assert_eq!(h.post(&ok, cm("o")).await.0, StatusCode::CREATED);

    for (path, want) in [
        (
            format!("{CMS}?resourceVersion=1&resourceVersionMatch=Bogus"),
            "resourceVersionMatch: Unsupported value",
        ),
        (
            format!("{CMS}?resourceVersionMatch=Exact"),
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            format!("{CMS}?watch=true&sendInitialEvents=true"),
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ),
        (
            format!("{CMS}?watch=true&resourceVersionMatch=NotOlderThan"),
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ),
        (
            format!("{CMS}?sendInitialEvents=true"),
            "sendInitialEvents is forbidden for list",
        ),
    ] {
        let (code, st) = h.get(&path).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {st}");
        assert!(
            st["message"].as_str().unwrap_or("").contains(want),
            "{path}: {st}"
        );
    }

    let resp = h
        .raw(
            Method::POST,
            CMS,
            Some(Bytes::from(cm("t").to_string())),
            "text/plain",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = h
        .raw_accepting(
            Method::GET,
            CMS,
            None,
            "application/json",
            Some("text/html"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(h.get(&format!("{CMS}/t")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metadata_of_the_wrong_type_is_refused() {
    let h = harness().await;
    h.post(CMS, cm("m")).await;
    for meta in [
        json!({"name": "w", "namespace": 1}),
        json!({"name": "w", "resourceVersion": {}}),
        json!({"name": "w", "creationTimestamp": "bad"}),
        json!({"name": "w", "labels": []}),
        json!("w"),
    ] {
        let mut obj = cm("w");
        obj["metadata"] = meta.clone();
        let (code, st) = h.post(CMS, obj).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{meta}: {st}");
        let msg = st["message"].as_str().unwrap_or("");
        assert!(
            msg.starts_with(
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: metadata"
            ),
            "{msg}"
        );
        let patch_body = json!({"metadata": meta}).to_string();
        let (code, st) = patch(
            &h,
            &format!("{CMS}/m"),
            "application/merge-patch+json",
            patch_body.as_bytes(),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "patch {meta}: {st}");
    }
    assert_eq!(h.get(&format!("{CMS}/w")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_patch_may_not_rename_move_or_change_the_uid() {
    let h = harness().await;
    h.post(CMS, cm("ident")).await;
    let path = format!("{CMS}/ident");
    let (_, before) = h.get(&path).await;
    for (body, code) in [
        (
            json!({"metadata": {"name": "other"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"metadata": {"namespace": "kube-system"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"metadata": {"uid": "6c5e2bc0-0000-0000-0000-000000000000"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, st) = patch(
            &h,
            &path,
            "application/merge-patch+json",
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(got, code, "{body}: {st}");
    }
    let ops = json!([{"op": "remove", "path": "/metadata/name"}]);
    let (got, _) = patch(
        &h,
        &path,
        "application/json-patch+json",
        ops.to_string().as_bytes(),
    )
    .await;
    assert_eq!(got, StatusCode::BAD_REQUEST);
    assert_eq!(h.get(&path).await.1, before);
    assert_eq!(
        h.get(&format!("{CMS}/other")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn ephemeral_containers_are_only_added() {
    let h = harness().await;
    let pods = "/api/v1/namespaces/default/pods";
    h.post(
        pods,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "e"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let (_, mut pod) = h.get(&format!("{pods}/e")).await;
    pod["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox",
        "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}]);
    pod["spec"]["containers"][0]["image"] = json!("ignored");
    let (code, st) = h
        .put(&format!("{pods}/e/ephemeralcontainers"), pod.clone())
        .await;
    assert_eq!(code, StatusCode::OK, "{st}");
    let (_, got) = h.get(&format!("{pods}/e")).await;
    assert_eq!(got["spec"]["ephemeralContainers"][0]["name"], "debug");
    assert_eq!(got["spec"]["containers"][0]["image"], "busybox");
    let (code, st) = patch(
        &h,
        &format!("{pods}/e/ephemeralcontainers"),
        "application/merge-patch+json",
        br#"{"spec":{"ephemeralContainers":[]}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    // A subresource the resource does not have is not found.
    let (code, _) = patch(
        &h,
        &format!("{CMS}/x/scale"),
        "application/merge-patch+json",
        br#"{"spec":{"replicas":2}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_custom_resource_scaled_past_its_schema_is_refused() {
    let h = harness().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "dials.probe.example.com"},
    "spec": {"group": "probe.example.com", "scope": "Namespaced",
        "names": {"plural": "dials", "singular": "dial", "kind": "Dial"},
        "versions": [{"name": "v1", "served": true, "storage": true,
            "subresources": {"scale": {"specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas"}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 10}}},
                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
            }}}}]}});
    let (code, st) = h
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{st}");
    crate::harness::served(&h, "probe.example.com", "v1", "dials").await;
    let dials = "/apis/probe.example.com/v1/namespaces/default/dials";
    let (code, st) = h
        .post(
            dials,
            json!({"apiVersion": "probe.example.com/v1", "kind": "Dial",
                "metadata": {"name": "d"}, "spec": {"replicas": 1}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{st}");
    let (code, st) = patch(
        &h,
        &format!("{dials}/d/scale"),
        "application/merge-patch+json",
        br#"{"spec":{"replicas":100}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or("")
            .contains("spec.replicas"),
        "{st}"
    );
    let (code, _) = patch(
        &h,
        &format!("{dials}/d/scale"),
        "application/merge-patch+json",
        br#"{"spec":{"replicas":10}}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h.get(&format!("{dials}/d")).await.1["spec"]["replicas"], 10);
}

#[tokio::test]
async fn bodies_and_patches_are_bounded_before_they_cost() {
    let h = harness().await;
    // 300,000 nested `[` in YAML once stalled the whole server for minutes.
    let deep = "[".repeat(300_000);
    let started = std::time::Instant::now();
    let resp = h
        .raw(
            Method::POST,
            CMS,
            Some(Bytes::from(deep.clone())),
            "application/yaml",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = h
        .raw(
            Method::POST,
            CMS,
            Some(Bytes::from(deep)),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "refusing deep bodies took {:?}",
        started.elapsed()
    );

    h.post(CMS, cm("grow")).await;
    let path = format!("{CMS}/grow");
    // Doubling a value with `copy` thirty times once took 24 GB.
    let mut ops = vec![json!({"op": "add", "path": "/data/z", "value": "x".repeat(1000)})];
    ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {"l": []}}));
    ops.push(json!({"op": "copy", "from": "/data/z", "path": "/metadata/annotations/l/-"}));
    for _ in 0..30 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations/l", "path": "/metadata/annotations/l/-"}));
    }
    let (code, st) = patch(
        &h,
        &path,
        "application/json-patch+json",
        Value::Array(ops).to_string().as_bytes(),
    )
    .await;
    // Kubernetes answers a patch that cannot be applied with 422.
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or("")
            .contains("the accumulated size increase of copy exceeds the limit"),
        "{st}"
    );
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"}))
        .collect();
    let (code, st) = patch(
        &h,
        &path,
        "application/json-patch+json",
        Value::Array(many).to_string().as_bytes(),
    )
    .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or("")
            .contains("The allowed maximum operations in a JSON patch is 10000, got 10001"),
        "{st}"
    );
    assert!(h.get(&path).await.1["data"].get("z").is_none());
}

#[tokio::test]
async fn pod_scheduling_gates_and_os_are_validated() {
    let h = harness().await;
    let pods = "/api/v1/namespaces/default/pods";
    for (spec_extra, field) in [
        (
            json!({"schedulingGates": [{"name": "not a name!"}]}),
            "spec.schedulingGates[0]",
        ),
        (
            json!({"schedulingGates": [{"name": "example.com/gate"}, {"name": "example.com/gate"}]}),
            "spec.schedulingGates[1]",
        ),
        (json!({"os": {"name": "plan9"}}), "spec.os.name"),
    ] {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        for (k, v) in spec_extra.as_object().expect("object") {
            spec[k] = v.clone();
        }
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "g"}, "spec": spec});
        let (code, st) = h.post(pods, pod).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {st}");
        let causes = st["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            causes.iter().any(|c| c["field"] == field),
            "{field} not named: {st}"
        );
    }
}
