//! PodTopologySpread: `DoNotSchedule` constraints filter nodes whose domain
//! would exceed `maxSkew` over the least-loaded domain; `ScheduleAnyway`
//! constraints score nodes by how many matching pods their domains hold.
//! Matching pods are counted once per pod (in `pre_filter` / `pre_score`).
//!
//! A pod that declares no constraints is scored with Kubernetes' system
//! defaults (`defaultingType: System`): `ScheduleAnyway` over hostnames
//! (maxSkew 3) and zones (maxSkew 5), selecting what the Services and the
//! controller that own the pod select (`DefaultSelector`).

mod defaults;

use std::collections::{HashMap, HashSet};

pub use defaults::{default_selector, system_defaults};

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
    /// Whether nodes lacking one of the topology keys are left unscored: for
    /// the pod's own constraints, not for the system defaults (a node without
    /// a zone still spreads by hostname).
    require_all: bool,
}

const HOSTNAME: &str = "kubernetes.io/hostname";

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

/// Memoised tallies kept at most, least recently used dropped first.
const MAX_MEMOS: usize = 512;

/// The memoised tallies of one constraint apply when domain membership does
/// not depend on the incoming pod: no node selection or taints honoured.
fn memo_counts(c: &SpreadConstraint, pod: &PodInfo, cache: &Cache) -> Option<HashMap<String, i64>> {
    let pod_selects_nodes = !pod.node_selector.is_empty() || pod.required_node_affinity.is_some();
    if cache.simulating || c.honor_taints || (c.honor_node_affinity && pod_selects_nodes) {
        return None;
    }
    let key = format!("{}\0{}\0{}", pod.namespace, c.topology_key, c.selector);
    let mut memos = cache.spread_memo.try_borrow_mut().ok()?;
    if memos.len() >= MAX_MEMOS && !memos.contains_key(&key) {
        let oldest = memos
            .iter()
            .min_by_key(|(_, m)| m.seq)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            memos.remove(&k);
        }
    }
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
/// qualifying nodes appear even with no pods. With `require_all`, a node
/// counts only when it has every constraint's topology key.
fn count(
    constraints: &[SpreadConstraint],
    pod: &PodInfo,
    cache: &Cache,
    only: Option<&[HashMap<String, i64>]>,
    require_all: bool,
) -> Vec<HashMap<String, i64>> {
    // Constraints counted independently of each other can use the memos.
    let memos: Option<Vec<HashMap<String, i64>>> = (constraints.len() == 1 || !require_all)
        .then(|| {
            constraints
                .iter()
                .map(|c| memo_counts(c, pod, cache))
                .collect()
        })
        .flatten();
    if let Some(all) = memos {
        return match only {
            None => all,
            Some(domains) => domains
                .iter()
                .zip(&all)
                .map(|(wanted, all)| {
                    wanted
                        .keys()
                        .map(|d| (d.clone(), all.get(d).copied().unwrap_or(0)))
                        .collect()
                })
                .collect(),
        };
    }
    let mut counts: Vec<HashMap<String, i64>> = match only {
        Some(domains) => domains.to_vec(),
        None => vec![HashMap::new(); constraints.len()],
    };
    for node in cache.nodes() {
        if node.node.is_none() || (require_all && !has_keys(constraints, node)) {
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
        let counts = count(&constraints, &pod, cache, None, true);
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
        let (constraints, require_all) = if pod.spread.is_empty() {
            (system_defaults(&pod, cache), false)
        } else {
            let own = pod
                .spread
                .iter()
                .filter(|c| c.mode == SpreadMode::ScheduleAnyway)
                .cloned()
                .collect();
            (own, true)
        };
        if constraints.is_empty() {
            state.spread_score = None;
            return;
        }
        let mut domains = vec![HashMap::new(); constraints.len()];
        // Distinct values per topology; a node without the key adds "" (only
        // possible without `require_all`), as in Kubernetes.
        let mut values: Vec<HashSet<&str>> = vec![HashSet::new(); constraints.len()];
        let mut scored = 0usize;
        for &i in feasible {
            let node = &cache.nodes()[i];
            if require_all && !has_keys(&constraints, node) {
                continue;
            }
            scored += 1;
            for (j, c) in constraints.iter().enumerate() {
                let value = node.labels().get(&c.topology_key);
                if let Some(v) = value {
                    domains[j].insert(v.clone(), 0i64);
                }
                if c.topology_key != HOSTNAME {
                    values[j].insert(value.map_or("", String::as_str));
                }
            }
        }
        let counts = count(&constraints, &pod, cache, Some(&domains), require_all);
        let weights = constraints
            .iter()
            .zip(&values)
            .map(|(c, v)| {
                // Every scored node is its own hostname domain.
                let size = if c.topology_key == HOSTNAME {
                    scored
                } else {
                    v.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        state.spread_score = Some(ScoreState {
            constraints,
            counts,
            weights,
            require_all,
        });
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        let Some(s) = state.spread_score.as_ref() else {
            return 0;
        };
        if s.require_all && !has_keys(&s.constraints, node) {
            return IGNORED;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            // Without `require_all`, a missing key just adds nothing.
            let Some(value) = node.labels().get(&c.topology_key) else {
                continue;
            };
            let cnt = s.counts[i].get(value).copied().unwrap_or(0);
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
    use serde_json::json;

    use super::*;
    use crate::cache::ControllerSelector;
    use crate::selectors::Labels;
    use crate::testing::{NodeBuilder, PodBuilder, labels, run_filter, run_score};

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
            let c = count(&constraints, &pod, cache, None, true);
            cache.simulating = false;
            c
        };
        assert_eq!(
            count(&constraints, &pod, &cache, None, true),
            full(&mut cache)
        );
        for (i, n) in ["a2", "b1", "b1", "a1"].iter().enumerate() {
            let placed = crate::testing::info(&web(&format!("x{i}"), n));
            cache.assume(placed, n);
            assert_eq!(
                count(&constraints, &pod, &cache, None, true),
                full(&mut cache)
            );
        }
        cache.remove_pod("uid-x2");
        cache.remove_node("b1");
        assert_eq!(
            count(&constraints, &pod, &cache, None, true),
            full(&mut cache)
        );
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

    const ZONE: &str = "topology.kubernetes.io/zone";

    fn in_zone(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        NodeBuilder::new(name).label(ZONE, zone).build()
    }

    /// A replica of ReplicaSet `web-rs`, placed on `node` when not empty.
    fn replica(name: &str, node: &str) -> k8s_openapi::api::core::v1::Pod {
        let p = PodBuilder::new(name)
            .label("app", "web")
            .label("pod-template-hash", "abc")
            .owner("apps/v1", "ReplicaSet", "web-rs");
        if node.is_empty() { p } else { p.node(node) }.build()
    }

    fn add_replica_set(cache: &mut Cache, key: &str, hash: &str) {
        let req = json!({"key": "pod-template-hash", "operator": "In", "values": [hash]});
        cache.controllers.insert(
            (crate::pod::ControllerKind::ReplicaSet, key.to_string()),
            ControllerSelector::Requirements(vec![req]),
        );
    }

    #[test]
    fn default_selector_merges_matching_services_and_the_controller() {
        let mut cache = Cache::default();
        cache.set_service("default/web", Some(labels(&[("app", "web")])));
        cache.set_service("default/db", Some(labels(&[("app", "db")])));
        cache.set_service("default/all", Some(Labels::new()));
        cache.set_service("other/fe", Some(labels(&[("tier", "fe")])));
        add_replica_set(&mut cache, "default/web-rs", "abc");
        let pod = crate::testing::info(
            &PodBuilder::new("p")
                .label("app", "web")
                .label("tier", "fe")
                .label("pod-template-hash", "abc")
                .owner("apps/v1", "ReplicaSet", "web-rs")
                .build(),
        );
        let sel = default_selector(&pod, &cache);
        assert_eq!(sel.to_string(), "app=web,pod-template-hash in (abc)");
        let defaults = system_defaults(&pod, &cache);
        let got: Vec<_> = defaults
            .iter()
            .map(|c| (c.topology_key.as_str(), c.max_skew, c.mode))
            .collect();
        assert_eq!(
            got,
            vec![
                (HOSTNAME, 3, SpreadMode::ScheduleAnyway),
                (ZONE, 5, SpreadMode::ScheduleAnyway)
            ]
        );

        // A ReplicationController's map merges into the services' labels.
        cache.controllers.insert(
            (
                crate::pod::ControllerKind::ReplicationController,
                "default/rc".into(),
            ),
            ControllerSelector::Labels(labels(&[("rc", "1")])),
        );
        let pod = crate::testing::info(
            &PodBuilder::new("q")
                .label("app", "web")
                .owner("v1", "ReplicationController", "rc")
                .build(),
        );
        assert_eq!(default_selector(&pod, &cache).to_string(), "app=web,rc=1");
    }

    #[test]
    fn pods_nothing_selects_get_no_defaults() {
        let mut cache = Cache::default();
        cache.set_service("default/db", Some(labels(&[("app", "db")])));
        add_replica_set(&mut cache, "other/web-rs", "abc");
        // No matching service, and its ReplicaSet lives in another namespace.
        let pod = crate::testing::info(&replica("p", ""));
        assert!(system_defaults(&pod, &cache).is_empty());
        // Not a controller reference of a supported kind.
        let pod = crate::testing::info(
            &PodBuilder::new("q")
                .owner("apps/v1", "Deployment", "web-rs")
                .build(),
        );
        assert!(system_defaults(&pod, &cache).is_empty());
        let mut state = CycleState::new(pod);
        PodTopologySpread.pre_score(&mut state, &cache, &[]);
        assert!(state.spread_score.is_none());
    }

    #[test]
    fn pods_with_their_own_constraints_get_no_defaults() {
        let mut cache = crate::testing::cache_with(&zones(), &[web("w1", "a1")]);
        cache.set_service("default/web", Some(labels(&[("app", "web")])));
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread("zone", 1, "DoNotSchedule", &[("app", "web")])
            .build();
        let mut state = CycleState::new(crate::testing::info(&pod));
        PodTopologySpread.pre_score(&mut state, &cache, &[0, 1, 2]);
        assert!(state.spread_score.is_none());
        let s = crate::testing::score_in(&PodTopologySpread, &pod, &cache);
        assert!(s.values().all(|&v| v == 0), "{s:?}");
    }

    #[test]
    fn defaults_spread_replicas_over_hostnames_and_zones() {
        let nodes = [
            in_zone("a1", "a"),
            in_zone("a2", "a"),
            in_zone("b1", "b"),
            in_zone("b2", "b"),
        ];
        let placed = [
            replica("r1", "a1"),
            replica("r2", "a1"),
            replica("r3", "b1"),
            // Neither selected nor in the namespace: not counted.
            PodBuilder::new("x").label("app", "x").node("b2").build(),
            PodBuilder::new("y")
                .namespace("other")
                .label("app", "web")
                .label("pod-template-hash", "abc")
                .node("b2")
                .build(),
        ];
        let mut cache = crate::testing::cache_with(&nodes, &placed);
        add_replica_set(&mut cache, "default/web-rs", "abc");
        let s = crate::testing::score_in(&PodTopologySpread, &replica("p", ""), &cache);
        // Zone a holds 2, b holds 1; a1 holds 2, b1 one.
        assert_eq!(s["b2"], MAX_NODE_SCORE, "{s:?}");
        assert!(s["a2"] > s["a1"] && s["b1"] > s["a1"], "{s:?}");
        assert!(s["b2"] > s["a2"], "{s:?}");

        // The memoised tallies give what a full count gives.
        let pod = crate::testing::info(&replica("p", ""));
        let defaults = system_defaults(&pod, &cache);
        let memo = count(&defaults, &pod, &cache, None, false);
        cache.simulating = true;
        let full = count(&defaults, &pod, &cache, None, false);
        assert_eq!(memo, full);
        assert_eq!(full[1].get("a"), Some(&2));

        // A pod nothing selects ignores the replicas.
        let s = crate::testing::score_in(&PodTopologySpread, &web("q", ""), &cache);
        assert!(s.values().all(|&v| v == 0), "{s:?}");
    }

    #[test]
    fn defaults_still_score_nodes_without_a_zone() {
        let nodes = [
            in_zone("z1", "a"),
            NodeBuilder::new("plain1").build(),
            NodeBuilder::new("plain2").build(),
        ];
        let mut cache = crate::testing::cache_with(&nodes, &[replica("r1", "plain1")]);
        add_replica_set(&mut cache, "default/web-rs", "abc");
        let s = crate::testing::score_in(&PodTopologySpread, &replica("p", ""), &cache);
        // Hostname weight ln 5, zone weight ln 4 ("a" and the missing value):
        // z1 0+2 + 0+4 = 6; plain1 1.6+2 = 4; plain2 2.
        assert_eq!(
            (s["z1"], s["plain1"], s["plain2"]),
            (33, 66, MAX_NODE_SCORE),
            "{s:?}"
        );

        // The same constraints declared by the pod leave such nodes unscored.
        let own = PodBuilder::new("p")
            .label("app", "web")
            .spread(HOSTNAME, 3, "ScheduleAnyway", &[("app", "web")])
            .spread(ZONE, 5, "ScheduleAnyway", &[("app", "web")])
            .build();
        let s = crate::testing::score_in(&PodTopologySpread, &own, &cache);
        assert_eq!((s["plain1"], s["plain2"]), (0, 0), "{s:?}");
        assert_eq!(s["z1"], MAX_NODE_SCORE, "{s:?}");
    }

    #[test]
    fn memos_are_bounded() {
        let cache = crate::testing::cache_with(&zones(), &[]);
        for i in 0..MAX_MEMOS + 10 {
            let pod = crate::testing::info(
                &PodBuilder::new("p")
                    .label("app", &format!("a{i}"))
                    .spread("zone", 1, "DoNotSchedule", &[("app", &format!("a{i}"))])
                    .build(),
            );
            count(&pod.spread, &pod, &cache, None, true);
        }
        assert_eq!(cache.spread_memo.borrow().len(), MAX_MEMOS);
    }
}
