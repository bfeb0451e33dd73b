//! TaintToleration: NoSchedule and NoExecute taints must be tolerated; each
//! untolerated PreferNoSchedule taint lowers the node's score.

use super::{CycleState, Failure, FilterPlugin, ScorePlugin, default_normalize};
use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::selectors::{tolerates, untolerated};

pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        if !node.summary.has_taints {
            return Ok(());
        }
        let Some(spec) = node.spec() else {
            return Ok(());
        };
        match untolerated(
            &spec.taints,
            &state.pod.tolerations,
            &["NoSchedule", "NoExecute"],
        ) {
            None => Ok(()),
            Some(t) => Err(Failure::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            ))),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn weight(&self) -> i64 {
        3
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        if !node.summary.has_taints {
            return 0;
        }
        let Some(spec) = node.spec() else {
            return 0;
        };
        if spec.taints.is_empty() {
            return 0;
        }
        let prefer = |t: &&k8s_openapi::api::core::v1::Toleration| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        };
        let count = spec
            .taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| {
                !state
                    .pod
                    .tolerations
                    .iter()
                    .filter(prefer)
                    .any(|tol| tolerates(tol, t))
            })
            .count();
        i64::try_from(count).unwrap_or(i64::MAX)
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_filter, run_score};

    #[test]
    fn untolerated_taints_reject_with_kubernetes_wording() {
        let node = NodeBuilder::new("n")
            .taint("dedicated", "gpu", "NoSchedule")
            .build();
        let pod = PodBuilder::new("p").build();
        let err = run_filter(
            &TaintToleration,
            &pod,
            std::slice::from_ref(&node),
            &[],
            "n",
        )
        .unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) had untolerated taint {dedicated: gpu}"]
        );
        assert!(!err.resolvable);
        let ok = PodBuilder::new("p")
            .toleration("dedicated", "Equal", "gpu", "NoSchedule")
            .build();
        assert!(run_filter(&TaintToleration, &ok, &[node], &[], "n").is_ok());
    }

    #[test]
    fn no_execute_counts_and_prefer_no_schedule_does_not() {
        let node = NodeBuilder::new("n")
            .taint("evict", "", "NoExecute")
            .build();
        let pod = PodBuilder::new("p").build();
        let err = run_filter(&TaintToleration, &pod, &[node], &[], "n").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) had untolerated taint {evict: }"]
        );
        let soft = NodeBuilder::new("n")
            .taint("soft", "x", "PreferNoSchedule")
            .build();
        assert!(run_filter(&TaintToleration, &pod, &[soft], &[], "n").is_ok());
    }

    #[test]
    fn not_ready_nodes_carry_the_not_ready_taint() {
        let node = NodeBuilder::new("n").ready("False").build();
        let pod = PodBuilder::new("p").build();
        let err = run_filter(
            &TaintToleration,
            &pod,
            std::slice::from_ref(&node),
            &[],
            "n",
        )
        .unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
        );
        let tolerant = PodBuilder::new("p")
            .toleration("node.kubernetes.io/not-ready", "Exists", "", "")
            .build();
        assert!(run_filter(&TaintToleration, &tolerant, &[node], &[], "n").is_ok());
        let unknown = NodeBuilder::new("u").ready("Unknown").build();
        let err = run_filter(&TaintToleration, &pod, &[unknown], &[], "u").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
        );
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let nodes = [
            NodeBuilder::new("clean").build(),
            NodeBuilder::new("one")
                .taint("a", "", "PreferNoSchedule")
                .build(),
            NodeBuilder::new("two")
                .taint("a", "", "PreferNoSchedule")
                .taint("b", "", "PreferNoSchedule")
                .build(),
        ];
        let pod = PodBuilder::new("p").build();
        let s = run_score(&TaintToleration, &pod, &nodes, &[]);
        assert_eq!((s["clean"], s["one"], s["two"]), (100, 50, 0));
        let tolerant = PodBuilder::new("p")
            .toleration("b", "Exists", "", "PreferNoSchedule")
            .build();
        let s = run_score(&TaintToleration, &tolerant, &nodes, &[]);
        assert_eq!((s["clean"], s["one"], s["two"]), (100, 0, 0));
    }
}
