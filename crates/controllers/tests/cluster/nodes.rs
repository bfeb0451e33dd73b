//! Node IPAM, node lifecycle and taint-based eviction: a dead node's pods move.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::nodes::FakeNodes;
use crate::common::{Cluster, LIMIT, obj, wait_list, wait_object};

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_pods_are_evicted_and_replaced_on_healthy_nodes() -> anyhow::Result<()> {
    crate::common::init_logging();
    let c = Cluster::start().await?;
    let nodes_agent = FakeNodes::start(c.admin.clone(), &["node-a", "node-b"]).await?;
    let nodes: Api<Node> = Api::all(c.admin.clone());

    // Every node gets its own pod CIDR from the cluster CIDR.
    let all = wait_list(
        nodes.clone(),
        watcher::Config::default(),
        LIMIT,
        "pod CIDRs",
        |items| {
            items.len() == 2
                && items
                    .iter()
                    .all(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some())
        },
    )
    .await?;
    let mut cidrs: Vec<String> = all
        .iter()
        .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
        .collect();
    cidrs.sort();
    assert_eq!(cidrs, ["10.42.0.0/24", "10.42.1.0/24"]);

    // Short tolerations keep the test quick; the API server's default is 300 s.
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    deployments
        .create(&PostParams::default(), &obj(json!({
            "metadata": {"name": "app"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "app"}},
                     "template": {"metadata": {"labels": {"app": "app"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                           "tolerations": [
                                               {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
                                               {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]}}},
        })))
        .await?;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    let by_app = watcher::Config::default().labels("app=app");
    let before = wait_list(
        pods.clone(),
        by_app.clone(),
        LIMIT,
        "4 ready pods on both nodes",
        |items| {
            let live: Vec<&Pod> = items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && ready(p))
                .collect();
            live.len() == 4
                && live.iter().any(|p| node_of(p) == "node-a")
                && live.iter().any(|p| node_of(p) == "node-b")
        },
    )
    .await?;
    let doomed: Vec<String> = before
        .iter()
        .filter(|p| node_of(p) == "node-a")
        .map(|p| p.name_any())
        .collect();

    nodes_agent.kill("node-a");
    wait_object(nodes.clone(), "node-a", LIMIT, "node-a unreachable", |n| {
        n.is_some_and(|n| {
            let unknown = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Ready" && c.status == "Unknown")
                });
            let tainted = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|t| {
                    t.iter().any(|t| {
                        t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"
                    })
                });
            unknown && tainted
        })
    })
    .await?;

    // The pods on the dead node are deleted (they stay Terminating: no agent
    // finishes them) and their replacements run on node-b.
    wait_list(
        pods.clone(),
        by_app,
        LIMIT,
        "4 ready pods on node-b and the old ones terminating",
        |items| {
            let live: Vec<&Pod> = items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            live.len() == 4
                && live.iter().all(|p| node_of(p) == "node-b" && ready(p))
                && doomed.iter().all(|d| {
                    items
                        .iter()
                        .find(|p| &p.name_any() == d)
                        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
                })
        },
    )
    .await?;
    wait_object(
        deployments,
        "app",
        LIMIT,
        "the deployment available again",
        |d| {
            d.and_then(|d| d.status.clone())
                .is_some_and(|s| s.available_replicas == Some(4))
        },
    )
    .await?;

    let events: Api<Event> = Api::all(c.admin.clone());
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for want in [
        "NodeNotReady",
        "TaintManagerEviction",
        "SuccessfulCreate",
        "ScalingReplicaSet",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "no {want} event in {reasons:?}"
        );
    }
    // kubectl describe finds the node controller's events and the taint.
    let described = c.kubectl_ok(&["describe", "node", "node-a"]).await?;
    assert!(
        described.contains("NodeNotReady")
            && described.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{described}"
    );
    // The controller manager ran as the holder of its leader Lease.
    let leases: Api<Lease> = Api::namespaced(c.admin.clone(), "kube-system");
    let holder = leases
        .get("kube-controller-manager")
        .await?
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder, Some(crate::common::test_options().identity));
    Ok(())
}

/// Pod GC finishes what no node agent will: terminating pods on a node taken
/// out of service, and pods whose node was deleted (after a quarantine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_gc_removes_pods_of_out_of_service_and_deleted_nodes() -> anyhow::Result<()> {
    crate::common::init_logging();
    let mut opts = crate::common::test_options();
    opts.pod_gc_quarantine = std::time::Duration::from_secs(1);
    let c = Cluster::start_with(opts).await?;
    let nodes: Api<Node> = Api::all(c.admin.clone());
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    for name in ["down", "gone"] {
        nodes
            .create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": name},
                    "status": {"conditions": [{"type": "Ready", "status": "False"}]}})),
            )
            .await?;
        let pod: Pod = obj(json!({"metadata": {"name": format!("on-{name}")},
            "spec": {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}]}}));
        pods.create(&PostParams::default(), &pod).await?;
    }

    // Deleted while its node is down: it stays terminating, as a bound pod
    // waits for its node agent, until the node is declared out of service.
    pods.delete("on-down", &Default::default()).await?;
    let terminating = wait_object(pods.clone(), "on-down", LIMIT, "on-down terminating", |p| {
        p.is_some_and(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await?;
    assert!(terminating.is_some(), "kept while its node may come back");
    nodes
        .patch(
            "down",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"taints": [
                {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]}})),
        )
        .await?;
    wait_object(pods.clone(), "on-down", LIMIT, "on-down removed", |p| {
        p.is_none()
    })
    .await?;

    // A deleted node's pod is removed once the quarantine has passed.
    nodes.delete("gone", &Default::default()).await?;
    wait_object(pods.clone(), "on-gone", LIMIT, "on-gone removed", |p| {
        p.is_none()
    })
    .await?;
    Ok(())
}
