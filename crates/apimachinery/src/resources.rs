//! The resource table: every kind the API server serves, with how it is named,
//! stored and addressed. Discovery, OpenAPI, routing and storage keys all derive
//! from it, so a kind is added in exactly one place.

use std::borrow::Cow;

/// One resource the API server serves (one group/version/kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: Cow<'static, str>,
    pub version: Cow<'static, str>,
    pub kind: Cow<'static, str>,
    /// Lower-case plural used in URLs, e.g. `deployments`.
    pub plural: Cow<'static, str>,
    /// Lower-case singular, e.g. `deployment`.
    pub singular: Cow<'static, str>,
    pub namespaced: bool,
    pub short_names: Cow<'static, [&'static str]>,
    /// Categories such as `all`, used by `kubectl get all`.
    pub categories: Cow<'static, [&'static str]>,
    /// Subresources served below an object: `status`, `scale`, `binding`, …
    pub subresources: Cow<'static, [&'static str]>,
    /// Verbs allowed on the collection and its objects.
    pub verbs: Cow<'static, [&'static str]>,
    /// Fields a list or watch may select on besides `metadata.name` and
    /// `metadata.namespace`, as Kubernetes defines them for the kind.
    pub fields: &'static [SelectableField],
}

/// A field selector a kind supports: its name, where the value lives in the
/// object, and the value an absent field selects as (Kubernetes selects an
/// absent boolean as `false`, an absent string as the empty string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectableField {
    pub name: &'static str,
    pub path: &'static [&'static str],
    pub absent: &'static str,
}

const fn field(
    name: &'static str,
    path: &'static [&'static str],
    absent: &'static str,
) -> SelectableField {
    SelectableField { name, path, absent }
}

const POD_FIELDS: &[SelectableField] = &[
    field("spec.nodeName", &["spec", "nodeName"], ""),
    field("spec.restartPolicy", &["spec", "restartPolicy"], ""),
    field("spec.schedulerName", &["spec", "schedulerName"], ""),
    field(
        "spec.serviceAccountName",
        &["spec", "serviceAccountName"],
        "",
    ),
    field("spec.hostNetwork", &["spec", "hostNetwork"], "false"),
    field("status.phase", &["status", "phase"], ""),
    field("status.podIP", &["status", "podIP"], ""),
    field(
        "status.nominatedNodeName",
        &["status", "nominatedNodeName"],
        "",
    ),
];
const EVENT_FIELDS: &[SelectableField] = &[
    field("involvedObject.kind", &["involvedObject", "kind"], ""),
    field(
        "involvedObject.namespace",
        &["involvedObject", "namespace"],
        "",
    ),
    field("involvedObject.name", &["involvedObject", "name"], ""),
    field("involvedObject.uid", &["involvedObject", "uid"], ""),
    field(
        "involvedObject.apiVersion",
        &["involvedObject", "apiVersion"],
        "",
    ),
    field(
        "involvedObject.resourceVersion",
        &["involvedObject", "resourceVersion"],
        "",
    ),
    field(
        "involvedObject.fieldPath",
        &["involvedObject", "fieldPath"],
        "",
    ),
    field("reason", &["reason"], ""),
    field("reportingComponent", &["reportingComponent"], ""),
    field("source", &["source", "component"], ""),
    field("type", &["type"], ""),
];
const SECRET_FIELDS: &[SelectableField] = &[field("type", &["type"], "")];
const NODE_FIELDS: &[SelectableField] = &[field(
    "spec.unschedulable",
    &["spec", "unschedulable"],
    "false",
)];
const NAMESPACE_FIELDS: &[SelectableField] = &[field("status.phase", &["status", "phase"], "")];
const REPLICAS_FIELDS: &[SelectableField] =
    &[field("status.replicas", &["status", "replicas"], "")];
const JOB_FIELDS: &[SelectableField] = &[field("status.successful", &["status", "successful"], "")];

/// The selectable fields of the resource stored under `storage` (a key's second
/// segment); none for unknown resources and custom resources.
pub fn selectable_fields(storage: &str) -> &'static [SelectableField] {
    BUILTIN
        .iter()
        .find(|r| !r.fields.is_empty() && r.storage_resource() == storage)
        .map_or(&[], |r| r.fields)
}

/// Every verb of an ordinary read-write resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces: everything but deletecollection, as Kubernetes serves them (a
/// namespace is deleted one at a time, through its lifecycle).
pub const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Verbs of create-only virtual resources (reviews).
pub const CREATE_ONLY: &[&str] = &["create"];

