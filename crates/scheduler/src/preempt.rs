//! Preemption: when a pod fits nowhere, find the node where evicting the
//! fewest, least important lower-priority pods makes it fit, preferring
//! evictions that no PodDisruptionBudget forbids (Kubernetes' DefaultPreemption).
//!
//! Victims are chosen by simulation on the real cache: remove every
//! lower-priority pod from the node, check the pod fits, then add pods back,
//! most important first, keeping each one that still leaves room. The cache is
//! restored before returning.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::Cache;
use crate::framework::{CycleState, Framework};
use crate::pod::PodInfo;
use crate::schedule::FitError;

/// Where the pod will go once its victims are gone.
#[derive(Debug, Clone)]
pub struct Preemption {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    pub budget_violations: usize,
}

/// How many candidate nodes to simulate at most: 10% of nodes, at least 100
/// (kube-scheduler's `minCandidateNodesPercentage` / `minCandidateNodesAbsolute`).
fn max_candidates(num_nodes: usize) -> usize {
    (num_nodes / 10).max(100)
}

/// Whether preemption is worth trying for `pod` at all.
pub fn eligible(cache: &Cache, pod: &PodInfo) -> bool {
    if pod.preempt_never {
        return false;
    }
    // Victims of an earlier preemption are still terminating on the
    // nominated node: wait for them rather than evicting more.
    cache.node(&pod.nominated_node_name).is_none_or(|n| {
        !n.pods
            .iter()
            .any(|p| p.terminating && p.priority < pod.priority)
    })
}

/// What a preemption attempt decided.
#[derive(Debug)]
pub enum Outcome {
    /// Preemption was not tried (the pod never preempts, or its earlier victims
    /// are still terminating): any nomination the pod has stands.
    NotTried,
    /// No node can make room: a nomination the pod has is void, and, as
    /// Kubernetes does, it is cleared.
    NoRoom,
    /// Evict these victims; the pod is nominated to their node.
    Preempt(Preemption),
}

pub fn preempt(
    framework: &Framework,
    cache: &mut Cache,
    pod: &Arc<PodInfo>,
    fit: &FitError,
) -> Outcome {
    if !eligible(cache, pod) {
        return Outcome::NotTried;
    }
    if fit.pre_filter.is_some() {
        // A pre-filter rejection holds on every node: no eviction helps.
        return Outcome::NoRoom;
    }
    let candidates: Vec<String> = fit
        .failures
        .iter()
        .filter(|(_, f)| f.resolvable)
        .filter_map(|(i, _)| cache.nodes().get(*i).map(|n| n.name.clone()))
        .collect();
    let limit = max_candidates(cache.num_nodes());
    let mut best: Option<((usize, i32, i64, usize), Preemption)> = None;
    let mut found = 0;
    for name in candidates {
        let Some(p) = select_victims(framework, cache, pod, &name) else {
            continue;
        };
        found += 1;
        let key = (
            p.budget_violations,
            p.victims
                .iter()
                .map(|v| v.priority)
                .max()
                .unwrap_or(i32::MIN),
            // Offset so negative priorities still add up to less.
            p.victims
                .iter()
                .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
                .sum(),
            p.victims.len(),
        );
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, p));
        }
        if found >= limit {
            break;
        }
    }
    best.map_or(Outcome::NoRoom, |(_, p)| Outcome::Preempt(p))
}

fn fits(framework: &Framework, cache: &Cache, pod: &Arc<PodInfo>, node: usize) -> bool {
    let mut state = CycleState::new(pod.clone());
    framework.pre_filter(&mut state, cache).is_ok()
        && framework
            .filter(&state, cache, &cache.nodes()[node])
            .is_ok()
}

/// More important first: higher priority, then the older pod.
fn by_importance(a: &Arc<PodInfo>, b: &Arc<PodInfo>) -> std::cmp::Ordering {
    b.priority.cmp(&a.priority).then(a.created.cmp(&b.created))
}

