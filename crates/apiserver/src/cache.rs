//! The watch cache: one watch on the store feeds an in-memory copy of every object,
//! so lists, gets and client watches are served from memory (kube-apiserver's
//! "cacher"). Each object is kept as the exact JSON bytes clients receive, plus the
//! labels and selectable fields extracted once when it arrives; a list is a
//! concatenation of those bytes, never a re-serialization. The allocators'
//! claims, which share the objects' prefix, are kept apart as a set of keys
//! (`keys::is_claim`): no list, watch or history ever holds one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use apimachinery::resources::SelectableField;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use store::{Event, EventKind, KeyValue, ListOptions, Revision, Store, WatchItem};
use tokio::sync::{broadcast, watch};

use crate::error::{ApiError, ApiResult};
use crate::keys;

/// The pod field that indexes watches (see `State::node_channels`).
const NODE_NAME: &str = "spec.nodeName";

/// Events kept for watches that resume from an older resourceVersion.
const HISTORY_EVENTS: usize = 100_000;
/// Buffered events per resource before a slow watcher is cut off.
const WATCH_BUFFER: usize = 4096;
/// The same for one node's pods. A channel's buffer is allocated whole when
/// it is made (~40 bytes a slot), and there is one per node: 256 slots are
/// ~10 KiB a node, and more than two changes for each of a node's 110 pods.
const NODE_WATCH_BUFFER: usize = 256;

/// One object as clients see it.
#[derive(Debug)]
pub struct Entry {
    pub key: String,
    /// The object's JSON with `metadata.resourceVersion` set.
    pub json: Bytes,
    pub mod_revision: Revision,
    pub labels: BTreeMap<String, String>,
    /// Values of the selectable fields of this kind (`spec.nodeName`, …).
    pub fields: Vec<(&'static str, String)>,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses the object; used by writers that need to change it.
    pub fn value(&self) -> ApiResult<Value> {
        serde_json::from_slice(&self.json)
            .map_err(|e| ApiError::internal_from("stored object is corrupt", e))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One change, as client watches stream it.
#[derive(Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub revision: Revision,
    /// The object after the change; for a delete, its last state stamped with the
    /// delete's revision.
    pub object: Arc<Entry>,
    /// The object before the change, for selector transitions.
    pub prev: Option<Arc<Entry>>,
}

struct State {
    revision: Revision,
    objects: BTreeMap<String, Arc<Entry>>,
    history: VecDeque<Arc<Change>>,
    /// History covers every change after this revision.
    history_start: Revision,
    channels: HashMap<String, broadcast::Sender<Arc<Change>>>,
    /// Pod changes by `spec.nodeName` (before and after the change), for watches
    /// that select one node's pods — every kubelet's. Kubernetes' cacher calls
    /// these indexed triggers: without them each pod change would wake every
    /// node's watch.
    node_channels: HashMap<String, broadcast::Sender<Arc<Change>>>,
    /// Lookups kept up to date with `objects`.
    indexes: Indexes,
    /// The revision of each resource's latest change since the last load.
    resource_revisions: HashMap<String, Revision>,
    loaded_at: Revision,
    /// The allocators' claimed keys (service IPs, node ports): not objects.
    claims: HashSet<String>,
}

/// A consistent view of one resource prefix plus a feed of what follows it.
pub struct Snapshot {
    pub revision: Revision,
    pub items: Vec<Arc<Entry>>,
}

pub struct Cache {
    state: RwLock<State>,
    revision_tx: watch::Sender<Revision>,
}

impl Cache {
    /// Lists the whole store and starts following it.
    pub async fn start(store: Arc<dyn Store>) -> ApiResult<Arc<Cache>> {
        let cache = Arc::new(Cache {
            state: RwLock::new(State {
                revision: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_start: 0,
                channels: HashMap::new(),
                node_channels: HashMap::new(),
                indexes: Indexes::default(),
                resource_revisions: HashMap::new(),
                loaded_at: 0,
                claims: HashSet::new(),
            }),
            revision_tx: watch::channel(0).0,
        });
        let rev = cache.load(&*store).await?;
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            let mut after = rev;
            // Holds the cache only while applying an event, so dropping the last
            // outside reference ends this task.
            while let Err(e) = follow(&weak, &*store, after).await {
                let Some(cache) = weak.upgrade() else { return };
                tracing::warn!(error = %e, "watch cache lost its store watch; reloading");
                tokio::time::sleep(Duration::from_millis(200)).await;
                match cache.load(&*store).await {
                    Ok(r) => after = r,
                    Err(e) => tracing::warn!(error = %e, "watch cache reload failed"),
                }
            }
        });
        Ok(cache)
    }

