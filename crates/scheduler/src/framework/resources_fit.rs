//! NodeResourcesFit: requests of the pod plus everything placed (or assumed,
//! or nominated by preemption) must fit the node's allocatable; the score
//! prefers the least allocated node (LeastAllocated, cpu and memory weighted 1:1).

use super::{CycleState, Failure, FilterPlugin, MAX_NODE_SCORE, ScorePlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::resources::Resources;

pub struct NodeResourcesFit;

/// Which requests do not fit; empty when all do.
pub fn insufficient(
    pod_req: &Resources,
    requested: &Resources,
    num_pods: usize,
    node: &NodeInfo,
) -> Vec<super::Reason> {
    let mut reasons: Vec<super::Reason> = Vec::new();
    if node.node.is_none() {
        return reasons;
    }
    let alloc = &node.summary.allocatable;
    if i64::try_from(num_pods).unwrap_or(i64::MAX) + 1 > node.summary.allowed_pods {
        reasons.push("Too many pods".into());
    }
    if pod_req.milli_cpu > 0 && pod_req.milli_cpu > alloc.milli_cpu - requested.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if pod_req.memory > 0 && pod_req.memory > alloc.memory - requested.memory {
        reasons.push("Insufficient memory".into());
    }
    if pod_req.ephemeral_storage > 0
        && pod_req.ephemeral_storage > alloc.ephemeral_storage - requested.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, want) in &pod_req.scalar {
        if *want > 0 && *want > alloc.scalar(name) - requested.scalar(name) {
            reasons.push(format!("Insufficient {name}").into());
        }
    }
    reasons
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, state: &CycleState, cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        let pod = &state.pod;
        let reasons = if cache.nominated.is_empty() {
            insufficient(&pod.requests, &node.requested, node.pods.len(), node)
        } else {
            let mut requested = node.requested.clone();
            let mut count = node.pods.len();
            for p in cache.nominated_for(&node.name, pod) {
                requested.add(&p.requests);
                count += 1;
            }
            insufficient(&pod.requests, &requested, count, node)
        };
        let mut reasons = reasons.into_iter();
        let Some(first) = reasons.next() else {
            return Ok(());
        };
        Err(Failure {
            reason: first,
            more: reasons.collect(),
            resolvable: true,
        })
    }
}

/// `(allocatable - requested) * 100 / allocatable`, 0 when over.
fn least_allocated(requested: i64, allocatable: i64) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    (allocatable - requested) * MAX_NODE_SCORE / allocatable
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        let pod = &state.pod.non_zero;
        let req = &node.non_zero_requested;
        let alloc = &node.summary.allocatable;
        let cpu = least_allocated(req.milli_cpu + pod.milli_cpu, alloc.milli_cpu);
        let mem = least_allocated(req.memory + pod.memory, alloc.memory);
        (cpu + mem) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_filter, run_score};

    #[test]
    fn requests_of_placed_pods_count() {
        let nodes = [NodeBuilder::new("n").cpu("2").memory("1Gi").build()];
        let placed = PodBuilder::new("a").cpu("1500m").node("n").build();
        let pod = PodBuilder::new("p").cpu("1").memory("2Gi").build();
        let err = run_filter(&NodeResourcesFit, &pod, &nodes, &[placed], "n").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["Insufficient cpu", "Insufficient memory"]
        );
        assert!(err.resolvable);
        let small = PodBuilder::new("p").cpu("500m").build();
        let placed = PodBuilder::new("a").cpu("1500m").node("n").build();
        assert!(run_filter(&NodeResourcesFit, &small, &nodes, &[placed], "n").is_ok());
    }

    #[test]
    fn pod_count_and_pods_without_requests() {
        let nodes = [NodeBuilder::new("n").pods("1").build()];
        let placed = PodBuilder::new("a").node("n").build();
        let pod = PodBuilder::new("p").build();
        let err = run_filter(&NodeResourcesFit, &pod, &nodes, &[placed], "n").unwrap_err();
        assert_eq!(err.reason_list(), vec!["Too many pods"]);
    }

    #[test]
    fn nominated_pods_reserve_their_room() {
        let nodes = [NodeBuilder::new("n").cpu("2").build()];
        let mut cache = crate::testing::cache_with(&nodes, &[]);
        let mut high = PodInfo::from_pod(&PodBuilder::new("high").cpu("2").build());
        high.priority = 100;
        cache.set_nominated(&std::sync::Arc::new(high), Some("n"));
        let low = crate::testing::info(&PodBuilder::new("low").cpu("1").build());
        let state = CycleState::new(low);
        let node = cache.node("n").expect("node");
        assert!(NodeResourcesFit.filter(&state, &cache, node).is_err());
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let nodes = [
            NodeBuilder::new("empty").cpu("4").memory("4Gi").build(),
            NodeBuilder::new("half").cpu("4").memory("4Gi").build(),
        ];
        let placed = PodBuilder::new("a")
            .cpu("2")
            .memory("2Gi")
            .node("half")
            .build();
        let pod = PodBuilder::new("p").cpu("1").memory("1Gi").build();
        let s = run_score(&NodeResourcesFit, &pod, &nodes, &[placed]);
        assert_eq!((s["empty"], s["half"]), (75, 25));
    }

    use crate::pod::PodInfo;
}
