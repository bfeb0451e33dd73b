//! The scheduler's view of the cluster: nodes with the pods placed on them,
//! including pods it has *assumed* (bound in its own mind, bind request still
//! in flight), so the next cycle sees the last placement before the watch
//! reports it. Also the few other objects filters read (namespaces, volumes,
//! disruption budgets, priority classes).
//!
//! Only the scheduling loop touches the cache, so it needs no locks.

use std::collections::HashMap;
use std::sync::Arc;

use crate::node::{NodeInfo, NodeSpecInfo};
use crate::pod::{ControllerKind, PodInfo};
use crate::selectors::{Labels, NodeSelectorTerms};
use apimachinery::selectors::LabelSelector;

/// A claim and the volume it is bound to (empty while unbound).
#[derive(Debug, Clone, Default)]
pub struct ClaimInfo {
    pub volume_name: String,
    pub storage_class: String,
}

/// A PodDisruptionBudget as preemption reads it.
#[derive(Debug, Clone)]
pub struct BudgetInfo {
    pub namespace: String,
    pub selector: LabelSelector,
    pub disruptions_allowed: i64,
}

/// What a controller selects, in the form default topology spreading merges.
#[derive(Debug, Clone, PartialEq)]
pub enum ControllerSelector {
    /// A ReplicationController's `spec.selector` map: merged into the label set.
    Labels(Labels),
    /// A ReplicaSet's or StatefulSet's `spec.selector` as `matchExpressions`
    /// (its `matchLabels` as `In`), added as requirements; empty when the
    /// selector is absent or invalid.
    Requirements(Vec<serde_json::Value>),
}

#[derive(Debug, Clone)]
struct Placement {
    node: String,
    assumed: bool,
}

/// Node infos in a vector (cycles iterate them round-robin) with a name index.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, Placement>,
    /// Image → number of nodes that have it (ImageLocality's spread factor).
    image_nodes: HashMap<String, usize>,
    real_nodes: usize,
    pods_with_affinity: usize,
    /// Every change to a node's pods or labels, in order: lets per-selector
    /// tallies (topology spreading) update incrementally instead of
    /// recounting every pod in every cycle.
    changes: std::collections::VecDeque<(u64, String)>,
    change_seq: u64,
    /// Set while preemption edits node infos in place; incremental tallies
    /// are bypassed then.
    pub simulating: bool,
    /// Topology spreading's incremental tallies, by selector.
    pub spread_memo: std::cell::RefCell<HashMap<String, crate::framework::topology_spread::Memo>>,
    /// Label value → small id, for the well-known topology keys.
    interned: HashMap<String, u32>,
    pub namespaces: HashMap<String, Labels>,
    /// `namespace/name` → claim.
    pub claims: HashMap<String, ClaimInfo>,
    /// Volume name → its required node affinity, if any.
    pub volumes: HashMap<String, Option<NodeSelectorTerms>>,
    /// Storage class → whether binding waits for the first consumer; `None`
    /// when the scheduler may not read storage classes.
    pub storage_classes: Option<HashMap<String, bool>>,
    /// `namespace/name` → budget.
    pub budgets: HashMap<String, BudgetInfo>,
    /// PriorityClass name → (value, preemptionPolicy Never).
    pub priority_classes: HashMap<String, (i32, bool)>,
    pub default_priority_class: Option<String>,
    /// Pending pods nominated to a node by preemption, by node.
    pub nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Non-empty Service selectors by namespace, then Service name: only a
    /// pod's own namespace is ever read.
    services: HashMap<String, HashMap<String, Labels>>,
    /// ReplicationController, ReplicaSet and StatefulSet selectors by kind
    /// and `namespace/name`.
    pub controllers: HashMap<(ControllerKind, String), ControllerSelector>,
}

impl Cache {
    /// Topology keys whose values nodes carry as interned ids.
    pub const TOPOLOGY_KEYS: [&'static str; 3] = [
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "kubernetes.io/hostname",
    ];

    /// The id of a topology label value, if any node ever had it.
    pub fn interned(&self, value: &str) -> Option<u32> {
        self.interned.get(value).copied()
    }

    /// How many ids exist (ids are below this).
    pub fn num_interned(&self) -> usize {
        self.interned.len()
    }

