//! Container root filesystems: one overlayfs per container, its lower layers
//! shared with every container of the same image.

use std::io;
use std::path::{Path, PathBuf};

/// An overlay mount to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Image layers, lowest first (as the image store returns them).
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
}

impl Overlay {
    /// overlayfs' mount data. `lowerdir` lists the top layer first.
    pub fn options(&self) -> String {
        let lower: Vec<String> = self
            .lower
            .iter()
            .rev()
            .map(|p| escape(&p.to_string_lossy()))
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            escape(&self.upper.to_string_lossy()),
            escape(&self.work.to_string_lossy()),
        )
    }
}

/// overlayfs splits its options on `,` and lowerdir on `:`; both are escaped
/// with a backslash.
fn escape(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Mounts and unmounts root filesystems.
pub trait Mounter: Send + Sync + 'static {
    fn mount_overlay(&self, overlay: &Overlay) -> io::Result<()>;
    /// Unmounts `target` if something is mounted there; not mounted is fine.
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Mounts a tmpfs on `target` (created if missing) unless one is there
    /// already; `size` in bytes, `None` for the kernel's default.
    fn mount_tmpfs(&self, target: &Path, size: Option<u64>) -> io::Result<()>;
    /// Mount points at or under `dir`, deepest first.
    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf>;
}

/// Mount points in /proc/self/mountinfo at or under `dir`, deepest first.
fn mountinfo_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes spaces and the like as octal (`\040`).
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// The real thing, with `mount(2)`.
#[derive(Debug, Default)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn mount_overlay(&self, overlay: &Overlay) -> io::Result<()> {
        for dir in [&overlay.upper, &overlay.work, &overlay.target] {
            std::fs::create_dir_all(dir)?;
        }
        nix::mount::mount(
            Some("overlay"),
            overlay.target.as_path(),
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(overlay.options().as_str()),
        )
        .map_err(|e| io::Error::other(format!("mount overlay {}: {e}", overlay.options())))
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn mount_tmpfs(&self, target: &Path, size: Option<u64>) -> io::Result<()> {
        std::fs::create_dir_all(target)?;
        if mountinfo_under(target).iter().any(|m| m == target) {
            return Ok(());
        }
        let data = size.map(|s| format!("size={s}"));
        nix::mount::mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            data.as_deref(),
        )
        .map_err(|e| io::Error::other(format!("mount tmpfs on {}: {e}", target.display())))
    }

    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf> {
        mountinfo_under(dir)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub struct FakeMounter {
        pub mounted: Mutex<Vec<PathBuf>>,
    }

    impl Mounter for FakeMounter {
        fn mount_overlay(&self, o: &Overlay) -> io::Result<()> {
            std::fs::create_dir_all(&o.target)?;
            self.mounted.lock().unwrap().push(o.target.clone());
            Ok(())
        }
        fn unmount(&self, target: &Path) -> io::Result<()> {
            self.mounted.lock().unwrap().retain(|t| t != target);
            Ok(())
        }
        fn mount_tmpfs(&self, target: &Path, _size: Option<u64>) -> io::Result<()> {
            std::fs::create_dir_all(target)?;
            let mut m = self.mounted.lock().unwrap();
            if !m.iter().any(|t| t == target) {
                m.push(target.to_owned());
            }
            Ok(())
        }
        fn mounts_under(&self, dir: &Path) -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = self
                .mounted
                .lock()
                .unwrap()
                .iter()
                .filter(|t| t.starts_with(dir))
                .cloned()
                .collect();
            v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_lists_the_top_layer_first_and_escapes_separators() {
        let o = Overlay {
            lower: vec!["/l/base".into(), "/l/a:b".into()],
            upper: "/c/up".into(),
            work: "/c/work,x".into(),
            target: "/c/rootfs".into(),
        };
        assert_eq!(
            o.options(),
            "lowerdir=/l/a\\:b:/l/base,upperdir=/c/up,workdir=/c/work\\,x"
        );
    }
}
