//! NodeAffinity: `nodeSelector` and required node affinity filter; preferred
//! node affinity terms add their weights to the score.

use super::{CycleState, Failure, FilterPlugin, ScorePlugin, default_normalize};
use crate::cache::Cache;
use crate::node::NodeInfo;

pub struct NodeAffinity;

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        if state.pod.accepts_node(&node.name, node.labels()) {
            return Ok(());
        }
        Err(Failure::unresolvable(
            "node(s) didn't match Pod's node affinity/selector",
        ))
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn score(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> i64 {
        state
            .pod
            .preferred_node_affinity
            .iter()
            .filter(|(_, term)| term.matches(&node.name, node.labels()))
            .map(|(w, _)| *w)
            .sum()
    }

    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity as KNodeAffinity, NodeSelector, NodeSelectorRequirement,
        NodeSelectorTerm, PreferredSchedulingTerm,
    };

    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_filter, run_score};

    fn term(key: &str, op: &str, values: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
            match_fields: None,
        }
    }

    #[test]
    fn node_selector_and_required_terms_filter() {
        let nodes = [
            NodeBuilder::new("a")
                .label("zone", "a")
                .label("cores", "16")
                .build(),
            NodeBuilder::new("b").label("zone", "b").build(),
        ];
        let pod = PodBuilder::new("p").node_selector("zone", "a").build();
        assert!(run_filter(&NodeAffinity, &pod, &nodes, &[], "a").is_ok());
        let err = run_filter(&NodeAffinity, &pod, &nodes, &[], "b").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) didn't match Pod's node affinity/selector"]
        );

        let required = |terms: Vec<NodeSelectorTerm>| {
            PodBuilder::new("p")
                .affinity(Affinity {
                    node_affinity: Some(KNodeAffinity {
                        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                            node_selector_terms: terms,
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .build()
        };
        // Terms are ORed.
        let p = required(vec![
            term("zone", "In", &["x"]),
            term("cores", "Gt", &["8"]),
        ]);
        assert!(run_filter(&NodeAffinity, &p, &nodes, &[], "a").is_ok());
        assert!(run_filter(&NodeAffinity, &p, &nodes, &[], "b").is_err());
        let p = required(vec![term("zone", "NotIn", &["a"])]);
        assert!(run_filter(&NodeAffinity, &p, &nodes, &[], "b").is_ok());
        let p = required(vec![term("cores", "DoesNotExist", &[])]);
        assert!(run_filter(&NodeAffinity, &p, &nodes, &[], "a").is_err());
        let p = required(vec![]);
        assert!(
            run_filter(&NodeAffinity, &p, &nodes, &[], "a").is_err(),
            "no terms match nothing"
        );
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let nodes = [
            NodeBuilder::new("a")
                .label("zone", "a")
                .label("ssd", "yes")
                .build(),
            NodeBuilder::new("b").label("zone", "a").build(),
            NodeBuilder::new("c").build(),
        ];
        let pod = PodBuilder::new("p")
            .affinity(Affinity {
                node_affinity: Some(KNodeAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        PreferredSchedulingTerm {
                            weight: 20,
                            preference: term("zone", "In", &["a"]),
                        },
                        PreferredSchedulingTerm {
                            weight: 80,
                            preference: term("ssd", "Exists", &[]),
                        },
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .build();
        let s = run_score(&NodeAffinity, &pod, &nodes, &[]);
        assert_eq!((s["a"], s["b"], s["c"]), (100, 20, 0));
    }
}
