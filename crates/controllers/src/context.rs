//! What every controller shares: the client, the options, the event recorder and
//! one informer per watched resource type.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, PersistentVolumeClaim, Pod, ResourceQuota, Secret,
    Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;

use crate::ControllerOptions;
use crate::events::Recorder;
use crate::informer::Informer;

/// The namespace holding each node's heartbeat Lease.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

pub struct Ctx {
    pub client: Client,
    pub opts: ControllerOptions,
    pub events: Recorder,
    /// Indexed by `spec.nodeName` ([`Informer::with_key`]).
    pub pods: Arc<Informer<Pod>>,
    pub nodes: Arc<Informer<Node>>,
    pub node_leases: Arc<Informer<Lease>>,
    pub namespaces: Arc<Informer<Namespace>>,
    pub service_accounts: Arc<Informer<ServiceAccount>>,
    /// Secrets of type `kubernetes.io/service-account-token` only.
    pub token_secrets: Arc<Informer<Secret>>,
    /// The `kube-root-ca.crt` ConfigMaps only.
    pub root_ca_maps: Arc<Informer<ConfigMap>>,
    pub services: Arc<Informer<Service>>,
    pub endpoints: Arc<Informer<Endpoints>>,
    pub endpoint_slices: Arc<Informer<EndpointSlice>>,
    pub replica_sets: Arc<Informer<ReplicaSet>>,
    pub deployments: Arc<Informer<Deployment>>,
    pub stateful_sets: Arc<Informer<StatefulSet>>,
    pub daemon_sets: Arc<Informer<DaemonSet>>,
    pub revisions: Arc<Informer<ControllerRevision>>,
    pub jobs: Arc<Informer<Job>>,
    pub cron_jobs: Arc<Informer<CronJob>>,
    pub claims: Arc<Informer<PersistentVolumeClaim>>,
    pub quotas: Arc<Informer<ResourceQuota>>,
    pub disruption_budgets: Arc<Informer<PodDisruptionBudget>>,
}

pub type Driver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Ctx {
    /// The shared context and the futures that keep its informers filled.
    pub fn new(client: Client, opts: ControllerOptions) -> (Arc<Ctx>, Vec<Driver>) {
        let mut drivers = Vec::new();
        let cfg = watcher::Config::default;
        macro_rules! all {
            () => {
                all!(cfg())
            };
            ($config:expr) => {{
                let (i, d) = Informer::new(Api::all(client.clone()), $config);
                drivers.push(d);
                i
            }};
        }
        let (node_leases, d) =
            Informer::new(Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE), cfg());
        drivers.push(d);
        // Pods are also indexed by node, for the controllers that act on one
        // node's pods (pod GC, taint eviction, node lifecycle).
        let (pods, d) = Informer::indexed(
            Api::all(client.clone()),
            cfg(),
            Some(crate::pods::node_name),
        );
        drivers.push(d);
        let ctx = Ctx {
            events: Recorder::new(client.clone(), &opts.identity),
            pods,
            nodes: all!(),
            node_leases,
            namespaces: all!(),
            service_accounts: all!(),
            token_secrets: all!(cfg().fields("type=kubernetes.io/service-account-token")),
            root_ca_maps: all!(cfg().fields("metadata.name=kube-root-ca.crt")),
            services: all!(),
            endpoints: all!(),
            endpoint_slices: all!(),
            replica_sets: all!(),
            deployments: all!(),
            stateful_sets: all!(),
            daemon_sets: all!(),
            revisions: all!(),
            jobs: all!(),
            cron_jobs: all!(),
            claims: all!(),
            quotas: all!(),
            disruption_budgets: all!(),
            client,
            opts,
        };
        (Arc::new(ctx), drivers)
    }

    /// Waits until every informer holds its first list, as controllers must
    /// not act on a partial view (client-go's `WaitForCacheSync`): a
    /// ReplicaSet reconciled before the pods are listed would create them twice.
    pub async fn synced(&self) {
        futures::join!(
            self.pods.synced(),
            self.nodes.synced(),
            self.node_leases.synced(),
            self.namespaces.synced(),
            self.service_accounts.synced(),
            self.token_secrets.synced(),
            self.root_ca_maps.synced(),
            self.services.synced(),
            self.endpoints.synced(),
            self.endpoint_slices.synced(),
            self.replica_sets.synced(),
            self.deployments.synced(),
            self.stateful_sets.synced(),
            self.daemon_sets.synced(),
            self.revisions.synced(),
            self.jobs.synced(),
            self.cron_jobs.synced(),
            self.claims.synced(),
            self.quotas.synced(),
            self.disruption_budgets.synced(),
        );
    }

    pub fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub fn cluster_api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>,
    {
        Api::all(self.client.clone())
    }
}
