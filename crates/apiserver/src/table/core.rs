//! Printers for the core group's non-workload kinds and for events of both groups.

use serde_json::Value;

use super::format::{
    at, count_at, format_labels, int_at, list_at, list_with_more, or_none, str_at,
};
use super::{AGE, NAME, Printer, age, col, name, text, wide};

pub(crate) fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("", "Service") => &SERVICE,
        ("", "Endpoints") => &ENDPOINTS,
        ("", "Node") => &NODE,
        ("", "Namespace") => &NAMESPACE,
        ("", "ConfigMap") => &CONFIG_MAP,
        ("", "Secret") => &SECRET,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "Event") => &super::events::EVENT,
        ("events.k8s.io", "Event") => &super::events::EVENTS_V1,
        ("", "PersistentVolume") => &super::storage::PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => &super::storage::PERSISTENT_VOLUME_CLAIM,
        ("", "ResourceQuota") => &RESOURCE_QUOTA,
        ("", "LimitRange") => &super::cluster::CREATED_AT_TABLE,
        _ => return None,
    })
}

static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Type",
            "string",
            "type determines how the Service is exposed.",
        ),
        col(
            "Cluster-IP",
            "string",
            "clusterIP is the IP address of the service and is usually assigned randomly.",
        ),
        col(
            "External-IP",
            "string",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
        ),
        col(
            "Port(s)",
            "string",
            "The list of ports that are exposed by this service.",
        ),
        AGE,
        wide(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector.",
        ),
    ],
    print: |svc, now| {
        let cluster_ip = apimachinery::json::str_ptr_opt(svc, "/spec/clusterIPs/0");
        let cluster_ip = cluster_ip.unwrap_or_else(|| str_at(svc, "spec.clusterIP"));
        let ports: Vec<String> = list_at(svc, "spec.ports")
            .iter()
            .map(|p| {
                let protocol = match str_at(p, "protocol") {
                    "" => "TCP",
                    proto => proto,
                };
                match int_at(p, "nodePort") {
                    n if n > 0 => format!("{}:{n}/{protocol}", int_at(p, "port")),
                    _ => format!("{}/{protocol}", int_at(p, "port")),
                }
            })
            .collect();
        vec![
            name(svc),
            text(match str_at(svc, "spec.type") {
                "" => "ClusterIP".to_string(),
                t => t.to_string(),
            }),
            text(or_none(cluster_ip)),
            text(service_external_ip(svc)),
            text(or_none(&ports.join(","))),
            text(age(svc, now)),
            text(format_labels(at(svc, "spec.selector"))),
        ]
        .into()
    },
};

fn string_list(v: &Value, path: &str) -> Vec<String> {
    list_at(v, path)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Distinct load-balancer ingress points, IP before hostname, sorted.
pub(crate) fn load_balancer_ingress(status: &Value) -> String {
    let mut points: Vec<String> = list_at(status, "ingress")
        .iter()
        .filter_map(|i| {
            [str_at(i, "ip"), str_at(i, "hostname")]
                .into_iter()
                .find(|s| !s.is_empty())
        })
        .map(str::to_string)
        .collect();
    points.sort();
    points.dedup();
    points.join(",")
}

fn service_external_ip(svc: &Value) -> String {
    let external = string_list(svc, "spec.externalIPs");
    match str_at(svc, "spec.type") {
        "" | "ClusterIP" | "NodePort" => or_none(&external.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_ingress(at(svc, "status.loadBalancer"));
            let mut all: Vec<String> = lb
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, "spec.externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

static ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets.",
        ),
        AGE,
    ],
    print: |ep, now| {
        let subsets = list_at(ep, "subsets");
        let cell = if subsets.is_empty() {
            "<none>".to_string()
        } else {
            let mut all: Vec<String> = Vec::new();
            for subset in subsets {
                let ips: Vec<&str> = list_at(subset, "addresses")
                    .iter()
                    .map(|a| str_at(a, "ip"))
                    .collect();
                let ports = list_at(subset, "ports");
                if ports.is_empty() {
                    all.extend(ips.iter().map(|ip| ip.to_string()));
                }
                for port in ports {
                    let port = int_at(port, "port");
                    all.extend(ips.iter().map(|ip| join_host_port(ip, port)));
                }
            }
            list_with_more(&all, "")
        };
        vec![name(ep), text(cell), text(age(ep, now))].into()
    },
};

/// `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

static NODE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", "Kubelet Version reported by the node."),
        wide(
            "Internal-IP",
            "string",
            "List of addresses reachable to the node.",
        ),
        wide(
            "External-IP",
            "string",
            "List of addresses reachable to the node.",
        ),
        wide(
            "OS-Image",
            "string",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        ),
        wide(
            "Kernel-Version",
            "string",
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        ),
        wide(
            "Container-Runtime",
            "string",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        ),
    ],
    print: |node, now| {
        let ready = list_at(node, "status.conditions")
            .iter()
            .find(|c| str_at(c, "type") == "Ready");
        let mut status = match ready {
            Some(c) if str_at(c, "status") == "True" => "Ready".to_string(),
            Some(_) => "NotReady".to_string(),
            None => "Unknown".to_string(),
        };
        if at(node, "spec.unschedulable").as_bool() == Some(true) {
            status.push_str(",SchedulingDisabled");
        }
        let address = |kind: &str| {
            let found = list_at(node, "status.addresses")
                .iter()
                .find(|a| str_at(a, "type") == kind);
            or_none(found.map(|a| str_at(a, "address")).unwrap_or_default())
        };
        let info = |field: &str| match str_at(node, &format!("status.nodeInfo.{field}")) {
            "" => "<unknown>".to_string(),
            s => s.to_string(),
        };
        vec![
            name(node),
            text(status),
            text(or_none(&node_roles(node).join(","))),
            text(age(node, now)),
            text(str_at(node, "status.nodeInfo.kubeletVersion").to_string()),
            text(address("InternalIP")),
            text(address("ExternalIP")),
            text(info("osImage")),
            text(info("kernelVersion")),
            text(info("containerRuntimeVersion")),
        ]
        .into()
    },
};

