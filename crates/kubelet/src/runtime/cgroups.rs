//! The pod-level cgroups the OCI runtime leaves behind: `runc delete` removes
//! a container's own cgroup, not the pod's parent directory above it.

use std::io;
use std::path::{Path, PathBuf};

/// Removes cgroup directories in every mounted hierarchy.
pub trait Cgroups: Send + Sync + 'static {
    /// Removes `path` (relative to each hierarchy's root) where it exists and
    /// is empty. A missing path is not an error.
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Whether the kernel's OOM killer killed a process in `path` (cgroup v1
    /// `memory.oom_control`, v2 `memory.events`).
    fn oom_killed(&self, path: &str) -> bool;
}

/// cgroup v1 hierarchies under /sys/fs/cgroup, plus a v2 (or hybrid
/// `unified`) one, whatever is mounted.
#[derive(Debug, Clone)]
pub struct HostCgroups {
    pub mount_root: PathBuf,
}

impl Default for HostCgroups {
    fn default() -> Self {
        Self {
            mount_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

impl HostCgroups {
    fn hierarchies(&self) -> Vec<PathBuf> {
        let mut out = vec![self.mount_root.clone()];
        if let Ok(entries) = std::fs::read_dir(&self.mount_root) {
            for e in entries.flatten() {
                // Symlinks like cpu -> cpu,cpuacct name the same hierarchy.
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        out
    }
}

impl Cgroups for HostCgroups {
    fn remove(&self, path: &str) -> io::Result<()> {
        let rel = Path::new(path.trim_start_matches('/'));
        for h in self.hierarchies() {
            let dir = h.join(rel);
            // Only directories that are cgroups (they hold cgroup.procs).
            if !dir.join("cgroup.procs").exists() {
                continue;
            }
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
            }
        }
        Ok(())
    }

    fn oom_killed(&self, path: &str) -> bool {
        let rel = path.trim_start_matches('/');
        let counts = |file: PathBuf| -> bool {
            std::fs::read_to_string(file).is_ok_and(|text| {
                text.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
        };
        counts(
            self.mount_root
                .join("memory")
                .join(rel)
                .join("memory.oom_control"),
        ) || counts(self.mount_root.join(rel).join("memory.events"))
            || counts(
                self.mount_root
                    .join("unified")
                    .join(rel)
                    .join("memory.events"),
            )
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub struct FakeCgroups {
        pub removed: Mutex<Vec<String>>,
    }

    impl Cgroups for FakeCgroups {
        fn remove(&self, path: &str) -> io::Result<()> {
            self.removed.lock().unwrap().push(path.to_owned());
            Ok(())
        }
        fn oom_killed(&self, _path: &str) -> bool {
            false
        }
    }
}
