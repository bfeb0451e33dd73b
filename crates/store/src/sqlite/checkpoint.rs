//! Background checkpoints. Copying the WAL back into the database file and
//! syncing that file takes as long as a commit or more; done by SQLite's
//! automatic checkpoint it would sit inside a writer's commit. A thread with
//! its own connection does it instead (PASSIVE: it never blocks the writer),
//! nudged by the writer as the WAL grows. The writer keeps SQLite's automatic
//! checkpoint at a higher threshold as a backstop: under continuous load the
//! WAL can only restart from its beginning after a checkpoint with no commit
//! in between, which only the writer itself can guarantee, and by then there
//! is little left to copy.

use std::path::Path;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use super::schema::map_err;
use crate::{Result, StoreError};

/// Commits between nudges (each commit adds a few pages to the WAL).
pub(crate) const NUDGE_EVERY: u32 = 64;
/// The writer's own automatic checkpoint, in pages.
pub(crate) const BACKSTOP_PAGES: i64 = 4000;

pub(crate) struct Checkpointer {
    nudges: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path) -> Result<Checkpointer> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(1))
            .map_err(map_err)?;
        // Its own commits would never happen; keep it from checkpointing twice.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(map_err)?;
        let (nudges, rx) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Ends when the writer drops its sender.
                while rx.recv().is_ok() {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "sqlite background checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer {
            nudges: Some(nudges),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint; a request already pending covers this one.
    pub(crate) fn nudge(&self) {
        if let Some(n) = &self.nudges {
            let _ = n.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudges.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
