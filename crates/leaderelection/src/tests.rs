use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;

use super::*;

/// Leases in memory with resourceVersion checks; `down` makes every call fail,
/// as a partitioned candidate would see.
#[derive(Clone, Default)]
struct MemLeases {
    leases: Arc<Mutex<HashMap<String, Lease>>>,
    next_rv: Arc<Mutex<u64>>,
    down: Arc<AtomicBool>,
}

impl MemLeases {
    fn view(&self) -> Self {
        Self {
            leases: self.leases.clone(),
            next_rv: self.next_rv.clone(),
            down: Arc::new(AtomicBool::new(false)),
        }
    }

    fn holder(&self, name: &str) -> Option<String> {
        let leases = self.leases.lock().ok()?;
        leases.get(name)?.spec.as_ref()?.holder_identity.clone()
    }

    fn transitions(&self, name: &str) -> Option<i32> {
        let leases = self.leases.lock().ok()?;
        leases.get(name)?.spec.as_ref()?.lease_transitions
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Api(
                kube::Error::LinesCodecMaxLineLengthExceeded,
            ));
        }
        Ok(())
    }

    fn stamp(&self, mut lease: Lease) -> Lease {
        let mut rv = self.next_rv.lock().expect("rv lock");
        *rv += 1;
        lease.metadata.resource_version = Some(rv.to_string());
        lease
    }
}

impl LeaseStore for MemLeases {
    async fn get(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        self.check()?;
        Ok(self.leases.lock().expect("lock").get(name).cloned())
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.check()?;
        let name = lease.metadata.name.clone().unwrap_or_default();
        if self.leases.lock().expect("lock").contains_key(&name) {
            return Err(StoreError::Conflict);
        }
        let stored = self.stamp(lease.clone());
        self.leases
            .lock()
            .expect("lock")
            .insert(name, stored.clone());
        Ok(stored)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.check()?;
        let name = lease.metadata.name.clone().unwrap_or_default();
        let current_rv = self
            .leases
            .lock()
            .expect("lock")
            .get(&name)
            .and_then(|l| l.metadata.resource_version.clone());
        if current_rv.is_none() || current_rv != lease.metadata.resource_version {
            return Err(StoreError::Conflict);
        }
        let stored = self.stamp(lease.clone());
        self.leases
            .lock()
            .expect("lock")
            .insert(name, stored.clone());
        Ok(stored)
    }
}

fn timing() -> Timing {
    Timing {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

#[tokio::test(start_paused = true)]
async fn acquires_a_free_lease_runs_the_work_and_releases() {
    let store = MemLeases::default();
    let elector = LeaderElector::with_store(store.view(), "sched", "a", timing()).expect("timing");
    let seen = store.clone();
    let out = elector
        .run(async move {
            assert_eq!(seen.holder("sched").as_deref(), Some("a"));
            // Long enough for several renewals.
            tokio::time::sleep(Duration::from_secs(60)).await;
            42
        })
        .await
        .expect("leading");
    assert_eq!(out, 42);
    assert_eq!(store.holder("sched"), None, "released on completion");
}

#[tokio::test(start_paused = true)]
async fn a_second_candidate_waits_and_takes_over_after_the_leader_is_cut_off() {
    let store = MemLeases::default();
    let a_store = store.view();
    let a_down = a_store.down.clone();
    let a = Arc::new(LeaderElector::with_store(a_store, "sched", "a", timing()).expect("timing"));
    let b =
        Arc::new(LeaderElector::with_store(store.view(), "sched", "b", timing()).expect("timing"));

    let a_run = tokio::spawn({
        let a = a.clone();
        async move { a.run(std::future::pending::<()>()).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(store.holder("sched").as_deref(), Some("a"));

    let (b_started_tx, b_started) = tokio::sync::oneshot::channel();
    let b_run = tokio::spawn({
        let b = b.clone();
        async move {
            b.run(async move {
                let _ = b_started_tx.send(tokio::time::Instant::now());
                std::future::pending::<()>().await
            })
            .await
        }
    });
    // While a renews, b never gets in.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(store.holder("sched").as_deref(), Some("a"));

    let cut = tokio::time::Instant::now();
    a_down.store(true, Ordering::SeqCst);
    let lost = a_run.await.expect("join");
    assert!(matches!(lost, Err(ElectionError::LeadershipLost(_))));
    assert!(
        cut.elapsed() <= Duration::from_secs(13),
        "gave up within the renew deadline"
    );

    let started = b_started.await.expect("b leads");
    let waited = started - cut;
    // a's last renewal happened up to one retry period before the cut.
    assert!(
        waited >= Duration::from_secs(13),
        "b waited a lease duration: {waited:?}"
    );
    assert!(
        waited <= Duration::from_secs(20),
        "b took over promptly: {waited:?}"
    );
    assert_eq!(store.holder("sched").as_deref(), Some("b"));
    assert_eq!(store.transitions("sched"), Some(1));
    b_run.abort();
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_at_once() {
    let store = MemLeases::default();
    let a = LeaderElector::with_store(store.view(), "sched", "a", timing()).expect("timing");
    a.run(async {}).await.expect("leading");
    let b = LeaderElector::with_store(store.view(), "sched", "b", timing()).expect("timing");
    let start = tokio::time::Instant::now();
    b.run(async {}).await.expect("leading");
    // Released leases last one second.
    assert!(
        start.elapsed() <= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn rejects_timing_that_cannot_work() {
    let bad = Timing {
        renew_deadline: Duration::from_secs(20),
        ..timing()
    };
    assert!(matches!(
        LeaderElector::with_store(MemLeases::default(), "x", "a", bad),
        Err(ElectionError::InvalidTiming(_))
    ));
}
