//! The scheduler against the real API server: Node objects created through the
//! API (no node agent), pods placed, unschedulable pods reported with
//! Kubernetes' messages, preemption carried out.

mod common;

use std::time::Duration;

use common::ApiServer;
use common::objects::{node, pod};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, wait::await_condition, watcher};
use scheduler::SchedulerOptions;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn start_scheduler(server: &ApiServer) -> tokio::task::JoinHandle<()> {
    let opts = SchedulerOptions {
        identity: "test-scheduler".into(),
        ..Default::default()
    };
    let client = server.scheduler.clone();
    tokio::spawn(async move {
        if let Err(e) = scheduler::run(client, opts).await {
            panic!("scheduler stopped: {e}");
        }
    })
}

async fn create_node(nodes: &Api<Node>, n: Node) {
    nodes
        .create(&PostParams::default(), &n)
        .await
        .expect("create node");
}

async fn patch_node(nodes: &Api<Node>, name: &str, patch: serde_json::Value) {
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap_or_else(|e| panic!("patch node {name}: {e}"));
}

async fn create_pod(pods: &Api<Pod>, p: Pod) {
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create pod");
}

/// Waits until the pod is bound and returns its node.
async fn bound_node(pods: &Api<Pod>, name: &str) -> String {
    let cond = |p: Option<&Pod>| {
        p.and_then(|p| p.spec.as_ref()?.node_name.as_ref())
            .is_some_and(|n| !n.is_empty())
    };
    let pod = tokio::time::timeout(WAIT, await_condition(pods.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("pod {name} was not bound in time"))
        .expect("watch")
        .expect("pod exists");
    pod.spec.and_then(|s| s.node_name).unwrap_or_default()
}

/// Waits for `PodScheduled=False, reason Unschedulable` and returns its message.
async fn unschedulable_message(pods: &Api<Pod>, name: &str, expect: &str) -> String {
    let cond = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .is_some_and(|c| {
                c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(expect)
            })
    };
    match tokio::time::timeout(WAIT, await_condition(pods.clone(), name, cond)).await {
        Ok(_) => expect.to_string(),
        Err(_) => {
            let p = pods.get(name).await.expect("get pod");
            panic!(
                "pod {name} never reported {expect:?}; status: {:?}",
                p.status
            );
        }
    }
}

