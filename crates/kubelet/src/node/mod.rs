//! The node's side of the API: registration, the Lease heartbeat every 10 s,
//! and node status (conditions, capacity, addresses, images), written when it
//! changes and at least every `node_status_report_frequency`, as the kubelet
//! does with node leases.

mod lease;
mod machine;
mod status;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

pub(crate) use machine::{Machine, Usage};
pub(crate) use status::short_of;

use crate::images::ImageStore;
use crate::{Error, KubeletOptions, Result};

/// Registers the Node (or takes over an existing one of the same name).
pub(crate) async fn register(
    client: &kube::Client,
    opts: &KubeletOptions,
    machine: &Machine,
) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = status::new_node(opts, machine);
    match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => {
            tracing::info!(node = %opts.node_name, "registered node");
            Ok(n)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Registered before (an agent restart): refresh its labels.
            let labels = node.metadata.labels.clone().unwrap_or_default();
            let patch = json!({"metadata": {"labels": labels}});
            nodes
                .patch(
                    &opts.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(Error::api(format!("updating node {}", opts.node_name)))
        }
        Err(e) => Err(Error::api(format!("registering node {}", opts.node_name))(
            e,
        )),
    }
}

/// Keeps the Lease and the status fresh until the process ends. `pod_cidr`
/// reports the node's pod CIDR once the network is ready.
pub(crate) async fn heartbeat(
    client: kube::Client,
    opts: Arc<KubeletOptions>,
    machine: Machine,
    images: Arc<ImageStore>,
    mut network_ready: watch::Receiver<bool>,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut lease = lease::NodeLease::new(client.clone(), &opts);
    let renew = opts.node_lease_duration / 4;
    let mut reporter = status::Reporter::new(opts.clone(), machine);
    let mut tick = tokio::time::interval(renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = network_ready.changed() => {
                if changed.is_err() {
                    // The agent is shutting down.
                    return Ok(());
                }
            }
        }
        if let Err(e) = lease.renew().await {
            tracing::warn!(error = %e, "renewing the node lease");
        }
        let image_list = {
            let images = images.clone();
            tokio::task::spawn_blocking(move || images.list())
                .await
                .unwrap_or_default()
        };
        let ready = *network_ready.borrow();
        if let Some(patch) = reporter.next_patch(ready, &image_list) {
            match nodes
                .patch_status(
                    &opts.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => reporter.sent(),
                Err(e) => tracing::warn!(error = %e, "updating node status"),
            }
        }
    }
}

/// Waits until the node has a pod CIDR (given by the controller manager's node
/// IPAM) and returns it.
pub(crate) async fn wait_for_pod_cidr(client: &kube::Client, node: &str) -> Result<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let has_cidr = |n: Option<&Node>| {
        n.and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.as_deref())
            .is_some_and(|c| !c.is_empty())
    };
    tracing::info!(node, "waiting for the node's pod CIDR");
    let node = kube::runtime::wait::await_condition(nodes, node, has_cidr)
        .await
        .map_err(|e| Error::Config(format!("waiting for the node's pod CIDR: {e}")))?;
    Ok(node
        .and_then(|n| n.spec)
        .and_then(|s| s.pod_cidr)
        .unwrap_or_default())
}
