//! A valid object of every built-in kind, for tests that sweep the resource table.

use apimachinery::resources::Resource;
use serde_json::{Value, json};

fn pod_spec() -> Value {
    json!({"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Always"})
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec()})
}

/// The smallest valid body of each built-in kind, without metadata.
pub fn body_of(r: &Resource) -> Option<Value> {
    let spec = |s: Value| json!({"spec": s});
    let selected = json!({"selector": {"matchLabels": {"app": "x"}}, "template": template()});
    Some(match (r.group.as_ref(), r.kind.as_ref()) {
        ("", "Namespace" | "Node" | "Endpoints" | "ConfigMap" | "Secret" | "ServiceAccount") => {
            json!({})
        }
        ("", "Pod") => spec(pod_spec()),
        ("", "Service") => spec(json!({"selector": {"app": "x"}, "ports": [{"port": 80}]})),
        ("", "Event") => json!({
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Tested", "message": "m", "type": "Normal",
            "source": {"component": "test"},
        }),
        ("", "PersistentVolume") => spec(json!({
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/dry-run"},
        })),
        ("", "PersistentVolumeClaim") => spec(json!({
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
        })),
        ("", "LimitRange") => spec(json!({"limits": [{"type": "Container", "max": {"cpu": "1"}}]})),
        ("", "ResourceQuota") => spec(json!({"hard": {"pods": "10"}})),
        ("", "ReplicationController") => spec(json!({
            "replicas": 1, "selector": {"app": "x"}, "template": template(),
        })),
        ("", "PodTemplate") => json!({"template": template()}),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => spec(selected),
        ("apps", "StatefulSet") => {
            let mut s = selected;
            s["serviceName"] = json!("x");
            spec(s)
        }
        ("apps", "ControllerRevision") => json!({"revision": 1}),
        ("batch", "Job") => {
            let mut t = template();
            t["spec"]["restartPolicy"] = json!("Never");
            spec(json!({"template": t}))
        }
        ("batch", "CronJob") => {
            let mut t = template();
            t["spec"]["restartPolicy"] = json!("Never");
            spec(json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": t}}}))
        }
        ("autoscaling", "HorizontalPodAutoscaler") => spec(json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "maxReplicas": 3,
        })),
        ("coordination.k8s.io", "Lease") => spec(json!({"holderIdentity": "a"})),
        ("discovery.k8s.io", "EndpointSlice") => json!({"addressType": "IPv4", "endpoints": []}),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => json!({"rules": []}),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [],
        }),
        ("networking.k8s.io", "Ingress") => spec(json!({
            "defaultBackend": {"service": {"name": "s", "port": {"number": 80}}},
        })),
        ("networking.k8s.io", "IngressClass") => spec(json!({"controller": "example.com/x"})),
        ("networking.k8s.io", "NetworkPolicy") => spec(json!({"podSelector": {}})),
        ("storage.k8s.io", "StorageClass") => json!({"provisioner": "example.com/x"}),
        ("events.k8s.io", "Event") => json!({
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/x",
            "reportingInstance": "i", "action": "Tested", "reason": "Tested", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
        }),
        ("scheduling.k8s.io", "PriorityClass") => json!({"value": 100}),
        ("policy", "PodDisruptionBudget") => spec(json!({
            "minAvailable": 1, "selector": {"matchLabels": {"app": "x"}},
        })),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => spec(json!({
            "group": "dry.example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                }}}}],
        })),
        _ => return None,
    })
}

/// A full object of resource `r` named `name`.
pub fn object(r: &Resource, name: &str) -> Value {
    let mut obj = body_of(r).unwrap_or_else(|| {
        panic!(
            "no sample body for {}/{} {}: add one to body_of so dry-run is proven for it",
            r.group, r.version, r.kind
        )
    });
    obj["apiVersion"] = json!(r.api_version());
    obj["kind"] = json!(r.kind);
    let name = if r.kind == "CustomResourceDefinition" {
        "widgets.dry.example.com"
    } else {
        name
    };
    obj["metadata"] = json!({"name": name, "labels": {"app": "x"}});
    obj
}

pub fn collection(r: &Resource) -> String {
    let root = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    if r.namespaced {
        format!("{root}/namespaces/default/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    }
}
