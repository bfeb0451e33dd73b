//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` package does it, so that of several servers sharing one
//! cluster only one runs the scheduler (or controller manager) at a time.
//!
//! A candidate acquires the lease when it is absent, already its own, or has not
//! changed for a whole lease duration *as observed by this candidate's clock*:
//! comparing the holder's `renewTime` with our own wall clock would make the
//! election depend on clock skew between machines. Every write is an update with
//! the resourceVersion that was read, so two candidates cannot both win.

mod lease;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

pub use lease::{KubeLeases, LeaseStore, StoreError};

/// How long a lease lasts and how often it is renewed. The defaults are
/// kube-scheduler's: 15 s lease, 10 s renew deadline, 2 s retry period.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long other candidates wait after the last observed change before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// The pause between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why leading ended without the work finishing.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The lease could not be renewed within the renew deadline, or another
    /// candidate took it; the work was cancelled.
    #[error("leadership of lease {0} lost")]
    LeadershipLost(String),
    /// The timing cannot work: the renew deadline must be shorter than the lease
    /// duration and longer than the retry period.
    #[error("invalid leader election timing: {0}")]
    InvalidTiming(&'static str),
}

/// One candidate for one lease.
pub struct LeaderElector<S = KubeLeases> {
    store: S,
    name: String,
    identity: String,
    timing: Timing,
    /// The last lease record we saw and when, by our own clock.
    observed: tokio::sync::Mutex<Option<(Lease, Instant)>>,
}

impl LeaderElector<KubeLeases> {
    /// A candidate for lease `namespace/name` (kube-scheduler uses
    /// `kube-system/kube-scheduler`) under `identity`, unique per process.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Result<Self, ElectionError> {
        Self::with_store(KubeLeases::new(client, namespace), name, identity, timing)
    }
}

impl<S: LeaseStore> LeaderElector<S> {
    /// A candidate over any lease store; tests use an in-memory one.
    pub fn with_store(
        store: S,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Result<Self, ElectionError> {
        if timing.renew_deadline >= timing.lease_duration {
            return Err(ElectionError::InvalidTiming(
                "lease duration must be greater than the renew deadline",
            ));
        }
        if timing.retry_period >= timing.renew_deadline {
            return Err(ElectionError::InvalidTiming(
                "renew deadline must be greater than the retry period",
            ));
        }
        Ok(Self {
            store,
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: tokio::sync::Mutex::new(None),
        })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this candidate holds the lease, then drives `work` while
    /// renewing it. Returns the work's output when it finishes (and releases the
    /// lease so a successor need not wait); drops the work and returns
    /// [`ElectionError::LeadershipLost`] when the lease is lost.
    pub async fn run<F: Future>(&self, work: F) -> Result<F::Output, ElectionError> {
        self.acquire().await;
        tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
        tokio::select! {
            out = work => {
                self.release().await;
                Ok(out)
            }
            () = self.keep_renewing() => {
                tracing::warn!(lease = %self.name, identity = %self.identity, "leadership lost");
                Err(ElectionError::LeadershipLost(self.name.clone()))
            }
        }
    }

    async fn acquire(&self) {
        // A failed request (the API server still starting, its namespace not
        // yet created) is retried soon, doubling up to the retry period; a
        // lease held by someone else is retried every retry period.
        let mut after_error = Duration::from_millis(50);
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(lease = %self.name, error = %e, "acquiring the lease failed");
                    tokio::time::sleep(after_error.min(self.timing.retry_period)).await;
                    after_error *= 2;
                    continue;
                }
            }
            tokio::time::sleep(self.jittered_retry()).await;
        }
    }

    /// Returns only once leadership is lost: no successful renewal within the
    /// renew deadline, or someone else holds the lease.
    async fn keep_renewing(&self) {
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            let deadline = Instant::now() + self.timing.renew_deadline;
            loop {
                match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                    Ok(Ok(true)) => break,
                    Ok(Ok(false)) | Err(_) => return,
                    Ok(Err(e)) => {
                        tracing::debug!(lease = %self.name, error = %e, "renewing the lease failed")
                    }
                }
                if Instant::now() + self.timing.retry_period >= deadline {
                    return;
                }
                tokio::time::sleep(self.timing.retry_period).await;
            }
        }
    }

    /// One attempt: true when we hold the lease afterwards.
    async fn try_acquire_or_renew(&self) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let current = match self.store.get(&self.name).await? {
            Some(lease) => lease,
            None => {
                let lease = self.record(None, now);
                return match self.store.create(&lease).await {
                    Ok(created) => {
                        *self.observed.lock().await = Some((created, Instant::now()));
                        Ok(true)
                    }
                    Err(StoreError::Conflict) => Ok(false),
                    Err(e) => Err(e),
                };
            }
        };
        let held_by_us = holder(&current) == Some(self.identity.as_str());
        {
            let mut observed = self.observed.lock().await;
            let changed = observed
                .as_ref()
                .is_none_or(|(seen, _)| seen.spec != current.spec);
            if changed {
                *observed = Some((current.clone(), Instant::now()));
            }
            if !held_by_us && holder(&current).is_some() {
                let duration = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_duration_seconds)
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(self.timing.lease_duration, Duration::from_secs);
                let seen_at = observed.as_ref().map_or_else(Instant::now, |(_, at)| *at);
                if seen_at + duration > Instant::now() {
                    return Ok(false);
                }
            }
        }
        let updated = self.record(Some(&current), now);
        match self.store.replace(&updated).await {
            Ok(stored) => {
                *self.observed.lock().await = Some((stored, Instant::now()));
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The lease as we write it: held by us, renewed now, keeping the acquire
    /// time and transition count while we stay the holder.
    fn record(&self, current: Option<&Lease>, now: Timestamp) -> Lease {
        let spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let transitions = spec.lease_transitions.unwrap_or(0);
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
                ..current.map(|l| l.metadata.clone()).unwrap_or_default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(
                    i32::try_from(self.timing.lease_duration.as_secs())
                        .unwrap_or(i32::MAX)
                        .max(1),
                ),
                acquire_time: if ours {
                    spec.acquire_time
                } else {
                    Some(MicroTime(now))
                },
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(if ours || current.is_none() {
                    transitions
                } else {
                    transitions.saturating_add(1)
                }),
                ..spec
            }),
        }
    }

    /// Gives the lease up so a successor takes over at once rather than after a
    /// lease duration (client-go's ReleaseOnCancel).
    async fn release(&self) {
        let Ok(Some(current)) = self.store.get(&self.name).await else {
            return;
        };
        if holder(&current) != Some(self.identity.as_str()) {
            return;
        }
        let mut released = current.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        if let Err(e) = self.store.replace(&released).await {
            tracing::debug!(lease = %self.name, error = %e, "releasing the lease failed");
        }
    }

    /// Retry period plus up to 20% so candidates started together do not collide forever.
    fn jittered_retry(&self) -> Duration {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id();
        let jitter = self
            .timing
            .retry_period
            .mul_f64(f64::from(nanos % 1000) / 5000.0);
        self.timing.retry_period + jitter
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests;
