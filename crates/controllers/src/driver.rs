//! How every controller runs: a queue of object references built from informer
//! changes, fed to kube-runtime's applier, which de-duplicates requests, never runs
//! two reconciles of one object at once, and requeues by the returned `Action`.
//! Failures are retried with per-object exponential backoff, as client-go's
//! rate-limited work queue does.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, Stream, StreamExt};
use kube::Resource;
use kube::runtime::controller::{Action, Config, Error as ControllerError};
use kube::runtime::reflector::{ObjectRef, Store};
use serde::de::DeserializeOwned;
use tokio_stream::wrappers::BroadcastStream;

use crate::error::Error;
use crate::informer::{Change, Informer};

/// A reconcile function: read the current state, converge, say when to look again.
pub type Reconcile<K, C> = fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, Error>>;

/// The object references one controller reconciles, from several informers.
pub struct Queue<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    sources: Vec<BoxStream<'static, ObjectRef<K>>>,
}

fn changes<O>(informer: &Informer<O>) -> impl Stream<Item = Change<O>> + Send + 'static
where
    O: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    // A new subscriber starts with everything already in the cache, and one that
    // fell behind has lost changes: resyncing is the level-triggered answer to both.
    stream::once(std::future::ready(Change::Resync))
        .chain(BroadcastStream::new(informer.subscribe()).map(|c| c.unwrap_or(Change::Resync)))
}

impl<K> Queue<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Reconciles every object of `primary` when it changes.
    pub fn new(primary: &Informer<K>) -> Self {
        let mut q = Queue {
            store: primary.store().clone(),
            sources: Vec::new(),
        };
        q = q.related(primary, |o| vec![ObjectRef::from_obj(o)]);
        q
    }

    /// Reconciles every object of `primary` when its informer (re)lists, but not
    /// on single changes: for clean-up that only other objects' changes prompt.
    pub fn on_relist(primary: &Informer<K>) -> Self {
        let store = primary.store().clone();
        let refs = changes(primary).flat_map(move |c| {
            let refs: Vec<ObjectRef<K>> = match c {
                Change::Resync => store
                    .state()
                    .iter()
                    .map(|o| ObjectRef::from_obj(o.as_ref()))
                    .collect(),
                _ => Vec::new(),
            };
            stream::iter(refs)
        });
        Queue {
            store: primary.store().clone(),
            sources: vec![refs.boxed()],
        }
    }

    /// Also reconciles the objects `map` names when an object of `other` changes.
    pub fn related<O>(
        mut self,
        other: &Informer<O>,
        map: impl Fn(&O) -> Vec<ObjectRef<K>> + Send + Sync + 'static,
    ) -> Self
    where
        O: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let store = self.store.clone();
        let refs = changes(other).flat_map(move |c| {
            let refs = match c {
                Change::Applied(o) | Change::Deleted(o) => map(&o),
                Change::Resync => store
                    .state()
                    .iter()
                    .map(|o| ObjectRef::from_obj(o.as_ref()))
                    .collect(),
            };
            stream::iter(refs)
        });
        self.sources.push(refs.boxed());
        self
    }
}

/// Per-object failure counts, reset by a success.
struct Backoff<K: Resource<DynamicType = ()>> {
    failures: Mutex<HashMap<ObjectRef<K>, u32>>,
}

impl<K: Resource<DynamicType = ()>> Backoff<K> {
    fn failed(&self, obj: ObjectRef<K>) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(obj).or_insert(0);
        *n = n.saturating_add(1);
        retry_delay(*n)
    }

    fn succeeded(&self, obj: &ObjectRef<K>) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.remove(obj);
    }
}

/// 5 ms doubling per failure up to 5 minutes: client-go's per-item limiter, with a
/// lower ceiling so a fixed server problem heals sooner.
pub fn retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    Duration::from_millis(5u64.saturating_mul(1 << exp)).min(Duration::from_secs(300))
}

/// Runs one controller until its queue ends (never, while the informers live).
pub async fn run<K, C>(
    name: &'static str,
    queue: Queue<K>,
    ctx: Arc<C>,
    reconcile: Reconcile<K, C>,
    workers: u16,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    C: Send + Sync + 'static,
{
    let backoff = Arc::new(Backoff::<K> {
        failures: Mutex::new(HashMap::new()),
    });
    let policy_backoff = backoff.clone();
    let error_policy = move |obj: Arc<K>, err: &Error, _: Arc<C>| {
        let delay = policy_backoff.failed(ObjectRef::from_obj(obj.as_ref()));
        let level_debug = err.is_conflict();
        if level_debug {
            tracing::debug!(controller = name, error = %ErrorChain(err), "reconcile conflicted; retrying");
        } else {
            tracing::warn!(controller = name, error = %ErrorChain(err), retry_in = ?delay, "reconcile failed");
        }
        Action::requeue(delay)
    };
    let Queue { store, sources } = queue;
    let requests = stream::select_all(sources).map(Ok::<_, std::convert::Infallible>);
    let config = Config::default().concurrency(workers);
    // A bug that panics on some object must not take every controller down:
    // the panic becomes a failed reconcile, retried with backoff.
    let guarded = move |obj: Arc<K>, ctx: Arc<C>| -> BoxFuture<'static, Result<Action, Error>> {
        Box::pin(
            std::panic::AssertUnwindSafe(reconcile(obj, ctx))
                .catch_unwind()
                .map(|r| r.unwrap_or_else(|_| Err(Error::Panicked))),
        )
    };
    kube::runtime::applier(guarded, error_policy, ctx, store, requests, config)
        .for_each(|res| {
            match res {
                Ok((obj, _)) => backoff.succeeded(&obj),
                // The object went away between the request and its turn.
                Err(ControllerError::ObjectNotFound(_)) => {}
                // Already logged by the error policy.
                Err(ControllerError::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(controller = name, error = %ErrorChain(&e), "controller queue failed"),
            }
            std::future::ready(())
        })
        .await;
}

/// Shows an error with its causes, `a: b: c`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_a_ceiling() {
        assert_eq!(retry_delay(1), Duration::from_millis(5));
        assert_eq!(retry_delay(2), Duration::from_millis(10));
        assert_eq!(retry_delay(5), Duration::from_millis(80));
        assert_eq!(retry_delay(40), Duration::from_secs(300));
    }
}
