//! Writes that the scheduling loop must not wait for: core/v1 Events and pod
//! status updates. They run on a bounded pool; when it is saturated, events
//! are dropped (as client-go's broadcaster drops them) rather than slowing
//! scheduling down.

use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

use crate::pod::PodInfo;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A pool of background API writes.
#[derive(Clone)]
pub struct Writer {
    client: kube::Client,
    component: String,
    identity: String,
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the pool: up to `concurrency` writes in flight, `queue` waiting.
    pub fn start(
        client: kube::Client,
        component: &str,
        identity: &str,
        concurrency: usize,
        queue: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(queue.max(1));
        tokio::spawn(
            tokio_stream_from(rx)
                .buffer_unordered(concurrency.max(1))
                .for_each(|()| async {}),
        );
        Self {
            client,
            component: component.to_string(),
            identity: identity.to_string(),
            tx,
        }
    }

    fn submit(&self, job: Job) {
        if self.tx.try_send(job).is_err() {
            tracing::debug!("background write queue full; dropping a write");
        }
    }

    /// Records an Event about `pod` (`type_` is `Normal` or `Warning`).
    pub fn event(&self, pod: &PodInfo, type_: &str, reason: &str, message: String) {
        let now = Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", pod.name, now.as_nanosecond())),
                namespace: Some(pod.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()),
                resource_version: Some(pod.resource_version.clone()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            action: Some(if reason == "Scheduled" {
                "Binding".into()
            } else {
                "Scheduling".into()
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.identity.clone()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &pod.namespace);
        self.submit(Box::pin(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "creating an event failed");
            }
        }));
    }

    /// Sets `PodScheduled=False, reason Unschedulable` unless the pod already says so.
    pub fn unschedulable(&self, pod: &PodInfo, current: &Pod, message: &str) {
        let same = current
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .is_some_and(|c| {
                c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(message)
            });
        if same {
            return;
        }
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": Timestamp::now().to_string(),
        }]}});
        self.patch_status(pod, patch);
    }

    /// Records the node preemption made room on (`status.nominatedNodeName`).
    pub fn nominate(&self, pod: &PodInfo, node: &str) {
        self.patch_status(pod, json!({"status": {"nominatedNodeName": node}}));
    }

    /// Drops a nomination that a higher-priority preemption overtook.
    pub fn clear_nomination(&self, pod: &PodInfo) {
        self.patch_status(pod, json!({"status": {"nominatedNodeName": null}}));
    }

    fn patch_status(&self, pod: &PodInfo, patch: serde_json::Value) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let name = pod.name.clone();
        self.submit(Box::pin(async move {
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                tracing::debug!(pod = %name, error = %e, "updating pod status failed");
            }
        }));
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub fn component(&self) -> &str {
        &self.component
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
