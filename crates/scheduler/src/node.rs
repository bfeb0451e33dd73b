//! `NodeInfo`: a node's scheduling-relevant fields and what the pods placed on
//! it (confirmed or assumed) use.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::pod::{HostPort, PodInfo};
use crate::resources::Resources;
use crate::selectors::Labels;

/// The parts of a Node object the scheduler reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSpecInfo {
    pub labels: Labels,
    /// Spec taints, plus `node.kubernetes.io/not-ready` or `unreachable` when
    /// the Ready condition says so and the taint is not there yet: what the
    /// node lifecycle controller would add, so a NotReady node is filtered
    /// with the same message Kubernetes gives.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    /// Image name → size in bytes.
    pub images: HashMap<String, i64>,
}

impl NodeSpecInfo {
    pub fn from_node(node: &Node) -> Self {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        let condition_taint = match ready.as_deref() {
            Some("False") => Some("node.kubernetes.io/not-ready"),
            Some("Unknown") => Some("node.kubernetes.io/unreachable"),
            _ => None,
        };
        if let Some(key) = condition_taint
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                value: None,
                time_added: None,
            });
        }
        let alloc_list = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let allowed_pods = alloc_list
            .and_then(|l| l.get("pods"))
            .and_then(|q| apimachinery::quantity::Quantity::parse(&q.0).ok())
            .map_or(0, |q| i64::try_from(q.value().max(0)).unwrap_or(i64::MAX));
        let mut images = HashMap::new();
        for image in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in image.names.iter().flatten() {
                images.insert(name.clone(), image.size_bytes.unwrap_or(0));
            }
        }
        Self {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable: Resources::from_list(alloc_list),
            allowed_pods,
            images,
        }
    }
}

/// The node fields every cycle reads, copied next to the pod totals: a cycle
/// touches hundreds of nodes, and following each node's `Arc` to its spec
/// costs a cache miss apiece.
#[derive(Debug, Clone, Default)]
pub struct NodeSummary {
    pub unschedulable: bool,
    pub has_taints: bool,
    pub has_images: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    /// Interned values of the well-known topology labels (`Cache::TOPOLOGY_KEYS`),
    /// so spreading compares numbers instead of looking up labels.
    pub topology: [Option<u32>; 3],
}

/// One node and its pods. A `NodeInfo` can exist without its Node object when
/// pods bound to a node arrive before the node does.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    /// `None` until the Node object is known; such entries are never candidates.
    pub node: Option<Arc<NodeSpecInfo>>,
    pub summary: NodeSummary,
    pub pods: Vec<Arc<PodInfo>>,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub used_ports: Vec<HostPort>,
    /// How many pods here declare any pod (anti-)affinity; lets the affinity
    /// plugins skip nodes without any.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn labels(&self) -> &Labels {
        static EMPTY: Labels = Labels::new();
        self.node.as_ref().map_or(&EMPTY, |n| &n.labels)
    }

    pub fn spec(&self) -> Option<&NodeSpecInfo> {
        self.node.as_deref()
    }

    /// Sets (or, with `None`, clears) the Node object; returns the old one.
    pub fn set_spec(&mut self, spec: Option<Arc<NodeSpecInfo>>) -> Option<Arc<NodeSpecInfo>> {
        self.summary = spec
            .as_deref()
            .map_or_else(NodeSummary::default, |s| NodeSummary {
                unschedulable: s.unschedulable,
                has_taints: !s.taints.is_empty(),
                has_images: !s.images.is_empty(),
                allocatable: s.allocatable.clone(),
                allowed_pods: s.allowed_pods,
                // Filled in by the cache, which owns the interned values.
                topology: [None; 3],
            });
        std::mem::replace(&mut self.node, spec)
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes the pod with `uid`; returns it when it was here.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero);
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity = self.pods_with_affinity.saturating_sub(1);
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity =
                self.pods_with_required_anti_affinity.saturating_sub(1);
        }
        Some(pod)
    }
}
