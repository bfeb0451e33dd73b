//! Reads: a small pool of read-only connections used from blocking tasks, so
//! reads run in parallel with each other and with the writer (WAL snapshots).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use tokio::sync::Semaphore;

use super::schema::{self, Snapshot, key_string, map_err, open_reader};
use crate::{KeyValue, ListOptions, ListResult, Result, Revision, StoreError};

pub(crate) struct ReadPool {
    path: PathBuf,
    conns: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, size: usize) -> Result<ReadPool> {
        let size = size.max(1);
        // Open one now so that a broken setup fails at open time.
        let first = open_reader(&path)?;
        Ok(ReadPool {
            path,
            conns: Mutex::new(vec![first]),
            permits: Semaphore::new(size),
        })
    }

    /// Runs `f` with a connection on the blocking thread pool.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("sqlite store is closed".into()))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let taken = pool.conns.lock().unwrap_or_else(|p| p.into_inner()).pop();
            // Connections are opened lazily up to the pool size (the permit
            // bounds how many exist).
            let mut conn = match taken {
                Some(c) => c,
                None => open_reader(&pool.path)?,
            };
            let result = f(&mut conn);
            pool.conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("sqlite read task failed: {e}")))?
    }
}

/// Checks that `revision` can be read in `snap`.
pub(crate) fn check_revision(snap: &Snapshot, revision: Revision) -> Result<()> {
    if revision < snap.compact {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted: snap.compact,
        });
    }
    if revision > snap.current {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current: snap.current,
        });
    }
    Ok(())
}

fn kv_from_row(key: String, r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key,
        create_revision: r.get(first)?,
        mod_revision: r.get(first + 1)?,
        value: Bytes::from(r.get::<_, Vec<u8>>(first + 2)?),
    })
}

/// Reads one key. A revision of zero or less means the latest.
pub(crate) fn get(
    conn: &mut Connection,
    key: &str,
    revision: Option<Revision>,
) -> Result<Option<KeyValue>> {
    let Some(revision) = revision.filter(|r| *r > 0) else {
        let mut stmt = conn
            .prepare_cached(
                "SELECT l.create_revision, l.revision, l.value
                 FROM current c JOIN log l ON l.revision = c.revision
                 WHERE c.key = ?1",
            )
            .map_err(map_err)?;
        return stmt
            .query_row([key.as_bytes()], |r| kv_from_row(key.to_string(), r, 0))
            .optional()
            .map_err(map_err);
    };
    let tx = conn.transaction().map_err(map_err)?;
    check_revision(&schema::snapshot(&tx).map_err(map_err)?, revision)?;
    let row = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT create_revision, revision, value, deleted FROM log
                 WHERE key = ?1 AND revision <= ?2
                 ORDER BY revision DESC LIMIT 1",
            )
            .map_err(map_err)?;
        stmt.query_row(rusqlite::params![key.as_bytes(), revision], |r| {
            Ok((kv_from_row(key.to_string(), r, 0)?, r.get::<_, bool>(3)?))
        })
        .optional()
        .map_err(map_err)?
    };
    Ok(row.and_then(|(kv, deleted)| (!deleted).then_some(kv)))
}

/// Lists keys under `prefix`. The latest state is read through `current`;
/// an older one from the log (newest row per key at or below the revision).
pub(crate) fn list(conn: &mut Connection, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
    let tx = conn.transaction().map_err(map_err)?;
    let snap = schema::snapshot(&tx).map_err(map_err)?;
    let at = opts.revision.filter(|r| *r > 0);
    if let Some(r) = at {
        check_revision(&snap, r)?;
    }
    let (start, end) = schema::prefix_range(prefix);
    // Continue after `start_after` when it lies inside the range.
    let (lower, op) = match &opts.start_after {
        Some(after) if after.as_bytes() >= start.as_slice() => (after.as_bytes().to_vec(), ">"),
        _ => (start, ">="),
    };
    let limit = opts.limit.filter(|l| *l > 0);
    let fetch = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX - 1) + 1);
    let upper = if end.is_some() {
        "AND key < ?2"
    } else {
        "AND ?2 IS NULL"
    };
    let mut params = vec![
        Value::Blob(lower),
        end.map_or(Value::Null, Value::Blob),
        Value::Integer(fetch),
    ];
    let mut items = Vec::new();
    match at {
        None => {
            let sql = format!(
                "SELECT c.key, l.create_revision, l.revision, l.value
                 FROM current c JOIN log l ON l.revision = c.revision
                 WHERE c.key {op} ?1 {} ORDER BY c.key LIMIT ?3",
                upper.replace("key", "c.key")
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(map_err)?;
            while let Some(r) = rows.next().map_err(map_err)? {
                let key = key_string(r.get(0).map_err(map_err)?)?;
                items.push(kv_from_row(key, r, 1).map_err(map_err)?);
            }
        }
        Some(r) => {
            // Walk the (key, revision) index in key order, newest revision per key
            // at or below `r`, and stop once enough live keys were found: a page of
            // a long list must not read (or sort) everything after it.
            params[2] = Value::Integer(r);
            let sql = format!(
                "SELECT key, max(revision) FROM log
                 WHERE key {op} ?1 {upper} AND revision <= ?3 GROUP BY key ORDER BY key"
            );
            let mut keys = tx.prepare_cached(&sql).map_err(map_err)?;
            let mut row = tx
                .prepare_cached(
                    "SELECT deleted, create_revision, revision, value FROM log WHERE revision = ?1",
                )
                .map_err(map_err)?;
            let mut rows = keys
                .query(rusqlite::params_from_iter(params))
                .map_err(map_err)?;
            while let Some(k) = rows.next().map_err(map_err)? {
                if fetch >= 0 && items.len() as i64 >= fetch {
                    break;
                }
                let key = key_string(k.get(0).map_err(map_err)?)?;
                let rev: i64 = k.get(1).map_err(map_err)?;
                let mut found = row.query([rev]).map_err(map_err)?;
                if let Some(l) = found.next().map_err(map_err)? {
                    let deleted: i64 = l.get(0).map_err(map_err)?;
                    if deleted == 0 {
                        items.push(kv_from_row(key, l, 1).map_err(map_err)?);
                    }
                }
            }
        }
    }
    let more = limit.is_some_and(|l| items.len() > l);
    if let Some(l) = limit {
        items.truncate(l);
    }
    Ok(ListResult {
        items,
        revision: at.unwrap_or(snap.current),
        more,
    })
}