impl Resource {
    /// `apps/v1` or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource name used in storage keys and RBAC: `pods`, or
    /// `widgets.example.com` for a group other than core and the built-in ones.
    pub fn storage_resource(&self) -> String {
        // A built-in group's resource shares the plain name unless the core group
        // already uses it (events.k8s.io events are stored apart from core events).
        let clashes_with_core = || {
            BUILTIN
                .iter()
                .any(|r| r.group.is_empty() && r.plural == self.plural)
        };
        if self.group.is_empty() || (is_builtin_group(&self.group) && !clashes_with_core()) {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Prefix of every key of this resource: `/registry/pods/`.
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/", self.storage_resource())
    }

    /// Prefix of this resource's keys in one namespace: `/registry/pods/default/`.
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("/registry/{}/{}/", self.storage_resource(), namespace)
    }

    /// The key of one object. Cluster-scoped objects have no namespace segment.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!("/registry/{}/{}/{}", self.storage_resource(), ns, name)
            }
            _ => format!("/registry/{}/{}", self.storage_resource(), name),
        }
    }

    /// True for the virtual create-only resources (access and token reviews).
    pub fn is_virtual(&self) -> bool {
        self.verbs.as_ref() == CREATE_ONLY
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }
}

fn is_builtin_group(group: &str) -> bool {
    BUILTIN.iter().any(|r| r.group == group)
}

macro_rules! res {
    ($group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal, $ns:literal,
     short: [$($short:literal),*], cat: [$($cat:literal),*], sub: [$($sub:literal),*], verbs: $verbs:expr) => {
        res!($group, $version, $kind, $plural, $singular, $ns, short: [$($short),*], cat: [$($cat),*],
             sub: [$($sub),*], verbs: $verbs, fields: &[])
    };
    ($group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal, $ns:literal,
     short: [$($short:literal),*], cat: [$($cat:literal),*], sub: [$($sub:literal),*], verbs: $verbs:expr,
     fields: $fields:expr) => {
        Resource {
            group: Cow::Borrowed($group),
            version: Cow::Borrowed($version),
            kind: Cow::Borrowed($kind),
            plural: Cow::Borrowed($plural),
            singular: Cow::Borrowed($singular),
            namespaced: $ns,
            short_names: Cow::Borrowed(&[$($short),*]),
            categories: Cow::Borrowed(&[$($cat),*]),
            subresources: Cow::Borrowed(&[$($sub),*]),
            verbs: Cow::Borrowed($verbs),
            fields: $fields,
        }
    };
}