/// Splits `pods` (most important first) into those whose eviction would
/// exceed a budget's allowed disruptions and those it would not.
fn split_by_budget(
    cache: &Cache,
    pods: Vec<Arc<PodInfo>>,
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: HashMap<&str, i64> = cache
        .budgets
        .iter()
        .map(|(k, b)| (k.as_str(), b.disruptions_allowed))
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for p in pods {
        let mut violates = false;
        for (key, b) in &cache.budgets {
            if b.namespace != p.namespace
                || b.selector.is_empty()
                || !b.selector.matches_map(&p.labels)
            {
                continue;
            }
            if let Some(left) = allowed.get_mut(key.as_str()) {
                *left -= 1;
                violates |= *left < 0;
            }
        }
        if violates {
            violating.push(p)
        } else {
            fine.push(p)
        }
    }
    (violating, fine)
}

fn select_victims(
    framework: &Framework,
    cache: &mut Cache,
    pod: &Arc<PodInfo>,
    node_name: &str,
) -> Option<Preemption> {
    let idx = cache.node_index(node_name)?;
    let mut lower: Vec<Arc<PodInfo>> = cache.nodes()[idx]
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    lower.sort_by(by_importance);
    cache.simulating = true;
    let result = simulate(framework, cache, pod, idx, lower);
    cache.simulating = false;
    result.map(|(victims, budget_violations)| Preemption {
        node: node_name.to_string(),
        victims,
        budget_violations,
    })
}

