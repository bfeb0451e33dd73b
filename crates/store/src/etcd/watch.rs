//! Watches on etcd, re-established from the last delivered revision when the
//! stream breaks (a member going away, a leader election).
//!
//! Progress: etcd's own periodic notifications (`progress_notify`) travel
//! with the events and are exact. They are rare by default (10 minutes), so
//! an idle watch also asks for progress every
//! [`super::EtcdOptions::progress_interval`]. Before etcd 3.4.25/3.5.8 the
//! answer to such a request could overtake pending events (etcd issue
//! 15220), so those answers never move the resume point and an event they
//! overtook is still delivered.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchRequestSender, WatchResponseStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;

use super::call::{Caller, Failure, classify};
use super::{convert, range};
use crate::{Event, EventKind, KeyValue, Result, Revision, StoreError, WatchItem, WatchStream};

const OUT_BUFFER: usize = 256;

/// The watch id etcd 3.4 puts on answers to progress requests.
const REQUESTED_PROGRESS_ID: i64 = -1;

pub(crate) fn start(caller: Arc<Caller>, prefix: &str, after: Revision) -> WatchStream {
    let (tx, out) = mpsc::channel(OUT_BUFFER);
    let task = Task {
        caller,
        prefix: prefix.to_string(),
        cursor: after,
        resume: after,
        tx,
    };
    tokio::spawn(task.run());
    Box::pin(ReceiverStream::new(out))
}

struct Task {
    caller: Arc<Caller>,
    prefix: String,
    /// Events up to here have been delivered.
    cursor: Revision,
    /// Where a new stream starts (after): the cursor, or an exact progress
    /// notification beyond it.
    resume: Revision,
    tx: mpsc::Sender<Result<WatchItem>>,
}

enum Stop {
    Gone,
    Failed(StoreError),
    /// The stream broke; open another.
    Broken(String),
}

