//! The scheduler: places pending pods on nodes, as kube-scheduler does.
//!
//! It is an ordinary API client. Informers (`informers`) feed one loop
//! (`driver`) that owns the node cache (`cache`) and the scheduling queue
//! (`queue`); a cycle (`schedule`) runs the filter and score plugins
//! (`framework`) and the loop binds asynchronously (`bind`), assuming the
//! placement in the cache at once so the next pod already sees it.
//!
//! **Architecture invariant:** the scheduler never sees the store; everything
//! it knows comes from watches, and everything it does is an API request.

pub mod bind;
pub mod cache;
mod driver;
pub mod events;
pub mod framework;
pub mod informers;
pub mod node;
mod objects;
pub mod pod;
pub mod preempt;
pub mod queue;
pub mod resources;
pub mod schedule;
pub mod selectors;
pub mod stats;

#[cfg(test)]
mod testing;

use std::sync::Arc;

use leaderelection::{ElectionError, LeaderElector, Timing};
use tokio::sync::mpsc;

pub use stats::Stats;

/// Pods naming this scheduler (or none) are ours.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// The Lease kube-scheduler elects its leader with, in `kube-system`.
pub const LEASE_NAME: &str = "kube-scheduler";

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Pods with this `spec.schedulerName` are scheduled; others are left alone.
    pub scheduler_name: String,
    /// Unique name of this instance, for the lease and for events.
    pub identity: String,
    /// `Some`: only schedule while holding the `kube-system/kube-scheduler`
    /// Lease. `None`: schedule unconditionally (single-server setups, benches).
    pub leader_election: Option<Timing>,
    /// `percentageOfNodesToScore`; 0 means Kubernetes' adaptive default.
    pub percentage_of_nodes_to_score: u32,
    /// Bind requests in flight at once.
    pub bind_concurrency: usize,
    /// Background writes (events, pod conditions) in flight at once.
    pub write_concurrency: usize,
    /// Emit a `Scheduled` event per bound pod, as kube-scheduler does.
    pub scheduled_events: bool,
    /// Counters shared with the caller.
    pub stats: Arc<Stats>,
}

impl SchedulerOptions {
    pub const DEFAULT_BIND_CONCURRENCY: usize = 64;
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            scheduler_name: DEFAULT_SCHEDULER_NAME.into(),
            identity: default_identity(),
            leader_election: Some(Timing::default()),
            percentage_of_nodes_to_score: 0,
            bind_concurrency: Self::DEFAULT_BIND_CONCURRENCY,
            write_concurrency: 16,
            scheduled_events: true,
            stats: Arc::new(Stats::default()),
        }
    }
}

/// `hostname_` plus a per-process suffix, as client-go builds lease identities.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "flotilla".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}_{:08x}{:08x}", std::process::id(), nanos)
}

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The leader election timing was rejected.
    #[error("leader election")]
    Election(#[source] ElectionError),
    /// Every informer stopped; the scheduler cannot continue.
    #[error("the scheduler's informers stopped")]
    InformersStopped,
}

/// Runs the scheduler until the returned future is dropped. With leader
/// election, it waits for the lease, schedules while holding it, and goes back
/// to waiting when leadership is lost (informers and cache start afresh).
///
/// `client` should carry the scheduler's own credential (user
/// `system:kube-scheduler`, bound to the `system:kube-scheduler` ClusterRole).
pub async fn run(client: kube::Client, opts: SchedulerOptions) -> Result<(), Error> {
    let Some(timing) = opts.leader_election else {
        return run_scheduler(client, opts).await;
    };
    let elector = LeaderElector::new(
        client.clone(),
        "kube-system",
        LEASE_NAME,
        &opts.identity,
        timing,
    )
    .map_err(Error::Election)?;
    loop {
        match elector
            .run(run_scheduler(client.clone(), opts.clone()))
            .await
        {
            Ok(result) => return result,
            Err(ElectionError::LeadershipLost(_)) => {
                tracing::warn!("scheduler lost its lease; waiting to lead again");
            }
            Err(e) => return Err(Error::Election(e)),
        }
    }
}

async fn run_scheduler(client: kube::Client, opts: SchedulerOptions) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel(4096);
    let informers = informers::start(&client, &tx);
    drop(tx);
    let writer = events::Writer::start(
        client.clone(),
        DEFAULT_SCHEDULER_NAME,
        &opts.identity,
        opts.write_concurrency,
        10_000,
    );
    let (binder, bind_results) = bind::Binder::new(
        client,
        opts.bind_concurrency,
        writer.clone(),
        opts.scheduled_events,
    );
    let scheduler = schedule::Scheduler::new(
        framework::Framework::default(),
        opts.percentage_of_nodes_to_score,
    );
    let driver = driver::Driver::new(
        scheduler,
        binder,
        writer,
        &opts.scheduler_name,
        opts.stats.clone(),
    );
    // Informer tasks end when the driver (their receiver) is dropped, also
    // when this future is cancelled on lost leadership.
    let _abort = AbortOnDrop(informers);
    driver.run(rx, bind_results).await;
    Err(Error::InformersStopped)
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}
