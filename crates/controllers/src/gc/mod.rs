//! The garbage collector: deletes objects whose owners are all gone, and carries
//! out foreground and orphan deletions (the `foregroundDeletion` and `orphan`
//! finalizers the API server adds for those propagation policies).
//!
//! It watches every deletable resource the API's discovery lists (events aside,
//! as in Kubernetes), keeps the ownership [`graph`], and runs affected uids
//! through kube-runtime's scheduler, which delays retries and folds duplicates.

mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::SelectAll;
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::scheduler::{ScheduleRequest, scheduler};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::Shared;
use crate::driver::retry_delay;
use crate::error::{Context, Error, Result, is_not_found};
use graph::{FOREGROUND, Graph, Node, ORPHAN, affected};

/// How often the API is asked for resources that appeared (custom resources).
const REDISCOVERY: Duration = Duration::from_secs(30);

/// A resource the collector watches.
struct Watched {
    ar: ApiResource,
    namespaced: bool,
}

struct Collector {
    client: Client,
    resources: RwLock<Vec<Watched>>,
    graph: Mutex<Graph>,
    queue: mpsc::UnboundedSender<ScheduleRequest<String>>,
    failures: Mutex<HashMap<String, u32>>,
}

pub async fn run(ctx: Shared) {
    let (tx, rx) = mpsc::unbounded();
    let gc = Arc::new(Collector {
        client: ctx.client.clone(),
        resources: RwLock::new(Vec::new()),
        graph: Mutex::new(Graph::default()),
        queue: tx,
        failures: Mutex::new(HashMap::new()),
    });
    let workers = usize::from(ctx.opts.workers.max(1)) * 4;
    let worker = scheduler(rx).for_each_concurrent(workers, |uid| {
        let gc = gc.clone();
        async move { gc.attempt(uid).await }
    });
    tokio::join!(worker, gc.clone().watch_everything());
}

