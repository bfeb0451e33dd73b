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

/// `--eviction-hard`: below these, the node reports pressure and evicts pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvictionHard {
    /// `memory.available<100Mi`, in bytes.
    pub memory_available: u64,
    /// `nodefs.available<10%`, in percent of the filesystem holding the root dir.
    pub nodefs_available_percent: u64,
}

impl Default for EvictionHard {
    fn default() -> Self {
        Self {
            memory_available: 100 << 20,
            nodefs_available_percent: 10,
        }
    }
}

impl std::str::FromStr for EvictionHard {
    type Err = String;
    /// `memory.available<100Mi,nodefs.available<10%` (either may be left out).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, value) = part
                .split_once('<')
                .ok_or_else(|| format!("{part:?}: expected SIGNAL<QUANTITY"))?;
            match signal.trim() {
                "memory.available" => {
                    let q = apimachinery::quantity::Quantity::parse(value.trim())
                        .map_err(|e| format!("{part:?}: {e}"))?;
                    out.memory_available = q.value().max(0) as u64;
                }
                "nodefs.available" => {
                    out.nodefs_available_percent = value
                        .trim()
                        .strip_suffix('%')
                        .and_then(|v| v.parse().ok())
                        .filter(|v| *v <= 100)
                        .ok_or_else(|| format!("{part:?}: nodefs.available takes a percentage"))?;
                }
                other => {
                    return Err(format!(
                        "unknown eviction signal {other:?} (memory.available, nodefs.available)"
                    ));
                }
            }
        }
        Ok(out)
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
    /// `--eviction-hard`.
    pub eviction_hard: EvictionHard,
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
            eviction_hard: EvictionHard::default(),
            insecure_registries: Vec::new(),
            shim_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("flotilla")),
            cluster_cidr: None,
            service_cidr: None,
            port: 10250,
            tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_thresholds_parse_as_the_kubelet_flag() {
        let e: EvictionHard = "memory.available<1Gi, nodefs.available<15%"
            .parse()
            .unwrap();
        assert_eq!(e.memory_available, 1 << 30);
        assert_eq!(e.nodefs_available_percent, 15);
        assert_eq!("".parse::<EvictionHard>().unwrap(), EvictionHard::default());
        assert!("memory.available>1".parse::<EvictionHard>().is_err());
        assert!("pid.available<5%".parse::<EvictionHard>().is_err());
    }
}
