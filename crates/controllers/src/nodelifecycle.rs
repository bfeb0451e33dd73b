//! Node lifecycle: a node's heartbeat is its Lease in `kube-node-lease` and its
//! Ready condition. A node silent for longer than the grace period gets its
//! conditions set to Unknown, its pods marked not ready, and the
//! `node.kubernetes.io/unreachable` taints (a node reporting Ready=False gets the
//! `not-ready` ones); [`crate::eviction`] then evicts the pods that do not
//! tolerate them.
//!
//! Silence is measured on this process's clock from when a heartbeat was last
//! seen to change, never by comparing the node's timestamps with our clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tokio::time::Instant;

use crate::context::NODE_LEASE_NAMESPACE;
use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::meta::now;
use crate::{CACHE_WAIT, Shared};

const COMPONENT: &str = "node-controller";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Conditions that keep new pods off a node while True (Kubernetes'
/// TaintNodesByCondition), with the NoSchedule taint each one sets.
const CONDITION_TAINTS: [(&str, &str); 4] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "node.kubernetes.io/network-unavailable",
    ),
];

/// What was last seen of a node's heartbeat, and when (our clock).
struct Heartbeat {
    lease_renew: Option<String>,
    ready_heartbeat: Option<String>,
    seen_at: Instant,
}

/// Every node's last observed heartbeat.
#[derive(Default)]
struct Heartbeats(HashMap<String, Heartbeat>);

impl Heartbeats {
    /// Records what the node shows now and returns how long it has been silent,
    /// and whether the node is new to us. A node first seen gets a whole grace
    /// period, as after a restart of the controller manager.
    fn observe(
        &mut self,
        node: &str,
        lease_renew: Option<String>,
        ready_heartbeat: Option<String>,
        now: Instant,
    ) -> (Duration, bool) {
        let first = !self.0.contains_key(node);
        let hb = self.0.entry(node.to_string()).or_insert_with(|| Heartbeat {
            lease_renew: lease_renew.clone(),
            ready_heartbeat: ready_heartbeat.clone(),
            seen_at: now,
        });
        if hb.lease_renew != lease_renew || hb.ready_heartbeat != ready_heartbeat {
            hb.lease_renew = lease_renew;
            hb.ready_heartbeat = ready_heartbeat;
            hb.seen_at = now;
        }
        (now.saturating_duration_since(hb.seen_at), first)
    }
}

pub struct Lifecycle {
    ctx: Shared,
    heartbeats: Mutex<Heartbeats>,
    /// The Ready status each node had when last reconciled.
    ready_seen: Mutex<HashMap<String, String>>,
}

pub async fn run(ctx: Shared) {
    let lifecycle = Arc::new(Lifecycle {
        ctx: ctx.clone(),
        heartbeats: Mutex::new(Heartbeats::default()),
        ready_seen: Mutex::new(HashMap::new()),
    });
    let queue = Queue::new(&ctx.nodes).related(&ctx.node_leases, |lease| {
        vec![ObjectRef::new(&lease.name_any())]
    });
    driver::run(
        "nodelifecycle",
        queue,
        lifecycle,
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

impl Lifecycle {
    /// How long the node has been silent, after folding in what the cache
    /// shows, and whether it is new to us.
    fn silence(&self, node: &Node) -> (Duration, bool) {
        let name = node.name_any();
        let lease_renew = self
            .ctx
            .node_leases
            .get(Some(NODE_LEASE_NAMESPACE), &name)
            .and_then(|l| {
                l.spec
                    .as_ref()?
                    .renew_time
                    .as_ref()
                    .map(|t| t.0.to_string())
            });
        let ready_heartbeat = ready_condition(node)
            .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.to_string()));
        let mut beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        beats.observe(&name, lease_renew, ready_heartbeat, Instant::now())
    }
}

async fn reconcile(node: Arc<Node>, lc: Arc<Lifecycle>) -> Result<Action> {
    let ctx = &lc.ctx;
    let grace = ctx.opts.node_monitor_grace_period;
    let (silent, first) = lc.silence(&node);
    let mut node = (*node).clone();
    let name = node.name_any();
    if first {
        ctx.events
            .normal(
                COMPONENT,
                &node,
                "RegisteredNode",
                format!("Node {name} event: Registered Node {name} in Controller"),
            )
            .await;
    }
    let was = ready_condition(&node).map(|c| c.status.clone());
    if silent > grace && was.as_deref() != Some("Unknown") {
        node = mark_unknown(ctx, &node).await?;
    }
    let ready = ready_condition(&node)
        .map(|c| c.status.clone())
        .unwrap_or_default();
    // Transitions seen by this process, whoever made them (the kubelet reports
    // False itself; silence makes it Unknown here).
    let previous = lc
        .ready_seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.clone(), ready.clone());
    match (previous.as_deref(), ready.as_str()) {
        (Some("True"), now) if now != "True" => {
            let msg = format!("Node {name} status is now: NodeNotReady");
            ctx.events
                .normal(COMPONENT, &node, "NodeNotReady", msg)
                .await;
            mark_pods_not_ready(ctx, &name).await;
        }
        (Some(before), "True") if before != "True" => {
            let msg = format!("Node {name} status is now: NodeReady");
            ctx.events.normal(COMPONENT, &node, "NodeReady", msg).await;
        }
        _ => {}
    }
    set_taints(ctx, &node, &ready).await?;
    // Look again when the grace period would run out without a heartbeat.
    Ok(if ready == "Unknown" {
        Action::await_change()
    } else {
        Action::requeue(grace.saturating_sub(silent) + Duration::from_millis(200))
    })
}

