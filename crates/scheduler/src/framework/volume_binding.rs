//! VolumeBinding (the part that concerns placement): every claim must exist;
//! a bound claim whose volume has node affinity (a local PersistentVolume)
//! restricts the pod to the nodes that volume accepts. An unbound claim of an
//! immediate-binding class waits for the volume controller.

use super::{CycleState, Failure, FilterPlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;

pub struct VolumeBinding;

impl FilterPlugin for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }

    fn pre_filter(&self, state: &mut CycleState, cache: &Cache) -> Result<(), Failure> {
        let pod = state.pod.clone();
        for claim_name in &pod.pvcs {
            let key = format!("{}/{}", pod.namespace, claim_name);
            let Some(claim) = cache.claims.get(&key) else {
                return Err(Failure::unresolvable(format!(
                    "persistentvolumeclaim \"{claim_name}\" not found"
                )));
            };
            if claim.volume_name.is_empty() {
                // Without storage class information, assume the claim waits for
                // its first consumer: any node will do.
                let waits = cache.storage_classes.as_ref().is_none_or(|classes| {
                    classes.get(&claim.storage_class).copied().unwrap_or(false)
                });
                if !waits {
                    return Err(Failure::unresolvable(
                        "pod has unbound immediate PersistentVolumeClaims",
                    ));
                }
                continue;
            }
            match cache.volumes.get(&claim.volume_name) {
                Some(Some(terms)) => state.volumes.push(terms.clone()),
                Some(None) => {}
                None => {
                    return Err(Failure::unresolvable(format!(
                        "persistentvolume \"{}\" not found",
                        claim.volume_name
                    )));
                }
            }
        }
        Ok(())
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        if state
            .volumes
            .iter()
            .all(|t| t.matches(&node.name, node.labels()))
        {
            return Ok(());
        }
        Err(Failure::unresolvable(
            "node(s) had volume node affinity conflict",
        ))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};

    use super::*;
    use crate::cache::ClaimInfo;
    use crate::selectors::NodeSelectorTerms;
    use crate::testing::{NodeBuilder, PodBuilder, cache_with, info};

    fn cluster() -> Cache {
        let nodes = [NodeBuilder::new("a").build(), NodeBuilder::new("b").build()];
        let mut cache = cache_with(&nodes, &[]);
        let terms = NodeSelectorTerms::parse(&NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into()]),
                }]),
                match_fields: None,
            }],
        });
        cache.volumes.insert("local-a".into(), Some(terms));
        cache.claims.insert(
            "default/data".into(),
            ClaimInfo {
                volume_name: "local-a".into(),
                storage_class: "local".into(),
            },
        );
        cache.claims.insert(
            "default/pending".into(),
            ClaimInfo {
                volume_name: String::new(),
                storage_class: "fast".into(),
            },
        );
        cache
    }

    fn run(cache: &Cache, claim: &str, node: &str) -> Result<(), Failure> {
        let mut state = CycleState::new(info(&PodBuilder::new("p").pvc(claim).build()));
        VolumeBinding.pre_filter(&mut state, cache)?;
        VolumeBinding.filter(&state, cache, cache.node(node).expect("node"))
    }

    #[test]
    fn local_volumes_pin_the_pod_to_their_node() {
        let cache = cluster();
        assert!(run(&cache, "data", "a").is_ok());
        let err = run(&cache, "data", "b").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) had volume node affinity conflict"]
        );
    }

    #[test]
    fn missing_and_unbound_claims() {
        let mut cache = cluster();
        let err = run(&cache, "nope", "a").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["persistentvolumeclaim \"nope\" not found"]
        );
        assert!(
            run(&cache, "pending", "b").is_ok(),
            "unknown classes wait for a consumer"
        );
        cache.storage_classes = Some([("fast".to_string(), false)].into());
        let err = run(&cache, "pending", "b").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["pod has unbound immediate PersistentVolumeClaims"]
        );
    }
}
