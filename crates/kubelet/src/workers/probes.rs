//! Liveness, readiness and startup probes, run as the kubelet's prober does:
//! after `initialDelaySeconds`, every `periodSeconds`, each attempt bounded by
//! `timeoutSeconds`; a result flips after `successThreshold` successes or
//! `failureThreshold` failures in a row. Liveness and readiness wait until the
//! startup probe (if any) has succeeded. Results reach the pod's worker as
//! messages; a failed liveness or startup probe ends the probing of that
//! container run (the worker kills it, and a restarted container gets new
//! probes).

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::mpsc;

use std::sync::Arc;

use super::Msg;
use crate::runtime::Runtime;

/// Where probes go: the container run (for exec) and the pod's address.
struct Target {
    runtime: Arc<dyn Runtime>,
    id: String,
    pod_ip: IpAddr,
}
use super::handlers::{self, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }
}

/// A probe result that changed, for one run of one container.
#[derive(Debug, Clone)]
pub(crate) struct ProbeResult {
    pub container: String,
    pub id: String,
    pub kind: ProbeKind,
    pub ok: bool,
    /// Why it failed (for the `Unhealthy` event).
    pub message: String,
}

/// The probing of one container run; stops when dropped.
pub(crate) struct Probing {
    pub id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the container has any probe.
pub(crate) fn has_probes(c: &Container) -> bool {
    c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some()
}

/// Starts probing a running container.
pub(crate) fn start(
    runtime: Arc<dyn Runtime>,
    container: Container,
    id: String,
    pod_ip: IpAddr,
    tx: mpsc::WeakUnboundedSender<Msg>,
) -> Probing {
    let run_id = id.clone();
    let target = Target {
        runtime,
        id: id.clone(),
        pod_ip,
    };
    let task = tokio::spawn(async move {
        let report = |kind, ok, message: String| {
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Msg::Probe(ProbeResult {
                    container: container.name.clone(),
                    id: run_id.clone(),
                    kind,
                    ok,
                    message,
                }));
            }
        };
        if let Some(p) = &container.startup_probe
            && !run(&container, &target, p, ProbeKind::Startup, &report).await
        {
            return;
        }
        let live = async {
            if let Some(p) = &container.liveness_probe {
                run(&container, &target, p, ProbeKind::Liveness, &report).await;
            }
        };
        let ready = async {
            if let Some(p) = &container.readiness_probe {
                run(&container, &target, p, ProbeKind::Readiness, &report).await;
            }
        };
        tokio::join!(live, ready);
    });
    Probing { id, task }
}

/// One probe's loop. Startup returns `true` once it succeeded; liveness and
/// startup return `false` once they failed; readiness runs until aborted.
async fn run(
    c: &Container,
    target: &Target,
    p: &Probe,
    kind: ProbeKind,
    report: &impl Fn(ProbeKind, bool, String),
) -> bool {
    let secs =
        |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    let period = secs(p.period_seconds, 10).max(Duration::from_secs(1));
    let timeout = secs(p.timeout_seconds, 1).max(Duration::from_secs(1));
    let success_threshold = p.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = p.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(secs(p.initial_delay_seconds, 0)).await;
    let (mut successes, mut failures) = (0, 0);
    let mut state: Option<bool> = None;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match probe_once(c, target, p, timeout).await {
            Outcome::Success => {
                failures = 0;
                successes += 1;
                if successes >= success_threshold && state != Some(true) {
                    state = Some(true);
                    report(kind, true, String::new());
                    if kind == ProbeKind::Startup {
                        return true;
                    }
                }
            }
            Outcome::Failure(message) => {
                successes = 0;
                failures += 1;
                if failures >= failure_threshold && state != Some(false) {
                    state = Some(false);
                    report(kind, false, message);
                    if kind != ProbeKind::Readiness {
                        return false;
                    }
                }
            }
        }
    }
}

async fn probe_once(c: &Container, target: &Target, p: &Probe, timeout: Duration) -> Outcome {
    if let Some(a) = &p.http_get {
        return handlers::http_get(c, target.pod_ip, a, timeout).await;
    }
    if let Some(a) = &p.tcp_socket {
        return handlers::tcp_socket(c, target.pod_ip, a, timeout).await;
    }
    if let Some(e) = &p.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return handlers::exec(target.runtime.as_ref(), &target.id, &cmd, timeout).await;
    }
    if let Some(g) = &p.grpc {
        return handlers::grpc(target.pod_ip, g, timeout).await;
    }
    Outcome::Failure("the probe names no action".into())
}
