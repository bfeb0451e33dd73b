//! Binding through `pods/NAME/binding`, many at once, so the next pod is
//! scheduled while earlier binds are on the wire. Results come back to the
//! loop, which forgets the assumed pod and re-queues it when a bind failed.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tokio::sync::{Semaphore, mpsc};

use crate::events::Writer;
use crate::pod::PodInfo;

/// The outcome of one bind.
pub struct BindResult {
    pub pod: Arc<PodInfo>,
    pub node: String,
    pub result: Result<(), kube::Error>,
}

pub struct Binder {
    client: kube::Client,
    limit: Arc<Semaphore>,
    results: mpsc::UnboundedSender<BindResult>,
    writer: Writer,
    scheduled_events: bool,
}

impl Binder {
    pub fn new(
        client: kube::Client,
        concurrency: usize,
        writer: Writer,
        scheduled_events: bool,
    ) -> (Self, mpsc::UnboundedReceiver<BindResult>) {
        let (results, rx) = mpsc::unbounded_channel();
        let binder = Self {
            client,
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            results,
            writer,
            scheduled_events,
        };
        (binder, rx)
    }

    /// Starts binding `pod` to `node`; waits only when too many binds are in flight.
    pub async fn bind(&self, pod: Arc<PodInfo>, node: String) {
        let Ok(permit) = self.limit.clone().acquire_owned().await else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let results = self.results.clone();
        let writer = self.scheduled_events.then(|| self.writer.clone());
        tokio::spawn(async move {
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(pod.name.clone()),
                    namespace: Some(pod.namespace.clone()),
                    uid: Some(pod.uid.clone()),
                    ..Default::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..Default::default()
                },
            };
            let result = api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &pod.name,
                    &PostParams::default(),
                    &binding,
                )
                .await
                .map(drop);
            drop(permit);
            if result.is_ok()
                && let Some(w) = writer
            {
                let msg = format!(
                    "Successfully assigned {}/{} to {node}",
                    pod.namespace, pod.name
                );
                w.event(&pod, "Normal", "Scheduled", msg);
            }
            let _ = results.send(BindResult { pod, node, result });
        });
    }

    /// Binds in flight right now.
    pub fn in_flight(&self, concurrency: usize) -> usize {
        concurrency.saturating_sub(self.limit.available_permits())
    }
}
