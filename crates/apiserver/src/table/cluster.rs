//! Printers for networking, storage, scheduling, coordination, RBAC and API extension kinds.

use serde_json::Value;

use super::format::{at, format_label_selector, int_at, list_at, list_with_more, or_none, str_at};
use super::{AGE, AGE_DESC, NAME, Printer, age, col, created_at, name, text, wide};

pub(crate) fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("networking.k8s.io", "Ingress") => &INGRESS,
        ("networking.k8s.io", "IngressClass") => &INGRESS_CLASS,
        ("networking.k8s.io", "NetworkPolicy") => &NETWORK_POLICY,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("discovery.k8s.io", "EndpointSlice") => &ENDPOINT_SLICE,
        ("storage.k8s.io", "StorageClass") => &STORAGE_CLASS,
        ("scheduling.k8s.io", "PriorityClass") => &PRIORITY_CLASS,
        ("rbac.authorization.k8s.io", "RoleBinding") => &ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &CLUSTER_ROLE_BINDING,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => &CREATED_AT_TABLE,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => &CREATED_AT_TABLE,
        _ => return None,
    })
}

/// Kubernetes' default table for kinds without a printer of their own.
pub(crate) static CREATED_AT_TABLE: Printer = Printer {
    columns: &[NAME, col("Created At", "date", AGE_DESC)],
    print: |obj, _| vec![name(obj), created_at(obj)].into(),
};

static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        col(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        col(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    print: |ing, now| {
        let class = str_at(ing, "spec.ingressClassName");
        let rules = list_at(ing, "spec.rules");
        let hosts: Vec<String> = rules
            .iter()
            .map(|r| str_at(r, "host"))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        // Kubernetes counts every rule, hosted or not, in the "+ N more" suffix.
        let hosts = match hosts.len() {
            0 => "*".to_string(),
            n if n > 3 => format!(
                "{} + {} more...",
                hosts[..3].join(","),
                rules.len().saturating_sub(3)
            ),
            _ => hosts.join(","),
        };
        let ports = if list_at(ing, "spec.tls").is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name(ing),
            text(or_none(class)),
            text(hosts),
            text(super::core::load_balancer_ingress(at(
                ing,
                "status.loadBalancer",
            ))),
            text(ports),
            text(age(ing, now)),
        ]
        .into()
    },
};

static INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    print: |ic, now| {
        let parameters = match at(ic, "spec.parameters") {
            Value::Null => "<none>".to_string(),
            p => match str_at(p, "apiGroup") {
                "" => format!("{}/{}", str_at(p, "kind"), str_at(p, "name")),
                group => format!("{}.{group}/{}", str_at(p, "kind"), str_at(p, "name")),
            },
        };
        vec![
            name(ic),
            text(str_at(ic, "spec.controller").to_string()),
            text(parameters),
            text(age(ic, now)),
        ]
        .into()
    },
};

static NETWORK_POLICY: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Pod-Selector",
            "string",
            "Selects the pods to which this NetworkPolicy object applies.",
        ),
        AGE,
    ],
    print: |np, now| {
        vec![
            name(np),
            text(format_label_selector(at(np, "spec.podSelector"))),
            text(age(np, now)),
        ]
        .into()
    },
};

static LEASE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        AGE,
    ],
    print: |l, now| {
        vec![
            name(l),
            text(str_at(l, "spec.holderIdentity").to_string()),
            text(age(l, now)),
        ]
        .into()
    },
};

static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        col(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        col(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
        ),
        AGE,
    ],
    print: |s, now| {
        let ports: Vec<String> = list_at(s, "ports")
            .iter()
            .map(|p| match (at(p, "port").as_i64(), str_at(p, "name")) {
                (Some(n), _) => n.to_string(),
                (None, "") => "*".to_string(),
                (None, name) => name.to_string(),
            })
            .collect();
        let addresses: Vec<String> = list_at(s, "endpoints")
            .iter()
            .flat_map(|e| list_at(e, "addresses"))
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        vec![
            name(s),
            text(str_at(s, "addressType").to_string()),
            text(list_with_more(&ports, "<unset>")),
            text(list_with_more(&addresses, "<unset>")),
            text(age(s, now)),
        ]
        .into()
    },
};

static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Provisioner",
            "string",
            "provisioner indicates the type of the provisioner.",
        ),
        col(
            "ReclaimPolicy",
            "string",
            "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
        ),
        col(
            "VolumeBindingMode",
            "string",
            "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
        ),
        col(
            "AllowVolumeExpansion",
            "string",
            "allowVolumeExpansion shows whether the storage class allow volume expand.",
        ),
        AGE,
    ],
    print: |sc, now| {
        let annotations = at(sc, "metadata.annotations");
        let is_default = [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|k| apimachinery::json::str_opt(annotations, k) == Some("true"));
        let mut display = str_at(sc, "metadata.name").to_string();
        if is_default {
            display.push_str(" (default)");
        }
        let or = |path: &str, default: &str| match str_at(sc, path) {
            "" => default.to_string(),
            v => v.to_string(),
        };
        vec![
            text(display),
            text(str_at(sc, "provisioner").to_string()),
            text(or("reclaimPolicy", "Delete")),
            text(or("volumeBindingMode", "Immediate")),
            text(
                at(sc, "allowVolumeExpansion")
                    .as_bool()
                    .unwrap_or(false)
                    .to_string(),
            ),
            text(age(sc, now)),
        ]
        .into()
    },
};

static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Value",
            "integer",
            "value represents the integer value of this priority class.",
        ),
        col(
            "Global-Default",
            "boolean",
            "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
        ),
        AGE,
        col(
            "PreemptionPolicy",
            "string",
            "preemptionPolicy is the Policy for preempting pods with lower priority.",
        ),
    ],
    print: |pc, now| {
        let policy = match str_at(pc, "preemptionPolicy") {
            "" => "PreemptLowerPriority",
            p => p,
        };
        vec![
            name(pc),
            int_at(pc, "value").into(),
            at(pc, "globalDefault").as_bool().unwrap_or(false).into(),
            text(age(pc, now)),
            text(policy.to_string()),
        ]
        .into()
    },
};

const BINDING_COLUMNS: [super::Col; 6] = [
    NAME,
    col(
        "Role",
        "string",
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
    ),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

static ROLE_BINDING: Printer = Printer {
    columns: &BINDING_COLUMNS,
    print: print_binding,
};
static CLUSTER_ROLE_BINDING: Printer = Printer {
    columns: &BINDING_COLUMNS,
    print: print_binding,
};

fn print_binding(b: &Value, now: i64) -> super::Row {
    let subjects = list_at(b, "subjects");
    let of_kind = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|s| str_at(s, "kind") == kind)
            .map(|s| match (kind, str_at(s, "namespace")) {
                ("ServiceAccount", ns) => format!("{ns}/{}", str_at(s, "name")),
                _ => str_at(s, "name").to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let role = format!(
        "{}/{}",
        str_at(b, "roleRef.kind"),
        str_at(b, "roleRef.name")
    );
    vec![
        name(b),
        text(role),
        text(age(b, now)),
        text(of_kind("User")),
        text(of_kind("Group")),
        text(of_kind("ServiceAccount")),
    ]
    .into()
}
