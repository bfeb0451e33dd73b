//! PodTopologySpread: `DoNotSchedule` constraints filter nodes whose domain
//! would exceed `maxSkew` over the least-loaded domain; `ScheduleAnyway`
//! constraints score nodes by how many matching pods their domains hold.
//! Matching pods are counted once per pod (in `pre_filter` / `pre_score`).

use std::collections::{HashMap, HashSet};

use super::{CycleState, Failure, FilterPlugin, MAX_NODE_SCORE, ScorePlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::pod::{PodInfo, SpreadConstraint, SpreadMode};
use crate::selectors::untolerated;

pub struct PodTopologySpread;

const NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// Per `DoNotSchedule` constraint: matching pods per domain and the minimum.
pub struct FilterState {
    constraints: Vec<SpreadConstraint>,
    counts: Vec<HashMap<String, i64>>,
    min: Vec<i64>,
}

/// Per `ScheduleAnyway` constraint: matching pods per domain of the feasible
/// nodes and the weight of the constraint's topology.
pub struct ScoreState {
    constraints: Vec<SpreadConstraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
}

/// Whether `node` counts as a domain member for constraint `c` of `pod`.
fn included(c: &SpreadConstraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = node.spec() else {
        return false;
    };
    if c.honor_node_affinity && !pod.accepts_node(&node.name, &spec.labels) {
        return false;
    }
    if c.honor_taints
        && untolerated(&spec.taints, &pod.tolerations, &["NoSchedule", "NoExecute"]).is_some()
    {
        return false;
    }
    true
}

fn matching_pods(c: &SpreadConstraint, namespace: &str, node: &NodeInfo) -> i64 {
    let n = node
        .pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == namespace && c.selector.matches_map(&p.labels))
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn has_keys(constraints: &[SpreadConstraint], node: &NodeInfo) -> bool {
    let labels = node.labels();
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// Counts matching pods per domain over every node that qualifies; domains of
/// qualifying nodes appear even with no pods.
fn count(
    constraints: &[SpreadConstraint],
    pod: &PodInfo,
    cache: &Cache,
    only: Option<&[HashMap<String, i64>]>,
) -> Vec<HashMap<String, i64>> {
    let mut counts: Vec<HashMap<String, i64>> = match only {
        Some(domains) => domains.to_vec(),
        None => vec![HashMap::new(); constraints.len()],
    };
    for node in cache.nodes() {
        if node.node.is_none() || !has_keys(constraints, node) {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if !included(c, pod, node) {
                continue;
            }
            let Some(value) = node.labels().get(&c.topology_key) else {
                continue;
            };
            if only.is_some() && !counts[i].contains_key(value) {
                continue;
            }
            let n = matching_pods(c, &pod.namespace, node);
            *counts[i].entry(value.clone()).or_default() += n;
        }
    }
    counts
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(&self, state: &mut CycleState, cache: &Cache) -> Result<(), Failure> {
        let pod = state.pod.clone();
        let constraints: Vec<SpreadConstraint> = pod
            .spread
            .iter()
            .filter(|c| c.mode == SpreadMode::DoNotSchedule)
            .cloned()
            .collect();
        if constraints.is_empty() {
            state.spread = None;
            return Ok(());
        }
        let counts = count(&constraints, &pod, cache, None);
        let min = constraints
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                let fewest = domains.values().copied().min().unwrap_or(0);
                let num_domains = i64::try_from(domains.len()).unwrap_or(i64::MAX);
                if c.min_domains.is_some_and(|m| num_domains < m) {
                    0
                } else {
                    fewest
                }
            })
            .collect();
        state.spread = Some(FilterState {
            constraints,
            counts,
            min,
        });
        Ok(())
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        let Some(s) = state.spread.as_ref() else {
            return Ok(());
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels().get(&c.topology_key) else {
                return Err(Failure::unresolvable(MISSING_LABEL));
            };
            let self_match = i64::from(c.selector.matches_map(&state.pod.labels));
            let matched = s.counts[i].get(value).copied().unwrap_or(0);
            if matched + self_match - s.min[i] > c.max_skew {
                return Err(Failure::resolvable(NOT_MATCH));
            }
        }
        Ok(())
    }
}

