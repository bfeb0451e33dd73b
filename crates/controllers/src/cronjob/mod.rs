//! CronJobs: a Job per scheduled time (named after it, so creating twice is
//! harmless), with the concurrency policy, a starting deadline, suspension and
//! the successful/failed history limits.

mod schedule;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_already_exists, is_namespace_terminating, is_not_found};
use crate::job::finished;
use crate::meta::{controlled_by, controller_of, controller_ref};
use crate::{CACHE_WAIT, Shared};
use schedule::Schedule;

const COMPONENT: &str = "cronjob-controller";
const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

pub async fn run(ctx: Shared) {
    let queue = Queue::new(&ctx.cron_jobs).related(&ctx.jobs, |job| {
        let ns = job.namespace().unwrap_or_default();
        controller_of(&job.metadata)
            .filter(|r| r.kind == "CronJob")
            .map(|r| ObjectRef::new(&r.name).within(&ns))
            .into_iter()
            .collect()
    });
    driver::run(
        "cronjob",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: Some(job.name_any()),
        namespace: job.namespace(),
        uid: job.uid(),
        resource_version: job.resource_version(),
        ..Default::default()
    }
}

fn outcome(job: &Job) -> Option<&'static str> {
    finished(job).map(|c| {
        if c.type_ == "Complete" {
            "Complete"
        } else {
            "Failed"
        }
    })
}

async fn reconcile(cj: Arc<CronJob>, ctx: Shared) -> Result<Action> {
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.uid().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    let mut jobs: Vec<Arc<Job>> = ctx
        .jobs
        .in_namespace(&ns)
        .into_iter()
        .filter(|j| controlled_by(&j.metadata, &uid))
        .collect();
    jobs.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let mut status = cj.status.clone().unwrap_or_default();

    // Forget finished and vanished jobs in status.active; note successes.
    let mut active = Vec::new();
    for r in status.active.clone().unwrap_or_default() {
        match jobs.iter().find(|j| j.uid() == r.uid) {
            Some(j) => match outcome(j) {
                Some(o) => {
                    ctx.events
                        .normal(
                            COMPONENT,
                            cj.as_ref(),
                            "SawCompletedJob",
                            format!("Saw completed job: {}, condition: {o}", j.name_any()),
                        )
                        .await;
                }
                None => active.push(job_ref(j)),
            },
            None => {
                // Not in the cache: ask before forgetting it.
                let exists = ctx
                    .api::<Job>(&ns)
                    .get_opt(r.name.as_deref().unwrap_or_default())
                    .await
                    .ctx(|| "reading a job".into())?;
                match exists {
                    Some(j) if j.uid() == r.uid && outcome(&j).is_none() => active.push(r),
                    _ => {
                        ctx.events
                            .normal(
                                COMPONENT,
                                cj.as_ref(),
                                "MissingJob",
                                format!("Active job went missing: {}", r.name.unwrap_or_default()),
                            )
                            .await
                    }
                }
            }
        }
    }
    for j in jobs.iter().filter(|j| outcome(j).is_none()) {
        if !active.iter().any(|r| r.uid == j.uid()) {
            active.push(job_ref(j));
        }
    }
    let last_success = jobs
        .iter()
        .filter(|j| outcome(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.clone())
        .max();
    if last_success.is_some() && last_success > status.last_successful_time {
        status.last_successful_time = last_success;
    }
    status.active = (!active.is_empty()).then_some(active);
    clean_history(&ctx, &cj, &jobs).await?;

    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        write_status(&ctx, &cj, status).await?;
        return Ok(Action::await_change());
    }
    let sched = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            ctx.events
                .warning(
                    COMPONENT,
                    cj.as_ref(),
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                )
                .await;
            write_status(&ctx, &cj, status).await?;
            return Ok(Action::await_change());
        }
    };
    let now = Timestamp::now();
    let since = status
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    let (due, missed) = sched.last_missed(since, now);
    let next = sched.next_after(now);
    let requeue = next.map(|n| {
        Duration::from_millis(
            u64::try_from((n.as_millisecond() - now.as_millisecond()).max(0)).unwrap_or(0) + 100,
        )
    });
    let (ctx_ref, cj_ref) = (&ctx, &cj);
    let done = |status| async move {
        write_status(ctx_ref, cj_ref, status)
            .await
            .map(|()| requeue.map_or(Action::await_change(), Action::requeue))
    };
    let Some(due) = due else {
        return done(status).await;
    };
    if missed > 100 {
        ctx.events
            .warning(COMPONENT, cj.as_ref(), "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew")
            .await;
    }
    if let Some(deadline) = spec.starting_deadline_seconds
        && due.as_second().saturating_add(deadline) < now.as_second()
    {
        ctx.events
            .warning(
                COMPONENT,
                cj.as_ref(),
                "MissSchedule",
                format!("Missed scheduled time to start a job: {due}"),
            )
            .await;
        return done(status).await;
    }
    let running = status.active.clone().unwrap_or_default();
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !running.is_empty() => {
            ctx.events
                .normal(COMPONENT, cj.as_ref(), "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
                .await;
            return done(status).await;
        }
        Some("Replace") => {
            for r in &running {
                delete_job(
                    &ctx,
                    &cj,
                    &ns,
                    r.name.as_deref().unwrap_or_default(),
                    r.uid.clone(),
                )
                .await?;
            }
            status.active = None;
        }
        _ => {}
    }
    let job = create_job(&ctx, &cj, due).await?;
    if let Some(job) = job {
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(job_ref(&job));
    }
    status.last_schedule_time = Some(Time(due));
    done(status).await
}

