//! What workload controllers ask of pods: are they active, ready, available;
//! which to delete first; how a pod is made from a template.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use crate::meta::seconds_since;

/// The pod's phase, empty when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Counts toward a controller's replicas: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

pub fn is_scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The time the pod's Ready condition last became True, when it is True now.
pub fn ready_since(pod: &Pod) -> Option<Option<&Time>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then_some(cond.last_transition_time.as_ref())
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: &Time) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => seconds_since(t, now) >= f64::from(min_ready_seconds),
    }
}

/// Seconds until a ready pod becomes available, when it is ready but not yet
/// available: when to look again.
pub fn seconds_to_available(pod: &Pod, min_ready_seconds: i32, now: &Time) -> Option<f64> {
    let since = ready_since(pod)??;
    let left = f64::from(min_ready_seconds) - seconds_since(since, now);
    (left > 0.0).then_some(left)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

fn deletion_cost(pod: &Pod) -> i64 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    }
}

/// Kubernetes' `ActivePods` order: the pod to delete first sorts first —
/// unscheduled before scheduled, pending before running, not ready before ready,
/// lower deletion cost, ready for less time, more restarts, newer.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    is_scheduled(a)
        .cmp(&is_scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| {
            // Ready for less time first; both ready is the only case that matters.
            let since = |p: &Pod| ready_since(p).flatten().map(|t| t.0);
            match (since(a), since(b)) {
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

/// A pod from a workload's template, owned by the workload.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner: OwnerReference,
    generate_name: &str,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: tmeta.labels.filter(|l| !l.is_empty()),
            annotations: tmeta.annotations.filter(|a| !a.is_empty()),
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::jiff::Timestamp;

    fn pod(node: Option<&str>, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                creation_timestamp: Some(Time(Timestamp::from_second(created).expect("time"))),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(t).expect("time"))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn deletes_unscheduled_then_pending_then_not_ready_then_newest() {
        let unscheduled = pod(None, "Pending", None, 1);
        let pending = pod(Some("n"), "Pending", None, 1);
        let running = pod(Some("n"), "Running", None, 1);
        let ready_new = pod(Some("n"), "Running", Some(100), 1);
        let ready_old = pod(Some("n"), "Running", Some(50), 1);
        let mut pods = [&ready_old, &ready_new, &running, &pending, &unscheduled];
        pods.sort_by(|a, b| deletion_order(a, b));
        let ptrs: Vec<*const Pod> = pods.iter().map(|p| *p as *const Pod).collect();
        let want: Vec<*const Pod> = [&unscheduled, &pending, &running, &ready_new, &ready_old]
            .iter()
            .map(|p| *p as *const Pod)
            .collect();
        assert_eq!(ptrs, want);

        let older = pod(Some("n"), "Running", Some(10), 1);
        let newer = pod(Some("n"), "Running", Some(10), 2);
        assert_eq!(deletion_order(&newer, &older), Ordering::Less);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod(Some("n"), "Running", Some(100), 1);
        let at = |s| Time(Timestamp::from_second(s).expect("time"));
        assert!(is_available(&p, 0, &at(100)));
        assert!(!is_available(&p, 10, &at(105)));
        assert!(is_available(&p, 10, &at(110)));
        assert_eq!(seconds_to_available(&p, 10, &at(104)), Some(6.0));
    }
}