/// Marks a node that lacks a constraint's topology key: scored 0.
const IGNORED: i64 = -1;

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, state: &mut CycleState, cache: &Cache, feasible: &[usize]) {
        let pod = state.pod.clone();
        let constraints: Vec<SpreadConstraint> = pod
            .spread
            .iter()
            .filter(|c| c.mode == SpreadMode::ScheduleAnyway)
            .cloned()
            .collect();
        if constraints.is_empty() {
            state.spread_score = None;
            return;
        }
        let mut domains = vec![HashMap::new(); constraints.len()];
        let mut sizes = vec![HashSet::new(); constraints.len()];
        for &i in feasible {
            let node = &cache.nodes()[i];
            if !has_keys(&constraints, node) {
                continue;
            }
            for (j, c) in constraints.iter().enumerate() {
                if let Some(v) = node.labels().get(&c.topology_key) {
                    domains[j].insert(v.clone(), 0i64);
                    sizes[j].insert(v.clone());
                }
            }
        }
        let counts = count(&constraints, &pod, cache, Some(&domains));
        let weights = sizes.iter().map(|s| ((s.len() + 2) as f64).ln()).collect();
        state.spread_score = Some(ScoreState {
            constraints,
            counts,
            weights,
        });
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        let Some(s) = state.spread_score.as_ref() else {
            return 0;
        };
        if !has_keys(&s.constraints, node) {
            return IGNORED;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let value = node.labels().get(&c.topology_key);
            let cnt = value.and_then(|v| s.counts[i].get(v)).copied().unwrap_or(0);
            score += cnt as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, state: &CycleState, scores: &mut [i64]) {
        if state.spread_score.is_none() {
            return;
        }
        let valid = scores.iter().copied().filter(|&s| s != IGNORED);
        let (min, max) = valid.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = if *s == IGNORED {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_filter, run_score};

    fn zones() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            NodeBuilder::new("a1").label("zone", "a").build(),
            NodeBuilder::new("a2").label("zone", "a").build(),
            NodeBuilder::new("b1").label("zone", "b").build(),
            NodeBuilder::new("nolabel").build(),
        ]
    }

    fn web(name: &str, node: &str) -> k8s_openapi::api::core::v1::Pod {
        PodBuilder::new(name).label("app", "web").node(node).build()
    }

    #[test]
    fn do_not_schedule_limits_skew() {
        let placed = [web("w1", "a1"), web("w2", "a2")];
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread("zone", 1, "DoNotSchedule", &[("app", "web")])
            .build();
        let err = run_filter(&PodTopologySpread, &pod, &zones(), &placed, "a1").unwrap_err();
        assert_eq!(err.reasons, vec![NOT_MATCH]);
        assert!(run_filter(&PodTopologySpread, &pod, &zones(), &placed, "b1").is_ok());
        let err = run_filter(&PodTopologySpread, &pod, &zones(), &placed, "nolabel").unwrap_err();
        assert_eq!(err.reasons, vec![MISSING_LABEL]);
        assert!(!err.resolvable);
    }

    #[test]
    fn other_namespaces_and_terminating_pods_do_not_count() {
        let mut gone = web("w2", "a2");
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let placed = [
            PodBuilder::new("w1")
                .label("app", "web")
                .namespace("other")
                .node("a1")
                .build(),
            gone,
        ];
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread("zone", 1, "DoNotSchedule", &[("app", "web")])
            .build();
        assert!(run_filter(&PodTopologySpread, &pod, &zones(), &placed, "a1").is_ok());
    }

    #[test]
    fn node_selector_limits_the_domains_by_default() {
        // Only zone a qualifies, so zone b (empty) is no domain and a is the minimum.
        let placed = [web("w1", "a1")];
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .node_selector("zone", "a")
            .spread("zone", 1, "DoNotSchedule", &[("app", "web")])
            .build();
        assert!(run_filter(&PodTopologySpread, &pod, &zones(), &placed, "a2").is_ok());
    }

    #[test]
    fn schedule_anyway_scores_emptier_domains_higher() {
        let placed = [web("w1", "a1"), web("w2", "a2"), web("w3", "b1")];
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread("zone", 1, "ScheduleAnyway", &[("app", "web")])
            .build();
        let s = run_score(&PodTopologySpread, &pod, &zones(), &placed);
        assert_eq!(s["nolabel"], 0, "nodes without the key are ignored");
        assert!(s["b1"] > s["a1"], "{s:?}");
        assert_eq!(s["a1"], s["a2"]);
    }
}
