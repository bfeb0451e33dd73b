//! The scheduling queue: an active heap ordered by priority then arrival, a
//! backoff heap for pods that failed recently (1 s doubling to 10 s), and the
//! unschedulable set, whose pods wait for a cluster event that could help
//! (a node added or changed, a pod deleted) or for five minutes.
//!
//! Pods being scheduled or bound stay known as in flight, so a deletion that
//! arrives meanwhile is not undone by a re-queue.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::pod::PodInfo;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without any event before another try
/// (kube-scheduler's `podMaxInUnschedulablePodsDuration`).
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Waiting on `spec.schedulingGates`.
    Gated,
    InFlight,
}

/// A pending pod with its scheduling history.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<PodInfo>,
    /// The object as last seen, to tell relevant updates from status noise.
    pub object: Arc<Pod>,
    pub attempts: u32,
    /// When the pod first entered the queue (for latency metrics).
    pub initial: Instant,
}

struct Entry {
    qp: QueuedPod,
    place: Place,
    /// Bumped on every move; heap entries with an older value are stale.
    seq: u64,
    /// When the pod entered the active heap (orders equal priorities).
    enqueued: Instant,
    backoff_until: Instant,
    unschedulable_since: Instant,
}

#[derive(PartialEq, Eq)]
struct ActiveKey {
    priority: i32,
    enqueued: Instant,
    seq: u64,
    uid: String,
}

impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.enqueued.cmp(&self.enqueued))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
}

/// The backoff after `attempts` failures: 1 s, 2 s, 4 s, 8 s, 10 s, 10 s, …
pub fn backoff_for(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF)
}

/// Whether an update could change the scheduling outcome (spec, labels or
/// annotations), as opposed to a status write such as our own condition.
fn relevant_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