/// Creates the job for `due`; `None` when it cannot be created now.
async fn create_job(ctx: &Shared, cj: &CronJob, due: Timestamp) -> Result<Option<Job>> {
    let ns = cj.namespace().unwrap_or_default();
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = format!("{}-{}", cj.name_any(), due.as_second() / 60);
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_AT.into(), due.to_string());
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    match ctx
        .api::<Job>(&ns)
        .create(&PostParams::default(), &job)
        .await
    {
        Ok(created) => {
            ctx.events
                .normal(
                    COMPONENT,
                    cj,
                    "SuccessfulCreate",
                    format!("Created job {name}"),
                )
                .await;
            ctx.jobs.wait_for_write(&created, CACHE_WAIT).await;
            Ok(Some(created))
        }
        // Already made for this time (an earlier attempt whose status write was lost).
        Err(e) if is_already_exists(&e) => Ok(ctx
            .api::<Job>(&ns)
            .get_opt(&name)
            .await
            .ctx(|| format!("reading job {name}"))?),
        Err(e) if is_namespace_terminating(&e) => Ok(None),
        Err(e) => {
            ctx.events
                .warning(
                    COMPONENT,
                    cj,
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                )
                .await;
            Err(e).ctx(|| format!("creating job {ns}/{name}"))
        }
    }
}

async fn delete_job(
    ctx: &Shared,
    cj: &CronJob,
    ns: &str,
    name: &str,
    uid: Option<String>,
) -> Result<()> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..Default::default()
    };
    match ctx.api::<Job>(ns).delete(name, &dp).await {
        Ok(_) => {
            ctx.events
                .normal(
                    COMPONENT,
                    cj,
                    "SuccessfulDelete",
                    format!("Deleted job {name}"),
                )
                .await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("deleting job {ns}/{name}")),
    }
}

/// Keeps the newest successful and failed jobs up to their limits.
async fn clean_history(ctx: &Shared, cj: &CronJob, jobs: &[Arc<Job>]) -> Result<()> {
    let spec = cj.spec.clone().unwrap_or_default();
    let ns = cj.namespace().unwrap_or_default();
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| outcome(j) == Some(kind) && j.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = done
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        // `jobs` is oldest first.
        for j in done.into_iter().take(excess) {
            delete_job(ctx, cj, &ns, &j.name_any(), j.uid()).await?;
        }
    }
    Ok(())
}

async fn write_status(ctx: &Shared, cj: &CronJob, status: CronJobStatus) -> Result<()> {
    if cj.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = cj.clone();
    updated.status = Some(status);
    crate::workload::replace_status(ctx, &ctx.cron_jobs, updated).await
}
