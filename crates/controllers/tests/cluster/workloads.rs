//! ReplicaSets and Deployments, the rollout commands through the real kubectl.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::nodes::FakeNodes;
use crate::common::{Cluster, LIMIT, obj, wait_list, wait_object};

fn owned_by(p: &Pod, uid: &str) -> bool {
    p.owner_references()
        .iter()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

fn running(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_keeps_its_count_adopting_and_releasing_pods() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a", "node-b"]).await?;
    let sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let rs = sets
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": "cache"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "cache"}},
                         "template": {"metadata": {"labels": {"app": "cache", "tier": "x"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            })),
        )
        .await?;
    let uid = rs.uid().unwrap_or_default();
    wait_object(sets.clone(), "cache", LIMIT, "3 ready replicas", |rs| {
        rs.and_then(|r| r.status.clone()).is_some_and(|s| {
            s.replicas == 3
                && s.ready_replicas == Some(3)
                && s.available_replicas == Some(3)
                && s.fully_labeled_replicas == Some(3)
                && s.observed_generation == Some(1)
        })
    })
    .await?;

    // An orphan that matches is adopted, and one pod too many goes.
    pods.create(
        &PostParams::default(),
        &obj(json!({
            "metadata": {"name": "stray", "labels": {"app": "cache"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        })),
    )
    .await?;
    let by_app = watcher::Config::default().labels("app=cache");
    wait_list(
        pods.clone(),
        by_app.clone(),
        LIMIT,
        "3 owned pods after adoption",
        |items| {
            let live: Vec<&Pod> = items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            live.len() == 3 && live.iter().all(|p| owned_by(p, &uid))
        },
    )
    .await?;

    // A pod relabelled out of the selector is released and replaced.
    let victim = pods
        .list(&crate::common::labels_param("app=cache"))
        .await?
        .items
        .into_iter()
        .find(running)
        .expect("a running pod");
    pods.patch(
        &victim.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "elsewhere"}}})),
    )
    .await?;
    wait_object(
        pods.clone(),
        &victim.name_any(),
        LIMIT,
        "the relabelled pod released",
        |p| p.is_some_and(|p| p.owner_references().is_empty()),
    )
    .await?;
    wait_list(
        pods.clone(),
        by_app.clone(),
        LIMIT,
        "3 running owned pods",
        |items| {
            items
                .iter()
                .filter(|p| running(p) && owned_by(p, &uid))
                .count()
                == 3
        },
    )
    .await?;

    sets.patch(
        "cache",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await?;
    wait_list(pods.clone(), by_app, LIMIT, "1 pod left", |items| {
        items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count()
            == 1
    })
    .await?;
    let events: Api<Event> = Api::namespaced(c.admin.clone(), "default");
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid.as_str()))
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "SuccessfulCreate"),
        "events: {reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "SuccessfulDelete"),
        "events: {reasons:?}"
    );
    Ok(())
}