impl SchedulingQueue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn push_active(&mut self, uid: &str, now: Instant) {
        let seq = self.next_seq();
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.place = Place::Active;
        e.seq = seq;
        e.enqueued = now;
        self.active.push(ActiveKey {
            priority: e.qp.pod.priority,
            enqueued: now,
            seq,
            uid: uid.to_string(),
        });
    }

    fn push_backoff(&mut self, uid: &str) {
        let seq = self.next_seq();
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.place = Place::Backoff;
        e.seq = seq;
        self.backoff
            .push(Reverse((e.backoff_until, seq, uid.to_string())));
    }

    /// Active when its backoff is over, else to the backoff heap.
    fn reactivate(&mut self, uid: &str, now: Instant) {
        match self.entries.get(uid) {
            Some(e) if e.backoff_until > now => self.push_backoff(uid),
            Some(_) => self.push_active(uid, now),
            None => {}
        }
    }

    /// A pending pod appeared or changed.
    pub fn upsert(&mut self, pod: Arc<PodInfo>, object: Arc<Pod>, now: Instant) {
        let uid = pod.uid.clone();
        if let Some(e) = self.entries.get_mut(&uid) {
            let relevant = relevant_change(&e.qp.object, &object);
            e.qp.pod = pod;
            e.qp.object = object;
            let place = e.place;
            let gated = e.qp.pod.scheduling_gated;
            match place {
                Place::Gated if !gated => self.push_active(&uid, now),
                Place::Unschedulable if relevant => self.reactivate(&uid, now),
                Place::Active if relevant => self.push_active(&uid, now),
                _ => {}
            }
            return;
        }
        let gated = pod.scheduling_gated;
        self.entries.insert(
            uid.clone(),
            Entry {
                qp: QueuedPod {
                    pod,
                    object,
                    attempts: 0,
                    initial: now,
                },
                place: Place::Gated,
                seq: 0,
                enqueued: now,
                backoff_until: now,
                unschedulable_since: now,
            },
        );
        if !gated {
            self.push_active(&uid, now);
        }
    }

    /// The pod was deleted or got bound: forget it.
    pub fn remove(&mut self, uid: &str) -> Option<QueuedPod> {
        self.entries.remove(uid).map(|e| e.qp)
    }

    /// The highest-priority active pod, now in flight.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        while let Some(key) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&key.uid) else {
                continue;
            };
            if e.seq != key.seq || e.place != Place::Active {
                continue;
            }
            e.place = Place::InFlight;
            e.qp.attempts += 1;
            return Some(e.qp.clone());
        }
        None
    }

    /// The in-flight pod fit nowhere: it waits for a cluster event.
    pub fn unschedulable(&mut self, uid: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(uid)
            && e.place == Place::InFlight
        {
            e.backoff_until = now + backoff_for(e.qp.attempts);
            e.unschedulable_since = now;
            e.place = Place::Unschedulable;
        }
    }

    /// The in-flight pod failed for another reason (its bind failed): retry after backoff.
    pub fn retry_after_error(&mut self, uid: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(uid)
            && e.place == Place::InFlight
        {
            e.backoff_until = now + backoff_for(e.qp.attempts);
            self.push_backoff(uid);
        }
    }

    /// Something changed for this one unschedulable pod (its nomination was
    /// dropped): it tries again once its backoff is over.
    pub fn requeue(&mut self, uid: &str, now: Instant) {
        if self
            .entries
            .get(uid)
            .is_some_and(|e| e.place == Place::Unschedulable)
        {
            self.reactivate(uid, now);
        }
    }

    /// A cluster event that may make unschedulable pods fit.
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        let uids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.place == Place::Unschedulable)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in uids {
            self.reactivate(&uid, now);
        }
    }

    /// Moves pods whose backoff is over to the active heap.
    pub fn flush_backoff(&mut self, now: Instant) {
        while self
            .backoff
            .peek()
            .is_some_and(|Reverse((until, _, _))| *until <= now)
        {
            let Some(Reverse((_, seq, uid))) = self.backoff.pop() else {
                break;
            };
            if self
                .entries
                .get(&uid)
                .is_some_and(|e| e.seq == seq && e.place == Place::Backoff)
            {
                self.push_active(&uid, now);
            }
        }
    }

    /// Gives pods unschedulable for too long another try. Scans every pod,
    /// so the loop calls it on a slow timer, not per cycle.
    pub fn flush_unschedulable_leftovers(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.place == Place::Unschedulable && now >= e.unschedulable_since + MAX_UNSCHEDULABLE
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            self.push_active(&uid, now);
        }
    }

    /// Both flushes; for tests.
    pub fn flush(&mut self, now: Instant) {
        self.flush_backoff(now);
        self.flush_unschedulable_leftovers(now);
    }

    /// When the next backoff ends, for the loop's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn pending_pods(&self) -> impl Iterator<Item = &QueuedPod> {
        self.entries.values().map(|e| &e.qp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PodBuilder;

    fn add(q: &mut SchedulingQueue, name: &str, prio: i32, now: Instant) {
        let obj = PodBuilder::new(name).priority(prio).build();
        q.upsert(Arc::new(PodInfo::from_pod(&obj)), Arc::new(obj), now);
    }

    fn pop_name(q: &mut SchedulingQueue) -> Option<String> {
        q.pop().map(|p| p.pod.name.clone())
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let secs: Vec<u64> = (1..=6).map(|n| backoff_for(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn priority_first_then_arrival() {
        let t = Instant::now();
        let mut q = SchedulingQueue::default();
        add(&mut q, "low-early", 0, t);
        add(&mut q, "high", 100, t + Duration::from_millis(2));
        add(&mut q, "low-late", 0, t + Duration::from_millis(1));
        assert_eq!(pop_name(&mut q).as_deref(), Some("high"));
        assert_eq!(pop_name(&mut q).as_deref(), Some("low-early"));
        assert_eq!(pop_name(&mut q).as_deref(), Some("low-late"));
        assert_eq!(pop_name(&mut q), None);
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_and_their_backoff() {
        let t = Instant::now();
        let mut q = SchedulingQueue::default();
        add(&mut q, "p", 0, t);
        let p = q.pop().expect("pod");
        q.unschedulable(&p.pod.uid, t);
        q.flush(t + Duration::from_secs(30));
        assert!(!q.has_active(), "no event, no retry");

        // An event during the 1 s backoff parks it in the backoff heap.
        q.move_all_unschedulable(t + Duration::from_millis(500));
        assert!(!q.has_active());
        assert_eq!(q.next_deadline(), Some(t + Duration::from_secs(1)));
        q.flush(t + Duration::from_secs(1));
        let p = q.pop().expect("back after backoff");
        assert_eq!(p.attempts, 2);

        // Second failure: 2 s backoff; an event after it reactivates at once.
        q.unschedulable(&p.pod.uid, t + Duration::from_secs(1));
        q.move_all_unschedulable(t + Duration::from_secs(4));
        assert!(q.has_active());
    }

    #[test]
    fn requeue_wakes_one_unschedulable_pod() {
        let t = Instant::now();
        let mut q = SchedulingQueue::default();
        add(&mut q, "p", 0, t);
        add(&mut q, "other", 0, t);
        let p = q.pop().expect("pod");
        let other = q.pop().expect("pod");
        q.unschedulable(&p.pod.uid, t);
        q.unschedulable(&other.pod.uid, t);
        q.requeue(&p.pod.uid, t + Duration::from_secs(2));
        assert_eq!(pop_name(&mut q).as_deref(), Some("p"));
        assert!(q.pop().is_none(), "only the requeued pod");
        // A pod that is not waiting as unschedulable is left where it is.
        q.requeue(&p.pod.uid, t + Duration::from_secs(3));
        assert!(q.pop().is_none());
    }

    #[test]
    fn unschedulable_pods_retry_after_five_minutes_anyway() {
        let t = Instant::now();
        let mut q = SchedulingQueue::default();
        add(&mut q, "p", 0, t);
        let p = q.pop().expect("pod");
        q.unschedulable(&p.pod.uid, t);
        q.flush(t + MAX_UNSCHEDULABLE);
        assert!(q.has_active());
    }

    #[test]
    fn deletion_while_in_flight_is_not_undone() {
        let t = Instant::now();
        let mut q = SchedulingQueue::default();
        add(&mut q, "p", 0, t);
        let p = q.pop().expect("pod");
        q.remove(&p.pod.uid);
        q.retry_after_error(&p.pod.uid, t);
        q.flush(t + MAX_BACKOFF);
        assert!(q.pop().is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn status_only_updates_do_not_requeue_but_spec_changes_do() {
        let t = Instant::now();
        let mut q = SchedulingQueue::default();
        add(&mut q, "p", 0, t);
        let p = q.pop().expect("pod");
        q.unschedulable(&p.pod.uid, t);
        let mut obj = (*p.object).clone();
        obj.status = Some(Default::default());
        q.upsert(
            Arc::new(PodInfo::from_pod(&obj)),
            Arc::new(obj.clone()),
            t + MAX_BACKOFF,
        );
        assert!(!q.has_active());
        obj.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        q.upsert(
            Arc::new(PodInfo::from_pod(&obj)),
            Arc::new(obj),
            t + MAX_BACKOFF,
        );
        assert!(q.has_active());
    }

    #[test]
    fn gated_pods_wait_until_their_gates_are_gone() {
        let t = Instant::now();
        let mut q = SchedulingQueue::default();
        let mut obj = PodBuilder::new("g").build();
        if let Some(s) = obj.spec.as_mut() {
            s.scheduling_gates = Some(vec![k8s_openapi::api::core::v1::PodSchedulingGate {
                name: "x".into(),
            }]);
        }
        q.upsert(Arc::new(PodInfo::from_pod(&obj)), Arc::new(obj.clone()), t);
        assert!(q.pop().is_none());
        if let Some(s) = obj.spec.as_mut() {
            s.scheduling_gates = None;
        }
        q.upsert(Arc::new(PodInfo::from_pod(&obj)), Arc::new(obj), t);
        assert!(q.pop().is_some());
    }
}