    fn intern(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.interned.get(value) {
            return id;
        }
        let id = u32::try_from(self.interned.len()).unwrap_or(u32::MAX);
        self.interned.insert(value.to_string(), id);
        id
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Nodes whose Node object is known.
    pub fn num_nodes(&self) -> usize {
        self.real_nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn node_mut(&mut self, i: usize) -> Option<&mut NodeInfo> {
        self.nodes.get_mut(i)
    }

    /// Whether any placed pod declares pod (anti-)affinity: lets the affinity
    /// plugins skip their scans over all nodes entirely.
    pub fn any_pod_affinity(&self) -> bool {
        self.pods_with_affinity > 0
    }

    /// Records that `node`'s pods or labels changed.
    fn touch(&mut self, node: &str) {
        const KEEP: usize = 50_000;
        self.change_seq += 1;
        self.changes.push_back((self.change_seq, node.to_string()));
        if self.changes.len() > KEEP {
            self.changes.drain(..KEEP / 2);
        }
    }

    pub fn change_seq(&self) -> u64 {
        self.change_seq
    }

    /// Nodes changed after `seq`, or `None` when the log no longer reaches back that far.
    pub fn changes_since(&self, seq: u64) -> Option<impl Iterator<Item = &str>> {
        let oldest = self
            .changes
            .front()
            .map_or(self.change_seq + 1, |(s, _)| *s);
        if seq + 1 < oldest {
            return None;
        }
        Some(
            self.changes
                .iter()
                .filter(move |(s, _)| *s > seq)
                .map(|(_, n)| n.as_str()),
        )
    }

    fn track(&mut self, pod: &PodInfo, node: &str, added: bool) {
        self.touch(node);
        if pod.has_affinity() {
            if added {
                self.pods_with_affinity += 1;
            } else {
                self.pods_with_affinity = self.pods_with_affinity.saturating_sub(1);
            }
        }
    }

    pub fn nodes_with_image(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Records the selector of Service `namespace/name`; `None` or an empty
    /// selector (which selects nothing to spread by) removes it.
    pub fn set_service(&mut self, key: &str, selector: Option<Labels>) {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        match selector.filter(|s| !s.is_empty()) {
            Some(sel) => {
                self.services
                    .entry(ns.to_string())
                    .or_default()
                    .insert(name.to_string(), sel);
            }
            None => {
                if let Some(names) = self.services.get_mut(ns) {
                    names.remove(name);
                    if names.is_empty() {
                        self.services.remove(ns);
                    }
                }
            }
        }
    }

    /// The selectors of the Services in `ns` that have one.
    pub fn service_selectors(&self, ns: &str) -> impl Iterator<Item = &Labels> {
        self.services.get(ns).into_iter().flat_map(HashMap::values)
    }

    pub fn controller(
        &self,
        kind: ControllerKind,
        ns: &str,
        name: &str,
    ) -> Option<&ControllerSelector> {
        if self.controllers.is_empty() {
            return None;
        }
        self.controllers.get(&(kind, format!("{ns}/{name}")))
    }

    pub fn namespace_labels(&self, ns: &str) -> Option<Labels> {
        self.namespaces.get(ns).cloned()
    }

    fn entry(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.nodes.push(NodeInfo::new(name));
        let i = self.nodes.len() - 1;
        self.index.insert(name.to_string(), i);
        i
    }

    /// Adds or updates a node; returns true when something a filter or score
    /// reads changed (so pods waiting as unschedulable deserve another try).
    pub fn set_node(&mut self, name: &str, spec: NodeSpecInfo) -> bool {
        let i = self.entry(name);
        let info = &mut self.nodes[i];
        if info.node.as_deref() == Some(&spec) {
            return false;
        }
        let old = info.set_spec(Some(Arc::new(spec)));
        let values: Vec<Option<String>> = Self::TOPOLOGY_KEYS
            .iter()
            .map(|k| self.nodes[i].labels().get(*k).cloned())
            .collect();
        for (slot, value) in values.into_iter().enumerate() {
            let id = value.map(|v| self.intern(&v));
            self.nodes[i].summary.topology[slot] = id;
        }
        let info = &self.nodes[i];
        let new_images: Vec<String> = info
            .spec()
            .map(|s| s.images.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(old) = &old {
            for image in old.images.keys() {
                self.release_image(image);
            }
        } else {
            self.real_nodes += 1;
        }
        for image in new_images {
            *self.image_nodes.entry(image).or_default() += 1;
        }
        self.touch(name);
        true
    }

    fn release_image(&mut self, image: &str) {
        if let Some(n) = self.image_nodes.get_mut(image) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.image_nodes.remove(image);
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        self.touch(name);
        if let Some(old) = self.nodes[i].set_spec(None) {
            self.real_nodes = self.real_nodes.saturating_sub(1);
            for image in old.images.keys() {
                self.release_image(image);
            }
        }
        // Pods still bound to a deleted node keep a placeholder until they go.
        if self.nodes[i].pods.is_empty() {
            self.drop_entry(i);
        }
    }

    fn drop_entry(&mut self, i: usize) {
        let removed = self.nodes.swap_remove(i);
        self.index.remove(&removed.name);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    pub fn contains_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Records a placement decided by this scheduler before the API server has it.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.uid);
        let i = self.entry(node);
        self.pods.insert(
            pod.uid.clone(),
            Placement {
                node: node.to_string(),
                assumed: true,
            },
        );
        self.track(&pod, node, true);
        self.nodes[i].add_pod(pod);
    }

    /// Undoes an assumption whose bind failed. A pod the watch already
    /// confirmed stays.
    pub fn forget(&mut self, uid: &str) {
        if self.is_assumed(uid) {
            self.remove_pod(uid);
        }
    }

    /// A pod the API server reports bound to a node: confirms an assumption or
    /// adds (or updates) a placement made by anyone.
    pub fn set_assigned_pod(&mut self, pod: Arc<PodInfo>) {
        self.remove_pod(&pod.uid);
        let node = pod.node_name.clone();
        let i = self.entry(&node);
        self.pods.insert(
            pod.uid.clone(),
            Placement {
                node,
                assumed: false,
            },
        );
        self.track(&pod, &pod.node_name, true);
        self.nodes[i].add_pod(pod);
    }

    /// Removes a pod wherever it is; returns it when it was placed.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let placement = self.pods.remove(uid)?;
        let &i = self.index.get(&placement.node)?;
        let pod = self.nodes[i].remove_pod(uid);
        if let Some(p) = &pod {
            self.track(p, &placement.node, false);
        }
        if self.nodes[i].node.is_none() && self.nodes[i].pods.is_empty() {
            self.drop_entry(i);
        }
        pod
    }

    /// The pod's effective priority: its PriorityClass's value when the class
    /// is known (the API server may not resolve classes at admission), else
    /// `spec.priority`.
    pub fn resolve_priority(&self, pod: &mut PodInfo) {
        let class = if pod.priority_class_name.is_empty() {
            self.default_priority_class.as_deref()
        } else {
            Some(pod.priority_class_name.as_str())
        };
        let builtin = match class {
            Some("system-node-critical") => Some((2_000_001_000, false)),
            Some("system-cluster-critical") => Some((2_000_000_000, false)),
            _ => None,
        };
        if let Some((value, never)) = class
            .and_then(|c| self.priority_classes.get(c).copied())
            .or(builtin)
        {
            pod.priority = value;
            pod.preempt_never |= never;
        }
    }

    /// Pods nominated to `node` that outrank (or equal) `pod` and are not it:
    /// their room is reserved.
    pub fn nominated_for<'a>(
        &'a self,
        node: &str,
        pod: &'a PodInfo,
    ) -> impl Iterator<Item = &'a Arc<PodInfo>> {
        self.nominated
            .get(node)
            .into_iter()
            .flatten()
            .filter(move |p| p.uid != pod.uid && p.priority >= pod.priority)
    }

