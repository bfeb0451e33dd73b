//! PodDisruptionBudget status: how many selected pods are healthy, how many must
//! stay so, and so how many voluntary disruptions (evictions) are allowed now.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::deployment::scaled_value;
use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::meta::{add_seconds, controller_of, matches, now, seconds_since, selector};
use crate::pods::{is_ready, is_terminal};
use crate::{CACHE_WAIT, Shared};

const COMPONENT: &str = "controllermanager";
/// How long an eviction recorded in `disruptedPods` counts before the pod is
/// expected to be gone.
const DISRUPTION_TIMEOUT: i64 = 120;

pub async fn run(ctx: Shared) {
    let budgets = ctx.disruption_budgets.clone();
    let queue = Queue::new(&ctx.disruption_budgets).related(&ctx.pods, move |pod| {
        budgets
            .in_namespace(pod.metadata.namespace.as_deref().unwrap_or_default())
            .iter()
            .map(|b| ObjectRef::from_obj(b.as_ref()))
            .collect()
    });
    driver::run(
        "disruption",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

/// The replicas the pods' controllers ask for, counted once per controller:
/// Deployments (through their ReplicaSets), ReplicaSets and StatefulSets.
fn expected_count(ctx: &Shared, pods: &[Arc<Pod>]) -> Result<i32, String> {
    let mut seen = HashSet::new();
    let mut total: i32 = 0;
    for pod in pods {
        let ns = pod.namespace().unwrap_or_default();
        let Some(r) = controller_of(&pod.metadata) else {
            return Err(format!("found no controller for pod {}", pod.name_any()));
        };
        let (uid, replicas) = match r.kind.as_str() {
            "ReplicaSet" => {
                let rs = ctx
                    .replica_sets
                    .get(Some(&ns), &r.name)
                    .ok_or_else(|| format!("replicaset {} not found", r.name))?;
                match controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
                    Some(d) => {
                        let dep = ctx
                            .deployments
                            .get(Some(&ns), &d.name)
                            .ok_or_else(|| format!("deployment {} not found", d.name))?;
                        (
                            d.uid.clone(),
                            dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        )
                    }
                    None => (
                        r.uid.clone(),
                        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ),
                }
            }
            "StatefulSet" => {
                let ss = ctx
                    .stateful_sets
                    .get(Some(&ns), &r.name)
                    .ok_or_else(|| format!("statefulset {} not found", r.name))?;
                (
                    r.uid.clone(),
                    ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                )
            }
            other => return Err(format!("pods controlled by a {other} have no scale")),
        };
        if seen.insert(uid) {
            total = total.saturating_add(replicas.max(0));
        }
    }
    Ok(total)
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Shared) -> Result<Action> {
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let now = now();
    let sel = match selector(spec.selector.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(pdb = %pdb.name_any(), error = %e, "not computing disruption budget");
            return Ok(Action::await_change());
        }
    };
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .in_namespace(&ns)
        .into_iter()
        .filter(|p| matches(&sel, &p.metadata) && !is_terminal(p))
        .collect();
    let old = pdb.status.clone().unwrap_or_default();
    // Evictions still in flight count as disrupted until the pod goes or they expire.
    let disrupted: BTreeMap<String, Time> = old
        .disrupted_pods
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, at)| {
            seconds_since(at, &now) < DISRUPTION_TIMEOUT as f64
                && pods
                    .iter()
                    .any(|p| &p.name_any() == name && p.metadata.deletion_timestamp.is_none())
        })
        .collect();
    let healthy = i32::try_from(
        pods.iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && !disrupted.contains_key(&p.name_any())
                    && is_ready(p)
            })
            .count(),
    )
    .unwrap_or(i32::MAX);
    let targets = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(min)), None) => {
            Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), *min))
        }
        (min, max) => expected_count(&ctx, &pods).map(|expected| {
            let desired = match (min, max) {
                (_, Some(max)) => (expected - scaled_value(Some(max), expected, true)).max(0),
                (Some(min), None) => scaled_value(Some(min), expected, true),
                (None, None) => expected,
            };
            (expected, desired)
        }),
    };
    // Without knowing how many pods there should be, nothing may be disrupted.
    let (expected, desired, allowed) = match targets {
        Ok((expected, desired)) => (expected, desired, (healthy - desired).max(0)),
        Err(why) => {
            ctx.events
                .warning(
                    COMPONENT,
                    pdb.as_ref(),
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {why}"),
                )
                .await;
            (0, 0, 0)
        }
    };
    let (cond_status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let previous = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let condition = Condition {
        type_: "DisruptionAllowed".into(),
        status: cond_status.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: previous
            .filter(|c| c.status == cond_status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
    };
    let status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        expected_pods: expected,
        observed_generation: pdb.metadata.generation,
        disrupted_pods: (!disrupted.is_empty()).then(|| disrupted.clone()),
        conditions: Some(vec![condition]),
    };
    if pdb.status.as_ref() != Some(&status) {
        let mut updated = (*pdb).clone();
        updated.status = Some(status);
        match ctx
            .api::<PodDisruptionBudget>(&ns)
            .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                ctx.disruption_budgets
                    .wait_for_write(&written, CACHE_WAIT)
                    .await;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(e).ctx(|| {
                    format!(
                        "updating status of disruption budget {ns}/{}",
                        pdb.name_any()
                    )
                });
            }
        }
    }
    // Look again when the oldest recorded disruption expires.
    let next = disrupted
        .values()
        .map(|at| -seconds_since(&add_seconds(at, DISRUPTION_TIMEOUT), &now))
        .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.min(s))));
    Ok(next.map_or(Action::await_change(), |s| {
        Action::requeue(Duration::from_secs_f64(s.max(0.0) + 0.1))
    }))
}
