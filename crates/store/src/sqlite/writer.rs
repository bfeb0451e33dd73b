//! The single writer thread. It owns the only read-write connection, takes
//! requests from a channel and commits everything that queued up while the
//! previous commit was being synced in one transaction (group commit): many
//! concurrent writers share one fsync, and each waits for at most one
//! transaction besides its own. Replies go out only after the commit, so
//! batching does not weaken durability.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, oneshot};

use super::checkpoint::{self, Checkpointer};
use super::compact::Compactor;
use super::schema::{self, map_err};
use super::{Committed, SqliteOptions};
use crate::{Event, EventKind, KeyValue, Result, Revision, StoreError};

/// A change requested by a client.
pub(crate) enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

/// The outcome of a successful [`Op`].
pub(crate) enum Written {
    Put(KeyValue),
    Deleted(KeyValue, Revision),
}

pub(crate) enum Request {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<Written>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

impl Request {
    /// The value bytes this request writes.
    fn bytes(&self) -> usize {
        match self {
            Request::Write {
                op: Op::Create { value, .. } | Op::Update { value, .. },
                ..
            } => value.len(),
            _ => 0,
        }
    }
}

/// A batch stops taking requests once its values reach this size.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// State shared between the writer and the store handle.
pub(crate) struct Shared {
    /// The latest committed revision, published after each commit.
    pub current: AtomicI64,
}

pub(crate) struct Writer {
    conn: Connection,
    opts: SqliteOptions,
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<Committed>>,
    revision: Revision,
    compactor: Compactor,
    checkpointer: Checkpointer,
    commits_since_nudge: u32,
}

/// A reply that waits for the commit.
enum Pending {
    Write(oneshot::Sender<Result<Written>>, Result<Written>),
    Compact(oneshot::Sender<Result<()>>, Revision),
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        opts: SqliteOptions,
        shared: Arc<Shared>,
        events: broadcast::Sender<Arc<Committed>>,
    ) -> Result<Writer> {
        let snap = schema::snapshot(&conn).map_err(map_err)?;
        shared.current.store(snap.current, Ordering::SeqCst);
        let compactor = Compactor::new(&opts, snap);
        let path = conn
            .path()
            .map(std::path::PathBuf::from)
            .unwrap_or_default();
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)
            .map_err(map_err)?;
        let checkpointer = Checkpointer::start(&path)?;
        Ok(Writer {
            conn,
            opts,
            shared,
            events,
            revision: snap.current,
            compactor,
            checkpointer,
            commits_since_nudge: 0,
        })
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let max_batch = self.opts.max_batch.max(1);
        loop {
            // With compaction work pending, only glance at the queue so the
            // work proceeds in small steps between write batches.
            let wait = if self.compactor.has_work() {
                Duration::ZERO
            } else {
                self.compactor
                    .next_tick()
                    .saturating_duration_since(Instant::now())
            };
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut bytes = first.bytes();
                    let mut batch = vec![first];
                    // Take what queued up meanwhile, within bounds on the
                    // transaction's size.
                    while batch.len() < max_batch && bytes < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(r) => {
                                bytes += r.bytes();
                                batch.push(r);
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_batch(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let Err(e) = self.compactor.maintain(&mut self.conn, self.revision) {
                tracing::warn!(error = %e, "sqlite store maintenance failed; will retry");
            }
        }
        // Leave a small file behind on a clean shutdown.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    fn commit_batch(&mut self, batch: Vec<Request>) {
        let start_revision = self.revision;
        let mut pending = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let outcome = self.apply(batch, &mut pending, &mut events);
        match outcome {
            Ok(()) => {
                self.shared.current.store(self.revision, Ordering::SeqCst);
                self.commits_since_nudge += 1;
                if self.commits_since_nudge >= checkpoint::NUDGE_EVERY {
                    self.checkpointer.nudge();
                    self.commits_since_nudge = 0;
                }
                if !events.is_empty() {
                    let committed = Committed {
                        first: start_revision + 1,
                        last: self.revision,
                        events,
                    };
                    // No receivers is fine: nobody is watching.
                    let _ = self.events.send(Arc::new(committed));
                }
                for p in pending {
                    match p {
                        Pending::Write(reply, result) => {
                            let _ = reply.send(result);
                        }
                        Pending::Compact(reply, revision) => {
                            let result =
                                self.compactor
                                    .set_target(&mut self.conn, revision, self.revision);
                            let _ = reply.send(result);
                        }
                    }
                }
            }
            Err(e) => {
                // Nothing of the batch was committed: every writer learns it.
                self.revision = start_revision;
                let msg = e.to_string();
                for p in pending {
                    let err = || match &e {
                        StoreError::Corrupt(_) => StoreError::Corrupt(msg.clone()),
                        _ => StoreError::Unavailable(format!("write not committed: {msg}")),
                    };
                    match p {
                        Pending::Write(reply, _) => {
                            let _ = reply.send(Err(err()));
                        }
                        Pending::Compact(reply, _) => {
                            let _ = reply.send(Err(err()));
                        }
                    }
                }
            }
        }
    }

    /// Applies a batch in one transaction. Per-request failures (conflicts)
    /// become that request's reply; an SQLite failure aborts the batch.
    fn apply(
        &mut self,
        batch: Vec<Request>,
        pending: &mut Vec<Pending>,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let mut revision = self.revision;
        let mut failure = None;
        for req in batch {
            match req {
                Request::Write { op, reply } => {
                    if failure.is_some() {
                        pending.push(Pending::Write(reply, Ok(Written::Put(empty_kv()))));
                        continue;
                    }
                    match apply_op(&tx, op, revision + 1) {
                        Ok(Ok((written, event))) => {
                            revision += 1;
                            events.push(event);
                            pending.push(Pending::Write(reply, Ok(written)));
                        }
                        Ok(Err(refused)) => pending.push(Pending::Write(reply, Err(refused))),
                        Err(e) => {
                            failure = Some(e);
                            pending.push(Pending::Write(reply, Ok(Written::Put(empty_kv()))));
                        }
                    }
                }
                Request::Compact {
                    revision: target,
                    reply,
                } => {
                    pending.push(Pending::Compact(reply, target));
                }
            }
        }
        if let Some(e) = failure {
            let _ = tx.rollback();
            return Err(e);
        }
        tx.commit().map_err(map_err)?;
        self.revision = revision;
        Ok(())
    }
}

fn empty_kv() -> KeyValue {
    KeyValue {
        key: String::new(),
        value: Bytes::new(),
        create_revision: 0,
        mod_revision: 0,
    }
}

/// Looks up the live row of `key`.
fn lookup(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT l.create_revision, l.revision, l.value
             FROM current c JOIN log l ON l.revision = c.revision
             WHERE c.key = ?1",
        )
        .map_err(map_err)?;
    stmt.query_row([key.as_bytes()], |r| {
        Ok(KeyValue {
            key: key.to_string(),
            create_revision: r.get(0)?,
            mod_revision: r.get(1)?,
            value: Bytes::from(r.get::<_, Vec<u8>>(2)?),
        })
    })
    .optional()
    .map_err(map_err)
}

