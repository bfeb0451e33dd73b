//! The etcd v3 backend.
//!
//! Every write is one transaction guarded by a compare: create requires
//! `create_revision == 0`, update `mod_revision == expected`, a guarded delete
//! the same. Calls go to any of the configured members and are retried for a
//! bounded time while the cluster is unavailable (a member down, a leader
//! election). When a write may have been applied by an attempt whose answer
//! was lost, a refusal of the retry is checked against the key's state so the
//! caller does not see its own write as a conflict.

mod call;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, TxnResponse,
};

use self::call::{Caller, Failed, Failure};
use crate::{
    KeyValue, ListOptions, ListResult, MAX_VALUE_BYTES, Result, Revision, Store, StoreError,
    WatchStream, check_value_size,
};

/// Settings of [`EtcdStore`]. Build with `..Default::default()`.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Longest wait for one attempt of a request.
    pub request_timeout: Duration,
    /// How long a request (or a broken watch) is retried while the cluster
    /// is unavailable before the error is returned.
    pub retry_for: Duration,
    /// Longest wait for a TCP connection to a member.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval and timeout, to notice dead members.
    pub keep_alive: Duration,
    pub keep_alive_timeout: Duration,
    /// How often an idle watch asks etcd for progress, reported as
    /// [`crate::WatchItem::Progress`].
    pub progress_interval: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            request_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(2),
            keep_alive: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// A store backed by an etcd v3 cluster.
///
/// Values up to [`MAX_VALUE_BYTES`] need etcd's `--max-request-bytes` above
/// its 1.5 MiB default (2 MiB is enough); otherwise etcd refuses the largest
/// ones and they fail with [`StoreError::ValueTooLarge`].
pub struct EtcdStore {
    caller: Arc<Caller>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.caller.label())
            .finish()
    }
}

impl EtcdStore {
    /// Sets up a client of the cluster whose members are `endpoints`
    /// (`http://host:port`; a bare `host:port` gets `http://`). Nothing is
    /// sent yet: an unreachable cluster is not an error here; calls retry
    /// and [`Store::ready`] reports it until it answers. Only malformed
    /// endpoints fail.
    pub async fn connect(endpoints: Vec<String>, opts: EtcdOptions) -> Result<EtcdStore> {
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| {
                if e.contains("://") {
                    e
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::Internal("no etcd endpoints given".into()));
        }
        let caller = Arc::new(Caller::new(endpoints, opts));
        if let Err(f) = caller.clients().await {
            if let Failure::Fatal = f.failure {
                return Err(StoreError::Internal(format!(
                    "{}: {}",
                    caller.label(),
                    f.message
                )));
            }
            tracing::warn!(error = %f.message, "{} not reachable yet", caller.label());
        }
        Ok(EtcdStore { caller })
    }

    /// Turns a failed call into a store error; `requested` is the revision
    /// the call asked for, if any.
    async fn error(&self, f: Failed, requested: Option<Revision>, size: usize) -> StoreError {
        let requested = requested.unwrap_or(0);
        match f.failure {
            Failure::Retry { .. } => self.caller.unavailable(f.message),
            Failure::Compacted => {
                let compacted = watch::compacted_revision(&self.caller).await;
                StoreError::Compacted {
                    requested,
                    compacted: compacted.unwrap_or(requested + 1),
                }
            }
            Failure::FutureRevision => {
                let current = self.current_revision().await.unwrap_or(requested - 1);
                StoreError::FutureRevision { requested, current }
            }
            Failure::TooLarge => StoreError::ValueTooLarge {
                size,
                limit: MAX_VALUE_BYTES,
            },
            Failure::Fatal => {
                StoreError::Internal(format!("{}: {}", self.caller.label(), f.message))
            }
        }
    }

    /// Runs a transaction `if compares then on_success else get(key)`.
    async fn txn(
        &self,
        key: &str,
        compares: Vec<Compare>,
        on_success: TxnOp,
        size: usize,
    ) -> Result<(TxnResponse, bool)> {
        let result = self
            .caller
            .call(|mut c| {
                let txn = Txn::new()
                    .when(compares.clone())
                    .and_then([on_success.clone()])
                    .or_else([TxnOp::get(key, None)]);
                async move { c.kv.txn(txn).await }
            })
            .await;
        match result {
            Ok((resp, maybe_applied)) => {
                self.caller.saw(header_revision(resp.header()));
                Ok((resp, maybe_applied))
            }
            Err(f) => Err(self.error(f, None, size).await),
        }
    }