/// Roles from `node-role.kubernetes.io/<role>` labels and the older `kubernetes.io/role`.
fn node_roles(node: &Value) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for (key, value) in at(node, "metadata.labels")
        .as_object()
        .into_iter()
        .flatten()
    {
        let role = match key.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => role,
            None if key == "kubernetes.io/role" => value.as_str().unwrap_or_default(),
            None => "",
        };
        if !role.is_empty() && !roles.iter().any(|r| r == role) {
            roles.push(role.to_string());
        }
    }
    roles.sort();
    roles
}

static NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ],
    print: |ns, now| {
        vec![
            name(ns),
            text(str_at(ns, "status.phase").to_string()),
            text(age(ns, now)),
        ]
        .into()
    },
};

static CONFIG_MAP: Printer = Printer {
    columns: &[
        NAME,
        col("Data", "string", "Data contains the configuration data."),
        AGE,
    ],
    print: |cm, now| {
        let entries = count_at(cm, "data") + count_at(cm, "binaryData");
        vec![name(cm), (entries as i64).into(), text(age(cm, now))].into()
    },
};

static SECRET: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data.",
        ),
        col("Data", "string", "Data contains the secret data."),
        AGE,
    ],
    print: |s, now| {
        let ty = match str_at(s, "type") {
            "" => "Opaque",
            t => t,
        };
        vec![
            name(s),
            text(ty.to_string()),
            (count_at(s, "data") as i64).into(),
            text(age(s, now)),
        ]
        .into()
    },
};

static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Secrets",
            "string",
            "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
        ),
        AGE,
    ],
    print: |sa, now| {
        vec![
            name(sa),
            (count_at(sa, "secrets") as i64).into(),
            text(age(sa, now)),
        ]
        .into()
    },
};

static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        col(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        col(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
    ],
    print: |q, now| {
        // Kubernetes lists `used/hard` per resource, limits.* under LIMIT, the rest under REQUEST.
        let mut requests: Vec<String> = Vec::new();
        let mut limits: Vec<String> = Vec::new();
        let mut hard: Vec<(&String, &Value)> = at(q, "status.hard")
            .as_object()
            .into_iter()
            .flatten()
            .collect();
        hard.sort_by(|a, b| a.0.cmp(b.0));
        for (resource, limit) in hard {
            let used = super::storage::quantity(
                at(q, "status.used").get(resource).unwrap_or(&Value::Null),
            );
            let used = if used.is_empty() {
                "0".to_string()
            } else {
                used
            };
            let entry = format!("{resource}: {used}/{}", super::storage::quantity(limit));
            if resource.starts_with("limits.") {
                limits.push(entry)
            } else {
                requests.push(entry)
            }
        }
        vec![
            name(q),
            text(age(q, now)),
            text(requests.join(", ")),
            text(limits.join(", ")),
        ]
        .into()
    },
};
