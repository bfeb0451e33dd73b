//! `PodInfo`: what the scheduler needs of a pod, parsed once when the pod
//! arrives, so a scheduling cycle never parses quantities or selectors.

use apimachinery::selectors::LabelSelector;
use k8s_openapi::api::core::v1::{Pod, Toleration};

use crate::resources::{Resources, pod_requests};
use crate::selectors::{
    AffinityTerm, Labels, NodeSelectorTerms, NodeTerm, label_key_requirements, label_selector,
};

/// A host port a container claims on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Two claims clash on the same protocol and port unless both name
    /// different specific addresses.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || wildcard(&self.ip) || wildcard(&other.ip))
    }
}

/// `whenUnsatisfiable` of a topology spread constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpreadMode {
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    pub mode: SpreadMode,
    pub selector: LabelSelector,
    pub min_domains: Option<i64>,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes the pod's node
    /// affinity and selector accept count as domains.
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore): nodes with taints the pod
    /// does not tolerate do not count.
    pub honor_taints: bool,
}

/// The controllers whose selector Kubernetes' default topology spreading
/// uses (`DefaultSelector`): core/v1 ReplicationController, apps/v1
/// ReplicaSet and StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControllerKind {
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

impl ControllerKind {
    /// The kind an owner reference names, when it is one of the three.
    pub fn of(api_version: &str, kind: &str) -> Option<Self> {
        match (api_version, kind) {
            ("v1", "ReplicationController") => Some(Self::ReplicationController),
            ("apps/v1", "ReplicaSet") => Some(Self::ReplicaSet),
            ("apps/v1", "StatefulSet") => Some(Self::StatefulSet),
            _ => None,
        }
    }
}

/// Everything a filter or score looks at, for pending and placed pods alike.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub labels: Labels,
    pub node_name: String,
    pub nominated_node_name: String,
    pub scheduler_name: String,
    pub priority_class_name: String,
    /// `spec.priority` as the API server set it; the effective priority may
    /// come from the PriorityClass (see `cache::Cache::priority_of`).
    pub priority: i32,
    pub preempt_never: bool,
    pub requests: Resources,
    /// Requests with the per-container defaults for pods that ask for nothing;
    /// used only for spreading by score.
    pub non_zero: Resources,
    pub host_ports: Vec<HostPort>,
    pub node_selector: Labels,
    pub required_node_affinity: Option<NodeSelectorTerms>,
    pub preferred_node_affinity: Vec<(i64, NodeTerm)>,
    pub tolerations: Vec<Toleration>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i64, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i64, AffinityTerm)>,
    /// `spec.topologySpreadConstraints`, all modes; when empty, scoring uses
    /// Kubernetes' system default constraints.
    pub spread: Vec<SpreadConstraint>,
    /// The controller owner reference (`controller: true`) when it names a
    /// ReplicationController, ReplicaSet or StatefulSet: its kind and name.
    pub controller: Option<(ControllerKind, String)>,
    /// Container images, normalised with `:latest` when untagged.
    pub images: Vec<String>,
    pub pvcs: Vec<String>,
    pub scheduling_gated: bool,
    pub terminating: bool,
    pub finished: bool,
    /// Seconds since the epoch of `metadata.creationTimestamp`.
    pub created: i64,
    /// A constraint that could not be parsed; the pod is unschedulable with this message.
    pub invalid: Option<String>,
}

impl PodInfo {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    /// Whether the pod's nodeSelector and required node affinity accept a node.
    pub fn accepts_node(&self, node_name: &str, labels: &Labels) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .required_node_affinity
                .as_ref()
                .is_none_or(|t| t.matches(node_name, labels))
    }

    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let mut info = PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            terminating: meta.deletion_timestamp.is_some(),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
            ..Default::default()
        };
        info.controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .and_then(|r| Some((ControllerKind::of(&r.api_version, &r.kind)?, r.name.clone())));
        if let Some(status) = pod.status.as_ref() {
            info.nominated_node_name = status.nominated_node_name.clone().unwrap_or_default();
            info.finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        }
        let Some(spec) = pod.spec.as_ref() else {
            info.invalid = Some("pod has no spec".into());
            return info;
        };
        info.node_name = spec.node_name.clone().unwrap_or_default();
        info.scheduler_name = spec
            .scheduler_name
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_SCHEDULER_NAME.to_string());
        info.priority_class_name = spec.priority_class_name.clone().unwrap_or_default();
        info.priority = spec.priority.unwrap_or(0);
        info.preempt_never = spec.preemption_policy.as_deref() == Some("Never");
        info.requests = pod_requests(spec, false);
        info.non_zero = pod_requests(spec, true);
        info.scheduling_gated = spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty());
        info.node_selector = spec.node_selector.clone().unwrap_or_default();
        info.tolerations = spec.tolerations.clone().unwrap_or_default();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                if let Some(port) = p.host_port.filter(|p| *p > 0) {
                    info.host_ports.push(HostPort {
                        ip: p.host_ip.clone().unwrap_or_default(),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port,
                    });
                }
            }
        }
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            if let Some(image) = c.image.as_deref().filter(|i| !i.is_empty()) {
                info.images.push(normalize_image(image));
            }
        }
        info.pvcs = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|p| p.claim_name.clone())
            })
            .collect();
        if let Err(e) = parse_constraints(&mut info, pod) {
            info.invalid = Some(e);
        }
        info
    }
}

type WeightedTerms = Vec<(i64, AffinityTerm)>;