    /// Replaces the cached state with a fresh list; watchers of the old state are cut
    /// off (they resume with a list, as after a 410).
    async fn load(&self, store: &dyn Store) -> ApiResult<Revision> {
        let listed = store.list(keys::OBJECTS, ListOptions::default()).await?;
        let mut objects = BTreeMap::new();
        let mut indexes = Indexes::default();
        let mut claims = HashSet::new();
        for kv in listed.items {
            if keys::is_claim(&kv.key) {
                claims.insert(kv.key);
            } else if let Some(entry) = ingest(&kv, kv.mod_revision) {
                indexes.update(&entry, true);
                objects.insert(kv.key.clone(), Arc::new(entry));
            }
        }
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        st.objects = objects;
        st.revision = listed.revision;
        st.history.clear();
        st.history_start = listed.revision;
        st.channels.clear();
        st.node_channels.clear();
        st.indexes = indexes;
        st.resource_revisions.clear();
        st.loaded_at = listed.revision;
        st.claims = claims;
        drop(st);
        self.revision_tx.send_replace(listed.revision);
        Ok(listed.revision)
    }

    fn progress(&self, rev: Revision) {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if rev > st.revision {
            st.revision = rev;
            drop(st);
            self.revision_tx.send_replace(rev);
        }
    }

    fn apply(&self, ev: Event) {
        let rev = ev.revision();
        let key = ev.kv.key.clone();
        if keys::is_claim(&key) {
            let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
            match ev.kind {
                EventKind::Put => st.claims.insert(key),
                EventKind::Delete => st.claims.remove(&key),
            };
            st.revision = rev;
            drop(st);
            self.revision_tx.send_replace(rev);
            return;
        }
        let new = match ev.kind {
            EventKind::Put => ingest(&ev.kv, rev).map(Arc::new),
            EventKind::Delete => None,
        };
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let prev = st.objects.get(&key).cloned();
        let change = match (new, ev.kind) {
            (Some(obj), _) => {
                if let Some(p) = &prev {
                    st.indexes.update(p, false);
                }
                st.indexes.update(&obj, true);
                st.objects.insert(key.clone(), obj.clone());
                let kind = if prev.is_some() {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                };
                Some(Change {
                    kind,
                    revision: rev,
                    object: obj,
                    prev,
                })
            }
            (None, EventKind::Delete) => {
                if let Some(p) = &prev {
                    st.indexes.update(p, false);
                }
                st.objects.remove(&key);
                prev.as_ref()
                    .and_then(|p| restamp(p, rev))
                    .map(|obj| Change {
                        kind: ChangeKind::Deleted,
                        revision: rev,
                        object: Arc::new(obj),
                        prev,
                    })
            }
            (None, EventKind::Put) => None,
        };
        st.revision = rev;
        if let Some(change) = change {
            let change = Arc::new(change);
            if st.history.len() >= HISTORY_EVENTS
                && let Some(old) = st.history.pop_front()
            {
                st.history_start = old.revision;
            }
            st.history.push_back(change.clone());
            st.resource_revisions
                .insert(resource_of(&key).to_string(), rev);
            if resource_of(&key) == "pods" {
                let now = change.object.field(NODE_NAME);
                let before = change.prev.as_ref().and_then(|p| p.field(NODE_NAME));
                for node in [now, before.filter(|b| Some(*b) != now)]
                    .into_iter()
                    .flatten()
                {
                    // A send fails only when the node's last watch has gone.
                    if let Some(tx) = st.node_channels.get(node)
                        && tx.send(change.clone()).is_err()
                    {
                        st.node_channels.remove(node);
                    }
                }
            }
            if let Some(tx) = st.channels.get(resource_of(&key)) {
                // An error only means nobody listens right now.
                let _ = tx.send(change);
            }
        }
        drop(st);
        self.revision_tx.send_replace(rev);
    }

