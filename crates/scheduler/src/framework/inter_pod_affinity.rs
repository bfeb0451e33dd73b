//! InterPodAffinity: required pod affinity and anti-affinity (the incoming
//! pod's, and existing pods' anti-affinity against it) filter by topology
//! domain; preferred terms of both sides score. Matching pods are counted once
//! per pod into per-domain tallies, so each node costs a few map lookups.

use std::collections::HashMap;

use super::{CycleState, Failure, FilterPlugin, MAX_NODE_SCORE, ScorePlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::pod::PodInfo;
use crate::selectors::{AffinityTerm, Labels};

pub struct InterPodAffinity;

/// topology key → domain value → tally.
type Tallies = HashMap<String, HashMap<String, i64>>;

/// Weight of an existing pod's *required* affinity term when scoring the
/// incoming pod (kube-scheduler's `hardPodAffinityWeight`).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

pub struct FilterState {
    /// Existing pods whose required anti-affinity selects the incoming pod.
    existing_anti: Tallies,
    /// Existing pods matching all of the incoming pod's required affinity terms.
    affinity: Tallies,
    /// Existing pods matching one of the incoming pod's anti-affinity terms.
    anti: Tallies,
}

pub struct ScoreState {
    tallies: Tallies,
}

fn add(t: &mut Tallies, key: &str, node: &NodeInfo, n: i64) {
    if let Some(v) = node.labels().get(key) {
        *t.entry(key.to_string())
            .or_default()
            .entry(v.clone())
            .or_default() += n;
    }
}

fn get(t: &Tallies, key: &str, labels: &Labels) -> i64 {
    labels
        .get(key)
        .and_then(|v| t.get(key)?.get(v))
        .copied()
        .unwrap_or(0)
}

fn selects(term: &AffinityTerm, pod: &PodInfo, cache: &Cache) -> bool {
    term.matches(&pod.namespace, &pod.labels, &|ns| {
        cache.namespace_labels(ns)
    })
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(&self, state: &mut CycleState, cache: &Cache) -> Result<(), Failure> {
        let pod = state.pod.clone();
        let own_terms = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        if !own_terms && !cache.any_pod_affinity() {
            state.affinity = None;
            return Ok(());
        }
        let mut s = FilterState {
            existing_anti: Tallies::new(),
            affinity: Tallies::new(),
            anti: Tallies::new(),
        };
        for node in cache.nodes() {
            if node.node.is_none() || (!own_terms && node.pods_with_required_anti_affinity == 0) {
                continue;
            }
            for p in &node.pods {
                for term in &p.required_anti_affinity {
                    if selects(term, &pod, cache) {
                        add(&mut s.existing_anti, &term.topology_key, node, 1);
                    }
                }
                if !own_terms {
                    continue;
                }
                if !pod.required_affinity.is_empty()
                    && pod.required_affinity.iter().all(|t| selects(t, p, cache))
                {
                    for term in &pod.required_affinity {
                        add(&mut s.affinity, &term.topology_key, node, 1);
                    }
                }
                for term in &pod.required_anti_affinity {
                    if selects(term, p, cache) {
                        add(&mut s.anti, &term.topology_key, node, 1);
                    }
                }
            }
        }
        let empty = s.existing_anti.is_empty() && s.affinity.is_empty() && s.anti.is_empty();
        state.affinity = (!empty || own_terms).then_some(s);
        Ok(())
    }

    fn filter(&self, state: &CycleState, cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        let Some(s) = state.affinity.as_ref() else {
            return Ok(());
        };
        let labels = node.labels();
        let pod = &state.pod;
        if s.existing_anti
            .keys()
            .any(|k| get(&s.existing_anti, k, labels) > 0)
        {
            return Err(Failure::resolvable(
                "node(s) didn't satisfy existing pods anti-affinity rules",
            ));
        }
        if !pod.required_affinity.is_empty() {
            let mut pods_exist = true;
            for term in &pod.required_affinity {
                if !labels.contains_key(&term.topology_key) {
                    return Err(Failure::unresolvable(
                        "node(s) didn't match pod affinity rules",
                    ));
                }
                if get(&s.affinity, &term.topology_key, labels) <= 0 {
                    pods_exist = false;
                }
            }
            // The first pod of a group that selects itself may go anywhere,
            // or no group could ever start.
            let first_of_group = s.affinity.is_empty()
                && pod.required_affinity.iter().all(|t| selects(t, pod, cache));
            if !pods_exist && !first_of_group {
                return Err(Failure::unresolvable(
                    "node(s) didn't match pod affinity rules",
                ));
            }
        }
        for term in &pod.required_anti_affinity {
            if get(&s.anti, &term.topology_key, labels) > 0 {
                return Err(Failure::resolvable(
                    "node(s) didn't match pod anti-affinity rules",
                ));
            }
        }
        Ok(())
    }
}

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, state: &mut CycleState, cache: &Cache, _feasible: &[usize]) {
        let pod = state.pod.clone();
        let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !own && !cache.any_pod_affinity() {
            state.affinity_score = None;
            return;
        }
        let mut tallies = Tallies::new();
        for node in cache.nodes() {
            if node.node.is_none() || (!own && node.pods_with_affinity == 0) {
                continue;
            }
            for p in &node.pods {
                for (w, term) in &pod.preferred_affinity {
                    if selects(term, p, cache) {
                        add(&mut tallies, &term.topology_key, node, *w);
                    }
                }
                for (w, term) in &pod.preferred_anti_affinity {
                    if selects(term, p, cache) {
                        add(&mut tallies, &term.topology_key, node, -*w);
                    }
                }
                if !p.has_affinity() {
                    continue;
                }
                for term in &p.required_affinity {
                    if selects(term, &pod, cache) {
                        add(
                            &mut tallies,
                            &term.topology_key,
                            node,
                            HARD_POD_AFFINITY_WEIGHT,
                        );
                    }
                }
                for (w, term) in &p.preferred_affinity {
                    if selects(term, &pod, cache) {
                        add(&mut tallies, &term.topology_key, node, *w);
                    }
                }
                for (w, term) in &p.preferred_anti_affinity {
                    if selects(term, &pod, cache) {
                        add(&mut tallies, &term.topology_key, node, -*w);
                    }
                }
            }
        }
        state.affinity_score = (!tallies.is_empty()).then_some(ScoreState { tallies });
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        let Some(s) = state.affinity_score.as_ref() else {
            return 0;
        };
        s.tallies
            .keys()
            .map(|k| get(&s.tallies, k, node.labels()))
            .sum()
    }

    fn normalize(&self, state: &CycleState, scores: &mut [i64]) {
        if state.affinity_score.is_none() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if max > min {
                MAX_NODE_SCORE * (*s - min) / (max - min)
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests;
