//! Node-pressure eviction, as the kubelet's eviction manager does it at its
//! simplest: every housekeeping interval (10 s) the node's free memory and
//! free space of its filesystem are compared with `--eviction-hard`; under
//! pressure, one pod is evicted per interval — BestEffort pods first, then
//! Burstable, then Guaranteed; within a class the lowest priority first, and
//! among equals the most recently started. The victim's worker stops its
//! containers at once and marks it Failed with reason `Evicted`.
//!
//! Under disk pressure, images no container uses are removed first (the
//! kubelet's image reclaim), and a pod is evicted only when that freed
//! nothing. Images imported from archives are pinned and never removed.
//!
//! Left out so far: ranking by actual usage above requests (the kubelet reads
//! each pod's cgroup), soft thresholds and grace periods, image GC by disk
//! usage thresholds outside of pressure.

use k8s_openapi::api::core::v1::Pod;

use std::collections::HashSet;

use crate::images::Image;
use crate::pods::resources::{QosClass, qos};

/// Images that may be removed to free disk: not pinned, and used by no
/// container the runtime knows (running or exited), largest first.
pub(crate) fn unused_images(images: Vec<Image>, used: &HashSet<String>) -> Vec<Image> {
    let mut out: Vec<Image> = images
        .into_iter()
        .filter(|i| !i.pinned && !used.contains(&i.id))
        .collect();
    out.sort_by_key(|i| std::cmp::Reverse(i.size));
    out
}

/// Removes the unused images; returns the bytes their layers took.
pub(crate) async fn reclaim_images(shared: &super::Shared) -> u64 {
    let used: HashSet<String> = match shared.runtime.list_containers(None).await {
        Ok(cs) => cs.into_iter().map(|c| c.image_id).collect(),
        // Without knowing what is in use, nothing may go.
        Err(_) => return 0,
    };
    let store = shared.puller.store().clone();
    tokio::task::spawn_blocking(move || {
        let mut freed = 0;
        for image in unused_images(store.list(), &used) {
            match store.remove(&image) {
                Ok(()) => {
                    tracing::info!(image = ?image.names, bytes = image.size, "removed an unused image to free disk");
                    freed += image.size;
                }
                Err(e) => tracing::warn!(image = ?image.names, error = %e, "removing an unused image"),
            }
        }
        freed
    })
    .await
    .unwrap_or(0)
}

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

    fn image(id: &str, size: u64, pinned: bool) -> Image {
        Image {
            id: id.into(),
            names: vec![format!("example.com/{id}:1")],
            config: Default::default(),
            size,
            pinned,
        }
    }

    #[test]
    fn only_unpinned_images_no_container_uses_are_reclaimed() {
        let used: HashSet<String> = ["sha256:used".to_string()].into();
        let images = vec![
            image("sha256:used", 10, false),
            image("sha256:small", 5, false),
            image("sha256:imported", 50, true),
            image("sha256:big", 20, false),
        ];
        let ids: Vec<String> = unused_images(images, &used)
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["sha256:big", "sha256:small"]);
    }

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
