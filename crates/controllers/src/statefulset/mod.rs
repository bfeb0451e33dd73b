//! StatefulSets: pods with stable names `<set>-<ordinal>` and their own claims,
//! started in order (each waits for the previous to be running and ready) and
//! stopped in reverse, or all at once with the Parallel policy; rolling updates
//! replace pods from the highest ordinal down to the partition, one at a time.
//! Templates are kept as ControllerRevisions for `kubectl rollout history | undo`.

mod identity;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::driver::{self, Queue};
use crate::error::{
    Context, Error, Result, is_already_exists, is_namespace_terminating, is_not_found,
};
use crate::meta::{claim, controller_of, now, selector};
use crate::pods::{is_available, is_ready, is_terminal, seconds_to_available};
use crate::revisions;
use crate::{CACHE_WAIT, Shared};
use identity::{REVISION_LABEL, ordinal};

const COMPONENT: &str = "statefulset-controller";

pub async fn run(ctx: Shared) {
    let owner = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| -> Vec<ObjectRef<StatefulSet>> {
        let ns = meta.namespace.clone().unwrap_or_default();
        controller_of(meta)
            .filter(|r| r.kind == "StatefulSet")
            .map(|r| ObjectRef::new(&r.name).within(&ns))
            .into_iter()
            .collect()
    };
    let queue = Queue::new(&ctx.stateful_sets)
        .related(&ctx.pods, move |p| owner(&p.metadata))
        .related(&ctx.revisions, move |r| owner(&r.metadata));
    driver::run(
        "statefulset",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn running_and_ready(p: &Pod) -> bool {
    crate::pods::phase(p) == "Running" && is_ready(p) && p.metadata.deletion_timestamp.is_none()
}

fn revision_of(p: &Pod) -> Option<&String> {
    p.metadata.labels.as_ref()?.get(REVISION_LABEL)
}

/// What one pass over the set decided: how many pods moved, whether to stop.
struct Pass<'a> {
    ctx: &'a Shared,
    set: &'a StatefulSet,
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Shared) -> Result<Action> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let spec = set.spec.clone().unwrap_or_default();
    let sel = match selector(Some(&spec.selector)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(statefulset = %name, error = %e, "not managing pods");
            return Ok(Action::await_change());
        }
    };
    let members: Vec<Arc<Pod>> = ctx
        .pods
        .in_namespace(&ns)
        .into_iter()
        .filter(|p| ordinal(&name, &p.name_any()).is_some())
        .collect();
    let pods = claim(set.as_ref(), &sel, members, |ns| ctx.api::<Pod>(ns)).await?;
    let mut status = set.status.clone().unwrap_or_default();

    let update =
        match revisions::ensure(&ctx, set.as_ref(), &spec.template, status.collision_count).await {
            Ok(r) => r,
            Err(Error::Invalid(msg)) if msg.contains("collision") => {
                status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                write_status(&ctx, &set, status).await?;
                return Err(Error::Invalid(msg));
            }
            Err(e) => return Err(e),
        };
    let history = revisions::history(&ctx, set.as_ref());
    let current: ControllerRevision = status
        .current_revision
        .as_ref()
        .and_then(|c| history.iter().find(|r| &r.name_any() == c))
        .map_or_else(|| update.clone(), |r| (**r).clone());
    let by_ordinal: BTreeMap<i32, Arc<Pod>> = pods
        .iter()
        .filter_map(|p| Some((ordinal(&name, &p.name_any())?, p.clone())))
        .collect();

    if set.metadata.deletion_timestamp.is_none() {
        let pass = Pass {
            ctx: &ctx,
            set: &set,
        };
        pass.run(&by_ordinal, &current, &update, &status).await?;
    }

    let now = now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let fresh: Vec<Arc<Pod>> = ctx
        .pods
        .in_namespace(&ns)
        .into_iter()
        .filter(|p| {
            ordinal(&name, &p.name_any()).is_some()
                && crate::meta::controlled_by(&p.metadata, &set.uid().unwrap_or_default())
        })
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(fresh.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let update_name = update.name_any();
    let current_name = current.name_any();
    status.observed_generation = set.metadata.generation;
    status.replicas = count(&|_| true);
    status.ready_replicas = Some(count(&running_and_ready));
    status.available_replicas = Some(count(&|p| {
        running_and_ready(p) && is_available(p, min_ready, &now)
    }));
    status.current_replicas = Some(count(&|p| revision_of(p) == Some(&current_name)));
    status.updated_replicas = Some(count(&|p| revision_of(p) == Some(&update_name)));
    status.current_revision = Some(current_name.clone());
    status.update_revision = Some(update_name.clone());
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    // A finished rolling update makes the update revision the current one.
    if rolling
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_revision = Some(update_name.clone());
        status.current_replicas = status.updated_replicas;
    }
    let live: HashSet<String> = fresh
        .iter()
        .filter_map(|p| revision_of(p).cloned())
        .chain([update_name, current_name])
        .chain(status.current_revision.clone())
        .collect();
    revisions::truncate(
        &ctx,
        &history,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;
    write_status(&ctx, &set, status).await?;
    let next = fresh
        .iter()
        .filter_map(|p| seconds_to_available(p, min_ready, &now))
        .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.min(s))));
    Ok(next.map_or(Action::await_change(), |s| {
        Action::requeue(Duration::from_secs_f64(s + 0.1))
    }))
}

