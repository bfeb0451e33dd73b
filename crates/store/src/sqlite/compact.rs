//! Compaction and file maintenance, run by the writer thread between batches.
//!
//! Compacting at revision C keeps, for every key, the newest row at or below
//! C (the state at C) and everything above C; it deletes rows superseded at or
//! below C and tombstones at or below C. Setting C is one tiny transaction;
//! the rows are then deleted a few revisions at a time so that writers never
//! wait for more than one small step. Reads check C inside their snapshot, so
//! they never see a half-deleted history.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};

use super::SqliteOptions;
use super::schema::{Snapshot, map_err};
use crate::{Result, Revision, StoreError};

/// Free pages worth reclaiming by incremental vacuum: at least this many and a
/// quarter of the file.
const VACUUM_MIN_FREE_PAGES: i64 = 256;
/// Pages reclaimed per maintenance tick, to keep each step short.
const VACUUM_STEP_PAGES: i64 = 2048;

pub(crate) struct Compactor {
    history_age: Duration,
    history_revisions: i64,
    auto: bool,
    interval: Duration,
    step: i64,
    /// The logical compaction point (reads below it fail).
    compact: Revision,
    /// How far rows have actually been deleted.
    through: Revision,
    /// (time, current revision) samples, to map the age window to a revision.
    samples: VecDeque<(Instant, Revision)>,
    next_tick: Instant,
    checkpointed_at: Revision,
    /// After a failure, work waits until then instead of spinning.
    paused_until: Instant,
}

impl Compactor {
    pub(crate) fn new(opts: &SqliteOptions, snap: Snapshot) -> Compactor {
        Compactor {
            history_age: opts.history_age,
            history_revisions: opts.history_revisions.max(0),
            auto: opts.auto_compaction,
            interval: opts.maintenance_interval.max(Duration::from_millis(10)),
            step: opts.compaction_step.max(1),
            compact: snap.compact,
            through: snap.compacted_through,
            samples: VecDeque::new(),
            next_tick: Instant::now() + opts.maintenance_interval,
            checkpointed_at: -1,
            paused_until: Instant::now(),
        }
    }

    pub(crate) fn has_work(&self) -> bool {
        self.through < self.compact && Instant::now() >= self.paused_until
    }

    pub(crate) fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// Moves the compaction point to `revision` (never backwards).
    pub(crate) fn set_target(
        &mut self,
        conn: &mut Connection,
        revision: Revision,
        current: Revision,
    ) -> Result<()> {
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= self.compact {
            return Ok(());
        }
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'compact_revision'",
            [revision],
        )
        .map_err(map_err)?;
        self.compact = revision;
        Ok(())
    }

    /// Does one step of pending work, and the periodic duties when due.
    pub(crate) fn maintain(&mut self, conn: &mut Connection, current: Revision) -> Result<()> {
        let result = self.maintain_inner(conn, current);
        if result.is_err() {
            self.paused_until = Instant::now() + self.interval;
        }
        result
    }

    fn maintain_inner(&mut self, conn: &mut Connection, current: Revision) -> Result<()> {
        if self.has_work() {
            self.delete_step(conn)?;
        }
        let now = Instant::now();
        if now >= self.next_tick {
            self.next_tick = now + self.interval;
            if self.auto {
                let target = self.auto_target(now, current);
                if target > self.compact {
                    self.set_target(conn, target, current)?;
                }
            }
            if !self.has_work() {
                self.tidy_file(conn, current)?;
            }
        }
        Ok(())
    }

    /// The newest revision outside both history windows.
    fn auto_target(&mut self, now: Instant, current: Revision) -> Revision {
        if self.samples.back().is_none_or(|&(_, r)| r != current) {
            self.samples.push_back((now, current));
        }
        let by_count = current - self.history_revisions;
        let by_age = match now.checked_sub(self.history_age) {
            Some(cutoff) => {
                // Drop samples older than the newest one at or before the
                // cutoff: they can never be the answer again.
                while self.samples.len() > 1 && self.samples[1].0 <= cutoff {
                    self.samples.pop_front();
                }
                match self.samples.front() {
                    Some(&(t, r)) if t <= cutoff => r,
                    _ => 0,
                }
            }
            None => 0,
        };
        by_count.min(by_age)
    }

    /// Deletes the rows made obsolete by the next few compacted revisions.
    fn delete_step(&mut self, conn: &mut Connection) -> Result<()> {
        let lo = self.through;
        let hi = (lo + self.step).min(self.compact);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        // Rows superseded by a revision in (lo, hi]; tombstones there go too.
        // The superseded rows must go first: tombstones point at theirs.
        tx.execute(
            "DELETE FROM log WHERE revision IN (
                SELECT prev_revision FROM log
                WHERE revision > ?1 AND revision <= ?2 AND prev_revision > 0)",
            params![lo, hi],
        )
        .map_err(map_err)?;
        tx.execute(
            "DELETE FROM log WHERE revision > ?1 AND revision <= ?2 AND deleted = 1",
            params![lo, hi],
        )
        .map_err(map_err)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'compacted_through'",
            [hi],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        self.through = hi;
        Ok(())
    }

    /// Returns free pages to the file system and truncates the WAL, so that
    /// churn does not grow the files without bound.
    fn tidy_file(&mut self, conn: &mut Connection, current: Revision) -> Result<()> {
        let free: i64 = conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))
            .map_err(map_err)?;
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .map_err(map_err)?;
        let vacuumed = free >= VACUUM_MIN_FREE_PAGES && free * 4 >= pages;
        if vacuumed {
            let n = free.min(VACUUM_STEP_PAGES);
            conn.execute_batch(&format!("PRAGMA incremental_vacuum({n})"))
                .map_err(map_err)?;
        }
        if vacuumed || self.checkpointed_at != current {
            // A TRUNCATE checkpoint waits for readers; do not let it hold up
            // writers for long; if readers are busy it is retried next tick.
            conn.busy_timeout(Duration::from_millis(20))
                .map_err(map_err)?;
            let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
            conn.busy_timeout(Duration::from_secs(5)).map_err(map_err)?;
            if busy.map_err(map_err)? == 0 {
                self.checkpointed_at = current;
            }
        }
        Ok(())
    }
}
