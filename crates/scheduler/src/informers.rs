//! Informers: one kube-runtime watcher per kind, all feeding one channel that
//! the scheduling loop drains, so the loop is the cache's only writer.

use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// The kinds the scheduler watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pod,
    Node,
    Namespace,
    Claim,
    Volume,
    StorageClass,
    Budget,
    PriorityClass,
    Service,
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

pub const ALL_KINDS: [Kind; 12] = [
    Kind::Pod,
    Kind::Node,
    Kind::Namespace,
    Kind::Claim,
    Kind::Volume,
    Kind::StorageClass,
    Kind::Budget,
    Kind::PriorityClass,
    Kind::Service,
    Kind::ReplicationController,
    Kind::ReplicaSet,
    Kind::StatefulSet,
];

/// One change observed by an informer. Variants differ in size, but each
/// crosses the channel once; boxing would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    Pod(watcher::Event<Pod>),
    Node(watcher::Event<Node>),
    Namespace(watcher::Event<Namespace>),
    Claim(watcher::Event<PersistentVolumeClaim>),
    Volume(watcher::Event<PersistentVolume>),
    StorageClass(watcher::Event<StorageClass>),
    Budget(watcher::Event<PodDisruptionBudget>),
    PriorityClass(watcher::Event<PriorityClass>),
    Service(watcher::Event<Service>),
    ReplicationController(watcher::Event<ReplicationController>),
    ReplicaSet(watcher::Event<ReplicaSet>),
    StatefulSet(watcher::Event<StatefulSet>),
    /// The scheduler's credential may not list this kind; it is treated as
    /// empty (or, for storage classes, unknown) rather than waited for forever.
    Unavailable(Kind),
}

/// Pods that still need or hold node resources: what kube-scheduler watches.
pub const POD_FIELD_SELECTOR: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// Starts every informer; they stop when the receiver is dropped.
pub fn start(client: &kube::Client, tx: &mpsc::Sender<Update>) -> Vec<tokio::task::JoinHandle<()>> {
    let c = client.clone();
    let pods = watcher::Config::default().fields(POD_FIELD_SELECTOR);
    vec![
        spawn(Api::<Pod>::all(c.clone()), pods, tx, Update::Pod, Kind::Pod),
        spawn(
            Api::<Node>::all(c.clone()),
            watcher::Config::default(),
            tx,
            Update::Node,
            Kind::Node,
        ),
        spawn(
            Api::<Namespace>::all(c.clone()),
            Default::default(),
            tx,
            Update::Namespace,
            Kind::Namespace,
        ),
        spawn(
            Api::<PersistentVolumeClaim>::all(c.clone()),
            Default::default(),
            tx,
            Update::Claim,
            Kind::Claim,
        ),
        spawn(
            Api::<PersistentVolume>::all(c.clone()),
            Default::default(),
            tx,
            Update::Volume,
            Kind::Volume,
        ),
        spawn(
            Api::<StorageClass>::all(c.clone()),
            Default::default(),
            tx,
            Update::StorageClass,
            Kind::StorageClass,
        ),
        spawn(
            Api::<PodDisruptionBudget>::all(c.clone()),
            Default::default(),
            tx,
            Update::Budget,
            Kind::Budget,
        ),
        spawn(
            Api::<PriorityClass>::all(c.clone()),
            Default::default(),
            tx,
            Update::PriorityClass,
            Kind::PriorityClass,
        ),
        // Default topology spreading reads the selectors of these.
        spawn(
            Api::<Service>::all(c.clone()),
            Default::default(),
            tx,
            Update::Service,
            Kind::Service,
        ),
        spawn(
            Api::<ReplicationController>::all(c.clone()),
            Default::default(),
            tx,
            Update::ReplicationController,
            Kind::ReplicationController,
        ),
        spawn(
            Api::<ReplicaSet>::all(c.clone()),
            Default::default(),
            tx,
            Update::ReplicaSet,
            Kind::ReplicaSet,
        ),
        spawn(
            Api::<StatefulSet>::all(c),
            Default::default(),
            tx,
            Update::StatefulSet,
            Kind::StatefulSet,
        ),
    ]
}

fn forbidden(e: &watcher::Error) -> bool {
    let api = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s,
        _ => return false,
    };
    api.code == 403 || api.code == 404
}

fn spawn<K>(
    api: Api<K>,
    config: watcher::Config,
    tx: &mpsc::Sender<Update>,
    wrap: fn(watcher::Event<K>) -> Update,
    kind: Kind,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let tx = tx.clone();
    tokio::spawn(async move {
        let mut stream = watcher(api, config).default_backoff().boxed();
        while let Some(item) = stream.next().await {
            let update = match item {
                Ok(ev) => wrap(ev),
                Err(e) if forbidden(&e) => {
                    tracing::warn!(?kind, error = %e, "cannot watch; scheduling without it");
                    let _ = tx.send(Update::Unavailable(kind)).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(?kind, error = %e, "watch failed; retrying");
                    continue;
                }
            };
            if tx.send(update).await.is_err() {
                return;
            }
        }
    })
}
