//! Jobs: run pods until `completions` succeed (or, without completions, until one
//! succeeds and the rest stop), at most `parallelism` at a time, giving up after
//! `backoffLimit` failures or `activeDeadlineSeconds`. Finished pods are counted
//! through the `batch.kubernetes.io/job-tracking` finalizer and
//! `status.uncountedTerminatedPods`, so a pod deleted early is never lost from
//! the counts.

mod indexes;
mod tracking;
pub mod ttl;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::meta::{
    add_seconds, claim, controller_of, controller_ref, now, seconds_since, selector,
};
use crate::pods::{deletion_order, is_ready, is_terminal};
use crate::workload::{create_pods, delete_pods};
use crate::{CACHE_WAIT, Shared};

pub const COMPONENT: &str = "job-controller";
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

pub async fn run(ctx: Shared) {
    let queue = Queue::new(&ctx.jobs).related(&ctx.pods, |pod| {
        let ns = pod.namespace().unwrap_or_default();
        controller_of(&pod.metadata)
            .filter(|r| r.kind == "Job" && r.api_version.starts_with("batch/"))
            .map(|r| ObjectRef::new(&r.name).within(&ns))
            .into_iter()
            .collect()
    });
    let orphans = Queue::new(&ctx.pods);
    let workers = ctx.opts.workers;
    tokio::join!(
        driver::run("job", queue, ctx.clone(), reconciler!(reconcile), workers),
        driver::run(
            "job-orphan-finalizers",
            orphans,
            ctx.clone(),
            reconciler!(tracking::release_orphan),
            workers
        ),
        ttl::run(ctx.clone()),
    );
}

pub fn finished(job: &Job) -> Option<&JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn condition(type_: &str, reason: &str, message: &str, now: &Time) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

fn set_condition(status: &mut JobStatus, cond: JobCondition) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    match conds.iter_mut().find(|c| c.type_ == cond.type_) {
        Some(c) if c.status == cond.status && c.reason == cond.reason => {}
        Some(c) => *c = cond,
        None => conds.push(cond),
    }
}

fn remove_condition(status: &mut JobStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// Why a job is failing, if it is.
fn failure(job: &Job, failed: i32, now: &Time) -> Option<(&'static str, &'static str)> {
    let spec = job.spec.as_ref()?;
    if failed > spec.backoff_limit.unwrap_or(6) {
        return Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
    }
    let start = job.status.as_ref()?.start_time.as_ref()?;
    let deadline = spec.active_deadline_seconds?;
    (seconds_since(start, now) >= deadline as f64).then_some((
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    ))
}

/// Exponential delay before a failed pod is replaced: 10 s doubling up to 6 min.
fn backoff_left(pods: &[Arc<Pod>], failed: i32, now: &Time) -> Option<f64> {
    if failed <= 0 {
        return None;
    }
    let delay = (10.0 * 2f64.powi(failed.min(10) - 1)).min(360.0);
    let last = pods
        .iter()
        .filter(|p| crate::pods::phase(p) == "Failed")
        .filter_map(|p| {
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            statuses
                .iter()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
                .max()
        })
        .max()?;
    let left = delay - seconds_since(&last, now);
    (left > 0.0).then_some(left)
}

async fn reconcile(job: Arc<Job>, ctx: Shared) -> Result<Action> {
    let ns = job.namespace().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let sel = match selector(spec.selector.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(job = %job.name_any(), error = %e, "not running job");
            return Ok(Action::await_change());
        }
    };
    let pods = claim(job.as_ref(), &sel, ctx.pods.in_namespace(&ns), |ns| {
        ctx.api::<Pod>(ns)
    })
    .await?;
    let now = now();
    let mut status = job.status.clone().unwrap_or_default();
    let done = finished(&job).is_some();
    // The latest version of the job, refreshed by every status write.
    let mut cur = (*job).clone();
    let ledger = tracking::account(&ctx, &mut cur, &mut status, &pods, done).await?;
    if done || job.metadata.deletion_timestamp.is_some() {
        write_status(&ctx, &mut cur, status).await?;
        return Ok(Action::await_change());
    }

    let active: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_some())
        .count();
    let (succeeded, failed) = (ledger.succeeded, ledger.failed);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let completed_indexes: BTreeSet<i32> = if indexed {
        ledger.completed_indexes.clone()
    } else {
        BTreeSet::new()
    };
    if indexed {
        status.completed_indexes = Some(indexes::format(&completed_indexes));
    }
    let complete = match (completions, indexed) {
        (Some(c), true) => i32::try_from(completed_indexes.len()).unwrap_or(0) >= c,
        (Some(c), false) => succeeded >= c,
        (None, _) => succeeded > 0 && active.is_empty(),
    };
    let mut requeue: Option<f64> = None;
    let suspended = spec.suspend == Some(true);

    if status.start_time.is_none() && !suspended {
        status.start_time = Some(now.clone());
    }
    let mut job_view = (*job).clone();
    job_view.status = Some(status.clone());
    if let Some((reason, message)) = failure(&job_view, failed, &now) {
        delete_pods(&ctx, job.as_ref(), COMPONENT, &active).await?;
        set_condition(
            &mut status,
            condition("FailureTarget", reason, message, &now),
        );
        if active.is_empty() && terminating == 0 && ledger.settled {
            set_condition(&mut status, condition("Failed", reason, message, &now));
            ctx.events
                .warning(COMPONENT, job.as_ref(), reason, message)
                .await;
        }
    } else if complete {
        delete_pods(&ctx, job.as_ref(), COMPONENT, &active).await?;
        set_condition(
            &mut status,
            condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                &now,
            ),
        );
        if active.is_empty() && terminating == 0 && ledger.settled {
            set_condition(
                &mut status,
                condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &now,
                ),
            );
            status.completion_time = Some(now.clone());
            ctx.events
                .normal(COMPONENT, job.as_ref(), "Completed", "Job completed")
                .await;
        }
    } else if suspended {
        delete_pods(&ctx, job.as_ref(), COMPONENT, &active).await?;
        if status
            .conditions
            .iter()
            .flatten()
            .all(|c| c.type_ != "Suspended" || c.status != "True")
        {
            ctx.events
                .normal(COMPONENT, job.as_ref(), "Suspended", "Job suspended")
                .await;
        }
        set_condition(
            &mut status,
            condition("Suspended", "JobSuspended", "Job suspended", &now),
        );
        if active.is_empty() {
            status.start_time = None;
        }
    } else {
        if status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Suspended" && c.status == "True")
        {
            remove_condition(&mut status, "Suspended");
            ctx.events
                .normal(COMPONENT, job.as_ref(), "Resumed", "Job resumed")
                .await;
        }
        let want = match (completions, indexed) {
            (Some(c), true) => {
                parallelism.min(c - i32::try_from(completed_indexes.len()).unwrap_or(0))
            }
            (Some(c), false) => parallelism.min(c - succeeded),
            // Once one pod of a work queue succeeded, no new ones start and the
            // running ones finish their share.
            (None, _) if succeeded > 0 => i32::try_from(active.len()).unwrap_or(i32::MAX),
            (None, _) => parallelism,
        }
        .max(0);
        let have = i32::try_from(active.len()).unwrap_or(i32::MAX);
        if have > want {
            let mut extra = active.clone();
            extra.sort_by(|a, b| deletion_order(a, b));
            extra.truncate(usize::try_from(have - want).unwrap_or(0));
            delete_pods(&ctx, job.as_ref(), COMPONENT, &extra).await?;
        } else if have < want {
            match backoff_left(&pods, failed, &now) {
                Some(left) => requeue = Some(left),
                None => {
                    let new = new_pods(
                        &job,
                        &active,
                        &completed_indexes,
                        usize::try_from(want - have)
                            .unwrap_or(0)
                            .min(crate::workload::BURST),
                    );
                    let (_, err) = create_pods(&ctx, job.as_ref(), COMPONENT, new).await;
                    if let Some(e) = err {
                        write_status(&ctx, &mut cur, status).await?;
                        return Err(e);
                    }
                }
            }
        }
        if let (Some(start), Some(deadline)) = (&status.start_time, spec.active_deadline_seconds) {
            let left = -seconds_since(&add_seconds(start, deadline), &now);
            requeue = Some(requeue.map_or(left, |r| r.min(left)));
        }
    }
    let fresh: Vec<Arc<Pod>> = ctx
        .pods
        .in_namespace(&ns)
        .into_iter()
        .filter(|p| crate::meta::controlled_by(&p.metadata, &job.uid().unwrap_or_default()))
        .collect();
    status.active = Some(
        fresh
            .iter()
            .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_none())
            .count() as i32,
    );
    status.ready = Some(
        fresh
            .iter()
            .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_none() && is_ready(p))
            .count() as i32,
    );
    status.terminating = Some(
        fresh
            .iter()
            .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_some())
            .count() as i32,
    );
    write_status(&ctx, &mut cur, status).await?;
    Ok(match requeue {
        Some(secs) => Action::requeue(Duration::from_secs_f64(secs.max(0.0) + 0.2)),
        None => Action::await_change(),
    })
}

