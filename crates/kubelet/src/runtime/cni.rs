//! Pod networking through the standard CNI plugins (`bridge` with `host-local`
//! IPAM on the node's pod CIDR, `loopback` for `lo`, `portmap` for hostPorts),
//! executed as the CNI specification says: the command and the container's
//! identity in environment variables, the network config on stdin, the result
//! on stdout.
//!
//! Hand-written because no maintained Rust crate executes CNI plugins; the
//! protocol is a process call with JSON in and out.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{PortMapping, RuntimeError, RuntimeResult};

const CNI_VERSION: &str = "1.0.0";

/// One pod's attachment.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    /// The sandbox ID (`CNI_CONTAINERID`).
    pub id: &'a str,
    pub netns: &'a Path,
    /// `namespace/name`, for error messages and `K8S_POD_*` args.
    pub namespace: &'a str,
    pub name: &'a str,
    pub port_mappings: &'a [PortMapping],
}

/// Sets up and tears down pods' networks.
#[async_trait::async_trait]
pub trait Cni: Send + Sync + 'static {
    /// Connects the pod; returns its address.
    async fn add(&self, pod: &Attachment<'_>) -> RuntimeResult<IpAddr>;
    /// Disconnects it and releases its address. Idempotent.
    async fn del(&self, pod: &Attachment<'_>) -> RuntimeResult<()>;
}

/// The node's CNI network: a bridge on the node's pod CIDR.
#[derive(Debug, Clone)]
pub struct BridgeNetwork {
    pub bin_dir: PathBuf,
    /// host-local's allocations live here, per node, never in /var/lib/cni.
    pub data_dir: PathBuf,
    /// Linux bridge name; unique per node (at most 15 bytes).
    pub bridge: String,
    pub subnet: String,
    pub network_name: String,
}

impl BridgeNetwork {
    /// A bridge name derived from the node name, so agents on one host differ.
    pub fn bridge_name(node_name: &str) -> String {
        // FNV-1a: stable across builds, unlike std's hasher.
        let mut h: u32 = 0x811c_9dc5;
        for b in node_name.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        format!("flt{h:08x}")
    }

    fn bridge_config(&self) -> Value {
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.network_name,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": self.subnet }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": self.data_dir,
            },
        })
    }

    fn loopback_config(&self) -> Value {
        json!({ "cniVersion": CNI_VERSION, "name": "lo", "type": "loopback" })
    }

    fn portmap_config(&self, mappings: &[PortMapping], prev: &Value) -> Value {
        let ports: Vec<Value> = mappings
            .iter()
            .map(|m| {
                let mut p = json!({
                    "hostPort": m.host_port,
                    "containerPort": m.container_port,
                    "protocol": m.protocol.to_lowercase(),
                });
                if let Some(ip) = m.host_ip {
                    p["hostIP"] = json!(ip.to_string());
                }
                p
            })
            .collect();
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.network_name,
            "type": "portmap",
            "capabilities": { "portMappings": true },
            "runtimeConfig": { "portMappings": ports },
            "prevResult": prev,
        })
    }

    async fn exec(
        &self,
        command: &'static str,
        pod: &Attachment<'_>,
        ifname: &str,
        config: &Value,
    ) -> RuntimeResult<Value> {
        let plugin = config["type"].as_str().unwrap_or_default();
        let fail = |message: String| RuntimeError::Cni {
            command,
            pod: format!("{}/{}", pod.namespace, pod.name),
            message,
        };
        let mut child = tokio::process::Command::new(self.bin_dir.join(plugin))
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", pod.id)
            .env("CNI_NETNS", pod.netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &self.bin_dir)
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
                    pod.namespace, pod.name, pod.id
                ),
            )
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("running {plugin}: {e}")))?;
        let body = serde_json::to_vec(config).map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&body)
                .await
                .map_err(|e| fail(format!("writing to {plugin}: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("waiting for {plugin}: {e}")))?;
        if !out.status.success() {
            // Plugins report errors as JSON on stdout: {"code", "msg", "details"}.
            let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let msg = match err["msg"].as_str() {
                Some(m) => format!("{plugin}: {m} {}", err["details"].as_str().unwrap_or("")),
                None => format!(
                    "{plugin} exited with {}: {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            };
            return Err(fail(msg.trim().to_owned()));
        }
        if out.stdout.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("{plugin}'s result: {e}")))
    }
}

/// The first address of a CNI result (`ips[0].address`, `10.42.0.5/24`).
pub fn result_ip(result: &Value) -> Option<IpAddr> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .next()
}

#[async_trait::async_trait]
impl Cni for BridgeNetwork {
    async fn add(&self, pod: &Attachment<'_>) -> RuntimeResult<IpAddr> {
        self.exec("ADD", pod, "lo", &self.loopback_config()).await?;
        let result = self.exec("ADD", pod, "eth0", &self.bridge_config()).await?;
        let ip = result_ip(&result).ok_or_else(|| RuntimeError::Cni {
            command: "ADD",
            pod: format!("{}/{}", pod.namespace, pod.name),
            message: format!("bridge returned no address: {result}"),
        })?;
        if !pod.port_mappings.is_empty() {
            let config = self.portmap_config(pod.port_mappings, &result);
            self.exec("ADD", pod, "eth0", &config).await?;
        }
        Ok(ip)
    }

    async fn del(&self, pod: &Attachment<'_>) -> RuntimeResult<()> {
        if !pod.port_mappings.is_empty() {
            let config = self.portmap_config(pod.port_mappings, &Value::Null);
            self.exec("DEL", pod, "eth0", &config).await?;
        }
        // DEL with a netns that is already gone must still release the address.
        self.exec("DEL", pod, "eth0", &self.bridge_config()).await?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::Mutex;

    /// Hands out 10.42.0.2, .3, … and remembers who holds which.
    #[derive(Debug, Default)]
    pub struct FakeCni {
        pub attached: Mutex<Vec<(String, IpAddr)>>,
        next: Mutex<u8>,
    }

    #[async_trait::async_trait]
    impl Cni for FakeCni {
        async fn add(&self, pod: &Attachment<'_>) -> RuntimeResult<IpAddr> {
            let mut next = self.next.lock().unwrap();
            *next += 1;
            let ip = IpAddr::from([10, 42, 0, *next + 1]);
            self.attached.lock().unwrap().push((pod.id.to_owned(), ip));
            Ok(ip)
        }
        async fn del(&self, pod: &Attachment<'_>) -> RuntimeResult<()> {
            self.attached.lock().unwrap().retain(|(id, _)| id != pod.id);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_are_short_stable_and_per_node() {
        let a = BridgeNetwork::bridge_name("node-a");
        assert_eq!(a, BridgeNetwork::bridge_name("node-a"));
        assert_ne!(a, BridgeNetwork::bridge_name("node-b"));
        assert!(a.len() <= 15, "{a}");
    }

    #[test]
    fn the_first_address_of_a_result_is_the_pods() {
        let r = json!({"ips": [{"address": "10.42.0.7/24", "gateway": "10.42.0.1"}]});
        assert_eq!(result_ip(&r), Some("10.42.0.7".parse().unwrap()));
        assert_eq!(result_ip(&json!({})), None);
    }
}
