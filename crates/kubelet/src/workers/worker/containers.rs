//! Creating, starting and restarting the pod's containers.

use super::*;

impl Worker {
    pub(super) fn context<'a>(
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

    pub(super) fn sandbox_config(&self) -> crate::runtime::PodSandboxConfig {
        let none = inputs::Objects::default();
        sandbox_config(&self.pod, &self.context(&none, None, 0, PathBuf::new()))
    }

    /// The newest attempt of container `name` in the sandbox.
    pub(super) async fn latest(
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

    pub(super) fn log_path(&self, container: &str, attempt: u32) -> PathBuf {
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
    pub(super) async fn restart(
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
    pub(super) async fn start(
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
            Err(e) => return Ok(self.failed_step(&c.name, "CreateContainerConfigError", &e)),
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
                return Ok(self.failed_step(&c.name, reason, &e));
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
            return Ok(self.failed_step(&c.name, "RunContainerError", &e));
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

    /// A step of starting container `name` failed: a `Failed` event, the
    /// waiting reason the pod shows, and a retry later.
    fn failed_step(
        &mut self,
        name: &str,
        reason: &str,
        error: &dyn std::fmt::Display,
    ) -> Option<Duration> {
        self.shared.events.emit(
            &self.pod,
            Some(name),
            Kind::Warning,
            "Failed",
            format!("Error: {error}"),
        );
        self.waiting
            .insert(name.to_owned(), (reason.into(), error.to_string()));
        Some(RETRY)
    }
}