impl Pass<'_> {
    async fn run(
        &self,
        pods: &BTreeMap<i32, Arc<Pod>>,
        current: &ControllerRevision,
        update: &ControllerRevision,
        status: &StatefulSetStatus,
    ) -> Result<()> {
        let spec = self.set.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1).max(0);
        // Ordinals run from `spec.ordinals.start`; the partition counts from there.
        let start = spec
            .ordinals
            .as_ref()
            .and_then(|o| o.start)
            .unwrap_or(0)
            .max(0);
        let end = start.saturating_add(replicas);
        let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let rolling = strategy
            .type_
            .as_deref()
            .is_none_or(|t| t == "RollingUpdate");
        let partition = strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let current_template =
            revisions::template_of(current).unwrap_or_else(|| spec.template.clone());
        let mut created = 0;

        // Replicas, lowest ordinal first.
        for ord in start..end {
            match pods.get(&ord) {
                None => {
                    let index = ord - start;
                    let old = if rolling {
                        index < partition
                    } else {
                        index < status.current_replicas.unwrap_or(0)
                    };
                    let (template, rev) = if old {
                        (&current_template, current.name_any())
                    } else {
                        (&spec.template, update.name_any())
                    };
                    self.create(ord, template, &rev).await?;
                    created += 1;
                    if ordered || created >= crate::workload::BURST {
                        return Ok(());
                    }
                }
                Some(p) if is_terminal(p) => {
                    // A failed or finished member is replaced under the same name.
                    self.delete(p).await?;
                    if ordered {
                        return Ok(());
                    }
                }
                Some(p) if ordered && !running_and_ready(p) => return Ok(()),
                Some(_) => {}
            }
        }
        // Surplus members, highest ordinal first, once the rest are healthy.
        let condemned: Vec<&Arc<Pod>> = pods
            .iter()
            .rev()
            .filter(|(o, _)| !(start..end).contains(*o))
            .map(|(_, p)| p)
            .collect();
        for p in &condemned {
            if p.metadata.deletion_timestamp.is_some() {
                if ordered {
                    return Ok(());
                }
                continue;
            }
            self.release_claims_with(p).await?;
            self.delete(p).await?;
            if ordered {
                return Ok(());
            }
        }
        if !rolling || pods.range(start..end).any(|(_, p)| !running_and_ready(p)) {
            return Ok(());
        }
        // Rolling update: from the top down to the partition, one pod at a time.
        let update_name = update.name_any();
        for ord in (start.saturating_add(partition.max(0))..end).rev() {
            if let Some(p) = pods.get(&ord)
                && revision_of(p) != Some(&update_name)
            {
                self.delete(p).await?;
                return Ok(());
            }
        }
        Ok(())
    }

    async fn create(&self, ord: i32, template: &PodTemplateSpec, revision: &str) -> Result<()> {
        let ns = self.set.namespace().unwrap_or_default();
        let set_name = self.set.name_any();
        let pod = identity::pod(self.set, template, revision, ord);
        let pod_name = pod.name_any();
        for claim in identity::claims(self.set, ord) {
            self.ensure_claim(&claim, &pod_name).await?;
        }
        match self
            .ctx
            .api::<Pod>(&ns)
            .create(&PostParams::default(), &pod)
            .await
        {
            Ok(created) => {
                self.ctx
                    .events
                    .normal(
                        COMPONENT,
                        self.set,
                        "SuccessfulCreate",
                        format!("create Pod {pod_name} in StatefulSet {set_name} successful"),
                    )
                    .await;
                self.ctx.pods.wait_for_write(&created, CACHE_WAIT).await;
                Ok(())
            }
            Err(e) if is_already_exists(&e) || is_namespace_terminating(&e) => Ok(()),
            Err(e) => {
                self.ctx
                    .events
                    .warning(
                        COMPONENT,
                        self.set,
                        "FailedCreate",
                        format!(
                            "create Pod {pod_name} in StatefulSet {set_name} failed error: {e}"
                        ),
                    )
                    .await;
                Err(e).ctx(|| format!("creating pod {ns}/{pod_name}"))
            }
        }
    }

    async fn ensure_claim(&self, claim: &PersistentVolumeClaim, pod_name: &str) -> Result<()> {
        let ns = self.set.namespace().unwrap_or_default();
        let name = claim.name_any();
        if self.ctx.claims.get(Some(&ns), &name).is_some() {
            return Ok(());
        }
        match self
            .ctx
            .api::<PersistentVolumeClaim>(&ns)
            .create(&PostParams::default(), claim)
            .await
        {
            Ok(_) => {
                let msg = format!(
                    "create Claim {name} Pod {pod_name} in StatefulSet {} success",
                    self.set.name_any()
                );
                self.ctx
                    .events
                    .normal(COMPONENT, self.set, "SuccessfulCreate", msg)
                    .await;
                Ok(())
            }
            Err(e) if is_already_exists(&e) || is_namespace_terminating(&e) => Ok(()),
            Err(e) => {
                let msg = format!(
                    "create Claim {name} for Pod {pod_name} in StatefulSet {} failed error: {e}",
                    self.set.name_any()
                );
                self.ctx
                    .events
                    .warning(COMPONENT, self.set, "FailedCreate", msg)
                    .await;
                Err(e).ctx(|| format!("creating claim {ns}/{name}"))
            }
        }
    }

    /// With `whenScaled: Delete`, a condemned pod's claims become its
    /// dependents, so the garbage collector removes them after it.
    async fn release_claims_with(&self, pod: &Pod) -> Result<()> {
        let spec = self.set.spec.clone().unwrap_or_default();
        let delete_on_scale = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_scaled.as_deref())
            == Some("Delete");
        let Some(ord) = ordinal(&self.set.name_any(), &pod.name_any()) else {
            return Ok(());
        };
        if !delete_on_scale {
            return Ok(());
        }
        let ns = self.set.namespace().unwrap_or_default();
        let owner = serde_json::json!([{
            "apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "uid": pod.uid(),
            "blockOwnerDeletion": true,
        }]);
        for claim in identity::claims(self.set, ord) {
            let name = claim.name_any();
            let Some(cur) = self.ctx.claims.get(Some(&ns), &name) else {
                continue;
            };
            if cur
                .owner_references()
                .iter()
                .any(|r| Some(&r.uid) == pod.uid().as_ref())
            {
                continue;
            }
            let mut refs = serde_json::to_value(cur.owner_references()).unwrap_or_default();
            if let (Some(list), Some(new)) = (refs.as_array_mut(), owner.as_array()) {
                list.extend(new.iter().cloned());
            }
            let patch = serde_json::json!({"metadata": {"resourceVersion": cur.resource_version(), "ownerReferences": refs}});
            match self
                .ctx
                .api::<PersistentVolumeClaim>(&ns)
                .patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(e)
                        .ctx(|| format!("handing claim {ns}/{name} to its condemned pod"));
                }
            }
        }
        Ok(())
    }

    async fn delete(&self, pod: &Pod) -> Result<()> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let uid = pod.uid().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.ctx.api::<Pod>(&ns).delete(&name, &dp).await {
            Ok(_) => {
                let msg = format!(
                    "delete Pod {name} in StatefulSet {} successful",
                    self.set.name_any()
                );
                self.ctx
                    .events
                    .normal(COMPONENT, self.set, "SuccessfulDelete", msg)
                    .await;
                self.ctx
                    .pods
                    .wait_for_delete(Some(&ns), &name, &uid, CACHE_WAIT)
                    .await;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => {
                let msg = format!(
                    "delete Pod {name} in StatefulSet {} failed error: {e}",
                    self.set.name_any()
                );
                self.ctx
                    .events
                    .warning(COMPONENT, self.set, "FailedDelete", msg)
                    .await;
                Err(e).ctx(|| format!("deleting pod {ns}/{name}"))
            }
        }
    }
}

async fn write_status(ctx: &Shared, set: &StatefulSet, status: StatefulSetStatus) -> Result<()> {
    if set.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = set.clone();
    updated.status = Some(status);
    crate::workload::replace_status(ctx, &ctx.stateful_sets, updated).await
}