    /// The latest revision the cache has applied.
    pub fn revision(&self) -> Revision {
        *self.revision_tx.borrow()
    }

    /// Waits until the cache has applied `rev`, as a consistent read requires.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> ApiResult<()> {
        let mut rx = self.revision_tx.subscribe();
        let wait = rx.wait_for(|r| *r >= rev);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::Unavailable("watch cache stopped".into())),
            Err(_) => Err(ApiError::Timeout(format!(
                "Too large resource version: {rev}, current: {}",
                self.revision()
            ))),
        }
    }

    /// The revision of the latest change to one resource: cheap, for callers that
    /// keep derived state (RBAC indexes) and rebuild it only when this moves.
    pub fn resource_revision(&self, resource: &str) -> Revision {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        st.resource_revisions
            .get(resource)
            .copied()
            .unwrap_or(st.loaded_at)
    }

    /// The PriorityClass marked `globalDefault`, from its index rather than a
    /// scan of every class.
    pub fn default_priority_class(&self) -> Option<Arc<Entry>> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        let key = st.indexes.default_priority_classes.first()?;
        st.objects.get(key).cloned()
    }

    /// Whether an allocator's claim (`keys::service_ip`, `keys::node_port`) is
    /// taken, as of the cache's revision.
    pub fn is_claimed(&self, key: &str) -> bool {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        st.claims.contains(key)
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        st.objects.get(key).cloned()
    }

    /// Every object under `prefix` whose key is after `start_after`, at the cache's
    /// current revision, filtered, at most `limit` (0: all). Returns whether more follow.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        filter: &dyn Fn(&Entry) -> bool,
    ) -> (Snapshot, bool) {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        list_locked(&st, prefix, start_after, limit, filter)
    }

    /// Like [`Cache::list`], but only if nothing of `resource` changed after `at`
    /// (and the cache has reached `at`): then the cache still is the state at `at`,
    /// and a continued list can be served from memory at that revision.
    pub fn list_unchanged_since(
        &self,
        resource: &str,
        at: Revision,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        filter: &dyn Fn(&Entry) -> bool,
    ) -> Option<(Snapshot, bool)> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        let changed = st
            .resource_revisions
            .get(resource)
            .copied()
            .unwrap_or(st.loaded_at);
        if changed > at || st.revision < at {
            return None;
        }
        let (mut snap, more) = list_locked(&st, prefix, start_after, limit, filter);
        snap.revision = at;
        Some((snap, more))
    }

    /// Subscribes to changes of `resource` (a storage resource such as `pods`) after
    /// `after`. Returns the history to replay first and the live feed, or 410 when
    /// that history is gone. With `after` = None, returns the current objects under
    /// `prefix` as a snapshot instead of history.
    /// `node`, for pods, limits the live feed to changes of pods on that node
    /// (before or after the change); the caller still filters by its selectors.
    pub fn watch(
        &self,
        resource: &str,
        prefix: &str,
        after: Option<Revision>,
        node: Option<&str>,
    ) -> ApiResult<WatchStart> {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let (channels, size) = match node {
            Some(n) if resource == "pods" => {
                (st.node_channels.entry(n.to_string()), NODE_WATCH_BUFFER)
            }
            _ => (st.channels.entry(resource.to_string()), WATCH_BUFFER),
        };
        let rx = channels
            .or_insert_with(|| broadcast::channel(size).0)
            .subscribe();
        match after {
            None => {
                let items: Vec<Arc<Entry>> = st
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, e)| e.clone())
                    .collect();
                Ok(WatchStart {
                    revision: st.revision,
                    initial: Initial::Snapshot(items),
                    live: rx,
                })
            }
            Some(after) => {
                if after < st.history_start {
                    return Err(ApiError::Gone(format!(
                        "too old resource version: {after} ({})",
                        st.history_start
                    )));
                }
                let from = st.history.partition_point(|c| c.revision <= after);
                let replay: Vec<Arc<Change>> = st
                    .history
                    .range(from..)
                    .filter(|c| c.object.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(WatchStart {
                    revision: st.revision,
                    initial: Initial::Replay(replay),
                    live: rx,
                })
            }
        }
    }

    /// The pods bound to `node`, from the per-node index: the cost is the
    /// node's pods, not the cluster's.
    pub fn pods_on_node(&self, node: &str) -> Vec<Arc<Entry>> {
        let st = self.state.read().unwrap_or_else(|p| p.into_inner());
        st.indexes
            .node_pods
            .get(node)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| st.objects.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Objects of one resource, for components inside the server (RBAC, admission).
    pub fn objects(&self, prefix: &str) -> (Revision, Vec<Arc<Entry>>) {
        let (snap, _) = self.list(prefix, None, 0, &|_| true);
        (snap.revision, snap.items)
    }
}

