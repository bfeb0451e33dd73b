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

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches one object and tells the worker when it changes (after the first
/// listing; a relist after a broken watch counts as a change, as one may
/// have been missed).
fn watch_source<K>(api: Api<K>, name: &str, tx: mpsc::WeakUnboundedSender<Msg>) -> AbortOnDrop
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{self, Event};
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    AbortOnDrop(tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut listed = false;
        while let Some(ev) = stream.next().await {
            let changed = match ev {
                Ok(Event::InitDone) => std::mem::replace(&mut listed, true),
                Ok(Event::Apply(_) | Event::Delete(_)) => listed,
                _ => false,
            };
            if changed {
                let Some(tx) = tx.upgrade() else { return };
                let _ = tx.send(Msg::VolumesChanged);
            }
        }
    }))
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

    /// Starts probes for containers that run with probes and none yet; stops
    /// those of containers that no longer run.
    fn probe_running(&mut self, sandbox: &PodSandboxStatus, statuses: &[ContainerStatus]) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let pod_ip = sandbox.ip.unwrap_or(self.shared.opts.node_ip);
        let mut live = std::collections::HashSet::new();
        for c in spec.containers.iter().filter(|c| probes::has_probes(c)) {
            let Some(running) = statuses
                .iter()
                .filter(|s| s.name == c.name)
                .max_by_key(|s| s.attempt)
                .filter(|s| matches!(s.state, ContainerState::Running { .. }))
            else {
                continue;
            };
            live.insert(c.name.clone());
            if self
                .probing
                .get(&c.name)
                .is_some_and(|p| p.id == running.id)
            {
                continue;
            }
            self.probed.insert(
                running.id.clone(),
                (
                    c.readiness_probe.as_ref().map(|_| false),
                    c.startup_probe.as_ref().map(|_| false),
                ),
            );
            let probing = probes::start(
                self.shared.runtime.clone(),
                c.clone(),
                running.id.clone(),
                pod_ip,
                self.tx.clone(),
            );
            self.probing.insert(c.name.clone(), probing);
        }
        self.probing.retain(|name, _| live.contains(name));
        let ids: std::collections::HashSet<&String> =
            self.probing.values().map(|p| &p.id).collect();
        self.probed.retain(|id, _| ids.contains(id));
    }

    fn probe_result(&mut self, r: ProbeResult) {
        if self.probing.get(&r.container).is_none_or(|p| p.id != r.id) {
            return;
        }
        let state = self.probed.entry(r.id.clone()).or_default();
        match (r.kind, r.ok) {
            (ProbeKind::Readiness, ok) => state.0 = Some(ok),
            (ProbeKind::Startup, true) => state.1 = Some(true),
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                self.to_kill.push((
                    r.id.clone(),
                    r.container.clone(),
                    match r.kind {
                        ProbeKind::Liveness => "liveness",
                        _ => "startup",
                    },
                ));
            }
            (ProbeKind::Liveness, true) => {}
        }
        if !r.ok {
            self.shared.events.emit(
                &self.pod,
                Some(&r.container),
                Kind::Warning,
                "Unhealthy",
                format!("{} probe failed: {}", r.kind.name(), r.message),
            );
        }
    }

    /// Time left before `activeDeadlineSeconds` (counted from the pod's
    /// start time) runs out; `None` without a deadline.
    fn deadline_left(&mut self) -> Option<Duration> {
        let secs = self.pod.spec.as_ref()?.active_deadline_seconds?;
        let start = self
            .start_time
            .get_or_insert_with(|| time(SystemTime::now()))
            .parse::<k8s_openapi::jiff::Timestamp>()
            .ok()?;
        let deadline = SystemTime::from(start) + Duration::from_secs(secs.max(0) as u64);
        Some(
            deadline
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }

    fn grace_seconds(&self) -> u64 {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64
    }

    fn watch_sources(&mut self) {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let (cms, secrets) = volumes::sources(&self.pod);
        let client = &self.shared.client;
        for name in cms {
            let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
                Api::namespaced(client.clone(), &ns);
            self.source_watches
                .push(watch_source(api, &name, self.tx.clone()));
        }
        for name in secrets {
            let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
            self.source_watches
                .push(watch_source(api, &name, self.tx.clone()));
        }
    }

    fn context<'a>(
        &self,
        objects: &'a dyn ObjectLookup,
        pod_ip: Option<std::net::IpAddr>,
        attempt: u32,
        log_path: PathBuf,
    ) -> ConfigContext<'a> {
        let opts = &self.shared.opts;
        let m = &self.shared.machine;
        let dir = inputs::pod_dir(&opts.root_dir, &self.uid);
        ConfigContext {
            node_name: opts.node_name.clone(),
            node_hostname: opts.node_name.clone(),
            node_ips: vec![opts.node_ip],
            pod_ips: pod_ip.into_iter().collect(),
            machine_memory: m.memory_bytes as i64,
            machine_milli_cpu: m.cpu_millis as i64,
            machine_ephemeral_storage: m.ephemeral_storage_bytes as i64,
            attempt,
            log_path,
            volumes: self.volumes.clone().unwrap_or_default(),
            hosts_file: Some(dir.join("etc-hosts")),
            termination_log: None,
            seccomp_root: opts.root_dir.join("seccomp"),
            seccomp_default: false,
            cluster_dns: opts.cluster_dns.iter().map(|ip| (*ip).into()).collect(),
            cluster_domain: opts.cluster_domain.clone(),
            host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").ok(),
            objects,
        }
    }

    fn sandbox_config(&self) -> crate::runtime::PodSandboxConfig {
        let none = inputs::Objects::default();
        sandbox_config(&self.pod, &self.context(&none, None, 0, PathBuf::new()))
    }

    /// The newest attempt of container `name` in the sandbox.
    async fn latest(
        &self,
        sandbox: &PodSandboxStatus,
        name: &str,
    ) -> Result<Option<ContainerStatus>, RuntimeError> {
        Ok(self
            .shared
            .runtime
            .list_containers(Some(&sandbox.id))
            .await?
            .into_iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.attempt))
    }

    fn log_path(&self, container: &str, attempt: u32) -> PathBuf {
        let m = &self.pod.metadata;
        self.shared
            .opts
            .root_dir
            .join("logs")
            .join(format!(
                "{}_{}_{}",
                m.namespace.as_deref().unwrap_or_default(),
                m.name.as_deref().unwrap_or_default(),
                self.uid
            ))
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// Restarts an exited container once its back-off has passed; returns how
    /// long is left otherwise.
    async fn restart(
        &mut self,
        sandbox: &PodSandboxStatus,
        c: &Container,
        latest: Option<&ContainerStatus>,
    ) -> Result<Option<Duration>, RuntimeError> {
        let Some(latest) = latest else {
            return self.start(sandbox, c, 0).await;
        };
        let ContainerState::Exited {
            started_at,
            finished_at,
            ..
        } = &latest.state
        else {
            return Ok(None);
        };
        // The first restart is immediate; later ones wait 10 s, 20 s, …
        let restarts = latest.attempt;
        let attempt = restarts + 1;
        let left = backoff::remaining(restarts, *started_at, *finished_at, SystemTime::now());
        if !left.is_zero() {
            let was_waiting = self.waiting.contains_key(&c.name);
            let message = format!(
                "back-off {}s restarting failed container={} pod={}",
                backoff::delay(restarts, *started_at, *finished_at).as_secs(),
                c.name,
                self.pod.metadata.name.as_deref().unwrap_or_default()
            );
            if !was_waiting {
                self.shared.events.emit(
                    &self.pod,
                    Some(&c.name),
                    Kind::Warning,
                    "BackOff",
                    "Back-off restarting failed container".into(),
                );
            }
            self.waiting
                .insert(c.name.clone(), ("CrashLoopBackOff".into(), message));
            return Ok(Some(left));
        }
        // Keep the last run (for `kubectl logs --previous`); drop older ones.
        for old in self
            .shared
            .runtime
            .list_containers(Some(&sandbox.id))
            .await?
        {
            if old.name == c.name && old.attempt < latest.attempt {
                self.shared.runtime.remove_container(&old.id).await?;
            }
        }
        self.start(sandbox, c, attempt).await
    }

    /// Creates and starts attempt `attempt` of a container. A failure becomes
    /// a waiting reason and an Event, retried later.
    async fn start(
        &mut self,
        sandbox: &PodSandboxStatus,
        c: &Container,
        attempt: u32,
    ) -> Result<Option<Duration>, RuntimeError> {
        let pulled = self
            .images
            .ensure(&self.shared, &self.pod, c, &self.tx)
            .await;
        if let images::Ensure::Wait { waiting, retry } = pulled {
            if let Some(w) = waiting {
                self.waiting.insert(c.name.clone(), w);
            }
            return Ok(retry);
        }
        let rt = self.shared.runtime.clone();
        let sandbox_config = self.sandbox_config();
        let dir = inputs::pod_dir(&self.shared.opts.root_dir, &self.uid);
        let hosts = inputs::hosts_file(&self.pod, sandbox.ip, &sandbox_config.hostname);
        let termination_log = dir
            .join("containers")
            .join(&c.name)
            .join(format!("{attempt}-termination-log"));
        let files = std::fs::create_dir_all(termination_log.parent().unwrap_or(&dir))
            .and_then(|()| std::fs::write(dir.join("etc-hosts"), hosts))
            .and_then(|()| std::fs::write(&termination_log, b""));
        if let Err(e) = files {
            return Err(RuntimeError::Host {
                action: format!("writing the files of pod {}", self.key()),
                source: e,
            });
        }
        let objects = inputs::objects(&self.shared.client, &self.pod, c).await;
        let made = {
            let mut ctx = self.context(
                &objects,
                sandbox.ip,
                attempt,
                self.log_path(&c.name, attempt),
            );
            ctx.termination_log = Some(termination_log);
            container_config(&self.pod, c, &ctx)
        };
        let config = match made {
            Ok(config) => config,
            Err(e) => {
                self.shared.events.emit(
                    &self.pod,
                    Some(&c.name),
                    Kind::Warning,
                    "Failed",
                    format!("Error: {e}"),
                );
                self.waiting.insert(
                    c.name.clone(),
                    ("CreateContainerConfigError".into(), e.to_string()),
                );
                return Ok(Some(RETRY));
            }
        };
        let id = match rt
            .create_container(&sandbox.id, &config, &sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let reason = match e {
                    RuntimeError::Image(_) => "ErrImageNeverPull",
                    _ => "CreateContainerError",
                };
                self.shared.events.emit(
                    &self.pod,
                    Some(&c.name),
                    Kind::Warning,
                    "Failed",
                    format!("Error: {e}"),
                );
                self.waiting
                    .insert(c.name.clone(), (reason.into(), e.to_string()));
                return Ok(Some(RETRY));
            }
        };
        self.shared.events.emit(
            &self.pod,
            Some(&c.name),
            Kind::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = rt.start_container(&id).await {
            self.shared.events.emit(
                &self.pod,
                Some(&c.name),
                Kind::Warning,
                "Failed",
                format!("Error: {e}"),
            );
            self.waiting
                .insert(c.name.clone(), ("RunContainerError".into(), e.to_string()));
            return Ok(Some(RETRY));
        }
        self.waiting.remove(&c.name);
        self.shared.events.emit(
            &self.pod,
            Some(&c.name),
            Kind::Normal,
            "Started",
            format!("Started container {}", c.name),
        );
        // postStart runs before the container counts as started; when it
        // fails the container is killed (and restarted by its policy).
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let pod_ip = sandbox.ip.unwrap_or(self.shared.opts.node_ip);
            let limit = Duration::from_secs(self.grace_seconds().max(30));
            if let handlers::Outcome::Failure(message) =
                handlers::hook(rt.as_ref(), &id, c, pod_ip, h, limit).await
            {
                self.shared.events.emit(
                    &self.pod,
                    Some(&c.name),
                    Kind::Warning,
                    "FailedPostStartHook",
                    format!("PostStartHook failed: {message}"),
                );
                rt.stop_container(&id, Duration::from_secs(self.grace_seconds()))
                    .await?;
            }
        }
        Ok(None)
    }

    /// Writes the pod's status when it differs from what was last written.
    async fn report(&mut self, sandbox: Option<&PodSandboxStatus>, statuses: &[ContainerStatus]) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let view_of = |c: &Container| {
            let mut attempts: Vec<&ContainerStatus> =
                statuses.iter().filter(|s| s.name == c.name).collect();
            attempts.sort_by_key(|s| std::cmp::Reverse(s.attempt));
            ContainerView {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                current: attempts.first().map(|s| (*s).clone()),
                previous: attempts.get(1).map(|s| (*s).clone()),
                waiting: self.waiting.get(&c.name).cloned(),
                restart_count: attempts.first().map_or(0, |s| s.attempt),
                probed_ready: attempts
                    .first()
                    .and_then(|s| self.probed.get(&s.id))
                    .and_then(|p| p.0),
                probed_started: attempts
                    .first()
                    .and_then(|s| self.probed.get(&s.id))
                    .and_then(|p| p.1),
                sidecar: is_sidecar(c),
            }
        };
        let start_time = self
            .start_time
            .get_or_insert_with(|| time(SystemTime::now()))
            .clone();
        let view = PodView {
            init: spec.init_containers.iter().flatten().map(view_of).collect(),
            containers: spec.containers.iter().map(view_of).collect(),
            sandbox_ready: sandbox.is_some_and(|s| s.ready),
            pod_ip: if spec.host_network.unwrap_or(false) {
                Some(self.shared.opts.node_ip)
            } else {
                sandbox.and_then(|s| s.ip)
            },
            host_ip: Some(self.shared.opts.node_ip),
            start_time: Some(start_time),
            failed: self.failed.clone(),
        };
        let status = pod_status(&self.pod, &view, SystemTime::now());
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.shared.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match pods
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(p) => {
                self.pod = Arc::new(p);
                self.last_status = Some(status);
            }
            Err(e) => tracing::warn!(pod = %self.key(), error = %e, "writing pod status"),
        }
    }

    /// Stops the containers within the grace period, releases the sandbox,
    /// and removes the pod from the API.
    async fn terminate(&mut self) -> Result<(), RuntimeError> {
        let rt = self.shared.runtime.clone();
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0) as u64;
        let sandboxes: Vec<PodSandboxStatus> = rt
            .list_pod_sandboxes()
            .await?
            .into_iter()
            .filter(|s| s.uid == self.uid)
            .collect();
        for s in &sandboxes {
            let running: Vec<ContainerStatus> = rt
                .list_containers(Some(&s.id))
                .await?
                .into_iter()
                .filter(|c| matches!(c.state, ContainerState::Running { .. }))
                .collect();
            let spec = self.pod.spec.clone().unwrap_or_default();
            let pod_ip = s.ip.unwrap_or(self.shared.opts.node_ip);
            let stops = running.iter().map(|c| {
                self.shared.events.emit(
                    &self.pod,
                    Some(&c.name),
                    Kind::Normal,
                    "Killing",
                    format!("Stopping container {}", c.name),
                );
                let container = spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .find(|k| k.name == c.name)
                    .cloned();
                let rt = rt.clone();
                let events = self.shared.events.clone();
                let pod = self.pod.clone();
                async move {
                    // preStop runs first, inside the grace period.
                    let started = tokio::time::Instant::now();
                    let pre_stop = container
                        .as_ref()
                        .and_then(|k| k.lifecycle.as_ref()?.pre_stop.clone().map(|h| (k, h)));
                    if let Some((k, h)) = pre_stop
                        && let handlers::Outcome::Failure(message) = handlers::hook(
                            rt.as_ref(),
                            &c.id,
                            k,
                            pod_ip,
                            &h,
                            Duration::from_secs(grace),
                        )
                        .await
                    {
                        events.emit(
                            &pod,
                            Some(&k.name),
                            Kind::Warning,
                            "FailedPreStopHook",
                            format!("PreStopHook failed: {message}"),
                        );
                    }
                    let left = Duration::from_secs(grace).saturating_sub(started.elapsed());
                    rt.stop_container(&c.id, left).await
                }
            });
            for r in futures::future::join_all(stops).await {
                r?;
            }
            rt.stop_pod_sandbox(&s.id).await?;
            rt.remove_pod_sandbox(&s.id).await?;
        }
        let m = &self.pod.metadata;
        let logs = self.shared.opts.root_dir.join("logs").join(format!(
            "{}_{}_{}",
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default(),
            self.uid
        ));
        let _ = std::fs::remove_dir_all(logs);
        self.source_watches.clear();
        volumes::tear_down(&self.shared, &self.uid).map_err(|source| RuntimeError::Host {
            action: format!("tearing down the volumes of pod {}", self.key()),
            source,
        })?;
        self.volumes = None;
        let _ = std::fs::remove_dir_all(inputs::pod_dir(&self.shared.opts.root_dir, &self.uid));
        if !self.gone {
            let pods: Api<Pod> = Api::namespaced(
                self.shared.client.clone(),
                m.namespace.as_deref().unwrap_or_default(),
            );
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match pods
                .delete(m.name.as_deref().unwrap_or_default(), &params)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    tracing::warn!(pod = %self.key(), error = %e, "deleting terminated pod");
                    return Err(RuntimeError::Host {
                        action: "deleting the pod from the API".into(),
                        source: std::io::Error::other(e),
                    });
                }
            }
        }
        tracing::info!(pod = %self.key(), "pod terminated and released");
        Ok(())
    }
}
