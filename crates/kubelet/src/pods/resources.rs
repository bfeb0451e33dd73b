//! Requests and limits as the kubelet turns them into cgroup settings: the
//! pod's QoS class (and its cgroup parent), cpu.shares from the request, the
//! CFS quota from the limit, the memory limit, the OOM score adjustment, and
//! the values `resourceFieldRef`s expose.
//!
//! A missing request of a resource with a limit counts as the limit, as the
//! API server's defaulting makes it.

use std::collections::{BTreeMap, BTreeSet};

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};

use super::config::{ConfigContext, ConfigError};
use crate::runtime::LinuxResources;

/// The CFS period the kubelet uses: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
const MIN_QUOTA_US: i64 = 1_000;
const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// A pod's quality-of-service class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// The cgroup the class's pods live under, relative to the cgroup root.
    pub fn cgroup_parent(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "kubepods",
            QosClass::Burstable => "kubepods/burstable",
            QosClass::BestEffort => "kubepods/besteffort",
        }
    }
}

fn quantity(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    name: &str,
) -> Result<Option<Quantity>, ConfigError> {
    let Some(q) = map.and_then(|m| m.get(name)) else {
        return Ok(None);
    };
    Quantity::parse(&q.0)
        .map(Some)
        .map_err(|source| ConfigError::Quantity {
            field: name.to_string(),
            value: q.0.clone(),
            source,
        })
}

/// The container's limit of `name`.
fn limit(container: &Container, name: &str) -> Result<Option<Quantity>, ConfigError> {
    let resources = container.resources.as_ref();
    quantity(resources.and_then(|r| r.limits.as_ref()), name)
}

/// The container's request of `name`, defaulting to its limit.
fn request(container: &Container, name: &str) -> Result<Option<Quantity>, ConfigError> {
    let resources = container.resources.as_ref();
    match quantity(resources.and_then(|r| r.requests.as_ref()), name)? {
        Some(q) => Ok(Some(q)),
        None => limit(container, name),
    }
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let init = spec.and_then(|s| s.init_containers.as_ref());
    let regular = spec.map(|s| &s.containers);
    init.into_iter()
        .flatten()
        .chain(regular.into_iter().flatten())
}