    /// For a delete whose answer was lost and whose retry found the key gone:
    /// finds the revision at which the key disappeared after `since`, when it
    /// still existed, and its value just before. Binary search over
    /// historical reads; `None` when that cannot be established.
    async fn find_delete(&self, key: &str, since: Revision) -> Option<(KeyValue, Revision)> {
        let exists = |rev: Revision| async move {
            self.get(key, Some(rev)).await.ok().map(|kv| kv.is_some())
        };
        let now = self.current_revision().await.ok()?;
        if since <= 0 || !exists(since).await? || exists(now).await? {
            return None;
        }
        let (mut lo, mut hi) = (since, now);
        // Invariant: the key exists at lo and not at hi.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if exists(mid).await? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let prev = self.get(key, Some(lo)).await.ok()??;
        Some((prev, hi))
    }
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map_or(0, |h| h.revision())
}

/// Converts an etcd key-value.
pub(crate) fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|_| StoreError::Internal("etcd holds a key that is not UTF-8".into()))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// The key the failure branch of [`EtcdStore::txn`] read, if present.
fn txn_current(resp: &TxnResponse) -> Result<Option<KeyValue>> {
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return get.kvs().first().map(convert).transpose();
        }
    }
    Ok(None)
}

/// The key range of `prefix` in etcd's terms (`\0` means "no bound").
pub(crate) fn range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        return (vec![0], vec![0]);
    }
    let end = crate::prefix_end(prefix.as_bytes()).unwrap_or_else(|| vec![0]);
    (prefix.as_bytes().to_vec(), end)
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<Option<KeyValue>> {
        let revision = revision.filter(|r| *r > 0);
        let mut opts = GetOptions::new();
        if let Some(r) = revision {
            opts = opts.with_revision(r);
        }
        let result = self
            .caller
            .call(|mut c| {
                let opts = opts.clone();
                async move { c.kv.get(key, Some(opts)).await }
            })
            .await;
        match result {
            Ok((resp, _)) => {
                self.caller.saw(header_revision(resp.header()));
                resp.kvs().first().map(convert).transpose()
            }
            Err(f) => Err(self.error(f, revision, 0).await),
        }
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let (mut start, end) = range(prefix);
        if let Some(after) = &opts.start_after
            && after.as_bytes() >= start.as_slice()
        {
            // The smallest key greater than `after`.
            start = after.as_bytes().to_vec();
            start.push(0);
        }
        let revision = opts.revision.filter(|r| *r > 0);
        let mut get = GetOptions::new().with_range(end);
        if let Some(r) = revision {
            get = get.with_revision(r);
        }
        if let Some(l) = opts.limit.filter(|l| *l > 0) {
            get = get.with_limit(i64::try_from(l).unwrap_or(i64::MAX));
        }
        let result = self
            .caller
            .call(|mut c| {
                let (start, get) = (start.clone(), get.clone());
                async move { c.kv.get(start, Some(get)).await }
            })
            .await;
        match result {
            Ok((resp, _)) => {
                let header = header_revision(resp.header());
                self.caller.saw(header);
                let items = resp.kvs().iter().map(convert).collect::<Result<Vec<_>>>()?;
                Ok(ListResult {
                    items,
                    revision: revision.unwrap_or(header),
                    more: resp.more(),
                })
            }
            Err(f) => Err(self.error(f, revision, 0).await),
        }
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        check_value_size(&value)?;
        let compares = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        let put = TxnOp::put(key, value.to_vec(), None);
        let (resp, maybe_applied) = self.txn(key, compares, put, value.len()).await?;
        if resp.succeeded() {
            let rev = header_revision(resp.header());
            return Ok(KeyValue {
                key: key.to_string(),
                value,
                create_revision: rev,
                mod_revision: rev,
            });
        }
        match txn_current(&resp)? {
            // An earlier attempt created it: same value, never modified since.
            Some(cur)
                if maybe_applied
                    && cur.value == value
                    && cur.create_revision == cur.mod_revision =>
            {
                Ok(cur)
            }
            _ => Err(StoreError::AlreadyExists(key.to_string())),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        check_value_size(&value)?;
        let compares = vec![
            Compare::create_revision(key, CompareOp::Greater, 0),
            Compare::mod_revision(key, CompareOp::Equal, expected),
        ];
        let put = TxnOp::put(key, value.to_vec(), Some(PutOptions::new().with_prev_key()));
        let (resp, maybe_applied) = self.txn(key, compares, put, value.len()).await?;
        if resp.succeeded() {
            let rev = header_revision(resp.header());
            let mut create_revision = rev;
            for op in resp.op_responses() {
                if let TxnOpResponse::Put(put) = op
                    && let Some(prev) = put.prev_key()
                {
                    create_revision = prev.create_revision();
                }
            }
            return Ok(KeyValue {
                key: key.to_string(),
                value,
                create_revision,
                mod_revision: rev,
            });
        }
        match txn_current(&resp)? {
            None => Err(StoreError::NotFound(key.to_string())),
            // An earlier attempt wrote it.
            Some(cur) if maybe_applied && cur.value == value && cur.mod_revision > expected => {
                Ok(cur)
            }
            Some(cur) => Err(StoreError::Conflict {
                key: key.to_string(),
                current: Some(Box::new(cur)),
            }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        let since = expected.unwrap_or_else(|| self.caller.seen());
        let mut compares = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(e) = expected {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, e));
        }
        let del = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let (resp, maybe_applied) = self.txn(key, compares, del, 0).await?;
        if resp.succeeded() {
            let rev = header_revision(resp.header());
            for op in resp.op_responses() {
                if let TxnOpResponse::Delete(d) = op
                    && let Some(prev) = d.prev_kvs().first()
                {
                    return Ok((convert(prev)?, rev));
                }
            }
            return Err(StoreError::Internal(format!(
                "{}: delete of {key} returned no previous value",
                self.caller.label()
            )));
        }
        match txn_current(&resp)? {
            None if maybe_applied => match self.find_delete(key, since).await {
                Some(found) => Ok(found),
                None => Err(self.caller.unavailable(format!(
                    "the connection was lost while deleting {key}; it is gone now, but whether \
                     this delete removed it is unknown"
                ))),
            },
            None => Err(StoreError::NotFound(key.to_string())),
            Some(cur) => Err(StoreError::Conflict {
                key: key.to_string(),
                current: Some(Box::new(cur)),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // Ask for the state at `after` first: a compacted or future revision
        // is reported here rather than as the stream's first item.
        let check = after.max(1);
        let (start, _) = range(prefix);
        let result = self
            .caller
            .call(|mut c| {
                let start = start.clone();
                let opts = GetOptions::new().with_revision(check).with_count_only();
                async move { c.kv.get(start, Some(opts)).await }
            })
            .await;
        if let Err(f) = result {
            return Err(self.error(f, Some(after.max(0)), 0).await);
        }
        Ok(watch::start(Arc::clone(&self.caller), prefix, after.max(0)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let result = self
            .caller
            .call(|mut c| async move {
                c.kv.get(vec![0], Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await;
        match result {
            Ok((resp, _)) => {
                let rev = header_revision(resp.header());
                self.caller.saw(rev);
                Ok(rev)
            }
            Err(f) => Err(self.caller.unavailable(f.message)),
        }
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let result = self
            .caller
            .call(|mut c| async move {
                c.kv.compact(revision, Some(CompactionOptions::new().with_physical()))
                    .await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already compacted at or beyond it.
            Err(Failed {
                failure: Failure::Compacted,
                ..
            }) => Ok(()),
            Err(f) => Err(self.error(f, Some(revision), 0).await),
        }
    }

    async fn ready(&self) -> Result<()> {
        let result = self
            .caller
            .once(|mut c| async move {
                c.kv.get(vec![0], Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await;
        result
            .map(|_| ())
            .map_err(|f| self.caller.unavailable(f.message))
    }
}
