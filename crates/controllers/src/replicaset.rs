//! ReplicaSets: keep `spec.replicas` active pods matching the selector, adopting
//! orphans and releasing pods that stopped matching, and report how many are
//! ready and available.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::Shared;
use crate::driver::{self, Queue};
use crate::error::{Error, Result};
use crate::informer::Informer;
use crate::meta::{claim, controller_of, matches, now, selector};
use crate::pods::{self, deletion_order, is_active};
use crate::workload::{BURST, create_pods, delete_pods};

pub const COMPONENT: &str = "replicaset-controller";

pub async fn run(ctx: Shared) {
    let sets = ctx.replica_sets.clone();
    let queue = Queue::new(&ctx.replica_sets).related(&ctx.pods, move |pod| owners_of(&sets, pod));
    driver::run(
        "replicaset",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

/// The ReplicaSet controlling `pod`, or for an orphan every ReplicaSet that
/// might adopt it.
fn owners_of(sets: &Informer<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match controller_of(&pod.metadata) {
        Some(r) if r.kind == "ReplicaSet" && r.api_version.starts_with("apps/") => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => Vec::new(),
        None => sets
            .in_namespace(&ns)
            .iter()
            .filter(|rs| {
                selector(rs.spec.as_ref().map(|s| &s.selector))
                    .is_ok_and(|sel| !sel.is_empty() && matches(&sel, &pod.metadata))
            })
            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
            .collect(),
    }
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Shared) -> Result<Action> {
    let ns = rs.namespace().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let sel = match selector(Some(&spec.selector)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(replicaset = %rs.name_any(), error = %e, "not managing pods");
            return Ok(Action::await_change());
        }
    };
    let active: Vec<Arc<Pod>> = ctx
        .pods
        .in_namespace(&ns)
        .into_iter()
        .filter(|p| is_active(p))
        .collect();
    let pods = claim(rs.as_ref(), &sel, active, |ns| ctx.api::<Pod>(ns)).await?;

    let manage = if rs.metadata.deletion_timestamp.is_none() {
        manage_replicas(&ctx, &rs, &pods).await
    } else {
        Ok(())
    };
    let now = now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let status = status_for(&rs, &pods, manage.as_ref().err(), &now);
    write_status(&ctx, &rs, status).await?;
    manage?;
    // A ready pod becomes available after minReadySeconds; look again then.
    let next = pods
        .iter()
        .filter_map(|p| pods::seconds_to_available(p, min_ready, &now))
        .fold(None, |acc: Option<f64>, s| {
            Some(acc.map_or(s, |a| a.min(s)))
        });
    Ok(match next {
        Some(secs) => Action::requeue(std::time::Duration::from_secs_f64(secs + 0.1)),
        None => Action::await_change(),
    })
}

async fn manage_replicas(ctx: &Shared, rs: &ReplicaSet, pods: &[Arc<Pod>]) -> Result<()> {
    let spec = rs.spec.clone().unwrap_or_default();
    let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
    let have = pods.len();
    if have < want {
        let Some(template) = spec.template.as_ref() else {
            return Err(Error::Invalid(format!(
                "replicaset {} has no pod template",
                rs.name_any()
            )));
        };
        let ns = rs.namespace().unwrap_or_default();
        let prefix = format!("{}-", rs.name_any());
        let new: Vec<Pod> = (0..(want - have).min(BURST))
            .map(|_| pods::from_template(template, &ns, crate::meta::controller_ref(rs), &prefix))
            .collect();
        let (_, err) = create_pods(ctx, rs, COMPONENT, new).await;
        return err.map_or(Ok(()), Err);
    }
    if have > want {
        let mut doomed: Vec<Arc<Pod>> = pods.to_vec();
        doomed.sort_by(|a, b| deletion_order(a, b));
        doomed.truncate((have - want).min(BURST));
        return delete_pods(ctx, rs, COMPONENT, &doomed).await;
    }
    Ok(())
}

fn status_for(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    failure: Option<&Error>,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = count(&|p| {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    });
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    if let Some(e) = failure
        && !matches!(e, Error::CacheLag(_))
    {
        let reason = if pods.len() < usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0) {
            "FailedCreate"
        } else {
            "FailedDelete"
        };
        let previous = old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "ReplicaFailure" && c.reason.as_deref() == Some(reason));
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(crate::driver::ErrorChain(e).to_string()),
            last_transition_time: previous
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| Some(now.clone())),
        });
    }
    ReplicaSetStatus {
        replicas: i32::try_from(pods.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&pods::is_ready)),
        available_replicas: Some(count(&|p| pods::is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    }
}

async fn write_status(ctx: &Shared, rs: &ReplicaSet, status: ReplicaSetStatus) -> Result<()> {
    if rs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut updated = rs.clone();
    updated.status = Some(status);
    crate::workload::replace_status(ctx, &ctx.replica_sets, updated).await
}
