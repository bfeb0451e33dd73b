//! Events as client-go's recorder writes them: core/v1 Events named
//! `<object>.<hex nanos>`, with repeats of the same event folded into one whose
//! `count` and `lastTimestamp` grow. `kubectl describe` reads exactly these.
//!
//! Recording never fails a reconcile: a lost event is logged and forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

/// Folded events remembered at most; beyond it the memory starts afresh, which
/// only costs a new Event object for a repeat.
const REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    component: &'static str,
    namespace: String,
    uid: String,
    name: String,
    kind: String,
    ty: EventType,
    reason: String,
    message: String,
}

struct Folded {
    event_name: String,
    count: i32,
}

/// Writes Events on behalf of every controller.
pub struct Recorder {
    client: Client,
    /// `reportingInstance`: which controller manager wrote the event.
    instance: String,
    folded: Mutex<HashMap<Key, Folded>>,
}

impl Recorder {
    pub fn new(client: Client, instance: &str) -> Self {
        Recorder {
            client,
            instance: instance.to_string(),
            folded: Mutex::new(HashMap::new()),
        }
    }

    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        component: &'static str,
        obj: &K,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.publish(
            component,
            &reference(obj),
            EventType::Normal,
            reason,
            message.into(),
        )
        .await;
    }

    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        component: &'static str,
        obj: &K,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.publish(
            component,
            &reference(obj),
            EventType::Warning,
            reason,
            message.into(),
        )
        .await;
    }

    /// Records one event about `about`.
    pub async fn publish(
        &self,
        component: &'static str,
        about: &ObjectReference,
        ty: EventType,
        reason: &str,
        message: String,
    ) {
        // Cluster-scoped objects' events live in `default`, as client-go puts them.
        let namespace = about
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = Key {
            component,
            namespace: namespace.clone(),
            uid: about.uid.clone().unwrap_or_default(),
            name: about.name.clone().unwrap_or_default(),
            kind: about.kind.clone().unwrap_or_default(),
            ty,
            reason: reason.to_string(),
            message: message.clone(),
        };
        let now = Time(Timestamp::now());
        let repeat = {
            let folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
            folded
                .get(&key)
                .map(|f| (f.event_name.clone(), f.count + 1))
        };
        if let Some((event_name, count)) = repeat {
            let patch = json!({"count": count, "lastTimestamp": now});
            match api
                .patch(&event_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(key, event_name, count);
                    return;
                }
                // The folded event was deleted (TTL, namespace cleanup): start a new one.
                Err(e) => {
                    tracing::debug!(event = %event_name, error = %e, "updating a folded event failed")
                }
            }
        }
        let involved_name = about.name.clone().unwrap_or_default();
        let event_name = format!("{involved_name}.{:x}", now.0.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: about.clone(),
            reason: Some(reason.to_string()),
            message: Some(message),
            source: Some(EventSource {
                component: Some(component.to_string()),
                host: None,
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            type_: Some(ty.as_str().to_string()),
            reporting_component: Some(component.to_string()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self.remember(key, event_name, 1),
            Err(e) => tracing::debug!(reason, error = %e, "recording an event failed"),
        }
    }

    fn remember(&self, key: Key, event_name: String, count: i32) {
        let mut folded = self.folded.lock().unwrap_or_else(|p| p.into_inner());
        if folded.len() >= REMEMBERED && !folded.contains_key(&key) {
            folded.clear();
        }
        folded.insert(key, Folded { event_name, count });
    }
}

/// The reference an event names its object by.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        name: Some(obj.name_any()),
        namespace: obj.namespace(),
        uid: obj.uid(),
        resource_version: obj.resource_version(),
        ..Default::default()
    }
}
