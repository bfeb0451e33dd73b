//! Scheduler throughput in the spirit of kube-scheduler's scheduler_perf: N
//! nodes and M pods created through the real API server, then the scheduler
//! started in-process; measured until every pod is bound.
//!
//! `cargo build --release -p flotilla && cargo bench -p scheduler`
//! (`-- --nodes 500 --pods 5000 [--spread] [--no-events] [--live]` for one scenario,
//! `--repeat N` to run each scenario N times and print the medians).
//! `--live` creates the pods while the scheduler runs and times from the first
//! pod created to the last bound.

// The same allocator as the `flotilla` binary, which runs the scheduler in-process.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::objects::{node, pod};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use scheduler::{SchedulerOptions, Stats};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
struct Scenario {
    nodes: usize,
    pods: usize,
    spread: bool,
    events: bool,
    live: bool,
    binds: usize,
}

const CREATE_CONCURRENCY: usize = 48;
const ZONES: usize = 10;
const BINDS: usize = SchedulerOptions::DEFAULT_BIND_CONCURRENCY;

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is parenthesised and may hold spaces.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

async fn create_nodes(client: &kube::Client, n: usize) {
    let api: Api<Node> = Api::all(client.clone());
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let zone = format!("zone-{}", i % ZONES);
                let labels = json!({"topology.kubernetes.io/zone": zone});
                let mut n = node(&format!("node-{i:05}"), "4", labels, json!([]));
                if let Some(s) = n.status.as_mut() {
                    s.images = Some(vec![k8s_openapi::api::core::v1::ContainerImage {
                        names: Some(vec!["registry.k8s.io/pause:3.10".into()]),
                        size_bytes: Some(300_000),
                    }]);
                }
                api.create(&PostParams::default(), &n)
                    .await
                    .expect("create node");
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<()>()
        .await;
}

fn bench_pod(i: usize, spread: bool) -> Pod {
    let mut spec = json!({
        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]
    });
    if spread {
        spec["topologySpreadConstraints"] = json!([{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "bench"}}
        }]);
    }
    pod(
        &format!("pod-{i:05}"),
        "100m",
        json!({"app": "bench"}),
        spec,
    )
}

async fn create_pods(client: &kube::Client, m: usize, spread: bool) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    stream::iter(0..m)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &bench_pod(i, spread))
                    .await
                    .expect("create pod");
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<()>()
        .await;
}

async fn wait_bound(stats: &Stats, m: usize) {
    // The scheduler counts successful binds; the API is checked once at the end.
    while Stats::get(&stats.bound) < m as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Pods per second over the whole run and after the first bind.
async fn run(s: Scenario) -> (f64, f64) {
    let bin = testkit::flotilla_bin(testkit::Profile::Release);
    let server = common::ApiServer::start_with(&bin).await;
    let server_pid = server.pid().to_string();
    let t = Instant::now();
    create_nodes(&server.admin, s.nodes).await;
    let nodes_secs = t.elapsed().as_secs_f64();

    let stats = Arc::new(Stats::default());
    let opts = SchedulerOptions {
        leader_election: None,
        scheduled_events: s.events,
        bind_concurrency: s.binds,
        stats: stats.clone(),
        identity: "bench".into(),
        ..Default::default()
    };
    let mut create_secs = 0.0;
    if !s.live {
        let t = Instant::now();
        create_pods(&server.admin, s.pods, s.spread).await;
        create_secs = t.elapsed().as_secs_f64();
    }
    let server_cpu0 = cpu_seconds(&server_pid);
    let own_cpu0 = cpu_seconds("self");
    let start = Instant::now();
    let sched = tokio::spawn(scheduler::run(server.scheduler.clone(), opts));
    let creating = s.live.then(|| {
        let admin = server.admin.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            create_pods(&admin, s.pods, s.spread).await;
            t.elapsed().as_secs_f64()
        })
    });
    let first = async {
        while Stats::get(&stats.bound) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        start.elapsed()
    }
    .await;
    wait_bound(&stats, s.pods).await;
    let total = start.elapsed();
    if let Some(c) = creating {
        create_secs = c.await.expect("pod creation");
    }
    let server_cpu = cpu_seconds(&server_pid) - server_cpu0;
    let own_cpu = cpu_seconds("self") - own_cpu0;
    sched.abort();

    let pods: Api<Pod> = Api::namespaced(server.admin.clone(), "default");
    let listed = pods
        .list(&ListParams::default().fields("spec.nodeName!="))
        .await
        .expect("list");
    assert_eq!(
        listed.items.len(),
        s.pods,
        "all pods bound according to the API server"
    );

    let g = |v: &std::sync::atomic::AtomicU64| Stats::get(v);
    let cycles = g(&stats.cycles).max(1);
    let steady = (total - first).as_secs_f64().max(1e-9);
    println!(
        "nodes={} pods={} spread={} events={} live={} binds={}\n  \
         created nodes in {nodes_secs:.1}s, pods in {create_secs:.1}s ({:.0}/s)\n  \
         all bound in {:.2}s: {:.0} pods/s overall, {:.0} pods/s after the first bind at {:.2}s (informers synced at {:.2}s)\n  \
         scheduling cycles: {} total {:.2}s, {:.0} µs/pod; informer updates: {} applied in {:.2}s; bind errors {}\n  \
         CPU during the run: API server {server_cpu:.1}s, bench process (scheduler + clients) {own_cpu:.1}s",
        s.nodes,
        s.pods,
        s.spread,
        s.events,
        s.live,
        s.binds,
        s.pods as f64 / create_secs.max(1e-9),
        total.as_secs_f64(),
        s.pods as f64 / total.as_secs_f64(),
        s.pods as f64 / steady,
        first.as_secs_f64(),
        g(&stats.synced_nanos) as f64 / 1e9,
        cycles,
        g(&stats.cycle_nanos) as f64 / 1e9,
        g(&stats.cycle_nanos) as f64 / 1e3 / cycles as f64,
        g(&stats.updates),
        g(&stats.apply_nanos) as f64 / 1e9,
        g(&stats.bind_errors),
    );
    (
        s.pods as f64 / total.as_secs_f64().max(1e-9),
        s.pods as f64 / steady,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let one = value("--nodes").map(|nodes| Scenario {
        nodes,
        pods: value("--pods").unwrap_or(nodes * 10),
        spread: has("--spread"),
        events: !has("--no-events"),
        live: has("--live"),
        binds: value("--binds").unwrap_or(BINDS),
    });
    let scenarios = match one {
        Some(s) => vec![s],
        None => vec![
            Scenario {
                nodes: 500,
                pods: 5_000,
                spread: false,
                events: true,
                live: false,
                binds: BINDS,
            },
            Scenario {
                nodes: 5_000,
                pods: 10_000,
                spread: false,
                events: true,
                live: false,
                binds: BINDS,
            },
            Scenario {
                nodes: 5_000,
                pods: 10_000,
                spread: true,
                events: true,
                live: false,
                binds: BINDS,
            },
        ],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let repeat = value("--repeat").unwrap_or(1).max(1);
    for s in scenarios {
        let mut runs: Vec<(f64, f64)> = (0..repeat).map(|_| rt.block_on(run(s))).collect();
        if repeat > 1 {
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let mut overall: Vec<f64> = runs.iter().map(|r| r.0).collect();
            let mut steady: Vec<f64> = runs.drain(..).map(|r| r.1).collect();
            println!(
                "median of {repeat}: {:.0} pods/s overall, {:.0} pods/s after the first bind\n",
                median(&mut overall),
                median(&mut steady)
            );
        }
    }
}
