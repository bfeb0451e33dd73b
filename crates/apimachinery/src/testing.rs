//! Helpers for tests: sample objects and malformed variants of them.

use serde_json::{Value, json};

/// Every variant of `v` with one node (at any depth) replaced by a value of another type.
pub fn mutations(v: &Value) -> Vec<Value> {
    let replacements = [
        json!(null),
        json!(1),
        json!(-1),
        json!("x"),
        json!(true),
        json!([]),
        json!({}),
        json!([1, "a"]),
        json!({"a": 1}),
    ];
    let mut out = Vec::new();
    let mut pointers = Vec::new();
    collect_pointers(v, String::new(), &mut pointers);
    for p in pointers {
        for r in &replacements {
            let mut m = v.clone();
            if let Some(slot) = m.pointer_mut(&p) {
                *slot = r.clone();
                out.push(m);
            }
        }
    }
    out
}

fn collect_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                collect_pointers(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                collect_pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A small valid object of each kind the tests exercise, with its apiVersion and kind.
pub fn samples() -> Vec<(&'static str, &'static str, Value)> {
    let pod_spec = json!({
        "containers": [{
            "name": "web", "image": "nginx:1.25",
            "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
            "env": [{"name": "A", "value": "1"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}
        }],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    });
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": pod_spec});
    let mut job_template = template.clone();
    job_template["spec"]["restartPolicy"] = json!("Never");
    let meta = json!({"name": "web", "namespace": "default", "labels": {"app": "web"}});
    vec![
        (
            "v1",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}),
        ),
        (
            "v1",
            "Namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        ),
        (
            "v1",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}),
        ),
        (
            "v1",
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a.conf": "x"}}),
        ),
        (
            "v1",
            "Secret",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": {"k": "eA=="}}),
        ),
        (
            "v1",
            "Node",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.42.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]}}),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}}),
        ),
        (
            "apps/v1",
            "StatefulSet",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
            "spec": {"serviceName": "web", "selector": {"matchLabels": {"app": "web"}}, "template": template}}),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
        ),
        (
            "batch/v1",
            "Job",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": job_template}}),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_template}}}}),
        ),
        (
            "coordination.k8s.io/v1",
            "Lease",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": meta, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": meta, "spec": {"rules": [{"host": "example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        ),
    ]
}
