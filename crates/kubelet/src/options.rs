//! Settings of the node agent, named after the kubelet's flags.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Which OCI runtime binary runs the containers (`--oci-runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OciRuntimeKind {
    #[default]
    Runc,
    Crun,
}

impl OciRuntimeKind {
    pub fn binary(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Crun => "crun",
        }
    }
}

impl std::str::FromStr for OciRuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "runc" => Ok(Self::Runc),
            "crun" => Ok(Self::Crun),
            other => Err(format!("unknown OCI runtime {other:?} (use runc or crun)")),
        }
    }
}

/// The agent's HTTPS endpoint (`--tls-cert-file`, `--tls-private-key-file`,
/// `--client-ca-file`), all PEM.
#[derive(Clone)]
pub struct ServingTls {
    /// Serving certificate for the node's addresses, signed by the cluster CA.
    pub cert_pem: String,
    pub key_pem: String,
    /// Client certificates signed by this CA are accepted (the API server's
    /// kubelet client among them).
    pub client_ca_pem: String,
}

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServingTls { .. }")
    }
}

#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// `--hostname-override`: the Node's name.
    pub node_name: String,
    /// `--node-ip`: the InternalIP address published in the Node's status.
    pub node_ip: IpAddr,
    /// `--root-dir`: everything the agent keeps on disk (images, pods, runtime
    /// state). Distinct agents on one host have distinct root dirs.
    pub root_dir: PathBuf,
    /// `--container-runtime`: runc (default) or crun.
    pub oci_runtime: OciRuntimeKind,
    /// `--cluster-dns`: the nameserver written into pods' resolv.conf.
    pub cluster_dns: Vec<Ipv4Addr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--cni-bin-dir`: where the CNI plugins live (Debian: /usr/lib/cni).
    pub cni_bin_dir: PathBuf,
    /// `--node-status-update-frequency`: how often status is written even when
    /// nothing changed (Kubernetes: 10 s; with leases, the status itself is
    /// only re-sent every 5 min unless it changes).
    pub node_status_report_frequency: Duration,
    /// The Lease renewal interval (kubelet: 10 s, a quarter of its 40 s duration).
    pub node_lease_duration: Duration,
    /// `--system-reserved` CPU in millicores and memory in bytes, kept out of
    /// allocatable.
    pub system_reserved_cpu_millis: u64,
    pub system_reserved_memory: u64,
    /// `--max-pods`.
    pub max_pods: u32,
    /// Registries reached over plain HTTP (`--insecure-registry HOST:PORT`).
    pub insecure_registries: Vec<String>,
    /// The executable run as each container's shim: this program, which
    /// must answer to `shim …` (see [`crate::runtime::shim`]).
    pub shim_binary: PathBuf,
    /// `--cluster-cidr` and `--service-cidr`: held locally (unreachable
    /// routes) so that no packet for them leaves the machine.
    pub cluster_cidr: Option<String>,
    pub service_cidr: Option<String>,
    /// `--port`: the HTTPS endpoint for logs, exec, attach, port-forward and
    /// metrics (10250).
    pub port: u16,
    /// Its certificate; `None` serves nothing.
    pub tls: Option<ServingTls>,
}

impl KubeletOptions {
    /// The defaults the kubelet uses, for a node of the given name.
    pub fn new(node_name: impl Into<String>, node_ip: IpAddr, root_dir: PathBuf) -> Self {
        Self {
            node_name: node_name.into(),
            node_ip,
            root_dir,
            oci_runtime: OciRuntimeKind::Runc,
            cluster_dns: vec![Ipv4Addr::new(10, 43, 0, 10)],
            cluster_domain: "cluster.local".into(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            node_status_report_frequency: Duration::from_secs(300),
            node_lease_duration: Duration::from_secs(40),
            system_reserved_cpu_millis: 100,
            system_reserved_memory: 256 << 20,
            max_pods: 110,
            insecure_registries: Vec::new(),
            shim_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("flotilla")),
            cluster_cidr: None,
            service_cidr: None,
            port: 10250,
            tls: None,
        }
    }
}
