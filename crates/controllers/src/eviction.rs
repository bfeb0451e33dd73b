//! Taint-based eviction: a pod bound to a node with NoExecute taints it does not
//! tolerate is deleted at once; one that tolerates them for a while is deleted
//! when the shortest of those tolerations runs out, counted from when the taint
//! was added. Its controller then creates a replacement elsewhere.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use crate::Shared;
use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::meta::{now, seconds_since};
use crate::nodelifecycle::{NOT_READY, UNREACHABLE};
use crate::pods::{is_terminal, node_name};

const COMPONENT: &str = "taint-eviction-controller";

pub async fn run(ctx: Shared) {
    let pods = ctx.pods.clone();
    let queue = Queue::new(&ctx.pods).related(&ctx.nodes, move |node| {
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.effect == "NoExecute"));
        if !tainted {
            return Vec::new();
        }
        pods.with_key(&node.name_any())
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect()
    });
    driver::run(
        "tainteviction",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if tol
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or("");
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// Seconds after a taint's addition that the pod must go: `Some(0)` for a taint
/// it does not tolerate, `None` when it tolerates every taint for ever.
pub fn deadline(
    taints: &[Taint],
    tolerations: &[Toleration],
    default_for_node_conditions: Duration,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Option<f64> {
    let mut soonest: Option<f64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let tolerated_for = if matching.is_empty() {
            // Pods normally carry the 300 s tolerations the API server adds; one
            // made without that admission step gets the configured default.
            if taint.key == NOT_READY || taint.key == UNREACHABLE {
                Some(default_for_node_conditions.as_secs_f64())
            } else {
                Some(0.0)
            }
        } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            None
        } else {
            matching
                .iter()
                .filter_map(|t| t.toleration_seconds)
                .min()
                .map(|s| s.max(0) as f64)
        };
        let Some(secs) = tolerated_for else { continue };
        let elapsed = taint
            .time_added
            .as_ref()
            .map_or(0.0, |t| seconds_since(t, now).max(0.0));
        let left = secs - elapsed;
        soonest = Some(soonest.map_or(left, |s| s.min(left)));
    }
    soonest
}

async fn reconcile(pod: Arc<Pod>, ctx: Shared) -> Result<Action> {
    if pod.metadata.deletion_timestamp.is_some() || is_terminal(&pod) {
        return Ok(Action::await_change());
    }
    let Some(node) = node_name(&pod).and_then(|n| ctx.nodes.get(None, n)) else {
        return Ok(Action::await_change());
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let now = now();
    let Some(left) = deadline(&taints, &tolerations, ctx.opts.pod_eviction_timeout, &now) else {
        return Ok(Action::await_change());
    };
    if left > 0.0 {
        return Ok(Action::requeue(Duration::from_secs_f64(left + 0.1)));
    }
    evict(&ctx, &pod).await?;
    Ok(Action::await_change())
}

async fn evict(ctx: &Shared, pod: &Pod) -> Result<()> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api = ctx.api::<Pod>(&ns);
    ctx.events
        .normal(
            COMPONENT,
            pod,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        )
        .await;
    // Says why the pod went, for `kubectl describe` and disruption budgets.
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": now(),
    }]}});
    if let Err(e) = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await
    {
        tracing::debug!(pod = %name, error = %e, "adding the DisruptionTarget condition failed");
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{ns}/{name}"), "evicted from a tainted node");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("evicting pod {ns}/{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("time"))
    }

    fn taint(key: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            time_added: Some(at(added)),
            value: None,
        }
    }

    fn toleration(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn untolerated_taints_evict_now_and_tolerations_count_from_the_taint() {
        let default = Duration::from_secs(300);
        assert_eq!(
            deadline(&[taint("dedicated", 100)], &[], default, &at(100)),
            Some(0.0)
        );
        let tol = [toleration(UNREACHABLE, Some(300))];
        assert_eq!(
            deadline(&[taint(UNREACHABLE, 100)], &tol, default, &at(160)),
            Some(240.0)
        );
        assert_eq!(
            deadline(
                &[taint(UNREACHABLE, 100)],
                &[toleration(UNREACHABLE, None)],
                default,
                &at(900)
            ),
            None
        );
        // Without the admission-added toleration the configured default applies.
        assert_eq!(
            deadline(
                &[taint(NOT_READY, 100)],
                &[],
                Duration::from_secs(30),
                &at(110)
            ),
            Some(20.0)
        );
        // An Exists toleration with no key tolerates everything.
        let all = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(
            deadline(&[taint("dedicated", 1)], &[all], default, &at(5)),
            None
        );
    }
}
