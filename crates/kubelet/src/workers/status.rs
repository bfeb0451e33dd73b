//! A pod's status computed from what the runtime reports, as the kubelet's
//! `generateAPIPodStatus` does: container states with their last termination,
//! the phase, and the Initialized / ContainersReady / Ready /
//! PodReadyToStartContainers conditions (PodScheduled and any other condition
//! the kubelet does not own are kept as they are).

use std::net::IpAddr;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::runtime::{ContainerState, ContainerStatus};

/// The prefix of `containerID`s this runtime reports.
pub(crate) const CONTAINER_ID_SCHEME: &str = "flotilla";

/// Conditions the kubelet owns; the rest are kept from the current status.
const OWN_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// `2026-12-02T19:43:21Z`: Kubernetes' `Time`, to the second.
pub(crate) fn time(t: SystemTime) -> String {
    let full = crate::runtime::shim::rfc3339_nanos(t);
    format!("{}Z", &full[..19])
}

/// What the agent knows of one container of the pod.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerView {
    pub name: String,
    pub image: String,
    /// The newest attempt in the runtime.
    pub current: Option<ContainerStatus>,
    /// The attempt before it, once it has exited (for `lastState`).
    pub previous: Option<ContainerStatus>,
    /// Why it is not running (`CrashLoopBackOff`, `CreateContainerConfigError`,
    /// `ErrImageNeverPull`, …) with a message; overrides a finished `current`.
    pub waiting: Option<(String, String)>,
    pub restart_count: u32,
    /// What the probes say, when the container has them: readiness (false
    /// until its first success) and startup. `None`: running is enough.
    pub probed_ready: Option<bool>,
    pub probed_started: Option<bool>,
    /// An init container with restartPolicy Always: done once it runs.
    pub sidecar: bool,
}

impl ContainerView {
    fn ready(&self) -> bool {
        is_running(self) && self.probed_started != Some(false) && self.probed_ready != Some(false)
    }
    fn started(&self) -> bool {
        is_running(self) && self.probed_started != Some(false)
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodView {
    pub init: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
    pub sandbox_ready: bool,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: Option<IpAddr>,
    pub start_time: Option<String>,
    /// Set when the kubelet decided the pod failed (an init container failed
    /// under restartPolicy Never, activeDeadlineSeconds passed, …).
    pub failed: Option<(String, String)>,
}

fn terminated(c: &ContainerStatus) -> Option<Value> {
    match &c.state {
        ContainerState::Exited {
            started_at,
            finished_at,
            exit_code,
            reason,
            message,
        } => {
            let mut t = json!({
                "exitCode": exit_code,
                "reason": reason,
                "finishedAt": time(*finished_at),
                "containerID": format!("{CONTAINER_ID_SCHEME}://{}", c.id),
            });
            if let Some(s) = started_at {
                t["startedAt"] = json!(time(*s));
            }
            if let Some(m) = message {
                t["message"] = json!(m);
            }
            Some(t)
        }
        _ => None,
    }
}

/// An init container that has done its part: exited 0, or a sidecar that
/// has started.
fn init_done(c: &ContainerView) -> bool {
    if c.sidecar {
        return c.started();
    }
    exited_ok(c)
}

fn exited_ok(c: &ContainerView) -> bool {
    matches!(
        c.current.as_ref().map(|s| &s.state),
        Some(ContainerState::Exited { exit_code: 0, .. })
    )
}

fn is_running(c: &ContainerView) -> bool {
    matches!(
        c.current.as_ref().map(|s| &s.state),
        Some(ContainerState::Running { .. })
    )
}

/// One entry of `containerStatuses`; `default_waiting` is the reason shown
/// before a container was ever created.
fn container_status(c: &ContainerView, default_waiting: &str) -> Value {
    let current_exit = c.current.as_ref().and_then(terminated);
    let state = match (&c.waiting, &c.current) {
        (Some((reason, message)), cur) if cur.is_none() || current_exit.is_some() => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        (_, Some(cur)) => match &cur.state {
            ContainerState::Running { started_at } => {
                json!({"running": {"startedAt": time(*started_at)}})
            }
            ContainerState::Exited { .. } => json!({ "terminated": current_exit }),
            ContainerState::Created | ContainerState::Unknown => {
                json!({"waiting": {"reason": "ContainerCreating"}})
            }
        },
        (_, None) => json!({"waiting": {"reason": default_waiting}}),
    };
    // While waiting to restart, the last run is the current (exited) one.
    let last = if state.get("waiting").is_some() && current_exit.is_some() {
        current_exit
    } else {
        c.previous.as_ref().and_then(terminated)
    };
    let mut s = json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.current.as_ref().map(|s| s.image_id.clone()).unwrap_or_default(),
        "ready": c.ready(),
        "started": c.started(),
        "restartCount": c.restart_count,
        "state": state,
        "lastState": last.map(|t| json!({"terminated": t})).unwrap_or(json!({})),
    });
    if let Some(cur) = &c.current {
        s["containerID"] = json!(format!("{CONTAINER_ID_SCHEME}://{}", cur.id));
    }
    s
}

