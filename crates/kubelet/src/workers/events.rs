//! Events about pods, as the kubelet reports them (`Pulled`, `Created`,
//! `Started`, `Killing`, `BackOff`, `Failed`, `FailedCreatePodSandBox`).
//! Sent in the background: a lost event never holds up a pod.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

#[derive(Clone)]
pub(crate) struct Recorder {
    client: kube::Client,
    node: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Normal,
    Warning,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str) -> Self {
        Self {
            client,
            node: node.to_owned(),
        }
    }

    /// Records an event about `pod` (and its container, when named).
    pub fn emit(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{}", &suffix[..16])),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                field_path: container.map(|c| format!("spec.containers{{{c}}}")),
                ..Default::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some(format!("{kind:?}")),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            action: Some(reason.to_owned()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "recording an event");
            }
        });
    }
}
