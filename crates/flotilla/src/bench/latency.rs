//! Phase 2: `clients` concurrent clients, each looping over create (a new pod),
//! get (a random stored pod) and update (get, change a label, PUT with the
//! resourceVersion it read) for a fixed time, timing every request.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::ApiClient;
use super::objects;
use super::stats::Samples;

/// Requests per client, whatever the duration: a runaway loop still ends.
const MAX_OPS_PER_CLIENT: usize = 1_000_000;
/// PUTs that hit a conflict are retried with a fresh read this many times.
const MAX_UPDATE_ATTEMPTS: usize = 5;
/// Failures kept per client for the report.
const KEPT_ERRORS: usize = 5;

#[derive(Default)]
pub struct Latency {
    pub create: Samples,
    pub get: Samples,
    pub update: Samples,
    /// 409 answers to a PUT with the resourceVersion just read.
    pub conflicts: usize,
    pub failed: usize,
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

/// A small deterministic generator, so runs pick the same objects.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

pub async fn run(
    api: &ApiClient,
    clients: usize,
    duration: Duration,
    stored: usize,
) -> anyhow::Result<Latency> {
    anyhow::ensure!(stored > 0, "no pods were loaded to update");
    eprintln!("bench: {clients} clients for {duration:?}");
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..clients {
        let api = api.clone();
        tasks.spawn(async move { client(&api, worker, deadline, stored).await });
    }
    let mut total = Latency::default();
    while let Some(done) = tasks.join_next().await {
        let l = done?;
        total.create.merge(l.create);
        total.get.merge(l.get);
        total.update.merge(l.update);
        total.conflicts += l.conflicts;
        total.failed += l.failed;
        total.errors.extend(l.errors);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn client(api: &ApiClient, worker: usize, deadline: Instant, stored: usize) -> Latency {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((worker as u64 + 1) * 0x1000_0001));
    let mut out = Latency::default();
    let fail = |out: &mut Latency, e: String| {
        out.failed += 1;
        if out.errors.len() < KEPT_ERRORS {
            out.errors.push(e);
        }
    };
    for n in 0..MAX_OPS_PER_CLIENT {
        if Instant::now() >= deadline {
            break;
        }
        match rng.below(3) {
            0 => {
                let ns = objects::namespace_name(rng.below(super::NAMESPACES));
                let name = format!("lat-{worker:02}-{n:07}");
                let body = objects::pod_bytes(&ns, &name, n);
                match api.post(&objects::pods_path(&ns), body).await {
                    Ok(r) if r.ok() => out.create.record(r.elapsed),
                    Ok(r) => fail(&mut out, format!("create: {}", r.error_text())),
                    Err(e) => fail(&mut out, format!("create: {e:#}")),
                }
            }
            1 => {
                let (ns, name) = objects::loaded_pod(rng.below(stored));
                match api.get(&objects::pod_path(&ns, &name)).await {
                    Ok(r) if r.ok() => out.get.record(r.elapsed),
                    Ok(r) => fail(&mut out, format!("get: {}", r.error_text())),
                    Err(e) => fail(&mut out, format!("get: {e:#}")),
                }
            }
            _ => {
                let (ns, name) = objects::loaded_pod(rng.below(stored));
                if let Err(e) = update(api, &ns, &name, n, &mut out).await {
                    fail(&mut out, format!("update: {e:#}"));
                }
            }
        }
    }
    out
}

/// Read-modify-write as client-go's `Update` does: a 409 means someone else won,
/// so read again and retry.
async fn update(
    api: &ApiClient,
    ns: &str,
    name: &str,
    n: usize,
    out: &mut Latency,
) -> anyhow::Result<()> {
    let path = objects::pod_path(ns, name);
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let r = api.get(&path).await?;
        anyhow::ensure!(r.ok(), "get before update: {}", r.error_text());
        out.get.record(r.elapsed);
        let mut pod: Value = serde_json::from_slice(&r.body)?;
        let labels = pod
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow::anyhow!("pod {ns}/{name} has no labels"))?;
        labels.insert("bench-update".into(), Value::String(n.to_string()));
        let r = api.put(&path, serde_json::to_vec(&pod)?).await?;
        if r.status == 409 {
            out.conflicts += 1;
            continue;
        }
        anyhow::ensure!(r.ok(), "{}", r.error_text());
        out.update.record(r.elapsed);
        return Ok(());
    }
    anyhow::bail!("{ns}/{name}: still conflicting after {MAX_UPDATE_ATTEMPTS} attempts")
}
