//! Watches of the ConfigMaps and Secrets the pod's volumes show: a change
//! makes the worker write the volumes again.

use super::*;

/// A task that ends with its owner.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches one object and tells the worker when it changes (after the first
/// listing; a relist after a broken watch counts as a change, as one may
/// have been missed).
pub(super) fn watch_source<K>(
    api: Api<K>,
    name: &str,
    tx: mpsc::WeakUnboundedSender<Msg>,
) -> AbortOnDrop
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{self, Event};
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    AbortOnDrop(tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut listed = false;
        while let Some(ev) = stream.next().await {
            let changed = match ev {
                Ok(Event::InitDone) => std::mem::replace(&mut listed, true),
                Ok(Event::Apply(_) | Event::Delete(_)) => listed,
                _ => false,
            };
            if changed {
                let Some(tx) = tx.upgrade() else { return };
                let _ = tx.send(Msg::VolumesChanged);
            }
        }
    }))
}

impl Worker {
    pub(super) fn watch_sources(&mut self) {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let (cms, secrets) = volumes::sources(&self.pod);
        let client = &self.shared.client;
        for name in cms {
            let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
                Api::namespaced(client.clone(), &ns);
            self.source_watches
                .push(watch_source(api, &name, self.tx.clone()));
        }
        for name in secrets {
            let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
            self.source_watches
                .push(watch_source(api, &name, self.tx.clone()));
        }
    }
}
