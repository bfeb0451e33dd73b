//! The pod printer: READY, STATUS and RESTARTS as `kubectl get pods` shows them.

use serde_json::{Value, json};

use super::format::{at, bool_at, int_at, list_at, str_at};
use super::{AGE, NAME, Printer, Row, age, col, name, text, wide};

pub(crate) static POD: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        col(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        wide(
            "IP",
            "string",
            "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
        ),
        wide(
            "Node",
            "string",
            "NodeName indicates in which node this pod is scheduled.",
        ),
        wide(
            "Nominated Node",
            "string",
            "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
        ),
        wide(
            "Readiness Gates",
            "string",
            "If specified, all readiness gates will be evaluated for pod readiness.",
        ),
    ],
    print: print_pod,
};

fn condition_true(pod: &Value, kind: &str) -> bool {
    list_at(pod, "status.conditions")
        .iter()
        .any(|c| str_at(c, "type") == kind && str_at(c, "status") == "True")
}

/// A restartable init container is a sidecar: it counts as a container and keeps running.
fn is_sidecar(pod: &Value, name: &str) -> bool {
    list_at(pod, "spec.initContainers")
        .iter()
        .any(|c| str_at(c, "name") == name && str_at(c, "restartPolicy") == "Always")
}

/// The latest `lastState.terminated.finishedAt` seen so far, in Unix seconds.
fn later_restart(latest: Option<i64>, status: &Value) -> Option<i64> {
    let finished = super::format::parse_time(at(status, "lastState.terminated.finishedAt"));
    match (latest, finished) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Follows Kubernetes' `printPod`: the STATUS a person sees is the most telling reason among
/// init containers, then containers, then deletion.
fn print_pod(pod: &Value, now: i64) -> Row {
    let phase = str_at(pod, "status.phase");
    let mut reason = match str_at(pod, "status.reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if list_at(pod, "status.conditions")
        .iter()
        .any(|c| str_at(c, "type") == "PodScheduled" && str_at(c, "reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let init_containers = list_at(pod, "spec.initContainers");
    let total = list_at(pod, "spec.containers").len()
        + init_containers
            .iter()
            .filter(|c| str_at(c, "restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let (mut restarts, mut sidecar_restarts) = (0i64, 0i64);
    let (mut last_restart, mut last_sidecar_restart) = (None, None);

    let mut initializing = false;
    for (i, status) in list_at(pod, "status.initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int_at(status, "restartCount");
        restarts += count;
        last_restart = later_restart(last_restart, status);
        let sidecar = is_sidecar(pod, str_at(status, "name"));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later_restart(last_sidecar_restart, status);
        }
        let terminated = at(status, "state.terminated");
        let waiting_reason = str_at(status, "state.waiting.reason");
        if terminated.is_object() && int_at(terminated, "exitCode") == 0 {
            continue;
        }
        if sidecar && bool_at(status, "started") {
            if bool_at(status, "ready") {
                ready += 1;
            }
            continue;
        }
        reason = if terminated.is_object() {
            match (str_at(terminated, "reason"), int_at(terminated, "signal")) {
                ("", 0) => format!("Init:ExitCode:{}", int_at(terminated, "exitCode")),
                ("", signal) => format!("Init:Signal:{signal}"),
                (r, _) => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_containers.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        let mut error_reason = String::new();
        for status in list_at(pod, "status.containerStatuses").iter().rev() {
            restarts += int_at(status, "restartCount");
            last_restart = later_restart(last_restart, status);
            let waiting_reason = str_at(status, "state.waiting.reason");
            let terminated = at(status, "state.terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated.is_object() {
                reason = match (str_at(terminated, "reason"), int_at(terminated, "signal")) {
                    ("", 0) => format!("ExitCode:{}", int_at(terminated, "exitCode")),
                    ("", signal) => format!("Signal:{signal}"),
                    (r, _) => r.to_string(),
                };
                if int_at(terminated, "exitCode") != 0 {
                    error_reason = reason.clone();
                }
            } else if bool_at(status, "ready") && at(status, "state.running").is_object() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but others still run is not "Completed".
        if reason == "Completed" {
            if has_running && condition_true(pod, "Ready") {
                reason = "Running".into();
            } else if !error_reason.is_empty() {
                reason = error_reason;
            } else if has_running {
                reason = "NotReady".into();
            }
        }
    }

    let deleting = !at(pod, "metadata.deletionTimestamp").is_null();
    if deleting && str_at(pod, "status.reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            super::format::human_duration(now - t)
        ),
        _ => restarts.to_string(),
    };

    let ip = list_at(pod, "status.podIPs")
        .first()
        .map(|p| str_at(p, "ip"))
        .filter(|s| !s.is_empty());
    let ip = ip.unwrap_or_else(|| str_at(pod, "status.podIP"));
    let gates = list_at(pod, "spec.readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passing = gates
            .iter()
            .filter(|g| condition_true(pod, str_at(g, "conditionType")))
            .count();
        format!("{passing}/{}", gates.len())
    };

    let conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    Row {
        cells: vec![
            name(pod),
            text(format!("{ready}/{total}")),
            text(reason),
            text(restarts_cell),
            text(age(pod, now)),
            text(super::format::or_none(ip)),
            text(super::format::or_none(str_at(pod, "spec.nodeName"))),
            text(super::format::or_none(str_at(
                pod,
                "status.nominatedNodeName",
            ))),
            text(gates_cell),
        ],
        conditions,
    }
}
