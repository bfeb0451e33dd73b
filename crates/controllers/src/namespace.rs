//! Namespace deletion: once a namespace is Terminating, delete everything in it
//! (every namespaced resource the API's discovery lists), and when nothing is
//! left, drop the `kubernetes` finalizer through `namespaces/NAME/finalize` so
//! the API server removes the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use crate::Shared;
use crate::driver::{self, Queue};
use crate::error::{Context, Error, Result, is_not_found};
use crate::meta::now;

const FINALIZER: &str = "kubernetes";
/// How soon to look again while content is still going away; pods wait for their
/// node agent to stop them, so there is nothing to watch for in between.
const RECHECK: Duration = Duration::from_secs(2);

pub async fn run(ctx: Shared) {
    let namespaces = ctx.namespaces.clone();
    let queue = Queue::new(&ctx.namespaces).related(&ctx.pods, move |pod| {
        // A pod going away may be the last thing a terminating namespace waits for.
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        match namespaces.get(None, &ns) {
            Some(n) if n.metadata.deletion_timestamp.is_some() => vec![ObjectRef::new(&ns)],
            _ => Vec::new(),
        }
    });
    driver::run(
        "namespace",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn has_finalizer(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// What was left in the namespace after one deletion pass.
#[derive(Default)]
struct Remaining {
    /// Objects per resource (`pods`, `deployments.apps`).
    objects: BTreeMap<String, usize>,
    /// Objects held back by each finalizer.
    finalizers: BTreeMap<String, usize>,
    /// Resources whose deletion failed, with why.
    failures: Vec<String>,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Shared) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let discovery = match Discovery::new(ctx.client.clone()).run().await {
        Ok(d) => d,
        Err(e) => {
            let cond = condition(
                "NamespaceDeletionDiscoveryFailure",
                "True",
                "DiscoveryFailed",
                &e.to_string(),
            );
            set_conditions(&ctx, &ns, vec![cond]).await?;
            return Err(e).ctx(|| format!("discovering resources to delete in namespace {name}"));
        }
    };
    let remaining = delete_content(&ctx, &name, &discovery).await;
    let conditions = conditions_for(&remaining);
    set_conditions(&ctx, &ns, conditions).await?;
    if !remaining.failures.is_empty() {
        return Err(Error::Invalid(format!(
            "deleting content of namespace {name}: {}",
            remaining.failures.join("; ")
        )));
    }
    if !remaining.objects.is_empty() {
        return Ok(Action::requeue(RECHECK));
    }
    finalize(&ctx, &ns).await?;
    Ok(Action::await_change())
}

/// Deletes every namespaced object, then counts what is still there.
async fn delete_content(ctx: &Shared, ns: &str, discovery: &Discovery) -> Remaining {
    let mut remaining = Remaining::default();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
            {
                continue;
            }
            let resource = if ar.group.is_empty() {
                ar.plural.clone()
            } else {
                format!("{}.{}", ar.plural, ar.group)
            };
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
            let deleted = if caps.supports_operation(verbs::DELETE_COLLECTION) {
                api.delete_collection(&DeleteParams::background(), &ListParams::default())
                    .await
                    .map(|_| ())
            } else {
                delete_one_by_one(&api).await
            };
            if let Err(e) = deleted
                && !is_not_found(&e)
            {
                remaining.failures.push(format!("{resource}: {e}"));
                continue;
            }
            match api.list(&ListParams::default()).await {
                Ok(list) if list.items.is_empty() => {}
                Ok(list) => {
                    remaining.objects.insert(resource, list.items.len());
                    for obj in &list.items {
                        for f in obj.finalizers() {
                            *remaining.finalizers.entry(f.clone()).or_default() += 1;
                        }
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => remaining.failures.push(format!("{resource}: {e}")),
            }
        }
    }
    remaining
}

async fn delete_one_by_one(api: &Api<DynamicObject>) -> Result<(), kube::Error> {
    for obj in api.list(&ListParams::default()).await?.items {
        match api
            .delete(&obj.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: (!message.is_empty()).then(|| message.to_string()),
        last_transition_time: Some(now()),
    }
}

/// The conditions Kubernetes' namespace controller reports while deleting.
fn conditions_for(r: &Remaining) -> Vec<NamespaceCondition> {
    let mut out = vec![condition(
        "NamespaceDeletionDiscoveryFailure",
        "False",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    )];
    if r.failures.is_empty() {
        out.push(condition(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ));
    } else {
        out.push(condition(
            "NamespaceDeletionContentFailure",
            "True",
            "ContentDeletionFailed",
            &r.failures.join(", "),
        ));
    }
    if r.objects.is_empty() {
        out.push(condition(
            "NamespaceContentRemaining",
            "False",
            "ContentRemoved",
            "All content successfully removed",
        ));
    } else {
        let list: Vec<String> = r
            .objects
            .iter()
            .map(|(k, n)| format!("{k} has {n} resource instances"))
            .collect();
        out.push(condition(
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            &format!("Some resources are remaining: {}", list.join(", ")),
        ));
    }
    if r.finalizers.is_empty() {
        out.push(condition(
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ));
    } else {
        let list: Vec<String> = r
            .finalizers
            .iter()
            .map(|(k, n)| format!("{k} in {n} resource instances"))
            .collect();
        out.push(condition(
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            &format!(
                "Some content in the namespace has finalizers remaining: {}",
                list.join(", ")
            ),
        ));
    }
    out
}

/// Writes the conditions when they differ from the stored ones, keeping the
/// transition time of those whose status did not change.
async fn set_conditions(
    ctx: &Shared,
    ns: &Namespace,
    mut conds: Vec<NamespaceCondition>,
) -> Result<()> {
    let current = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for c in &mut conds {
        match current.iter().find(|o| o.type_ == c.type_) {
            Some(o) if o.status == c.status && o.reason == c.reason && o.message == c.message => {
                c.last_transition_time = o.last_transition_time.clone();
            }
            Some(o) if o.status == c.status => {
                c.last_transition_time = o.last_transition_time.clone();
                changed = true;
            }
            _ => changed = true,
        }
    }
    if !changed {
        return Ok(());
    }
    let mut merged: Vec<NamespaceCondition> = current
        .into_iter()
        .filter(|o| !conds.iter().any(|c| c.type_ == o.type_))
        .collect();
    merged.extend(conds);
    let status = NamespaceStatus {
        conditions: Some(merged),
        phase: ns.status.as_ref().and_then(|s| s.phase.clone()),
    };
    let api: Api<Namespace> = ctx.cluster_api();
    match api
        .patch_status(
            &ns.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("updating conditions of namespace {}", ns.name_any())),
    }
}

/// Removes the `kubernetes` finalizer; the API server deletes the namespace once
/// no finalizer is left.
async fn finalize(ctx: &Shared, ns: &Namespace) -> Result<()> {
    let name = ns.name_any();
    let mut finalized = ns.clone();
    // The conditions were just written, so the cached version is stale; the
    // finalize subresource only takes spec.finalizers anyway.
    finalized.metadata.resource_version = None;
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(
            spec.finalizers
                .iter()
                .flatten()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect(),
        );
    }
    let api: Api<Namespace> = ctx.cluster_api();
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %name, "namespace content deleted; finalized");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("finalizing namespace {name}")),
    }
}
