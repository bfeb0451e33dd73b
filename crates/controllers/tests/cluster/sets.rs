//! StatefulSets and DaemonSets.

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::nodes::FakeNodes;
use crate::common::{Cluster, LIMIT, obj, wait_list, wait_object};

fn live_names(items: &[Pod]) -> Vec<String> {
    let mut names: Vec<String> = items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect();
    names.sort();
    names
}

fn image(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_starts_in_order_keeps_claims_and_updates_by_partition() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let nodes = FakeNodes::start(c.admin.clone(), &["node-a"]).await?;
    // With the only node down the first pod cannot start, so the second must wait.
    nodes.kill("node-a");
    let sets: Api<StatefulSet> = Api::namespaced(c.admin.clone(), "default");
    sets.create(&PostParams::default(), &obj(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    })))
    .await?;
    wait_object(
        sets.clone(),
        "db",
        LIMIT,
        "db-0 created and waited on",
        |s| {
            s.and_then(|s| s.status.clone())
                .is_some_and(|st| st.observed_generation == Some(1) && st.replicas == 1)
        },
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    assert_eq!(
        live_names(
            &pods
                .list(&crate::common::labels_param("app=db"))
                .await?
                .items
        ),
        ["db-0"]
    );

    nodes.revive("node-a");
    let by_app = watcher::Config::default().labels("app=db");
    let all = wait_list(
        pods.clone(),
        by_app.clone(),
        LIMIT,
        "db-0..2 ready",
        |items| live_names(items) == ["db-0", "db-1", "db-2"] && items.iter().all(ready),
    )
    .await?;
    let db1 = all.iter().find(|p| p.name_any() == "db-1").expect("db-1");
    let spec = db1.spec.clone().unwrap_or_default();
    assert_eq!(
        (spec.hostname.as_deref(), spec.subdomain.as_deref()),
        (Some("db-1"), Some("db"))
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.admin.clone(), "default");
    let mut claim_names: Vec<String> = claims
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    claim_names.sort();
    assert_eq!(claim_names, ["data-db-0", "data-db-1", "data-db-2"]);

    // A partitioned update only replaces ordinals at or above the partition.
    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}})),
    )
    .await?;
    wait_list(
        pods.clone(),
        by_app.clone(),
        LIMIT,
        "only db-2 updated",
        |items| {
            let live: Vec<&Pod> = items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && ready(p))
                .collect();
            live.len() == 3
                && live
                    .iter()
                    .all(|p| (p.name_any() == "db-2") == (image(p) == "busybox:2"))
        },
    )
    .await?;
    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await?;
    c.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await?;
    let st = sets.get("db").await?.status.unwrap_or_default();
    assert_eq!(st.current_revision, st.update_revision);
    assert_eq!((st.updated_replicas, st.ready_replicas), (Some(3), Some(3)));

    // History and undo through kubectl.
    let history = c
        .kubectl_ok(&["rollout", "history", "statefulset/db"])
        .await?;
    assert!(history.contains('1') && history.contains('2'), "{history}");
    c.kubectl_ok(&["rollout", "undo", "statefulset/db"]).await?;
    c.kubectl_ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .await?;
    let now = pods
        .list(&crate::common::labels_param("app=db"))
        .await?
        .items;
    assert!(
        now.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .all(|p| image(p) == "busybox:1")
    );

    // Scaling down removes the highest ordinals and keeps their claims...
    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await?;
    wait_list(
        pods.clone(),
        by_app.clone(),
        LIMIT,
        "db-0 and db-1 left",
        |items| live_names(items) == ["db-0", "db-1"],
    )
    .await?;
    assert_eq!(claims.list(&Default::default()).await?.items.len(), 3);
    // ...unless the retention policy deletes them on scale-down.
    let policy = json!({"spec": {"replicas": 1,
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"}}});
    sets.patch("db", &PatchParams::default(), &Patch::Merge(policy))
        .await?;
    wait_list(pods, by_app, LIMIT, "only db-0 left", |items| {
        live_names(items) == ["db-0"]
    })
    .await?;
    wait_list(
        claims,
        watcher::Config::default(),
        LIMIT,
        "db-1's claim deleted",
        |items| {
            let mut names: Vec<String> = items.iter().map(|c| c.name_any()).collect();
            names.sort();
            names == ["data-db-0", "data-db-2"]
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_runs_one_pod_per_eligible_node_and_rolls_out() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a", "node-b", "node-c"]).await?;
    let nodes: Api<Node> = Api::all(c.admin.clone());
    nodes
        .patch("node-c", &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}})))
        .await?;
    let sets: Api<DaemonSet> = Api::namespaced(c.admin.clone(), "default");
    sets.create(&PostParams::default(), &obj(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}},
    })))
    .await?;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let by_app = watcher::Config::default().labels("app=agent");
    let placed = wait_list(
        pods.clone(),
        by_app.clone(),
        LIMIT,
        "a ready pod on node-a and node-b",
        |items| {
            let mut on: Vec<String> = items
                .iter()
                .filter(|p| ready(p))
                .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                .collect();
            on.sort();
            on == ["node-a", "node-b"]
        },
    )
    .await?;
    // Daemon pods tolerate unreachable nodes for ever.
    let tol = placed[0]
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    assert!(tol.iter().any(
        |t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.toleration_seconds.is_none()
    ));
    wait_object(sets.clone(), "agent", LIMIT, "status for 2 nodes", |d| {
        d.and_then(|d| d.status.clone()).is_some_and(|s| {
            s.desired_number_scheduled == 2 && s.number_ready == 2 && s.number_available == Some(2)
        })
    })
    .await?;

    // The taint goes: node-c gets its pod.
    nodes
        .patch(
            "node-c",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": null}})),
        )
        .await?;
    wait_object(sets.clone(), "agent", LIMIT, "3 ready", |d| {
        d.and_then(|d| d.status.clone())
            .is_some_and(|s| s.desired_number_scheduled == 3 && s.number_ready == 3)
    })
    .await?;

    c.kubectl_ok(&["set", "image", "daemonset/agent", "c=busybox:2"])
        .await?;
    c.kubectl_ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .await?;
    let now = pods
        .list(&crate::common::labels_param("app=agent"))
        .await?
        .items;
    let live: Vec<&Pod> = now
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|p| image(p) == "busybox:2"));
    let history = c
        .kubectl_ok(&["rollout", "history", "daemonset/agent"])
        .await?;
    assert!(history.contains('2'), "{history}");
    Ok(())
}
