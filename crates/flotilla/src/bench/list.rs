//! Phase 3: listing every pod in one request, the same in pages of 500 as
//! informers and `kubectl get --chunk-size` do, and one namespace.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::IgnoredAny;

use http::Method;

use super::Cpu;
use super::client::{ApiClient, read_body};
use super::objects;

const PAGE: usize = 500;
/// A paginated list stops after this many pages even if the server keeps
/// returning continue tokens.
const MAX_PAGES: usize = 10_000;
const LIST_LIMIT: Duration = Duration::from_secs(600);

pub struct ListResult {
    pub what: &'static str,
    pub items: usize,
    pub bytes: usize,
    pub requests: usize,
    pub elapsed: Duration,
    /// Until the response headers of the (first) request arrived.
    pub first_byte: Duration,
    /// CPU the server and this client spent on this list alone.
    pub cpu: Cpu,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    cont: Option<String>,
}

/// `cpu` reads the server's and this process's CPU seconds so far.
pub async fn run(api: &ApiClient, cpu: &dyn Fn() -> Cpu) -> anyhow::Result<Vec<ListResult>> {
    eprintln!("bench: listing");
    // The cache-only list goes first: a first list of this size also pays for
    // both processes growing their heaps, and the consistent list should not be
    // blamed for it.
    let mut out = Vec::new();
    for (what, path) in [
        (
            "all pods, resourceVersion=0",
            "/api/v1/pods?resourceVersion=0".to_string(),
        ),
        ("all pods, one request", "/api/v1/pods".to_string()),
    ] {
        out.push(whole(api, what, &path, cpu).await?);
    }
    out.push(paged(api, cpu).await?);
    let one = objects::pods_path(&objects::namespace_name(0));
    out.push(whole(api, "one namespace", &one, cpu).await?);
    Ok(out)
}

async fn whole(
    api: &ApiClient,
    what: &'static str,
    path: &str,
    cpu: &dyn Fn() -> Cpu,
) -> anyhow::Result<ListResult> {
    let cpu0 = cpu();
    let started = Instant::now();
    let resp = api.send(Method::GET, path, None).await?;
    let first_byte = started.elapsed();
    let status = resp.status();
    let body = read_body(resp, path).await?;
    let elapsed = started.elapsed();
    let used = cpu().minus(cpu0);
    anyhow::ensure!(
        status.is_success(),
        "GET {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let page: Page = serde_json::from_slice(&body)?;
    Ok(ListResult {
        what,
        items: page.items.len(),
        bytes: body.len(),
        requests: 1,
        elapsed,
        first_byte,
        cpu: used,
    })
}

async fn paged(api: &ApiClient, cpu: &dyn Fn() -> Cpu) -> anyhow::Result<ListResult> {
    let cpu0 = cpu();
    let started = Instant::now();
    let mut out = ListResult {
        what: "all pods, limit=500 pages",
        items: 0,
        bytes: 0,
        requests: 0,
        elapsed: Duration::ZERO,
        first_byte: Duration::ZERO,
        cpu: Cpu::default(),
    };
    let mut cont: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let path = match &cont {
            None => format!("/api/v1/pods?limit={PAGE}"),
            Some(c) => format!("/api/v1/pods?limit={PAGE}&continue={c}"),
        };
        let r = api.get(&path).await?;
        if out.requests == 0 {
            out.first_byte = r.elapsed;
        }
        anyhow::ensure!(r.ok(), "GET {path}: {}", r.error_text());
        let page: Page = serde_json::from_slice(&r.body)?;
        out.items += page.items.len();
        out.bytes += r.body.len();
        out.requests += 1;
        cont = page.metadata.cont.filter(|c| !c.is_empty());
        if cont.is_none() {
            out.elapsed = started.elapsed();
            out.cpu = cpu().minus(cpu0);
            return Ok(out);
        }
        anyhow::ensure!(
            started.elapsed() < LIST_LIMIT,
            "paginated list not done after {LIST_LIMIT:?}"
        );
    }
    anyhow::bail!("paginated list not done after {MAX_PAGES} pages")
}
