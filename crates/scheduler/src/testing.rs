//! Builders for the unit tests: nodes and pods in a line each.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerImage, ContainerPort, Node, NodeCondition, NodeSpec, NodeStatus,
    Pod, PodSpec, ResourceRequirements, Taint, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::cache::Cache;
use crate::node::NodeSpecInfo;
use crate::pod::PodInfo;

pub fn container(name: &str, requests: &[(&str, &str)]) -> Container {
    Container {
        name: name.into(),
        image: Some("app:1".into()),
        resources: Some(ResourceRequirements {
            requests: Some(
                requests
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn pod_spec(containers: Vec<Container>) -> PodSpec {
    PodSpec {
        containers,
        ..Default::default()
    }
}

pub fn info(pod: &Pod) -> Arc<PodInfo> {
    Arc::new(PodInfo::from_pod(pod))
}

pub fn labels(pairs: &[(&str, &str)]) -> crate::selectors::Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    }
}

pub struct NodeBuilder(Node);

impl NodeBuilder {
    /// A Ready node with 4 CPUs, 8 GiB and room for 110 pods.
    pub fn new(name: &str) -> Self {
        let alloc: BTreeMap<String, Quantity> = [
            ("cpu", "4"),
            ("memory", "8Gi"),
            ("ephemeral-storage", "100Gi"),
            ("pods", "110"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
        Self(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("kubernetes.io/hostname".to_string(), name.to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(alloc.clone()),
                capacity: Some(alloc),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn alloc(mut self, name: &str, value: &str) -> Self {
        if let Some(a) = self.0.status.as_mut().and_then(|s| s.allocatable.as_mut()) {
            a.insert(name.into(), Quantity(value.into()));
        }
        self
    }

    pub fn cpu(self, v: &str) -> Self {
        self.alloc("cpu", v)
    }

    pub fn memory(self, v: &str) -> Self {
        self.alloc("memory", v)
    }

    pub fn pods(self, v: &str) -> Self {
        self.alloc("pods", v)
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_default()
            .insert(k.into(), v.into());
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        if let Some(spec) = self.0.spec.as_mut() {
            spec.taints.get_or_insert_default().push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.into()),
                effect: effect.into(),
                time_added: None,
            });
        }
        self
    }

    pub fn unschedulable(mut self) -> Self {
        if let Some(spec) = self.0.spec.as_mut() {
            spec.unschedulable = Some(true);
        }
        self
    }

    pub fn ready(mut self, status: &str) -> Self {
        if let Some(c) = self.0.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c[0].status = status.into();
        }
        self
    }

    pub fn image(mut self, name: &str, size: i64) -> Self {
        if let Some(s) = self.0.status.as_mut() {
            s.images.get_or_insert_default().push(ContainerImage {
                names: Some(vec![name.into()]),
                size_bytes: Some(size),
            });
        }
        self
    }

    pub fn build(self) -> Node {
        self.0
    }
}

pub struct PodBuilder(Pod);

impl PodBuilder {
    pub fn new(name: &str) -> Self {
        Self(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(pod_spec(vec![container("c", &[])])),
            status: None,
        })
    }

    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_default()
    }

    fn request(mut self, name: &str, value: &str) -> Self {
        if let Some(r) = self.spec().containers[0].resources.as_mut() {
            r.requests
                .get_or_insert_default()
                .insert(name.into(), Quantity(value.into()));
        }
        self
    }

    pub fn cpu(self, v: &str) -> Self {
        self.request("cpu", v)
    }

    pub fn memory(self, v: &str) -> Self {
        self.request("memory", v)
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.0.metadata.namespace = Some(ns.into());
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_default()
            .insert(k.into(), v.into());
        self
    }

    pub fn node(mut self, n: &str) -> Self {
        self.spec().node_name = Some(n.into());
        self
    }

    pub fn priority(mut self, p: i32) -> Self {
        self.spec().priority = Some(p);
        self
    }

    /// Marks the pod as being deleted (a deletionTimestamp is set).
    pub fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        self
    }

    pub fn image(mut self, image: &str) -> Self {
        self.spec().containers[0].image = Some(image.into());
        self
    }

    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_default()
            .insert(k.into(), v.into());
        self
    }

    pub fn toleration(mut self, key: &str, op: &str, value: &str, effect: &str) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_default()
            .push(Toleration {
                key: Some(key.into()),
                operator: Some(op.into()),
                value: (!value.is_empty()).then(|| value.into()),
                effect: (!effect.is_empty()).then(|| effect.into()),
                toleration_seconds: None,
            });
        self
    }

    pub fn host_port(mut self, port: i32) -> Self {
        self.spec().containers[0]
            .ports
            .get_or_insert_default()
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                ..Default::default()
            });
        self
    }

    pub fn affinity(mut self, a: Affinity) -> Self {
        self.spec().affinity = Some(a);
        self
    }

    pub fn spread(mut self, key: &str, max_skew: i32, mode: &str, sel: &[(&str, &str)]) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_default()
            .push(TopologySpreadConstraint {
                max_skew,
                topology_key: key.into(),
                when_unsatisfiable: mode.into(),
                label_selector: Some(selector(sel)),
                ..Default::default()
            });
        self
    }

    /// A controller owner reference (`controller: true`).
    pub fn owner(mut self, api_version: &str, kind: &str, name: &str) -> Self {
        self.0
            .metadata
            .owner_references
            .get_or_insert_default()
            .push(OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                controller: Some(true),
                block_owner_deletion: None,
            });
        self
    }

    pub fn pvc(mut self, claim: &str) -> Self {
        self.spec()
            .volumes
            .get_or_insert_default()
            .push(k8s_openapi::api::core::v1::Volume {
                name: claim.into(),
                persistent_volume_claim: Some(
                    k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                        claim_name: claim.into(),
                        read_only: None,
                    },
                ),
                ..Default::default()
            });
        self
    }

    pub fn build(self) -> Pod {
        self.0
    }
}

