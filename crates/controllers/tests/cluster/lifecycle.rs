//! Namespace deletion, service accounts and the garbage collector.

use crate::common::nodes::FakeNodes;
use crate::common::{Cluster, LIMIT, obj, test_options, wait_list, wait_object};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_content_then_the_namespace() -> anyhow::Result<()> {
    crate::common::init_logging();
    let opts = controllers::ControllerOptions {
        root_ca_pem: Some("-----TEST CA-----".into()),
        ..test_options()
    };
    let c = Cluster::start_with(opts).await?;
    let _nodes = FakeNodes::start(c.admin.clone(), &["node-a"]).await?;
    c.create_namespace("doomed").await?;

    // Every namespace gets a default service account and the cluster CA.
    let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "doomed");
    wait_object(
        accounts,
        "default",
        LIMIT,
        "the default service account",
        |sa| sa.is_some(),
    )
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(c.admin.clone(), "doomed");
    wait_object(
        cms.clone(),
        "kube-root-ca.crt",
        LIMIT,
        "the root CA published",
        |cm| {
            cm.and_then(|c| c.data.clone())
                .is_some_and(|d| d.get("ca.crt").map(String::as_str) == Some("-----TEST CA-----"))
        },
    )
    .await?;
    // A token Secret for the account is filled in.
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), "doomed");
    secrets
        .create(&PostParams::default(), &obj(json!({
            "metadata": {"name": "default-token", "annotations": {"kubernetes.io/service-account.name": "default"}},
            "type": "kubernetes.io/service-account-token",
        })))
        .await?;
    wait_object(
        secrets,
        "default-token",
        LIMIT,
        "the token filled in",
        |s| {
            s.and_then(|s| s.data.clone()).is_some_and(|d| {
                d.get("token").is_some_and(|t| !t.0.is_empty())
                    && d.contains_key("ca.crt")
                    && d.contains_key("namespace")
            })
        },
    )
    .await?;

    // A Deployment inside tries to replace its pods while they go.
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "doomed");
    deployments
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            })),
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "doomed");
    pods.create(
        &PostParams::default(),
        &obj(json!({
            "metadata": {"name": "worker"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        })),
    )
    .await?;
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "settings"}, "data": {"a": "b"}})),
    )
    .await?;
    wait_list(
        pods.clone(),
        watcher::Config::default(),
        LIMIT,
        "3 pods running",
        |items| {
            items.len() == 3
                && items
                    .iter()
                    .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        },
    )
    .await?;

    let namespaces: Api<Namespace> = Api::all(c.admin.clone());
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await?;
    wait_object(
        namespaces,
        "doomed",
        LIMIT,
        "the namespace to be gone",
        |ns| ns.is_none(),
    )
    .await?;
    assert!(pods.list(&Default::default()).await?.items.is_empty());
    assert!(cms.list(&Default::default()).await?.items.is_empty());
    assert!(
        deployments
            .list(&Default::default())
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collector_cascades_in_background_foreground_and_orphans() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(c.admin.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), "default");
    let owner_of = |owner: &ConfigMap, block: bool| {
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid(),
                "controller": true, "blockOwnerDeletion": block}])
    };
    for (policy, owner_name) in [
        (PropagationPolicy::Background, "bg"),
        (PropagationPolicy::Foreground, "fg"),
        (PropagationPolicy::Orphan, "orphan"),
    ] {
        let owner = cms
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": owner_name}})),
            )
            .await?;
        for i in 0..2 {
            secrets
                .create(&PostParams::default(), &obj(json!({
                    "metadata": {"name": format!("{owner_name}-{i}"), "labels": {"owner": owner_name},
                                 "ownerReferences": owner_of(&owner, true)},
                })))
                .await?;
        }
        cms.delete(
            owner_name,
            &DeleteParams {
                propagation_policy: Some(policy.clone()),
                ..Default::default()
            },
        )
        .await?;
        let by_owner = watcher::Config::default().labels(&format!("owner={owner_name}"));
        match policy {
            PropagationPolicy::Orphan => {
                let left = wait_list(
                    secrets.clone(),
                    by_owner,
                    LIMIT,
                    "orphaned dependents",
                    |items| {
                        items.len() == 2 && items.iter().all(|s| s.owner_references().is_empty())
                    },
                )
                .await?;
                assert_eq!(left.len(), 2);
            }
            _ => {
                wait_list(
                    secrets.clone(),
                    by_owner,
                    LIMIT,
                    "dependents deleted",
                    |items| items.is_empty(),
                )
                .await?;
            }
        }
        wait_object(cms.clone(), owner_name, LIMIT, "the owner gone", |o| {
            o.is_none()
        })
        .await?;
    }
    Ok(())
}
