//! Test harness: a store on each backend, and helpers to read watches with
//! deadlines.

#![allow(dead_code)]

pub mod etcd;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use store::etcd::{EtcdOptions, EtcdStore};
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{Event, Store, StoreError, WatchItem, WatchStream};

pub use self::etcd::EtcdCluster;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(30);

/// A store under test and what keeps it alive. The store is declared first so
/// it is dropped before its files or its etcd.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub dir: Option<tempfile::TempDir>,
    pub cluster: Option<EtcdCluster>,
}

pub fn sqlite_options() -> SqliteOptions {
    SqliteOptions {
        progress_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

pub fn etcd_options() -> EtcdOptions {
    EtcdOptions {
        progress_interval: Duration::from_millis(200),
        retry_for: Duration::from_secs(30),
        ..Default::default()
    }
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("state.db"), sqlite_options()).expect("open");
    Harness {
        store: Arc::new(store),
        dir: Some(dir),
        cluster: None,
    }
}

pub async fn etcd() -> Harness {
    etcd_cluster(1).await
}

pub async fn etcd_cluster(members: usize) -> Harness {
    let cluster = EtcdCluster::start(members).await;
    let store = EtcdStore::connect(cluster.endpoints(), etcd_options())
        .await
        .expect("connect");
    Harness {
        store: Arc::new(store),
        dir: None,
        cluster: Some(cluster),
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next item of a watch, failing the test after [`WAIT`].
pub async fn next_item(w: &mut WatchStream) -> Result<WatchItem, StoreError> {
    match tokio::time::timeout(WAIT, w.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("watch ended without an error"),
        Err(_) => panic!("no watch item within {WAIT:?}"),
    }
}

/// The next event of a watch, skipping progress marks.
pub async fn next_event(w: &mut WatchStream) -> Event {
    loop {
        match next_item(w).await {
            Ok(WatchItem::Event(e)) => return e,
            Ok(WatchItem::Progress(_)) => {}
            Err(e) => panic!("watch failed: {e}"),
        }
    }
}

/// Asserts that a watch ends with `Compacted`, either when it is opened or as
/// its first item (etcd may report it either way).
pub async fn expect_compacted_watch(store: &Arc<dyn Store>, prefix: &str, after: i64) {
    match store.watch(prefix, after).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(mut w) => loop {
            match next_item(&mut w).await {
                Err(StoreError::Compacted { .. }) => break,
                Ok(WatchItem::Progress(_)) => {}
                other => panic!("expected Compacted, got {other:?}"),
            }
        },
    }
}
