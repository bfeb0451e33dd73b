//! Watches served from the watch cache as a chunked stream of JSON lines.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::read::{list_prefix, parse_rv};
use super::{Api, Call};
use crate::cache::{Change, ChangeKind, Entry, Initial};
use crate::error::{ApiError, ApiResult};
use crate::selectors::Selectors;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

pub async fn watch(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let selectors = call.selectors()?;
    let prefix = list_prefix(call);
    let storage = call.resource.storage_resource();
    let send_initial = call.q("sendInitialEvents") == Some("true");
    let bookmarks = call.q("allowWatchBookmarks") == Some("true");
    let timeout = match call.q("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {t}")))?,
        ),
        // Kubernetes spreads watch lifetimes over 30–60 minutes so clients don't
        // all reconnect at once.
        None => Duration::from_secs(1800 + (uuid::Uuid::new_v4().as_u128() % 1800) as u64),
    };
    let after = match call.q("resourceVersion") {
        None => {
            api.consistent().await?;
            None
        }
        Some("0") => None,
        Some(rv) => {
            let rev = parse_rv(rv)?;
            api.cache.wait_for(rev, Duration::from_secs(3)).await?;
            if send_initial { None } else { Some(rev) }
        }
    };
    // A watch of one node's pods (a kubelet's) listens to that node's changes only.
    let node = selectors.exact_field("spec.nodeName");
    let start = match api.cache.watch(&storage, &prefix, after, node) {
        Ok(start) => start,
        // As Kubernetes does, a watch from a revision the cache no longer
        // holds (older than its history, as after a restart) is answered 200
        // with one ERROR event carrying the 410 Expired status: clients
        // (client-go's reflector, kube-rs's watcher) relist on that event,
        // while an HTTP 410 would only make some of them retry the same watch.
        Err(err @ ApiError::Gone(_)) => {
            let line = event_line(
                "ERROR",
                &serde_json::to_vec(&err.status()).unwrap_or_default(),
            );
            return Ok(stream_response(Body::from(line)));
        }
        Err(e) => return Err(e),
    };
    let table = call.accept().contains("as=Table");
    let ctx = StreamCtx {
        kind: call.resource.kind.to_string(),
        api_version: call.resource.api_version(),
        resource: call.resource.clone(),
        table,
        metadata_only: call.wants_metadata_only(),
        include: call.q("includeObject").map(str::to_string),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let prefix_owned = prefix.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut revision = start.revision;
        let mut live = start.live;
        match start.initial {
            Initial::Snapshot(items) => {
                for e in items {
                    if selectors.matches(&e) && send(&tx, &ctx, "ADDED", &e).await.is_err() {
                        return;
                    }
                }
                if send_initial && bookmarks {
                    let line = ctx.bookmark(revision, true);
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            Initial::Replay(changes) => {
                for c in changes {
                    if let Some((ty, e)) = filter(&c, &selectors)
                        && send(&tx, &ctx, ty, e).await.is_err()
                    {
                        return;
                    }
                    revision = c.revision;
                }
            }
        }
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(Ok(ctx.bookmark(revision, false))).await.is_err() {
                        return;
                    }
                }
                msg = live.recv() => match msg {
                    Ok(c) => {
                        if c.revision <= revision || !c.object.key.starts_with(&prefix_owned) {
                            continue;
                        }
                        revision = c.revision;
                        if let Some((ty, e)) = filter(&c, &selectors)
                            && send(&tx, &ctx, ty, e).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Too slow to keep up: end with 410 so the client re-lists.
                        let err = ApiError::Gone("too old resource version: the watch fell behind".into());
                        let line = event_line("ERROR", &serde_json::to_vec(&err.status()).unwrap_or_default());
                        let _ = tx.send(Ok(line)).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(stream_response(body))
}

/// A watch response: 200, JSON lines, not cached.
fn stream_response(body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

/// The event type a watcher with these selectors sees for a change, if any:
/// an object moving into the selection is ADDED, one moving out is DELETED.
fn filter<'a>(c: &'a Change, sel: &Selectors) -> Option<(&'static str, &'a Arc<Entry>)> {
    let now = sel.matches(&c.object);
    match c.kind {
        ChangeKind::Added => now.then_some(("ADDED", &c.object)),
        ChangeKind::Deleted => now.then_some(("DELETED", &c.object)),
        ChangeKind::Modified => {
            let before = c.prev.as_ref().is_some_and(|p| sel.matches(p));
            match (before, now) {
                (true, true) => Some(("MODIFIED", &c.object)),
                (false, true) => Some(("ADDED", &c.object)),
                (true, false) => Some(("DELETED", &c.object)),
                (false, false) => None,
            }
        }
    }
}

struct StreamCtx {
    kind: String,
    api_version: String,
    resource: apimachinery::resources::Resource,
    table: bool,
    /// Objects as `PartialObjectMetadata` (metadata informers).
    metadata_only: bool,
    include: Option<String>,
}

impl StreamCtx {
    fn bookmark(&self, rev: store::Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta});
        event_line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
    }
}

async fn send(
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ctx: &StreamCtx,
    ty: &str,
    e: &Entry,
) -> Result<(), ()> {
    let line = if ctx.table {
        let Ok(v) = e.value() else { return Ok(()) };
        let include = crate::table::IncludeObject::from_param(ctx.include.as_deref());
        let meta = json!({"resourceVersion": e.mod_revision.to_string()});
        let t = crate::table::to_table(
            &ctx.resource,
            &[&v],
            include,
            meta,
            std::time::SystemTime::now(),
        );
        event_line(ty, &serde_json::to_vec(&t).unwrap_or_default())
    } else if ctx.metadata_only {
        event_line(ty, &crate::stored::partial_metadata(&e.json))
    } else {
        event_line(ty, &e.json)
    };
    tx.send(Ok(line)).await.map_err(|_| ())
}

fn event_line(ty: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(ty.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}
