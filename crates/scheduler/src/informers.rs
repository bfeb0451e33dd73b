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

/// A Pod decoded without `metadata.managedFields`: the scheduler never reads
/// them, and decoding them was ~6% of its CPU (every bind brings the pod back
/// through the watch). Everything else decodes as the `Pod` it becomes.
#[derive(Clone, Debug)]
pub struct LeanPod(pub Pod);

impl<'de> serde::Deserialize<'de> for LeanPod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use std::collections::BTreeMap;

        use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            metadata: Meta,
            spec: Option<PodSpec>,
            status: Option<PodStatus>,
        }
        /// ObjectMeta's fields but `managedFields`, which is skipped unread.
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Meta {
            annotations: Option<BTreeMap<String, String>>,
            creation_timestamp: Option<Time>,
            deletion_grace_period_seconds: Option<i64>,
            deletion_timestamp: Option<Time>,
            finalizers: Option<Vec<String>>,
            generate_name: Option<String>,
            generation: Option<i64>,
            labels: Option<BTreeMap<String, String>>,
            name: Option<String>,
            namespace: Option<String>,
            owner_references: Option<Vec<OwnerReference>>,
            resource_version: Option<String>,
            self_link: Option<String>,
            uid: Option<String>,
        }
        let r = Raw::deserialize(d)?;
        let m = r.metadata;
        Ok(LeanPod(Pod {
            metadata: ObjectMeta {
                annotations: m.annotations,
                creation_timestamp: m.creation_timestamp,
                deletion_grace_period_seconds: m.deletion_grace_period_seconds,
                deletion_timestamp: m.deletion_timestamp,
                finalizers: m.finalizers,
                generate_name: m.generate_name,
                generation: m.generation,
                labels: m.labels,
                managed_fields: None,
                name: m.name,
                namespace: m.namespace,
                owner_references: m.owner_references,
                resource_version: m.resource_version,
                self_link: m.self_link,
                uid: m.uid,
            },
            spec: r.spec,
            status: r.status,
        }))
    }
}

impl kube::Resource for LeanPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        <Pod as kube::Resource>::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        <Pod as kube::Resource>::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        <Pod as kube::Resource>::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        <Pod as kube::Resource>::plural(dt)
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.0.metadata
    }
}

fn lean_pod_update(ev: watcher::Event<LeanPod>) -> Update {
    Update::Pod(match ev {
        watcher::Event::Apply(p) => watcher::Event::Apply(p.0),
        watcher::Event::Delete(p) => watcher::Event::Delete(p.0),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(p) => watcher::Event::InitApply(p.0),
        watcher::Event::InitDone => watcher::Event::InitDone,
    })
}

/// Starts every informer; they stop when the receiver is dropped.
pub fn start(client: &kube::Client, tx: &mpsc::Sender<Update>) -> Vec<tokio::task::JoinHandle<()>> {
    let c = client.clone();
    let pods = watcher::Config::default().fields(POD_FIELD_SELECTOR);
    vec![
        spawn(
            Api::<LeanPod>::all(c.clone()),
            pods,
            tx,
            lean_pod_update,
            Kind::Pod,
        ),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lean_pods_are_pods_without_managed_fields() {
        let v = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "web"}, "annotations": {"a": "b"}, "generateName": "p-",
                "creationTimestamp": "2026-01-02T03:04:05Z", "finalizers": ["f"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                    "uid": "o", "controller": true}],
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n1"},
            "status": {"phase": "Pending"}});
        let lean: LeanPod = serde_json::from_value(v.clone()).expect("lean");
        let mut full: Pod = serde_json::from_value(v).expect("pod");
        full.metadata.managed_fields = None;
        assert_eq!(lean.0, full);
        let empty: LeanPod = serde_json::from_value(json!({})).expect("empty");
        assert_eq!(empty.0, Pod::default());
    }
}
