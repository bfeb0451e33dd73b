//! Unpacks a layer tar into a directory usable as an overlayfs lowerdir.
//!
//! OCI whiteouts become overlay ones: `.wh.NAME` is a 0/0 character device
//! `NAME`, and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its
//! directory. Entries that would land outside the layer (`..`, absolute
//! paths, paths through symlinks) are refused. Modes, ownership (when root),
//! symlinks, hardlinks, device nodes, fifos and xattrs (but never `trusted.*`
//! ones from the archive, which could steer overlayfs) are kept.
//!
//! A layer is unpacked into a temporary directory and renamed into place once
//! its diff_id is verified, so a crash or a concurrent unpack never leaves a
//! half-made layer.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use tar::EntryType;

use super::digest::{Digest, HashingReader};
use super::error::{ImageError, NEEDS_ROOT};
use super::fsutil::{remove_path, rename_unless_exists, temp_path};
use super::manifest::Compression;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Unpacks the layer blob at `blob` into `dest` (`layers/sha256/<diff_id>`)
/// unless it is there already, verifying that the uncompressed tar hashes to
/// `diff_id`. `tmp` is a directory on the same filesystem as `dest`.
pub fn unpack_layer_blob(
    blob: &Path,
    compression: Compression,
    diff_id: &Digest,
    dest: &Path,
    tmp: &Path,
) -> Result<(), ImageError> {
    if dest.is_dir() {
        return Ok(());
    }
    let file = File::open(blob).map_err(ImageError::io("opening layer blob", blob))?;
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
    };
    let work = temp_path(tmp, "layer");
    fs::create_dir(&work).map_err(ImageError::io("creating", &work))?;
    let result = (|| {
        let mut hashing = HashingReader::new(reader);
        unpack(&mut hashing, &work, diff_id.as_str())?;
        let (actual, _) = hashing.finish().map_err(|source| ImageError::Unpack {
            layer: diff_id.to_string(),
            entry: String::new(),
            source,
        })?;
        diff_id.verify(
            &actual,
            &format!("the uncompressed layer {}", blob.display()),
        )
    })();
    match result {
        Ok(()) => rename_unless_exists(&work, dest),
        Err(e) => {
            let _ = remove_path(&work);
            Err(e)
        }
    }
}

/// Unpacks the tar stream `reader` into the existing directory `dst`.
/// `layer` names the layer in errors.
pub fn unpack(reader: impl Read, dst: &Path, layer: &str) -> Result<(), ImageError> {
    let root = nix::unistd::geteuid().is_root();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(root);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // xattrs are applied below, filtered.
    archive.set_unpack_xattrs(false);
    let err = |entry: &str, source: io::Error| ImageError::Unpack {
        layer: layer.to_string(),
        entry: entry.to_string(),
        source,
    };
    let entries = archive.entries().map_err(|e| err("", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| err("", e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        unpack_entry(&mut entry, dst, root).map_err(|e| err(&raw, e))?;
    }
    Ok(())
}

fn unpack_entry<R: Read>(entry: &mut tar::Entry<R>, dst: &Path, root: bool) -> io::Result<()> {
    let rel = relative_path(&entry.path()?)?;
    let kind = entry.header().entry_type();
    let Some(name) = rel.file_name() else {
        // The layer's own root ("./"): only its mode and owner matter.
        if kind.is_dir() {
            apply_mode_owner(entry.header(), dst, root)?;
        }
        return Ok(());
    };
    let name = name.to_owned();
    let name_bytes = name.as_bytes();
    if name_bytes.starts_with(WHITEOUT_PREFIX.as_bytes()) {
        let parent = ensure_dir_inside(dst, rel.parent().unwrap_or(Path::new("")))?;
        if name_bytes == OPAQUE.as_bytes() {
            return xattr::set(&parent, OVERLAY_OPAQUE_XATTR, b"y").map_err(needs_root);
        }
        if name_bytes.starts_with(b".wh..wh.") {
            // aufs metadata (.wh..wh.plnk and the like): nothing to do.
            return Ok(());
        }
        let hidden = OsStr::from_bytes(&name_bytes[WHITEOUT_PREFIX.len()..]);
        let target = parent.join(hidden);
        remove_path(&target)?;
        return mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| needs_root(io::Error::from(e)));
    }
    if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
        let parent = ensure_dir_inside(dst, rel.parent().unwrap_or(Path::new("")))?;
        let target = parent.join(&name);
        remove_path(&target)?;
        let flag = match kind {
            EntryType::Char => SFlag::S_IFCHR,
            EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        let header = entry.header();
        let major = u64::from(header.device_major()?.unwrap_or(0));
        let minor = u64::from(header.device_minor()?.unwrap_or(0));
        mknod(&target, flag, Mode::empty(), makedev(major, minor))
            .map_err(|e| needs_root(io::Error::from(e)))?;
        apply_mode_owner(entry.header(), &target, root)?;
        return apply_xattrs(entry, &target);
    }
    if !entry.unpack_in(dst)? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the entry's path leaves the layer directory; refusing it",
        ));
    }
    if kind.is_file() || kind.is_dir() {
        apply_xattrs(entry, &dst.join(&rel))?;
    }
    Ok(())
}

/// The entry's path relative to the layer root: leading `/` and `.` dropped,
/// `..` refused.
fn relative_path(path: &Path) -> io::Result<PathBuf> {
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the entry's path has a '..' component; refusing it",
                ));
            }
        }
    }
    Ok(rel)
}

/// Creates `rel` under `dst` one component at a time, refusing to go through
/// a symlink or a non-directory, so nothing is made outside `dst`.
fn ensure_dir_inside(dst: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut dir = dst.to_path_buf();
    for c in rel.components() {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is a symlink or not a directory; refusing to unpack through it",
                        dir.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)?,
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

fn apply_mode_owner(header: &tar::Header, path: &Path, root: bool) -> io::Result<()> {
    if root {
        let uid = u32::try_from(header.uid()?).map_err(|_| invalid("uid out of range"))?;
        let gid = u32::try_from(header.gid()?).map_err(|_| invalid("gid out of range"))?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    let mode = header.mode()? & 0o7777;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Applies the entry's PAX `SCHILY.xattr.*` records, except `trusted.*`.
fn apply_xattrs<R: Read>(entry: &mut tar::Entry<R>, path: &Path) -> io::Result<()> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(());
    };
    for ext in extensions {
        let ext = ext?;
        let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
            continue;
        };
        if name.starts_with(b"trusted.") {
            continue;
        }
        xattr::set(path, OsStr::from_bytes(name), ext.value_bytes())?;
    }
    Ok(())
}

fn needs_root(e: io::Error) -> io::Error {
    if matches!(e.raw_os_error(), Some(nix::libc::EPERM | nix::libc::EACCES)) {
        io::Error::new(e.kind(), format!("{e}; {NEEDS_ROOT}"))
    } else {
        e
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}
