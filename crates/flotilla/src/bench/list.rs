//! Phase 3: listing every pod in one request, the same in pages of 500 as
//! informers and `kubectl get --chunk-size` do, and one namespace.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::client::ApiClient;
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

pub async fn run(api: &ApiClient) -> anyhow::Result<Vec<ListResult>> {
    eprintln!("bench: listing");
    // The cache-only list goes first: a first list of this size also pays for the
    // server growing its heap, and the consistent list should not be blamed for it.
    Ok(vec![
        whole(
            api,
            "all pods, resourceVersion=0",
            "/api/v1/pods?resourceVersion=0",
        )
        .await?,
        whole(api, "all pods, one request", "/api/v1/pods").await?,
        paged(api).await?,
        whole(
            api,
            "one namespace",
            &objects::pods_path(&objects::namespace_name(0)),
        )
        .await?,
    ])
}

async fn whole(api: &ApiClient, what: &'static str, path: &str) -> anyhow::Result<ListResult> {
    let r = api.get(path).await?;
    anyhow::ensure!(r.ok(), "GET {path}: {}", r.error_text());
    let page: Page = serde_json::from_slice(&r.body)?;
    Ok(ListResult {
        what,
        items: page.items.len(),
        bytes: r.body.len(),
        requests: 1,
        elapsed: r.elapsed,
    })
}

async fn paged(api: &ApiClient) -> anyhow::Result<ListResult> {
    let started = Instant::now();
    let mut out = ListResult {
        what: "all pods, limit=500 pages",
        items: 0,
        bytes: 0,
        requests: 0,
        elapsed: Duration::ZERO,
    };
    let mut cont: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let path = match &cont {
            None => format!("/api/v1/pods?limit={PAGE}"),
            Some(c) => format!("/api/v1/pods?limit={PAGE}&continue={c}"),
        };
        let r = api.get(&path).await?;
        anyhow::ensure!(r.ok(), "GET {path}: {}", r.error_text());
        let page: Page = serde_json::from_slice(&r.body)?;
        out.items += page.items.len();
        out.bytes += r.body.len();
        out.requests += 1;
        cont = page.metadata.cont.filter(|c| !c.is_empty());
        if cont.is_none() {
            out.elapsed = started.elapsed();
            return Ok(out);
        }
        anyhow::ensure!(
            started.elapsed() < LIST_LIMIT,
            "paginated list not done after {LIST_LIMIT:?}"
        );
    }
    anyhow::bail!("paginated list not done after {MAX_PAGES} pages")
}
