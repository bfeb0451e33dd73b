//! The node's Lease in `kube-node-lease`: renewed every 10 s (a quarter of its
//! 40 s duration); the node lifecycle controller reads it as the heartbeat.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::{Error, KubeletOptions, Result};

pub(crate) const NAMESPACE: &str = "kube-node-lease";

pub(crate) struct NodeLease {
    leases: Api<Lease>,
    nodes: Api<Node>,
    name: String,
    duration_seconds: i32,
    /// The last Lease we wrote, for an update without a read.
    last: Option<Lease>,
}

impl NodeLease {
    pub fn new(client: kube::Client, opts: &KubeletOptions) -> Self {
        Self {
            leases: Api::namespaced(client.clone(), NAMESPACE),
            nodes: Api::all(client),
            name: opts.node_name.clone(),
            duration_seconds: opts.node_lease_duration.as_secs() as i32,
            last: None,
        }
    }

    pub async fn renew(&mut self) -> Result<()> {
        let now = Some(MicroTime(Timestamp::now()));
        if let Some(mut lease) = self.last.take() {
            if let Some(spec) = lease.spec.as_mut() {
                spec.renew_time = now.clone();
            }
            match self
                .leases
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(l) => {
                    self.last = Some(l);
                    return Ok(());
                }
                // Someone else wrote it (or it is gone): read it again below.
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                Err(e) => return Err(Error::api("renewing the node lease")(e)),
            }
        }
        let current = self
            .leases
            .get_opt(&self.name)
            .await
            .map_err(Error::api("reading the node lease"))?;
        let lease = match current {
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.holder_identity = Some(self.name.clone());
                spec.lease_duration_seconds = Some(self.duration_seconds);
                spec.renew_time = now;
                self.leases
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map_err(Error::api("renewing the node lease"))?
            }
            None => {
                // Owned by the Node, so deleting the Node removes it.
                let node = self
                    .nodes
                    .get(&self.name)
                    .await
                    .map_err(Error::api("reading the node for its lease"))?;
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(NAMESPACE.into()),
                        owner_references: Some(vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: self.name.clone(),
                            uid: node.metadata.uid.unwrap_or_default(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.name.clone()),
                        lease_duration_seconds: Some(self.duration_seconds),
                        renew_time: now,
                        ..Default::default()
                    }),
                };
                self.leases
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(Error::api("creating the node lease"))?
            }
        };
        self.last = Some(lease);
        Ok(())
    }
}
