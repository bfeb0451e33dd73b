//! NodePorts: a host port can be claimed once per node (per protocol and address).

use super::{CycleState, Failure, FilterPlugin};
use crate::cache::Cache;
use crate::node::NodeInfo;

pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn filter(&self, state: &CycleState, _cache: &Cache, node: &NodeInfo) -> Result<(), Failure> {
        let clash = state
            .pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if clash {
            return Err(Failure::resolvable(
                "node(s) didn't have free ports for the requested pod ports",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, run_filter};

    #[test]
    fn a_taken_host_port_rejects() {
        let nodes = [NodeBuilder::new("a").build(), NodeBuilder::new("b").build()];
        let placed = PodBuilder::new("web").host_port(8080).node("a").build();
        let pod = PodBuilder::new("p").host_port(8080).build();
        let err =
            run_filter(&NodePorts, &pod, &nodes, std::slice::from_ref(&placed), "a").unwrap_err();
        assert_eq!(
            err.reason_list(),
            vec!["node(s) didn't have free ports for the requested pod ports"]
        );
        assert!(run_filter(&NodePorts, &pod, &nodes, std::slice::from_ref(&placed), "b").is_ok());
        let other = PodBuilder::new("q").host_port(9090).build();
        assert!(run_filter(&NodePorts, &other, &nodes, &[placed], "a").is_ok());
    }
}