fn simulate(
    framework: &Framework,
    cache: &mut Cache,
    pod: &Arc<PodInfo>,
    idx: usize,
    lower: Vec<Arc<PodInfo>>,
) -> Option<(Vec<Arc<PodInfo>>, usize)> {
    let node = cache.node_mut(idx)?;
    for p in &lower {
        node.remove_pod(&p.uid);
    }
    let restore = |cache: &mut Cache, pods: &[Arc<PodInfo>]| {
        if let Some(node) = cache.node_mut(idx) {
            for p in pods {
                node.add_pod(p.clone());
            }
        }
    };
    if !fits(framework, cache, pod, idx) {
        restore(cache, &lower);
        return None;
    }
    let (violating, fine) = split_by_budget(cache, lower);
    let mut victims = Vec::new();
    let mut budget_violations = 0;
    for (p, violates) in violating
        .into_iter()
        .map(|p| (p, true))
        .chain(fine.into_iter().map(|p| (p, false)))
    {
        if let Some(node) = cache.node_mut(idx) {
            node.add_pod(p.clone());
        }
        if !fits(framework, cache, pod, idx) {
            if let Some(node) = cache.node_mut(idx) {
                node.remove_pod(&p.uid);
            }
            budget_violations += usize::from(violates);
            victims.push(p);
        }
    }
    restore(cache, &victims);
    Some((victims, budget_violations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::BudgetInfo;
    use crate::schedule::Scheduler;
    use crate::testing::{NodeBuilder, PodBuilder, cache_with, info};
    use apimachinery::selectors::LabelSelector;

    fn outcome(cache: &mut Cache, pod: &Arc<PodInfo>) -> Outcome {
        let mut s = Scheduler::new(Framework::default(), 0);
        let fit = s.schedule(cache, pod).expect_err("does not fit");
        preempt(&s.framework, cache, pod, &fit)
    }

    fn run(cache: &mut Cache, pod: &Arc<PodInfo>) -> Option<Preemption> {
        match outcome(cache, pod) {
            Outcome::Preempt(p) => Some(p),
            Outcome::NoRoom | Outcome::NotTried => None,
        }
    }

    fn high(cpu: &str) -> Arc<PodInfo> {
        info(&PodBuilder::new("high").cpu(cpu).priority(1000).build())
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        let nodes = [
            NodeBuilder::new("a").cpu("4").build(),
            NodeBuilder::new("b").cpu("4").build(),
        ];
        let pods = [
            PodBuilder::new("a1")
                .cpu("2")
                .priority(10)
                .node("a")
                .build(),
            PodBuilder::new("a2")
                .cpu("2")
                .priority(20)
                .node("a")
                .build(),
            PodBuilder::new("b1").cpu("1").priority(5).node("b").build(),
            PodBuilder::new("b2").cpu("1").priority(5).node("b").build(),
            PodBuilder::new("b3").cpu("1").priority(5).node("b").build(),
            PodBuilder::new("b4").cpu("1").priority(5).node("b").build(),
        ];
        let mut cache = cache_with(&nodes, &pods);
        let p = run(&mut cache, &high("2")).expect("preempts");
        // Node a: one victim of priority 10 (a1). Node b: two victims of priority 5.
        // Lower highest-victim priority wins first: b.
        assert_eq!(p.node, "b");
        assert_eq!(p.victims.len(), 2);
        assert_eq!(
            cache.node("b").map(|n| n.pods.len()),
            Some(4),
            "cache restored"
        );
        assert_eq!(cache.node("b").map(|n| n.requested.milli_cpu), Some(4000));
    }

    #[test]
    fn higher_or_equal_priority_pods_are_never_victims() {
        let nodes = [NodeBuilder::new("a").cpu("2").build()];
        let pods = [PodBuilder::new("peer")
            .cpu("2")
            .priority(1000)
            .node("a")
            .build()];
        let mut cache = cache_with(&nodes, &pods);
        assert!(matches!(outcome(&mut cache, &high("1")), Outcome::NoRoom));
    }

    #[test]
    fn unresolvable_failures_are_not_preempted() {
        let nodes = [NodeBuilder::new("a")
            .cpu("2")
            .taint("k", "v", "NoSchedule")
            .build()];
        let pods = [PodBuilder::new("low").cpu("2").node("a").build()];
        let mut cache = cache_with(&nodes, &pods);
        assert!(matches!(outcome(&mut cache, &high("1")), Outcome::NoRoom));
    }

    #[test]
    fn budgets_are_respected_where_possible() {
        let nodes = [
            NodeBuilder::new("a").cpu("2").build(),
            NodeBuilder::new("b").cpu("2").build(),
        ];
        let pods = [
            PodBuilder::new("guarded")
                .cpu("2")
                .label("app", "db")
                .node("a")
                .build(),
            PodBuilder::new("free")
                .cpu("2")
                .label("app", "batch")
                .node("b")
                .build(),
        ];
        let mut cache = cache_with(&nodes, &pods);
        let sel = LabelSelector::parse("app=db").expect("selector");
        cache.budgets.insert(
            "default/db".into(),
            BudgetInfo {
                namespace: "default".into(),
                selector: sel,
                disruptions_allowed: 0,
            },
        );
        let p = run(&mut cache, &high("1")).expect("preempts");
        assert_eq!(p.node, "b");
        assert_eq!(p.budget_violations, 0);
    }

    #[test]
    fn preempt_never_pods_do_not_preempt() {
        let nodes = [NodeBuilder::new("a").cpu("1").build()];
        let pods = [PodBuilder::new("low").cpu("1").node("a").build()];
        let mut cache = cache_with(&nodes, &pods);
        let mut pod = (*high("1")).clone();
        pod.preempt_never = true;
        assert!(matches!(
            outcome(&mut cache, &Arc::new(pod)),
            Outcome::NotTried
        ));
    }

    #[test]
    fn waiting_for_earlier_victims_is_not_a_new_try() {
        let nodes = [NodeBuilder::new("a").cpu("2").build()];
        let pods = [
            PodBuilder::new("other")
                .cpu("1")
                .priority(2000)
                .node("a")
                .build(),
            PodBuilder::new("victim")
                .cpu("1")
                .node("a")
                .terminating()
                .build(),
        ];
        let mut cache = cache_with(&nodes, &pods);
        let mut pod = (*high("2")).clone();
        pod.nominated_node_name = "a".into();
        assert!(matches!(
            outcome(&mut cache, &Arc::new(pod)),
            Outcome::NotTried
        ));
    }
}
