//! NodeResourcesBalancedAllocation: prefers nodes where CPU and memory would
//! be used in similar proportions after placing the pod.

use super::{CycleState, MAX_NODE_SCORE, ScorePlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;

pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        let pod = &state.pod.requests;
        let req = &node.requested;
        let alloc = &node.summary.allocatable;
        let mut fractions = [0.0f64; 2];
        let mut n = 0;
        for (r, a) in [
            (req.milli_cpu + pod.milli_cpu, alloc.milli_cpu),
            (req.memory + pod.memory, alloc.memory),
        ] {
            if a > 0 {
                fractions[n] = (r as f64 / a as f64).min(1.0);
                n += 1;
            }
        }
        if n == 0 {
            return 0;
        }
        let used = &fractions[..n];
        let mean = used.iter().sum::<f64>() / n as f64;
        let var = used.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / n as f64;
        ((1.0 - var.sqrt()) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_score};

    #[test]
    fn balanced_use_scores_higher() {
        let nodes = [
            NodeBuilder::new("cpu-heavy").cpu("4").memory("4Gi").build(),
            NodeBuilder::new("even").cpu("4").memory("4Gi").build(),
        ];
        let placed = [
            PodBuilder::new("a").cpu("3").node("cpu-heavy").build(),
            PodBuilder::new("b")
                .cpu("1")
                .memory("1Gi")
                .node("even")
                .build(),
        ];
        let pod = PodBuilder::new("p").cpu("1").memory("1Gi").build();
        let s = run_score(&BalancedAllocation, &pod, &nodes, &placed);
        // cpu-heavy: cpu 1.0, mem 0.25 → std 0.375 → 62; even: 0.5 and 0.5 → 100.
        assert_eq!((s["cpu-heavy"], s["even"]), (62, 100));
    }
}
