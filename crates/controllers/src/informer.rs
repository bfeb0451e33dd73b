//! One watch per resource type, shared by every controller that reads it: a
//! kube-runtime watcher feeding a reflector store, plus a broadcast of what
//! changed so controllers can map changes to the objects they reconcile.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, RwLock};
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
    /// Names of the cached objects by namespace, and by the informer's own
    /// key if it has one (client-go's indexers): reading one namespace or
    /// one node's pods costs what is there, not the whole cache.
    index: RwLock<Indexes>,
    key_of: Option<fn(&K) -> Option<&str>>,
}

/// `(namespace, name)` of a cached object; cluster-scoped objects have "".
type Name = (String, String);

#[derive(Default)]
struct Indexes {
    by_namespace: HashMap<String, HashSet<String>>,
    by_key: HashMap<String, HashSet<Name>>,
    /// Each object's current key, to move it when the key changes.
    key: HashMap<Name, String>,
}

impl Indexes {
    fn apply<K: Resource>(&mut self, obj: &K, key: Option<&str>) {
        let (ns, name) = name_of(obj);
        self.by_namespace
            .entry(ns.clone())
            .or_default()
            .insert(name.clone());
        let id = (ns, name);
        let old = self.key.get(&id).map(String::as_str);
        if old == key {
            return;
        }
        self.unkey(&id);
        if let Some(k) = key {
            self.by_key
                .entry(k.to_string())
                .or_default()
                .insert(id.clone());
            self.key.insert(id, k.to_string());
        }
    }

    fn delete<K: Resource>(&mut self, obj: &K) {
        let (ns, name) = name_of(obj);
        if let Some(names) = self.by_namespace.get_mut(&ns) {
            names.remove(&name);
            if names.is_empty() {
                self.by_namespace.remove(&ns);
            }
        }
        self.unkey(&(ns, name));
    }

    fn unkey(&mut self, id: &Name) {
        if let Some(old) = self.key.remove(id)
            && let Some(ids) = self.by_key.get_mut(&old)
        {
            ids.remove(id);
            if ids.is_empty() {
                self.by_key.remove(&old);
            }
        }
    }
}

fn name_of<K: Resource>(obj: &K) -> Name {
    let meta = obj.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn object_ref<K: Resource<DynamicType = ()>>(
    namespace: &str,
    name: &str,
) -> reflector::ObjectRef<K> {
    let r = reflector::ObjectRef::new(name);
    if namespace.is_empty() {
        r
    } else {
        r.within(namespace)
    }
}

type Driver = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over `api` and the future that keeps it filled; the future
    /// runs until dropped and survives API errors by backing off.
    pub fn new(api: Api<K>, config: watcher::Config) -> (Arc<Self>, Driver) {
        Self::indexed(api, config, None)
    }

    /// Like [`Informer::new`], also indexing objects by `key_of` (read back
    /// with [`Informer::with_key`]).
    pub fn indexed(
        api: Api<K>,
        config: watcher::Config,
        key_of: Option<fn(&K) -> Option<&str>>,
    ) -> (Arc<Self>, Driver) {
        let (store, writer) = reflector::store();
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let (seen, _) = watch::channel(0);
        let informer = Arc::new(Informer {
            store,
            changes,
            seen,
            index: RwLock::default(),
            key_of,
        });
        let me = informer.clone();
        let kind = K::kind(&()).to_string();
        let driver = async move {
            let stream = watcher(api, config).default_backoff().reflect(writer);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                // The reflector has already written the event to the store.
                let change = match event {
                    Ok(watcher::Event::Apply(o)) => {
                        me.write_index().apply(&o, me.key_of.and_then(|f| f(&o)));
                        Change::Applied(Arc::new(o))
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        me.write_index().delete(&o);
                        Change::Deleted(Arc::new(o))
                    }
                    Ok(watcher::Event::InitDone) => {
                        me.reindex();
                        Change::Resync
                    }
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
        let index = self.read_index();
        let Some(names) = index.by_namespace.get(namespace) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| self.store.get(&object_ref(namespace, name)))
            .collect()
    }

    /// Every cached object whose index key (see [`Informer::indexed`]) is `key`.
    pub fn with_key(&self, key: &str) -> Vec<Arc<K>> {
        let index = self.read_index();
        let Some(ids) = index.by_key.get(key) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|(ns, name)| self.store.get(&object_ref(ns, name)))
            .collect()
    }

    /// Rebuilds the indexes from the store after it was replaced by a relist.
    fn reindex(&self) {
        let mut fresh = Indexes::default();
        for o in self.store.state() {
            fresh.apply(o.as_ref(), self.key_of.and_then(|f| f(&o)));
        }
        *self.write_index() = fresh;
    }

    // A panic while the lock was held left the indexes as consistent as the
    // store (each update is a few map operations): keep serving them.
    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Indexes> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Indexes> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::node_name as node_of;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(ns: &str, name: &str, node: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"nodeName": node, "containers": []}
        }))
        .expect("pod")
    }

    fn keyed(ix: &Indexes, key: &str) -> Vec<Name> {
        let mut v: Vec<Name> = ix.by_key.get(key).into_iter().flatten().cloned().collect();
        v.sort();
        v
    }

    #[test]
    fn indexes_follow_key_changes_and_deletes() {
        let mut ix = Indexes::default();
        let a = pod("ns1", "a", "");
        let b = pod("ns1", "b", "n1");
        let c = pod("ns2", "c", "n1");
        for p in [&a, &b, &c] {
            ix.apply(p, node_of(p));
        }
        assert_eq!(ix.by_namespace["ns1"].len(), 2);
        assert_eq!(ix.by_namespace["ns2"].len(), 1);
        assert_eq!(
            keyed(&ix, "n1"),
            [("ns1".into(), "b".into()), ("ns2".into(), "c".into())]
        );

        // Bound: a moves from no key to n2; b moves from n1 to n2.
        let a2 = pod("ns1", "a", "n2");
        let b2 = pod("ns1", "b", "n2");
        ix.apply(&a2, node_of(&a2));
        ix.apply(&b2, node_of(&b2));
        assert_eq!(keyed(&ix, "n1"), [("ns2".into(), "c".into())]);
        assert_eq!(
            keyed(&ix, "n2"),
            [("ns1".into(), "a".into()), ("ns1".into(), "b".into())]
        );

        ix.delete(&c);
        ix.delete(&a2);
        assert!(!ix.by_key.contains_key("n1"), "empty keys are dropped");
        assert!(!ix.by_namespace.contains_key("ns2"));
        assert_eq!(keyed(&ix, "n2"), [("ns1".into(), "b".into())]);
        assert_eq!(ix.key.len(), 1);
    }
}
