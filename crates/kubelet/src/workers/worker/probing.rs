//! Probes of the pod's running containers and what their results do.

use super::*;

impl Worker {
    /// Starts probes for containers that run with probes and none yet; stops
    /// those of containers that no longer run.
    pub(super) fn probe_running(
        &mut self,
        sandbox: &PodSandboxStatus,
        statuses: &[ContainerStatus],
    ) {
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

    pub(super) fn probe_result(&mut self, r: ProbeResult) {
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
}
