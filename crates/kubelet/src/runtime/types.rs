//! The requests and answers of [`super::Runtime`], shaped after the CRI
//! (`k8s.io/cri-api` `api.proto`): the pod agent turns a Pod into these, and the
//! runtime turns them into namespaces, CNI calls and OCI bundles.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

/// CRI `PodSandboxConfig`: what the pod's containers share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSandboxConfig {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    /// The pod's hostname (its name, or spec.hostname), set in its UTS namespace.
    pub hostname: String,
    /// `spec.hostNetwork`: no network namespace of its own.
    pub host_network: bool,
    /// `spec.hostIPC`, `spec.hostPID`.
    pub host_ipc: bool,
    pub host_pid: bool,
    /// What goes into every container's /etc/resolv.conf.
    pub dns: DnsConfig,
    /// Extra /etc/hosts lines (`spec.hostAliases`), after the pod's own.
    pub host_aliases: Vec<(IpAddr, Vec<String>)>,
    /// `hostPort`s, set up by the CNI portmap plugin.
    pub port_mappings: Vec<PortMapping>,
    /// The pod's cgroup, relative to the agent's cgroup root
    /// (`kubepods/burstable/pod<uid>`).
    pub cgroup_parent: String,
    /// `spec.securityContext.sysctls`.
    pub sysctls: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortMapping {
    /// `TCP`, `UDP` or `SCTP`, as in the pod spec.
    pub protocol: String,
    pub container_port: u16,
    pub host_port: u16,
    pub host_ip: Option<IpAddr>,
}

/// CRI `ContainerConfig`: one container, with everything the pod agent
/// resolved (env from ConfigMaps and Secrets, `$(VAR)` expansion, volume
/// host paths). Empty `command`/`args` mean the image's entrypoint/cmd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerConfig {
    pub name: String,
    pub attempt: u32,
    /// The image as the pod names it; the runtime resolves it in its store.
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    /// Where the runtime writes the container's output, in the CRI log format
    /// (`<RFC3339Nano> stdout|stderr F|P <line>`).
    pub log_path: PathBuf,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    pub resources: LinuxResources,
    pub security: SecurityContext,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// A bind mount into the container (volumes, service-account tokens,
/// /etc/hosts, /etc/resolv.conf, /dev/termination-log).
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub read_only: bool,
}

/// CRI `LinuxContainerResources`, computed from requests and limits as the
/// kubelet does (cpu.shares from the request, CFS quota from the limit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinuxResources {
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub memory_limit_in_bytes: Option<i64>,
    pub oom_score_adj: Option<i32>,
    pub pids_limit: Option<i64>,
}

/// The parts of the container's security context the runtime applies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityContext {
    pub privileged: bool,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
    pub readonly_rootfs: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privs: bool,
    pub seccomp: SeccompProfile,
    /// `procMount: Unmasked` clears these; otherwise the runtime's defaults.
    pub unmasked_proc: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum SeccompProfile {
    /// Kubernetes' default when the pod says nothing.
    #[default]
    Unconfined,
    RuntimeDefault,
    /// A profile file under the agent's seccomp directory.
    Localhost(PathBuf),
}

/// CRI `PodSandboxStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSandboxStatus {
    pub id: String,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub ready: bool,
    pub ip: Option<IpAddr>,
    pub created_at: SystemTime,
}

/// What a container is doing now.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerState {
    Created,
    Running {
        started_at: SystemTime,
    },
    Exited {
        started_at: Option<SystemTime>,
        finished_at: SystemTime,
        exit_code: i32,
        /// `OOMKilled`, `Error`, `Completed`.
        reason: String,
        message: Option<String>,
    },
    Unknown,
}

/// CRI `ContainerStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    /// The image's ID (`sha256:` of its config), for status.imageID.
    pub image_id: String,
    pub state: ContainerState,
    pub created_at: SystemTime,
    pub log_path: PathBuf,
}

/// CRI `ExecRequest`: a command run in a running container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// Run it on a terminal: stdout carries stderr too, and it can be resized.
    pub tty: bool,
    pub stdin: bool,
}

/// Rows and columns of an exec's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// A running exec: its streams, a way to resize its terminal, its exit code.
pub struct ExecProcess {
    pub stdin: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    pub stdout: Option<std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>>,
    pub stderr: Option<std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>>,
    /// Present for a terminal.
    pub resize: Option<tokio::sync::mpsc::UnboundedSender<TerminalSize>>,
    /// The exit code (128 + signal for a killed process).
    pub exit: std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>>,
}
