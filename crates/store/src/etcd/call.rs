//! Connecting lazily, retrying while the cluster is unavailable, and mapping
//! etcd errors.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, KvClient, WatchClient};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::EtcdOptions;
use crate::{Result, Revision, StoreError};

/// Messages larger than the default 4 MiB answer big lists.
const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// gRPC status codes (`tonic::Code`), by number.
const CODE_CANCELLED: i32 = 1;
const CODE_UNKNOWN: i32 = 2;
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_DEADLINE_EXCEEDED: i32 = 4;
const CODE_RESOURCE_EXHAUSTED: i32 = 8;
const CODE_OUT_OF_RANGE: i32 = 11;
const CODE_UNAVAILABLE: i32 = 14;

/// The clients of one connection to the cluster.
#[derive(Clone)]
pub(crate) struct Clients {
    pub kv: KvClient,
    pub watch: WatchClient,
}

/// What went wrong with a call.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth retrying. `maybe_applied` is set when the request may have
    /// reached the cluster, so a write may have taken effect.
    Retry {
        maybe_applied: bool,
    },
    Compacted,
    FutureRevision,
    TooLarge,
    Fatal,
}

/// A failed call after retries, with the last error's text.
#[derive(Debug)]
pub(crate) struct Failed {
    pub failure: Failure,
    pub message: String,
}

pub(crate) fn classify(e: &etcd_client::Error) -> Failure {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            let code: i32 = status.code().into();
            let msg = status.message();
            match code {
                CODE_OUT_OF_RANGE if msg.contains("compacted") => Failure::Compacted,
                CODE_OUT_OF_RANGE if msg.contains("future") => Failure::FutureRevision,
                CODE_INVALID_ARGUMENT if msg.contains("too large") => Failure::TooLarge,
                CODE_RESOURCE_EXHAUSTED if msg.contains("larger than max") => Failure::TooLarge,
                CODE_UNAVAILABLE => {
                    // Refused before anything was proposed: a connection that
                    // could not be made, a member without leader, overload.
                    let not_sent = !msg.contains("timed out")
                        && (msg.contains("error trying to connect")
                            || msg.contains("tcp connect error")
                            || msg.contains("Connection refused")
                            || msg.contains("no leader")
                            || msg.contains("too many requests")
                            || msg.contains("not capable"));
                    Failure::Retry {
                        maybe_applied: !not_sent,
                    }
                }
                CODE_DEADLINE_EXCEEDED | CODE_CANCELLED | CODE_UNKNOWN => Failure::Retry {
                    maybe_applied: true,
                },
                _ if msg.contains("leader changed") || msg.contains("timed out") => {
                    Failure::Retry {
                        maybe_applied: true,
                    }
                }
                _ => Failure::Fatal,
            }
        }
        etcd_client::Error::TransportError(_) => Failure::Retry {
            maybe_applied: false,
        },
        etcd_client::Error::IoError(_) | etcd_client::Error::WatchError(_) => Failure::Retry {
            maybe_applied: true,
        },
        _ => Failure::Fatal,
    }
}

/// The connection and the retry policy shared by all operations.
pub(crate) struct Caller {
    endpoints: Vec<String>,
    pub(crate) opts: EtcdOptions,
    clients: OnceCell<Clients>,
    /// Highest revision seen in any response header.
    seen: AtomicI64,
}

impl Caller {
    pub(crate) fn new(endpoints: Vec<String>, opts: EtcdOptions) -> Caller {
        Caller {
            endpoints,
            opts,
            clients: OnceCell::new(),
            seen: AtomicI64::new(0),
        }
    }

    /// "etcd at http://a:2379, http://b:2379", for error messages.
    pub(crate) fn label(&self) -> String {
        format!("etcd at {}", self.endpoints.join(", "))
    }

    pub(crate) fn unavailable(&self, why: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("{}: {why}", self.label()))
    }

    pub(crate) fn saw(&self, revision: Revision) {
        self.seen.fetch_max(revision, Ordering::Relaxed);
    }

    pub(crate) fn seen(&self) -> Revision {
        self.seen.load(Ordering::Relaxed)
    }

    /// The clients, connecting on first use. Connecting does not contact the
    /// cluster (channels connect lazily), so it fails only on bad endpoints;
    /// a failure is not cached and the next call tries again.
    pub(crate) async fn clients(&self) -> Result<Clients, Failed> {
        self.clients
            .get_or_try_init(|| async {
                let options = ConnectOptions::new()
                    .with_connect_timeout(self.opts.connect_timeout)
                    .with_keep_alive(self.opts.keep_alive, self.opts.keep_alive_timeout)
                    // A member cut off from the leader refuses requests and
                    // cancels watches instead of serving stale data.
                    .with_require_leader(true);
                let client = Client::connect(&self.endpoints, Some(options))
                    .await
                    .map_err(|e| Failed {
                        failure: classify(&e),
                        message: format!("cannot connect: {e}"),
                    })?;
                Ok(Clients {
                    kv: client
                        .kv_client()
                        .max_decoding_message_size(MAX_MESSAGE_BYTES),
                    watch: client
                        .watch_client()
                        .max_decoding_message_size(MAX_MESSAGE_BYTES),
                })
            })
            .await
            .cloned()
    }

    /// Runs `f` until it succeeds, fails for good, or the retry budget
    /// ([`EtcdOptions::retry_for`]) is spent. Returns the result and whether an
    /// earlier attempt may have been applied.
    pub(crate) async fn call<T, F, Fut>(&self, mut f: F) -> Result<(T, bool), Failed>
    where
        F: FnMut(Clients) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.opts.retry_for;
        let mut backoff = Duration::from_millis(20);
        let mut maybe_applied = false;
        loop {
            let failed = match self.clients().await {
                Ok(clients) => {
                    match tokio::time::timeout(self.opts.request_timeout, f(clients)).await {
                        Ok(Ok(v)) => return Ok((v, maybe_applied)),
                        Ok(Err(e)) => Failed {
                            failure: classify(&e),
                            message: e.to_string(),
                        },
                        Err(_) => Failed {
                            failure: Failure::Retry {
                                maybe_applied: true,
                            },
                            message: format!("no answer within {:?}", self.opts.request_timeout),
                        },
                    }
                }
                Err(f) => f,
            };
            match failed.failure {
                Failure::Retry { maybe_applied: m } => {
                    maybe_applied |= m;
                    if Instant::now() + backoff > deadline {
                        return Err(failed);
                    }
                    tracing::debug!(error = %failed.message, "etcd call failed; retrying");
                    // Backing off between attempts, not waiting for a condition.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                _ => return Err(failed),
            }
        }
    }

    /// One attempt, bounded by the request timeout: for readiness checks.
    pub(crate) async fn once<T, F, Fut>(&self, f: F) -> Result<T, Failed>
    where
        F: FnOnce(Clients) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let clients = self.clients().await?;
        match tokio::time::timeout(self.opts.request_timeout, f(clients)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failed {
                failure: classify(&e),
                message: e.to_string(),
            }),
            Err(_) => Err(Failed {
                failure: Failure::Retry {
                    maybe_applied: true,
                },
                message: format!("no answer within {:?}", self.opts.request_timeout),
            }),
        }
    }
}
