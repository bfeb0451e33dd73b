//! Jobs and CronJobs.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::nodes::{EXIT_ANNOTATION, FakeNodes};
use crate::common::{Cluster, LIMIT, obj, wait_list, wait_object};

fn job(name: &str, exit: Option<&str>, spec: serde_json::Value) -> Job {
    let mut annotations = json!({});
    if let Some(code) = exit {
        annotations[EXIT_ANNOTATION] = json!(code);
    }
    let mut j = json!({
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"annotations": annotations},
                              "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        j["spec"][k] = v.clone();
    }
    obj(j)
}

fn condition(j: Option<&Job>, type_: &str) -> Option<String> {
    j?.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")?
        .reason
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_fail_time_out_and_expire() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a", "node-b"]).await?;
    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");

    jobs.create(
        &PostParams::default(),
        &job("ok", Some("0"), json!({"completions": 3, "parallelism": 2})),
    )
    .await?;
    jobs.create(
        &PostParams::default(),
        &job("broken", Some("1"), json!({"backoffLimit": 0})),
    )
    .await?;
    jobs.create(
        &PostParams::default(),
        &job("slow", None, json!({"activeDeadlineSeconds": 2})),
    )
    .await?;
    jobs.create(
        &PostParams::default(),
        &job("brief", Some("0"), json!({"ttlSecondsAfterFinished": 1})),
    )
    .await?;

    c.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=60s",
    ])
    .await?;
    let ok = jobs.get("ok").await?;
    let s = ok.status.clone().unwrap_or_default();
    assert_eq!(
        (s.succeeded, s.failed.unwrap_or(0), s.active),
        (Some(3), 0, Some(0))
    );
    assert!(s.completion_time.is_some() && s.start_time.is_some());
    // Counted pods lose the tracking finalizer.
    let ok_pods = pods
        .list(&crate::common::labels_param("job-name=ok"))
        .await?
        .items;
    assert_eq!(ok_pods.len(), 3);
    assert!(
        ok_pods.iter().all(|p| p.finalizers().is_empty()),
        "{:?}",
        ok_pods.iter().map(|p| p.finalizers()).collect::<Vec<_>>()
    );

    let broken = wait_object(jobs.clone(), "broken", LIMIT, "broken to fail", |j| {
        condition(j, "Failed").is_some()
    })
    .await?;
    assert_eq!(
        condition(broken.as_ref(), "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    let slow = wait_object(jobs.clone(), "slow", LIMIT, "slow to time out", |j| {
        condition(j, "Failed").is_some()
    })
    .await?;
    assert_eq!(
        condition(slow.as_ref(), "Failed").as_deref(),
        Some("DeadlineExceeded")
    );
    wait_list(
        pods.clone(),
        watcher::Config::default().labels("job-name=slow"),
        LIMIT,
        "slow's pod deleted",
        |items| {
            items
                .iter()
                .all(|p| p.metadata.deletion_timestamp.is_some())
        },
    )
    .await?;
    wait_object(
        jobs.clone(),
        "brief",
        LIMIT,
        "brief deleted after its TTL",
        |j| j.is_none(),
    )
    .await?;

    let described = c.kubectl_ok(&["describe", "job/ok"]).await?;
    assert!(
        described.contains("SuccessfulCreate") && described.contains("Completed"),
        "{described}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_starts_a_missed_run_and_keeps_history_limits() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a"]).await?;
    let cronjobs: Api<CronJob> = Api::namespaced(c.admin.clone(), "default");
    cronjobs
        .create(&PostParams::default(), &obj(json!({
            "metadata": {"name": "tick"},
            "spec": {"schedule": "*/5 * * * *", "suspend": true, "successfulJobsHistoryLimit": 0,
                     "jobTemplate": {"metadata": {"labels": {"from": "tick"}},
                                     "spec": {"template": {"metadata": {"annotations": {EXIT_ANNOTATION: "0"}},
                                                           "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}},
        })))
        .await?;
    // Pretend the last run was long ago, then resume: the latest missed time runs now
    // rather than at the next */5 minute.
    let long_ago = Time(jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30));
    cronjobs
        .patch_status(
            "tick",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": long_ago}})),
        )
        .await?;
    cronjobs
        .patch(
            "tick",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await?;

    let jobs: Api<Job> = Api::namespaced(c.admin.clone(), "default");
    let made = wait_list(
        jobs.clone(),
        watcher::Config::default().labels("from=tick"),
        LIMIT,
        "a job from the cronjob",
        |items| !items.is_empty(),
    )
    .await?;
    let first = &made[0];
    assert!(
        first
            .annotations()
            .contains_key("batch.kubernetes.io/cronjob-scheduled-timestamp")
    );
    assert!(
        first
            .owner_references()
            .iter()
            .any(|r| r.kind == "CronJob" && r.controller == Some(true))
    );
    // It completes; with a history limit of 0 it is then deleted, and the
    // CronJob records the success.
    let cj = wait_object(
        cronjobs.clone(),
        "tick",
        LIMIT,
        "the success recorded",
        |cj| {
            cj.and_then(|c| c.status.clone())
                .is_some_and(|s| s.last_successful_time.is_some() && s.active.is_none())
        },
    )
    .await?;
    let scheduled = cj
        .and_then(|c| c.status?.last_schedule_time)
        .map(|t| t.0)
        .expect("last schedule time");
    assert_eq!(
        scheduled.as_second() % 300,
        0,
        "runs at a */5 minute: {scheduled}"
    );
    wait_list(
        jobs,
        watcher::Config::default().labels("from=tick"),
        LIMIT,
        "the finished job cleaned up",
        |items| {
            items
                .iter()
                .all(|j| j.metadata.deletion_timestamp.is_some())
        },
    )
    .await?;
    Ok(())
}
