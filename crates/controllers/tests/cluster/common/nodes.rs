//! A stand-in for node agents (and the scheduler) on fake nodes: it registers the
//! nodes, renews their Leases, binds pending pods to a live node that fits,
//! reports bound pods Running and Ready through the status subresource, and
//! finishes graceful deletions. A killed node stops all of that, as a dead
//! machine would.
//!
//! Pods annotated `test.flotilla.io/exit: "0"` (or another code) finish with that
//! exit code once running, so Jobs can complete.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

pub const EXIT_ANNOTATION: &str = "test.flotilla.io/exit";

pub struct FakeNodes {
    alive: Arc<Mutex<HashSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNodes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeNodes {
    pub async fn start(client: Client, names: &[&str]) -> anyhow::Result<FakeNodes> {
        let nodes: Api<Node> = Api::all(client.clone());
        for name in names {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"
                }},
            }))?;
            nodes.create(&PostParams::default(), &node).await?;
            report_ready(&nodes, name).await?;
        }
        let alive = Arc::new(Mutex::new(
            names.iter().map(|s| s.to_string()).collect::<HashSet<_>>(),
        ));
        let task = tokio::spawn(agent(client, alive.clone()));
        Ok(FakeNodes { alive, task })
    }

    /// The node stops heartbeating and tending its pods.
    pub fn kill(&self, name: &str) {
        self.alive.lock().expect("lock").remove(name);
    }

    /// A killed node comes back.
    pub fn revive(&self, name: &str) {
        self.alive.lock().expect("lock").insert(name.to_string());
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

async fn report_ready(nodes: &Api<Node>, name: &str) -> anyhow::Result<()> {
    let t = Time(now());
    let status = json!({"status": {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": t, "lastTransitionTime": t},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": t, "lastTransitionTime": t},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": t, "lastTransitionTime": t},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": t, "lastTransitionTime": t},
        ],
        "addresses": [{"type": "InternalIP", "address": "192.0.2.1"}, {"type": "Hostname", "address": name}],
        "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

async fn agent(client: Client, alive: Arc<Mutex<HashSet<String>>>) {
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .applied_objects();
    let node_events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer);
    futures::pin_mut!(pod_events, node_events);
    let next = AtomicU32::new(0);
    let me = Agent {
        client: client.clone(),
        pods: pods.clone(),
        nodes: nodes.clone(),
        alive,
        next,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            Some(ev) = pod_events.next() => {
                if let Ok(pod) = ev {
                    me.tend(&pod).await;
                }
            }
            Some(_) = node_events.next() => {}
            _ = tick.tick() => {
                me.heartbeat().await;
                for pod in me.pods.state() {
                    me.tend(&pod).await;
                }
            }
        }
    }
}

struct Agent {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    alive: Arc<Mutex<HashSet<String>>>,
    next: AtomicU32,
}

impl Agent {
    fn alive(&self) -> HashSet<String> {
        self.alive.lock().expect("lock").clone()
    }

