//! One watch per resource type, shared by every controller that reads it: a
//! kube-runtime watcher feeding a reflector store, plus a broadcast of what
//! changed so controllers can map changes to the objects they reconcile.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};

/// How many changes a slow controller may fall behind before it is told to
/// resync everything instead.
const CHANGE_BUFFER: usize = 4096;

/// One change seen by an informer, after its store was updated.
#[derive(Debug)]
pub enum Change<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
    /// The store was replaced wholesale (first list, relist after a watch error
    /// or a receiver falling behind): everything may have changed.
    Resync,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(o) => Change::Applied(o.clone()),
            Change::Deleted(o) => Change::Deleted(o.clone()),
            Change::Resync => Change::Resync,
        }
    }
}

/// A watched, cached resource type.
pub struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    changes: broadcast::Sender<Change<K>>,
    /// Bumped after every change so waiters can re-check their condition.
    seen: watch::Sender<u64>,
}

type Driver = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over `api` and the future that keeps it filled; the future
    /// runs until dropped and survives API errors by backing off.
    pub fn new(api: Api<K>, config: watcher::Config) -> (Arc<Self>, Driver) {
        let (store, writer) = reflector::store();
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let (seen, _) = watch::channel(0);
        let informer = Arc::new(Informer {
            store,
            changes,
            seen,
        });
        let me = informer.clone();
        let kind = K::kind(&()).to_string();
        let driver = async move {
            let stream = watcher(api, config).default_backoff().reflect(writer);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let change = match event {
                    Ok(watcher::Event::Apply(o)) => Change::Applied(Arc::new(o)),
                    Ok(watcher::Event::Delete(o)) => Change::Deleted(Arc::new(o)),
                    Ok(watcher::Event::InitDone) => Change::Resync,
                    // The store swaps in a relist only at InitDone; announcing its
                    // objects earlier would send controllers to a store without them.
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                    Err(e) => {
                        tracing::debug!(kind = %kind, error = %e, "watch failed; retrying");
                        continue;
                    }
                };
                let _ = me.changes.send(change);
                me.seen.send_modify(|n| *n = n.wrapping_add(1));
            }
        };
        (informer, Box::pin(driver))
    }

    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change<K>> {
        self.changes.subscribe()
    }

    /// Waits until the first list is in the cache.
    pub async fn synced(&self) {
        // Fails only when the writer is dropped, which ends the controllers anyway.
        let _ = self.store.wait_until_ready().await;
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    /// Every cached object in one namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.store
            .state_filter(|o| o.meta().namespace.as_deref() == Some(namespace))
    }

    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut r = reflector::ObjectRef::new(name);
        if let Some(ns) = namespace {
            r = r.within(ns);
        }
        self.store.get(&r)
    }

    /// Waits until `done` holds for the cache, re-checking after every change;
    /// false when `limit` passed first. Controllers use it after their own writes
    /// so the next reconcile does not act on a cache that predates them (client-go's
    /// "expectations").
    pub async fn wait_until(&self, limit: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let mut seen = self.seen.subscribe();
        let waiting = async {
            loop {
                if done(self) {
                    return;
                }
                if seen.changed().await.is_err() {
                    // The driver is gone; nothing will change any more.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(limit, waiting).await.is_ok()
    }

    /// Waits until the cache holds `obj` at its written uid and resourceVersion
    /// or later (anything different from what was there before counts).
    pub async fn wait_for_write(&self, obj: &K, limit: Duration) -> bool {
        let ns = obj.namespace();
        let name = obj.name_any();
        let uid = obj.uid();
        let rv = obj.resource_version();
        self.wait_until(limit, |i| {
            i.get(ns.as_deref(), &name).is_some_and(|cur| {
                cur.uid() != uid
                    || cur.resource_version() == rv
                    || newer(&cur.resource_version(), &rv)
            })
        })
        .await
    }

    /// Waits until the cache no longer holds the object with `uid`, or shows it
    /// being deleted.
    pub async fn wait_for_delete(
        &self,
        namespace: Option<&str>,
        name: &str,
        uid: &str,
        limit: Duration,
    ) -> bool {
        self.wait_until(limit, |i| {
            i.get(namespace, name).is_none_or(|cur| {
                cur.meta().uid.as_deref() != Some(uid) || cur.meta().deletion_timestamp.is_some()
            })
        })
        .await
    }
}

/// Resource versions are opaque to clients in general; this server's are the
/// store's integer revision, and comparing them numerically only ever makes the
/// wait shorter, never wrong, because a mismatch that cannot be compared counts
/// as not yet seen.
fn newer(current: &Option<String>, written: &Option<String>) -> bool {
    let parse = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<u64>().ok());
    matches!((parse(current), parse(written)), (Some(c), Some(w)) if c > w)
}
