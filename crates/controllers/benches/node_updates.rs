//! What the controller manager spends when many pods exist: N nodes and M pods
//! (bound to them) created through the real API server with the controller
//! manager running in this process, then every node changed U times.
//!
//! `cargo build -p flotilla && cargo bench -p controllers --bench node_updates`
//! (`-- --nodes 200 --pods 20000 --updates 5`; `--no-controllers` measures the
//! client's own share: the same requests with no controllers running).

// The same allocator as the `flotilla` binary, which runs the controllers in-process.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/cluster/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use common::{Cluster, obj, test_options};

/// CPU seconds this process has used (user + system), from /proc.
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Waits until this process's CPU use stays under 2% for a second: the
/// controllers have finished with what the phase gave them.
async fn settle() -> f64 {
    let mut last = own_cpu();
    loop {
        // Sampling CPU time: there is no event to await for "nothing left to do".
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = own_cpu();
        if now - last < 0.02 {
            return now;
        }
        last = now;
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let nodes = value("--nodes", 200);
    let pods = value("--pods", 20_000);
    let updates = value("--updates", 5);
    // The client's own share: the same requests with no controllers running.
    let controllers = !args.iter().any(|a| a == "--no-controllers");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(nodes, pods, updates, controllers))
}

async fn run(
    num_nodes: usize,
    num_pods: usize,
    updates: usize,
    controllers: bool,
) -> anyhow::Result<()> {
    let mut opts = test_options();
    // No node agent heartbeats here; nodes must not be declared dead meanwhile.
    opts.node_monitor_grace_period = Duration::from_secs(3600);
    let c = if controllers {
        Cluster::start_with(opts).await?
    } else {
        Cluster::start_server().await?
    };
    c.create_namespace("bulk").await?;
    let nodes: Api<Node> = Api::all(c.admin.clone());
    for i in 0..num_nodes {
        nodes
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": format!("node-{i}")}})),
            )
            .await?;
    }
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "bulk");
    let cpu_start = settle().await;
    let t = Instant::now();
    futures::stream::iter(0..num_pods)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = obj(json!({"metadata": {"name": format!("p-{i}")},
                    "spec": {"nodeName": format!("node-{}", i % num_nodes),
                             "containers": [{"name": "c", "image": "busybox"}]}}));
                pods.create(&PostParams::default(), &pod).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let created = t.elapsed().as_secs_f64();
    let cpu0 = settle().await;
    println!(
        "created {num_nodes} nodes and {num_pods} pods (the pods in {created:.1}s); this process (controllers + client) used {:.2} CPU-s for the pods",
        cpu0 - cpu_start
    );

    // Node changes (status updates, labels) each go through every controller
    // that maps a node to its pods.
    let t = Instant::now();
    for round in 0..updates {
        futures::stream::iter(0..num_nodes)
            .map(|i| {
                let nodes = nodes.clone();
                async move {
                    let patch = json!({"metadata": {"labels": {"round": round.to_string()}}});
                    nodes
                        .patch(
                            &format!("node-{i}"),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
    }
    let patched = t.elapsed().as_secs_f64();
    let cpu1 = settle().await;
    println!(
        "{} node updates sent in {patched:.1}s; this process (controllers + client) used {:.2} CPU-s for them",
        num_nodes * updates,
        cpu1 - cpu0
    );
    Ok(())
}