impl Task {
    async fn run(mut self) {
        loop {
            let stop = match self.establish().await {
                Ok((sender, stream)) => self.serve(sender, stream).await,
                Err(e) => Stop::Failed(e),
            };
            match stop {
                Stop::Gone => return,
                Stop::Failed(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
                Stop::Broken(why) => {
                    tracing::debug!(reason = %why, "etcd watch broke; re-establishing");
                }
            }
        }
    }

    /// Opens a watch starting after `resume`, retrying for a bounded time.
    async fn establish(&mut self) -> Result<(WatchRequestSender, WatchResponseStream)> {
        let deadline = Instant::now() + self.caller.opts.retry_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            let why = match self.try_establish().await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => return Err(e),
                Err(why) => why,
            };
            if Instant::now() + backoff > deadline || self.tx.is_closed() {
                return Err(self.caller.unavailable(format!("watch lost: {why}")));
            }
            // Backing off between attempts, not waiting for a condition.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// The outer error is worth retrying; the inner one ends the watch.
    #[allow(clippy::type_complexity)]
    async fn try_establish(
        &mut self,
    ) -> Result<Result<(WatchRequestSender, WatchResponseStream)>, String> {
        let clients = match self.caller.clients().await {
            Ok(c) => c,
            Err(f) => return Err(f.message),
        };
        let (key, end) = range(&self.prefix);
        let opts = WatchOptions::new()
            .with_range(end)
            .with_start_revision(self.resume + 1)
            .with_prev_key()
            .with_progress_notify();
        let mut client = clients.watch;
        let timeout = self.caller.opts.request_timeout;
        let created = tokio::time::timeout(timeout, async {
            let (sender, mut stream) = client.watch(key, Some(opts)).await?.split();
            let first = stream.message().await?;
            Ok::<_, etcd_client::Error>((sender, stream, first))
        })
        .await;
        let (sender, stream, first) = match created {
            Err(_) => return Err(format!("no answer within {timeout:?}")),
            Ok(Err(e)) => {
                return match classify(&e) {
                    Failure::Retry { .. } => Err(e.to_string()),
                    _ => Ok(Err(StoreError::Internal(format!(
                        "{}: {e}",
                        self.caller.label()
                    )))),
                };
            }
            Ok(Ok(x)) => x,
        };
        match first {
            None => Err("the watch stream ended at once".into()),
            Some(resp) if resp.canceled() => {
                if resp.compact_revision() > 0 {
                    Ok(Err(StoreError::Compacted {
                        requested: self.resume,
                        compacted: resp.compact_revision(),
                    }))
                } else {
                    Err(format!("watch refused: {}", resp.cancel_reason()))
                }
            }
            Some(_) => Ok(Ok((sender, stream))),
        }
    }

    async fn serve(
        &mut self,
        mut sender: WatchRequestSender,
        mut stream: WatchResponseStream,
    ) -> Stop {
        let every = self
            .caller
            .opts
            .progress_interval
            .max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut active = false;
        loop {
            tokio::select! {
                _ = self.tx.closed() => return Stop::Gone,
                _ = ticker.tick() => {
                    if !active && let Err(e) = sender.request_progress().await {
                        return Stop::Broken(e.to_string());
                    }
                    active = false;
                }
                msg = stream.message() => {
                    let resp = match msg {
                        Ok(Some(resp)) => resp,
                        Ok(None) => return Stop::Broken("the watch stream ended".into()),
                        Err(e) => return Stop::Broken(e.to_string()),
                    };
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            return Stop::Failed(StoreError::Compacted {
                                requested: self.resume,
                                compacted: resp.compact_revision(),
                            });
                        }
                        return Stop::Broken(format!("watch canceled: {}", resp.cancel_reason()));
                    }
                    if resp.created() {
                        continue;
                    }
                    if resp.events().is_empty() {
                        let rev = resp.header().map_or(0, |h| h.revision());
                        self.caller.saw(rev);
                        if resp.watch_id() != REQUESTED_PROGRESS_ID {
                            self.resume = self.resume.max(rev);
                        }
                        let progress = rev.max(self.cursor);
                        if self.tx.send(Ok(WatchItem::Progress(progress))).await.is_err() {
                            return Stop::Gone;
                        }
                        continue;
                    }
                    for ev in resp.events() {
                        let event = match convert_event(ev) {
                            Ok(Some(e)) => e,
                            Ok(None) => continue,
                            Err(e) => return Stop::Failed(e),
                        };
                        let rev = event.revision();
                        // After a re-establish etcd may repeat what was sent.
                        if rev <= self.cursor {
                            continue;
                        }
                        self.cursor = rev;
                        self.resume = self.resume.max(rev);
                        self.caller.saw(rev);
                        if self.tx.send(Ok(WatchItem::Event(event))).await.is_err() {
                            return Stop::Gone;
                        }
                        active = true;
                    }
                }
            }
        }
    }
}

fn convert_event(ev: &etcd_client::Event) -> Result<Option<Event>> {
    let Some(kv) = ev.kv() else { return Ok(None) };
    let prev = ev.prev_kv().map(convert).transpose()?;
    Ok(Some(match ev.event_type() {
        EventType::Put => Event {
            kind: EventKind::Put,
            kv: convert(kv)?,
            prev,
        },
        EventType::Delete => {
            let kv = KeyValue {
                create_revision: 0,
                ..convert(kv)?
            };
            Event {
                kind: EventKind::Delete,
                kv,
                prev,
            }
        }
    }))
}

/// The revision etcd has compacted to, learnt from a watch that starts at
/// revision 1 on a single unlikely key (so it streams no history).
pub(crate) async fn compacted_revision(caller: &Caller) -> Option<Revision> {
    let clients = caller.clients().await.ok()?;
    let mut client = clients.watch;
    let probe = async move {
        let opts = WatchOptions::new().with_start_revision(1);
        let mut stream = client.watch(vec![0], Some(opts)).await.ok()?;
        for _ in 0..4 {
            let resp = stream.message().await.ok()??;
            if resp.compact_revision() > 0 {
                return Some(resp.compact_revision());
            }
            if resp.canceled() {
                return None;
            }
        }
        None
    };
    tokio::time::timeout(caller.opts.request_timeout, probe)
        .await
        .ok()
        .flatten()
}
