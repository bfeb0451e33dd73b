//! The database file: checking that it is ours, creating the schema, opening
//! connections with the right settings, and mapping SQLite errors.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::{Result, StoreError};

/// Written to the database header (`PRAGMA application_id`) so that a file of
/// another program is never mistaken for ours: ASCII "Flot".
pub(crate) const APPLICATION_ID: i32 = 0x466c_6f74;

/// Version of the tables below, kept in `meta`.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The schema. `log` is append-only: one row per revision. `current` points at
/// the latest row of every live key, so reads at the latest revision never scan
/// history. `meta` holds the schema version and the compaction state.
const SCHEMA: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES
    ('schema_version', 1),
    ('compact_revision', 0),
    ('compacted_through', 0);
CREATE TABLE log (
    revision        INTEGER PRIMARY KEY,
    key             BLOB    NOT NULL,
    value           BLOB    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    deleted         INTEGER NOT NULL
);
CREATE INDEX log_key_revision ON log (key, revision);
CREATE TABLE current (
    key      BLOB    PRIMARY KEY,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Maps an SQLite error to a store error, keeping corruption distinguishable.
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                return StoreError::Corrupt(format!("sqlite: {e}"));
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied => {
                return StoreError::Unavailable(format!("sqlite: {e}"));
            }
            _ => {}
        }
    }
    StoreError::Internal(format!("sqlite: {e}"))
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

/// Opens (creating if missing) the database file and takes an exclusive lock
/// on it, so that two processes never write the same store: each keeps its
/// current revision in memory. The returned file must stay open as long as the
/// store is, and be closed only after every SQLite connection (closing any
/// descriptor of a file drops the process's POSIX locks SQLite relies on).
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "cannot create directory", e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io_err(path, "cannot open", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(StoreError::Unavailable(format!(
                "{} is in use by another process",
                path.display()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(io_err(path, "cannot lock", e)),
    }
    let len = file
        .metadata()
        .map_err(|e| io_err(path, "cannot stat", e))?
        .len();
    if len == 0 {
        sync_parent_dirs(path);
    }
    // An empty file is a store that has never been written. Anything else
    // must carry our application id in its header, which the first open writes
    // before anything else (see `open_writer`). Deciding from the raw bytes
    // means a foreign file is never opened by SQLite, which could create
    // `-wal`/`-shm` files next to it or replay its journal.
    if len > 0 {
        let mut head = [0u8; 100];
        let complete = len >= 100 && file.read_exact(&mut head).is_ok();
        let refuse = |why: String| {
            StoreError::Corrupt(format!(
                "{} is not a Flotilla state database ({why}); refusing to use or overwrite it",
                path.display()
            ))
        };
        if !complete || &head[..16] != SQLITE_MAGIC {
            return Err(refuse("not an SQLite file".into()));
        }
        let app_id = i32::from_be_bytes([head[68], head[69], head[70], head[71]]);
        if app_id != APPLICATION_ID {
            return Err(refuse(format!(
                "an SQLite database with application_id {app_id:#010x}, not Flotilla's"
            )));
        }
    }
    Ok(file)
}

/// Makes a newly created file's directory entry (and its directory's)
/// durable: SQLite syncs the file's contents, not the directory naming it, so
/// a power loss could otherwise lose a new store wholesale. Best effort.
fn sync_parent_dirs(path: &Path) {
    let mut dir = path.parent();
    for _ in 0..2 {
        let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) else {
            break;
        };
        if let Ok(f) = File::open(d) {
            let _ = f.sync_all();
        }
        dir = d.parent();
    }
}

/// What [`inspect`] found in the file.
pub(crate) enum Found {
    /// A database holding nothing at all: ours to initialise.
    Empty,
    /// A database with our schema.
    Ours,
}

/// Checks the schema of a file whose header is ours, through a read-only
/// connection.
pub(crate) fn inspect(path: &Path) -> Result<Found> {
    let corrupt = |why: String| {
        StoreError::Corrupt(format!(
            "{} is not a Flotilla state database ({why}); refusing to use or overwrite it",
            path.display()
        ))
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    let check = || -> rusqlite::Result<Result<Found>> {
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        // No tables yet: a store whose first open stopped before creating
        // them. (The header was checked by `lock_file`.)
        if objects == 0 {
            return Ok(Ok(Found::Empty));
        }
        let has_meta: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )?;
        if has_meta == 0 {
            return Ok(Err(corrupt("its tables are not Flotilla's".into())));
        }
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match version {
            Some(SCHEMA_VERSION) => Ok(Found::Ours),
            Some(v) => Err(StoreError::Corrupt(format!(
                "{} has schema version {v}, this build understands only {SCHEMA_VERSION}",
                path.display()
            ))),
            None => Err(corrupt("the schema version is missing".into())),
        })
    };
    match check() {
        Ok(found) => found,
        Err(e) => match map_err(e) {
            StoreError::Corrupt(m) => Err(corrupt(m)),
            other => Err(other),
        },
    }
}

/// Opens the writer's connection and creates the schema if the file is empty.
pub(crate) fn open_writer(path: &Path, found: Found) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    // Incremental vacuum must be chosen before the first table exists; it lets
    // the file shrink after compaction without a full VACUUM.
    if let Found::Empty = found {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(map_err)?;
        // Written first, in rollback-journal mode, straight into the file's
        // header: from now on `lock_file` recognises the file as ours.
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(map_err)?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "sqlite refused WAL mode (got {mode})"
        )));
    }
    // FULL: every commit fsyncs the WAL, so an acknowledged write survives
    // power loss, not just a crash of this process.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(map_err)?;
    // Cap the WAL file left behind after a checkpoint resets it.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(map_err)?;
    tune(&conn)?;
    if let Found::Empty = found {
        let init = format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;");
        conn.execute_batch(&init).map_err(map_err)?;
    }
    Ok(conn)
}

/// Opens a reader connection. Readers never write; WAL lets them read a
/// consistent snapshot while the writer commits.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    tune(&conn)?;
    Ok(conn)
}

/// Settings every connection gets.
fn tune(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(5)).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(32);
    // Without the query planner stability guarantee, SQLite (built with
    // STAT4) re-plans cached statements whenever a bound key changes, which
    // re-parses them on every call.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(map_err)?;
    Ok(())
}

/// The compaction state and the current revision, as seen by one snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub compact: i64,
    pub compacted_through: i64,
    pub current: i64,
}

/// Reads [`Snapshot`]. The current revision is the newest log row, or the
/// compaction point if compaction removed that row (a trailing tombstone).
pub(crate) fn snapshot(conn: &Connection) -> rusqlite::Result<Snapshot> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT value FROM meta WHERE name = 'compact_revision'),
                (SELECT value FROM meta WHERE name = 'compacted_through'),
                (SELECT coalesce(max(revision), 0) FROM log)",
    )?;
    stmt.query_row([], |r| {
        let compact: i64 = r.get(0)?;
        let log_max: i64 = r.get(2)?;
        Ok(Snapshot {
            compact,
            compacted_through: r.get(1)?,
            current: log_max.max(compact),
        })
    })
}

/// The half-open byte range `[start, end)` of keys beginning with `prefix`;
/// `end` is `None` when the range is unbounded above.
pub(crate) fn prefix_range(prefix: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (
        prefix.as_bytes().to_vec(),
        crate::prefix_end(prefix.as_bytes()),
    )
}

/// Turns a stored key back into a string.
pub(crate) fn key_string(raw: Vec<u8>) -> Result<String> {
    String::from_utf8(raw).map_err(|_| StoreError::Corrupt("a stored key is not UTF-8".into()))
}
