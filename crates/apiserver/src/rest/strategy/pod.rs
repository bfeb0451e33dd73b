//! Pods: priority admission and default tolerations on create, QoS class and
//! phase as the initial status, the grace period a bound pod gets on delete,
//! the ephemeralcontainers subresource.

use serde_json::{Map, Value, json};

use super::subresources::copy_resource_version;
use super::{Strategy, cause};
use crate::error::{ApiError, ApiResult};
use crate::rest::{Api, Call};

pub(super) struct Pod;

impl Strategy for Pod {
    fn has_generation(&self, _: &apimachinery::resources::Resource) -> bool {
        false
    }

    fn initial_status(&self, _: &apimachinery::resources::Resource, obj: &mut Map<String, Value>) {
        let qos = qos_class(obj.get("spec"));
        obj.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }

    fn admit_create(&self, api: &Api, obj: &mut Value) -> ApiResult<()> {
        let given = GivenPriority::of(obj);
        resolve_priority(api, obj, given)?;
        // Admission: pods tolerate not-ready and unreachable nodes for 300 s.
        apimachinery::defaults::default_tolerations(obj);
        Ok(())
    }

    fn old_for_validation(&self, sub: &str, obj: &Value, old: &Value) -> Option<Value> {
        // The ephemeralcontainers subresource changes that list alone; the pod's
        // immutable-spec rule is checked against the rest of the spec.
        if sub != "ephemeralcontainers" {
            return None;
        }
        let mut o = old.clone();
        if let (Some(spec), Some(wanted)) = (
            o.get_mut("spec").and_then(Value::as_object_mut),
            obj.pointer("/spec/ephemeralContainers"),
        ) {
            spec.insert("ephemeralContainers".into(), wanted.clone());
        }
        Some(o)
    }

    fn deletion_grace(&self, obj: &Value, requested: Option<i64>) -> i64 {
        let bound = apimachinery::json::nonempty_ptr(obj, "/spec/nodeName").is_some();
        let phase = apimachinery::json::str_ptr(obj, "/status/phase");
        let terminal = phase == "Succeeded" || phase == "Failed";
        let default =
            apimachinery::json::i64_ptr(obj, "/spec/terminationGracePeriodSeconds").unwrap_or(30);
        let mut grace = if bound && !terminal {
            requested.unwrap_or(default).max(0)
        } else {
            0
        };
        if let Some(existing) =
            apimachinery::json::i64_ptr(obj, "/metadata/deletionGracePeriodSeconds")
        {
            grace = grace.min(existing);
        }
        grace
    }

    /// A pod in its grace period stays until its node has stopped it.
    fn holds_deletion(&self, obj: &Value) -> bool {
        apimachinery::json::i64_ptr(obj, "/metadata/deletionGracePeriodSeconds").unwrap_or(0) > 0
    }

    fn returns_deleted_object(&self) -> bool {
        true
    }
}

/// PUT or PATCH pods/NAME/ephemeralcontainers: only `spec.ephemeralContainers`
/// changes, and only by additions, as Kubernetes enforces.
pub(super) fn merge_ephemeral_containers(
    call: &Call<'_>,
    cur: &Value,
    new: &mut Value,
) -> ApiResult<()> {
    let r = call.resource;
    let wanted = new
        .pointer("/spec/ephemeralContainers")
        .cloned()
        .unwrap_or(json!([]));
    let existing = cur
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kept = wanted
        .as_array()
        .is_some_and(|w| w.len() >= existing.len() && w[..existing.len()] == existing[..]);
    if !kept {
        return Err(ApiError::invalid(
            &r.group,
            &r.kind,
            &call.info.name,
            vec![cause(
                "FieldValueForbidden",
                "spec.ephemeralContainers",
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers may not be changed".into(),
            )],
        ));
    }
    let mut merged = cur.clone();
    if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("ephemeralContainers".into(), wanted);
    }
    copy_resource_version(new, &mut merged);
    *new = merged;
    Ok(())
}

/// `spec.priority` and `spec.preemptionPolicy` as a pod's creator wrote them.
#[derive(Default)]
struct GivenPriority {
    priority: Option<Value>,
    policy: Option<Value>,
}

impl GivenPriority {
    fn of(pod: &Value) -> Self {
        let field = |name: &str| {
            pod.get("spec")
                .and_then(|s| s.get(name))
                .filter(|v| !v.is_null())
                .cloned()
        };
        GivenPriority {
            priority: field("priority"),
            policy: field("preemptionPolicy"),
        }
    }
}

/// The Priority admission step: a pod's `priorityClassName` (or the global
/// default class) becomes its `spec.priority` and `preemptionPolicy`.
fn resolve_priority(api: &Api, pod: &mut Value, given: GivenPriority) -> ApiResult<()> {
    let pod_name = apimachinery::json::str_ptr(pod, "/metadata/name").to_string();
    let name = apimachinery::json::str_ptr(pod, "/spec/priorityClassName").to_string();
    let class = if name.is_empty() {
        api.cache
            .default_priority_class()
            .and_then(|e| e.value().ok())
    } else {
        match api.cache.get(&crate::keys::priority_class(&name)) {
            Some(e) => Some(e.value()?),
            None => {
                return Err(ApiError::Forbidden(format!(
                    "pods \"{pod_name}\" is forbidden: no PriorityClass with name {name} was found"
                )));
            }
        }
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let value = class
        .as_ref()
        .and_then(|c| apimachinery::json::i64_at(c, "value"))
        .unwrap_or(0);
    let policy = class
        .as_ref()
        .and_then(|c| apimachinery::json::str_opt(c, "preemptionPolicy"))
        .unwrap_or("PreemptLowerPriority")
        .to_string();
    // As Kubernetes' Priority admission: values a client writes itself must
    // agree with the class, or the pod is refused rather than silently changed.
    if let Some(given) = &given.priority
        && given.as_i64() != Some(value)
    {
        return Err(ApiError::Forbidden(format!(
            "pods \"{}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; \
             priority admission controller computed {value} from the given PriorityClass name",
            pod_name
        )));
    }
    if let Some(given) = &given.policy
        && given.as_str() != Some(policy.as_str())
    {
        let given = given
            .as_str()
            .map_or_else(|| given.to_string(), str::to_string);
        return Err(ApiError::Forbidden(format!(
            "pods \"{}\" is forbidden: the string value of PreemptionPolicy ({given}) must not be provided in pod spec; \
             priority admission controller computed {policy} from the given PriorityClass name",
            pod_name
        )));
    }
    spec.insert("priority".into(), json!(value));
    spec.insert("preemptionPolicy".into(), json!(policy));
    if name.is_empty()
        && let Some(n) = class.as_ref().and_then(|c| c.pointer("/metadata/name"))
    {
        spec.insert("priorityClassName".into(), n.clone());
    }
    Ok(())
}

/// Guaranteed, Burstable or BestEffort, from the containers' requests and limits.
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.and_then(|s| s.get(*f)).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(res));
            let q = req.and_then(|m| m.get(res)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
