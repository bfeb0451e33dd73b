//! ResourceQuota usage: `status.used` for every resource the quota limits —
//! object counts, and the compute and storage requests and limits of the
//! namespace's pods and claims — so `kubectl describe quota` reads like
//! Kubernetes. (The API server enforces the limits at admission.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::quantity::{Format, Quantity as Amount};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, ResourceQuotaStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use crate::driver::{self, Queue};
use crate::error::{Context, Result, is_not_found};
use crate::pods::is_terminal;
use crate::{CACHE_WAIT, Shared};

/// How often counts of kinds without an informer here are refreshed
/// (`--resource-quota-sync-period`).
const RESYNC: Duration = Duration::from_secs(300);

pub async fn run(ctx: Shared) {
    let in_ns = |quotas: &crate::informer::Informer<ResourceQuota>,
                 ns: Option<&str>|
     -> Vec<ObjectRef<ResourceQuota>> {
        quotas
            .in_namespace(ns.unwrap_or_default())
            .iter()
            .map(|q| ObjectRef::from_obj(q.as_ref()))
            .collect()
    };
    let (q1, q2, q3) = (ctx.quotas.clone(), ctx.quotas.clone(), ctx.quotas.clone());
    let queue = Queue::new(&ctx.quotas)
        .related(&ctx.pods, move |p| {
            in_ns(&q1, p.metadata.namespace.as_deref())
        })
        .related(&ctx.services, move |s| {
            in_ns(&q2, s.metadata.namespace.as_deref())
        })
        .related(&ctx.claims, move |c| {
            in_ns(&q3, c.metadata.namespace.as_deref())
        });
    driver::run(
        "resourcequota",
        queue,
        ctx.clone(),
        reconciler!(reconcile),
        ctx.opts.workers,
    )
    .await;
}

fn zero() -> Amount {
    Amount::from_value(0, Format::DecimalSI)
}

/// The sum, written in the notation of the first non-zero term (`64Mi` stays
/// binary), as Kubernetes keeps the format of what it adds up.
fn sum(values: impl Iterator<Item = Amount>) -> Amount {
    values.fold(zero(), |a, b| {
        if a.is_zero() {
            b
        } else {
            a.checked_add(&b).unwrap_or(a)
        }
    })
}

fn max(a: Amount, b: Amount) -> Amount {
    if b > a || a.is_zero() { b } else { a }
}

/// A pod's request (or limit) of one resource: the containers' sum, or the
/// largest init container's if that is more, plus the pod overhead.
pub fn pod_amount(pod: &Pod, kind: &str, resource: &str) -> Amount {
    let Some(spec) = pod.spec.as_ref() else {
        return zero();
    };
    let of = |r: Option<&k8s_openapi::api::core::v1::ResourceRequirements>| {
        let list = match kind {
            "limits" => r.and_then(|r| r.limits.as_ref()),
            _ => r.and_then(|r| r.requests.as_ref()),
        };
        list.and_then(|l| l.get(resource))
            .and_then(|q| Amount::parse(&q.0).ok())
    };
    let containers = sum(spec
        .containers
        .iter()
        .filter_map(|c| of(c.resources.as_ref())));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .filter_map(|c| of(c.resources.as_ref()))
        .fold(zero(), max);
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .and_then(|q| Amount::parse(&q.0).ok());
    let base = max(containers, init);
    sum([base].into_iter().chain(overhead))
}

fn best_effort(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .all(|c| {
            c.resources.as_ref().is_none_or(|r| {
                r.requests.as_ref().is_none_or(|m| m.is_empty())
                    && r.limits.as_ref().is_none_or(|m| m.is_empty())
            })
        })
}

/// Whether a pod counts against a quota with these scopes.
fn in_scope(pod: &Pod, scopes: &[String]) -> bool {
    let terminating = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some();
    scopes.iter().all(|s| match s.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        _ => true,
    })
}

