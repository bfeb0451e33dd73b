//! The cluster state store: a small key-value interface with etcd v3 semantics.
//!
//! Every change gets the next value of one global [`Revision`]. Each key remembers
//! the revision that created it and the revision that last modified it; the latter
//! becomes an object's `metadata.resourceVersion`. Watches stream every change
//! under a prefix in revision order, starting after a given revision, until that
//! history has been compacted away.
//!
//! Two backends implement [`Store`]: [`sqlite::SqliteStore`] (embedded, the default)
//! and [`etcd::EtcdStore`] (a real etcd v3 cluster).

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;

pub mod etcd;
pub mod sqlite;

/// A point in the store's history. Revisions start at 1 and grow by one per write.
pub type Revision = i64;

/// Largest value the store accepts, as etcd's default `--max-request-bytes`.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// One key with its value and the revisions that created and last modified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// Opens the store a server was configured with.
///
/// `endpoint` `None` opens the embedded SQLite store at
/// `data_dir/db/state.db` (creating the directories). Otherwise it names an
/// etcd cluster as a comma-separated list of members, each `host:port` or
/// `http://host:port`, optionally behind one `etcd://` in front of the list:
/// `etcd://h1:2379,h2:2379`, `http://h1:2379,http://h2:2379`,
/// `http://h1:2379,h2:2379`. An unreachable etcd does not fail here; see
/// [`etcd::EtcdStore::connect`].
pub async fn open(endpoint: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>> {
    match endpoint {
        None => {
            let path = data_dir.join("db").join("state.db");
            // Opening touches the file system (and may wait for a lock).
            let store = tokio::task::spawn_blocking(move || {
                sqlite::SqliteStore::open(&path, sqlite::SqliteOptions::default())
            })
            .await
            .map_err(|e| StoreError::Internal(format!("opening the sqlite store failed: {e}")))??;
            Ok(Arc::new(store))
        }
        Some(spec) => {
            let endpoints = parse_endpoints(spec)?;
            let store = etcd::EtcdStore::connect(endpoints, etcd::EtcdOptions::default()).await?;
            Ok(Arc::new(store))
        }
    }
}

/// Splits an etcd endpoint list into `http://host:port` URLs.
pub fn parse_endpoints(spec: &str) -> Result<Vec<String>> {
    let invalid =
        |why: &str| StoreError::Internal(format!("invalid etcd endpoint list {spec:?}: {why}"));
    let list = spec.trim();
    let list = list.strip_prefix("etcd://").unwrap_or(list);
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let hostport = if let Some(rest) = item.strip_prefix("http://") {
            rest
        } else if item.starts_with("https://") {
            return Err(invalid(
                "https is not supported; use http:// on a trusted network",
            ));
        } else if let Some(rest) = item.strip_prefix("etcd://") {
            rest
        } else if item.contains("://") {
            return Err(invalid("unknown scheme"));
        } else {
            item
        };
        let hostport = hostport.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err(invalid("each member must be host:port"));
        }
        out.push(format!("http://{hostport}"));
    }
    if out.is_empty() {
        return Err(invalid("no members"));
    }
    Ok(out)
}

/// The smallest byte string greater than every string beginning with
/// `prefix`, or `None` when there is none (empty or all-0xFF prefix).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Options for [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Read the state as of this revision; `None` (or zero) reads the latest.
    pub revision: Option<Revision>,
    /// Return at most this many keys; `None` or `Some(0)` means no limit.
    pub limit: Option<usize>,
    /// Return only keys strictly greater than this one (a continue token's key).
    pub start_after: Option<String>,
}

/// The answer to [`Store::list`].
#[derive(Clone, Debug)]
pub struct ListResult {
    /// Keys in ascending byte order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at; a continued list passes it back.
    pub revision: Revision,
    /// True when the limit cut the list short and more keys follow the last item.
    pub more: bool,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change. For a delete, `value` is empty,
    /// `create_revision` is zero (as etcd reports it) and `mod_revision` is the
    /// revision of the delete.
    pub kv: KeyValue,
    /// The key before the change, when it existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// An item of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    Event(Event),
    /// Every change up to and including this revision has been delivered.
    Progress(Revision),
}

/// A stream of changes; it ends with an error if the watch cannot continue.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem, StoreError>> + Send>>;

/// Errors a store operation can return.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create found the key already present.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// Compare-and-swap failed: the key's mod revision was not the expected one.
    /// `current` is the key as it is now (`None` when it was deleted).
    #[error("key {key} was modified concurrently")]
    Conflict {
        key: String,
        current: Option<Box<KeyValue>>,
    },
    /// The requested revision is older than the oldest revision kept.
    #[error("revision {requested} has been compacted; the oldest kept is {compacted}")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than the current revision.
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge { size: usize, limit: usize },
    /// The backend is unreachable or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend's files are corrupt or belong to something else.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("store error: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The cluster state store, with etcd v3 semantics.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key, at the latest revision or at `revision` (zero means the
    /// latest). A revision older than the compaction point fails with
    /// [`StoreError::Compacted`], one newer than the current revision with
    /// [`StoreError::FutureRevision`].
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>>;

    /// Lists keys beginning with `prefix`, in key order.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if it is present.
    /// Returns the new key.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces `key`'s value if its mod revision is `expected`; otherwise fails
    /// with [`StoreError::Conflict`] (or [`StoreError::NotFound`] if absent).
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue>;

    /// Deletes `key`, if `expected` is given only when its mod revision matches.
    /// Returns the key as it was before the delete, and the revision of the delete.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)>;

    /// Streams every change under `prefix` with a revision greater than `after`,
    /// in revision order, without gaps or duplicates, plus progress marks.
    /// Fails with [`StoreError::Compacted`] when that history is gone (`after`
    /// is older than the compaction point) and with
    /// [`StoreError::FutureRevision`] when `after` is newer than the current
    /// revision. A stream that cannot continue (its history compacted while
    /// it lagged, the backend gone for too long) ends with an error item.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Forgets history older than `revision`; reads and watches before it fail
    /// with [`StoreError::Compacted`]. The state at `revision` and the latest
    /// value of every key are kept. Compacting an already compacted revision
    /// does nothing; a future one fails with [`StoreError::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Checks that the backend answers; `/readyz` calls it.
    async fn ready(&self) -> Result<()> {
        self.current_revision().await.map(|_| ())
    }
}

/// Checks a value against [`MAX_VALUE_BYTES`]; backends call it before writing.
pub fn check_value_size(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::ValueTooLarge {
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}
