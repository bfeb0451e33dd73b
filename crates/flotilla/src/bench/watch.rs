//! Phase 4: watch fan-out. `watchers` watches on pods — a quarter cluster-wide,
//! the rest spread over the namespaces — all from the current resourceVersion;
//! then `events` new pods written at `rate` per second. Every watcher must see
//! exactly the pods in its scope, once; the delay from each write's
//! acknowledgement to its arrival at each watcher is recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::NAMESPACES;
use super::client::ApiClient;
use super::objects;
use super::server::Memory;
use super::stats::Samples;

/// Watches being opened at once: enough to be quick, few enough that TLS
/// handshakes do not time out on two cores.
const OPENING: usize = 50;
const OPEN_LIMIT: Duration = Duration::from_secs(180);
/// How long after the last write a watcher waits for events still missing.
const DRAIN: Duration = Duration::from_secs(30);
/// The name prefix of the pods this phase writes; watch lines are matched on it.
const MARKER: &[u8] = b"\"name\":\"fan-";

pub struct Options {
    pub watchers: usize,
    pub events: usize,
    pub rate: u32,
}

#[derive(Default)]
pub struct Fanout {
    pub watchers: usize,
    pub cluster_wide: usize,
    pub open_time: Duration,
    pub memory_open: Memory,
    pub written: usize,
    pub write_time: Duration,
    pub write_latency: Samples,
    pub expected: usize,
    pub delivered: usize,
    pub missing: usize,
    pub duplicates: usize,
    /// Deliveries that arrived before the writer saw its acknowledgement; their
    /// latency counts as zero.
    pub before_ack: usize,
    pub latency: Samples,
    pub errors: Vec<String>,
}

/// What one watcher saw: (event index, arrival since the phase began).
struct Seen {
    namespace: Option<usize>,
    events: Vec<(usize, Duration)>,
    error: Option<String>,
}

fn in_scope(namespace: Option<usize>, event: usize) -> bool {
    namespace.is_none_or(|ns| event % NAMESPACES == ns)
}

pub async fn run(
    api: &ApiClient,
    opts: &Options,
    memory: impl Fn() -> Memory,
) -> anyhow::Result<Fanout> {
    let r = api.get("/api/v1/pods?limit=1").await?;
    anyhow::ensure!(r.ok(), "listing for a resourceVersion: {}", r.error_text());
    let list: Value = serde_json::from_slice(&r.body)?;
    let rv = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("the pod list has no resourceVersion"))?
        .to_string();

    eprintln!(
        "bench: opening {} watches from resourceVersion {rv}",
        opts.watchers
    );
    let epoch = Instant::now();
    let rate = opts.rate.max(1);
    let write_time = Duration::from_secs_f64(opts.events as f64 / f64::from(rate));
    let deadline = epoch + OPEN_LIMIT + write_time + DRAIN;
    let opening = Arc::new(Semaphore::new(OPENING));
    let (opened_tx, mut opened_rx) = mpsc::channel::<Result<(), String>>(opts.watchers.max(1));
    let mut watchers = JoinSet::new();
    let mut out = Fanout {
        watchers: opts.watchers,
        ..Fanout::default()
    };
    let mut namespaced = 0;
    for j in 0..opts.watchers {
        let namespace = if j % 4 == 0 {
            out.cluster_wide += 1;
            None
        } else {
            namespaced += 1;
            Some(namespaced % NAMESPACES)
        };
        let want = (0..opts.events).filter(|e| in_scope(namespace, *e)).count();
        let ctx = WatchCtx {
            api: api.clone(),
            rv: rv.clone(),
            namespace,
            want,
            epoch,
            deadline,
            opening: opening.clone(),
            opened: opened_tx.clone(),
        };
        watchers.spawn(watch_one(ctx));
    }
    drop(opened_tx);
    let mut open = 0;
    while open < opts.watchers {
        match tokio::time::timeout_at((epoch + OPEN_LIMIT).into(), opened_rx.recv()).await {
            Ok(Some(Ok(()))) => open += 1,
            Ok(Some(Err(e))) => anyhow::bail!("opening a watch: {e}"),
            Ok(None) => anyhow::bail!("watchers ended before all were open"),
            Err(_) => anyhow::bail!("only {open} of {} watches open", opts.watchers),
        }
    }
    out.open_time = epoch.elapsed();
    out.memory_open = memory();
    eprintln!(
        "bench: {open} watches open in {:.1} s; writing {} pods at {rate}/s",
        out.open_time.as_secs_f64(),
        opts.events
    );

    let acks = write(api, opts.events, rate, epoch, &mut out).await;
    out.written = acks.iter().filter(|a| a.is_some()).count();

    while let Some(done) = watchers.join_next().await {
        tally(&mut out, done?, &acks);
    }
    Ok(out)
}

