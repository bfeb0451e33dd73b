//! File helpers of the store: unique temporary names under the store's
//! `tmp/`, atomic writes (temp file, fsync, rename) and removal of whatever
//! sits at a path.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ImageError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh name under `tmp`, unique within this process and among processes.
pub fn temp_path(tmp: &Path, prefix: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp.join(format!("{prefix}-{}-{n}", std::process::id()))
}

/// Writes `bytes` to `path` so readers see the old or the new content, never
/// a part: a temp file in `tmp` (same filesystem), fsync, rename, fsync of
/// the directory.
pub fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let temp = temp_path(tmp, "write");
    let result = (|| {
        let mut f = fs::File::create(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&temp, path)?;
        // The rename itself is durable once the directory is synced.
        match path.parent() {
            Some(dir) => fs::File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(ImageError::io("writing", path))
}

/// Removes a file, symlink or directory tree at `path`; absent is fine.
pub fn remove_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Renames `from` to `to` unless `to` already exists (another import won the
/// race: the content is the same, being content-addressed); `from` is
/// removed in that case.
pub fn rename_unless_exists(from: &Path, to: &Path) -> Result<(), ImageError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e)
            if to.exists()
                && matches!(
                    e.raw_os_error(),
                    Some(nix::libc::EEXIST | nix::libc::ENOTEMPTY)
                ) =>
        {
            remove_path(from).map_err(ImageError::io("removing", from))
        }
        Err(e) => {
            let _ = remove_path(from);
            Err(ImageError::io("renaming into place", to)(e))
        }
    }
}
