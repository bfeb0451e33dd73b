//! etcd-specific behaviour: fail-over on a three-member cluster, and starting
//! while etcd is unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use store::etcd::{EtcdOptions, EtcdStore};
use store::{KeyValue, Store, StoreError, WatchStream};
use tokio::time::Instant;

use crate::common::etcd::{EtcdCluster, free_port, watch_streams};
use crate::common::{WAIT, b, etcd_cluster, etcd_options, next_event};

/// Writes keep being acknowledged and open watches keep delivering every
/// acknowledged write, in order, while one member is SIGKILLed.
async fn failover(kill_leader: bool) {
    let mut h = etcd_cluster(3).await;
    let store = Arc::clone(&h.store);
    let cluster = h.cluster.as_mut().unwrap();
    let leader = cluster.leader().await;
    let victim = if kill_leader {
        leader
    } else {
        (leader + 1) % 3
    };

    // Open watches until one of them is served by the victim, so that the
    // kill breaks a watch stream for certain.
    let start = store.current_revision().await.unwrap();
    let mut watches: Vec<WatchStream> = Vec::new();
    let baseline = watch_streams(&cluster.members[victim]);
    while watch_streams(&cluster.members[victim]) == baseline {
        assert!(watches.len() < 40, "no watch landed on member {victim}");
        watches.push(store.watch("/f/", start).await.unwrap());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<KeyValue>();
    let writer = {
        let (s, stop) = (Arc::clone(&store), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let kv = s
                    .create(&format!("/f/{i:05}"), b("v"))
                    .await
                    .expect("write during fail-over");
                let _ = ack_tx.send(kv);
                i += 1;
            }
        })
    };
    let mut acks = Vec::new();
    take(&mut ack_rx, 30, &mut acks).await;
    cluster.members[victim].kill();
    let killed_at = Instant::now();
    take(&mut ack_rx, 100, &mut acks).await;
    let recovery = killed_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    while let Ok(kv) = ack_rx.try_recv() {
        acks.push(kv);
    }
    for w in &mut watches {
        for kv in &acks {
            assert_eq!(&next_event(w).await.kv, kv);
        }
    }
    // A fresh watch through the surviving members works too.
    let last = acks.last().unwrap().mod_revision;
    let mut w = store.watch("/f/", last - 10).await.unwrap();
    for kv in &acks[acks.len() - 10..] {
        assert_eq!(&next_event(&mut w).await.kv, kv);
    }
    assert!(
        recovery < Duration::from_secs(30),
        "100 writes took {recovery:?} after the kill"
    );
}

/// Waits for `n` more acknowledged writes.
async fn take(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<KeyValue>,
    n: usize,
    acks: &mut Vec<KeyValue>,
) {
    let target = acks.len() + n;
    while acks.len() < target {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(kv)) => acks.push(kv),
            _ => panic!(
                "writes stopped being acknowledged after {} writes",
                acks.len()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_survive_killing_the_leader() {
    failover(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_survive_killing_a_follower() {
    failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_etcd_is_unreachable() {
    let (client_port, peer_port) = (free_port(), free_port());
    let opts = EtcdOptions {
        retry_for: Duration::from_millis(300),
        ..etcd_options()
    };
    let store = EtcdStore::connect(vec![format!("127.0.0.1:{client_port}")], opts)
        .await
        .expect("connecting must not fail while etcd is down");
    match store.ready().await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(
                msg.contains(&format!("127.0.0.1:{client_port}")),
                "names the endpoint: {msg}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        store.get("/x", None).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.create("/x", b("x")).await,
        Err(StoreError::Unavailable(_))
    ));

    let _cluster = EtcdCluster::start_on(&[(client_port, peer_port)]).await;
    let deadline = Instant::now() + WAIT;
    while store.ready().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "store not ready after etcd started"
        );
        // Polling readiness, as /readyz would.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kv = store.create("/x", b("x")).await.unwrap();
    assert_eq!(store.get("/x", None).await.unwrap(), Some(kv));
}
