//! The scheduling loop: applies informer updates to the cache and queue,
//! schedules one pod at a time, hands placements to the binder, and handles
//! failures (status, event, preemption). It is the only writer of the cache
//! and the queue, so neither needs a lock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::bind::{BindResult, Binder};
use crate::cache::Cache;
use crate::events::Writer;
use crate::informers::{ALL_KINDS, Kind, Update};
use crate::objects;
use crate::pod::PodInfo;
use crate::preempt;
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::schedule::Scheduler;
use crate::stats::Stats;

/// Tracks which objects of one kind the loop knows, to turn a relist
/// (`Init` … `InitDone`) into deletions of what disappeared meanwhile.
#[derive(Default)]
struct Known {
    keys: HashSet<String>,
    relist: Option<HashSet<String>>,
    synced: bool,
}

/// What to do with one informer event after relist bookkeeping.
enum Op<K> {
    Apply(K),
    Delete(String),
}

impl Known {
    fn ops<K>(&mut self, ev: watcher::Event<K>, key: impl Fn(&K) -> String) -> Vec<Op<K>> {
        match ev {
            watcher::Event::Init => {
                self.relist = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                let k = key(&o);
                if let Some(seen) = self.relist.as_mut() {
                    seen.insert(k.clone());
                }
                self.keys.insert(k);
                vec![Op::Apply(o)]
            }
            watcher::Event::Delete(o) => {
                let k = key(&o);
                self.keys.remove(&k);
                vec![Op::Delete(k)]
            }
            watcher::Event::InitDone => {
                self.synced = true;
                let Some(seen) = self.relist.take() else {
                    return Vec::new();
                };
                let gone: Vec<String> = self.keys.difference(&seen).cloned().collect();
                self.keys = seen;
                gone.into_iter().map(Op::Delete).collect()
            }
        }
    }
}

pub struct Driver {
    pub scheduler: Scheduler,
    pub cache: Cache,
    pub queue: SchedulingQueue,
    pub binder: Binder,
    pub writer: Writer,
    pub scheduler_name: String,
    pub stats: Arc<Stats>,
    known: HashMap<Kind, Known>,
}

