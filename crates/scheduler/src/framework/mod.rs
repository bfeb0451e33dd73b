//! The scheduling framework: filter plugins decide where a pod may go, score
//! plugins rank those nodes. Each plugin may precompute per-pod state once per
//! cycle (`pre_filter`, `pre_score`) so work per node stays small; inter-pod
//! affinity and topology spreading count matching pods once, not per node.
//!
//! Plugins, their order and their weights are Kubernetes' defaults.

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_unschedulable;
pub mod resources_fit;
pub mod taint_toleration;
pub mod topology_spread;
pub mod volume_binding;

use std::borrow::Cow;
use std::sync::Arc;

use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::pod::PodInfo;

/// Why a node does not fit, in the words of Kubernetes' messages.
pub type Reason = Cow<'static, str>;

/// A node (or, from `pre_filter`, every node) rejected for a pod. The first
/// reason is held inline: most rejections have one, and a cycle may reject
/// thousands of nodes, so this path must not allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub more: Vec<Reason>,
    /// Whether evicting lower-priority pods could change the verdict; node
    /// affinity, taints or a cordon cannot be preempted away.
    pub resolvable: bool,
}

impl Failure {
    pub fn resolvable(reason: impl Into<Reason>) -> Self {
        Self {
            reason: reason.into(),
            more: Vec::new(),
            resolvable: true,
        }
    }

    pub fn unresolvable(reason: impl Into<Reason>) -> Self {
        Self {
            reason: reason.into(),
            more: Vec::new(),
            resolvable: false,
        }
    }

    pub fn reasons(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.reason.as_ref()).chain(self.more.iter().map(|r| r.as_ref()))
    }

    /// The reasons as a list, for comparisons in tests.
    pub fn reason_list(&self) -> Vec<String> {
        self.reasons().map(str::to_string).collect()
    }
}

/// Per-pod state for one cycle, filled by `pre_filter` and `pre_score`.
pub struct CycleState {
    pub pod: Arc<PodInfo>,
    pub affinity: Option<inter_pod_affinity::FilterState>,
    pub affinity_score: Option<inter_pod_affinity::ScoreState>,
    pub spread: Option<topology_spread::FilterState>,
    pub spread_score: Option<topology_spread::ScoreState>,
    pub volumes: Vec<crate::selectors::NodeSelectorTerms>,
    /// The pod's images present on some node, with the share of nodes that have each.
    pub image_spread: Vec<(String, f64)>,
}

impl CycleState {
    pub fn new(pod: Arc<PodInfo>) -> Self {
        Self {
            pod,
            affinity: None,
            affinity_score: None,
            spread: None,
            spread_score: None,
            volumes: Vec::new(),
            image_spread: Vec::new(),
        }
    }
}

pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Runs once per pod before any node is filtered; a failure rejects every node.
    fn pre_filter(&self, _state: &mut CycleState, _cache: &Cache) -> Result<(), Failure> {
        Ok(())
    }

    fn filter(&self, state: &CycleState, cache: &Cache, node: &NodeInfo) -> Result<(), Failure>;

    /// Whether this filter is cheap and often decisive enough to run before the
    /// others while searching for feasible nodes (see [`Framework::passes_early`]).
    fn early(&self) -> bool {
        false
    }
}

pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;

    fn weight(&self) -> i64;

    /// Runs once per pod over the feasible nodes (indices into `cache.nodes()`).
    fn pre_score(&self, _state: &mut CycleState, _cache: &Cache, _feasible: &[usize]) {}

    /// A raw score; `normalize` brings the plugin's scores into 0..=100.
    fn score(&self, state: &CycleState, cache: &Cache, node: &NodeInfo) -> i64;

    fn normalize(&self, _state: &CycleState, _scores: &mut [i64]) {}
}

pub const MAX_NODE_SCORE: i64 = 100;

/// The plugins of one scheduler profile.
pub struct Framework {
    pub filters: Vec<Box<dyn FilterPlugin>>,
    pub scores: Vec<Box<dyn ScorePlugin>>,
}

impl Default for Framework {
    fn default() -> Self {
        Self {
            filters: vec![
                Box::new(node_unschedulable::NodeUnschedulable),
                Box::new(node_name::NodeName),
                Box::new(taint_toleration::TaintToleration),
                Box::new(node_affinity::NodeAffinity),
                Box::new(node_ports::NodePorts),
                Box::new(resources_fit::NodeResourcesFit),
                Box::new(volume_binding::VolumeBinding),
                Box::new(topology_spread::PodTopologySpread),
                Box::new(inter_pod_affinity::InterPodAffinity),
            ],
            scores: vec![
                Box::new(taint_toleration::TaintToleration),
                Box::new(node_affinity::NodeAffinity),
                Box::new(resources_fit::NodeResourcesFit),
                Box::new(balanced_allocation::BalancedAllocation),
                Box::new(image_locality::ImageLocality),
                Box::new(inter_pod_affinity::InterPodAffinity),
                Box::new(topology_spread::PodTopologySpread),
            ],
        }
    }
}

impl Framework {
    pub fn pre_filter(&self, state: &mut CycleState, cache: &Cache) -> Result<(), Failure> {
        self.filters
            .iter()
            .try_for_each(|f| f.pre_filter(state, cache))
    }

    /// The filters that run early. Feasibility does not depend on the order filters
    /// run in, only the reported reason does, so the search may skip a node on an
    /// early filter's word; when no node is feasible, the reasons are collected
    /// again in order with [`Framework::filter`].
    pub fn early_filters(&self) -> Vec<&dyn FilterPlugin> {
        self.filters
            .iter()
            .filter(|f| f.early())
            .map(|f| f.as_ref())
            .collect()
    }

    /// Runs the filters in order; the first rejection decides, as in Kubernetes.
    pub fn filter(
        &self,
        state: &CycleState,
        cache: &Cache,
        node: &NodeInfo,
    ) -> Result<(), Failure> {
        self.filters
            .iter()
            .try_for_each(|f| f.filter(state, cache, node))
    }

    /// Weighted, normalised total score of each feasible node.
    pub fn score(&self, state: &mut CycleState, cache: &Cache, feasible: &[usize]) -> Vec<i64> {
        let mut totals = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        let nodes = cache.nodes();
        for plugin in &self.scores {
            plugin.pre_score(state, cache, feasible);
            for (s, &i) in scores.iter_mut().zip(feasible) {
                *s = plugin.score(state, cache, &nodes[i]);
            }
            plugin.normalize(state, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t = t.saturating_add(s.saturating_mul(plugin.weight()));
            }
        }
        totals
    }
}

/// Kubernetes' `DefaultNormalizeScore`: scales so the best node gets 100
/// (or, `reverse`, so the worst gets 0 and a node with nothing gets 100).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
    }
}
