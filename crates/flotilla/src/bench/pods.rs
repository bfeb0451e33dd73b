//! `flotilla bench pods`: pod startup latency on a real node agent, as the
//! Kubernetes pod startup SLI measures it (created → Running and Ready, seen by
//! a watch, image present), sequentially and in waves created at once; the
//! node's start-up time; idle CPU and memory with no pods and with N pods.
//!
//! Needs root. The whole benchmark runs in a network namespace of its own
//! (entered before any thread starts, see [`enter_own_network`]), so its pods,
//! bridge and routes never touch the machine's network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;

use super::server::proc_cpu_seconds;
use super::stats::Samples;

const NODE: &str = "bench-node";
const LABEL: &str = "bench=pods";

#[derive(clap::Args)]
pub struct PodsArgs {
    /// Pods per measurement (sequential, and in waves).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods created at once in each wave.
    #[arg(long, default_value_t = 20)]
    parallel: usize,
    /// runc or crun.
    #[arg(long, default_value = "runc")]
    oci_runtime: String,
    /// How long idle CPU is measured.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    idle: Duration,
}

/// Moves this process into a new network namespace with loopback up. Must run
/// before any other thread exists: namespaces are per thread, and threads
/// inherit their creator's.
pub fn enter_own_network() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "bench pods runs real containers: run it as root"
    );
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .context("unshare(CLONE_NEWNET): a network namespace of the benchmark's own")?;
    let out = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .output()
        .context("ip link set lo up")?;
    anyhow::ensure!(out.status.success(), "ip link set lo up failed");
    Ok(())
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }))
    .expect("pod")
}

