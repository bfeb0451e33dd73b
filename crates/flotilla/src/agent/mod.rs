//! `flotilla agent --server https://IP:PORT --token TOKEN`: a worker joining a
//! cluster. It obtains (or reuses) the node's credentials with the join token
//! (see [`join`]), then runs the node agent as `system:node:<name>` with that
//! client certificate, serving its port 10250 with the serving certificate
//! the cluster CA signed.

pub mod join;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The API server to join, `https://IP:PORT`.
    #[arg(long)]
    server: String,
    /// The join token (the server's DATA_DIR/token; `K10<CA hash>::server:<secret>`
    /// verifies the server's CA, a plain secret trusts the first CA it is shown).
    #[arg(long, env = "FLOTILLA_TOKEN", hide_env_values = true)]
    token: String,
    /// Where the node keeps its credentials, images and containers (under `agent/`).
    #[arg(long, default_value = "/var/lib/flotilla")]
    data_dir: PathBuf,
    /// The Node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The address other nodes reach this one at (default: the source address
    /// of the default route).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The nameserver written into pods' resolv.conf.
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: Ipv4Addr,
    /// The cluster's pod and service ranges (as given to the servers): held
    /// on this node with unreachable routes so no packet for them leaves it.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    #[command(flatten)]
    agent: crate::AgentFlags,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let node_name = args.node_name.clone().unwrap_or_else(crate::hostname);
    let node_ip = args.node_ip.unwrap_or_else(crate::default_node_ip);
    let root = args.data_dir.join("agent");
    let who = join::Identity {
        node_name: node_name.clone(),
        addresses: vec![node_ip],
    };
    let creds = join::credentials(&root, &args.server, &args.token, &who).await?;
    let kubeconfig = creds.write_kubeconfig(&root, &args.server)?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("reading {}", kubeconfig.display()))?;
    config.headers.push(crate::user_agent("kubelet")?);
    let client = kube::Client::try_from(config)?;

    let mut opts = kubelet::KubeletOptions::new(node_name, node_ip, root);
    opts.oci_runtime = args.agent.oci_runtime;
    opts.insecure_registries = args.agent.insecure_registry.clone();
    opts.cluster_dns = vec![args.cluster_dns];
    opts.cluster_cidr = Some(args.cluster_cidr.clone());
    opts.service_cidr = Some(args.service_cidr.clone());
    opts.eviction_hard = args.agent.eviction_hard;
    opts.tls = Some(kubelet::ServingTls {
        cert_pem: creds.serving_cert_pem,
        key_pem: creds.serving_key_pem,
        client_ca_pem: creds.ca_pem,
    });
    tokio::select! {
        r = kubelet::run(client, opts) => {
            r.map_err(|e| anyhow::anyhow!("node agent stopped: {}", crate::error_chain(&e)))
        }
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; shutting down");
            Ok(())
        }
    }
}