/// Every condition becomes Unknown, as the kubelet stopped posting them.
async fn mark_unknown(ctx: &Shared, node: &Node) -> Result<Node> {
    let t = now();
    let mut updated = node.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if !conds.iter().any(|c| c.type_ == "Ready") {
        conds.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            ..Default::default()
        });
    }
    for c in conds.iter_mut() {
        if c.status != "Unknown" {
            c.status = "Unknown".into();
            c.last_transition_time = Some(t.clone());
        }
        c.reason = Some("NodeStatusUnknown".into());
        c.message = Some("Kubelet stopped posting node status.".into());
    }
    let name = node.name_any();
    let written = ctx
        .cluster_api::<Node>()
        .replace_status(&name, &Default::default(), &updated)
        .await
        .ctx(|| format!("marking node {name} unknown"))?;
    tracing::info!(node = %name, "node stopped heartbeating; marked Unknown");
    ctx.nodes.wait_for_write(&written, CACHE_WAIT).await;
    Ok(written)
}

/// The node's pods stop counting as ready, so Services stop sending them traffic.
async fn mark_pods_not_ready(ctx: &Shared, node: &str) {
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .with_key(node)
        .into_iter()
        .filter(|p| crate::pods::is_ready(p))
        .collect();
    for pod in pods {
        let ns = pod.namespace().unwrap_or_default();
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now()}]}});
        match ctx
            .api::<Pod>(&ns)
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {
                ctx.events
                    .warning(COMPONENT, pod.as_ref(), "NodeNotReady", "Node is not ready")
                    .await
            }
            Err(e) => {
                tracing::debug!(pod = %pod.name_any(), error = %e, "marking pod not ready failed")
            }
        }
    }
}

/// The taints a node should carry for its Ready status (empty: never
/// reported), schedulability, and the conditions (types) that are True.
fn wanted_taints(
    ready: &str,
    unschedulable: bool,
    true_conditions: &[&str],
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match ready {
        // A node that has not reported yet takes no pods but loses none either.
        "" => out.push((NOT_READY, "NoSchedule")),
        "False" => out.extend([(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]),
        "True" => {}
        _ => out.extend([(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]),
    }
    if unschedulable {
        out.push((UNSCHEDULABLE, "NoSchedule"));
    }
    for (condition, taint) in CONDITION_TAINTS {
        if true_conditions.contains(&condition) {
            out.push((taint, "NoSchedule"));
        }
    }
    out
}

fn managed(key: &str) -> bool {
    key == UNREACHABLE
        || key == NOT_READY
        || key == UNSCHEDULABLE
        || CONDITION_TAINTS.iter().any(|(_, t)| *t == key)
}

/// Adds and removes the condition taints, leaving everyone else's alone.
async fn set_taints(ctx: &Shared, node: &Node, ready: &str) -> Result<()> {
    let spec = node.spec.clone().unwrap_or_default();
    let current = spec.taints.clone().unwrap_or_default();
    let true_conditions: Vec<&str> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status == "True")
        .map(|c| c.type_.as_str())
        .collect();
    let wanted = wanted_taints(ready, spec.unschedulable == Some(true), &true_conditions);
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(&t.key) || wanted.iter().any(|(k, e)| *k == t.key && *e == t.effect))
        .cloned()
        .collect();
    for (key, effect) in &wanted {
        if !next.iter().any(|t| t.key == *key && t.effect == *effect) {
            next.push(Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                time_added: (*effect == "NoExecute").then(now),
                value: None,
            });
        }
    }
    if next == current {
        return Ok(());
    }
    let taints = if next.is_empty() {
        serde_json::Value::Null
    } else {
        json!(next)
    };
    let patch = json!({"metadata": {"resourceVersion": node.resource_version()}, "spec": {"taints": taints}});
    match ctx
        .cluster_api::<Node>()
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => {
            ctx.nodes.wait_for_write(&written, CACHE_WAIT).await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("updating taints of node {}", node.name_any())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_follow_readiness() {
        assert!(wanted_taints("True", false, &[]).is_empty());
        assert_eq!(
            wanted_taints("", false, &[]),
            vec![(NOT_READY, "NoSchedule")]
        );
        assert_eq!(
            wanted_taints("False", false, &[]),
            vec![(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
        );
        assert_eq!(
            wanted_taints("Unknown", true, &[]),
            vec![
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute"),
                (UNSCHEDULABLE, "NoSchedule")
            ]
        );
    }

    #[test]
    fn pressure_conditions_taint_the_node() {
        assert_eq!(
            wanted_taints("True", false, &["Ready", "MemoryPressure", "DiskPressure"]),
            vec![
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ]
        );
        assert!(managed("node.kubernetes.io/pid-pressure"));
        assert!(!managed("example.com/dedicated"));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_counts_from_the_last_heartbeat_change_on_our_clock() {
        let mut beats = Heartbeats::default();
        let lease = |s: &str| Some(s.to_string());
        let t1 = beats.observe("n", lease("t1"), None, Instant::now());
        assert_eq!(t1, (Duration::ZERO, true));
        tokio::time::advance(Duration::from_secs(30)).await;
        let t1 = beats.observe("n", lease("t1"), None, Instant::now());
        assert_eq!(t1, (Duration::from_secs(30), false));
        beats.observe("n", lease("t2"), None, Instant::now());
        tokio::time::advance(Duration::from_secs(41)).await;
        let t2 = beats.observe("n", lease("t2"), None, Instant::now());
        assert_eq!(t2.0, Duration::from_secs(41));
        // A ready heartbeat alone also counts.
        let h = beats.observe("n", lease("t2"), Some("h".into()), Instant::now());
        assert_eq!(h.0, Duration::ZERO);
    }
}
