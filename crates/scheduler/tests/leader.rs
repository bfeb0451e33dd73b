//! Leader election on a real Lease: one leader at a time, hand-over on release.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::ApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use leaderelection::{LeaderElector, Timing};

fn timing() -> Timing {
    Timing {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_hand_over_on_release() {
    let server = ApiServer::start().await;
    // The scheduler's own credential may create and renew the kube-scheduler lease.
    let a = LeaderElector::new(
        server.scheduler.clone(),
        "kube-system",
        "kube-scheduler",
        "a",
        timing(),
    )
    .expect("a");
    let b = Arc::new(
        LeaderElector::new(
            server.scheduler.clone(),
            "kube-system",
            "kube-scheduler",
            "b",
            timing(),
        )
        .expect("b"),
    );
    let leases: Api<Lease> = Api::namespaced(server.admin.clone(), "kube-system");
    let holder = || async {
        leases
            .get("kube-scheduler")
            .await
            .ok()
            .and_then(|l| l.spec?.holder_identity)
    };

    let (release_a, released) = tokio::sync::oneshot::channel::<()>();
    let a_leads = tokio::spawn(async move { a.run(async { released.await.ok() }).await });
    // Wait for a to take the lease before b competes.
    let held_by_a = |l: Option<&Lease>| {
        l.and_then(|l| l.spec.as_ref()?.holder_identity.as_deref()) == Some("a")
    };
    let wait = kube::runtime::wait::await_condition(leases.clone(), "kube-scheduler", held_by_a);
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("a leads")
        .expect("watch");

    let b_led = Arc::new(AtomicBool::new(false));
    let b_run = tokio::spawn({
        let (b, b_led) = (b.clone(), b_led.clone());
        async move {
            b.run(async move { b_led.store(true, Ordering::SeqCst) })
                .await
        }
    });
    // Several renewals of a's lease pass; b never leads meanwhile.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        !b_led.load(Ordering::SeqCst),
        "b led while a held the lease"
    );
    assert_eq!(holder().await.as_deref(), Some("a"));

    let _ = release_a.send(());
    a_leads.await.expect("join").expect("a led to completion");
    tokio::time::timeout(Duration::from_secs(5), b_run)
        .await
        .expect("b takes over promptly after release")
        .expect("join")
        .expect("b led");
    assert!(b_led.load(Ordering::SeqCst));
}
