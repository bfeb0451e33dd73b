//! Writes: allocation, finalizers and graceful deletion, admission, status,
//! limits, malformed input, evictions.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn concurrent_service_creates_get_distinct_cluster_ips() {
    let h = Arc::new(harness().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s{i}")},
                             "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
            h.post("/api/v1/namespaces/default/services", svc).await
        }));
    }
    let mut ips = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    for t in tasks {
        let (code, svc) = t.await.expect("task");
        assert_eq!(code, StatusCode::CREATED, "{svc}");
        assert!(
            ips.insert(svc["spec"]["clusterIP"].as_str().expect("ip").to_string()),
            "duplicate IP"
        );
        assert!(
            ports.insert(svc["spec"]["ports"][0]["nodePort"].as_u64().expect("port")),
            "duplicate node port"
        );
    }
    assert!(
        !ips.contains("10.43.0.1"),
        "the kubernetes service address was handed out"
    );
    // A deleted service's address can be claimed explicitly again.
    let (_, s0) = h.get("/api/v1/namespaces/default/services/s0").await;
    let ip = s0["spec"]["clusterIP"].clone();
    assert_eq!(
        h.delete("/api/v1/namespaces/default/services/s0").await.0,
        StatusCode::OK
    );
    let again =
        json!({"metadata": {"name": "again"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
    let (code, st) = h.post("/api/v1/namespaces/default/services", again).await;
    assert_eq!(code, StatusCode::CREATED, "{st}");
    let taken =
        json!({"metadata": {"name": "taken"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
    let (code, st) = h.post("/api/v1/namespaces/default/services", taken).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{st}");
    assert!(
        st["message"]
            .as_str()
            .expect("msg")
            .contains("provided IP is already allocated")
    );
}

#[tokio::test]
async fn finalizers_and_graceful_pod_deletion() {
    let h = harness().await;
    let mut obj = cm("held");
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    h.post(CMS, obj).await;
    let (code, st) = h.delete(&format!("{CMS}/held")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(st["metadata"]["deletionTimestamp"].is_string(), "{st}");
    assert_eq!(
        h.get(&format!("{CMS}/held")).await.0,
        StatusCode::OK,
        "kept while a finalizer remains"
    );
    let patch = json!({"metadata": {"finalizers": null}});
    let (code, _) = h
        .call(
            Method::PATCH,
            &format!("{CMS}/held"),
            Some(patch),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h.get(&format!("{CMS}/held")).await.0, StatusCode::NOT_FOUND);

    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, created) = h.post(pods, pod).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"]["phase"], "Pending");
    assert_eq!(
        created["spec"]["tolerations"].as_array().map(Vec::len),
        Some(2),
        "default tolerations"
    );
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    assert_eq!(
        h.post(&format!("{pods}/p/binding"), binding.clone())
            .await
            .0,
        StatusCode::CREATED
    );
    let (code, st) = h.post(&format!("{pods}/p/binding"), binding).await;
    assert_eq!(code, StatusCode::CONFLICT, "{st}");
    let (code, st) = h.delete(&format!("{pods}/p")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(st["metadata"]["deletionGracePeriodSeconds"], 30, "{st}");
    assert_eq!(
        h.get(&format!("{pods}/p")).await.0,
        StatusCode::OK,
        "a bound pod waits for its node"
    );
    let (code, _) = h.delete(&format!("{pods}/p?gracePeriodSeconds=0")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h.get(&format!("{pods}/p")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn priority_admission_resolves_classes_and_refuses_disagreeing_values() {
    let h = harness().await;
    let pods = "/api/v1/namespaces/default/pods";
    let classes = "/apis/scheduling.k8s.io/v1/priorityclasses";
    let pod = |name: &str, spec: Value| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if let (Some(m), Some(extra)) = (p["spec"].as_object_mut(), spec.as_object()) {
            m.extend(extra.clone());
        }
        p
    };
    // No class at all: priority 0, may preempt.
    let (code, plain) = h.post(pods, pod("plain", json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{plain}");
    assert_eq!(plain["spec"]["priority"], 0);
    assert_eq!(plain["spec"]["preemptionPolicy"], "PreemptLowerPriority");

    let class = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "batch"}, "value": 50, "preemptionPolicy": "Never"});
    assert_eq!(h.post(classes, class).await.0, StatusCode::CREATED);
    let (code, batch) = h
        .post(pods, pod("batch", json!({"priorityClassName": "batch"})))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{batch}");
    assert_eq!(batch["spec"]["priority"], 50);
    assert_eq!(batch["spec"]["preemptionPolicy"], "Never");
    // Writing the value the class gives is allowed.
    let agreeing = json!({"priorityClassName": "batch", "priority": 50});
    assert_eq!(
        h.post(pods, pod("agree", agreeing)).await.0,
        StatusCode::CREATED
    );

    // A value of one's own is refused, not silently replaced.
    let (code, st) = h.post(pods, pod("own", json!({"priority": 1000}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{st}");
    assert_eq!(
        st["message"],
        "pods \"own\" is forbidden: the integer value of priority (1000) must not be provided in pod spec; \
         priority admission controller computed 0 from the given PriorityClass name"
    );
    let (code, st) = h
        .post(
            pods,
            pod(
                "policy",
                json!({"priorityClassName": "batch", "preemptionPolicy": "PreemptLowerPriority"}),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{st}");
    assert!(
        st["message"].as_str().is_some_and(
            |m| m.contains("PreemptionPolicy (PreemptLowerPriority) must not be provided")
        ),
        "{st}"
    );
    let (code, st) = h
        .post(pods, pod("missing", json!({"priorityClassName": "nope"})))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{st}");
    assert_eq!(
        st["message"],
        "pods \"missing\" is forbidden: no PriorityClass with name nope was found"
    );
    assert_eq!(h.get(&format!("{pods}/own")).await.0, StatusCode::NOT_FOUND);

    // A global default class applies to pods that name none.
    let default = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "everyone"}, "value": 7, "globalDefault": true});
    assert_eq!(h.post(classes, default).await.0, StatusCode::CREATED);
    let (code, later) = h.post(pods, pod("later", json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{later}");
    assert_eq!(later["spec"]["priority"], 7);
    assert_eq!(later["spec"]["priorityClassName"], "everyone");
}

#[tokio::test]
async fn status_and_main_resource_are_separate() {
    let h = harness().await;
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {"replicas": 99}});
    let (code, d) = h.post(deps, dep).await;
    assert_eq!(code, StatusCode::CREATED, "{d}");
    assert!(
        d.get("status").is_none_or(|s| s.get("replicas").is_none()),
        "status is not set on create: {d}"
    );
    assert_eq!(d["metadata"]["generation"], 1);
    let patch = json!({"status": {"replicas": 3}});
    let (code, d) = h
        .call(
            Method::PATCH,
            &format!("{deps}/d/status"),
            Some(patch),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{d}");
    assert_eq!(d["status"]["replicas"], 3);
    assert_eq!(
        d["metadata"]["generation"], 1,
        "status writes keep the generation"
    );
    let patch = json!({"spec": {"replicas": 5}, "status": {"replicas": 0}});
    let (_, d) = h
        .call(
            Method::PATCH,
            &format!("{deps}/d"),
            Some(patch),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(
        d["status"]["replicas"], 3,
        "main resource writes keep the status"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    let (code, scale) = h.get(&format!("{deps}/d/scale")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "a=b");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let h = harness().await;
    let big = "x".repeat(4 * 1024 * 1024);
    let mut obj = cm("big");
    obj["data"]["a"] = json!(big);
    let (code, st) = h.post(CMS, obj).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{st}");
    assert_eq!(st["reason"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn malformed_input_never_panics() {
    let h = harness().await;
    let paths = [
        CMS,
        "/api/v1/namespaces/default/pods",
        "/api/v1/namespaces/default/pods/p/binding",
        "/api/v1/namespaces/default/pods/p/eviction",
        "/apis/apps/v1/namespaces/default/deployments",
        "/apis/apps/v1/namespaces/default/deployments/d/scale",
        "/api/v1/namespaces",
        "/api/v1/nodes",
        "/api/v1/namespaces/default/services",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "/api/v1/namespaces/default/serviceaccounts/default/token",
    ];
    let bodies: Vec<Bytes> = vec![
        Bytes::from_static(b""),
        Bytes::from_static(b"null"),
        Bytes::from_static(b"[]"),
        Bytes::from_static(b"{\"metadata\": 5}"),
        Bytes::from_static(b"{\"metadata\": {\"name\": 7, \"labels\": []}, \"spec\": \"x\"}"),
        Bytes::from_static(b"{\"kind\": 1, \"apiVersion\": {}}"),
        Bytes::from_static(b"{\"spec\": {\"containers\": [null, 1, {\"name\": []}]}}"),
        Bytes::from_static(b"k8s\x00\x0a\x05\x0a\x01v"),
        Bytes::from_static(b"\xff\xfe\x00garbage"),
        Bytes::from_static(b"--- [\n  - :"),
    ];
    let types = [
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
        "text/plain",
    ];
    for path in paths {
        for body in &bodies {
            for ct in types {
                for method in [Method::POST, Method::PUT, Method::PATCH] {
                    let target = if method == Method::POST {
                        path.to_string()
                    } else {
                        format!("{path}/x")
                    };
                    let resp = h
                        .raw(
                            method.clone(),
                            &format!("{target}?fieldManager=t"),
                            Some(body.clone()),
                            ct,
                        )
                        .await;
                    assert!(
                        resp.status().is_client_error(),
                        "{method} {target} ({ct}) with {body:?} gave {}",
                        resp.status()
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn evictions_respect_disruption_budgets() {
    let h = harness().await;
    let pods = "/api/v1/namespaces/default/pods";
    for name in ["e1", "e2"] {
        let pod = json!({"metadata": {"name": name, "labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        assert_eq!(h.post(pods, pod).await.0, StatusCode::CREATED);
        let status = json!({"status": {"phase": "Running"}});
        let (code, _) = h
            .call(
                Method::PATCH,
                &format!("{pods}/{name}/status"),
                Some(status),
                "application/merge-patch+json",
            )
            .await;
        assert_eq!(code, StatusCode::OK);
    }
    let pdbs = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    let pdb = json!({"metadata": {"name": "db"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}});
    assert_eq!(h.post(pdbs, pdb).await.0, StatusCode::CREATED);
    let status = json!({"status": {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}});
    let (code, st) = h
        .call(
            Method::PATCH,
            &format!("{pdbs}/db/status"),
            Some(status),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{st}");
    let eviction =
        |n: &str| json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": n}});
    let (code, st) = h.post(&format!("{pods}/e1/eviction"), eviction("e1")).await;
    assert_eq!(code, StatusCode::CREATED, "{st}");
    let (_, pdb) = h.get(&format!("{pdbs}/db")).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert!(pdb["status"]["disruptedPods"]["e1"].is_string(), "{pdb}");
    let (code, st) = h.post(&format!("{pods}/e2/eviction"), eviction("e2")).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{st}");
    assert!(
        st["message"]
            .as_str()
            .expect("msg")
            .contains("disruption budget db")
    );
    assert_eq!(
        h.get(&format!("{pods}/e2")).await.0,
        StatusCode::OK,
        "a refused eviction keeps the pod"
    );
}
