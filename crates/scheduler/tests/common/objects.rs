//! Node and pod manifests for the integration tests and the benchmark.

#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

/// A Ready node with `cpu` cores, 32 GiB and 110 pods, plus `labels`.
pub fn node(name: &str, cpu: &str, labels: Value, taints: Value) -> Node {
    let mut l = json!({"kubernetes.io/hostname": name});
    if let (Some(m), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "spec": {"taints": taints},
        "status": {
            "capacity": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        }
    }))
    .expect("node manifest")
}

/// A pod of one container requesting `cpu`, with extra `spec` fields merged in.
pub fn pod(name: &str, cpu: &str, labels: Value, spec: Value) -> Pod {
    let mut s = json!({
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]
    });
    if let (Some(m), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": s
    }))
    .expect("pod manifest")
}
