//! The objects the benchmark writes: pods shaped like a small Deployment's
//! replicas (one container with ports, env, resources, probes and a mount), about
//! 1.5 KB of JSON as sent, spread over [`NAMESPACES`] namespaces.

use serde_json::{Value, json};

use super::NAMESPACES;

pub fn namespace_name(i: usize) -> String {
    format!("bench-{:02}", i % NAMESPACES)
}

pub fn namespace(i: usize) -> Vec<u8> {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace_name(i), "labels": {"bench": "api"}},
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

pub fn pods_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods")
}

pub fn pod_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods/{name}")
}

/// Pod `name` in namespace `ns`; `seq` varies labels and node like a real fleet.
pub fn pod(ns: &str, name: &str, seq: usize) -> Value {
    let app = format!("app-{}", seq % 50);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                "app": app,
                "tier": if seq.is_multiple_of(3) { "frontend" } else { "backend" },
                "pod-template-hash": format!("{:08x}", seq.wrapping_mul(2_654_435_761) & 0xffff_ffff),
                "bench": "api",
            },
            "annotations": {"bench.flotilla.dev/seq": seq.to_string()},
        },
        "spec": {
            "nodeName": format!("node-{:03}", seq % 100),
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "app",
                "image": format!("registry.local/{app}:1.{}", seq % 7),
                "imagePullPolicy": "IfNotPresent",
                "args": ["--port=8080", "--log-level=info"],
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                ],
                "env": [
                    {"name": "APP_NAME", "value": app},
                    {"name": "APP_ENV", "value": "bench"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "readinessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080},
                    "periodSeconds": 10,
                },
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": format!("{app}-config")}}],
        },
    })
}

pub fn pod_bytes(ns: &str, name: &str, seq: usize) -> Vec<u8> {
    serde_json::to_vec(&pod(ns, name, seq)).unwrap_or_default()
}

/// The name of the `i`th loaded pod and its namespace.
pub fn loaded_pod(i: usize) -> (String, String) {
    (namespace_name(i), format!("pod-{i:06}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_small_and_spread() {
        let (ns, name) = loaded_pod(12_345);
        assert_eq!(ns, "bench-45");
        let len = pod_bytes(&ns, &name, 12_345).len();
        assert!((1000..2000).contains(&len), "{len} bytes");
    }
}
