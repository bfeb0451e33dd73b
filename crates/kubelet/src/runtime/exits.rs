//! Container exits as the shims report them: one file per exited container in
//! one directory, watched with inotify so the agent learns of an exit at once
//! without polling, and finds the exits it missed after a restart.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use super::shim::ExitStatus;

/// The exit directory and its watcher.
#[derive(Debug)]
pub struct Exits {
    dir: PathBuf,
    /// Bumped on every new exit file; waiters re-check their file.
    generation: watch::Receiver<u64>,
    /// The IDs of containers that exited, for the pod workers.
    events: broadcast::Sender<String>,
}

impl Exits {
    /// Starts watching `dir` (created if missing). Needs a Tokio runtime.
    pub fn watch(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let inotify = inotify::Inotify::init()?;
        inotify.watches().add(
            dir,
            inotify::WatchMask::MOVED_TO | inotify::WatchMask::CLOSE_WRITE,
        )?;
        let mut stream = inotify.into_event_stream([0u8; 4096])?;
        let (gen_tx, generation) = watch::channel(0u64);
        let (events, _) = broadcast::channel(1024);
        let tx = events.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                let Some(name) = event.name.and_then(|n| n.into_string().ok()) else {
                    continue;
                };
                if name.ends_with(".tmp") {
                    continue;
                }
                gen_tx.send_modify(|g| *g += 1);
                let _ = tx.send(name);
            }
        });
        Ok(Self {
            dir: dir.to_owned(),
            generation,
            events,
        })
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn get(&self, id: &str) -> Option<ExitStatus> {
        ExitStatus::read(&self.path(id))
    }

    /// Waits until `id` has exited or `timeout` passes.
    pub async fn wait(&self, id: &str, timeout: std::time::Duration) -> Option<ExitStatus> {
        let mut generation = self.generation.clone();
        let wait = async {
            loop {
                generation.borrow_and_update();
                if let Some(s) = self.get(id) {
                    return Some(s);
                }
                if generation.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    pub fn forget(&self, id: &str) {
        let _ = std::fs::remove_file(self.path(id));
    }
}
