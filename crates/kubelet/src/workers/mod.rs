//! The pod workers: a watch of the pods bound to this node feeds one task per
//! pod ([`worker`]); container exits reported by the runtime wake the task of
//! the pod they belong to. Nothing polls: a pod with nothing to do costs no CPU.

mod backoff;
mod events;
mod eviction;
mod handlers;
mod images;
mod inputs;
mod probes;
mod status;
mod volumes;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use crate::runtime::Runtime;
use crate::{KubeletOptions, Result};

/// What a pod's worker is told.
pub(crate) enum Msg {
    /// The pod changed.
    Update(Arc<Pod>),
    /// The pod is gone from the API.
    Gone,
    /// One of its containers exited.
    Wake,
    /// A ConfigMap or Secret its volumes show changed.
    VolumesChanged,
    /// A probe's result changed.
    Probe(probes::ProbeResult),
    /// The node is short of a resource: stop the pod and fail it.
    Evict(String),
}

/// What every worker shares.
pub(crate) struct Shared {
    pub client: kube::Client,
    pub opts: Arc<KubeletOptions>,
    pub runtime: Arc<dyn Runtime>,
    pub events: events::Recorder,
    pub machine: crate::node::Machine,
    /// Mounts for volumes (tmpfs for secrets and memory-backed emptyDirs).
    pub mounter: Arc<dyn crate::runtime::Mounter>,
    /// Pulls the images containers need into the node's store.
    pub puller: crate::images::Puller,
}

/// Runs the pods bound to this node until the watch ends.
pub(crate) async fn run(
    client: kube::Client,
    opts: Arc<KubeletOptions>,
    runtime: Arc<dyn Runtime>,
    machine: crate::node::Machine,
    mounter: Arc<dyn crate::runtime::Mounter>,
    puller: crate::images::Puller,
) -> Result<()> {
    let shared = Arc::new(Shared {
        machine,
        mounter,
        puller,
        events: events::Recorder::new(client.clone(), &opts.node_name),
        client: client.clone(),
        opts: opts.clone(),
        runtime: runtime.clone(),
    });
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", opts.node_name));
    let mut stream = watcher::watcher(pods, config).default_backoff().boxed();
    let mut exits = runtime.container_events();
    let mut workers: HashMap<String, mpsc::UnboundedSender<Msg>> = HashMap::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut listed: Option<HashSet<String>> = None;
    // The pods as last seen, for choosing whom to evict.
    let mut bound: HashMap<String, Arc<Pod>> = HashMap::new();
    let mut evicted: HashSet<String> = HashSet::new();
    let mut housekeeping = tokio::time::interval(std::time::Duration::from_secs(10));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = housekeeping.tick() => {
                let usage = crate::node::Usage::read(&opts.root_dir);
                let (memory, disk) = crate::node::short_of(&usage, &opts.eviction_hard);
                let resource = match (memory, disk) {
                    (true, _) => "memory",
                    (_, true) => "ephemeral-storage",
                    _ => continue,
                };
                // Disk is reclaimed from unused images before any pod goes;
                // the next interval tells whether that was enough.
                if !memory && eviction::reclaim_images(&shared).await > 0 {
                    continue;
                }
                let victim = eviction::rank(
                    bound.values().filter(|p| !evicted.contains(p.metadata.uid.as_deref().unwrap_or_default())).map(|p| p.as_ref()),
                )
                .first()
                .and_then(|p| p.metadata.uid.clone());
                if let Some(uid) = victim
                    && let Some(tx) = workers.get(&uid)
                {
                    tracing::warn!(%resource, pod = %uid, "node under pressure: evicting a pod");
                    let _ = tx.send(Msg::Evict(eviction::message(resource)));
                    evicted.insert(uid);
                }
            }
            event = stream.next() => {
                let Some(event) = event else { return Ok(()) };
                match event {
                    Ok(Event::Init) => listed = Some(HashSet::new()),
                    Ok(Event::InitApply(pod)) => {
                        if let (Some(seen), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                            seen.insert(uid);
                        }
                        remember(&mut bound, &pod);
                        dispatch(&shared, &mut workers, &mut tasks, pod);
                    }
                    Ok(Event::Apply(pod)) => {
                        remember(&mut bound, &pod);
                        dispatch(&shared, &mut workers, &mut tasks, pod);
                    }
                    Ok(Event::Delete(pod)) => {
                        if let Some(uid) = &pod.metadata.uid {
                            bound.remove(uid);
                            evicted.remove(uid);
                        }
                        if let Some(tx) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                            let _ = tx.send(Msg::Gone);
                        }
                    }
                    Ok(Event::InitDone) => {
                        let seen = listed.take().unwrap_or_default();
                        // Pods deleted while the watch was down.
                        for (uid, tx) in &workers {
                            if !seen.contains(uid) {
                                let _ = tx.send(Msg::Gone);
                            }
                        }
                        release_orphans(&runtime, &seen, &workers).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "watching this node's pods"),
                }
            }
            id = exits.recv() => match id {
                Ok(id) => wake_owner(&runtime, &workers, &id).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    for tx in workers.values() {
                        let _ = tx.send(Msg::Wake);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            Some(done) = tasks.join_next() => {
                if let Ok(uid) = done {
                    workers.remove(&uid);
                    bound.remove(&uid);
                    evicted.remove(&uid);
                }
            }
        }
    }
}

fn remember(bound: &mut HashMap<String, Arc<Pod>>, pod: &Pod) {
    if let Some(uid) = &pod.metadata.uid {
        bound.insert(uid.clone(), Arc::new(pod.clone()));
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, mpsc::UnboundedSender<Msg>>,
    tasks: &mut JoinSet<String>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let pod = Arc::new(pod);
    if let Some(tx) = workers.get(&uid)
        && tx.send(Msg::Update(pod.clone())).is_ok()
    {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = worker::Worker::new(shared.clone(), pod, tx.downgrade());
    workers.insert(uid, tx);
    tasks.spawn(worker.run(rx));
}

/// Wakes the worker of the pod whose container exited.
async fn wake_owner(
    runtime: &Arc<dyn Runtime>,
    workers: &HashMap<String, mpsc::UnboundedSender<Msg>>,
    container_id: &str,
) {
    let Ok(status) = runtime.container_status(container_id).await else {
        return;
    };
    let Ok(sandboxes) = runtime.list_pod_sandboxes().await else {
        return;
    };
    if let Some(tx) = sandboxes
        .iter()
        .find(|s| s.id == status.sandbox_id)
        .and_then(|s| workers.get(&s.uid))
    {
        let _ = tx.send(Msg::Wake);
    }
}

/// Sandboxes of pods that are no longer bound here (deleted while the agent
/// was away) are stopped and removed.
async fn release_orphans(
    runtime: &Arc<dyn Runtime>,
    seen: &HashSet<String>,
    workers: &HashMap<String, mpsc::UnboundedSender<Msg>>,
) {
    let Ok(sandboxes) = runtime.list_pod_sandboxes().await else {
        return;
    };
    for s in sandboxes {
        if seen.contains(&s.uid) || workers.contains_key(&s.uid) {
            continue;
        }
        tracing::info!(pod = %format!("{}/{}", s.namespace, s.name), "releasing a pod that is gone");
        if let Err(e) = runtime.remove_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, error = %e, "releasing an orphaned sandbox");
        }
    }
}
