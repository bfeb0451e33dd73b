//! The controller manager: the control loops that keep the cluster's actual state
//! converging on what its objects ask for, as kube-controller-manager does.
//!
//! Every controller is an API client built from kube-runtime pieces: shared
//! informers (watcher + reflector, see [`informer`]) feed queues of object
//! references into the runtime's applier ([`driver`]), which calls a
//! level-triggered, idempotent reconcile. The whole set runs while this process
//! holds the `kube-system/kube-controller-manager` Lease.
//!
//! Architecture invariant: this crate knows the API only through `kube::Client`;
//! it never sees the store, and it behaves the same against any Kubernetes API
//! server.

/// Shortcut for the reconcile functions handed to [`driver::run`].
macro_rules! reconciler {
    ($f:path) => {
        |obj, ctx| Box::pin($f(obj, ctx))
    };
}

mod context;
mod driver;
mod error;
mod events;
mod informer;
mod meta;
mod pods;
mod workload;

mod cronjob;
mod daemonset;
mod deployment;
mod disruption;
mod endpoints;
mod endpointslice;
mod eviction;
mod gc;
mod job;
mod namespace;
mod nodeipam;
mod nodelifecycle;
mod podgc;
mod replicaset;
mod resourcequota;
mod revisions;
mod serviceaccount;
mod statefulset;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

pub use context::NODE_LEASE_NAMESPACE;
pub use error::Error;

/// The Lease the controller manager is elected through, as in Kubernetes.
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "kube-controller-manager";

/// Settings of the controller manager; the defaults are kube-controller-manager's.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Who holds the leader Lease while this process leads; unique per process.
    pub identity: String,
    /// Take part in leader election (`--leader-elect`); off only when exactly one
    /// controller manager can ever run.
    pub leader_elect: bool,
    /// A node whose heartbeat is older than this is marked Ready=Unknown and
    /// tainted unreachable (`--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace_period: Duration,
    /// How long pods stay on an unreachable or not-ready node when they carry no
    /// toleration for it (the API server normally adds one of 300 s to every pod,
    /// so this only applies to pods created without that admission step).
    pub pod_eviction_timeout: Duration,
    /// Pod addresses for the whole cluster (`--cluster-cidr`); every node gets a
    /// slice of it as spec.podCIDR. `None` turns node IPAM off.
    pub cluster_cidr: Option<String>,
    /// Prefix length of each node's pod CIDR (`--node-cidr-mask-size`, 24).
    pub node_cidr_mask_size: u8,
    /// Terminated pods kept before the oldest are deleted
    /// (`--terminated-pod-gc-threshold`, 12500).
    pub terminated_pod_gc_threshold: usize,
    /// How long a pod's node must stay missing before pod GC deletes the pod
    /// (kube-controller-manager's fixed 40 s: a node may be re-registered).
    pub pod_gc_quarantine: Duration,
    /// The cluster CA in PEM, published to every namespace as the
    /// `kube-root-ca.crt` ConfigMap and put into service-account token Secrets.
    pub root_ca_pem: Option<String>,
    /// Reconciles of one controller that may run at once (`--concurrent-*-syncs`, 5).
    pub workers: u16,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "flotilla".into());
        ControllerOptions {
            identity: format!("{host}_{}", std::process::id()),
            leader_elect: true,
            node_monitor_grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(300),
            cluster_cidr: Some("10.42.0.0/16".into()),
            node_cidr_mask_size: 24,
            terminated_pod_gc_threshold: 12500,
            pod_gc_quarantine: Duration::from_secs(40),
            root_ca_pem: None,
            workers: 5,
        }
    }
}

/// Runs every controller, under leader election unless it is turned off. A lost
/// lease stops the controllers and the process stands for election again; the
/// future only returns on an error that retrying cannot fix. Dropping it stops
/// everything.
pub async fn run(client: kube::Client, opts: ControllerOptions) -> anyhow::Result<()> {
    if !opts.leader_elect {
        return run_controllers(client, opts).await;
    }
    let elector = leaderelection::LeaderElector::new(
        client.clone(),
        LEASE_NAMESPACE,
        LEASE_NAME,
        &opts.identity,
        leaderelection::Timing::default(),
    )?;
    loop {
        match elector
            .run(run_controllers(client.clone(), opts.clone()))
            .await
        {
            Ok(result) => return result,
            Err(leaderelection::ElectionError::LeadershipLost(lease)) => {
                tracing::warn!(%lease, "leadership lost; controllers stopped until re-elected");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Starts the informers and every controller as tasks; they end together when
/// this future is dropped (the join set aborts them) or when one of them stops.
async fn run_controllers(client: kube::Client, opts: ControllerOptions) -> anyhow::Result<()> {
    let (ctx, informers) = context::Ctx::new(client, opts);
    let mut tasks = JoinSet::new();
    for driver in informers {
        tasks.spawn(async move {
            driver.await;
            "informer"
        });
    }
    // Controllers start on complete caches; an informer that cannot list (a
    // permission missing) holds everything back, loudly.
    let mut waiting = std::pin::pin!(ctx.synced());
    loop {
        tokio::select! {
            () = &mut waiting => break,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                tracing::warn!("controllers still waiting for their caches to fill");
            }
            Some(ended) = tasks.join_next() => {
                anyhow::bail!("an informer stopped before its cache filled: {ended:?}");
            }
        }
    }
    let controllers: Vec<(&'static str, context::Driver)> = vec![
        ("namespace", Box::pin(namespace::run(ctx.clone()))),
        ("serviceaccount", Box::pin(serviceaccount::run(ctx.clone()))),
        ("garbagecollector", Box::pin(gc::run(ctx.clone()))),
        ("replicaset", Box::pin(replicaset::run(ctx.clone()))),
        ("deployment", Box::pin(deployment::run(ctx.clone()))),
        ("endpoints", Box::pin(endpoints::run(ctx.clone()))),
        ("endpointslice", Box::pin(endpointslice::run(ctx.clone()))),
        ("nodeipam", Box::pin(nodeipam::run(ctx.clone()))),
        ("nodelifecycle", Box::pin(nodelifecycle::run(ctx.clone()))),
        ("tainteviction", Box::pin(eviction::run(ctx.clone()))),
        ("podgc", Box::pin(podgc::run(ctx.clone()))),
        ("job", Box::pin(job::run(ctx.clone()))),
        ("cronjob", Box::pin(cronjob::run(ctx.clone()))),
        ("statefulset", Box::pin(statefulset::run(ctx.clone()))),
        ("daemonset", Box::pin(daemonset::run(ctx.clone()))),
        ("resourcequota", Box::pin(resourcequota::run(ctx.clone()))),
        ("disruption", Box::pin(disruption::run(ctx.clone()))),
    ];
    for (name, controller) in controllers {
        tasks.spawn(async move {
            controller.await;
            name
        });
    }
    tracing::info!(identity = %ctx.opts.identity, "controllers started");
    match tasks.join_next().await {
        Some(Ok(name)) => anyhow::bail!("the {name} loop ended unexpectedly"),
        Some(Err(e)) => Err(anyhow::anyhow!("a controller task failed: {e}")),
        None => Ok(()),
    }
}

/// How long a controller waits for its cache to show its own writes before
/// giving up and retrying the reconcile.
pub(crate) const CACHE_WAIT: Duration = Duration::from_secs(10);

pub(crate) type Shared = Arc<context::Ctx>;
