//! Writing the pod's status when it changed.

use super::*;

impl Worker {
    /// Writes the pod's status when it differs from what was last written.
    pub(super) async fn report(
        &mut self,
        sandbox: Option<&PodSandboxStatus>,
        statuses: &[ContainerStatus],
    ) {
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
}
