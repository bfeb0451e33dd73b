//! Pod garbage collection: terminated pods beyond the threshold (oldest first),
//! pods bound to nodes that no longer exist, terminating pods that were never
//! scheduled, and terminating pods on nodes taken out of service — none of which
//! a node agent will ever finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tokio::time::Instant;

use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::meta::now;
use crate::pods::{is_terminal, node_name};
use crate::{CACHE_WAIT, Shared};

const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

struct PodGc {
    ctx: Shared,
    /// When each orphan's node was first seen missing.
    missing_since: Mutex<HashMap<String, Instant>>,
}

pub async fn run(ctx: Shared) {
    let pods = ctx.pods.clone();
    let nodes = ctx.nodes.clone();
    let queue = Queue::new(&ctx.pods).related(&ctx.nodes, move |node| {
        let name = node.name_any();
        // Only a node's removal (its pods become orphans) or its going out of
        // service concerns its pods here; the cache already reflects the change.
        if nodes.get(None, &name).is_some() && !out_of_service(node) {
            return Vec::new();
        }
        pods.with_key(&name)
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect()
    });
    let gc = Arc::new(PodGc {
        ctx: ctx.clone(),
        missing_since: Mutex::new(HashMap::new()),
    });
    // One worker: the threshold sweep must not run twice over the same pods.
    driver::run("podgc", queue, gc, reconciler!(reconcile), 1).await;
}

async fn reconcile(pod: Arc<Pod>, gc: Arc<PodGc>) -> Result<Action> {
    let ctx = &gc.ctx;
    if is_terminal(&pod) && pod.metadata.deletion_timestamp.is_none() {
        sweep_terminated(ctx).await?;
        return Ok(Action::await_change());
    }
    let uid = pod.uid().unwrap_or_default();
    match node_name(&pod) {
        None => {
            if pod.metadata.deletion_timestamp.is_some() {
                force_delete(ctx, &pod, "the pod was never scheduled").await?;
            }
            Ok(Action::await_change())
        }
        Some(node) => match ctx.nodes.get(None, node) {
            Some(n) => {
                gc.forget(&uid);
                if pod.metadata.deletion_timestamp.is_some() && out_of_service(&n) {
                    force_delete(ctx, &pod, "its node is out of service").await?;
                }
                Ok(Action::await_change())
            }
            None => {
                let since = *gc
                    .missing_since
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(uid.clone())
                    .or_insert_with(Instant::now);
                // A node may be deleted and registered again: wait a while.
                let quarantine = ctx.opts.pod_gc_quarantine;
                let waited = since.elapsed();
                if waited < quarantine {
                    return Ok(Action::requeue(quarantine - waited));
                }
                // The cache may lag a re-registered node; ask before deleting.
                let live = ctx
                    .cluster_api::<Node>()
                    .get_opt(node)
                    .await
                    .ctx(|| format!("reading node {node}"))?;
                if live.is_none() {
                    force_delete(ctx, &pod, "its node no longer exists").await?;
                }
                gc.forget(&uid);
                Ok(Action::await_change())
            }
        },
    }
}

impl PodGc {
    fn forget(&self, uid: &str) {
        self.missing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }
}

fn out_of_service(node: &Node) -> bool {
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == OUT_OF_SERVICE && t.effect == "NoExecute")
        });
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    tainted && !ready
}

/// Deletes the oldest terminated pods beyond the threshold.
async fn sweep_terminated(ctx: &Shared) -> Result<()> {
    let threshold = ctx.opts.terminated_pod_gc_threshold;
    let mut terminated: Vec<Arc<Pod>> = ctx
        .pods
        .list()
        .into_iter()
        .filter(|p| is_terminal(p) && p.metadata.deletion_timestamp.is_none())
        .collect();
    if terminated.len() <= threshold {
        return Ok(());
    }
    terminated.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let count = terminated.len() - threshold;
    let doomed: Vec<Arc<Pod>> = terminated.into_iter().take(count).collect();
    for pod in &doomed {
        delete(ctx, pod, None).await?;
    }
    let done: Vec<(Option<String>, String, Option<String>)> = doomed
        .iter()
        .map(|p| (p.namespace(), p.name_any(), p.uid()))
        .collect();
    ctx.pods
        .wait_until(CACHE_WAIT, |pods| {
            done.iter()
                .all(|(ns, n, uid)| pods.get(ns.as_deref(), n).is_none_or(|p| p.uid() != *uid))
        })
        .await;
    Ok(())
}

/// Marks why the pod goes, then deletes it without a grace period.
async fn force_delete(ctx: &Shared, pod: &Pod, why: &str) -> Result<()> {
    tracing::info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), why, "force-deleting pod");
    if !is_terminal(pod) {
        let patch = json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
            "message": format!("PodGC: {why}"), "lastTransitionTime": now(),
        }]}});
        let api = ctx.api::<Pod>(&pod.namespace().unwrap_or_default());
        if let Err(e) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            tracing::debug!(pod = %pod.name_any(), error = %e, "adding the DisruptionTarget condition failed");
        }
    }
    delete(ctx, pod, Some(0)).await
}

async fn delete(ctx: &Shared, pod: &Pod, grace: Option<i64>) -> Result<()> {
    let dp = DeleteParams {
        grace_period_seconds: grace.and_then(|g| u32::try_from(g).ok()),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match ctx
        .api::<Pod>(&pod.namespace().unwrap_or_default())
        .delete(&pod.name_any(), &dp)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("deleting pod {}", pod.name_any())),
    }
}
