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
    /// 1 where the constraint's selector matches the incoming pod itself.
    self_match: Vec<i64>,
    /// For constraints on a well-known topology key: its slot in
    /// `NodeSummary::topology` and the counts indexed by interned value.
    by_id: Vec<Option<(usize, Vec<i64>)>>,
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

/// Matching pods per domain for one selector, kept up to date from the
/// cache's change log rather than recounted every cycle.
#[derive(Debug, Default)]
pub struct Memo {
    seq: u64,
    /// Domain → (nodes in it, matching pods on them).
    domains: HashMap<String, (i64, i64)>,
    /// Node → its domain and matching pods, as last counted.
    nodes: HashMap<String, (String, i64)>,
}

impl Memo {
    fn recount(&mut self, c: &SpreadConstraint, namespace: &str, node: &str, cache: &Cache) {
        if let Some((domain, pods)) = self.nodes.remove(node)
            && let Some(d) = self.domains.get_mut(&domain)
        {
            d.0 -= 1;
            d.1 -= pods;
            if d.0 <= 0 {
                self.domains.remove(&domain);
            }
        }
        let Some(info) = cache.node(node).filter(|n| n.node.is_some()) else {
            return;
        };
        let Some(domain) = info.labels().get(&c.topology_key) else {
            return;
        };
        let pods = matching_pods(c, namespace, info);
        let d = self.domains.entry(domain.clone()).or_default();
        d.0 += 1;
        d.1 += pods;
        self.nodes.insert(node.to_string(), (domain.clone(), pods));
    }
}

/// The memoised tallies apply when domain membership does not depend on the
/// incoming pod: one constraint, and no node selection or taints honoured.
fn memo_counts(
    constraints: &[SpreadConstraint],
    pod: &PodInfo,
    cache: &Cache,
) -> Option<HashMap<String, i64>> {
    let [c] = constraints else {
        return None;
    };
    let pod_selects_nodes = !pod.node_selector.is_empty() || pod.required_node_affinity.is_some();
    if cache.simulating || c.honor_taints || (c.honor_node_affinity && pod_selects_nodes) {
        return None;
    }
    let key = format!("{}\0{}\0{}", pod.namespace, c.topology_key, c.selector);
    let mut memos = cache.spread_memo.try_borrow_mut().ok()?;
    let memo = memos.entry(key).or_default();
    let changed: Option<Vec<String>> = cache
        .changes_since(memo.seq)
        .map(|it| it.map(str::to_string).collect());
    match changed {
        Some(nodes) if memo.seq > 0 => {
            for n in nodes {
                memo.recount(c, &pod.namespace, &n, cache);
            }
        }
        _ => {
            *memo = Memo::default();
            for n in cache.nodes() {
                memo.recount(c, &pod.namespace, &n.name, cache);
            }
        }
    }
    memo.seq = cache.change_seq();
    Some(
        memo.domains
            .iter()
            .map(|(d, (_, pods))| (d.clone(), *pods))
            .collect(),
    )
}

/// Counts matching pods per domain over every node that qualifies; domains of
/// qualifying nodes appear even with no pods.
fn count(
    constraints: &[SpreadConstraint],
    pod: &PodInfo,
    cache: &Cache,
    only: Option<&[HashMap<String, i64>]>,
) -> Vec<HashMap<String, i64>> {
    if let Some(all) = memo_counts(constraints, pod, cache) {
        return match only {
            None => vec![all],
            Some(domains) => vec![
                domains[0]
                    .keys()
                    .map(|d| (d.clone(), all.get(d).copied().unwrap_or(0)))
                    .collect(),
            ],
        };
    }
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
        let self_match = constraints
            .iter()
            .map(|c| i64::from(c.selector.matches_map(&pod.labels)))
            .collect();
        let by_id = constraints
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                let slot = Cache::TOPOLOGY_KEYS
                    .iter()
                    .position(|k| *k == c.topology_key)?;
                let mut v = vec![0i64; cache.num_interned()];
                for (value, n) in domains {
                    if let Some(id) = cache.interned(value)
                        && let Some(cell) = v.get_mut(id as usize)
                    {
                        *cell = *n;
                    }
                }
                Some((slot, v))
            })
            .collect();
        state.spread = Some(FilterState {
            constraints,
            counts,
            min,
            self_match,
            by_id,
        });
        Ok(())
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        let Some(s) = state.spread.as_ref() else {
            return Ok(());
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let matched = match &s.by_id[i] {
                // Interned: no label lookup behind the node's pointer.
                Some((slot, counts)) => {
                    let Some(id) = node.summary.topology[*slot] else {
                        return Err(Failure::unresolvable(MISSING_LABEL));
                    };
                    counts.get(id as usize).copied().unwrap_or(0)
                }
                None => {
                    let Some(value) = node.labels().get(&c.topology_key) else {
                        return Err(Failure::unresolvable(MISSING_LABEL));
                    };
                    s.counts[i].get(value).copied().unwrap_or(0)
                }
            };
            if matched + s.self_match[i] - s.min[i] > c.max_skew {
                return Err(Failure::resolvable(NOT_MATCH));
            }
        }
        Ok(())
    }

    /// An array lookup per node that rejects most nodes under a tight `maxSkew`.
    fn early(&self) -> bool {
        true
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
        assert_eq!(err.reason_list(), vec![NOT_MATCH]);
        assert!(run_filter(&PodTopologySpread, &pod, &zones(), &placed, "b1").is_ok());
        let err = run_filter(&PodTopologySpread, &pod, &zones(), &placed, "nolabel").unwrap_err();
        assert_eq!(err.reason_list(), vec![MISSING_LABEL]);
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

    #[test]
    fn incremental_tallies_match_a_full_count() {
        let mut cache = crate::testing::cache_with(&zones(), &[web("w1", "a1")]);
        let pod = crate::testing::info(
            &PodBuilder::new("p")
                .label("app", "web")
                .spread("zone", 1, "DoNotSchedule", &[("app", "web")])
                .build(),
        );
        let constraints = pod.spread.clone();
        let full = |cache: &mut Cache| {
            cache.simulating = true;
            let c = count(&constraints, &pod, cache, None);
            cache.simulating = false;
            c
        };
        assert_eq!(count(&constraints, &pod, &cache, None), full(&mut cache));
        for (i, n) in ["a2", "b1", "b1", "a1"].iter().enumerate() {
            let placed = crate::testing::info(&web(&format!("x{i}"), n));
            cache.assume(placed, n);
            assert_eq!(count(&constraints, &pod, &cache, None), full(&mut cache));
        }
        cache.remove_pod("uid-x2");
        cache.remove_node("b1");
        assert_eq!(count(&constraints, &pod, &cache, None), full(&mut cache));
    }

    #[test]
    fn well_known_keys_use_interned_domains() {
        let key = "topology.kubernetes.io/zone";
        let nodes = [
            NodeBuilder::new("a1").label(key, "a").build(),
            NodeBuilder::new("b1").label(key, "b").build(),
            NodeBuilder::new("nolabel").build(),
        ];
        let placed = [web("w1", "a1")];
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread(key, 1, "DoNotSchedule", &[("app", "web")])
            .build();
        let err = run_filter(&PodTopologySpread, &pod, &nodes, &placed, "a1").unwrap_err();
        assert_eq!(err.reason_list(), vec![NOT_MATCH]);
        assert!(run_filter(&PodTopologySpread, &pod, &nodes, &placed, "b1").is_ok());
        let err = run_filter(&PodTopologySpread, &pod, &nodes, &placed, "nolabel").unwrap_err();
        assert_eq!(err.reason_list(), vec![MISSING_LABEL]);
    }
}
