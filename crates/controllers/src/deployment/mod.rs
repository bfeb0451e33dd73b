//! Deployments: roll a pod template out through ReplicaSets, one per template
//! (named by its `pod-template-hash`), with the RollingUpdate or Recreate
//! strategy, revision annotations that `kubectl rollout history | undo` read, the
//! paused state, proportional scaling in the middle of a rollout, a progress
//! deadline, and the Available / Progressing conditions `kubectl rollout status`
//! waits on. A port of Kubernetes' deployment controller.

mod rollout;
mod sync;
mod util;

pub use util::scaled_value;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::informer::Informer;
use crate::meta::{claim, controller_of, matches, now, selector};
use crate::{CACHE_WAIT, Shared};

pub const COMPONENT: &str = "deployment-controller";

pub async fn run(ctx: Shared) {
    let by_rs = ctx.deployments.clone();
    let by_pod = ctx.deployments.clone();
    let sets = ctx.replica_sets.clone();
    let queue = Queue::new(&ctx.deployments)
        .related(&ctx.replica_sets, move |rs| owners_of(&by_rs, rs))
        .related(&ctx.pods, move |pod| {
            // Recreate waits for the old pods to be gone, so their going matters.
            let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
                return Vec::new();
            };
            let ns = pod.namespace().unwrap_or_default();
            let Some(rs) = sets.get(Some(&ns), &r.name) else {
                return Vec::new();
            };
            owners_of(&by_pod, &rs)
                .into_iter()
                .filter(|d| {
                    by_pod.store().get(d).is_some_and(|d| {
                        d.spec
                            .as_ref()
                            .and_then(|s| s.strategy.as_ref())
                            .and_then(|s| s.type_.as_deref())
                            == Some("Recreate")
                    })
                })
                .collect()
        });
    driver::run(
        "deployment",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

/// The Deployment controlling `rs`, or for an orphan every Deployment that might
/// adopt it.
fn owners_of(deployments: &Informer<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    match controller_of(&rs.metadata) {
        Some(r) if r.kind == "Deployment" => vec![ObjectRef::new(&r.name).within(&ns)],
        Some(_) => Vec::new(),
        None => deployments
            .in_namespace(&ns)
            .iter()
            .filter(|d| {
                selector(d.spec.as_ref().map(|s| &s.selector))
                    .is_ok_and(|sel| !sel.is_empty() && matches(&sel, &rs.metadata))
            })
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect(),
    }
}

/// One reconcile of one Deployment: the latest version of it we know, and when
/// to look again.
pub(crate) struct Sync<'a> {
    ctx: &'a Shared,
    d: Deployment,
    ns: String,
    now: Time,
    requeue: Option<Duration>,
}

async fn reconcile(d: Arc<Deployment>, ctx: Shared) -> Result<Action> {
    let mut s = Sync {
        ctx: &ctx,
        ns: d.namespace().unwrap_or_default(),
        d: (*d).clone(),
        now: now(),
        requeue: None,
    };
    let spec = d.spec.clone().unwrap_or_default();
    let everything = spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|l| l.is_empty())
        && spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if everything {
        ctx.events
            .warning(
                COMPONENT,
                d.as_ref(),
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            .await;
        let mut status = d.status.clone().unwrap_or_default();
        if status.observed_generation < d.metadata.generation {
            status.observed_generation = d.metadata.generation;
            s.write_status(status).await?;
        }
        return Ok(Action::await_change());
    }
    let sel = match selector(Some(&spec.selector)) {
        Ok(sel) => sel,
        Err(e) => {
            tracing::warn!(deployment = %d.name_any(), error = %e, "not rolling out");
            return Ok(Action::await_change());
        }
    };
    let candidates = ctx.replica_sets.in_namespace(&s.ns);
    let owned = claim(d.as_ref(), &sel, candidates, |ns| ctx.api::<ReplicaSet>(ns)).await?;
    let rs_list: Vec<ReplicaSet> = owned.iter().map(|r| (**r).clone()).collect();

    if d.metadata.deletion_timestamp.is_some() {
        s.sync_status_only(&rs_list).await?;
    } else {
        s.check_paused_conditions().await?;
        if spec.paused == Some(true) || s.is_scaling_event(&rs_list) {
            s.sync(&rs_list).await?;
        } else if spec.strategy.as_ref().and_then(|st| st.type_.as_deref()) == Some("Recreate") {
            s.rollout_recreate(&rs_list).await?;
        } else {
            s.rollout_rolling(&rs_list).await?;
        }
    }
    Ok(match s.requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

impl Sync<'_> {
    fn api(&self) -> Api<Deployment> {
        self.ctx.api(&self.ns)
    }

    fn rs_api(&self) -> Api<ReplicaSet> {
        self.ctx.api(&self.ns)
    }

    fn name(&self) -> String {
        self.d.name_any()
    }

    /// Writes the status when it changed, keeping `self.d` current.
    async fn write_status(&mut self, status: DeploymentStatus) -> Result<()> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut updated = self.d.clone();
        updated.status = Some(status);
        match self
            .api()
            .replace_status(&self.name(), &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                self.ctx
                    .deployments
                    .wait_for_write(&written, CACHE_WAIT)
                    .await;
                self.d = written;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => {
                Err(e).ctx(|| format!("updating status of deployment {}/{}", self.ns, self.name()))
            }
        }
    }

    /// Replaces a ReplicaSet and waits for the cache to show it.
    async fn update_rs(&self, rs: &ReplicaSet) -> Result<ReplicaSet> {
        let written = self
            .rs_api()
            .replace(&rs.name_any(), &PostParams::default(), rs)
            .await
            .ctx(|| format!("updating replicaset {}/{}", self.ns, rs.name_any()))?;
        self.ctx
            .replica_sets
            .wait_for_write(&written, CACHE_WAIT)
            .await;
        Ok(written)
    }

    /// Pods controlled by any of `sets`.
    fn pods_of(&self, sets: &[ReplicaSet]) -> Vec<Arc<Pod>> {
        let uids: Vec<String> = sets.iter().filter_map(|r| r.uid()).collect();
        self.ctx
            .pods
            .in_namespace(&self.ns)
            .into_iter()
            .filter(|p| controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid)))
            .collect()
    }
}
