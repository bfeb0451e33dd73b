//! The container runtime, behind a CRI-shaped trait so the pod agent can run
//! over the real one or a fake.

mod cgroups;
mod cni;
mod exits;
pub mod hugetlb;
mod local;
mod mounts;
mod namespaces;
mod oci;
mod seccomp;
pub mod shim;
pub mod spec;
mod types;

pub use cgroups::{Cgroups, HostCgroups};
pub use cni::{Attachment, BridgeNetwork, Cni};
pub use local::{Host, LocalRuntime};
pub use mounts::{HostMounter, Mounter, Overlay};
pub use namespaces::{HostNamespaces, NamespacePaths, NamespaceRequest, Namespaces};
pub use oci::{OciCli, OciRuntime, OciState};

pub use types::*;

use std::time::Duration;

/// Why a runtime call failed. Each variant names the step, so the pod's status
/// and Events can say what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no sandbox {0}")]
    SandboxNotFound(String),
    #[error("no container {0}")]
    ContainerNotFound(String),
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
    /// The container's OCI spec could not be built from its config.
    #[error("building the OCI spec: {0}")]
    Spec(String),
    /// A host side effect (mount, namespace, cgroup, file) failed.
    #[error("{action}")]
    Host {
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// A CNI plugin failed to set up or tear down the pod's network.
    #[error("CNI {command} for {pod}: {message}")]
    Cni {
        command: &'static str,
        pod: String,
        message: String,
    },
    /// `runc`/`crun` refused or failed.
    #[error("{runtime} {action}: {message}")]
    Oci {
        runtime: &'static str,
        action: String,
        message: String,
    },
}

pub type RuntimeResult<T> = Result<T, RuntimeError>;

/// The CRI's RuntimeService, as far as the agent uses it.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Creates the pod's namespaces and network; returns the sandbox's status.
    async fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> RuntimeResult<PodSandboxStatus>;
    /// Stops every container of the sandbox and tears its network down.
    /// Idempotent.
    async fn stop_pod_sandbox(&self, id: &str) -> RuntimeResult<()>;
    /// Removes what is left of a stopped sandbox. Idempotent.
    async fn remove_pod_sandbox(&self, id: &str) -> RuntimeResult<()>;
    async fn list_pod_sandboxes(&self) -> RuntimeResult<Vec<PodSandboxStatus>>;

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> RuntimeResult<String>;
    async fn start_container(&self, id: &str) -> RuntimeResult<()>;
    /// SIGTERM, then SIGKILL once `timeout` has passed. Idempotent.
    async fn stop_container(&self, id: &str, timeout: Duration) -> RuntimeResult<()>;
    async fn remove_container(&self, id: &str) -> RuntimeResult<()>;
    async fn container_status(&self, id: &str) -> RuntimeResult<ContainerStatus>;
    /// Containers of one sandbox, or of all when `sandbox_id` is `None`.
    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> RuntimeResult<Vec<ContainerStatus>>;
    /// IDs of containers as they exit (CRI's container events).
    fn container_events(&self) -> tokio::sync::broadcast::Receiver<String>;

    /// Starts `request.cmd` in the running container (CRI `Exec`).
    async fn exec(&self, id: &str, _request: &ExecRequest) -> RuntimeResult<ExecProcess> {
        Err(unsupported("exec", id))
    }
    /// A TCP connection to `port` on the sandbox's loopback, from inside its
    /// network namespace (CRI `PortForward`).
    async fn port_forward(&self, id: &str, _port: u16) -> RuntimeResult<tokio::net::TcpStream> {
        Err(unsupported("port-forward", id))
    }
}

fn unsupported(action: &str, id: &str) -> RuntimeError {
    RuntimeError::Oci {
        runtime: "runtime",
        action: action.into(),
        message: format!("not supported by this runtime ({id})"),
    }
}
