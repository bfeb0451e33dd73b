//! NodeName: a pod that names its node fits only there.

use super::{CycleState, Failure, FilterPlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;

pub struct NodeName;

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        let wanted = &state.pod.node_name;
        if wanted.is_empty() || *wanted == node.name {
            return Ok(());
        }
        Err(Failure::unresolvable(
            "node(s) didn't match the requested node name",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_filter};

    #[test]
    fn only_the_named_node_fits() {
        let nodes = [NodeBuilder::new("a").build(), NodeBuilder::new("b").build()];
        let pod = PodBuilder::new("p").node("a").build();
        assert!(run_filter(&NodeName, &pod, &nodes, &[], "a").is_ok());
        let err = run_filter(&NodeName, &pod, &nodes, &[], "b").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) didn't match the requested node name"]
        );
        let free = PodBuilder::new("q").build();
        assert!(run_filter(&NodeName, &free, &nodes, &[], "b").is_ok());
    }
}
