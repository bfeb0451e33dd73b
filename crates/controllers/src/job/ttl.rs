//! TTL after finished: a finished Job with `ttlSecondsAfterFinished` is deleted
//! (with its pods, in the foreground) that many seconds after it finished.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;

use crate::Shared;
use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::meta::{add_seconds, now, seconds_since};

pub async fn run(ctx: Shared) {
    let queue = Queue::new(&ctx.jobs);
    driver::run(
        "ttlafterfinished",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

async fn reconcile(job: Arc<Job>, ctx: Shared) -> Result<Action> {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(Action::await_change());
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(cond) = super::finished(&job) else {
        return Ok(Action::await_change());
    };
    let finished_at = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .or_else(|| cond.last_transition_time.clone());
    let Some(finished_at) = finished_at else {
        return Ok(Action::await_change());
    };
    let left = -seconds_since(&add_seconds(&finished_at, i64::from(ttl)), &now());
    if left > 0.0 {
        return Ok(Action::requeue(Duration::from_secs_f64(left + 0.1)));
    }
    let ns = job.namespace().unwrap_or_default();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: job.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match ctx.api::<Job>(&ns).delete(&job.name_any(), &dp).await {
        Ok(_) => {
            tracing::info!(job = %format!("{ns}/{}", job.name_any()), "deleted finished job after its TTL");
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(e).ctx(|| format!("deleting finished job {ns}/{}", job.name_any())),
    }
}
