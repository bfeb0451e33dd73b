//! NodeUnschedulable: cordoned nodes take only pods that tolerate the cordon.

use k8s_openapi::api::core::v1::Taint;

use super::{CycleState, Failure, FilterPlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;
use crate::selectors::tolerates;

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        if !node.summary.unschedulable {
            return Ok(());
        }
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        };
        if state.pod.tolerations.iter().any(|t| tolerates(t, &cordon)) {
            return Ok(());
        }
        Err(Failure::unresolvable("node(s) were unschedulable"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_filter};

    #[test]
    fn cordoned_nodes_reject_pods_that_do_not_tolerate_it() {
        let node = NodeBuilder::new("n").unschedulable().build();
        let pod = PodBuilder::new("p").build();
        let err = run_filter(
            &NodeUnschedulable,
            &pod,
            std::slice::from_ref(&node),
            &[],
            "n",
        )
        .unwrap_err();
        assert_eq!(err, Failure::unresolvable("node(s) were unschedulable"));
        let tolerant = PodBuilder::new("p")
            .toleration(
                "node.kubernetes.io/unschedulable",
                "Exists",
                "",
                "NoSchedule",
            )
            .build();
        assert!(run_filter(&NodeUnschedulable, &tolerant, &[node], &[], "n").is_ok());
        let open = NodeBuilder::new("n").build();
        assert!(run_filter(&NodeUnschedulable, &pod, &[open], &[], "n").is_ok());
    }
}
