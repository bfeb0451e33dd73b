//! One pod's worker: brings the runtime in line with the pod's spec (sandbox,
//! init containers in order, then the containers, restarts with back-off),
//! writes the pod's status when it changes, and on deletion stops everything
//! within the grace period and removes the pod from the API.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events::Kind;
use super::probes::{self, ProbeKind, ProbeResult, Probing};
use super::status::{ContainerView, PodView, pod_status, time};
use super::{Msg, Shared, backoff, handlers, images, inputs, volumes};
use crate::pods::config::{ConfigContext, ObjectLookup, container_config, sandbox_config};
use crate::runtime::{ContainerState, ContainerStatus, PodSandboxStatus, RuntimeError};
use sources::AbortOnDrop;

mod containers;
mod probing;
mod report;
mod sources;
mod terminate;

/// An init container that runs beside the others (Kubernetes' sidecars).
fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// How long to wait before retrying a step that failed (sandbox, create).
const RETRY: Duration = Duration::from_secs(10);

pub(super) struct Worker {
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    uid: String,
    /// The pod object is gone from the API (force-deleted).
    gone: bool,
    last_status: Option<Value>,
    start_time: Option<String>,
    /// Why a container is not running, by name, until it runs.
    waiting: HashMap<String, (String, String)>,
    failed: Option<(String, String)>,
    /// Host paths of the pod's volumes, once set up.
    volumes: Option<std::collections::BTreeMap<String, PathBuf>>,
    /// When the volumes are written again (bound token refresh).
    volumes_refresh: Option<tokio::time::Instant>,
    /// Watches of the ConfigMaps and Secrets the volumes show; aborted on drop.
    source_watches: Vec<AbortOnDrop>,
    /// This worker's own queue, for those watches and the image pulls.
    tx: mpsc::WeakUnboundedSender<Msg>,
    /// Probing of each running container that has probes, by container name.
    probing: HashMap<String, Probing>,
    /// (ready, started) as the probes last said, by container ID.
    probed: HashMap<String, (Option<bool>, Option<bool>)>,
    /// Containers whose liveness or startup probe failed: (ID, name, probe).
    to_kill: Vec<(String, String, &'static str)>,
    /// Image pulls of the containers and their back-offs.
    images: images::Pulls,
}

/// What a sync asks for next.
enum Next {
    /// Sync again after this long, or on the next message.
    After(Option<Duration>),
    /// The pod is gone and everything is released.
    Done,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, pod: Arc<Pod>, tx: mpsc::WeakUnboundedSender<Msg>) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string());
        Self {
            shared,
            pod,
            uid,
            gone: false,
            last_status: None,
            start_time,
            waiting: HashMap::new(),
            failed: None,
            volumes: None,
            volumes_refresh: None,
            source_watches: Vec::new(),
            tx,
            probing: HashMap::new(),
            probed: HashMap::new(),
            to_kill: Vec::new(),
            images: images::Pulls::default(),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) -> String {
        loop {
            let next = match self.sync().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(pod = %self.key(), error = %e, "syncing pod");
                    Next::After(Some(RETRY))
                }
            };
            let wait = match next {
                Next::Done => return self.uid,
                Next::After(d) => d,
            };
            let msg = match wait {
                Some(d) => tokio::time::timeout(d, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            };
            match msg {
                Some(Some(m)) => self.apply(m),
                // The agent is stopping: leave the pod running.
                Some(None) => return self.uid,
                None => {}
            }
            // Take everything else that queued up; only the latest pod matters.
            while let Ok(m) = rx.try_recv() {
                self.apply(m);
            }
        }
    }

    fn apply(&mut self, m: Msg) {
        match m {
            Msg::Update(p) => self.pod = p,
            Msg::Gone => self.gone = true,
            Msg::Wake => {}
            Msg::VolumesChanged => self.volumes = None,
            Msg::Probe(r) => self.probe_result(r),
            Msg::Evict(message) => {
                if self.failed.is_none() {
                    self.shared.events.emit(
                        &self.pod,
                        None,
                        Kind::Warning,
                        "Evicted",
                        message.clone(),
                    );
                    self.failed = Some(("Evicted".into(), message));
                }
            }
        }
    }

    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    fn policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn phase(&self) -> &str {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending")
    }

    async fn sync(&mut self) -> Result<Next, RuntimeError> {
        if self.gone || self.pod.metadata.deletion_timestamp.is_some() {
            self.terminate().await?;
            return Ok(Next::Done);
        }
        let rt = self.shared.runtime.clone();
        let sandboxes: Vec<PodSandboxStatus> = rt
            .list_pod_sandboxes()
            .await?
            .into_iter()
            .filter(|s| s.uid == self.uid)
            .collect();
        let terminal = matches!(self.phase(), "Succeeded" | "Failed");
        let sandbox = match sandboxes.iter().find(|s| s.ready) {
            Some(s) => s.clone(),
            None if terminal => return Ok(Next::After(None)),
            None => {
                for old in &sandboxes {
                    rt.remove_pod_sandbox(&old.id).await?;
                }
                let config = self.sandbox_config();
                match rt.run_pod_sandbox(&config).await {
                    Ok(s) => s,
                    Err(e) => {
                        self.shared.events.emit(
                            &self.pod,
                            None,
                            Kind::Warning,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        );
                        self.report(None, &[]).await;
                        return Ok(Next::After(Some(RETRY)));
                    }
                }
            }
        };
        let mut deadline_wake = None;
        if let Some(left) = self.deadline_left() {
            if left.is_zero() && self.failed.is_none() {
                self.failed = Some((
                    "DeadlineExceeded".into(),
                    "Pod was active on the node longer than the specified deadline".into(),
                ));
                self.shared.events.emit(
                    &self.pod,
                    None,
                    Kind::Normal,
                    "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline".into(),
                );
                for c in rt.list_containers(Some(&sandbox.id)).await? {
                    if matches!(c.state, ContainerState::Running { .. }) {
                        rt.stop_container(&c.id, Duration::from_secs(self.grace_seconds()))
                            .await?;
                    }
                }
                let statuses = rt.list_containers(Some(&sandbox.id)).await?;
                self.report(Some(&sandbox), &statuses).await;
                return Ok(Next::After(None));
            }
            if !left.is_zero() {
                deadline_wake = Some(left);
            }
        }
        // A failed pod (evicted, past its deadline, failed init) runs nothing.
        if self.failed.is_some() {
            for c in rt.list_containers(Some(&sandbox.id)).await? {
                if matches!(c.state, ContainerState::Running { .. }) {
                    rt.stop_container(&c.id, Duration::ZERO).await?;
                }
            }
            let statuses = rt.list_containers(Some(&sandbox.id)).await?;
            self.report(Some(&sandbox), &statuses).await;
            return Ok(Next::After(None));
        }
        if self
            .volumes_refresh
            .is_some_and(|at| at <= tokio::time::Instant::now())
        {
            self.volumes = None;
        }
        if self.volumes.is_none() && !terminal {
            match volumes::set_up(&self.shared, &self.pod).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volumes_refresh =
                        volumes::refresh_after(&self.pod).map(|d| tokio::time::Instant::now() + d);
                    if self.source_watches.is_empty() {
                        self.watch_sources();
                    }
                }
                Err(message) => {
                    self.shared
                        .events
                        .emit(&self.pod, None, Kind::Warning, "FailedMount", message);
                    let statuses = rt.list_containers(Some(&sandbox.id)).await?;
                    self.report(Some(&sandbox), &statuses).await;
                    return Ok(Next::After(Some(RETRY)));
                }
            }
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        let mut wake: Option<Duration> = None;
        let mut soonest = |d: Duration| wake = Some(wake.map_or(d, |w: Duration| w.min(d)));
        if let Some(d) = deadline_wake {
            soonest(d);
        }

        // Init containers, one at a time and in order. A sidecar (an init
        // container with restartPolicy Always) counts as done once it runs,
        // and is restarted whenever it exits.
        let mut init_done = true;
        for c in spec.init_containers.iter().flatten() {
            let latest = self.latest(&sandbox, &c.name).await?;
            if is_sidecar(c) {
                match latest.as_ref().map(|s| &s.state) {
                    Some(ContainerState::Running { .. }) => continue,
                    None => {
                        if let Some(d) = self.start(&sandbox, c, 0).await? {
                            soonest(d);
                        }
                    }
                    Some(ContainerState::Exited { .. }) => {
                        if let Some(d) = self.restart(&sandbox, c, latest.as_ref()).await? {
                            soonest(d);
                        }
                    }
                    Some(_) => {}
                }
                if self
                    .latest(&sandbox, &c.name)
                    .await?
                    .is_some_and(|s| matches!(s.state, ContainerState::Running { .. }))
                {
                    continue;
                }
                init_done = false;
                break;
            }
            match latest.as_ref().map(|s| &s.state) {
                Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
                Some(ContainerState::Exited { exit_code, .. }) if self.policy() == "Never" => {
                    self.failed = Some((
                        "Init:Error".into(),
                        format!("init container {} exited with {exit_code}", c.name),
                    ));
                }
                Some(ContainerState::Exited { .. }) => {
                    if let Some(d) = self.restart(&sandbox, c, latest.as_ref()).await? {
                        soonest(d);
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(d) = self.start(&sandbox, c, 0).await? {
                        soonest(d);
                    }
                }
            }
            init_done = false;
            break;
        }
        if init_done && self.failed.is_none() {
            for c in &spec.containers {
                let latest = self.latest(&sandbox, &c.name).await?;
                let restart = match latest.as_ref().map(|s| &s.state) {
                    None => {
                        if let Some(d) = self.start(&sandbox, c, 0).await? {
                            soonest(d);
                        }
                        continue;
                    }
                    Some(ContainerState::Exited { exit_code, .. }) => match self.policy() {
                        "Always" => true,
                        "OnFailure" => *exit_code != 0,
                        _ => false,
                    },
                    Some(_) => false,
                };
                if restart && let Some(d) = self.restart(&sandbox, c, latest.as_ref()).await? {
                    soonest(d);
                }
            }
        }
        if let Some(at) = self.volumes_refresh {
            soonest(at.saturating_duration_since(tokio::time::Instant::now()));
        }
        for (id, name, probe) in std::mem::take(&mut self.to_kill) {
            self.shared.events.emit(
                &self.pod,
                Some(&name),
                Kind::Normal,
                "Killing",
                format!("Container {name} failed {probe} probe, will be restarted"),
            );
            rt.stop_container(&id, Duration::from_secs(self.grace_seconds()))
                .await?;
        }
        let statuses = rt.list_containers(Some(&sandbox.id)).await?;
        self.probe_running(&sandbox, &statuses);
        self.report(Some(&sandbox), &statuses).await;
        Ok(Next::After(wake))
    }
}
