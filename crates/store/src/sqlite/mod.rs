//! The embedded backend: one SQLite file in WAL mode.
//!
//! * `log` is an append-only table with one row per revision; `current` points
//!   at the newest row of each live key, so reads of the latest state never
//!   scan history, while reads at an older revision use the log.
//! * One writer thread commits requests in batches (group commit) and replies
//!   only after the fsync'd commit (`writer.rs`).
//! * Reads use a small pool of read-only connections (`read.rs`).
//! * Watches replay the log and then follow an in-memory feed of committed
//!   batches (`watch.rs`).
//! * History is compacted automatically to a window of time and revisions,
//!   in small steps between write batches (`compact.rs`).
//! * A background thread checkpoints the WAL into the database file, so that
//!   commits do not wait for it (`checkpoint.rs`).

mod checkpoint;
mod compact;
mod read;
mod schema;
mod watch;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, oneshot};

use self::read::ReadPool;
use self::writer::{Op, Request, Shared, Writer, Written};
use crate::{
    Event, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError, WatchStream,
    check_value_size,
};

/// Settings of [`SqliteStore`]. Build with `..Default::default()`.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Read-only connections used by reads and watch replays.
    pub readers: usize,
    /// Most write requests committed in one transaction.
    pub max_batch: usize,
    /// Committed batches buffered for watchers; a watcher further behind
    /// re-reads the log instead of holding up writers.
    pub watch_buffer: usize,
    /// How often an idle watch reports [`crate::WatchItem::Progress`].
    pub progress_interval: Duration,
    /// Compact history automatically.
    pub auto_compaction: bool,
    /// History younger than this is kept...
    pub history_age: Duration,
    /// ...and so are the latest this many revisions, whichever is more.
    pub history_revisions: i64,
    /// How often automatic compaction, WAL truncation and vacuuming run.
    pub maintenance_interval: Duration,
    /// Revisions compacted per step (one short transaction).
    pub compaction_step: i64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 4,
            max_batch: 1024,
            watch_buffer: 256,
            progress_interval: Duration::from_secs(5),
            auto_compaction: true,
            history_age: Duration::from_secs(5 * 60),
            history_revisions: 10_000,
            maintenance_interval: Duration::from_secs(30),
            compaction_step: 1000,
        }
    }
}

/// One committed transaction, as broadcast to watches: the revisions
/// `first..=last` and their events in order.
pub(crate) struct Committed {
    pub first: Revision,
    pub last: Revision,
    pub events: Vec<Event>,
}

/// The embedded store. Dropping it stops the writer after the requests
/// already queued and ends open watches with an error.
pub struct SqliteStore {
    path: PathBuf,
    opts: SqliteOptions,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<ReadPool>,
    feed: broadcast::Sender<Arc<Committed>>,
    shared: Arc<Shared>,
    /// Declared last so it is closed after every connection (see
    /// [`schema::lock_file`]).
    _lock: File,
}

impl SqliteStore {
    /// Opens the store in the SQLite file at `path`, creating it (and its
    /// directory) if missing. A file that is not a Flotilla store gives
    /// [`StoreError::Corrupt`] and is left untouched; a file held by another
    /// store instance gives [`StoreError::Unavailable`].
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        let lock = schema::lock_file(path)?;
        let found = schema::inspect(path)?;
        let conn = schema::open_writer(path, found)?;
        let readers = Arc::new(ReadPool::new(path.to_path_buf(), opts.readers)?);
        let (feed, _) = broadcast::channel(opts.watch_buffer.max(16));
        let shared = Arc::new(Shared {
            current: Default::default(),
        });
        let writer = Writer::new(conn, opts.clone(), Arc::clone(&shared), feed.clone())?;
        let (requests, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Internal(format!("cannot start the sqlite writer: {e}")))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            opts,
            requests: Some(requests),
            writer: Some(handle),
            readers,
            feed,
            shared,
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn stopped(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "sqlite store {}: the writer has stopped",
            self.path.display()
        ))
    }

    async fn write(&self, op: Op) -> Result<Written> {
        let (reply, rx) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or_else(|| self.stopped())?;
        requests
            .send(Request::Write { op, reply })
            .map_err(|_| self.stopped())?;
        rx.await.map_err(|_| self.stopped())?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel stops the writer; wait for it so that its
        // connection is closed before the lock file, and so that the store can
        // be reopened as soon as this returns.
        self.requests.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.readers
            .run(move |conn| read::get(conn, &key, revision))
            .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let prefix = prefix.to_string();
        self.readers
            .run(move |conn| read::list(conn, &prefix, &opts))
            .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        check_value_size(&value)?;
        match self
            .write(Op::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            Written::Put(kv) => Ok(kv),
            Written::Deleted(..) => Err(StoreError::Internal("create answered as a delete".into())),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        check_value_size(&value)?;
        match self
            .write(Op::Update {
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            Written::Put(kv) => Ok(kv),
            Written::Deleted(..) => Err(StoreError::Internal("update answered as a delete".into())),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        match self
            .write(Op::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            Written::Deleted(kv, revision) => Ok((kv, revision)),
            Written::Put(_) => Err(StoreError::Internal("delete answered as a put".into())),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let pool = Arc::clone(&self.readers);
        watch::start(pool, &self.feed, prefix, after, self.opts.progress_interval).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.current.load(Ordering::SeqCst))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or_else(|| self.stopped())?;
        requests
            .send(Request::Compact { revision, reply })
            .map_err(|_| self.stopped())?;
        rx.await.map_err(|_| self.stopped())?
    }

    async fn ready(&self) -> Result<()> {
        if self.writer.as_ref().is_none_or(|h| h.is_finished()) {
            return Err(self.stopped());
        }
        self.readers
            .run(|conn| {
                conn.query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(schema::map_err)
            })
            .await
    }
}
