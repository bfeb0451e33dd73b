//! Node-pressure eviction, as the kubelet's eviction manager does it at its
//! simplest: every housekeeping interval (10 s) the node's free memory and
//! free space of its filesystem are compared with `--eviction-hard`; under
//! pressure, one pod is evicted per interval — BestEffort pods first, then
//! Burstable, then Guaranteed; within a class the lowest priority first, and
//! among equals the most recently started. The victim's worker stops its
//! containers at once and marks it Failed with reason `Evicted`.
//!
//! Left out so far: ranking by actual usage above requests (the kubelet reads
//! each pod's cgroup), soft thresholds and grace periods, image GC before
//! evicting for disk.

use k8s_openapi::api::core::v1::Pod;

use crate::pods::resources::{QosClass, qos};

/// The order in which pods are evicted: the first is evicted first.
pub(crate) fn rank<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Vec<&'a Pod> {
    let mut v: Vec<&Pod> = pods
        .into_iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
                && p.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let class = |p: &Pod| match qos(p) {
        QosClass::BestEffort => 0,
        QosClass::Burstable => 1,
        QosClass::Guaranteed => 2,
    };
    let priority = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
    let started = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    v.sort_by(|a, b| {
        class(a)
            .cmp(&class(b))
            .then(priority(a).cmp(&priority(b)))
            .then(started(b).cmp(&started(a)))
    });
    v
}

/// The message of an eviction for `resource` (`memory`, `ephemeral-storage`).
pub(crate) fn message(resource: &str) -> String {
    format!("The node was low on resource: {resource}. ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, resources: serde_json::Value, priority: i32, start: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": resources}]},
            "status": {"phase": "Running", "startTime": start},
        }))
        .unwrap()
    }

    #[test]
    fn best_effort_first_then_lower_priority_then_newest() {
        let guaranteed = pod(
            "g",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}),
            0,
            "2026-01-01T00:00:00Z",
        );
        let burstable = pod(
            "b",
            json!({"requests": {"memory": "1Mi"}}),
            0,
            "2026-01-01T00:00:00Z",
        );
        let old = pod("old", json!({}), 0, "2026-01-01T00:00:00Z");
        let new = pod("new", json!({}), 0, "2026-01-02T00:00:00Z");
        let important = pod("vip", json!({}), 1000, "2026-01-03T00:00:00Z");
        let mut done = pod("done", json!({}), 0, "2026-01-01T00:00:00Z");
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let all = [&guaranteed, &burstable, &old, &new, &important, &done];
        let order: Vec<&str> = rank(all)
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(order, ["new", "old", "vip", "b", "g"]);
    }
}