/// Waits for a FailedScheduling event about `pod` with `message`.
async fn failed_scheduling_event(events: &Api<Event>, pod: &str, message: &str) {
    let stream = watcher(events.clone(), watcher::Config::default()).applied_objects();
    let found = stream
        .filter_map(|e| async move { e.ok() })
        .any(|e| async move {
            e.involved_object.name.as_deref() == Some(pod)
                && e.reason.as_deref() == Some("FailedScheduling")
                && e.type_.as_deref() == Some("Warning")
                && e.message.as_deref() == Some(message)
        });
    assert!(
        tokio::time::timeout(WAIT, found).await.unwrap_or(false),
        "no FailedScheduling event for {pod} with {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_place_pods_and_unschedulable_pods_get_kubernetes_messages() {
    let server = ApiServer::start().await;
    let nodes: Api<Node> = Api::all(server.admin.clone());
    let pods: Api<Pod> = Api::namespaced(server.admin.clone(), "default");
    let events: Api<Event> = Api::namespaced(server.admin.clone(), "default");
    let gpu_taint = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    create_node(&nodes, node("small", "1", json!({}), json!([]))).await;
    create_node(
        &nodes,
        node(
            "gpu1",
            "4",
            json!({"accelerator": "gpu"}),
            gpu_taint.clone(),
        ),
    )
    .await;
    create_node(&nodes, node("gpu2", "4", json!({}), gpu_taint)).await;
    let _scheduler = start_scheduler(&server).await;

    // Resources and taints.
    create_pod(&pods, pod("big", "2", json!({}), json!({}))).await;
    let msg = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}.";
    unschedulable_message(&pods, "big", msg).await;
    failed_scheduling_event(&events, "big", msg).await;

    // A new node makes it schedulable: re-queued on the node event.
    create_node(&nodes, node("large", "8", json!({}), json!([]))).await;
    assert_eq!(bound_node(&pods, "big").await, "large");

    // Tolerations plus nodeSelector.
    let gpu_spec = json!({
        "nodeSelector": {"accelerator": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    });
    create_pod(&pods, pod("gpu-job", "1", json!({}), gpu_spec)).await;
    assert_eq!(bound_node(&pods, "gpu-job").await, "gpu1");

    // Cordon: the cordoned node takes nothing new.
    patch_node(&nodes, "large", json!({"spec": {"unschedulable": true}})).await;
    create_pod(&pods, pod("after-cordon", "500m", json!({}), json!({}))).await;
    assert_eq!(bound_node(&pods, "after-cordon").await, "small");

    // A node that is not Ready counts as tainted not-ready.
    let mut sick = node("sick", "16", json!({}), json!([]));
    if let Some(c) = sick.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        c[0].status = "False".into();
    }
    create_node(&nodes, sick).await;
    create_pod(&pods, pod("huge", "6", json!({}), json!({}))).await;
    unschedulable_message(
        &pods,
        "huge",
        "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         1 node(s) were unschedulable, 2 node(s) had untolerated taint {dedicated: gpu}.",
    )
    .await;

    // Host ports: the second pod wanting the port on the only open node waits.
    let port_spec = |n: &str| {
        json!({"nodeName": null, "nodeSelector": {"kubernetes.io/hostname": n},
               "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]}]})
    };
    create_pod(&pods, pod("port-a", "0", json!({}), port_spec("small"))).await;
    assert_eq!(bound_node(&pods, "port-a").await, "small");
    create_pod(&pods, pod("port-b", "0", json!({}), port_spec("small"))).await;
    unschedulable_message(
        &pods,
        "port-b",
        "0/5 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, \
         1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable, \
         2 node(s) had untolerated taint {dedicated: gpu}.",
    )
    .await;

    // The scheduler held the kube-scheduler lease.
    let leases: Api<Lease> = Api::namespaced(server.admin.clone(), "kube-system");
    let lease = leases.get("kube-scheduler").await.expect("lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("test-scheduler")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_spreading_and_preemption() {
    let server = ApiServer::start().await;
    let nodes: Api<Node> = Api::all(server.admin.clone());
    let pods: Api<Pod> = Api::namespaced(server.admin.clone(), "default");
    for (n, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
        create_node(
            &nodes,
            node(
                n,
                "2",
                json!({"topology.kubernetes.io/zone": zone}),
                json!([]),
            ),
        )
        .await;
    }
    let _scheduler = start_scheduler(&server).await;

    // Required anti-affinity by hostname: one per node, the fourth waits.
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let mut placed = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        create_pod(&pods, pod(&name, "0", json!({"app": "web"}), anti.clone())).await;
        placed.push(bound_node(&pods, &name).await);
    }
    placed.sort();
    assert_eq!(placed, vec!["n1", "n2", "n3"]);
    create_pod(&pods, pod("web-3", "0", json!({"app": "web"}), anti)).await;
    // The placed pods' own anti-affinity rejects it first, as in Kubernetes.
    unschedulable_message(
        &pods,
        "web-3",
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules.",
    )
    .await;

    // Required affinity to a zone holding a matching pod.
    let near = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}});
    create_pod(
        &pods,
        pod(
            "db",
            "0",
            json!({"app": "db"}),
            json!({"nodeSelector": {"kubernetes.io/hostname": "n3"}}),
        ),
    )
    .await;
    assert_eq!(bound_node(&pods, "db").await, "n3");
    create_pod(&pods, pod("near-db", "0", json!({}), near)).await;
    assert_eq!(bound_node(&pods, "near-db").await, "n3");

    // Topology spread over zones with DoNotSchedule: zone b gets the second.
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]});
    let mut zones = Vec::new();
    for i in 0..2 {
        let name = format!("spread-{i}");
        create_pod(
            &pods,
            pod(&name, "0", json!({"app": "spread"}), spread.clone()),
        )
        .await;
        let n = bound_node(&pods, &name).await;
        zones.push(if n == "n3" { "b" } else { "a" });
    }
    zones.sort();
    assert_eq!(zones, vec!["a", "b"]);

    // Preemption: fill every node with low-priority pods, then a high one.
    for n in ["n1", "n2", "n3"] {
        let name = format!("filler-{n}");
        create_pod(
            &pods,
            pod(
                &name,
                "2",
                json!({"app": "filler"}),
                json!({"nodeSelector": {"kubernetes.io/hostname": n}}),
            ),
        )
        .await;
        assert_eq!(bound_node(&pods, &name).await, n);
    }
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> =
        Api::all(server.admin.clone());
    let high: k8s_openapi::api::scheduling::v1::PriorityClass = serde_json::from_value(
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "high"}, "value": 1000}),
    )
    .expect("class");
    classes
        .create(&PostParams::default(), &high)
        .await
        .expect("priority class");
    let important = json!({"priorityClassName": "high"});
    create_pod(&pods, pod("important", "1", json!({}), important)).await;

    let nominated = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.nominated_node_name.as_ref())
            .is_some_and(|n| !n.is_empty())
    };
    let p = tokio::time::timeout(WAIT, await_condition(pods.clone(), "important", nominated))
        .await
        .expect("nominated in time")
        .expect("watch")
        .expect("pod");
    let target = p
        .status
        .and_then(|s| s.nominated_node_name)
        .unwrap_or_default();
    let victim = format!("filler-{target}");
    // With no node agent, a gracefully deleted pod stays terminating: finish
    // the deletion as a kubelet would.
    let gone = |p: Option<&Pod>| p.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
    tokio::time::timeout(WAIT, await_condition(pods.clone(), &victim, gone))
        .await
        .expect("victim deleted in time")
        .expect("watch");
    let _ = pods
        .delete(&victim, &DeleteParams::default().grace_period(0))
        .await;
    assert_eq!(bound_node(&pods, "important").await, target);
    let left = pods
        .list(&ListParams::default().labels("app=filler"))
        .await
        .expect("list");
    assert_eq!(left.items.len(), 2, "exactly one victim");
}

