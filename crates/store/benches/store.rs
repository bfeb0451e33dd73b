//! `cargo bench -p store`: the embedded SQLite store against etcd with one
//! and three members, on this machine, data on the same disk, all on
//! loopback, both fsyncing every acknowledged write. Prints a Markdown table.
//!
//! The write phases run in rounds that interleave the backends (the machine
//! and its disk are shared and noisy); the table shows the median round's
//! rate and latency percentiles over all rounds. `FLOTILLA_BENCH_ROUNDS`
//! (default 3) and `FLOTILLA_BENCH_SECONDS` (per phase, default 3) tune it;
//! `FLOTILLA_BENCH_ONLY=sqlite` or `=etcd` runs one side only.

#[path = "../tests/common/etcd.rs"]
mod etcd_helper;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use store::etcd::{EtcdOptions, EtcdStore};
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{ListOptions, Store, WatchItem};
use tokio::time::Instant;

use etcd_helper::EtcdCluster;

/// A typical small Kubernetes object.
const VALUE_BYTES: usize = 512;
const WATCH_WRITES: usize = 500;

struct Row {
    name: &'static str,
    writes: Vec<Writes>,
    lists: Vec<(usize, Duration)>,
    watch_after_ack: Percentiles,
    watch_after_start: Percentiles,
}

struct Writes {
    writers: usize,
    per_second: f64,
    latency: Percentiles,
}

#[derive(Clone, Copy)]
struct Percentiles {
    p50: Duration,
    p99: Duration,
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    v.sort();
    let at = |q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .copied()
    };
    Percentiles {
        p50: at(0.50).unwrap_or_default(),
        p99: at(0.99).unwrap_or_default(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    runtime.expect("tokio runtime").block_on(run());
}

async fn run() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let phase = Duration::from_secs(env("FLOTILLA_BENCH_SECONDS", 3));
    let rounds = env("FLOTILLA_BENCH_ROUNDS", 3) as usize;
    let only = std::env::var("FLOTILLA_BENCH_ONLY").unwrap_or_default();

    // Every backend is up for the whole run, so that the rounds interleave
    // them and a noisy neighbour on the disk hits all of them alike.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut clusters = Vec::new();
    let mut backends: Vec<(&'static str, Arc<dyn Store>)> = Vec::new();
    if only != "etcd" {
        let store = SqliteStore::open(&dir.path().join("state.db"), SqliteOptions::default());
        backends.push(("embedded SQLite", Arc::new(store.expect("open sqlite"))));
    }
    if only != "sqlite" {
        for (members, name) in [(1, "etcd, 1 member"), (3, "etcd, 3 members")] {
            let cluster = EtcdCluster::start(members).await;
            let store = EtcdStore::connect(cluster.endpoints(), EtcdOptions::default()).await;
            backends.push((name, Arc::new(store.expect("connect etcd"))));
            clusters.push(cluster);
        }
    }
    eprintln!("disk before: {}", fsync_probe(dir.path()));
    // Per backend, per writer count, per round: (writes/s, latencies).
    let mut samples: Vec<Vec<Vec<Round>>> = vec![vec![Vec::new(); WRITERS.len()]; backends.len()];
    for round in 0..rounds {
        for (b, (name, store)) in backends.iter().enumerate() {
            for (w, &writers) in WRITERS.iter().enumerate() {
                let tag = format!("r{round}w{writers}");
                // Warm up connections and caches.
                write_phase(
                    store,
                    writers,
                    Duration::from_millis(300),
                    &format!("warm{tag}"),
                )
                .await;
                let (rate, latencies) = write_phase(store, writers, phase, &tag).await;
                eprintln!("round {round}, {name}, {writers} writer(s): {rate:.0} writes/s");
                samples[b][w].push((rate, latencies));
            }
        }
    }
    eprintln!("disk after:  {}", fsync_probe(dir.path()));
    let mut rows = Vec::new();
    for (b, (name, store)) in backends.iter().enumerate() {
        let writes = WRITERS
            .iter()
            .zip(std::mem::take(&mut samples[b]))
            .map(|(&writers, rounds)| {
                // The median round's rate; latencies pooled over all rounds.
                let mut rates: Vec<f64> = rounds.iter().map(|r| r.0).collect();
                rates.sort_by(f64::total_cmp);
                let latencies = rounds.into_iter().flat_map(|r| r.1).collect();
                Writes {
                    writers,
                    per_second: rates[rates.len() / 2],
                    latency: percentiles(latencies),
                }
            })
            .collect();
        rows.push(read_side(name, store, writes).await);
    }
    print_table(&rows);
    drop(clusters);
}

const WRITERS: [usize; 2] = [1, 16];

/// One write phase: writes per second and every write's latency.
type Round = (f64, Vec<Duration>);

/// Times a synced 16 KiB overwrite in `dir`, to show how the disk behaved.
fn fsync_probe(dir: &std::path::Path) -> String {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let Ok(file) = std::fs::File::create(&path) else {
        return "unavailable".into();
    };
    let buf = vec![0u8; 16384];
    let mut times = Vec::new();
    for i in 0..200u64 {
        let _ = file.write_at(&buf, (i % 64) * 16384);
        let t = std::time::Instant::now();
        let _ = file.sync_data();
        times.push(t.elapsed());
    }
    let _ = std::fs::remove_file(&path);
    let p = percentiles(times);
    format!(
        "fdatasync of a 16 KiB write p50 {} / p99 {}",
        ms(p.p50),
        ms(p.p99)
    )
}

/// Lists and watch latency, once per backend.
async fn read_side(name: &'static str, store: &Arc<dyn Store>, writes: Vec<Writes>) -> Row {
    let mut lists = Vec::new();
    for n in [10_000, 100_000] {
        let prefix = format!("/bench/list{n}/");
        load(store, &prefix, n).await;
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let listed = store
                .list(&prefix, ListOptions::default())
                .await
                .expect("list");
            times.push(t.elapsed());
            assert_eq!(listed.items.len(), n);
        }
        times.sort();
        eprintln!("{name}: list {n}: {:?}", times[1]);
        lists.push((n, times[1]));
    }
    let (watch_after_ack, watch_after_start) = watch_latency(store).await;
    Row {
        name,
        writes,
        lists,
        watch_after_ack,
        watch_after_start,
    }
}

