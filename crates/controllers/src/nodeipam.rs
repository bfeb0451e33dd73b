//! Node IPAM: every node gets a `spec.podCIDR` of its own from the cluster CIDR
//! (Kubernetes' range allocator), which the node agent hands to its CNI plugin.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use crate::driver::{self, Queue};
use crate::error::{Context, Error, Result, is_not_found};
use crate::{CACHE_WAIT, Shared};

const COMPONENT: &str = "node-ipam-controller";

/// An IPv4 network, `10.42.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: not a CIDR (want a.b.c.d/n)"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{s}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s}: {e}"))?;
        if prefix > 32 {
            return Err(format!("{s}: prefix longer than 32"));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }

    /// The `index`th subnet of length `prefix` inside this network.
    fn subnet(&self, prefix: u8, index: u32) -> Option<Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if u64::from(index) >= count {
            return None;
        }
        let size = if prefix == 32 {
            1
        } else {
            1u32 << (32 - prefix)
        };
        Some(Cidr {
            base: self.base + index * size,
            prefix,
        })
    }

    fn subnets(&self, prefix: u8) -> u32 {
        if prefix < self.prefix || prefix > 32 {
            return 0;
        }
        u32::try_from(1u64 << (prefix - self.prefix)).unwrap_or(u32::MAX)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The first subnet of `cluster` not in `used`.
pub fn first_free(cluster: Cidr, mask: u8, used: &HashSet<String>) -> Option<Cidr> {
    (0..cluster.subnets(mask))
        .filter_map(|i| cluster.subnet(mask, i))
        .find(|c| !used.contains(&c.to_string()))
}

pub async fn run(ctx: Shared) {
    let Some(cidr) = ctx.opts.cluster_cidr.clone() else {
        return std::future::pending().await;
    };
    let cluster = match Cidr::parse(&cidr) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "node IPAM off: invalid cluster CIDR");
            return std::future::pending().await;
        }
    };
    let ipam = Arc::new(Ipam {
        ctx: ctx.clone(),
        cluster,
    });
    let queue = Queue::new(&ctx.nodes);
    // One worker: allocations must see each other.
    driver::run("nodeipam", queue, ipam, reconciler!(reconcile), 1).await;
}

struct Ipam {
    ctx: Shared,
    cluster: Cidr,
}

async fn reconcile(node: Arc<Node>, ipam: Arc<Ipam>) -> Result<Action> {
    let ctx = &ipam.ctx;
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .is_some_and(|c| !c.is_empty())
    {
        return Ok(Action::await_change());
    }
    let used: HashSet<String> = ctx
        .nodes
        .list()
        .iter()
        .flat_map(|n| {
            let spec = n.spec.clone().unwrap_or_default();
            spec.pod_cidrs
                .unwrap_or_default()
                .into_iter()
                .chain(spec.pod_cidr)
        })
        .collect();
    let Some(cidr) = first_free(ipam.cluster, ctx.opts.node_cidr_mask_size, &used) else {
        ctx.events
            .normal(
                COMPONENT,
                node.as_ref(),
                "CIDRNotAvailable",
                format!("Node {} status is now: CIDRNotAvailable", node.name_any()),
            )
            .await;
        return Err(Error::Invalid(format!(
            "no pod CIDR left in {} for node {}",
            ipam.cluster,
            node.name_any()
        )));
    };
    let cidr = cidr.to_string();
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    match ctx
        .cluster_api::<Node>()
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => {
            tracing::info!(node = %node.name_any(), %cidr, "allocated pod CIDR");
            if !ctx.nodes.wait_for_write(&written, CACHE_WAIT).await {
                return Err(Error::CacheLag(format!(
                    "pod CIDR of node {}",
                    node.name_any()
                )));
            }
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e).ctx(|| format!("allocating a pod CIDR to node {}", node.name_any())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_consecutive_free_subnets() {
        let cluster = Cidr::parse("10.42.0.0/16").expect("cidr");
        let mut used = HashSet::new();
        assert_eq!(
            first_free(cluster, 24, &used)
                .map(|c| c.to_string())
                .as_deref(),
            Some("10.42.0.0/24")
        );
        used.insert("10.42.0.0/24".to_string());
        used.insert("10.42.2.0/24".to_string());
        assert_eq!(
            first_free(cluster, 24, &used)
                .map(|c| c.to_string())
                .as_deref(),
            Some("10.42.1.0/24")
        );
        let tiny = Cidr::parse("10.0.0.0/23").expect("cidr");
        let full: HashSet<String> = ["10.0.0.0/24".to_string(), "10.0.1.0/24".to_string()].into();
        assert_eq!(first_free(tiny, 24, &full), None);
    }

    #[test]
    fn normalises_and_rejects_cidrs() {
        assert_eq!(
            Cidr::parse("10.42.7.9/16").expect("cidr").to_string(),
            "10.42.0.0/16"
        );
        assert!(Cidr::parse("10.42.0.0").is_err());
        assert!(Cidr::parse("10.42.0.0/33").is_err());
    }
}