/// Places pods `{prefix}-0..n` one after the other and counts them per node.
async fn place_all(
    pods: &Api<Pod>,
    prefix: &str,
    n: usize,
    make: impl Fn(&str) -> Pod,
) -> std::collections::BTreeMap<String, usize> {
    let mut per_node = std::collections::BTreeMap::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        create_pod(pods, make(&name)).await;
        *per_node.entry(bound_node(pods, &name).await).or_default() += 1;
    }
    per_node
}

/// Pods that declare no spread constraints and request nothing are spread by
/// Kubernetes' system default constraints, by what their ReplicaSet or
/// Service selects. One big and two small nodes, none with a zone label:
/// resource scores alone (the default requests of pods that ask for nothing)
/// put four of the six replicas on the big node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_by_the_system_default_constraints() {
    let server = ApiServer::start().await;
    let nodes: Api<Node> = Api::all(server.admin.clone());
    let pods: Api<Pod> = Api::namespaced(server.admin.clone(), "default");
    for (n, cpu) in [("big", "16"), ("small-1", "2"), ("small-2", "2")] {
        create_node(&nodes, node(n, cpu, json!({}), json!([]))).await;
    }
    // No controller manager runs: the ReplicaSet is only read, its pods are made here.
    let labels = json!({"app": "web", "pod-template-hash": "abc"});
    let replica_sets: Api<ReplicaSet> = Api::namespaced(server.admin.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc"},
        "spec": {"replicas": 6, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .expect("replica set");
    let rs = replica_sets
        .create(&PostParams::default(), &rs)
        .await
        .expect("create replica set");
    let services: Api<Service> = Api::namespaced(server.admin.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "cache"},
        "spec": {"selector": {"app": "cache"}, "ports": [{"port": 80}]}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
    let _scheduler = start_scheduler(&server).await;

    let no_requests = json!({"containers": [{"name": "c", "image": "busybox"}]});
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web-abc".into(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let per_node = place_all(&pods, "web", 6, |name| {
        let mut p = pod(name, "0", labels.clone(), no_requests.clone());
        p.metadata.owner_references = Some(vec![owner.clone()]);
        p
    })
    .await;
    let even = |n| [("big", n), ("small-1", n), ("small-2", n)];
    let want = even(2).map(|(k, v)| (k.to_string(), v)).into();
    assert_eq!(per_node, want, "replicas by node");

    // Selected by a Service alone: one per node.
    let per_node = place_all(&pods, "cache", 3, |name| {
        pod(name, "0", json!({"app": "cache"}), no_requests.clone())
    })
    .await;
    let want = even(1).map(|(k, v)| (k.to_string(), v)).into();
    assert_eq!(per_node, want, "service pods by node");
}

