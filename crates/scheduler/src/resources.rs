//! Resource amounts as the scheduler counts them: CPU in millicores, everything
//! else in whole units, parsed once from the object's quantities.

use std::collections::BTreeMap;

use apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;

/// What a container gets when it requests no CPU, for spreading purposes only
/// (kube-scheduler's `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// What a container gets when it requests no memory (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// CPU, memory, ephemeral storage and any extended resource (`nvidia.com/gpu`,
/// `hugepages-2Mi`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Sorted by name; usually empty, so a vector beats a map.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    /// Reads a resource list (`requests`, `allocatable`, `overhead`). Amounts
    /// that do not parse count as zero: validation rejects them at the API
    /// server, and one malformed object must not stop the scheduler.
    pub fn from_list(list: Option<&BTreeMap<String, KQuantity>>) -> Self {
        let mut r = Self::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, quantity: &str) {
        let Ok(q) = Quantity::parse(quantity) else {
            return;
        };
        let clamp = |v: i128| i64::try_from(v.max(0)).unwrap_or(i64::MAX);
        match name {
            "cpu" => self.milli_cpu = clamp(q.milli_value()),
            "memory" => self.memory = clamp(q.value()),
            "ephemeral-storage" => self.ephemeral_storage = clamp(q.value()),
            // Counted separately: a pod always takes exactly one.
            "pods" => {}
            _ if is_scalar(name) => self.set_scalar(name, clamp(q.value())),
            _ => {}
        }
    }

    fn set_scalar(&mut self, name: &str, value: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 = value,
            Err(i) => self.scalar.insert(i, (name.to_string(), value)),
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map_or(0, |i| self.scalar[i].1)
    }

    pub fn add(&mut self, other: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let sum = self.scalar(name).saturating_add(*v);
            self.set_scalar(name, sum);
        }
    }

    pub fn sub(&mut self, other: &Self) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let diff = self.scalar(name).saturating_sub(*v);
            self.set_scalar(name, diff);
        }
    }

    /// The larger of each amount (init containers run one at a time).
    fn max_with(&mut self, other: &Self) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            if *v > self.scalar(name) {
                self.set_scalar(name, *v);
            }
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

/// Extended resources (a domain-qualified name outside `kubernetes.io`),
/// hugepages and attachable volumes are checked like CPU and memory.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let res = c.resources.as_ref();
    let mut r = Resources::from_list(res.and_then(|r| r.requests.as_ref()));
    // A limit without a request means request = limit; the API server's
    // defaulting normally did this already.
    if let Some(limits) = res.and_then(|r| r.limits.as_ref()) {
        let lim = Resources::from_list(Some(limits));
        let requests = res.and_then(|r| r.requests.as_ref());
        let has = |n: &str| requests.is_some_and(|m| m.contains_key(n));
        if !has("cpu") {
            r.milli_cpu = lim.milli_cpu;
        }
        if !has("memory") {
            r.memory = lim.memory;
        }
        if !has("ephemeral-storage") {
            r.ephemeral_storage = lim.ephemeral_storage;
        }
        for (name, v) in &lim.scalar {
            if !has(name) {
                r.set_scalar(name, *v);
            }
        }
    }
    if non_zero {
        if r.milli_cpu == 0 {
            r.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if r.memory == 0 {
            r.memory = DEFAULT_MEMORY;
        }
    }
    r
}

/// A pod's effective request as Kubernetes' `PodRequests` computes it: the sum
/// of its containers and restartable (sidecar) init containers, or the largest
/// need of any one-shot init container plus the sidecars started before it,
/// whichever is larger; then the pod overhead. With `non_zero`, containers that
/// request nothing count the scoring defaults instead.
pub fn pod_requests(spec: &PodSpec, non_zero: bool) -> Resources {
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            // A sidecar keeps running: it adds to the regular containers and
            // to every init container started after it.
            sum.add(&r);
            init_peak.max_with(&sidecars);
        } else {
            let mut during = sidecars.clone();
            during.add(&r);
            init_peak.max_with(&during);
        }
    }
    sum.max_with(&init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        sum.add(&Resources::from_list(Some(overhead)));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, pod_spec};

    #[test]
    fn sums_containers_and_takes_the_largest_init_container() {
        let mut spec = pod_spec(vec![
            container("a", &[("cpu", "100m"), ("memory", "64Mi")]),
            container("b", &[("cpu", "200m")]),
        ]);
        spec.init_containers = Some(vec![container("init", &[("cpu", "1"), ("memory", "10Mi")])]);
        let r = pod_requests(&spec, false);
        assert_eq!(r.milli_cpu, 1000);
        assert_eq!(r.memory, 64 * 1024 * 1024);
    }

    #[test]
    fn sidecars_add_to_containers_and_to_later_init_containers() {
        let mut sidecar = container("proxy", &[("cpu", "300m")]);
        sidecar.restart_policy = Some("Always".into());
        let mut spec = pod_spec(vec![container("app", &[("cpu", "500m")])]);
        spec.init_containers = Some(vec![sidecar, container("migrate", &[("cpu", "700m")])]);
        // Running: 500 + 300 = 800; while `migrate` runs: 300 + 700 = 1000.
        assert_eq!(pod_requests(&spec, false).milli_cpu, 1000);
    }

    #[test]
    fn overhead_is_added_and_limits_stand_in_for_missing_requests() {
        let mut c = container("a", &[]);
        c.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some([("memory".to_string(), KQuantity("1Gi".into()))].into()),
            ..Default::default()
        });
        let mut spec = pod_spec(vec![c]);
        spec.overhead = Some([("cpu".to_string(), KQuantity("250m".into()))].into());
        let r = pod_requests(&spec, false);
        assert_eq!((r.milli_cpu, r.memory), (250, 1 << 30));
    }

    #[test]
    fn non_zero_defaults_apply_per_container() {
        let spec = pod_spec(vec![container("a", &[]), container("b", &[("cpu", "1")])]);
        let r = pod_requests(&spec, true);
        assert_eq!(r.milli_cpu, 1100);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY);
    }

    #[test]
    fn malformed_and_extended_quantities() {
        let r = Resources::from_list(Some(
            &[
                ("cpu".to_string(), KQuantity("lots".into())),
                ("example.com/gpu".to_string(), KQuantity("2".into())),
                ("hugepages-2Mi".to_string(), KQuantity("4Mi".into())),
                ("kubernetes.io/other".to_string(), KQuantity("1".into())),
            ]
            .into(),
        ));
        assert_eq!(r.milli_cpu, 0);
        assert_eq!(r.scalar("example.com/gpu"), 2);
        assert_eq!(r.scalar("hugepages-2Mi"), 4 << 20);
        assert_eq!(r.scalar("kubernetes.io/other"), 0);
    }
}