/// When each pod was first seen Ready by one watch on all benchmark pods.
#[derive(Default)]
struct Seen {
    ready: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl Seen {
    async fn wait(&self, name: &str, limit: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if let Some(t) = self.ready.lock().unwrap().get(name) {
                return Ok(*t);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            anyhow::ensure!(!left.is_zero(), "pod {name} not Ready within {limit:?}");
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

fn shims_rss(data: &Path) -> (usize, u64) {
    let needle = data.to_string_lossy().into_owned();
    let mut count = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" shim ") && cmd.contains(&needle) {
            count += 1;
            bytes += pss(&e.path());
        }
    }
    (count, bytes)
}

/// Proportional set size: shared pages (the binary's text, mapped by every
/// shim) divided among the processes mapping them.
fn pss(proc_dir: &Path) -> u64 {
    std::fs::read_to_string(proc_dir.join("smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn rss(status: &Path) -> u64 {
    std::fs::read_to_string(status)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

struct Server {
    process: testkit::ServerProcess,
    pid: u32,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn cpu(&self) -> f64 {
        proc_cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }
    fn rss(&self) -> u64 {
        rss(Path::new(&format!("/proc/{}/status", self.pid)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.process.stop();
        cleanup(&self.data, NODE);
    }
}

/// Removes whatever the agent left if the benchmark stopped early:
/// containers, mounts, cgroups.
fn cleanup(data: &Path, node: &str) {
    let root = data.join("agent/runtime/oci");
    let list = std::process::Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output();
    for id in list
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .lines()
    {
        for args in [vec!["kill", id, "KILL"], vec!["delete", "--force", id]] {
            let _ = std::process::Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(args)
                .output();
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut under: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(data))
        .collect();
    under.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for m in under {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    fn rmdirs(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdirs(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hierarchies.flatten() {
            rmdirs(&h.path().join("flotilla").join(node));
        }
    }
}

pub async fn run(args: PodsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.pods > 0 && args.parallel > 0,
        "--pods and --parallel must be positive"
    );
    let dir = tempfile::Builder::new()
        .prefix("flotilla-bench-pods-")
        .tempdir()
        .context("creating the data dir")?;
    let data = dir.path().join("data");
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images)?;
    testkit::image::busybox_oci_archive(
        &images.join("busybox.tar"),
        "docker.io/library/busybox:latest",
    )
    .context("building the busybox image from /bin/busybox (package busybox-static)")?;

    let exe = std::env::current_exe()?;
    let builder = testkit::ServerProcess::builder()
        .bin(exe)
        .data_dir(&data)
        .args([
            "--node-name",
            NODE,
            "--node-ip",
            "127.0.0.1",
            "--oci-runtime",
            &args.oci_runtime,
        ])
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
    let started = Instant::now();
    let process = tokio::task::spawn_blocking(move || builder.try_start())
        .await?
        .context("starting `flotilla server`")?;
    let server = Server {
        pid: process.pid().context("server not running")?,
        process,
        data: data.clone(),
        _dir: dir,
    };
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(server.process.kubeconfig())?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node_ready = |n: Option<&Node>| {
        n.and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        kube::runtime::wait::await_condition(nodes, NODE, node_ready),
    )
    .await
    .context("node not Ready within 60 s")??;
    let to_ready = started.elapsed();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let seen = Arc::new(Seen::default());
    let watch = {
        let seen = seen.clone();
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default().labels(LABEL)).boxed();
            while let Some(ev) = stream.next().await {
                if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev
                    && ready(&p)
                {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    seen.ready
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_insert_with(Instant::now);
                    seen.changed.notify_waiters();
                }
            }
        })
    };

    // Idle with no pods.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = server.cpu();
    tokio::time::sleep(args.idle).await;
    let idle_cpu = (server.cpu() - cpu0) / args.idle.as_secs_f64();
    let idle_rss = server.rss();

    // Sequential.
    let mut sequential = Samples::default();
    for i in 0..args.pods {
        let name = format!("seq-{i}");
        let t = Instant::now();
        pods.create(&PostParams::default(), &pod(&name)).await?;
        let at = seen.wait(&name, Duration::from_secs(60)).await?;
        sequential.record(at - t);
    }

    // Idle with the pods running.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = server.cpu();
    tokio::time::sleep(args.idle).await;
    let busy_cpu = (server.cpu() - cpu0) / args.idle.as_secs_f64();
    let busy_rss = server.rss();
    let (shims, shim_rss) = shims_rss(&data);

    let t = Instant::now();
    delete_all(&pods).await?;
    let deleted_in = t.elapsed();

    // Waves created at once.
    let mut waves = Samples::default();
    let mut created = 0;
    while created < args.pods {
        let n = args.parallel.min(args.pods - created);
        let names: Vec<String> = (created..created + n).map(|i| format!("par-{i}")).collect();
        let results = futures::future::join_all(names.iter().map(|name| {
            let pods = pods.clone();
            let seen = seen.clone();
            async move {
                let t = Instant::now();
                pods.create(&PostParams::default(), &pod(name)).await?;
                let at = seen.wait(name, Duration::from_secs(120)).await?;
                anyhow::Ok(at - t)
            }
        }))
        .await;
        for r in results {
            waves.record(r?);
        }
        created += n;
    }
    delete_all(&pods).await?;
    watch.abort();

    let (s, w) = (sequential.summary(), waves.summary());
    let per_pod_agent = busy_rss.saturating_sub(idle_rss) / args.pods as u64;
    println!(
        "| `flotilla bench pods --oci-runtime {rt} --pods {n} --parallel {par}` | |\n|---|---|\n\
         | server start → node Ready | {ready} |\n\
         | startup, sequential: p50 / p90 / p99 / max | {s50} / {s90} / {s99} / {smax} |\n\
         | startup, {par} at once: p50 / p90 / p99 / max | {w50} / {w90} / {w99} / {wmax} |\n\
         | delete {n} pods (until gone) | {del} |\n\
         | server process idle, no pods: CPU / RSS | {ic:.2}% of a core / {irss} |\n\
         | server process idle, {n} pods: CPU / RSS | {bc:.2}% of a core / {brss} |\n\
         | RSS added per pod in the server process | {pp} |\n\
         | shims: count / total PSS / per pod | {shims} / {srss} / {sper} |",
        rt = args.oci_runtime,
        n = args.pods,
        par = args.parallel,
        ready = ms(to_ready),
        s50 = ms(s.p50),
        s90 = ms(s.p90),
        s99 = ms(s.p99),
        smax = ms(s.max),
        w50 = ms(w.p50),
        w90 = ms(w.p90),
        w99 = ms(w.p99),
        wmax = ms(w.max),
        del = ms(deleted_in),
        ic = idle_cpu * 100.0,
        irss = mib(idle_rss),
        bc = busy_cpu * 100.0,
        brss = mib(busy_rss),
        pp = mib(per_pod_agent),
        shims = shims,
        srss = mib(shim_rss),
        sper = mib(shim_rss / shims.max(1) as u64),
    );
    Ok(())
}

async fn delete_all(pods: &Api<Pod>) -> anyhow::Result<()> {
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(LABEL),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = pods
            .list_metadata(&ListParams::default().labels(LABEL))
            .await?;
        if left.items.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} pods not gone after 120 s",
            left.items.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
