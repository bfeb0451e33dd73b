//! get and list, served from the watch cache.

use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store::{ListOptions, Revision};

use super::{Call, json_bytes};
use crate::cache::{Entry, entry_from};
use crate::error::{ApiError, ApiResult};
use crate::rest::Api;
use crate::selectors::Selectors;

pub async fn get(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    if call.q("resourceVersion") != Some("0") {
        api.consistent().await?;
    }
    let key = call.resource.key(call.namespace(), &call.info.name);
    let entry = api
        .cache
        .get(&key)
        .ok_or_else(|| call.not_found(&call.info.name))?;
    if let Some(table) = super::tables::table_response(call, std::slice::from_ref(&entry), None)? {
        return Ok(table);
    }
    if call.wants_metadata_only() {
        return Ok(json_bytes(
            StatusCode::OK,
            crate::stored::partial_metadata(&entry.json),
        ));
    }
    Ok(json_bytes(StatusCode::OK, entry.json.clone()))
}

/// What a continue token carries: the revision of the first page and the last key sent.
#[derive(Serialize, Deserialize)]
struct Continue {
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, start: &str) -> String {
    let json = serde_json::to_vec(&Continue {
        rv,
        start: start.to_string(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_continue(token: &str) -> ApiResult<Continue> {
    let bad = || ApiError::BadRequest("continue key is not valid: malformed token".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    serde_json::from_slice(&raw).map_err(|_| bad())
}

/// The key prefix a list covers: one namespace or all of them.
pub fn list_prefix(call: &Call<'_>) -> String {
    match call.namespace() {
        Some(ns) => call.resource.namespace_prefix(ns),
        None => call.resource.key_prefix(),
    }
}

pub async fn list(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let selectors = call.selectors()?;
    let limit: usize = match call.q("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid limit: {l}")))?,
        None => 0,
    };
    let prefix = list_prefix(call);
    let (items, revision, next) = if let Some(token) = call.q("continue") {
        let cont = decode_continue(token)?;
        if !cont.start.starts_with(&prefix) {
            return Err(ApiError::BadRequest(
                "continue key is not valid: it belongs to another list".into(),
            ));
        }
        let storage = call.resource.storage_resource();
        let from_cache = api.cache.list_unchanged_since(
            &storage,
            cont.rv,
            &prefix,
            Some(&cont.start),
            limit,
            &|e| selectors.matches(e),
        );
        match from_cache {
            Some((snap, more)) => {
                let next = if more {
                    snap.items.last().map(|e| e.key.clone())
                } else {
                    None
                };
                (snap.items, snap.revision, next)
            }
            None => list_from_store(api, &prefix, cont, limit, &selectors).await?,
        }
    } else {
        let rv = call.q("resourceVersion");
        match (rv, call.q("resourceVersionMatch")) {
            (Some(rv), Some("Exact")) => {
                let rev: Revision = parse_rv(rv)?;
                let cont = Continue {
                    rv: rev,
                    start: String::new(),
                };
                list_from_store(api, &prefix, cont, limit, &selectors).await?
            }
            (Some("0"), _) => list_from_cache(api, &prefix, limit, &selectors),
            (Some(rv), _) => {
                let rev = parse_rv(rv)?;
                api.cache
                    .wait_for(rev, std::time::Duration::from_secs(3))
                    .await?;
                list_from_cache(api, &prefix, limit, &selectors)
            }
            (None, _) => {
                api.consistent().await?;
                list_from_cache(api, &prefix, limit, &selectors)
            }
        }
    };
    let continue_token = next.map(|last| encode_continue(revision, &last));
    if let Some(table) =
        super::tables::table_response(call, &items, Some((revision, continue_token.as_deref())))?
    {
        return Ok(table);
    }
    Ok(json_bytes(
        StatusCode::OK,
        list_body(call, &items, revision, continue_token.as_deref()),
    ))
}

pub fn parse_rv(rv: &str) -> ApiResult<Revision> {
    rv.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid resource version {rv:?}: must be an integer"
        ))
    })
}

type Page = (Vec<Arc<Entry>>, Revision, Option<String>);

fn list_from_cache(api: &Api, prefix: &str, limit: usize, sel: &Selectors) -> Page {
    let (snap, more) = api.cache.list(prefix, None, limit, &|e| sel.matches(e));
    let next = if more {
        snap.items.last().map(|e| e.key.clone())
    } else {
        None
    };
    (snap.items, snap.revision, next)
}

/// Later pages come from the store at the first page's revision, so a paginated
/// list is one consistent snapshot even while objects change.
async fn list_from_store(
    api: &Api,
    prefix: &str,
    cont: Continue,
    limit: usize,
    sel: &Selectors,
) -> ApiResult<Page> {
    let mut items = Vec::new();
    let mut start = if cont.start.is_empty() {
        None
    } else {
        Some(cont.start)
    };
    let batch = if limit == 0 { 1000 } else { limit.max(100) };
    loop {
        let page = api
            .store
            .list(prefix, ListOptions { revision: Some(cont.rv), limit: Some(batch), start_after: start.clone() })
            .await
            .map_err(|e| match e {
                store::StoreError::Compacted { .. } => ApiError::Gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                ),
                other => other.into(),
            })?;
        for kv in &page.items {
            start = Some(kv.key.clone());
            let Ok(mut value) = serde_json::from_slice(&kv.value) else {
                continue;
            };
            let entry = entry_from(kv.key.clone(), &mut value, kv.mod_revision);
            if sel.matches(&entry) {
                if limit > 0 && items.len() == limit {
                    let last = items.last().map(|e: &Arc<Entry>| e.key.clone());
                    return Ok((items, cont.rv, last));
                }
                items.push(Arc::new(entry));
            }
        }
        if !page.more {
            return Ok((items, cont.rv, None));
        }
    }
}