/// A cache holding `nodes` and, placed on them, `pods` (with `spec.nodeName` set).
pub fn cache_with(nodes: &[Node], pods: &[Pod]) -> Cache {
    let mut cache = Cache::default();
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        cache.set_node(&name, NodeSpecInfo::from_node(n));
    }
    for p in pods {
        cache.set_assigned_pod(info(p));
    }
    cache
}

/// Runs one filter plugin (pre-filter, then filter) for `pod` against `node`
/// in a cluster of `nodes` and placed `pods`.
pub fn run_filter(
    plugin: &dyn crate::framework::FilterPlugin,
    pod: &Pod,
    nodes: &[Node],
    pods: &[Pod],
    node: &str,
) -> Result<(), crate::framework::Failure> {
    let cache = cache_with(nodes, pods);
    let mut state = crate::framework::CycleState::new(info(pod));
    plugin.pre_filter(&mut state, &cache)?;
    let Some(n) = cache.node(node) else {
        panic!("no node {node} in the test cluster");
    };
    plugin.filter(&state, &cache, n)
}

/// Runs one score plugin for `pod` over every node (all feasible) and returns
/// the normalised scores by node name.
pub fn run_score(
    plugin: &dyn crate::framework::ScorePlugin,
    pod: &Pod,
    nodes: &[Node],
    pods: &[Pod],
) -> BTreeMap<String, i64> {
    score_in(plugin, pod, &cache_with(nodes, pods))
}

/// [`run_score`] in a prepared cache (with services, controllers, …).
pub fn score_in(
    plugin: &dyn crate::framework::ScorePlugin,
    pod: &Pod,
    cache: &Cache,
) -> BTreeMap<String, i64> {
    let mut state = crate::framework::CycleState::new(info(pod));
    let feasible: Vec<usize> = (0..cache.nodes().len())
        .filter(|&i| cache.nodes()[i].node.is_some())
        .collect();
    plugin.pre_score(&mut state, cache, &feasible);
    let mut scores: Vec<i64> = feasible
        .iter()
        .map(|&i| plugin.score(&state, cache, &cache.nodes()[i]))
        .collect();
    plugin.normalize(&state, &mut scores);
    feasible
        .iter()
        .zip(scores)
        .map(|(&i, s)| (cache.nodes()[i].name.clone(), s))
        .collect()
}