/// `writers` tasks create fresh keys back to back for `length`.
async fn write_phase(
    store: &Arc<dyn Store>,
    writers: usize,
    length: Duration,
    tag: &str,
) -> (f64, Vec<Duration>) {
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let end = Instant::now() + length;
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (s, value, tag) = (Arc::clone(store), value.clone(), tag.to_string());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    s.create(&format!("/bench/{tag}/{w}/{i}"), value.clone())
                        .await
                        .expect("write");
                    latencies.push(t.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer task"));
    }
    let elapsed = start.elapsed();
    (latencies.len() as f64 / elapsed.as_secs_f64(), latencies)
}

/// Creates `n` keys under `prefix`, 64 at a time.
async fn load(store: &Arc<dyn Store>, prefix: &str, n: usize) {
    let value = Bytes::from(vec![b'l'; VALUE_BYTES]);
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let (s, value, prefix) = (Arc::clone(store), value.clone(), prefix.to_string());
            tokio::spawn(async move {
                for i in (t..n).step_by(64) {
                    s.create(&format!("{prefix}{i:06}"), value.clone())
                        .await
                        .expect("load");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("load task");
    }
}

/// One writer, one watcher: time from the write's acknowledgement (and from
/// its start) to the watcher receiving the event.
async fn watch_latency(store: &Arc<dyn Store>) -> (Percentiles, Percentiles) {
    let start = store.current_revision().await.expect("revision");
    let mut watch = store.watch("/bench/watch/", start).await.expect("watch");
    let receiver = tokio::spawn(async move {
        let mut seen = HashMap::new();
        while seen.len() < WATCH_WRITES {
            match watch.next().await {
                Some(Ok(WatchItem::Event(e))) => {
                    seen.insert(e.revision(), Instant::now());
                }
                Some(Ok(WatchItem::Progress(_))) => {}
                other => panic!("watch failed: {other:?}"),
            }
        }
        seen
    });
    let value = Bytes::from(vec![b'w'; VALUE_BYTES]);
    let mut sent = Vec::new();
    for i in 0..WATCH_WRITES {
        let t = Instant::now();
        let kv = store
            .create(&format!("/bench/watch/{i}"), value.clone())
            .await
            .expect("write");
        sent.push((kv.mod_revision, t, Instant::now()));
    }
    let seen = receiver.await.expect("watcher");
    let mut after_ack = Vec::new();
    let mut after_start = Vec::new();
    for (rev, started, acked) in sent {
        let got = seen[&rev];
        // The event may arrive before the writer sees its answer: count 0.
        after_ack.push(got.saturating_duration_since(acked));
        after_start.push(got.saturating_duration_since(started));
    }
    (percentiles(after_ack), percentiles(after_start))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn print_table(rows: &[Row]) {
    let mut out = String::new();
    out.push_str("| | ");
    out.push_str(&rows.iter().map(|r| r.name).collect::<Vec<_>>().join(" | "));
    out.push_str(" |\n|---|");
    out.push_str(&"---:|".repeat(rows.len()));
    out.push('\n');
    let mut line = |label: String, cells: Vec<String>| {
        out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    };
    for (i, w) in rows[0].writes.iter().enumerate() {
        let n = w.writers;
        line(
            format!("writes/s, {n} writer{}", if n == 1 { "" } else { "s" }),
            rows.iter()
                .map(|r| format!("{:.0}", r.writes[i].per_second))
                .collect(),
        );
        line(
            format!(
                "write latency p50 / p99, {n} writer{}",
                if n == 1 { "" } else { "s" }
            ),
            rows.iter()
                .map(|r| {
                    format!(
                        "{} / {}",
                        ms(r.writes[i].latency.p50),
                        ms(r.writes[i].latency.p99)
                    )
                })
                .collect(),
        );
    }
    for (i, (n, _)) in rows[0].lists.iter().enumerate() {
        line(
            format!("list {n} keys"),
            rows.iter().map(|r| ms(r.lists[i].1)).collect(),
        );
    }
    line(
        "watch event after write ack, p50 / p99".into(),
        rows.iter()
            .map(|r| {
                format!(
                    "{} / {}",
                    ms(r.watch_after_ack.p50),
                    ms(r.watch_after_ack.p99)
                )
            })
            .collect(),
    );
    line(
        "watch event after write start, p50 / p99".into(),
        rows.iter()
            .map(|r| {
                format!(
                    "{} / {}",
                    ms(r.watch_after_start.p50),
                    ms(r.watch_after_start.p99)
                )
            })
            .collect(),
    );
    println!("{out}");
}