/// Applies the store's changes after `after` until the stream fails; returns Ok
/// when the cache is gone.
async fn follow(
    weak: &std::sync::Weak<Cache>,
    store: &dyn Store,
    after: Revision,
) -> ApiResult<()> {
    let mut stream = store.watch(keys::OBJECTS, after).await?;
    while let Some(item) = stream.next().await {
        let Some(cache) = weak.upgrade() else {
            return Ok(());
        };
        match item? {
            WatchItem::Event(ev) => cache.apply(ev),
            WatchItem::Progress(rev) => cache.progress(rev),
        }
    }
    Err(ApiError::Unavailable("store watch ended".into()))
}

fn list_locked(
    st: &State,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
    filter: &dyn Fn(&Entry) -> bool,
) -> (Snapshot, bool) {
    let mut items = Vec::new();
    let mut more = false;
    let start = match start_after {
        Some(k) if k >= prefix => std::ops::Bound::Excluded(k.to_string()),
        _ => std::ops::Bound::Included(prefix.to_string()),
    };
    for (k, e) in st.objects.range((start, std::ops::Bound::Unbounded)) {
        if !k.starts_with(prefix) {
            break;
        }
        if !filter(e) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            more = true;
            break;
        }
        items.push(e.clone());
    }
    (
        Snapshot {
            revision: st.revision,
            items,
        },
        more,
    )
}

pub enum Initial {
    /// The current objects: sent as ADDED.
    Snapshot(Vec<Arc<Entry>>),
    /// Changes after the requested revision.
    Replay(Vec<Arc<Change>>),
}

pub struct WatchStart {
    /// The revision the initial part is complete up to; live changes at or before
    /// it are duplicates and must be skipped.
    pub revision: Revision,
    pub initial: Initial,
    pub live: broadcast::Receiver<Arc<Change>>,
}

/// The stored resource of PriorityClasses (checked against the resource table in
/// the tests).
const PRIORITY_CLASSES: &str = "priorityclasses";

/// What the cache indexes besides keys, so the questions asked on hot paths cost
/// what their answer holds rather than a scan.
#[derive(Default)]
struct Indexes {
    /// The keys of the pods bound to each node (`spec.nodeName`), so a question
    /// about one node's pods (the node authorizer's) looks at that node's pods
    /// only — at most a few hundred — however many pods the cluster has.
    node_pods: HashMap<String, BTreeSet<String>>,
    /// The keys of the PriorityClasses with `globalDefault: true`, for the
    /// Priority admission of every pod that names no class. Kubernetes allows
    /// one; should there be more, the first by name is the default.
    default_priority_classes: BTreeSet<String>,
}

impl Indexes {
    /// Adds an object to (or removes it from) the indexes it belongs in.
    fn update(&mut self, entry: &Entry, add: bool) {
        match resource_of(&entry.key) {
            "pods" => index_pod(&mut self.node_pods, entry, add),
            PRIORITY_CLASSES => {
                let default = add
                    && entry
                        .value()
                        .is_ok_and(|v| apimachinery::json::bool_at(&v, "globalDefault"));
                if default {
                    self.default_priority_classes.insert(entry.key.clone());
                } else {
                    self.default_priority_classes.remove(&entry.key);
                }
            }
            _ => {}
        }
    }
}

