//! Phase 1: namespaces, then `pods` pods created with a fixed number of requests
//! in flight, as a controller burst or a restore would.

use std::time::{Duration, Instant};

use futures::StreamExt;

use super::NAMESPACES;
use super::client::ApiClient;
use super::objects;
use super::stats::Samples;

/// The load stops here even if not every pod was created.
const LOAD_LIMIT: Duration = Duration::from_secs(3600);
/// More failures than this means the server is broken, not slow.
const MAX_ERRORS: usize = 100;

pub struct Loaded {
    pub pods: usize,
    pub elapsed: Duration,
    pub latency: Samples,
    pub request_bytes: usize,
}

pub async fn run(api: &ApiClient, pods: usize, in_flight: usize) -> anyhow::Result<Loaded> {
    for i in 0..NAMESPACES {
        let r = api
            .post("/api/v1/namespaces", objects::namespace(i))
            .await?;
        anyhow::ensure!(
            r.ok(),
            "creating namespace {}: {}",
            objects::namespace_name(i),
            r.error_text()
        );
    }
    eprintln!("bench: loading {pods} pods, {in_flight} requests in flight");
    let started = Instant::now();
    let deadline = started + LOAD_LIMIT;
    let request_bytes = {
        let (ns, name) = objects::loaded_pod(0);
        objects::pod_bytes(&ns, &name, 0).len()
    };
    let mut latency = Samples::default();
    let mut errors = Vec::new();
    let mut created = 0;
    let mut results = futures::stream::iter(0..pods)
        .map(|i| async move {
            let (ns, name) = objects::loaded_pod(i);
            api.post(&objects::pods_path(&ns), objects::pod_bytes(&ns, &name, i))
                .await
        })
        .buffer_unordered(in_flight);
    let step = (pods / 10).max(1);
    while let Some(r) = results.next().await {
        match r {
            Ok(r) if r.ok() => {
                created += 1;
                latency.record(r.elapsed);
                if created % step == 0 {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "bench: {created} pods in {secs:.1} s ({:.0}/s)",
                        created as f64 / secs
                    );
                }
            }
            Ok(r) => errors.push(r.error_text()),
            Err(e) => errors.push(format!("{e:#}")),
        }
        anyhow::ensure!(
            errors.len() <= MAX_ERRORS,
            "{} pod creates failed; first: {}",
            errors.len(),
            errors[0]
        );
        if Instant::now() > deadline {
            eprintln!("bench: load stopped at the {LOAD_LIMIT:?} limit");
            break;
        }
    }
    if let Some(first) = errors.first() {
        eprintln!("bench: {} pod creates failed; first: {first}", errors.len());
    }
    Ok(Loaded {
        pods: created,
        elapsed: started.elapsed(),
        latency,
        request_bytes,
    })
}
