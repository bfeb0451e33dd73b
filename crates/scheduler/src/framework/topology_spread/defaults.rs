//! Kubernetes' system default spreading (`defaultingType: System`): a pod that
//! declares no constraints is scored over hostnames (maxSkew 3) and zones
//! (maxSkew 5), selecting what the Services and the controller that own the
//! pod select (`DefaultSelector`).

use apimachinery::selectors::LabelSelector;
use serde_json::json;

use super::HOSTNAME;
use crate::cache::{Cache, ControllerSelector};
use crate::pod::{PodInfo, SpreadConstraint, SpreadMode};
use crate::selectors::Labels;

/// Kubernetes' system default constraints: topology key and maxSkew.
const SYSTEM_DEFAULTS: [(&str, i64); 2] = [(HOSTNAME, 3), ("topology.kubernetes.io/zone", 5)];

/// Kubernetes' `DefaultSelector`: the selectors of the Services in the pod's
/// namespace that select it, merged, plus the selector of its controlling
/// ReplicationController, ReplicaSet or StatefulSet. Empty when none applies.
pub fn default_selector(pod: &PodInfo, cache: &Cache) -> LabelSelector {
    let mut set = Labels::new();
    for sel in cache.service_selectors(&pod.namespace) {
        if sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
            set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut requirements: &[serde_json::Value] = &[];
    if let Some((kind, name)) = &pod.controller {
        match cache.controller(*kind, &pod.namespace, name) {
            Some(ControllerSelector::Labels(labels)) => {
                set.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Some(ControllerSelector::Requirements(r)) => requirements = r,
            None => {}
        }
    }
    if set.is_empty() && requirements.is_empty() {
        return LabelSelector::everything();
    }
    let sel = json!({"matchLabels": set, "matchExpressions": requirements});
    // Both parts were valid selectors on their own; a failure spreads by nothing.
    LabelSelector::from_metav1(&sel).unwrap_or_else(|_| LabelSelector::everything())
}

/// The system default constraints for a pod that declares none, or none when
/// its default selector is empty.
pub fn system_defaults(pod: &PodInfo, cache: &Cache) -> Vec<SpreadConstraint> {
    let selector = default_selector(pod, cache);
    if selector.is_empty() {
        return Vec::new();
    }
    SYSTEM_DEFAULTS
        .iter()
        .map(|&(key, max_skew)| SpreadConstraint {
            max_skew,
            topology_key: key.to_string(),
            mode: SpreadMode::ScheduleAnyway,
            selector: selector.clone(),
            min_domains: None,
            honor_node_affinity: true,
            honor_taints: false,
        })
        .collect()
}
