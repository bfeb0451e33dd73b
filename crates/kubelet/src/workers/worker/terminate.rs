//! Ending the pod: its deadline, its grace period, and the release of
//! everything it held.

use super::*;

impl Worker {
    /// Stops the containers within the grace period, releases the sandbox,
    /// and removes the pod from the API.
    pub(super) async fn terminate(&mut self) -> Result<(), RuntimeError> {
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
            // The pod's containers stop first, then its sidecars (init
            // containers that still run), all within one grace period.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(grace);
            let (main, sidecars): (Vec<&ContainerStatus>, Vec<&ContainerStatus>) = running
                .iter()
                .partition(|c| spec.containers.iter().any(|k| k.name == c.name));
            for group in [main, sidecars] {
                let stops = group.into_iter().map(|c| {
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
                                deadline.saturating_duration_since(tokio::time::Instant::now()),
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
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        rt.stop_container(&c.id, left).await
                    }
                });
                for r in futures::future::join_all(stops).await {
                    r?;
                }
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

    /// Time left before `activeDeadlineSeconds` (counted from the pod's
    /// start time) runs out; `None` without a deadline.
    pub(super) fn deadline_left(&mut self) -> Option<Duration> {
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

    pub(super) fn grace_seconds(&self) -> u64 {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64
    }
}