/// Pods to add: for an Indexed job, the lowest indexes neither completed nor
/// running, each pod knowing its index.
fn new_pods(job: &Job, active: &[Arc<Pod>], completed: &BTreeSet<i32>, count: usize) -> Vec<Pod> {
    let spec = job.spec.clone().unwrap_or_default();
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let make = |generate: String| {
        let mut pod =
            crate::pods::from_template(&spec.template, &ns, controller_ref(job), &generate);
        pod.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(TRACKING_FINALIZER.into());
        pod
    };
    if spec.completion_mode.as_deref() != Some("Indexed") {
        return (0..count).map(|_| make(format!("{name}-"))).collect();
    }
    let completions = spec.completions.unwrap_or(0);
    let running: BTreeSet<i32> = active
        .iter()
        .filter_map(|p| indexes::of(p, completions))
        .collect();
    (0..completions)
        .filter(|i| !completed.contains(i) && !running.contains(i))
        .take(count)
        .map(|i| {
            let mut pod = make(format!("{name}-{i}-"));
            let index = i.to_string();
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(indexes::INDEX_ANNOTATION.into(), index.clone());
            pod.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(indexes::INDEX_ANNOTATION.into(), index);
            if let Some(ps) = pod.spec.as_mut() {
                ps.hostname = Some(format!("{name}-{i}"));
                for c in ps
                    .containers
                    .iter_mut()
                    .chain(ps.init_containers.iter_mut().flatten())
                {
                    c.env.get_or_insert_with(Vec::new).push(EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!(
                                    "metadata.annotations['{}']",
                                    indexes::INDEX_ANNOTATION
                                ),
                            }),
                            ..Default::default()
                        }),
                    });
                }
            }
            pod
        })
        .collect()
}

/// Writes the status when it changed, keeping `job` current.
async fn write_status(ctx: &Shared, job: &mut Job, status: JobStatus) -> Result<()> {
    if job.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = job.clone();
    updated.status = Some(status);
    let ns = job.namespace().unwrap_or_default();
    match ctx
        .api::<Job>(&ns)
        .replace_status(&job.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(written) => {
            ctx.jobs.wait_for_write(&written, CACHE_WAIT).await;
            *job = written;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("updating status of job {ns}/{}", job.name_any())),
    }
}
