//! The in-process runtime: sandboxes of pinned namespaces with CNI networking,
//! containers on overlayfs run by `runc`/`crun` through a shim. Its state lives
//! in files under its root, so an agent that restarts adopts the sandboxes and
//! containers it left running instead of recreating them.
//!
//! ```text
//! ROOT/sandboxes/ID/{record.json, ns/{net,ipc,uts}, resolv.conf, hostname}
//! ROOT/containers/ID/{record.json, config.json, rootfs/, upper/, work/}
//! ROOT/exits/ID            written by the shim when the container ends
//! ROOT/oci/                the OCI runtime's own state (--root)
//! ```

mod container;
mod exec;
mod records;
mod sandbox;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use self::records::{ContainerRecord, SandboxRecord};
use super::exits::Exits;
use super::*;
use crate::images::ImageStore;

/// The host side effects the runtime makes, each behind its trait.
#[derive(Clone)]
pub struct Host {
    pub namespaces: Arc<dyn Namespaces>,
    pub mounter: Arc<dyn Mounter>,
    pub cni: Arc<dyn Cni>,
    pub oci: Arc<dyn OciRuntime>,
    pub cgroups: Arc<dyn Cgroups>,
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, SandboxRecord>,
    containers: HashMap<String, ContainerRecord>,
}

pub struct LocalRuntime {
    root: PathBuf,
    /// Every container cgroup sits under this one (`/flotilla/NODE`), so agents
    /// on one host never share a cgroup.
    cgroup_root: String,
    images: Arc<ImageStore>,
    host: Host,
    exits: Exits,
    state: Mutex<State>,
}

impl LocalRuntime {
    /// Opens the runtime's state under `root`, adopting what an earlier run
    /// left there.
    pub fn open(
        root: &Path,
        cgroup_root: &str,
        images: Arc<ImageStore>,
        host: Host,
    ) -> RuntimeResult<Self> {
        let host_err = |action: &str| {
            let action = action.to_owned();
            move |source| RuntimeError::Host { action, source }
        };
        for dir in ["sandboxes", "containers", "oci"] {
            std::fs::create_dir_all(root.join(dir))
                .map_err(host_err(&format!("creating {}", root.join(dir).display())))?;
        }
        let exits = Exits::watch(&root.join("exits")).map_err(host_err("watching exits"))?;
        let state = State {
            sandboxes: records::load_all(&root.join("sandboxes")),
            containers: records::load_all(&root.join("containers")),
        };
        Ok(Self {
            root: root.to_owned(),
            cgroup_root: format!("/{}", cgroup_root.trim_matches('/')),
            images,
            host,
            exits,
            state: Mutex::new(state),
        })
    }

    /// The in-memory records. A panic while they were held cannot leave them
    /// half-written (each change is one insert or remove), so a poisoned lock
    /// is taken over rather than spreading the panic.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.root.join("sandboxes").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn sandbox(&self, id: &str) -> RuntimeResult<SandboxRecord> {
        self.state()
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::SandboxNotFound(id.into()))
    }

    fn container(&self, id: &str) -> RuntimeResult<ContainerRecord> {
        self.state()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::ContainerNotFound(id.into()))
    }

    fn containers_of(&self, sandbox_id: &str) -> Vec<String> {
        self.state()
            .containers
            .values()
            .filter(|c| c.sandbox_id == sandbox_id)
            .map(|c| c.id.clone())
            .collect()
    }
}

fn host_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let action = action.into();
    move |source| RuntimeError::Host { action, source }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[async_trait::async_trait]
impl Runtime for LocalRuntime {
    async fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> RuntimeResult<PodSandboxStatus> {
        self.run_sandbox(config).await
    }

    async fn stop_pod_sandbox(&self, id: &str) -> RuntimeResult<()> {
        self.stop_sandbox(id).await
    }

    async fn remove_pod_sandbox(&self, id: &str) -> RuntimeResult<()> {
        self.remove_sandbox(id).await
    }

    async fn list_pod_sandboxes(&self) -> RuntimeResult<Vec<PodSandboxStatus>> {
        let state = self.state();
        Ok(state
            .sandboxes
            .values()
            .map(SandboxRecord::status)
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> RuntimeResult<String> {
        self.create(sandbox_id, config, sandbox).await
    }

    async fn start_container(&self, id: &str) -> RuntimeResult<()> {
        self.start(id).await
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> RuntimeResult<()> {
        self.stop(id, timeout).await
    }

    async fn remove_container(&self, id: &str) -> RuntimeResult<()> {
        self.remove(id).await
    }

    async fn container_status(&self, id: &str) -> RuntimeResult<ContainerStatus> {
        let record = self.container(id)?;
        Ok(self.status_of(&record))
    }

    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> RuntimeResult<Vec<ContainerStatus>> {
        let records: Vec<ContainerRecord> = {
            let state = self.state();
            state
                .containers
                .values()
                .filter(|c| sandbox_id.is_none_or(|s| c.sandbox_id == s))
                .cloned()
                .collect()
        };
        Ok(records.iter().map(|r| self.status_of(r)).collect())
    }

    fn container_events(&self) -> broadcast::Receiver<String> {
        self.exits.subscribe()
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> RuntimeResult<ExecProcess> {
        self.exec_in(id, request).await
    }

    async fn port_forward(&self, id: &str, port: u16) -> RuntimeResult<tokio::net::TcpStream> {
        self.connect_in(id, port).await
    }
}

#[cfg(test)]
mod tests;