/// The pod's QoS class: `status.qosClass` when set, else computed from the
/// cpu and memory requests and limits of all its containers.
pub fn qos(pod: &Pod) -> QosClass {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => return QosClass::Guaranteed,
        Some("Burstable") => return QosClass::Burstable,
        Some("BestEffort") => return QosClass::BestEffort,
        _ => {}
    }
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for container in all_containers(pod) {
        let mut limited = BTreeSet::new();
        for name in ["cpu", "memory"] {
            if let Ok(Some(q)) = request(container, name)
                && q.nanos() > 0
            {
                *requests.entry(name).or_default() += q.nanos();
            }
            if let Ok(Some(q)) = limit(container, name)
                && q.nanos() > 0
            {
                limited.insert(name);
                *limits.entry(name).or_default() += q.nanos();
            }
        }
        if limited.len() < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed && requests.iter().all(|(name, r)| limits.get(name) == Some(r)) {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// `milliCPUToShares`: 1024 shares a core, at least 2.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    (milli_cpu as u64 * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// `milliCPUToQuota`: the quota of `period` µs; none without a limit, at
/// least 1 ms.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: u64) -> Option<i64> {
    if milli_cpu <= 0 {
        return None;
    }
    Some((milli_cpu * period as i64 / 1000).max(MIN_QUOTA_US))
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(0, i64::MAX as i128) as i64
}

/// The container's cgroup settings and OOM score adjustment.
pub(super) fn linux_resources(
    pod: &Pod,
    container: &Container,
    machine_memory: i64,
) -> Result<LinuxResources, ConfigError> {
    let cpu_request = request(container, "cpu")?.map_or(0, |q| clamp_i64(q.milli_value()));
    let cpu_limit = limit(container, "cpu")?.map_or(0, |q| clamp_i64(q.milli_value()));
    let memory_limit = limit(container, "memory")?.map_or(0, |q| clamp_i64(q.value()));
    Ok(LinuxResources {
        cpu_period: Some(CPU_PERIOD_US),
        cpu_quota: milli_cpu_to_quota(cpu_limit, CPU_PERIOD_US),
        cpu_shares: Some(milli_cpu_to_shares(cpu_request)),
        memory_limit_in_bytes: (memory_limit > 0).then_some(memory_limit),
        oom_score_adj: Some(oom_score_adj(pod, container, machine_memory)?),
        pids_limit: None,
    })
}

/// The kubelet's OOM policy: node-critical pods and Guaranteed ones -997,
/// BestEffort 1000, Burstable `1000 - 1000 * memoryRequest / machineMemory`
/// kept within [3, 999] (above any Guaranteed, below BestEffort).
pub fn oom_score_adj(
    pod: &Pod,
    container: &Container,
    machine_memory: i64,
) -> Result<i32, ConfigError> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.priority_class_name.as_deref()) == Some("system-node-critical") {
        return Ok(GUARANTEED_OOM_SCORE_ADJ);
    }
    match qos(pod) {
        QosClass::Guaranteed => return Ok(GUARANTEED_OOM_SCORE_ADJ),
        QosClass::BestEffort => return Ok(BEST_EFFORT_OOM_SCORE_ADJ),
        QosClass::Burstable => {}
    }
    let memory_request = request(container, "memory")?.map_or(0, |q| q.value());
    let capacity = i128::from(machine_memory.max(1));
    let adj = 1000 - (1000 * memory_request) / capacity;
    let floor = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
    Ok(if adj < floor {
        floor as i32
    } else if adj >= i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
        BEST_EFFORT_OOM_SCORE_ADJ - 1
    } else {
        adj as i32
    })
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b <= 0 {
        return a;
    }
    (a + b - 1).div_euclid(b)
}

/// The value of a `resourceFieldRef`, divided by its divisor and rounded up;
/// limits not set default to the machine's.
pub(super) fn resource_field_value(
    pod: &Pod,
    container: &Container,
    field: &ResourceFieldSelector,
    ctx: &ConfigContext<'_>,
) -> Result<String, ConfigError> {
    let container = match field.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => all_containers(pod)
            .find(|c| c.name == name)
            .ok_or_else(|| ConfigError::ContainerNotFound(name.to_string()))?,
        None => container,
    };
    let divisor = match &field.divisor {
        Some(d) => Quantity::parse(&d.0).map_err(|source| ConfigError::Quantity {
            field: "divisor".to_string(),
            value: d.0.clone(),
            source,
        })?,
        None => Quantity::from_value(0, apimachinery::quantity::Format::DecimalSI),
    };
    let divisor = if divisor.is_zero() {
        Quantity::from_value(1, apimachinery::quantity::Format::DecimalSI)
    } else {
        divisor
    };
    let (kind, name) = field
        .resource
        .split_once('.')
        .ok_or_else(|| ConfigError::Resource(field.resource.clone()))?;
    let machine = match name {
        "cpu" => i128::from(ctx.machine_milli_cpu),
        "memory" => i128::from(ctx.machine_memory),
        "ephemeral-storage" => i128::from(ctx.machine_ephemeral_storage),
        _ => return Err(ConfigError::Resource(field.resource.clone())),
    };
    let value = match kind {
        "limits" => limit(container, name)?,
        "requests" => request(container, name)?,
        _ => return Err(ConfigError::Resource(field.resource.clone())),
    };
    let out = if name == "cpu" {
        let milli = match value {
            Some(q) => q.milli_value(),
            None if kind == "limits" => machine,
            None => 0,
        };
        ceil_div(milli, divisor.milli_value().max(1))
    } else {
        let bytes = match value {
            Some(q) => q.value(),
            None if kind == "limits" => machine,
            None => 0,
        };
        ceil_div(bytes, divisor.value().max(1))
    };
    Ok(out.to_string())
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