    async fn heartbeat(&self) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let nodes: Api<Node> = Api::all(self.client.clone());
        for name in self.alive() {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": MicroTime(now())},
            });
            let patched = leases
                .patch(
                    &name,
                    &PatchParams::apply("fake-kubelet").force(),
                    &Patch::Apply(&lease),
                )
                .await;
            if let Err(e) = patched {
                eprintln!("fake kubelet: renewing lease {name}: {e}");
            }
            let ready = self
                .nodes
                .state()
                .into_iter()
                .find(|n| n.name_any() == name)
                .is_some_and(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                });
            if !ready && let Err(e) = report_ready(&nodes, &name).await {
                eprintln!("fake kubelet: reporting {name} ready: {e}");
            }
        }
    }

    async fn tend(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let alive = self.alive();
        match node {
            None => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return;
                }
                if let Some(target) = self.choose_node(pod, &alive) {
                    let binding = Binding {
                        metadata: kube::api::ObjectMeta {
                            name: Some(pod.name_any()),
                            ..Default::default()
                        },
                        target: ObjectReference {
                            kind: Some("Node".into()),
                            name: Some(target),
                            api_version: Some("v1".into()),
                            ..Default::default()
                        },
                    };
                    // A conflict means someone else bound it first.
                    let _ = api
                        .create_subresource::<_, serde_json::Value>(
                            "binding",
                            &pod.name_any(),
                            &PostParams::default(),
                            &binding,
                        )
                        .await;
                }
            }
            Some(node) if alive.contains(&node) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    let _ = api
                        .delete(
                            &pod.name_any(),
                            &DeleteParams {
                                grace_period_seconds: Some(0),
                                ..Default::default()
                            },
                        )
                        .await;
                    return;
                }
                self.run(&api, pod).await;
            }
            Some(_) => {}
        }
    }

    /// Marks the pod Running and Ready, or finished when it asks to exit.
    async fn run(&self, api: &Api<Pod>, pod: &Pod) {
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            return;
        }
        let exit: Option<i32> = pod
            .annotations()
            .get(EXIT_ANNOTATION)
            .and_then(|v| v.parse().ok());
        let t = Time(now());
        let containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        let status = if phase == "Running" {
            let Some(code) = exit else { return };
            let finished = if code == 0 { "Succeeded" } else { "Failed" };
            json!({"status": {
                "phase": finished,
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": t},
                    {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": t},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                ],
                "containerStatuses": containers.iter().map(|c| json!({
                    "name": c, "ready": false, "restartCount": 0, "image": "busybox", "imageID": "",
                    "state": {"terminated": {"exitCode": code, "reason": if code == 0 {"Completed"} else {"Error"}, "startedAt": t, "finishedAt": t}},
                })).collect::<Vec<_>>(),
            }})
        } else {
            // Derived from the uid so repeated reports agree.
            let n = pod
                .uid()
                .unwrap_or_default()
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let ip = format!("10.42.{}.{}", (n / 250) % 250, n % 250 + 2);
            json!({"status": {
                "phase": "Running",
                "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.0.2.1", "startTime": t,
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": t},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                ],
                "containerStatuses": containers.iter().map(|c| json!({
                    "name": c, "ready": true, "started": true, "restartCount": 0, "image": "busybox", "imageID": "",
                    "state": {"running": {"startedAt": t}},
                })).collect::<Vec<_>>(),
            }})
        };
        let _ = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await;
    }

    /// A live, untainted node the pod's node selector and node-name affinity
    /// allow, taking turns.
    fn choose_node(&self, pod: &Pod, alive: &HashSet<String>) -> Option<String> {
        let spec = pod.spec.as_ref()?;
        let selector: BTreeMap<String, String> = spec.node_selector.clone().unwrap_or_default();
        let wanted_names: Option<Vec<String>> = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|r| {
                r.node_selector_terms
                    .iter()
                    .flat_map(|t| t.match_fields.iter().flatten())
                    .filter(|f| f.key == "metadata.name")
                    .flat_map(|f| f.values.clone().unwrap_or_default())
                    .collect()
            });
        let tolerations = spec.tolerations.clone().unwrap_or_default();
        let mut fits: Vec<String> = self
            .nodes
            .state()
            .iter()
            .filter(|n| alive.contains(&n.name_any()))
            .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true))
            .filter(|n| {
                wanted_names
                    .as_ref()
                    .is_none_or(|w| w.is_empty() || w.contains(&n.name_any()))
            })
            .filter(|n| selector.iter().all(|(k, v)| n.labels().get(k) == Some(v)))
            .filter(|n| {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .into_iter()
                    .flatten()
                    .all(|t| {
                        t.effect == "PreferNoSchedule"
                            || tolerations.iter().any(|tol| {
                                let key_ok = tol
                                    .key
                                    .as_deref()
                                    .is_none_or(|k| k.is_empty() || k == t.key);
                                let effect_ok = tol
                                    .effect
                                    .as_deref()
                                    .is_none_or(|e| e.is_empty() || e == t.effect);
                                let op = tol.operator.as_deref().unwrap_or("Equal");
                                let value_ok = op == "Exists"
                                    || tol.value.as_deref().unwrap_or("")
                                        == t.value.as_deref().unwrap_or("");
                                key_ok && effect_ok && value_ok
                            })
                    })
            })
            .map(|n| n.name_any())
            .collect();
        fits.sort();
        if fits.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % fits.len();
        Some(fits[i].clone())
    }
}