/// The required and weighted terms of a pod (anti-)affinity, which share a shape.
fn parse_pod_terms(
    required: Option<&[k8s_openapi::api::core::v1::PodAffinityTerm]>,
    preferred: Option<&[k8s_openapi::api::core::v1::WeightedPodAffinityTerm]>,
    ns: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<(Vec<AffinityTerm>, WeightedTerms), String> {
    let required = required
        .unwrap_or_default()
        .iter()
        .map(|t| AffinityTerm::parse(t, ns, labels))
        .collect::<Result<_, _>>()?;
    let preferred = preferred
        .unwrap_or_default()
        .iter()
        .map(|w| {
            Ok((
                i64::from(w.weight),
                AffinityTerm::parse(&w.pod_affinity_term, ns, labels)?,
            ))
        })
        .collect::<Result<_, String>>()?;
    Ok((required, preferred))
}

fn parse_constraints(info: &mut PodInfo, pod: &Pod) -> Result<(), String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let ns = info.namespace.clone();
    let labels = info.labels.clone();
    if let Some(affinity) = spec.affinity.as_ref() {
        if let Some(na) = affinity.node_affinity.as_ref() {
            info.required_node_affinity = na
                .required_during_scheduling_ignored_during_execution
                .as_ref()
                .map(NodeSelectorTerms::parse);
            for p in na
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
            {
                info.preferred_node_affinity
                    .push((i64::from(p.weight), NodeTerm::parse(&p.preference)));
            }
        }
        if let Some(pa) = affinity.pod_affinity.as_ref() {
            let (required, preferred) = parse_pod_terms(
                pa.required_during_scheduling_ignored_during_execution
                    .as_deref(),
                pa.preferred_during_scheduling_ignored_during_execution
                    .as_deref(),
                &ns,
                &labels,
            )?;
            info.required_affinity.extend(required);
            info.preferred_affinity.extend(preferred);
        }
        if let Some(pa) = affinity.pod_anti_affinity.as_ref() {
            let (required, preferred) = parse_pod_terms(
                pa.required_during_scheduling_ignored_during_execution
                    .as_deref(),
                pa.preferred_during_scheduling_ignored_during_execution
                    .as_deref(),
                &ns,
                &labels,
            )?;
            info.required_anti_affinity.extend(required);
            info.preferred_anti_affinity.extend(preferred);
        }
    }
    for c in spec.topology_spread_constraints.iter().flatten() {
        let extra = label_key_requirements(&labels, c.match_label_keys.as_ref(), "In");
        info.spread.push(SpreadConstraint {
            max_skew: i64::from(c.max_skew.max(1)),
            topology_key: c.topology_key.clone(),
            mode: if c.when_unsatisfiable == "ScheduleAnyway" {
                SpreadMode::ScheduleAnyway
            } else {
                SpreadMode::DoNotSchedule
            },
            selector: label_selector(c.label_selector.as_ref(), extra)?,
            min_domains: c.min_domains.map(i64::from),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        });
    }
    Ok(())
}

/// `nginx` → `nginx:latest`; tagged or digested names stay as they are
/// (ImageLocality's normalisation).
pub fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PodBuilder;

    #[test]
    fn image_names_get_latest() {
        assert_eq!(normalize_image("nginx"), "nginx:latest");
        assert_eq!(normalize_image("reg:5000/app"), "reg:5000/app:latest");
        assert_eq!(normalize_image("app:1.2"), "app:1.2");
        assert_eq!(normalize_image("app@sha256:ab"), "app@sha256:ab");
    }

    #[test]
    fn a_pod_without_spec_is_invalid_not_a_crash() {
        let info = PodInfo::from_pod(&Pod::default());
        assert!(info.invalid.is_some());
    }

    #[test]
    fn host_ports_default_to_tcp_on_every_address() {
        let p = PodBuilder::new("p").host_port(80).build();
        let info = PodInfo::from_pod(&p);
        assert_eq!(
            info.host_ports,
            vec![HostPort {
                ip: String::new(),
                protocol: "TCP".into(),
                port: 80
            }]
        );
        let other = HostPort {
            ip: "10.0.0.1".into(),
            protocol: "TCP".into(),
            port: 80,
        };
        assert!(info.host_ports[0].conflicts(&other));
        let udp = HostPort {
            protocol: "UDP".into(),
            ..other.clone()
        };
        assert!(!info.host_ports[0].conflicts(&udp));
        let elsewhere = HostPort {
            ip: "10.0.0.2".into(),
            ..other.clone()
        };
        assert!(!other.conflicts(&elsewhere));
    }

    #[test]
    fn only_a_controller_reference_of_a_spreading_kind_is_kept() {
        for (version, kind, want) in [
            ("apps/v1", "ReplicaSet", ControllerKind::ReplicaSet),
            ("apps/v1", "StatefulSet", ControllerKind::StatefulSet),
            (
                "v1",
                "ReplicationController",
                ControllerKind::ReplicationController,
            ),
        ] {
            let p = PodBuilder::new("p").owner(version, kind, "x").build();
            assert_eq!(PodInfo::from_pod(&p).controller, Some((want, "x".into())));
        }
        for (version, kind) in [
            ("apps/v1", "Deployment"),
            ("extensions/v1beta1", "ReplicaSet"),
            ("batch/v1", "Job"),
        ] {
            let p = PodBuilder::new("p").owner(version, kind, "x").build();
            assert_eq!(PodInfo::from_pod(&p).controller, None, "{version} {kind}");
        }
        let mut not_controller = PodBuilder::new("p")
            .owner("apps/v1", "StatefulSet", "db")
            .build();
        if let Some(refs) = not_controller.metadata.owner_references.as_mut() {
            refs[0].controller = None;
        }
        assert_eq!(PodInfo::from_pod(&not_controller).controller, None);
    }
}
