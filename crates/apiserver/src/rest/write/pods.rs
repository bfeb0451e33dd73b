//! The pod write subresources: binding (the scheduler's placement) and eviction
//! (a graceful delete that respects PodDisruptionBudgets).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::delete::{delete_one, delete_options};
use super::{Change, Outcome, Target, guaranteed_update, set_at, success};
use crate::error::{ApiError, ApiResult, Cause};
use crate::rest::strategy;
use crate::rest::{Api, Call, decode_body};

/// POST pods/NAME/binding: the scheduler's placement.
pub async fn bind(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let binding = decode_body(&call.body, call.content_type())?;
    let node = apimachinery::json::str_ptr(&binding, "/target/name").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &call.info.name,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "target.name: Required value".into(),
                field: "target.name".into(),
            }],
        ));
    }
    let name = call.info.name.as_str();
    let target = Target::of(call, name);
    let now = crate::clock::now_rfc3339();
    let outcome = guaranteed_update(api, &target, call.dry_run(), |mut pod, _| {
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        let current = apimachinery::json::str_ptr(&pod, "/spec/nodeName");
        if !current.is_empty() {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                &format!("pod {name} is already assigned to node \"{current}\""),
            ));
        }
        set_at(&mut pod, "/spec/nodeName", Value::String(node.clone()));
        strategy::set_condition(&mut pod, "PodScheduled", "True", None, None, &now);
        Ok(Change::Put(pod))
    })
    .await?;
    if let Outcome::Absent = outcome {
        return Err(target.not_found());
    }
    success(StatusCode::CREATED)
}

/// POST pods/NAME/eviction: a graceful delete on behalf of a disruption, refused
/// with 429 while a PodDisruptionBudget covering the pod allows no disruption.
pub async fn evict(api: &Api, call: &Call<'_>) -> ApiResult<Response> {
    let eviction = decode_body(&call.body, call.content_type())?;
    let opts = delete_options(call, eviction.get("deleteOptions"))?;
    let name = call.info.name.as_str();
    let key = call.resource.key(call.namespace(), name);
    api.consistent().await?;
    let pod = api
        .cache
        .get(&key)
        .ok_or_else(|| call.not_found(name))?
        .value()?;
    let phase = apimachinery::json::str_ptr(&pod, "/status/phase");
    // Pods that are done or not yet running cannot be disrupted.
    if !matches!(phase, "Succeeded" | "Failed" | "Pending") {
        for (pdb, pdb_name) in covering_budgets(api, &pod)? {
            take_disruption(api, pdb, &pdb_name, name, opts.dry_run).await?;
        }
    }
    delete_one(api, call, name, &opts).await?;
    success(StatusCode::CREATED)
}

/// Keys and names of the PodDisruptionBudgets in the pod's namespace that select it.
fn covering_budgets(api: &Api, pod: &Value) -> ApiResult<Vec<(String, String)>> {
    let ns = apimachinery::json::str_ptr(pod, "/metadata/namespace");
    let (_, pdbs) = api.cache.objects(&crate::keys::in_namespace(
        "policy/v1",
        "PodDisruptionBudget",
        ns,
    ));
    let mut out = Vec::new();
    for e in pdbs {
        let pdb = e.value()?;
        let Some(sel) = pdb.pointer("/spec/selector") else {
            continue;
        };
        let Ok(sel) = apimachinery::selectors::LabelSelector::from_metav1(sel) else {
            continue;
        };
        if sel.matches_object(pod) {
            let name = super::name_of(&pdb).to_string();
            out.push((e.key.clone(), name));
        }
    }
    Ok(out)
}

/// Spends one allowed disruption of a budget (compare-and-swap on its status),
/// recording the pod in `disruptedPods` as Kubernetes does. A dry run checks the
/// budget and spends nothing.
async fn take_disruption(
    api: &Api,
    key: String,
    name: &str,
    pod: &str,
    dry_run: bool,
) -> ApiResult<()> {
    let target = Target {
        key,
        group: "policy",
        plural: "poddisruptionbudgets",
        name,
    };
    let spent = guaranteed_update(api, &target, dry_run, |mut pdb, _| {
        let observed = apimachinery::json::i64_ptr(&pdb, "/status/observedGeneration");
        let generation = apimachinery::json::meta::generation(&pdb);
        let allowed = apimachinery::json::i64_ptr(&pdb, "/status/disruptionsAllowed").unwrap_or(0);
        if observed != generation || allowed <= 0 {
            return Err(ApiError::TooManyRequests(format!(
                "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {name} needs {} healthy pods and has {} currently",
                apimachinery::json::i64_ptr(&pdb, "/status/desiredHealthy").unwrap_or(0),
                apimachinery::json::i64_ptr(&pdb, "/status/currentHealthy").unwrap_or(0),
            )));
        }
        let Some(status) = pdb.get_mut("status").and_then(Value::as_object_mut) else {
            return Ok(Change::Unchanged(pdb));
        };
        status.insert("disruptionsAllowed".into(), json!(allowed - 1));
        let disrupted = status.entry("disruptedPods").or_insert_with(|| json!({}));
        if !disrupted.is_object() {
            *disrupted = json!({});
        }
        if let Some(d) = disrupted.as_object_mut() {
            d.insert(pod.to_string(), json!(crate::clock::now_rfc3339()));
        }
        Ok(Change::Put(pdb))
    })
    .await;
    match spent {
        Ok(_) => Ok(()),
        Err(ApiError::Conflict { .. }) => Err(ApiError::TooManyRequests(
            "the disruption budget is changing too fast; retry".into(),
        )),
        Err(e) => Err(e),
    }
}
