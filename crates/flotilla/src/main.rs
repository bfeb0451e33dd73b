//! `flotilla`: one binary for every role. It only parses flags and wires crates.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "flotilla",
    version,
    about = "A Kubernetes-compatible container orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: API server (and, later, scheduler and controllers).
    Server(ServerArgs),
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the store, certificates, token and kubeconfig live.
    #[arg(long, default_value = "/var/lib/flotilla")]
    data_dir: PathBuf,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Absent: embedded SQLite under the data dir. `etcd://h1:p1,h2:p2` or
    /// `http://h1:p1,...`: a real etcd v3 cluster.
    #[arg(long)]
    datastore_endpoint: Option<String>,
    /// Join secret; generated and written to DATA_DIR/token when absent.
    #[arg(long, env = "FLOTILLA_TOKEN")]
    token: Option<String>,
    #[arg(long)]
    node_name: Option<String>,
    #[arg(long)]
    node_ip: Option<IpAddr>,
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: Ipv4Addr,
    /// Run the control plane only, without a node agent on this machine.
    #[arg(long)]
    disable_agent: bool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_else(|_| "flotilla".into())
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let service_cidr = args
        .service_cidr
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--service-cidr: {e}"))?;
    if !args.disable_agent {
        tracing::warn!(
            "the node agent is not part of this build yet; running the control plane only"
        );
    }
    let config = apiserver::ServerConfig {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        https_port: args.https_listen_port,
        datastore_endpoint: args.datastore_endpoint,
        token: args.token,
        node_name: args.node_name.unwrap_or_else(hostname),
        node_ip: args.node_ip,
        cluster_cidr: args.cluster_cidr,
        service_cidr,
        cluster_dns: args.cluster_dns,
    };
    let running = apiserver::Server::start(config)
        .await
        .context("starting the API server")?;
    tracing::info!(
        addr = %running.addr,
        kubeconfig = %args.data_dir.join("kubeconfig.yaml").display(),
        "API server listening"
    );
    tokio::select! {
        r = running.task => { r??; }
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(server(args)),
    }
}