/// Creates the pods at a steady rate; returns each one's acknowledgement time.
async fn write(
    api: &ApiClient,
    events: usize,
    rate: u32,
    epoch: Instant,
    out: &mut Fanout,
) -> Vec<Option<Duration>> {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut writes = JoinSet::new();
    for k in 0..events {
        ticker.tick().await;
        let api = api.clone();
        writes.spawn(async move {
            let ns = objects::namespace_name(k);
            let name = format!("fan-{k:06}");
            let r = api
                .post(&objects::pods_path(&ns), objects::pod_bytes(&ns, &name, k))
                .await;
            (k, r, epoch.elapsed())
        });
    }
    let mut acks = vec![None; events];
    while let Some(done) = writes.join_next().await {
        match done {
            Ok((k, Ok(r), at)) if r.ok() => {
                out.write_latency.record(r.elapsed);
                acks[k] = Some(at);
            }
            Ok((k, Ok(r), _)) => out.errors.push(format!("write {k}: {}", r.error_text())),
            Ok((k, Err(e), _)) => out.errors.push(format!("write {k}: {e:#}")),
            Err(e) => out.errors.push(format!("writer task: {e}")),
        }
    }
    out.write_time = started.elapsed();
    acks
}

fn tally(out: &mut Fanout, seen: Seen, acks: &[Option<Duration>]) {
    if let Some(e) = seen.error {
        out.errors.push(e);
    }
    let mut got = vec![false; acks.len()];
    for (k, at) in seen.events {
        let Some(slot) = got.get_mut(k) else { continue };
        if std::mem::replace(slot, true) {
            out.duplicates += 1;
            continue;
        }
        out.delivered += 1;
        match acks[k] {
            Some(ack) if at >= ack => out.latency.record(at - ack),
            Some(_) => {
                out.before_ack += 1;
                out.latency.record(Duration::ZERO);
            }
            None => {}
        }
    }
    for (k, ack) in acks.iter().enumerate() {
        if ack.is_some() && in_scope(seen.namespace, k) {
            out.expected += 1;
            if !got[k] {
                out.missing += 1;
            }
        }
    }
}

struct WatchCtx {
    api: ApiClient,
    rv: String,
    namespace: Option<usize>,
    want: usize,
    epoch: Instant,
    deadline: Instant,
    opening: Arc<Semaphore>,
    opened: mpsc::Sender<Result<(), String>>,
}

async fn watch_one(ctx: WatchCtx) -> Seen {
    let mut seen = Seen {
        namespace: ctx.namespace,
        events: Vec::with_capacity(ctx.want),
        error: None,
    };
    let base = match ctx.namespace {
        None => "/api/v1/pods".to_string(),
        Some(ns) => objects::pods_path(&objects::namespace_name(ns)),
    };
    let path = format!(
        "{base}?watch=1&resourceVersion={}&timeoutSeconds=900",
        ctx.rv
    );
    let permit = ctx.opening.acquire().await;
    let resp = match ctx.api.send(Method::GET, &path, None).await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let e = format!("watch {base}: HTTP {}", r.status());
            let _ = ctx.opened.send(Err(e.clone())).await;
            seen.error = Some(e);
            return seen;
        }
        Err(e) => {
            let e = format!("watch {base}: {e:#}");
            let _ = ctx.opened.send(Err(e.clone())).await;
            seen.error = Some(e);
            return seen;
        }
    };
    drop(permit);
    // The server subscribes before it answers, so the headers mean "watching".
    let _ = ctx.opened.send(Ok(())).await;

    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while seen.events.len() < ctx.want {
        let frame = match tokio::time::timeout_at(ctx.deadline.into(), body.frame()).await {
            Err(_) => break,
            // An ERROR line before the end says more than the end itself.
            Ok(None) => {
                seen.error
                    .get_or_insert_with(|| format!("watch {base} ended by the server"));
                break;
            }
            Ok(Some(Err(e))) => {
                seen.error
                    .get_or_insert_with(|| format!("watch {base}: {e}"));
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let at = ctx.epoch.elapsed();
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            if line.starts_with(b"{\"type\":\"ERROR\"") {
                seen.error = Some(format!(
                    "watch {base}: {}",
                    String::from_utf8_lossy(&line[..line.len().min(300)])
                ));
            } else if let Some(k) = event_index(line) {
                seen.events.push((k, at));
            }
        }
        buf.drain(..start);
    }
    seen
}

/// `123` from a watch line about pod `fan-000123`.
fn event_index(line: &[u8]) -> Option<usize> {
    let at = line.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let digits = &line[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_name_their_pod() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"fan-000042","namespace":"bench-42"}}}"#;
        assert_eq!(event_index(line), Some(42));
        assert_eq!(event_index(br#"{"metadata":{"name":"pod-000001"}}"#), None);
    }

    #[test]
    fn scopes_match_namespaces() {
        assert!(in_scope(None, 7));
        assert!(in_scope(Some(7), 107));
        assert!(!in_scope(Some(7), 8));
    }
}