/// Waits until `name`'s status.nominatedNodeName is `node` ("" for none).
async fn nominated_to(pods: &Api<Pod>, name: &str, node: &str) {
    let cond = |p: Option<&Pod>| {
        p.is_some_and(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.nominated_node_name.as_deref())
                .unwrap_or_default()
                == node
        })
    };
    if tokio::time::timeout(WAIT, await_condition(pods.clone(), name, cond))
        .await
        .is_err()
    {
        let p = pods.get(name).await.expect("get pod");
        panic!(
            "pod {name} was never nominated to {node:?}; status: {:?}",
            p.status
        );
    }
}

/// A pod whose nominated room a higher-priority preemption takes loses its
/// nomination (Kubernetes' getLowerPriorityNominatedPods); a nominated pod
/// for which no node can make room any more loses it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nominations_give_way_and_are_cleared_when_room_is_gone() {
    let server = ApiServer::start().await;
    let nodes: Api<Node> = Api::all(server.admin.clone());
    let pods: Api<Pod> = Api::namespaced(server.admin.clone(), "default");
    create_node(&nodes, node("n1", "3", json!({}), json!([]))).await;
    let _scheduler = start_scheduler(&server).await;
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> =
        Api::all(server.admin.clone());
    for (name, value) in [("mid", 10), ("top", 100)] {
        let class = serde_json::from_value(json!({"apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass", "metadata": {"name": name}, "value": value}))
        .expect("class");
        classes
            .create(&PostParams::default(), &class)
            .await
            .expect("priority class");
    }
    let prio = |class: &str| json!({"priorityClassName": class});
    // Finishes a deletion as a kubelet would (there is no node agent here).
    let finish_deletion = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let gone = |p: Option<&Pod>| p.is_none_or(|p| p.metadata.deletion_timestamp.is_some());
            tokio::time::timeout(WAIT, await_condition(pods.clone(), name, gone))
                .await
                .unwrap_or_else(|_| panic!("{name} was not deleted in time"))
                .expect("watch");
            let _ = pods
                .delete(name, &DeleteParams::default().grace_period(0))
                .await;
        }
    };

    create_pod(&pods, pod("v", "2", json!({}), json!({}))).await;
    assert_eq!(bound_node(&pods, "v").await, "n1");
    // mid preempts v and waits, nominated, while v terminates.
    create_pod(&pods, pod("mid", "2", json!({}), prio("mid"))).await;
    nominated_to(&pods, "mid", "n1").await;
    // top needs the whole node: it is nominated there too, and mid's
    // reservation, now unfulfillable, is dropped.
    create_pod(&pods, pod("top", "3", json!({}), prio("top"))).await;
    nominated_to(&pods, "top", "n1").await;
    nominated_to(&pods, "mid", "").await;
    finish_deletion("v").await;
    assert_eq!(bound_node(&pods, "top").await, "n1");

    // n2 starts tainted so only w (which tolerates it) lands there first.
    let mut n2 = node("n2", "2", json!({}), json!([]));
    n2.spec.get_or_insert_default().taints = Some(vec![
        serde_json::from_value(json!({"key": "reserved", "value": "w", "effect": "NoSchedule"}))
            .expect("taint"),
    ]);
    create_node(&nodes, n2).await;
    let tolerate = json!({"tolerations": [
        {"key": "reserved", "operator": "Equal", "value": "w", "effect": "NoSchedule"}]});
    create_pod(&pods, pod("w", "2", json!({}), tolerate)).await;
    assert_eq!(bound_node(&pods, "w").await, "n2");
    // Untainted, n2 is where mid can make room: it preempts w.
    patch_node(&nodes, "n2", json!({"spec": {"taints": null}})).await;
    nominated_to(&pods, "mid", "n2").await;
    // Cordoned before w is gone: no node can take mid any more, so once w
    // has terminated its nomination is cleared instead of kept forever.
    patch_node(&nodes, "n2", json!({"spec": {"unschedulable": true}})).await;
    finish_deletion("w").await;
    nominated_to(&pods, "mid", "").await;
    let mid = pods.get("mid").await.expect("get mid");
    assert!(
        mid.spec.and_then(|s| s.node_name).is_none(),
        "mid stays pending"
    );
}