fn append(
    conn: &Connection,
    revision: Revision,
    key: &str,
    value: &[u8],
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO log (revision, key, value, create_revision, prev_revision, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(map_err)?;
    stmt.execute(params![
        revision,
        key.as_bytes(),
        value,
        create_revision,
        prev_revision,
        deleted
    ])
    .map_err(map_err)?;
    if deleted {
        let mut stmt = conn
            .prepare_cached("DELETE FROM current WHERE key = ?1")
            .map_err(map_err)?;
        stmt.execute([key.as_bytes()]).map_err(map_err)?;
    } else {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO current (key, revision) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET revision = excluded.revision",
            )
            .map_err(map_err)?;
        stmt.execute(params![key.as_bytes(), revision])
            .map_err(map_err)?;
    }
    Ok(())
}

/// Applies one operation at `revision`. The outer error aborts the batch; the
/// inner one is this operation's refusal (conflict, not found, ...).
fn apply_op(conn: &Connection, op: Op, revision: Revision) -> Result<Result<(Written, Event)>> {
    match op {
        Op::Create { key, value } => {
            if lookup(conn, &key)?.is_some() {
                return Ok(Err(StoreError::AlreadyExists(key)));
            }
            append(conn, revision, &key, &value, revision, 0, false)?;
            let kv = KeyValue {
                key,
                value,
                create_revision: revision,
                mod_revision: revision,
            };
            let event = Event {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: None,
            };
            Ok(Ok((Written::Put(kv), event)))
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let Some(cur) = lookup(conn, &key)? else {
                return Ok(Err(StoreError::NotFound(key)));
            };
            if cur.mod_revision != expected {
                return Ok(Err(StoreError::Conflict {
                    key,
                    current: Some(Box::new(cur)),
                }));
            }
            append(
                conn,
                revision,
                &key,
                &value,
                cur.create_revision,
                cur.mod_revision,
                false,
            )?;
            let kv = KeyValue {
                key,
                value,
                create_revision: cur.create_revision,
                mod_revision: revision,
            };
            let event = Event {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: Some(cur),
            };
            Ok(Ok((Written::Put(kv), event)))
        }
        Op::Delete { key, expected } => {
            let Some(cur) = lookup(conn, &key)? else {
                return Ok(Err(StoreError::NotFound(key)));
            };
            if expected.is_some_and(|e| e != cur.mod_revision) {
                return Ok(Err(StoreError::Conflict {
                    key,
                    current: Some(Box::new(cur)),
                }));
            }
            // Tombstones keep create_revision 0, as etcd reports in delete events.
            append(conn, revision, &key, &[], 0, cur.mod_revision, true)?;
            let kv = KeyValue {
                key,
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: revision,
            };
            let event = Event {
                kind: EventKind::Delete,
                kv,
                prev: Some(cur.clone()),
            };
            Ok(Ok((Written::Deleted(cur, revision), event)))
        }
    }
}