impl Collector {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, uids: Vec<String>, after: Duration) {
        for uid in uids {
            let _ = self.queue.unbounded_send(ScheduleRequest {
                message: uid,
                run_at: Instant::now() + after,
            });
        }
    }

    /// Watches every resource found now, and those that appear later.
    async fn watch_everything(self: Arc<Self>) {
        // Every watch stream yields nothing and never ends; polling drives them.
        let mut watches = SelectAll::new();
        let mut known: HashSet<(String, String)> = HashSet::new();
        let mut tick = tokio::time::interval(REDISCOVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match Discovery::new(self.client.clone()).run().await {
                        Ok(d) => {
                            for (ar, namespaced) in deletable(&d) {
                                if known.insert((ar.group.clone(), ar.plural.clone())) {
                                    let index = {
                                        let mut r = self.resources.write().unwrap_or_else(|p| p.into_inner());
                                        r.push(Watched { ar: ar.clone(), namespaced });
                                        r.len() - 1
                                    };
                                    watches.push(self.clone().watch(index, ar).boxed());
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "garbage collector discovery failed"),
                    }
                }
                Some(()) = watches.next(), if !watches.is_empty() => {}
            }
        }
    }

    fn watch(
        self: Arc<Self>,
        index: usize,
        ar: ApiResource,
    ) -> impl futures::Stream<Item = ()> + Send {
        // Metadata only (`as=PartialObjectMetadata`), as Kubernetes' collector
        // watches: owners, finalizers and deletion state are all it reads.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &ar);
        let mut relisted: Option<HashSet<String>> = None;
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |ev| {
                let out = match ev {
                    Ok(watcher::Event::Apply(o)) => {
                        self.observe(index, &o);
                        None
                    }
                    Ok(watcher::Event::InitApply(o)) => {
                        if let Some(seen) = relisted.as_mut() {
                            seen.insert(o.uid().unwrap_or_default());
                        }
                        self.observe(index, &o);
                        None
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        self.forget(&o.uid().unwrap_or_default());
                        None
                    }
                    Ok(watcher::Event::Init) => {
                        relisted = Some(HashSet::new());
                        None
                    }
                    Ok(watcher::Event::InitDone) => {
                        // Whatever the relist did not return was deleted meanwhile.
                        let seen = relisted.take().unwrap_or_default();
                        let gone: Vec<String> = self.graph().uids_of(index).into_iter().filter(|u| !seen.contains(u)).collect();
                        for uid in gone {
                            self.forget(&uid);
                        }
                        None
                    }
                    Err(e) => {
                        tracing::debug!(resource = %ar.plural, error = %e, "garbage collector watch failed");
                        None
                    }
                };
                std::future::ready(out)
            })
    }

    fn observe(&self, index: usize, o: &impl kube::Resource) {
        let Some(uid) = o.uid() else { return };
        let node = Node {
            resource: index,
            namespace: o.namespace(),
            name: o.name_any(),
            uid,
            resource_version: o.resource_version(),
            owners: o.owner_references().to_vec(),
            finalizers: o.finalizers().to_vec(),
            deleting: o.meta().deletion_timestamp.is_some(),
        };
        let work = {
            let mut g = self.graph();
            let old = g.upsert(node.clone());
            if old.as_ref() == Some(&node) {
                return;
            }
            affected(old.as_ref(), Some(&node), &g)
        };
        self.enqueue(work, Duration::ZERO);
    }

    fn forget(&self, uid: &str) {
        let work = {
            let mut g = self.graph();
            let Some(old) = g.remove(uid) else { return };
            affected(Some(&old), None, &g)
        };
        self.enqueue(work, Duration::ZERO);
    }

    async fn attempt(&self, uid: String) {
        let outcome = std::panic::AssertUnwindSafe(self.process(&uid))
            .catch_unwind()
            .await
            .unwrap_or(Err(Error::Panicked));
        match outcome {
            Ok(()) => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&uid);
            }
            Err(e) => {
                let n = {
                    let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                    let n = f.entry(uid.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let delay = retry_delay(n).max(Duration::from_millis(100));
                tracing::debug!(%uid, error = %crate::driver::ErrorChain(&e), retry_in = ?delay, "garbage collection failed");
                self.enqueue(vec![uid], delay);
            }
        }
    }

    fn api_for(&self, node: &Node) -> Option<Api<DynamicObject>> {
        let resources = self.resources.read().unwrap_or_else(|p| p.into_inner());
        let w = resources.get(node.resource)?;
        Some(match (&node.namespace, w.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &w.ar),
            _ => Api::all_with(self.client.clone(), &w.ar),
        })
    }

    async fn process(&self, uid: &str) -> Result<()> {
        let Some(node) = self.graph().get(uid).cloned() else {
            return Ok(());
        };
        if node.deleting {
            if node.has_finalizer(ORPHAN) {
                return self.orphan_dependents(&node).await;
            }
            if node.has_finalizer(FOREGROUND) {
                return self.delete_dependents_first(&node).await;
            }
            return Ok(());
        }
        if node.owners.is_empty() {
            return Ok(());
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for owner in &node.owners {
            match self.owner_state(&node, owner).await? {
                OwnerState::Present => solid.push(owner.uid.clone()),
                OwnerState::Absent => dangling.push(owner.uid.clone()),
                OwnerState::WaitingForDependents => waiting.push(owner.uid.clone()),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            // Another owner still holds the object: only drop the references to
            // owners that are gone or going.
            let keep: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|o| solid.contains(&o.uid))
                .collect();
            return self.set_owners(&node, &keep).await;
        }
        let policy = if !waiting.is_empty() && self.graph().has_dependents(&node.uid) {
            PropagationPolicy::Foreground
        } else if node.has_finalizer(ORPHAN) {
            PropagationPolicy::Orphan
        } else if node.has_finalizer(FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(uid, name = %node.name, ?policy, "deleting object whose owners are gone");
        self.delete(&node, policy).await
    }

    async fn owner_state(&self, node: &Node, owner: &OwnerReference) -> Result<OwnerState> {
        if let Some(o) = self.graph().get(&owner.uid) {
            return Ok(if o.waiting_for_dependents() {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Present
            });
        }
        // Not seen (yet): the watch of the owner's resource may lag, so ask.
        let Some(api) = self.owner_api(node, owner) else {
            return Err(Error::Invalid(format!(
                "owner {}/{} of {} is of an unknown kind",
                owner.api_version, owner.kind, node.name
            )));
        };
        match api.get_opt(&owner.name).await {
            Ok(Some(o)) if o.uid().as_deref() == Some(owner.uid.as_str()) => {
                let waiting = o.metadata.deletion_timestamp.is_some()
                    && o.finalizers().iter().any(|f| f == FOREGROUND);
                Ok(if waiting {
                    OwnerState::WaitingForDependents
                } else {
                    OwnerState::Present
                })
            }
            Ok(_) => Ok(OwnerState::Absent),
            Err(e) => Err(e).ctx(|| format!("looking up owner {} {}", owner.kind, owner.name)),
        }
    }

    fn owner_api(&self, node: &Node, owner: &OwnerReference) -> Option<Api<DynamicObject>> {
        let group = owner.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let resources = self.resources.read().unwrap_or_else(|p| p.into_inner());
        let w = resources
            .iter()
            .find(|w| w.ar.group == group && w.ar.kind == owner.kind)?;
        Some(match (&node.namespace, w.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &w.ar),
            _ => Api::all_with(self.client.clone(), &w.ar),
        })
    }

    async fn delete(&self, node: &Node, policy: PropagationPolicy) -> Result<()> {
        let Some(api) = self.api_for(node) else {
            return Ok(());
        };
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&node.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) || crate::error::is_conflict(&e) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("deleting {}", node.name)),
        }
    }

    async fn set_owners(&self, node: &Node, owners: &[&OwnerReference]) -> Result<()> {
        let Some(api) = self.api_for(node) else {
            return Ok(());
        };
        let refs = if owners.is_empty() {
            serde_json::Value::Null
        } else {
            json!(owners)
        };
        let patch = json!({"metadata": {"resourceVersion": node.resource_version, "ownerReferences": refs}});
        match api
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("updating owner references of {}", node.name)),
        }
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<()> {
        let Some(api) = self.api_for(node) else {
            return Ok(());
        };
        let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch =
            json!({"metadata": {"resourceVersion": node.resource_version, "finalizers": rest}});
        match api
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("removing finalizer {finalizer} from {}", node.name)),
        }
    }

    /// `orphan`: dependents lose their reference to the object, then the object
    /// loses the finalizer and goes.
    async fn orphan_dependents(&self, node: &Node) -> Result<()> {
        let dependents: Vec<Node> = self
            .graph()
            .dependents(&node.uid)
            .into_iter()
            .cloned()
            .collect();
        for d in &dependents {
            let keep: Vec<&OwnerReference> =
                d.owners.iter().filter(|o| o.uid != node.uid).collect();
            self.set_owners(d, &keep).await?;
        }
        if !dependents.is_empty() {
            // The released dependents come back as graph changes that requeue us.
            return Ok(());
        }
        self.remove_finalizer(node, ORPHAN).await
    }

    /// `foregroundDeletion`: dependents are deleted first; once no blocking
    /// dependent is left the object loses the finalizer and goes.
    async fn delete_dependents_first(&self, node: &Node) -> Result<()> {
        let (dependents, blocking) = {
            let g = self.graph();
            let d: Vec<Node> = g.dependents(&node.uid).into_iter().cloned().collect();
            let b = g.blocking_dependents(&node.uid).len();
            (d, b)
        };
        for d in dependents.iter().filter(|d| !d.deleting) {
            let policy = if self.graph().has_dependents(&d.uid) {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            };
            self.delete(d, policy).await?;
        }
        if blocking == 0 {
            return self.remove_finalizer(node, FOREGROUND).await;
        }
        // The dependents' deletions come back as graph changes that requeue us.
        Ok(())
    }
}

enum OwnerState {
    Present,
    Absent,
    WaitingForDependents,
}

/// Resources that can be listed, watched and deleted; events are left out, as
/// Kubernetes' collector ignores them.
fn deletable(d: &Discovery) -> Vec<(ApiResource, bool)> {
    let mut out = Vec::new();
    for group in d.groups() {
        for (ar, caps) in group.recommended_resources() {
            let ok = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|v| caps.supports_operation(v));
            if !ok || ar.plural == "events" {
                continue;
            }
            out.push((ar, caps.scope == Scope::Namespaced));
        }
    }
    out
}
