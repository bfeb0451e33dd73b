//! The Node object this agent registers and the status it reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::machine::{Machine, Usage};
use crate::KubeletOptions;
use crate::images::Image;

/// The Kubernetes version this agent speaks for (as the API server's /version).
pub(crate) use crate::KUBELET_VERSION;

/// Node status lists at most this many images, as the kubelet does.
const MAX_IMAGES: usize = 50;

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn resources(cpu_millis: u64, memory: u64, storage: u64, pods: u32) -> Value {
    let cpu = if cpu_millis.is_multiple_of(1000) {
        (cpu_millis / 1000).to_string()
    } else {
        format!("{cpu_millis}m")
    };
    json!({
        "cpu": cpu,
        "memory": format!("{}Ki", memory / 1024),
        "ephemeral-storage": format!("{}Ki", storage / 1024),
        "pods": pods.to_string(),
        "hugepages-2Mi": "0",
    })
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".into())
}

fn labels(opts: &KubeletOptions) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", opts.node_name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The Node as first registered: metadata and the fixed parts of its status.
pub(crate) fn new_node(opts: &KubeletOptions, machine: &Machine) -> Node {
    let mut node = Node {
        metadata: ObjectMeta {
            name: Some(opts.node_name.clone()),
            labels: Some(labels(opts)),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    };
    let status = fixed_status(opts, machine);
    node.status = serde_json::from_value(status).ok();
    node
}

fn fixed_status(opts: &KubeletOptions, machine: &Machine) -> Value {
    let allocatable_memory = machine
        .memory_bytes
        .saturating_sub(opts.system_reserved_memory)
        .saturating_sub(opts.eviction_hard.memory_available);
    json!({
        "capacity": resources(
            machine.cpu_millis,
            machine.memory_bytes,
            machine.ephemeral_storage_bytes,
            opts.max_pods,
        ),
        "allocatable": resources(
            machine.cpu_millis.saturating_sub(opts.system_reserved_cpu_millis),
            allocatable_memory,
            machine.ephemeral_storage_bytes / 100
                * (100 - opts.eviction_hard.nodefs_available_percent),
            opts.max_pods,
        ),
        "addresses": [
            {"type": "InternalIP", "address": opts.node_ip.to_string()},
            {"type": "Hostname", "address": opts.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": opts.port}},
        "nodeInfo": {
            "machineID": read_trimmed("/etc/machine-id"),
            "systemUUID": read_trimmed("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trimmed("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read_trimmed("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": format!("{}://{}", opts.oci_runtime.binary(), env!("CARGO_PKG_VERSION")),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    })
}

/// One condition's value and the words the kubelet uses for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    kind: &'static str,
    status: &'static str,
    reason: &'static str,
    message: String,
}

/// Which resources are short, by the hard eviction thresholds.
pub(crate) fn short_of(usage: &Usage, hard: &crate::options::EvictionHard) -> (bool, bool) {
    let memory = usage.memory_available < hard.memory_available;
    let disk = usage.disk_total > 0
        && usage.disk_available * 100 < usage.disk_total * hard.nodefs_available_percent;
    (memory, disk)
}

fn conditions(
    usage: &Usage,
    hard: &crate::options::EvictionHard,
    network_ready: bool,
) -> Vec<Condition> {
    let pressure = |kind, on: bool, yes, no, what: &str| Condition {
        kind,
        status: if on { "True" } else { "False" },
        reason: if on { yes } else { no },
        message: if on {
            format!("kubelet has {what} pressure")
        } else {
            format!("kubelet has sufficient {what} available")
        },
    };
    let (memory_low, disk_low) = short_of(usage, hard);
    vec![
        pressure(
            "MemoryPressure",
            memory_low,
            "KubeletHasInsufficientMemory",
            "KubeletHasSufficientMemory",
            "memory",
        ),
        pressure(
            "DiskPressure",
            disk_low,
            "KubeletHasDiskPressure",
            "KubeletHasNoDiskPressure",
            "disk",
        ),
        pressure(
            "PIDPressure",
            false,
            "KubeletHasInsufficientPID",
            "KubeletHasSufficientPID",
            "PID",
        ),
        if network_ready {
            Condition {
                kind: "Ready",
                status: "True",
                reason: "KubeletReady",
                message: "kubelet is posting ready status".into(),
            }
        } else {
            Condition {
                kind: "Ready",
                status: "False",
                reason: "KubeletNotReady",
                message: "container runtime network not ready: NetworkReady=false \
                          reason:NetworkPluginNotReady message:the node has no pod CIDR yet"
                    .into(),
            }
        },
    ]
}

/// Conditions and images (names, size) as last reported.
type Reported = (Vec<Condition>, Vec<(Vec<String>, u64)>);

/// Decides when to write node status: when a condition or the image list
/// changes, and otherwise every `node_status_report_frequency`.
pub(crate) struct Reporter {
    opts: Arc<KubeletOptions>,
    machine: Machine,
    last: Option<Reported>,
    /// When each condition last changed, kept across reports.
    transitions: BTreeMap<&'static str, (&'static str, String)>,
    pending: Option<Reported>,
    sent_at: Option<Instant>,
}

impl Reporter {
    pub fn new(opts: Arc<KubeletOptions>, machine: Machine) -> Self {
        Self {
            opts,
            machine,
            last: None,
            transitions: BTreeMap::new(),
            pending: None,
            sent_at: None,
        }
    }

    /// The status patch to send now, if any.
    pub fn next_patch(&mut self, network_ready: bool, images: &[Image]) -> Option<Value> {
        let usage = Usage::read(&self.opts.root_dir);
        let conds = conditions(&usage, &self.opts.eviction_hard, network_ready);
        let mut imgs: Vec<(Vec<String>, u64)> =
            images.iter().map(|i| (i.names.clone(), i.size)).collect();
        imgs.sort_by_key(|i| std::cmp::Reverse(i.1));
        imgs.truncate(MAX_IMAGES);
        let due = self
            .sent_at
            .is_none_or(|t| t.elapsed() >= self.opts.node_status_report_frequency);
        let now = Timestamp::now().to_string();
        if !due && self.last.as_ref() == Some(&(conds.clone(), imgs.clone())) {
            return None;
        }
        let conditions: Vec<Value> = conds
            .iter()
            .map(|c| {
                let entry = self
                    .transitions
                    .entry(c.kind)
                    .or_insert_with(|| (c.status, now.clone()));
                if entry.0 != c.status {
                    *entry = (c.status, now.clone());
                }
                json!({
                    "type": c.kind,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": entry.1,
                })
            })
            .collect();
        let mut status = fixed_status(&self.opts, &self.machine);
        status["conditions"] = json!(conditions);
        status["images"] = json!(
            imgs.iter()
                .map(|(names, size)| json!({"names": names, "sizeBytes": size}))
                .collect::<Vec<_>>()
        );
        self.pending = Some((conds, imgs));
        Some(json!({ "status": status }))
    }

    /// The last patch reached the API server.
    pub fn sent(&mut self) {
        self.last = self.pending.take();
        self.sent_at = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn usage(mem: u64, disk_avail: u64) -> Usage {
        Usage {
            memory_available: mem,
            disk_available: disk_avail,
            disk_total: 1000,
            pids_in_use: 10,
        }
    }

    #[test]
    fn pressure_follows_the_eviction_thresholds() {
        let ok = conditions(&usage(1 << 30, 500), &Default::default(), true);
        assert!(
            ok.iter()
                .all(|c| (c.kind == "Ready") == (c.status == "True"))
        );
        let low = conditions(&usage(50 << 20, 50), &Default::default(), true);
        let status = |k| low.iter().find(|c| c.kind == k).unwrap().status;
        assert_eq!(status("MemoryPressure"), "True");
        assert_eq!(status("DiskPressure"), "True");
        let not_ready = conditions(&usage(1 << 30, 500), &Default::default(), false);
        assert_eq!(not_ready[3].status, "False");
        assert!(not_ready[3].message.contains("NetworkReady=false"));
    }

    #[test]
    fn status_is_sent_on_change_and_when_due() {
        let mut opts = KubeletOptions::new("n1", "10.0.0.1".parse().unwrap(), std::env::temp_dir());
        opts.node_status_report_frequency = Duration::from_secs(3600);
        let machine = Machine {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 10 << 30,
            pids: 1000,
        };
        let mut r = Reporter::new(Arc::new(opts), machine);
        let first = r.next_patch(false, &[]).expect("first report");
        assert_eq!(first["status"]["capacity"]["cpu"], "2");
        assert_eq!(first["status"]["allocatable"]["cpu"], "1900m");
        r.sent();
        assert!(r.next_patch(false, &[]).is_none(), "nothing changed");
        let ready = r.next_patch(true, &[]).expect("Ready changed");
        assert_eq!(ready["status"]["conditions"][3]["status"], "True");
        r.sent();
        assert!(r.next_patch(true, &[]).is_none());
    }
}
