//! Watches. A watch subscribes to the writer's in-memory feed of committed
//! batches *before* reading the log, replays the log up to the revision of its
//! snapshot, then follows the feed, dropping what the replay already covered.
//! Every batch committed after the snapshot was sent after the subscription,
//! so the hand-off has no gap; the revision cursor removes duplicates.
//!
//! The feed is a bounded broadcast channel, so writers never wait for
//! watchers. A watcher that falls behind it re-subscribes and reads the missed
//! revisions back from the log; if compaction removed them in the meantime,
//! the watch ends with [`StoreError::Compacted`]. Nothing is skipped silently.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;

use super::Committed;
use super::read::ReadPool;
use super::schema::{self, key_string, map_err};
use crate::{Event, EventKind, KeyValue, Result, Revision, StoreError, WatchItem, WatchStream};

/// Log rows read per replay query.
const PAGE: usize = 512;
/// Items buffered between the watch task and the consumer.
const OUT_BUFFER: usize = 256;

/// Events read back from the log, with the snapshot's current revision.
struct Page {
    events: Vec<Event>,
    current: Revision,
}

pub(crate) async fn start(
    pool: Arc<ReadPool>,
    feed: &broadcast::Sender<Arc<Committed>>,
    prefix: &str,
    after: Revision,
    progress: Duration,
) -> Result<WatchStream> {
    // Subscribe first: see the module comment.
    let rx = feed.subscribe();
    let after = after.max(0);
    // Read the first page here so that a compacted or future revision is
    // reported by `watch` itself.
    let first = read_page(&pool, prefix, after, true).await?;
    let (tx, out) = mpsc::channel(OUT_BUFFER);
    let task = Task {
        pool,
        rx,
        prefix: prefix.to_string(),
        cursor: after,
        tx,
        progress,
    };
    tokio::spawn(task.run(first));
    Ok(Box::pin(ReceiverStream::new(out)))
}

struct Task {
    pool: Arc<ReadPool>,
    rx: broadcast::Receiver<Arc<Committed>>,
    prefix: String,
    /// Every change up to here has been delivered (or did not match).
    cursor: Revision,
    tx: mpsc::Sender<Result<WatchItem>>,
    progress: Duration,
}

/// Why the task stops.
enum Stop {
    /// The consumer dropped the stream.
    Gone,
    /// The watch cannot continue; the error goes to the consumer.
    Failed(StoreError),
}

impl Task {
    async fn run(mut self, first: Page) {
        if let Err(Stop::Failed(e)) = self.serve(first).await {
            let _ = self.tx.send(Err(e)).await;
        }
    }

    async fn serve(&mut self, first: Page) -> Result<(), Stop> {
        let mut page = Some(first);
        let start = Instant::now() + self.progress;
        let mut ticker =
            tokio::time::interval_at(start, self.progress.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut active = false;
        loop {
            // Replay the log up to the revision of its snapshot.
            loop {
                let p = match page.take() {
                    Some(p) => p,
                    None => read_page(&self.pool, &self.prefix, self.cursor, false)
                        .await
                        .map_err(Stop::Failed)?,
                };
                let full = p.events.len() >= PAGE;
                for ev in p.events {
                    self.cursor = ev.revision();
                    self.send(WatchItem::Event(ev)).await?;
                    active = true;
                }
                if !full {
                    self.cursor = self.cursor.max(p.current);
                    break;
                }
            }
            // Follow the live feed until it is lost.
            loop {
                tokio::select! {
                    _ = self.tx.closed() => return Err(Stop::Gone),
                    _ = ticker.tick() => {
                        if !active {
                            self.send(WatchItem::Progress(self.cursor)).await?;
                        }
                        active = false;
                    }
                    msg = self.rx.recv() => match msg {
                        Ok(batch) => {
                            if batch.last <= self.cursor {
                                continue;
                            }
                            if batch.first > self.cursor + 1 {
                                // A batch went missing: re-read from the log.
                                self.rx = self.rx.resubscribe();
                                break;
                            }
                            for ev in &batch.events {
                                if ev.revision() > self.cursor && ev.kv.key.starts_with(&self.prefix) {
                                    self.send(WatchItem::Event(ev.clone())).await?;
                                    active = true;
                                }
                            }
                            self.cursor = batch.last;
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Fell behind the bounded feed: catch up from the log.
                            self.rx = self.rx.resubscribe();
                            break;
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(Stop::Failed(StoreError::Unavailable(
                                "sqlite store closed".into(),
                            )));
                        }
                    }
                }
            }
        }
    }

    async fn send(&self, item: WatchItem) -> Result<(), Stop> {
        self.tx.send(Ok(item)).await.map_err(|_| Stop::Gone)
    }
}

/// Reads up to [`PAGE`] events under `prefix` after `after`. `initial` marks
/// the watch's own start, where a revision ahead of the store is refused too.
async fn read_page(
    pool: &Arc<ReadPool>,
    prefix: &str,
    after: Revision,
    initial: bool,
) -> Result<Page> {
    let prefix = prefix.to_string();
    pool.run(move |conn| page(conn, &prefix, after, initial))
        .await
}

fn page(conn: &mut Connection, prefix: &str, after: Revision, initial: bool) -> Result<Page> {
    let tx = conn.transaction().map_err(map_err)?;
    let snap = schema::snapshot(&tx).map_err(map_err)?;
    if after < snap.compact {
        return Err(StoreError::Compacted {
            requested: after,
            compacted: snap.compact,
        });
    }
    if initial && after > snap.current {
        return Err(StoreError::FutureRevision {
            requested: after,
            current: snap.current,
        });
    }
    let (start, end) = schema::prefix_range(prefix);
    // The unary `+` keeps SQLite on the revision (primary key) range: a replay
    // usually starts near the head of the log, so that range is short.
    let upper = if end.is_some() {
        "AND +l.key < ?3"
    } else {
        "AND ?3 IS NULL"
    };
    let sql = format!(
        "SELECT l.revision, l.key, l.value, l.create_revision, l.deleted,
                p.revision, p.value, p.create_revision
         FROM log l LEFT JOIN log p ON p.revision = l.prev_revision AND l.prev_revision > 0
         WHERE l.revision > ?1 AND +l.key >= ?2 {upper}
         ORDER BY l.revision LIMIT {PAGE}"
    );
    let mut events = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
        let end = end.map_or(rusqlite::types::Value::Null, rusqlite::types::Value::Blob);
        let mut rows = stmt
            .query(rusqlite::params![after, start, end])
            .map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            events.push(event_from_row(r)?);
        }
    }
    Ok(Page {
        events,
        current: snap.current,
    })
}

fn event_from_row(r: &rusqlite::Row<'_>) -> Result<Event> {
    let get = |e| map_err(e);
    let revision: Revision = r.get(0).map_err(get)?;
    let key = key_string(r.get(1).map_err(get)?)?;
    let deleted: bool = r.get(4).map_err(get)?;
    let prev = match r.get::<_, Option<Revision>>(5).map_err(get)? {
        Some(prev_revision) => Some(KeyValue {
            key: key.clone(),
            value: Bytes::from(r.get::<_, Vec<u8>>(6).map_err(get)?),
            create_revision: r.get(7).map_err(get)?,
            mod_revision: prev_revision,
        }),
        None => None,
    };
    let kv = KeyValue {
        key,
        value: Bytes::from(r.get::<_, Vec<u8>>(2).map_err(get)?),
        create_revision: r.get(3).map_err(get)?,
        mod_revision: revision,
    };
    let kind = if deleted {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    Ok(Event { kind, kv, prev })
}
