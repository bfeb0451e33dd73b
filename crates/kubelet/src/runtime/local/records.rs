//! What the runtime remembers of each sandbox and container, one JSON file
//! each, written atomically.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::super::{NamespacePaths, PodSandboxStatus, PortMapping};

pub(super) fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

pub(super) fn time(ns: u128) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SandboxRecord {
    pub id: String,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub host_network: bool,
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub ports: Vec<(String, u16, u16, Option<IpAddr>)>,
    pub ip: Option<IpAddr>,
    pub ready: bool,
    pub created_at_ns: u128,
    /// The pod's cgroup, absolute (`/flotilla/NODE/kubepods/…/podUID`).
    pub cgroup: String,
}

impl SandboxRecord {
    pub fn namespaces(&self) -> NamespacePaths {
        NamespacePaths {
            net: self.net.clone(),
            ipc: self.ipc.clone(),
            uts: self.uts.clone(),
        }
    }

    pub fn port_mappings(&self) -> Vec<PortMapping> {
        self.ports
            .iter()
            .map(
                |(protocol, container_port, host_port, host_ip)| PortMapping {
                    protocol: protocol.clone(),
                    container_port: *container_port,
                    host_port: *host_port,
                    host_ip: *host_ip,
                },
            )
            .collect()
    }

    pub fn status(&self) -> PodSandboxStatus {
        PodSandboxStatus {
            id: self.id.clone(),
            uid: self.uid.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            ready: self.ready,
            ip: self.ip,
            created_at: time(self.created_at_ns),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub image_id: String,
    pub log_path: PathBuf,
    pub created_at_ns: u128,
    pub started_at_ns: Option<u128>,
    /// The pod cgroup's memory controller reports OOM kills here.
    pub cgroup: String,
}

pub(super) fn save<T: Serialize>(dir: &Path, record: &T) -> std::io::Result<()> {
    let tmp = dir.join("record.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(record)?)?;
    std::fs::rename(&tmp, dir.join("record.json"))
}

/// Every record under `dir/*/record.json`, keyed by its directory name.
pub(super) fn load_all<T: DeserializeOwned>(dir: &Path) -> std::collections::HashMap<String, T> {
    let mut out = std::collections::HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("record.json")) else {
            continue;
        };
        match serde_json::from_slice(&bytes) {
            Ok(r) => {
                out.insert(e.file_name().to_string_lossy().into_owned(), r);
            }
            Err(err) => {
                tracing::warn!(path = %e.path().display(), %err, "unreadable runtime record")
            }
        }
    }
    out
}
