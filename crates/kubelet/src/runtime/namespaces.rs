//! The pod sandbox's namespaces, held open by bind mounts instead of a pause
//! container (as CRI-O's `pinns` does): a short-lived thread unshares the
//! network, IPC and UTS namespaces, sets the hostname, and bind-mounts its
//! `/proc/thread-self/ns/*` files onto files in the sandbox directory. The
//! namespaces live as long as those mounts; containers join them by path.

use std::io;
use std::path::{Path, PathBuf};

/// Paths of a sandbox's pinned namespaces; `None` means the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePaths {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

impl NamespacePaths {
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.net, &self.ipc, &self.uts].into_iter().flatten()
    }
}

/// Which namespaces a sandbox gets of its own.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceRequest<'a> {
    pub net: bool,
    pub ipc: bool,
    /// Always new unless the pod uses the host network (then it shares the
    /// node's hostname, as Kubernetes does).
    pub uts: bool,
    pub hostname: &'a str,
}

/// Creates and removes pinned namespaces.
pub trait Namespaces: Send + Sync + 'static {
    /// Creates the requested namespaces, pinned under `dir` (`dir/net`, …).
    fn create(&self, dir: &Path, request: NamespaceRequest<'_>) -> io::Result<NamespacePaths>;
    /// Unpins and removes them; missing ones are not an error.
    fn remove(&self, paths: &NamespacePaths) -> io::Result<()>;
}

/// The real thing, with `unshare(2)` and bind mounts.
#[derive(Debug, Default)]
pub struct HostNamespaces;

impl Namespaces for HostNamespaces {
    fn create(&self, dir: &Path, request: NamespaceRequest<'_>) -> io::Result<NamespacePaths> {
        use nix::sched::CloneFlags;
        std::fs::create_dir_all(dir)?;
        let mut flags = CloneFlags::empty();
        let mut paths = NamespacePaths::default();
        for (wanted, flag, name, slot) in [
            (request.net, CloneFlags::CLONE_NEWNET, "net", &mut paths.net),
            (request.ipc, CloneFlags::CLONE_NEWIPC, "ipc", &mut paths.ipc),
            (request.uts, CloneFlags::CLONE_NEWUTS, "uts", &mut paths.uts),
        ] {
            if wanted {
                flags |= flag;
                *slot = Some(dir.join(name));
            }
        }
        if flags.is_empty() {
            return Ok(paths);
        }
        let hostname = request.hostname.to_owned();
        let targets = paths.clone();
        // unshare(2) moves only the calling thread; a fresh thread that ends
        // right after keeps the agent's own threads in the host namespaces.
        let pinned = std::thread::spawn(move || -> io::Result<()> {
            nix::sched::unshare(flags)?;
            if targets.uts.is_some() {
                nix::unistd::sethostname(&hostname)?;
            }
            for (path, name) in [
                (&targets.net, "net"),
                (&targets.ipc, "ipc"),
                (&targets.uts, "uts"),
            ] {
                if let Some(path) = path {
                    std::fs::File::create(path)?;
                    nix::mount::mount(
                        Some(Path::new(&format!("/proc/thread-self/ns/{name}"))),
                        path.as_path(),
                        None::<&str>,
                        nix::mount::MsFlags::MS_BIND,
                        None::<&str>,
                    )?;
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))?;
        if let Err(e) = pinned {
            let _ = self.remove(&paths);
            return Err(e);
        }
        Ok(paths)
    }

    fn remove(&self, paths: &NamespacePaths) -> io::Result<()> {
        for path in paths.all() {
            match nix::mount::umount2(path.as_path(), nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::Mutex;

    /// Records namespaces as plain files.
    #[derive(Debug, Default)]
    pub struct FakeNamespaces {
        pub live: Mutex<Vec<PathBuf>>,
    }

    impl Namespaces for FakeNamespaces {
        fn create(&self, dir: &Path, r: NamespaceRequest<'_>) -> io::Result<NamespacePaths> {
            std::fs::create_dir_all(dir)?;
            let make = |on: bool, name: &str| -> io::Result<Option<PathBuf>> {
                if !on {
                    return Ok(None);
                }
                let p = dir.join(name);
                std::fs::write(&p, r.hostname)?;
                self.live.lock().unwrap().push(p.clone());
                Ok(Some(p))
            };
            Ok(NamespacePaths {
                net: make(r.net, "net")?,
                ipc: make(r.ipc, "ipc")?,
                uts: make(r.uts, "uts")?,
            })
        }
        fn remove(&self, paths: &NamespacePaths) -> io::Result<()> {
            let mut live = self.live.lock().unwrap();
            for p in paths.all() {
                live.retain(|l| l != p);
                let _ = std::fs::remove_file(p);
            }
            Ok(())
        }
    }
}
