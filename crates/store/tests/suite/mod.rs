//! The behaviour every backend must have. Each function is run against
//! SQLite and against a real etcd (see `store.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use store::{EventKind, KeyValue, ListOptions, MAX_VALUE_BYTES, Store, StoreError, WatchItem};

use crate::common::{WAIT, b, expect_compacted_watch, next_event, next_item};

pub async fn basic_operations(store: Arc<dyn Store>) {
    let r0 = store.current_revision().await.unwrap();
    let kv = store.create("/t/a", b("1")).await.unwrap();
    assert_eq!(
        (kv.key.as_str(), kv.create_revision, kv.mod_revision),
        ("/t/a", r0 + 1, r0 + 1)
    );
    assert_eq!(store.current_revision().await.unwrap(), kv.mod_revision);
    assert_eq!(store.get("/t/a", None).await.unwrap(), Some(kv.clone()));
    assert!(
        matches!(store.create("/t/a", b("x")).await, Err(StoreError::AlreadyExists(k)) if k == "/t/a")
    );

    let kv2 = store.update("/t/a", b("2"), kv.mod_revision).await.unwrap();
    assert_eq!(
        (kv2.create_revision, kv2.mod_revision),
        (kv.create_revision, kv.mod_revision + 1)
    );
    assert_eq!(kv2.value, b("2"));
    match store.update("/t/a", b("3"), kv.mod_revision).await {
        Err(StoreError::Conflict { key, current }) => {
            assert_eq!(key, "/t/a");
            assert_eq!(current.as_deref(), Some(&kv2));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(
        store.update("/t/none", b("1"), 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.update("/t/none", b("1"), 0).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.get("/t/a", Some(kv.mod_revision)).await.unwrap(),
        Some(kv.clone())
    );
    assert_eq!(store.get("/t/none", None).await.unwrap(), None);

    assert!(matches!(
        store.delete("/t/a", Some(kv.mod_revision)).await,
        Err(StoreError::Conflict { current: Some(c), .. }) if *c == kv2
    ));
    let (prev, drev) = store.delete("/t/a", Some(kv2.mod_revision)).await.unwrap();
    assert_eq!((prev, drev), (kv2.clone(), kv2.mod_revision + 1));
    assert_eq!(store.get("/t/a", None).await.unwrap(), None);
    assert_eq!(store.get("/t/a", Some(drev)).await.unwrap(), None);
    assert_eq!(store.get("/t/a", Some(drev - 1)).await.unwrap(), Some(kv2));
    assert!(matches!(
        store.delete("/t/a", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete("/t/a", Some(drev)).await,
        Err(StoreError::NotFound(_))
    ));

    // A key created again starts a new life.
    let kv3 = store.create("/t/a", b("again")).await.unwrap();
    assert_eq!(kv3.create_revision, drev + 1);
    let (prev, _) = store.delete("/t/a", None).await.unwrap();
    assert_eq!(prev, kv3);

    // Keys are arbitrary UTF-8.
    let kv = store.create("/t/ü/ключ 1", b("unicode")).await.unwrap();
    assert_eq!(store.get("/t/ü/ключ 1", None).await.unwrap(), Some(kv));
    assert!(store.ready().await.is_ok());
    let future = store.current_revision().await.unwrap() + 10;
    assert!(matches!(
        store.get("/t/a", Some(future)).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

pub async fn conflicts_and_races(store: Arc<dyn Store>) {
    const N: usize = 16;
    // Creates of one key: exactly one wins.
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let s = Arc::clone(&store);
            tokio::spawn(async move { s.create("/race/k", b(&i.to_string())).await })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(kv) => winners.push(kv),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    let created = winners.pop().unwrap();

    // Updates from the same expected revision: exactly one wins, the others
    // see the winner's state.
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let s = Arc::clone(&store);
            let expected = created.mod_revision;
            tokio::spawn(async move { s.update("/race/k", b(&format!("u{i}")), expected).await })
        })
        .collect();
    let mut won = Vec::new();
    let mut seen = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(kv) => won.push(kv),
            Err(StoreError::Conflict {
                current: Some(c), ..
            }) => seen.push(*c),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one update wins");
    assert!(seen.iter().all(|c| *c == won[0]), "losers see the winner");

    // Guarded deletes: one wins, the rest find the key gone.
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let s = Arc::clone(&store);
            let expected = won[0].mod_revision;
            tokio::spawn(async move { s.delete("/race/k", Some(expected)).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::NotFound(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 1);

    // A CAS counter incremented by N tasks loses no increment.
    store.create("/race/counter", b("0")).await.unwrap();
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let s = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..5 {
                    loop {
                        let cur = s.get("/race/counter", None).await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                        match s
                            .update("/race/counter", b(&(n + 1).to_string()), cur.mod_revision)
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let fin = store.get("/race/counter", None).await.unwrap().unwrap();
    assert_eq!(fin.value, b(&(N * 5).to_string()));
}

fn keys(items: &[KeyValue]) -> Vec<&str> {
    items.iter().map(|kv| kv.key.as_str()).collect()
}

pub async fn list_pages_and_history(store: Arc<dyn Store>) {
    for k in ["/l", "/l2/x", "/lx", "/m/y"] {
        store.create(k, b("outside")).await.unwrap();
    }
    let mut all = Vec::new();
    for i in 0..25 {
        all.push(
            store
                .create(&format!("/l/k{i:02}"), b(&format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    let full = store.list("/l/", ListOptions::default()).await.unwrap();
    assert_eq!(full.items, all);
    assert!(!full.more);
    assert_eq!(full.revision, store.current_revision().await.unwrap());
    let unlimited = ListOptions {
        limit: Some(0),
        ..Default::default()
    };
    assert_eq!(store.list("/l/", unlimited).await.unwrap().items.len(), 25);

    // Page through while the keys change: the pages stay at the first
    // page's revision.
    let page1 = store
        .list(
            "/l/",
            ListOptions {
                limit: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page1.items.len(), 10);
    assert!(page1.more);
    let at = page1.revision;
    let k15 = &all[15];
    store
        .update(&k15.key, b("changed"), k15.mod_revision)
        .await
        .unwrap();
    store.delete("/l/k20", None).await.unwrap();
    store.create("/l/k99", b("new")).await.unwrap();
    let mut got = page1.items.clone();
    let mut last = page1.items.last().unwrap().key.clone();
    loop {
        let opts = ListOptions {
            revision: Some(at),
            limit: Some(10),
            start_after: Some(last),
        };
        let page = store.list("/l/", opts).await.unwrap();
        assert_eq!(page.revision, at);
        got.extend(page.items.iter().cloned());
        last = page.items.last().unwrap().key.clone();
        if !page.more {
            break;
        }
    }
    assert_eq!(got, all, "continued pages read the old revision");

    // The latest state, and an old one.
    let now = store.list("/l/", ListOptions::default()).await.unwrap();
    assert_eq!(now.items.len(), 25);
    assert!(keys(&now.items).contains(&"/l/k99"));
    assert!(!keys(&now.items).contains(&"/l/k20"));
    assert_eq!(
        now.items
            .iter()
            .find(|kv| kv.key == "/l/k15")
            .unwrap()
            .value,
        b("changed")
    );
    let old = store.list(
        "/l/",
        ListOptions {
            revision: Some(at),
            ..Default::default()
        },
    );
    assert_eq!(old.await.unwrap().items, all);
    let mid = all[12].mod_revision;
    let old = store.list(
        "/l/",
        ListOptions {
            revision: Some(mid),
            ..Default::default()
        },
    );
    assert_eq!(old.await.unwrap().items, all[..13].to_vec());

    // A continue key before the prefix does not widen the range.
    let opts = ListOptions {
        start_after: Some("/a".into()),
        ..Default::default()
    };
    assert_eq!(store.list("/l/", opts).await.unwrap().items.len(), 25);
    let opts = ListOptions {
        start_after: Some("/l/k24".into()),
        ..Default::default()
    };
    assert_eq!(
        keys(&store.list("/l/", opts).await.unwrap().items),
        ["/l/k99"]
    );
    let opts = ListOptions {
        start_after: Some("/l/zzz".into()),
        ..Default::default()
    };
    assert!(store.list("/l/", opts).await.unwrap().items.is_empty());
    let opts = ListOptions {
        start_after: Some("/m".into()),
        ..Default::default()
    };
    assert!(store.list("/l/", opts).await.unwrap().items.is_empty());
    // The empty prefix lists everything.
    let everything = store.list("", ListOptions::default()).await.unwrap();
    assert!(keys(&everything.items).contains(&"/lx"));
    assert!(keys(&everything.items).contains(&"/l/k00"));
    let future = ListOptions {
        revision: Some(now.revision + 5),
        ..Default::default()
    };
    assert!(matches!(
        store.list("/l/", future).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

pub async fn watch_ordering(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const OPS: usize = 125;
    let start = store.current_revision().await.unwrap();
    let mut w = store.watch("/w/", start).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let s = Arc::clone(&store);
            tokio::spawn(async move {
                // Every write of this task: (revision, key, value or None).
                let mut acked = Vec::new();
                let key = format!("/w/{t}");
                let mut cur: Option<KeyValue> = None;
                for i in 0..OPS {
                    let value = b(&format!("{t}-{i}"));
                    let kv = match cur.take() {
                        None => s.create(&key, value.clone()).await.unwrap(),
                        Some(kv) if i % 20 == 19 => {
                            let (_, rev) = s.delete(&key, Some(kv.mod_revision)).await.unwrap();
                            acked.push((rev, key.clone(), None));
                            continue;
                        }
                        Some(kv) => s
                            .update(&key, value.clone(), kv.mod_revision)
                            .await
                            .unwrap(),
                    };
                    let kv = cur.insert(kv);
                    acked.push((kv.mod_revision, key.clone(), Some(value)));
                    // Writes outside the prefix must not show up.
                    if i % 25 == 0 {
                        s.create(&format!("/wx/{t}/{i}"), b("noise")).await.unwrap();
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort_by_key(|a| a.0);
    assert_eq!(acked.len(), TASKS * OPS);

    let mut last: HashMap<String, KeyValue> = HashMap::new();
    let mut prev_rev = start;
    for (rev, key, value) in &acked {
        let ev = next_event(&mut w).await;
        assert!(ev.revision() > prev_rev, "revision order");
        assert_eq!(ev.revision(), *rev, "no gap, no duplicate");
        assert_eq!(&ev.kv.key, key);
        prev_rev = ev.revision();
        match value {
            Some(v) => {
                assert_eq!(ev.kind, EventKind::Put);
                assert_eq!(&ev.kv.value, v);
                assert_eq!(ev.prev.as_ref(), last.get(key), "prev of {key}@{rev}");
                last.insert(key.clone(), ev.kv.clone());
            }
            None => {
                assert_eq!(ev.kind, EventKind::Delete);
                assert!(ev.kv.value.is_empty());
                assert_eq!(ev.prev.as_ref(), last.get(key));
                last.remove(key);
            }
        }
    }
}

pub async fn watch_resume(store: Arc<dyn Store>) {
    let mut kv = store.create("/r/a", b("0")).await.unwrap();
    let mut history = vec![kv.clone()];
    for i in 1..20 {
        kv = store
            .update("/r/a", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
        history.push(kv.clone());
    }
    // From the middle of history: replay, then live, without a seam.
    let mut w = store.watch("/r/", history[9].mod_revision).await.unwrap();
    for (i, want) in history.iter().enumerate().skip(10) {
        let ev = next_event(&mut w).await;
        assert_eq!(&ev.kv, want);
        assert_eq!(ev.prev.as_ref(), Some(&history[i - 1]));
    }
    for i in 20..25 {
        kv = store
            .update("/r/a", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
        let ev = next_event(&mut w).await;
        assert_eq!(ev.kv, kv);
    }
    // Resuming from the last seen revision repeats nothing.
    let mut w2 = store.watch("/r/", kv.mod_revision).await.unwrap();
    let next = store
        .update("/r/a", b("last"), kv.mod_revision)
        .await
        .unwrap();
    assert_eq!(next_event(&mut w2).await.kv, next);
    assert_eq!(next_event(&mut w).await.kv, next);
    let future = store.current_revision().await.unwrap() + 100;
    assert!(matches!(
        store.watch("/r/", future).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

pub async fn compaction_errors(store: Arc<dyn Store>) {
    let mut kv = store.create("/c/a", b("0")).await.unwrap();
    store.create("/c/b", b("b")).await.unwrap();
    let mut revs = vec![kv.mod_revision];
    for i in 1..6 {
        kv = store
            .update("/c/a", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
        revs.push(kv.mod_revision);
    }
    let (_, deleted_at) = store.delete("/c/b", None).await.unwrap();
    store.compact(revs[3]).await.unwrap();
    match store.get("/c/a", Some(revs[2])).await {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            assert_eq!((requested, compacted), (revs[2], revs[3]));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let old = ListOptions {
        revision: Some(revs[2]),
        ..Default::default()
    };
    assert!(matches!(
        store.list("/c/", old).await,
        Err(StoreError::Compacted { .. })
    ));
    expect_compacted_watch(&store, "/c/", revs[2]).await;
    // The compaction point itself and everything after is still there.
    assert_eq!(
        store
            .get("/c/a", Some(revs[3]))
            .await
            .unwrap()
            .unwrap()
            .value,
        b("3")
    );
    let at = ListOptions {
        revision: Some(revs[4]),
        ..Default::default()
    };
    let listed = store.list("/c/", at).await.unwrap();
    assert_eq!(keys(&listed.items), ["/c/a", "/c/b"]);
    let mut w = store.watch("/c/", revs[3]).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.mod_revision, revs[4]);
    assert_eq!(next_event(&mut w).await.kv.mod_revision, revs[5]);
    assert_eq!(next_event(&mut w).await.revision(), deleted_at);
    // Compacting an older revision is a no-op; a future one is refused.
    store.compact(revs[1]).await.unwrap();
    let future = store.current_revision().await.unwrap() + 10;
    assert!(matches!(
        store.compact(future).await,
        Err(StoreError::FutureRevision { .. })
    ));
    // Compacting everything keeps the latest values.
    let now = store.current_revision().await.unwrap();
    store.compact(now).await.unwrap();
    assert_eq!(store.get("/c/a", None).await.unwrap(), Some(kv));
    assert_eq!(store.get("/c/b", None).await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), now);
    let mut w = store.watch("/c/", now).await.unwrap();
    let kv = store.update("/c/a", b("after"), revs[5]).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv, kv);
}

pub async fn large_values(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut w = store.watch("/big/", start).await.unwrap();
    let big = Bytes::from(vec![b'x'; MAX_VALUE_BYTES]);
    let kv = store.create("/big/a", big.clone()).await.unwrap();
    assert_eq!(store.get("/big/a", None).await.unwrap().unwrap().value, big);
    assert_eq!(next_event(&mut w).await.kv.value.len(), MAX_VALUE_BYTES);
    let too_big = Bytes::from(vec![b'y'; MAX_VALUE_BYTES + 1]);
    assert!(matches!(
        store.create("/big/b", too_big.clone()).await,
        Err(StoreError::ValueTooLarge { size, limit }) if size == MAX_VALUE_BYTES + 1 && limit == MAX_VALUE_BYTES
    ));
    assert!(matches!(
        store.update("/big/a", too_big, kv.mod_revision).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert_eq!(store.get("/big/b", None).await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), kv.mod_revision);
}

pub async fn watch_progress(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut w = store.watch("/p/", start).await.unwrap();
    match next_item(&mut w).await {
        Ok(WatchItem::Progress(r)) => assert!(r >= start),
        other => panic!("expected progress, got {other:?}"),
    }
    // Writes elsewhere advance the progress mark of an idle watch.
    let kv = store.create("/q/x", b("elsewhere")).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match next_item(&mut w).await {
            Ok(WatchItem::Progress(r)) if r >= kv.mod_revision => break,
            Ok(WatchItem::Progress(_)) => {}
            other => panic!("expected progress, got {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "progress did not advance"
        );
    }
    // And an event still comes through after progress marks.
    let kv = store.create("/p/x", b("here")).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv, kv);
}
