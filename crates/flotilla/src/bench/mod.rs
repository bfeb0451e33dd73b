//! `flotilla bench api`: starts a server as a child process on a fresh data dir,
//! fills it with pods, and measures what the Kubernetes scalability SLOs measure —
//! mutating and read latency under concurrent clients, cluster-wide lists, and
//! watch fan-out — then prints a Markdown table for BENCHMARKS.md.

mod client;
mod latency;
mod list;
mod load;
mod objects;
pub mod pods;
mod report;
mod server;
mod stats;
mod watch;

use std::time::Duration;

use anyhow::Context;

use client::ApiClient;
use report::Report;
use server::{ServerProcess, proc_cpu_seconds};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(clap::Subcommand)]
enum Target {
    /// Benchmark the API server: load, latency, lists and watch fan-out.
    Api(ApiArgs),
    /// Benchmark the node agent: pod startup latency, node start, idle cost.
    Pods(pods::PodsArgs),
}

impl BenchArgs {
    /// Whether the benchmark runs in a network namespace of its own, which
    /// must be entered before any thread starts.
    pub fn needs_own_network(&self) -> bool {
        matches!(self.target, Target::Pods(_))
    }
}

#[derive(clap::Args)]
pub struct ApiArgs {
    /// Pods stored before latency is measured.
    #[arg(long, default_value_t = 150_000)]
    pods: usize,
    /// Concurrent clients in the latency phase.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Length of the latency phase (`20s`, `2m`, `500ms`).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent watches in the fan-out phase.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Objects written while the watches are open.
    #[arg(long, default_value_t = 1000)]
    watch_events: usize,
    /// Writes per second while the watches are open.
    #[arg(long, default_value_t = 100)]
    watch_rate: u32,
    /// Requests in flight while loading pods.
    #[arg(long, default_value_t = 32)]
    load_concurrency: usize,
    /// Passed to the server: a real etcd (`http://127.0.0.1:2379`) instead of the
    /// embedded SQLite store.
    #[arg(long)]
    datastore_endpoint: Option<String>,
}

/// `20s`, `2m`, `500ms`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Namespaces the pods are spread over; a namespaced list or watch sees 1/100th.
pub const NAMESPACES: usize = 100;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        Target::Api(api) => run_api(api).await,
        Target::Pods(p) => pods::run(p).await,
    }
}

async fn run_api(args: ApiArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        args.load_concurrency > 0,
        "--load-concurrency must be at least 1"
    );
    let backend = match &args.datastore_endpoint {
        Some(url) => format!("etcd ({url})"),
        None => "embedded SQLite".to_string(),
    };
    eprintln!("bench: starting the server ({backend})");
    let srv = ServerProcess::start(args.datastore_endpoint.as_deref())
        .await
        .context("starting the server")?;
    let api = ApiClient::connect(&srv.kubeconfig())
        .await
        .context("connecting to the server")?;

    let mut report = Report::new(&backend, &args);
    let result = phases(&srv, &api, &args, &mut report).await;
    // The table shows what finished even when a later phase failed.
    println!("{}", report.markdown());
    if let Err(e) = &result {
        eprintln!("bench: stopped early: {e:#}");
        eprintln!("bench: server log tail:\n{}", srv.log_tail(20));
    }
    result
}

async fn phases(
    srv: &ServerProcess,
    api: &ApiClient,
    args: &ApiArgs,
    report: &mut Report,
) -> anyhow::Result<()> {
    // Let the bootstrap objects settle before the idle figure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.rss("idle after start", srv.memory());

    let cpu = Cpu::now(srv);
    let loaded = load::run(api, args.pods, args.load_concurrency).await?;
    report.load(&loaded, cpu.since(srv));
    report.rss("after load", srv.memory());
    report.store_size("after load", srv.store_bytes());

    let cpu = Cpu::now(srv);
    let lat = latency::run(api, args.clients, args.duration, args.pods).await?;
    report.latency(&lat, cpu.since(srv));

    let cpu = Cpu::now(srv);
    let lists = list::run(api, &|| Cpu::now(srv)).await?;
    report.lists(&lists, cpu.since(srv));
    report.rss("after lists", srv.memory());

    let cpu = Cpu::now(srv);
    let opts = watch::Options {
        watchers: args.watchers,
        events: args.watch_events,
        rate: args.watch_rate,
    };
    let fanout = watch::run(api, &opts, || srv.memory()).await?;
    report.watch(&fanout, cpu.since(srv));
    report.store_size("at the end", srv.store_bytes());
    report.rss("at the end", srv.memory());
    if fanout.missing > 0 || fanout.duplicates > 0 || !fanout.errors.is_empty() {
        anyhow::bail!(
            "watch fan-out lost events: {} missing, {} duplicated, errors: {:?}",
            fanout.missing,
            fanout.duplicates,
            fanout.errors
        );
    }
    Ok(())
}

/// CPU seconds used by the server and by this benchmark process: on two cores
/// they compete, so a phase's latency is read together with both.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub server: f64,
    pub bench: f64,
}

impl Cpu {
    fn now(srv: &ServerProcess) -> Cpu {
        Cpu {
            server: srv.cpu_seconds(),
            bench: proc_cpu_seconds("/proc/self/stat"),
        }
    }

    fn since(self, srv: &ServerProcess) -> Cpu {
        Cpu::now(srv).minus(self)
    }

    pub fn minus(self, earlier: Cpu) -> Cpu {
        Cpu {
            server: self.server - earlier.server,
            bench: self.bench - earlier.bench,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }
}
