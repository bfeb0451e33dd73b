//! Pod creation and deletion on behalf of a workload controller, with the events
//! Kubernetes records for them and the waits that keep the next reconcile from
//! acting on a cache that does not show them yet.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};

use crate::error::{Error, Result, is_namespace_terminating, is_not_found};
use crate::{CACHE_WAIT, Shared};

/// Pods created or deleted by one reconcile at most (`burstReplicas`).
pub const BURST: usize = 500;

/// Creates `pods` in batches of 1, 2, 4, … stopping at the first batch with a
/// failure, so a pod that can never be created costs one request rather than
/// hundreds (Kubernetes' slow start). Returns how many were created and the first
/// error.
pub async fn create_pods<O>(
    ctx: &Shared,
    owner: &O,
    component: &'static str,
    pods: Vec<Pod>,
) -> (usize, Option<Error>)
where
    O: Resource<DynamicType = ()>,
{
    let mut created_names = Vec::new();
    let mut first_error = None;
    let mut rest = pods.into_iter().take(BURST).collect::<Vec<_>>();
    let mut batch = 1;
    let mut terminating = false;
    while !rest.is_empty() && first_error.is_none() && !terminating {
        let this: Vec<Pod> = rest.drain(..batch.min(rest.len())).collect();
        let results = join_all(this.iter().map(|pod| {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            async move {
                ctx.api::<Pod>(&ns)
                    .create(&PostParams::default(), pod)
                    .await
            }
        }))
        .await;
        for r in results {
            match r {
                Ok(pod) => {
                    ctx.events
                        .normal(
                            component,
                            owner,
                            "SuccessfulCreate",
                            format!("Created pod: {}", pod.name_any()),
                        )
                        .await;
                    created_names.push((pod.namespace().unwrap_or_default(), pod.name_any()));
                }
                // Nothing can be created in a namespace being deleted; not a failure.
                Err(e) if is_namespace_terminating(&e) => terminating = true,
                Err(e) => {
                    ctx.events
                        .warning(
                            component,
                            owner,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        )
                        .await;
                    if first_error.is_none() {
                        first_error = Some(Error::Api {
                            action: format!(
                                "creating pods for {} {}",
                                O::kind(&()),
                                owner.name_any()
                            ),
                            source: e,
                        });
                    }
                }
            }
        }
        batch *= 2;
    }
    let seen = ctx
        .pods
        .wait_until(CACHE_WAIT, |pods| {
            created_names
                .iter()
                .all(|(ns, n)| pods.get(Some(ns), n).is_some())
        })
        .await;
    if !seen && first_error.is_none() {
        first_error = Some(Error::CacheLag(format!(
            "pods created for {}",
            owner.name_any()
        )));
    }
    (created_names.len(), first_error)
}

/// Deletes `pods` (guarded by uid, so a pod recreated under the same name is left
/// alone), recording SuccessfulDelete or FailedDelete events.
pub async fn delete_pods<O>(
    ctx: &Shared,
    owner: &O,
    component: &'static str,
    pods: &[Arc<Pod>],
) -> Result<()>
where
    O: Resource<DynamicType = ()>,
{
    let results = join_all(pods.iter().map(|pod| {
        let ns = pod.namespace().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        async move { (pod, ctx.api::<Pod>(&ns).delete(&pod.name_any(), &dp).await) }
    }))
    .await;
    let mut first_error = None;
    for (pod, r) in results {
        match r {
            Ok(_) => {
                ctx.events
                    .normal(
                        component,
                        owner,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", pod.name_any()),
                    )
                    .await;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                ctx.events
                    .warning(
                        component,
                        owner,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    )
                    .await;
                if first_error.is_none() {
                    first_error = Some(Error::Api {
                        action: format!("deleting pod {}", pod.name_any()),
                        source: e,
                    });
                }
            }
        }
    }
    let gone = ctx
        .pods
        .wait_until(CACHE_WAIT, |cache| {
            pods.iter().all(|p| {
                let ns = p.namespace();
                cache
                    .get(ns.as_deref(), &p.name_any())
                    .is_none_or(|c| c.uid() != p.uid() || c.metadata.deletion_timestamp.is_some())
            })
        })
        .await;
    match first_error {
        Some(e) => Err(e),
        None if !gone => Err(Error::CacheLag("pod deletions".into())),
        None => Ok(()),
    }
}

/// Writes `updated` through the status subresource and waits until `informer`
/// shows the write, so the next reconcile does not act on the older status. An
/// object deleted meanwhile is not an error.
pub async fn replace_status<K>(
    ctx: &Shared,
    informer: &crate::informer::Informer<K>,
    updated: K,
) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use crate::error::Context;
    let ns = updated.namespace().unwrap_or_default();
    let name = updated.name_any();
    match ctx
        .api::<K>(&ns)
        .replace_status(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(written) => {
            informer.wait_for_write(&written, CACHE_WAIT).await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| {
            format!(
                "updating status of {} {ns}/{name}",
                K::kind(&()).to_lowercase()
            )
        }),
    }
}