/// The pod's phase by the kubelet's rules (`getPhase`).
fn phase(view: &PodView, restart_policy: &str) -> &'static str {
    if view.failed.is_some() {
        return "Failed";
    }
    if view.init.iter().any(|c| !init_done(c)) {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &view.containers {
        match c.current.as_ref().map(|s| &s.state) {
            Some(ContainerState::Running { .. }) => running += 1,
            Some(ContainerState::Exited { exit_code, .. }) => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            _ => waiting += 1,
        }
    }
    match () {
        _ if waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        },
        _ => "Pending",
    }
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, now: &str, old: &[Value]) -> Value {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status does.
    let since = old
        .iter()
        .find(|c| c["type"] == kind && c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let mut c = json!({
        "type": kind,
        "status": status,
        "lastProbeTime": null,
        "lastTransitionTime": since,
    });
    if let (false, Some(r)) = (ok, reason) {
        c["reason"] = json!(r);
    }
    c
}

/// The pod's new `status`.
pub(crate) fn pod_status(pod: &Pod, view: &PodView, now: SystemTime) -> Value {
    let now = time(now);
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let old: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let phase = phase(view, policy);
    let initialized = view.init.iter().all(init_done);
    let ready = phase == "Running"
        && view.containers.iter().all(ContainerView::ready)
        && !view.containers.is_empty();
    let (ready_reason, init_reason) = (
        if initialized {
            "ContainersNotReady"
        } else {
            "ContainersNotInitialized"
        },
        "ContainersNotInitialized",
    );
    let mut conditions: Vec<Value> = old
        .iter()
        .filter(|c| !OWN_CONDITIONS.iter().any(|o| c["type"] == *o))
        .cloned()
        .collect();
    conditions.push(condition(
        "PodReadyToStartContainers",
        view.sandbox_ready,
        None,
        &now,
        &old,
    ));
    conditions.push(condition(
        "Initialized",
        initialized,
        Some(init_reason),
        &now,
        &old,
    ));
    conditions.push(condition(
        "ContainersReady",
        ready,
        Some(ready_reason),
        &now,
        &old,
    ));
    conditions.push(condition("Ready", ready, Some(ready_reason), &now, &old));

    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": view
            .containers
            .iter()
            .map(|c| container_status(c, if initialized { "ContainerCreating" } else { "PodInitializing" }))
            .collect::<Vec<_>>(),
    });
    if !view.init.is_empty() {
        status["initContainerStatuses"] = json!(
            view.init
                .iter()
                .map(|c| container_status(c, "PodInitializing"))
                .collect::<Vec<_>>()
        );
    }
    if let Some(ip) = view.host_ip {
        status["hostIP"] = json!(ip.to_string());
        status["hostIPs"] = json!([{"ip": ip.to_string()}]);
    }
    if let Some(ip) = view.pod_ip {
        status["podIP"] = json!(ip.to_string());
        status["podIPs"] = json!([{"ip": ip.to_string()}]);
    }
    if let Some(t) = &view.start_time {
        status["startTime"] = json!(t);
    }
    if let Some((reason, message)) = &view.failed {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_700_000 + s)
    }

    fn status(id: &str, state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            id: id.into(),
            sandbox_id: "s".into(),
            name: "c".into(),
            attempt: 0,
            image: "busybox".into(),
            image_id: "sha256:abc".into(),
            state,
            created_at: at(0),
            log_path: "/l".into(),
        }
    }

    fn exited(id: &str, code: i32) -> ContainerStatus {
        status(
            id,
            ContainerState::Exited {
                started_at: Some(at(1)),
                finished_at: at(2),
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
                message: None,
            },
        )
    }

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]},
        }))
        .unwrap()
    }

    fn view(current: Option<ContainerStatus>) -> PodView {
        PodView {
            containers: vec![ContainerView {
                name: "c".into(),
                image: "busybox".into(),
                current,
                ..Default::default()
            }],
            sandbox_ready: true,
            pod_ip: Some("10.42.0.5".parse().unwrap()),
            host_ip: Some("10.0.0.1".parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn a_running_container_makes_a_ready_running_pod() {
        let v = view(Some(status(
            "x",
            ContainerState::Running { started_at: at(1) },
        )));
        let s = pod_status(&pod("Always"), &v, at(3));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.42.0.5");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(s["containerStatuses"][0]["containerID"], "flotilla://x");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            time(at(1))
        );
        let types: Vec<&str> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "PodScheduled",
                "PodReadyToStartContainers",
                "Initialized",
                "ContainersReady",
                "Ready"
            ]
        );
        assert!(
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] == "True")
        );
    }

    #[test]
    fn phases_follow_the_restart_policy() {
        let done = |policy, code| {
            pod_status(&pod(policy), &view(Some(exited("x", code))), at(3))["phase"].clone()
        };
        assert_eq!(done("Never", 0), "Succeeded");
        assert_eq!(done("Never", 1), "Failed");
        assert_eq!(done("OnFailure", 0), "Succeeded");
        assert_eq!(done("OnFailure", 1), "Running");
        assert_eq!(done("Always", 0), "Running");
        assert_eq!(
            pod_status(&pod("Always"), &view(None), at(3))["phase"],
            "Pending"
        );
    }

    #[test]
    fn crash_loop_shows_waiting_with_the_last_termination() {
        let mut v = view(Some(exited("x", 2)));
        v.containers[0].waiting = Some(("CrashLoopBackOff".into(), "back-off 10s".into()));
        v.containers[0].restart_count = 1;
        let s = pod_status(&pod("Always"), &v, at(3));
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 2);
        assert_eq!(c["restartCount"], 1);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["conditions"][4]["status"], "False");
        assert_eq!(s["conditions"][4]["reason"], "ContainersNotReady");
    }

    #[test]
    fn readiness_probes_gate_ready() {
        let mut v = view(Some(status(
            "x",
            ContainerState::Running { started_at: at(1) },
        )));
        v.containers[0].probed_ready = Some(false);
        let s = pod_status(&pod("Always"), &v, at(3));
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        assert_eq!(s["containerStatuses"][0]["started"], true);
        assert_eq!(s["conditions"][4]["status"], "False");
        v.containers[0].probed_ready = Some(true);
        v.containers[0].probed_started = Some(false);
        let s = pod_status(&pod("Always"), &v, at(3));
        assert_eq!(s["containerStatuses"][0]["started"], false);
        assert_eq!(s["containerStatuses"][0]["ready"], false);
    }

    #[test]
    fn init_containers_hold_the_pod_pending() {
        let mut v = view(None);
        v.init = vec![ContainerView {
            name: "i".into(),
            current: Some(status("i", ContainerState::Running { started_at: at(1) })),
            ..Default::default()
        }];
        let s = pod_status(&pod("Always"), &v, at(3));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(s["conditions"][2]["status"], "False");
    }
}