/// The built-in resources, in the order discovery lists them.
pub static BUILTIN: &[Resource] = &[
    res!("", "v1", "Namespace", "namespaces", "namespace", false, short: ["ns"], cat: [], sub: ["status", "finalize"], verbs: NAMESPACE_VERBS, fields: NAMESPACE_FIELDS),
    res!("", "v1", "Pod", "pods", "pod", true, short: ["po"], cat: ["all"], sub: ["status", "binding", "eviction", "log", "exec", "attach", "portforward", "ephemeralcontainers"], verbs: ALL_VERBS, fields: POD_FIELDS),
    res!("", "v1", "Node", "nodes", "node", false, short: ["no"], cat: [], sub: ["status", "proxy"], verbs: ALL_VERBS, fields: NODE_FIELDS),
    res!("", "v1", "Service", "services", "service", true, short: ["svc"], cat: ["all"], sub: ["status", "proxy"], verbs: ALL_VERBS),
    res!("", "v1", "Endpoints", "endpoints", "endpoints", true, short: ["ep"], cat: [], sub: [], verbs: ALL_VERBS),
    res!("", "v1", "ConfigMap", "configmaps", "configmap", true, short: ["cm"], cat: [], sub: [], verbs: ALL_VERBS),
    res!("", "v1", "Secret", "secrets", "secret", true, short: [], cat: [], sub: [], verbs: ALL_VERBS, fields: SECRET_FIELDS),
    res!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, short: ["sa"], cat: [], sub: ["token"], verbs: ALL_VERBS),
    res!("", "v1", "Event", "events", "event", true, short: ["ev"], cat: [], sub: [], verbs: ALL_VERBS, fields: EVENT_FIELDS),
    res!("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, short: ["pv"], cat: [], sub: ["status"], verbs: ALL_VERBS),
    res!("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", true, short: ["pvc"], cat: [], sub: ["status"], verbs: ALL_VERBS),
    res!("", "v1", "LimitRange", "limitranges", "limitrange", true, short: ["limits"], cat: [], sub: [], verbs: ALL_VERBS),
    res!("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", true, short: ["quota"], cat: [], sub: ["status"], verbs: ALL_VERBS),
    res!("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", true, short: ["rc"], cat: ["all"], sub: ["status", "scale"], verbs: ALL_VERBS, fields: REPLICAS_FIELDS),
    res!("", "v1", "PodTemplate", "podtemplates", "podtemplate", true, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("apps", "v1", "Deployment", "deployments", "deployment", true, short: ["deploy"], cat: ["all"], sub: ["status", "scale"], verbs: ALL_VERBS),
    res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, short: ["rs"], cat: ["all"], sub: ["status", "scale"], verbs: ALL_VERBS, fields: REPLICAS_FIELDS),
    res!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, short: ["sts"], cat: ["all"], sub: ["status", "scale"], verbs: ALL_VERBS),
    res!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, short: ["ds"], cat: ["all"], sub: ["status"], verbs: ALL_VERBS),
    res!("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("batch", "v1", "Job", "jobs", "job", true, short: [], cat: ["all"], sub: ["status"], verbs: ALL_VERBS, fields: JOB_FIELDS),
    res!("batch", "v1", "CronJob", "cronjobs", "cronjob", true, short: ["cj"], cat: ["all"], sub: ["status"], verbs: ALL_VERBS),
    res!("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", true, short: ["hpa"], cat: ["all"], sub: ["status"], verbs: ALL_VERBS),
    res!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, short: ["ing"], cat: [], sub: ["status"], verbs: ALL_VERBS),
    res!("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, short: [], cat: [], sub: [], verbs: ALL_VERBS),
    res!("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, short: ["netpol"], cat: [], sub: [], verbs: ALL_VERBS),
    res!("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", false, short: ["sc"], cat: [], sub: [], verbs: ALL_VERBS),
    res!("events.k8s.io", "v1", "Event", "events", "event", true, short: ["ev"], cat: [], sub: [], verbs: ALL_VERBS),
    res!("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", false, short: ["pc"], cat: [], sub: [], verbs: ALL_VERBS),
    res!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, short: ["pdb"], cat: [], sub: ["status"], verbs: ALL_VERBS),
    res!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", false, short: [], cat: [], sub: [], verbs: CREATE_ONLY),
    res!("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", false, short: [], cat: [], sub: [], verbs: CREATE_ONLY),
    res!("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", true, short: [], cat: [], sub: [], verbs: CREATE_ONLY),
    res!("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", false, short: [], cat: [], sub: [], verbs: CREATE_ONLY),
    res!("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", false, short: [], cat: [], sub: [], verbs: CREATE_ONLY),
    res!("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", false, short: [], cat: [], sub: [], verbs: CREATE_ONLY),
    res!("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", false, short: ["crd", "crds"], cat: [], sub: ["status"], verbs: ALL_VERBS),
];

/// Looks a built-in resource up by group, version and plural.
pub fn builtin(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a built-in resource up by apiVersion and kind.
pub fn builtin_by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    BUILTIN
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The distinct `group/version`s of the built-in resources, core first, in table order.
pub fn builtin_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in BUILTIN {
        let (Cow::Borrowed(g), Cow::Borrowed(v)) = (&r.group, &r.version) else {
            continue;
        };
        if !out.contains(&(*g, *v)) {
            out.push((g, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        let pods = builtin("", "v1", "pods").expect("pods");
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        let nodes = builtin("", "v1", "nodes").expect("nodes");
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/nodes/n1");
        let deploy = builtin_by_kind("apps/v1", "Deployment").expect("deployments");
        assert_eq!(deploy.key_prefix(), "/registry/deployments/");
    }

    #[test]
    fn every_builtin_is_unique() {
        for (i, a) in BUILTIN.iter().enumerate() {
            for b in &BUILTIN[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} listed twice",
                    a.plural
                );
            }
        }
        assert_eq!(builtin_group_versions()[0], ("", "v1"));
    }

    #[test]
    fn selectable_fields_come_from_the_table() {
        let pods: Vec<&str> = selectable_fields("pods").iter().map(|f| f.name).collect();
        assert!(pods.contains(&"spec.nodeName") && pods.contains(&"status.phase"));
        assert_eq!(selectable_fields("configmaps"), &[]);
        assert_eq!(selectable_fields("widgets.example.com"), &[]);
        // Core events select on involvedObject; events.k8s.io's are stored apart.
        assert!(
            selectable_fields("events")
                .iter()
                .any(|f| f.name == "involvedObject.name")
        );
        for r in BUILTIN {
            for f in r.fields {
                let joined = f.path.join(".");
                assert!(
                    joined == f.name || f.name == "source",
                    "{}: {joined}",
                    f.name
                );
                assert!(matches!(f.absent, "" | "false"), "{}", f.name);
            }
        }
    }
}