/// Adds a pod to (or removes it from) the per-node index under its `spec.nodeName`.
fn index_pod(node_pods: &mut HashMap<String, BTreeSet<String>>, entry: &Entry, add: bool) {
    let Some(node) = entry.field(NODE_NAME).filter(|n| !n.is_empty()) else {
        return;
    };
    if add {
        node_pods
            .entry(node.to_string())
            .or_default()
            .insert(entry.key.clone());
    } else if let Some(keys) = node_pods.get_mut(node) {
        keys.remove(&entry.key);
        if keys.is_empty() {
            node_pods.remove(node);
        }
    }
}

/// `pods` from `/registry/pods/default/web`.
pub(crate) fn resource_of(key: &str) -> &str {
    key.strip_prefix(keys::OBJECTS)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

/// Turns a stored value into an entry: sets the resourceVersion and extracts what
/// selectors need, straight from the bytes when they have the usual shape. A value
/// that is not a JSON object is skipped with a warning — one corrupt record must
/// not take the server down.
fn ingest(kv: &KeyValue, rev: Revision) -> Option<Entry> {
    if let Some(json) = crate::stored::stamp(&kv.value, rev) {
        let sel = selectable(resource_of(&kv.key));
        if let Some(found) = crate::stored::extract(&json, &sel.paths, sel.names.len()) {
            return Some(Entry {
                key: kv.key.clone(),
                json,
                mod_revision: rev,
                labels: found.labels,
                fields: sel
                    .fields
                    .iter()
                    .zip(found.values)
                    .map(|(f, v)| (f.name, v.unwrap_or_else(|| f.absent.into())))
                    .collect(),
            });
        }
    }
    let mut value: Value = match serde_json::from_slice(&kv.value) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            tracing::warn!(key = %kv.key, "skipping a stored value that is not a JSON object");
            return None;
        }
    };
    Some(entry_from(kv.key.clone(), &mut value, rev))
}

/// What the watch cache extracts from each object of one resource for field
/// selectors: `metadata.name`, `metadata.namespace`, then the fields the resource
/// table declares for the kind (`Resource::fields`).
struct Selectable {
    fields: Vec<SelectableField>,
    names: Vec<&'static str>,
    paths: crate::stored::Paths,
}

const META_FIELDS: [SelectableField; 2] = [
    SelectableField {
        name: "metadata.name",
        path: &["metadata", "name"],
        absent: "",
    },
    SelectableField {
        name: "metadata.namespace",
        path: &["metadata", "namespace"],
        absent: "",
    },
];

/// The selectable fields of a stored resource, built once per resource from the
/// resource table.
fn selectable(resource: &str) -> &'static Selectable {
    static ALL: OnceLock<HashMap<String, Selectable>> = OnceLock::new();
    let build = |own: &'static [SelectableField]| {
        let fields: Vec<SelectableField> = META_FIELDS.iter().chain(own).copied().collect();
        let paths: Vec<Vec<&'static str>> = fields.iter().map(|f| f.path.to_vec()).collect();
        Selectable {
            names: fields.iter().map(|f| f.name).collect(),
            paths: crate::stored::Paths::new(&paths),
            fields,
        }
    };
    let all = ALL.get_or_init(|| {
        let mut all: HashMap<String, Selectable> = apimachinery::resources::BUILTIN
            .iter()
            .filter(|r| !r.fields.is_empty())
            .map(|r| (r.storage_resource(), build(r.fields)))
            .collect();
        all.insert(String::new(), build(&[]));
        all
    });
    all.get(resource).unwrap_or(&all[""])
}

/// Builds an entry from a decoded object, stamping `rev` as its resourceVersion.
pub(crate) fn entry_from(key: String, value: &mut Value, rev: Revision) -> Entry {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
    let labels = value
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let fields = selectable_fields(resource_of(&key), value);
    let json = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    Entry {
        key,
        json,
        mod_revision: rev,
        labels,
        fields,
    }
}