/// `{"kind":"PodList",...,"items":[...]}` assembled from the cached bytes.
pub fn list_body(
    call: &Call<'_>,
    items: &[Arc<Entry>],
    revision: Revision,
    cont: Option<&str>,
) -> Body {
    let metadata_only = call.wants_metadata_only();
    let (kind, api_version) = if metadata_only {
        (
            "PartialObjectMetadata".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (call.resource.kind.to_string(), call.resource.api_version())
    };
    let mut head = Vec::with_capacity(200);
    head.extend_from_slice(b"{\"kind\":\"");
    head.extend_from_slice(kind.as_bytes());
    head.extend_from_slice(b"List\",\"apiVersion\":\"");
    head.extend_from_slice(api_version.as_bytes());
    head.extend_from_slice(b"\",\"metadata\":{\"resourceVersion\":\"");
    head.extend_from_slice(revision.to_string().as_bytes());
    head.push(b'"');
    if let Some(c) = cont {
        head.extend_from_slice(b",\"continue\":\"");
        head.extend_from_slice(c.as_bytes());
        head.push(b'"');
    }
    head.extend_from_slice(b"},\"items\":[");
    let size: usize = items.iter().map(|e| e.json.len() + 1).sum();
    let mut chunks = ListChunks {
        head: Some(head),
        items: items.to_vec(),
        next: 0,
        chunk: LIST_CHUNK,
        metadata_only,
    };
    if size <= LIST_CHUNK {
        chunks.chunk = usize::MAX;
        return Body::from(chunks.next().unwrap_or_default());
    }
    // A large list is sent as it is assembled, a chunk at a time, so the
    // server never holds a second copy of every object (150,000 pods are
    // ~500 MiB of JSON).
    Body::from_stream(futures::stream::iter(
        chunks.map(Ok::<_, std::convert::Infallible>),
    ))
}

/// Bytes per chunk of a streamed list body.
const LIST_CHUNK: usize = 256 * 1024;

/// The list's JSON in chunks of about `LIST_CHUNK` bytes: the head, the items
/// separated by commas, the closing brackets.
struct ListChunks {
    head: Option<Vec<u8>>,
    items: Vec<Arc<Entry>>,
    next: usize,
    /// Bytes after which a chunk ends (at an item boundary).
    chunk: usize,
    /// Items as `PartialObjectMetadata` instead of whole objects.
    metadata_only: bool,
}

impl Iterator for ListChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut out = match self.head.take() {
            Some(head) => head,
            None if self.next > self.items.len() => return None,
            None => Vec::with_capacity(LIST_CHUNK.min(self.chunk) + 4096),
        };
        while self.next < self.items.len() && out.len() < self.chunk {
            if self.next > 0 {
                out.push(b',');
            }
            let json = &self.items[self.next].json;
            if self.metadata_only {
                out.extend_from_slice(&crate::stored::partial_metadata(json));
            } else {
                out.extend_from_slice(json);
            }
            self.next += 1;
        }
        if self.next == self.items.len() && out.len() < self.chunk {
            out.extend_from_slice(b"]}");
            self.next += 1;
        }
        Some(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Arc<Entry> {
        Arc::new(Entry {
            key: String::new(),
            json: Bytes::from(json.to_string()),
            mod_revision: 1,
            labels: Default::default(),
            fields: Vec::new(),
        })
    }

    /// Whatever the chunk size, the chunks join into one valid list.
    #[test]
    fn list_chunks_join_into_the_whole_list() {
        for n in [0, 1, 2, 7, 50] {
            let items: Vec<Arc<Entry>> = (0..n).map(|i| entry(&format!("{{\"i\":{i}}}"))).collect();
            for chunk in [1, 8, 30, 1000, usize::MAX] {
                let chunks: Vec<Bytes> = ListChunks {
                    head: Some(b"{\"items\":[".to_vec()),
                    items: items.clone(),
                    next: 0,
                    chunk,
                    metadata_only: false,
                }
                .collect();
                let joined: Vec<u8> = chunks.iter().flat_map(|b| b.to_vec()).collect();
                let v: serde_json::Value = serde_json::from_slice(&joined)
                    .unwrap_or_else(|e| panic!("n={n} chunk={chunk}: {e}"));
                let got: Vec<i64> = v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["i"].as_i64().unwrap())
                    .collect();
                assert_eq!(got, (0..n).collect::<Vec<i64>>(), "chunk={chunk}");
                if chunk == usize::MAX {
                    assert_eq!(chunks.len(), 1, "small lists are one chunk");
                }
            }
        }
    }
}
