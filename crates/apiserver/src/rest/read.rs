//! get and list, served from the watch cache.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
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
    let selectors = Selectors::from_call(call)?;
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
) -> Vec<u8> {
    let size: usize = items.iter().map(|e| e.json.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 200);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(call.resource.kind.as_bytes());
    out.extend_from_slice(b"List\",\"apiVersion\":\"");
    out.extend_from_slice(call.resource.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if let Some(c) = cont {
        out.extend_from_slice(b",\"continue\":\"");
        out.extend_from_slice(c.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"},\"items\":[");
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&e.json);
    }
    out.extend_from_slice(b"]}");
    out
}