impl Driver {
    pub fn new(
        scheduler: Scheduler,
        binder: Binder,
        writer: Writer,
        scheduler_name: &str,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            scheduler,
            cache: Cache::default(),
            queue: SchedulingQueue::default(),
            binder,
            writer,
            scheduler_name: scheduler_name.to_string(),
            stats,
            known: HashMap::new(),
        }
    }

    fn synced(&self) -> bool {
        ALL_KINDS
            .iter()
            .all(|k| self.known.get(k).is_some_and(|s| s.synced))
    }

    /// Runs until the informer channel closes.
    pub async fn run(
        mut self,
        mut updates: mpsc::Receiver<Update>,
        mut binds: mpsc::UnboundedReceiver<BindResult>,
    ) {
        let mut flush = tokio::time::interval(std::time::Duration::from_secs(30));
        let began = StdInstant::now();
        let mut was_synced = false;
        loop {
            // Catch up with everything already reported before deciding.
            let started = StdInstant::now();
            let mut drained = 0u64;
            while let Ok(u) = updates.try_recv() {
                self.apply(u);
                drained += 1;
            }
            while let Ok(r) = binds.try_recv() {
                self.bind_done(r);
            }
            if drained > 0 {
                self.stats.add_apply(drained, started.elapsed());
            }
            let now = Instant::now();
            self.queue.flush_backoff(now);
            let synced = self.synced();
            if synced && !was_synced {
                was_synced = true;
                self.stats.set_synced(began.elapsed());
            }
            if synced && let Some(qp) = self.queue.pop() {
                self.schedule_one(qp).await;
                // Let informers and bind tasks run between cycles.
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = self.queue.next_deadline();
            tokio::select! {
                u = updates.recv() => match u {
                    Some(u) => self.apply(u),
                    None => return,
                },
                Some(r) = binds.recv() => self.bind_done(r),
                () = sleep_until(deadline) => {}
                _ = flush.tick() => self.queue.flush_unschedulable_leftovers(Instant::now()),
            }
        }
    }

    async fn schedule_one(&mut self, qp: QueuedPod) {
        let started = StdInstant::now();
        let result = self.scheduler.schedule(&self.cache, &qp.pod);
        self.stats.add_cycle(started.elapsed());
        match result {
            Ok(placement) => {
                let mut bound = (*qp.pod).clone();
                bound.node_name = placement.node.clone();
                bound.nominated_node_name.clear();
                let bound = Arc::new(bound);
                self.cache.assume(bound.clone(), &placement.node);
                self.cache.set_nominated(&qp.pod, None);
                self.binder.bind(bound, placement.node).await;
            }
            Err(fit) => {
                let message = fit.message();
                self.stats.add_unschedulable();
                tracing::debug!(pod = %qp.pod.key(), %message, "unschedulable");
                let preemption =
                    preempt::preempt(&self.scheduler.framework, &mut self.cache, &qp.pod, &fit);
                self.queue.unschedulable(&qp.pod.uid, Instant::now());
                self.writer.unschedulable(&qp.pod, &qp.object, &message);
                self.writer
                    .event(&qp.pod, "Warning", "FailedScheduling", message);
                match preemption {
                    preempt::Outcome::Preempt(p) => self.execute_preemption(&qp.pod, p),
                    preempt::Outcome::NoRoom if !qp.pod.nominated_node_name.is_empty() => {
                        // The room once found is gone (Kubernetes clears the
                        // nomination when preemption finds no candidate).
                        self.cache.set_nominated(&qp.pod, None);
                        self.writer.clear_nomination(&qp.pod);
                    }
                    preempt::Outcome::NoRoom | preempt::Outcome::NotTried => {}
                }
            }
        }
    }

    /// Nominates the pod and deletes its victims. Deletions run as their own
    /// tasks: unlike events, they must not be dropped under load.
    fn execute_preemption(&mut self, pod: &Arc<PodInfo>, p: preempt::Preemption) {
        tracing::info!(pod = %pod.key(), node = %p.node, victims = p.victims.len(), "preempting");
        let mut nominated = (**pod).clone();
        nominated.nominated_node_name = p.node.clone();
        self.cache
            .set_nominated(&Arc::new(nominated), Some(&p.node));
        self.writer.nominate(pod, &p.node);
        let now = Instant::now();
        for lower in self.cache.take_lower_nominated(&p.node, pod) {
            tracing::info!(pod = %lower.key(), node = %p.node, "clearing a lower-priority nomination");
            self.writer.clear_nomination(&lower);
            self.queue.requeue(&lower.uid, now);
        }
        let client = self.writer.client().clone();
        let component = self.writer.component().to_string();
        for victim in p.victims {
            let msg = format!("Preempted by pod {} on node {}", pod.uid, p.node);
            self.writer.event(&victim, "Normal", "Preempted", msg);
            let api: Api<Pod> = Api::namespaced(client.clone(), &victim.namespace);
            let component = component.clone();
            tokio::spawn(async move {
                let condition = json!({"status": {"conditions": [{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": format!("{component}: preempting to accommodate a higher priority pod"),
                }]}});
                let _ = api
                    .patch_status(
                        &victim.name,
                        &PatchParams::default(),
                        &Patch::Strategic(condition),
                    )
                    .await;
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(victim.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                if let Err(e) = api.delete(&victim.name, &dp).await {
                    tracing::warn!(pod = %victim.key(), error = %e, "deleting a preemption victim failed");
                }
            });
        }
    }

    fn bind_done(&mut self, r: BindResult) {
        let now = Instant::now();
        match r.result {
            Ok(()) => {
                self.stats.add_bound();
                self.queue.remove(&r.pod.uid);
            }
            Err(e) => {
                tracing::info!(pod = %r.pod.key(), node = %r.node, error = %e, "binding failed; retrying");
                self.stats.add_bind_error();
                self.cache.forget(&r.pod.uid);
                let gone_or_placed =
                    matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
                if gone_or_placed {
                    self.queue.remove(&r.pod.uid);
                } else {
                    self.queue.retry_after_error(&r.pod.uid, now);
                }
                // The room the pod was assumed to take is free again.
                self.queue.move_all_unschedulable(now);
            }
        }
    }

    fn apply(&mut self, u: Update) {
        let now = Instant::now();
        match u {
            Update::Pod(ev) => {
                let ops = self
                    .known
                    .entry(Kind::Pod)
                    .or_default()
                    .ops(ev, objects::uid);
                for op in ops {
                    match op {
                        Op::Apply(pod) => self.apply_pod(pod, now),
                        Op::Delete(uid) => self.delete_pod(&uid, now),
                    }
                }
            }
            Update::Node(ev) => {
                let ops = self
                    .known
                    .entry(Kind::Node)
                    .or_default()
                    .ops(ev, objects::name);
                for op in ops {
                    match op {
                        Op::Apply(node) => {
                            let name = objects::name(&node);
                            if self
                                .cache
                                .set_node(&name, crate::node::NodeSpecInfo::from_node(&node))
                            {
                                self.queue.move_all_unschedulable(now);
                            }
                        }
                        Op::Delete(name) => self.cache.remove_node(&name),
                    }
                }
            }
            Update::Unavailable(kind) => {
                let k = self.known.entry(kind).or_default();
                k.synced = true;
            }
            other => {
                let known = self.known.entry(kind_of(&other)).or_default();
                if objects::apply_other(&mut self.cache, KnownRef(known), other) {
                    self.queue.move_all_unschedulable(now);
                }
            }
        }
    }

    fn apply_pod(&mut self, pod: Pod, now: Instant) {
        let mut info = PodInfo::from_pod(&pod);
        if info.finished {
            self.delete_pod(&info.uid, now);
            return;
        }
        self.cache.resolve_priority(&mut info);
        let info = Arc::new(info);
        if !info.node_name.is_empty() {
            self.queue.remove(&info.uid);
            self.cache.set_nominated(&info, None);
            self.cache.set_assigned_pod(info);
            return;
        }
        if info.scheduler_name != self.scheduler_name || self.cache.is_assumed(&info.uid) {
            // Another scheduler's pod, or ours with its bind still on the wire.
            return;
        }
        let nominated =
            (!info.nominated_node_name.is_empty()).then(|| info.nominated_node_name.clone());
        self.cache.set_nominated(&info, nominated.as_deref());
        self.queue.upsert(info, Arc::new(pod), now);
    }

    fn delete_pod(&mut self, uid: &str, now: Instant) {
        if let Some(qp) = self.queue.remove(uid) {
            self.cache.set_nominated(&qp.pod, None);
        }
        if self.cache.remove_pod(uid).is_some() {
            self.queue.move_all_unschedulable(now);
        }
    }
}

/// Relist bookkeeping handed to `objects::apply_other`.
pub struct KnownRef<'a>(&'a mut Known);

