//! Where leases are read and written: the API server, or memory in tests.

use std::future::Future;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

/// Failures of reading or writing a lease.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else created or changed the lease since we read it.
    #[error("the lease was changed by another candidate")]
    Conflict,
    /// The API server could not be reached or refused the request.
    #[error("lease request failed")]
    Api(#[source] kube::Error),
}

/// Get, create and compare-and-swap replace of one namespace's leases.
pub trait LeaseStore: Send + Sync {
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;
    /// Fails with [`StoreError::Conflict`] when the lease exists.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, StoreError>> + Send;
    /// Fails with [`StoreError::Conflict`] unless the stored resourceVersion is the lease's.
    fn replace(&self, lease: &Lease) -> impl Future<Output = Result<Lease, StoreError>> + Send;
}

/// Leases served by the API server.
pub struct KubeLeases {
    api: Api<Lease>,
}

impl KubeLeases {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
        }
    }
}

fn classify(e: kube::Error) -> StoreError {
    match &e {
        kube::Error::Api(status) if status.code == 409 => StoreError::Conflict,
        _ => StoreError::Api(e),
    }
}

impl LeaseStore for KubeLeases {
    async fn get(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        self.api.get_opt(name).await.map_err(classify)
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.api
            .create(&PostParams::default(), lease)
            .await
            .map_err(classify)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let name = lease.metadata.name.as_deref().unwrap_or_default();
        self.api
            .replace(name, &PostParams::default(), lease)
            .await
            .map_err(classify)
    }
}