fn image_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn replica_sets(c: &Cluster) -> anyhow::Result<Vec<ReplicaSet>> {
    let sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    Ok(sets
        .list(&crate::common::labels_param("app=web"))
        .await?
        .items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rollout_history_undo_pause_resume_restart_and_scale_through_kubectl()
-> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a", "node-b"]).await?;
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    c.apply(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"kubernetes.io/change-cause": "first"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "busybox:1"}]}},
        },
    }))
    .await?;
    let status = c
        .kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await?;
    assert!(status.contains("successfully rolled out"), "{status}");

    // A new template is rolled out as revision 2.
    c.kubectl_ok(&["set", "image", "deploy/web", "web=busybox:2"])
        .await?;
    c.kubectl_ok(&[
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=second",
        "--overwrite",
    ])
    .await?;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await?;
    // The annotation reaches the new ReplicaSet with the next reconcile.
    let sets_api: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    wait_list(
        sets_api,
        watcher::Config::default().labels("app=web"),
        LIMIT,
        "the change cause copied",
        |items| {
            items.iter().any(|r| {
                r.annotations()
                    .get("kubernetes.io/change-cause")
                    .map(String::as_str)
                    == Some("second")
            })
        },
    )
    .await?;
    let history = c.kubectl_ok(&["rollout", "history", "deploy/web"]).await?;
    assert!(
        history.contains("1         first") && history.contains("2         second"),
        "{history}"
    );
    let sets = replica_sets(&c).await?;
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets.iter()
            .filter(|r| r.spec.as_ref().and_then(|s| s.replicas) == Some(3))
            .count(),
        1
    );

    // Undo brings revision 1's template back as revision 3, reusing its ReplicaSet.
    c.kubectl_ok(&["rollout", "undo", "deploy/web"]).await?;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await?;
    let d = deployments.get("web").await?;
    assert_eq!(image_of(&d), "busybox:1");
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    let sets = replica_sets(&c).await?;
    assert_eq!(sets.len(), 2, "undo reuses the old replica set");
    let reused = sets
        .iter()
        .find(|r| {
            r.annotations()
                .get("deployment.kubernetes.io/revision")
                .map(String::as_str)
                == Some("3")
        })
        .expect("revision 3");
    assert_eq!(
        reused
            .annotations()
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );

    // While paused a new template does not roll out; resuming does.
    c.kubectl_ok(&["rollout", "pause", "deploy/web"]).await?;
    c.kubectl_ok(&["set", "image", "deploy/web", "web=busybox:3"])
        .await?;
    wait_object(
        deployments.clone(),
        "web",
        LIMIT,
        "the paused template observed",
        |d| {
            d.is_some_and(|d| {
                let s = d.status.clone().unwrap_or_default();
                s.observed_generation == d.metadata.generation
                    && s.conditions.iter().flatten().any(|c| {
                        c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")
                    })
            })
        },
    )
    .await?;
    assert_eq!(replica_sets(&c).await?.len(), 2, "no rollout while paused");
    c.kubectl_ok(&["rollout", "resume", "deploy/web"]).await?;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await?;
    assert_eq!(replica_sets(&c).await?.len(), 3);

    c.kubectl_ok(&["rollout", "restart", "deploy/web"]).await?;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await?;
    assert_eq!(replica_sets(&c).await?.len(), 4);

    c.kubectl_ok(&["scale", "deploy/web", "--replicas=5"])
        .await?;
    c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await?;
    let d = deployments.get("web").await?;
    let s = d.status.clone().unwrap_or_default();
    assert_eq!(
        (
            s.replicas,
            s.ready_replicas,
            s.available_replicas,
            s.updated_replicas
        ),
        (Some(5), Some(5), Some(5), Some(5))
    );
    assert!(
        s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );

    let described = c.kubectl_ok(&["describe", "deploy/web"]).await?;
    assert!(
        described.contains("ScalingReplicaSet") && described.contains("Scaled up replica set"),
        "{described}"
    );

    // Foreground deletion: pods, then replica sets, then the deployment.
    c.kubectl_ok(&[
        "delete",
        "deploy/web",
        "--cascade=foreground",
        "--wait=false",
    ])
    .await?;
    wait_object(deployments, "web", LIMIT, "the deployment gone", |d| {
        d.is_none()
    })
    .await?;
    assert!(replica_sets(&c).await?.is_empty());
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    assert!(
        pods.list(&crate::common::labels_param("app=web"))
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_cannot_progress_exceeds_its_deadline() -> anyhow::Result<()> {
    crate::common::init_logging();
    // No nodes: the pods stay pending and the rollout cannot progress.
    let c = Cluster::start().await?;
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    deployments
        .create(&PostParams::default(), &obj(json!({
            "metadata": {"name": "stuck"},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 2, "selector": {"matchLabels": {"app": "stuck"}},
                     "template": {"metadata": {"labels": {"app": "stuck"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        })))
        .await?;
    wait_object(
        deployments,
        "stuck",
        LIMIT,
        "the progress deadline exceeded",
        |d| {
            d.and_then(|d| d.status.clone()).is_some_and(|s| {
                s.conditions.iter().flatten().any(|c| {
                    c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                })
            })
        },
    )
    .await?;
    let err = c
        .kubectl_ok(&["rollout", "status", "deploy/stuck", "--timeout=30s"])
        .await
        .expect_err("rollout status fails once the deadline passed");
    assert!(
        err.to_string().contains("exceeded its progress deadline"),
        "{err}"
    );
    Ok(())
}