impl KnownRef<'_> {
    pub fn ops<K>(
        &mut self,
        ev: watcher::Event<K>,
        key: impl Fn(&K) -> String,
    ) -> Vec<(Option<K>, String)>
    where
        K: Clone,
    {
        self.0
            .ops(ev, &key)
            .into_iter()
            .map(|op| match op {
                Op::Apply(o) => {
                    let k = key(&o);
                    (Some(o), k)
                }
                Op::Delete(k) => (None, k),
            })
            .collect()
    }
}

fn kind_of(u: &Update) -> Kind {
    match u {
        Update::Pod(_) => Kind::Pod,
        Update::Node(_) => Kind::Node,
        Update::Namespace(_) => Kind::Namespace,
        Update::Claim(_) => Kind::Claim,
        Update::Volume(_) => Kind::Volume,
        Update::StorageClass(_) => Kind::StorageClass,
        Update::Budget(_) => Kind::Budget,
        Update::PriorityClass(_) => Kind::PriorityClass,
        Update::Service(_) => Kind::Service,
        Update::ReplicationController(_) => Kind::ReplicationController,
        Update::ReplicaSet(_) => Kind::ReplicaSet,
        Update::StatefulSet(_) => Kind::StatefulSet,
        Update::Unavailable(k) => *k,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<K>(ops: Vec<Op<K>>) -> (Vec<K>, Vec<String>) {
        let (mut applied, mut deleted) = (Vec::new(), Vec::new());
        for op in ops {
            match op {
                Op::Apply(o) => applied.push(o),
                Op::Delete(k) => deleted.push(k),
            }
        }
        (applied, deleted)
    }

    #[test]
    fn a_relist_deletes_what_disappeared_meanwhile() {
        let mut known = Known::default();
        let key = |s: &String| s.clone();
        for ev in [
            watcher::Event::Init,
            watcher::Event::InitApply("a".to_string()),
            watcher::Event::InitApply("b".into()),
        ] {
            known.ops(ev, key);
        }
        assert!(!known.synced);
        let (_, deleted) = keys(known.ops(watcher::Event::InitDone, key));
        assert!(deleted.is_empty());
        assert!(known.synced);
        known.ops(watcher::Event::Apply("c".to_string()), key);

        // The watch restarts; "a" and "c" went away while it was down.
        known.ops(watcher::Event::Init, key);
        known.ops(watcher::Event::InitApply("b".to_string()), key);
        let (_, mut deleted) = keys(known.ops(watcher::Event::InitDone, key));
        deleted.sort();
        assert_eq!(deleted, vec!["a", "c"]);
        let (_, deleted) = keys(known.ops(watcher::Event::Delete("b".to_string()), key));
        assert_eq!(deleted, vec!["b"]);
    }

    #[test]
    fn services_and_controllers_reach_the_cache() {
        use crate::cache::ControllerSelector;
        use crate::pod::ControllerKind;
        let mut cache = Cache::default();
        let mut known: HashMap<Kind, Known> = HashMap::new();
        let mut apply = |cache: &mut Cache, u: Update| {
            let k = known.entry(kind_of(&u)).or_default();
            assert!(!objects::apply_other(cache, KnownRef(k), u));
        };
        let svc = |name: &str, selector: serde_json::Value| {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"},
                "spec": {"selector": selector}}))
            .expect("service")
        };
        apply(
            &mut cache,
            Update::Service(watcher::Event::Apply(svc("web", json!({"app": "web"})))),
        );
        apply(
            &mut cache,
            Update::Service(watcher::Event::Apply(svc("bare", json!(null)))),
        );
        let selectors: Vec<_> = cache.service_selectors("ns").cloned().collect();
        assert_eq!(selectors.len(), 1);
        assert!(cache.service_selectors("default").next().is_none());
        apply(
            &mut cache,
            Update::Service(watcher::Event::Delete(svc("web", json!({})))),
        );
        assert!(cache.service_selectors("ns").next().is_none());

        let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}]}}}))
        .expect("replica set");
        apply(
            &mut cache,
            Update::ReplicaSet(watcher::Event::Apply(rs.clone())),
        );
        let Some(ControllerSelector::Requirements(r)) =
            cache.controller(ControllerKind::ReplicaSet, "ns", "web-1")
        else {
            panic!("no requirements kept");
        };
        assert_eq!(
            r,
            &vec![
                json!({"key": "app", "operator": "In", "values": ["web"]}),
                json!({"key": "tier", "operator": "Exists"}),
            ]
        );
        apply(&mut cache, Update::ReplicaSet(watcher::Event::Delete(rs)));
        assert!(cache.controllers.is_empty());

        let rc: k8s_openapi::api::core::v1::ReplicationController =
            serde_json::from_value(json!({"metadata": {"name": "rc", "namespace": "ns"},
                "spec": {"selector": {"app": "old"}}}))
            .expect("rc");
        apply(
            &mut cache,
            Update::ReplicationController(watcher::Event::Apply(rc)),
        );
        assert!(matches!(
            cache.controller(ControllerKind::ReplicationController, "ns", "rc"),
            Some(ControllerSelector::Labels(l)) if l.get("app").map(String::as_str) == Some("old")
        ));
    }
}