fn restamp(prev: &Entry, rev: Revision) -> Option<Entry> {
    let mut v = prev.value().ok()?;
    Some(entry_from(prev.key.clone(), &mut v, rev))
}

/// The field selector names a stored resource supports (metadata.name and
/// .namespace included).
pub(crate) fn field_names(resource: &str) -> &'static [&'static str] {
    &selectable(resource).names
}

fn selectable_fields(resource: &str, value: &Value) -> Vec<(&'static str, String)> {
    selectable(resource)
        .fields
        .iter()
        .map(|f| {
            let found = f.path.iter().try_fold(value, |v, step| v.get(step));
            let text = match found {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => f.absent.into(),
            };
            (f.name, text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kv(key: &str, v: &Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: serde_json::to_vec(v).unwrap().into(),
            create_revision: 1,
            mod_revision: 1,
        }
    }

    /// The per-node pod index follows binds, moves, deletes and reloads.
    #[tokio::test]
    async fn pods_are_indexed_by_node() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(None, dir.path()).await.unwrap();
        let pod = |name: &str, node: &str| {
            let v =
                json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node}});
            bytes::Bytes::from(serde_json::to_vec(&v).unwrap())
        };
        let a = store
            .create("/registry/pods/ns/a", pod("a", "n1"))
            .await
            .unwrap();
        let cache = Cache::start(store.clone()).await.unwrap();
        let on = |node: &str| -> Vec<String> {
            cache
                .pods_on_node(node)
                .iter()
                .map(|e| e.key.clone())
                .collect()
        };
        assert_eq!(on("n1"), ["/registry/pods/ns/a"]);
        store
            .create("/registry/pods/ns/b", pod("b", "n1"))
            .await
            .unwrap();
        store
            .create("/registry/pods/ns/c", pod("c", ""))
            .await
            .unwrap();
        store
            .create("/registry/configmaps/ns/n1", pod("n1", "n1"))
            .await
            .unwrap();
        store
            .update("/registry/pods/ns/a", pod("a", "n2"), a.mod_revision)
            .await
            .unwrap();
        let (_, rev) = store.delete("/registry/pods/ns/b", None).await.unwrap();
        cache.wait_for(rev, Duration::from_secs(10)).await.unwrap();
        assert!(on("n1").is_empty());
        assert_eq!(on("n2"), ["/registry/pods/ns/a"]);
        assert!(on("").is_empty());
        cache.load(&*store).await.unwrap();
        assert_eq!(on("n2"), ["/registry/pods/ns/a"]);
        assert!(on("n1").is_empty());
    }

    /// The default PriorityClass is found through its index, which follows
    /// creates, updates, deletes and reloads; with more than one, the first by name.
    #[tokio::test]
    async fn the_default_priority_class_is_indexed() {
        assert_eq!(
            keys::prefix("scheduling.k8s.io/v1", "PriorityClass"),
            keys::storage_prefix(PRIORITY_CLASSES)
        );
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(None, dir.path()).await.unwrap();
        let class = |name: &str, default: Option<bool>| {
            let mut v = json!({"metadata": {"name": name}, "value": 10});
            if let Some(d) = default {
                v["globalDefault"] = json!(d);
            }
            bytes::Bytes::from(serde_json::to_vec(&v).unwrap())
        };
        let key = |name: &str| keys::priority_class(name);
        store
            .create(&key("b"), class("b", Some(true)))
            .await
            .unwrap();
        let a = store.create(&key("a"), class("a", None)).await.unwrap();
        let cache = Cache::start(store.clone()).await.unwrap();
        let default = || cache.default_priority_class().map(|e| e.key.clone());
        assert_eq!(default(), Some(key("b")));
        let a = store
            .update(&key("a"), class("a", Some(true)), a.mod_revision)
            .await
            .unwrap();
        cache
            .wait_for(a.mod_revision, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(default(), Some(key("a")));
        let (_, rev) = store.delete(&key("a"), None).await.unwrap();
        cache.wait_for(rev, Duration::from_secs(10)).await.unwrap();
        assert_eq!(default(), Some(key("b")));
        let b = store.get(&key("b"), None).await.unwrap().unwrap();
        let b = store
            .update(&key("b"), class("b", Some(false)), b.mod_revision)
            .await
            .unwrap();
        cache
            .wait_for(b.mod_revision, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(default(), None);
        store
            .create(&key("c"), class("c", Some(true)))
            .await
            .unwrap();
        cache.load(&*store).await.unwrap();
        assert_eq!(default(), Some(key("c")));
    }

    /// Allocator claims are followed as a key set, never as objects: no list,
    /// watch snapshot or replay shows them, and a reload keeps them.
    #[tokio::test]
    async fn claims_are_kept_apart_from_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(None, dir.path()).await.unwrap();
        let claim = bytes::Bytes::from_static(br#"{"owner":"default/web"}"#);
        let ip = keys::service_ip("10.43.0.10");
        let port = keys::node_port(30080);
        store.create(&ip, claim.clone()).await.unwrap();
        let cache = Cache::start(store.clone()).await.unwrap();
        let start = cache.revision();
        assert!(cache.is_claimed(&ip));
        assert!(!cache.is_claimed(&port));
        store.create(&port, claim.clone()).await.unwrap();
        let (_, rev) = store.delete(&ip, None).await.unwrap();
        cache.wait_for(rev, Duration::from_secs(10)).await.unwrap();
        assert_eq!(cache.revision(), rev);
        assert!(!cache.is_claimed(&ip));
        assert!(cache.is_claimed(&port));
        assert!(cache.get(&port).is_none());
        let (all, _) = cache.list(keys::OBJECTS, None, 0, &|_| true);
        assert!(all.items.is_empty());
        let watch = cache
            .watch("ranges", keys::OBJECTS, Some(start), None)
            .unwrap();
        assert!(matches!(watch.initial, Initial::Replay(r) if r.is_empty()));
        cache.load(&*store).await.unwrap();
        assert!(cache.is_claimed(&port) && !cache.is_claimed(&ip));
        assert!(cache.get(&port).is_none());
    }

    /// The byte-level path gives what decoding the whole object gives.
    #[test]
    fn ingest_matches_the_tree_path() {
        let objects = [
            (
                "/registry/pods/ns/p",
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "w\"eb"}},
                    "spec": {"nodeName": "n1", "schedulerName": "default-scheduler"},
                    "status": {"phase": "Pending"}}),
            ),
            (
                "/registry/events/ns/e",
                json!({"metadata": {"name": "e", "namespace": "ns"}, "reason": "Scheduled",
                    "source": {"component": "default-scheduler"}, "involvedObject": {"kind": "Pod"}}),
            ),
            (
                "/registry/nodes/n1",
                json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}}),
            ),
            ("/registry/nodes/n2", json!({"metadata": {"name": "n2"}})),
            (
                "/registry/replicasets/ns/r",
                json!({"metadata": {"name": "r", "namespace": "ns"}, "status": {"replicas": 3}}),
            ),
            (
                "/registry/configmaps/ns/c",
                json!({"metadata": {}, "data": {"a": "b"}}),
            ),
        ];
        for (key, obj) in objects {
            let fast = ingest(&kv(key, &obj), 9).unwrap();
            let mut v = obj.clone();
            let slow = entry_from(key.into(), &mut v, 9);
            assert_eq!(fast.fields, slow.fields, "{key}");
            assert_eq!(fast.labels, slow.labels, "{key}");
            let a: Value = serde_json::from_slice(&fast.json).unwrap();
            let b: Value = serde_json::from_slice(&slow.json).unwrap();
            assert_eq!(a, b, "{key}");
            assert_eq!(a["metadata"]["resourceVersion"], "9");
        }
        // Not an object: skipped.
        let mut bad = kv("/registry/pods/ns/x", &json!([1]));
        assert!(ingest(&bad, 2).is_none());
        bad.value = b"{not json".to_vec().into();
        assert!(ingest(&bad, 2).is_none());
    }
}
