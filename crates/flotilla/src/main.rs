//! `flotilla`: one binary for every role. It only parses flags and wires crates.

mod agent;
mod bench;

// The control plane allocates many small, short-lived objects (JSON trees, keys)
// from many threads; mimalloc's per-thread free lists beat glibc malloc there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the control plane: API server, scheduler and controller manager.
    Server(ServerArgs),
    /// Join a cluster as a worker node: `--server https://IP:PORT --token TOKEN`.
    Agent(agent::AgentArgs),
    /// Measure a component against the Kubernetes SLOs on this machine.
    Bench(bench::BenchArgs),
    /// Manage the node's image store.
    #[command(subcommand)]
    Images(ImagesCommand),
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Load oci-archive or docker-archive tarballs into the node's image store.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "/var/lib/flotilla")]
        data_dir: PathBuf,
    },
}

/// The node agent's flags, shared by `server` (for its own node) and `agent`.
#[derive(clap::Args)]
struct AgentFlags {
    /// The OCI runtime that runs containers: runc or crun.
    #[arg(long, default_value = "runc")]
    oci_runtime: kubelet::OciRuntimeKind,
    /// A registry reached over plain HTTP (HOST:PORT); repeatable.
    #[arg(long)]
    insecure_registry: Vec<String>,
    /// Hard eviction thresholds, as the kubelet's flag:
    /// `memory.available<100Mi,nodefs.available<10%`.
    #[arg(long, default_value = "memory.available<100Mi,nodefs.available<10%")]
    eviction_hard: kubelet::EvictionHard,
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
    /// Do not run the scheduler in this server.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controller manager in this server.
    #[arg(long)]
    disable_controller_manager: bool,
    /// A node silent this long is marked NotReady/Unknown and tainted unreachable.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    #[command(flatten)]
    agent: AgentFlags,
}

/// The address other nodes reach this one at: the source address of the
/// default route (a UDP connect sends nothing), else loopback.
fn default_node_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
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
    let node_name = args.node_name.clone().unwrap_or_else(hostname);
    let config = apiserver::ServerConfig {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        https_port: args.https_listen_port,
        datastore_endpoint: args.datastore_endpoint,
        token: args.token,
        node_name: node_name.clone(),
        node_ip: args.node_ip,
        cluster_cidr: args.cluster_cidr.clone(),
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
    let mut components = tokio::task::JoinSet::new();
    if !args.disable_scheduler {
        let client = component_client(
            &running,
            "scheduler.kubeconfig",
            "system:kube-scheduler",
            &[],
        )
        .await?;
        components.spawn(async move {
            scheduler::run(client, scheduler::SchedulerOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("scheduler stopped: {e:#}"))
        });
    }
    if !args.disable_controller_manager {
        let client = component_client(
            &running,
            "controller-manager.kubeconfig",
            "system:kube-controller-manager",
            &[],
        )
        .await?;
        let opts = controllers::ControllerOptions {
            node_monitor_grace_period: args.node_monitor_grace_period,
            cluster_cidr: Some(args.cluster_cidr.clone()),
            root_ca_pem: Some(running.server.pki.ca_pem().to_string()),
            ..Default::default()
        };
        components.spawn(async move {
            controllers::run(client, opts)
                .await
                .map_err(|e| anyhow::anyhow!("controller manager stopped: {e:#}"))
        });
    }
    if !args.disable_agent {
        let user = format!("system:node:{node_name}");
        let client =
            component_client(&running, "node.kubeconfig", &user, &["system:nodes"]).await?;
        let mut opts = kubelet::KubeletOptions::new(
            node_name.clone(),
            args.node_ip.unwrap_or_else(default_node_ip),
            args.data_dir.join("agent"),
        );
        // The agent's HTTPS endpoint: a serving certificate for its node IP
        // and name; clients (the API server) must hold a cluster CA certificate.
        let (cert_pem, key_pem) =
            running
                .server
                .pki
                .issue_serving_cert(&node_name, &[opts.node_ip], &[&node_name])?;
        opts.tls = Some(kubelet::ServingTls {
            cert_pem,
            key_pem,
            client_ca_pem: running.server.pki.ca_pem().to_string(),
        });
        opts.oci_runtime = args.agent.oci_runtime;
        opts.insecure_registries = args.agent.insecure_registry.clone();
        opts.eviction_hard = args.agent.eviction_hard;
        opts.cluster_dns = vec![args.cluster_dns];
        opts.cluster_cidr = Some(args.cluster_cidr.clone());
        opts.service_cidr = Some(args.service_cidr.clone());
        components.spawn(async move {
            kubelet::run(client, opts)
                .await
                .map_err(|e| anyhow::anyhow!("node agent stopped: {}", error_chain(&e)))
        });
    }
    tokio::select! {
        r = running.task => { r??; }
        Some(r) = components.join_next() => { r??; }
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
    }
    Ok(())
}

/// A client for a component that runs in this process with its own identity, as
/// a separate kube-scheduler or kube-controller-manager would (brief invariant 1).
async fn component_client(
    running: &apiserver::Running,
    file: &str,
    user: &str,
    groups: &[&str],
) -> anyhow::Result<kube::Client> {
    let path = running.server.component_kubeconfig(file, user, groups)?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    // Named as Kubernetes' own components name themselves: the API server
    // records the first word as the field manager of their writes.
    let component = match user {
        u if u.starts_with("system:node:") => "kubelet",
        u => u.trim_start_matches("system:"),
    };
    config.headers.push(user_agent(component)?);
    Ok(kube::Client::try_from(config)?)
}

/// `kubelet/v1.33.0 (linux) flotilla`: the User-Agent of a component's client.
fn user_agent(component: &str) -> anyhow::Result<(http::HeaderName, http::HeaderValue)> {
    let value = format!("{component}/{} (linux) flotilla", kubelet::KUBELET_VERSION);
    Ok((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&value)?,
    ))
}

/// An error with its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn images(cmd: ImagesCommand) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::Import { files, data_dir } => {
            let store = kubelet::images::ImageStore::open(&data_dir.join("agent/image-store"))
                .map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
            for file in files {
                let names = store
                    .import_archive(&file)
                    .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), error_chain(&e)))?;
                for name in names {
                    println!("imported {name}");
                }
            }
            Ok(())
        }
    }
}

/// `40s`, `5m`, `1h30m` or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration like 40s"))?;
        number.clear();
        total += match c {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            _ => return Err(format!("{text:?}: unknown unit {c:?} (use s, m or h)")),
        };
    }
    if !number.is_empty() {
        total += number
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a duration"))?;
    }
    Ok(std::time::Duration::from_secs(total))
}

fn main() -> anyhow::Result<()> {
    // A container's shim: synchronous, no logging setup, before anything else.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(kubelet::runtime::shim::main(&argv[2..]));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Command::Bench(b) = &cli.command
        && b.needs_own_network()
    {
        bench::pods::enter_own_network()?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => rt.block_on(server(args)),
        Command::Agent(args) => rt.block_on(agent::run(args)),
        Command::Bench(args) => rt.block_on(bench::run(args)),
        Command::Images(cmd) => images(cmd),
    }
}
