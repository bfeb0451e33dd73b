//! Counting finished pods exactly once. A Job's pods carry the tracking
//! finalizer; a finished pod's uid is first recorded in
//! `status.uncountedTerminatedPods`, then its finalizer removed, then it moves
//! into `succeeded` / `failed`. Each step is persisted before the next, so a
//! crash in between neither loses nor double-counts a pod.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::{TRACKING_FINALIZER, indexes, write_status};
use crate::Shared;
use crate::error::{Context, Result, is_not_found};
use crate::meta::controller_of;
use crate::pods::{is_terminal, phase};

/// The Job's counts once every finished pod is accounted for.
pub struct Ledger {
    pub succeeded: i32,
    pub failed: i32,
    pub completed_indexes: BTreeSet<i32>,
    /// No pod is between being recorded and being counted.
    pub settled: bool,
}

fn has_finalizer(p: &Pod) -> bool {
    p.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// Records, releases and counts finished pods; `job` is kept current with every
/// status write.
pub async fn account(
    ctx: &Shared,
    job: &mut Job,
    status: &mut JobStatus,
    pods: &[Arc<Pod>],
    done: bool,
) -> Result<Ledger> {
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(0);
    let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut succeeded_uids = uncounted.succeeded.unwrap_or_default();
    let mut failed_uids = uncounted.failed.unwrap_or_default();
    let mut completed = indexes::parse(status.completed_indexes.as_deref().unwrap_or(""));

    // 1. Record newly finished pods. A pod deleted before finishing counts as failed.
    let mut recorded = false;
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let uid = p.uid().unwrap_or_default();
        if succeeded_uids.contains(&uid) || failed_uids.contains(&uid) {
            continue;
        }
        let finished = is_terminal(p) || (p.metadata.deletion_timestamp.is_some() && !done);
        if !finished {
            continue;
        }
        if phase(p) == "Succeeded" {
            succeeded_uids.push(uid);
            if indexed && let Some(i) = indexes::of(p, completions) {
                completed.insert(i);
            }
        } else {
            failed_uids.push(uid);
        }
        recorded = true;
    }
    if indexed {
        status.completed_indexes = Some(indexes::format(&completed));
    }
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(succeeded_uids.clone()),
        failed: Some(failed_uids.clone()),
    });
    if recorded {
        write_status(ctx, job, status.clone()).await?;
    }

    // 2. Release the recorded pods (and any left when the job is over).
    let mut released: BTreeSet<String> = BTreeSet::new();
    for p in pods.iter().filter(|p| has_finalizer(p)) {
        let uid = p.uid().unwrap_or_default();
        if done || succeeded_uids.contains(&uid) || failed_uids.contains(&uid) {
            remove_finalizer(ctx, p).await?;
            released.insert(uid);
        }
    }

    // 3. Count what no longer carries the finalizer.
    let still_held: BTreeSet<String> = pods
        .iter()
        .filter(|p| has_finalizer(p))
        .filter_map(|p| p.uid())
        .filter(|u| !released.contains(u))
        .collect();
    let (done_s, left_s): (Vec<String>, Vec<String>) = succeeded_uids
        .into_iter()
        .partition(|u| !still_held.contains(u));
    let (done_f, left_f): (Vec<String>, Vec<String>) = failed_uids
        .into_iter()
        .partition(|u| !still_held.contains(u));
    let succeeded = status.succeeded.unwrap_or(0) + i32::try_from(done_s.len()).unwrap_or(0);
    let failed = status.failed.unwrap_or(0) + i32::try_from(done_f.len()).unwrap_or(0);
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    let settled = left_s.is_empty() && left_f.is_empty();
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(left_s.clone()),
        failed: Some(left_f.clone()),
    });
    Ok(Ledger {
        succeeded: succeeded + i32::try_from(left_s.len()).unwrap_or(0),
        failed: failed + i32::try_from(left_f.len()).unwrap_or(0),
        completed_indexes: completed,
        settled,
    })
}

async fn remove_finalizer(ctx: &Shared, pod: &Pod) -> Result<()> {
    let rest: Vec<&String> = pod
        .finalizers()
        .iter()
        .filter(|f| *f != TRACKING_FINALIZER)
        .collect();
    let patch =
        json!({"metadata": {"resourceVersion": pod.resource_version(), "finalizers": rest}});
    let ns = pod.namespace().unwrap_or_default();
    match ctx
        .api::<Pod>(&ns)
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| {
            format!(
                "removing the job tracking finalizer from pod {ns}/{}",
                pod.name_any()
            )
        }),
    }
}

/// A finished or deleted pod whose Job is gone keeps its finalizer for ever
/// unless someone removes it.
pub async fn release_orphan(pod: Arc<Pod>, ctx: Shared) -> Result<Action> {
    if !has_finalizer(&pod) || !(is_terminal(&pod) || pod.metadata.deletion_timestamp.is_some()) {
        return Ok(Action::await_change());
    }
    let ns = pod.namespace().unwrap_or_default();
    let owner = controller_of(&pod.metadata).filter(|r| r.kind == "Job");
    let job_alive = match owner {
        None => false,
        Some(r) => match ctx.jobs.get(Some(&ns), &r.name) {
            Some(j) => j.uid().as_deref() == Some(r.uid.as_str()) && super::finished(&j).is_none(),
            // The cache may lag a new Job; ask.
            None => ctx
                .api::<Job>(&ns)
                .get_opt(&r.name)
                .await
                .ctx(|| format!("reading job {ns}/{}", r.name))?
                .is_some_and(|j| j.uid().as_deref() == Some(r.uid.as_str())),
        },
    };
    if !job_alive {
        remove_finalizer(&ctx, &pod).await?;
    }
    Ok(Action::await_change())
}