    /// Removes and returns the pods nominated to `node` with a lower priority than
    /// `pod`: once `pod` is nominated there they may no longer fit, so, as
    /// Kubernetes' preemption does, their nominations are dropped and they look
    /// for room again.
    pub fn take_lower_nominated(&mut self, node: &str, pod: &PodInfo) -> Vec<Arc<PodInfo>> {
        let Some(list) = self.nominated.get_mut(node) else {
            return Vec::new();
        };
        let (lower, keep): (Vec<_>, Vec<_>) = std::mem::take(list)
            .into_iter()
            .partition(|p| p.uid != pod.uid && p.priority < pod.priority);
        *list = keep;
        if list.is_empty() {
            self.nominated.remove(node);
        }
        lower
    }

    pub fn set_nominated(&mut self, pod: &Arc<PodInfo>, node: Option<&str>) {
        for list in self.nominated.values_mut() {
            list.retain(|p| p.uid != pod.uid);
        }
        self.nominated.retain(|_, l| !l.is_empty());
        if let Some(node) = node.filter(|n| !n.is_empty()) {
            self.nominated
                .entry(node.to_string())
                .or_default()
                .push(pod.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, info};

    #[test]
    fn lower_priority_nominations_are_taken_away() {
        let mut cache = Cache::default();
        let low = info(&PodBuilder::new("low").priority(10).build());
        let same = info(&PodBuilder::new("same").priority(100).build());
        let elsewhere = info(&PodBuilder::new("elsewhere").priority(1).build());
        let high = info(&PodBuilder::new("high").priority(100).build());
        cache.set_nominated(&low, Some("n1"));
        cache.set_nominated(&same, Some("n1"));
        cache.set_nominated(&elsewhere, Some("n2"));
        cache.set_nominated(&high, Some("n1"));
        let taken = cache.take_lower_nominated("n1", &high);
        assert_eq!(
            taken.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["low"]
        );
        let left: Vec<&str> = cache.nominated["n1"]
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(left, ["same", "high"]);
        assert_eq!(cache.nominated["n2"].len(), 1);
        assert!(cache.take_lower_nominated("n3", &high).is_empty());
        let mut only = Cache::default();
        only.set_nominated(&low, Some("n1"));
        assert_eq!(only.take_lower_nominated("n1", &high).len(), 1);
        assert!(!only.nominated.contains_key("n1"));
    }

    #[test]
    fn assume_confirm_and_forget_keep_the_totals_right() {
        let mut cache = Cache::default();
        cache.set_node(
            "n1",
            NodeSpecInfo::from_node(&NodeBuilder::new("n1").cpu("4").build()),
        );
        let p = info(&PodBuilder::new("a").cpu("1").build());
        cache.assume(p.clone(), "n1");
        assert_eq!(cache.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
        assert!(cache.is_assumed(&p.uid));

        // The watch confirms it: counted once, no longer assumed.
        let mut bound = (*p).clone();
        bound.node_name = "n1".into();
        cache.set_assigned_pod(Arc::new(bound));
        assert_eq!(cache.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
        assert!(!cache.is_assumed(&p.uid));
        cache.forget(&p.uid);
        assert_eq!(
            cache.node("n1").map(|n| n.pods.len()),
            Some(1),
            "confirmed pods are not forgotten"
        );

        let q = info(&PodBuilder::new("b").cpu("2").build());
        cache.assume(q.clone(), "n1");
        cache.forget(&q.uid);
        assert_eq!(cache.node("n1").map(|n| n.requested.milli_cpu), Some(1000));
    }

    #[test]
    fn pods_may_arrive_before_their_node_and_outlive_it() {
        let mut cache = Cache::default();
        let mut p = (*info(&PodBuilder::new("a").cpu("1").build())).clone();
        p.node_name = "late".into();
        let p = Arc::new(p);
        cache.set_assigned_pod(p.clone());
        assert_eq!(cache.num_nodes(), 0);
        cache.set_node(
            "late",
            NodeSpecInfo::from_node(&NodeBuilder::new("late").build()),
        );
        assert_eq!(cache.num_nodes(), 1);
        assert_eq!(
            cache.node("late").map(|n| n.requested.milli_cpu),
            Some(1000)
        );
        cache.remove_node("late");
        assert_eq!(cache.num_nodes(), 0);
        assert!(cache.node("late").is_some(), "placeholder kept for its pod");
        cache.remove_pod(&p.uid);
        assert!(cache.node("late").is_none());
    }

    #[test]
    fn node_updates_report_only_relevant_changes_and_count_images() {
        let mut cache = Cache::default();
        let n = NodeBuilder::new("n1").image("app:1", 100).build();
        assert!(cache.set_node("n1", NodeSpecInfo::from_node(&n)));
        assert!(
            !cache.set_node("n1", NodeSpecInfo::from_node(&n)),
            "heartbeat-only updates change nothing"
        );
        assert_eq!(cache.nodes_with_image("app:1"), 1);
        let n2 = NodeBuilder::new("n1").label("zone", "a").build();
        assert!(cache.set_node("n1", NodeSpecInfo::from_node(&n2)));
        assert_eq!(cache.nodes_with_image("app:1"), 0);
    }

    #[test]
    fn priority_classes_override_the_admitted_priority() {
        let mut cache = Cache::default();
        cache.priority_classes.insert("high".into(), (1000, false));
        let mut p = (*info(&PodBuilder::new("a").build())).clone();
        p.priority_class_name = "high".into();
        cache.resolve_priority(&mut p);
        assert_eq!(p.priority, 1000);
        p.priority_class_name = "system-node-critical".into();
        cache.resolve_priority(&mut p);
        assert_eq!(p.priority, 2_000_001_000);
    }
}