async fn count_via_api(ctx: &Shared, ns: &str, resource: &str) -> Result<Option<i128>> {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let Some(r) = apimachinery::resources::BUILTIN
        .iter()
        .find(|r| r.plural == plural && r.group == group)
    else {
        return Ok(None);
    };
    let ar = ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: r.api_version(),
        kind: r.kind.to_string(),
        plural: r.plural.to_string(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
    let list = api
        .list(&ListParams::default())
        .await
        .ctx(|| format!("counting {resource} in {ns}"))?;
    Ok(Some(i128::try_from(list.items.len()).unwrap_or(i128::MAX)))
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Shared) -> Result<Action> {
    let ns = quota.namespace().unwrap_or_default();
    let spec = quota.spec.clone().unwrap_or_default();
    let hard = spec.hard.clone().unwrap_or_default();
    let scopes = spec.scopes.clone().unwrap_or_default();
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .in_namespace(&ns)
        .into_iter()
        .filter(|p| !is_terminal(p) && in_scope(p, &scopes))
        .collect();
    let services = ctx.services.in_namespace(&ns);
    let claims = ctx.claims.in_namespace(&ns);
    let count =
        |n: usize| Amount::from_value(i128::try_from(n).unwrap_or(i128::MAX), Format::DecimalSI);
    let mut used: BTreeMap<String, Quantity> = BTreeMap::new();
    for name in hard.keys() {
        let amount = match name.as_str() {
            "pods" | "count/pods" => Some(count(pods.len())),
            "services" | "count/services" => Some(count(services.len())),
            "services.loadbalancers" => Some(count(
                services
                    .iter()
                    .filter(|s| {
                        s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
                    })
                    .count(),
            )),
            "services.nodeports" => Some(count(
                services
                    .iter()
                    .filter(|s| {
                        matches!(
                            s.spec.as_ref().and_then(|s| s.type_.as_deref()),
                            Some("NodePort" | "LoadBalancer")
                        )
                    })
                    .map(|s| {
                        s.spec
                            .as_ref()
                            .and_then(|s| s.ports.as_ref())
                            .map_or(0, |p| p.iter().filter(|p| p.node_port.is_some()).count())
                    })
                    .sum(),
            )),
            "persistentvolumeclaims" | "count/persistentvolumeclaims" => Some(count(claims.len())),
            "requests.storage" => Some(sum(claims.iter().filter_map(|c| {
                let q = c
                    .spec
                    .as_ref()?
                    .resources
                    .as_ref()?
                    .requests
                    .as_ref()?
                    .get("storage")?;
                Amount::parse(&q.0).ok()
            }))),
            other => {
                if let Some(res) = other.strip_prefix("limits.") {
                    Some(sum(pods.iter().map(|p| pod_amount(p, "limits", res))))
                } else if let Some(res) = other.strip_prefix("requests.") {
                    Some(sum(pods.iter().map(|p| pod_amount(p, "requests", res))))
                } else if matches!(other, "cpu" | "memory" | "ephemeral-storage") {
                    Some(sum(pods.iter().map(|p| pod_amount(p, "requests", other))))
                } else {
                    let resource = other.strip_prefix("count/").unwrap_or(other);
                    count_via_api(&ctx, &ns, resource)
                        .await?
                        .map(|n| Amount::from_value(n, Format::DecimalSI))
                }
            }
        };
        if let Some(a) = amount {
            used.insert(name.clone(), Quantity(a.to_canonical_string()));
        }
    }
    let status = ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used),
    };
    if quota.status.as_ref() != Some(&status) {
        let mut updated = (*quota).clone();
        updated.status = Some(status);
        match ctx
            .api::<ResourceQuota>(&ns)
            .replace_status(&quota.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                ctx.quotas.wait_for_write(&written, CACHE_WAIT).await;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(e).ctx(|| format!("updating usage of quota {ns}/{}", quota.name_any()));
            }
        }
    }
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_requests_take_the_larger_of_containers_and_init_containers() {
        let pod: Pod = serde_json::from_value(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}],
            "overhead": {"cpu": "10m"}}}))
        .expect("pod");
        assert_eq!(
            pod_amount(&pod, "requests", "cpu").to_canonical_string(),
            "510m"
        );
        assert_eq!(
            pod_amount(&pod, "requests", "memory").to_canonical_string(),
            "64Mi"
        );
        assert_eq!(
            pod_amount(&pod, "limits", "memory").to_canonical_string(),
            "1Gi"
        );
        assert!(!best_effort(&pod));
        assert!(in_scope(
            &pod,
            &["NotBestEffort".into(), "NotTerminating".into()]
        ));
    }
}
