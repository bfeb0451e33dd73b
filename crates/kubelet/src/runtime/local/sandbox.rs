//! Pod sandboxes: pinned namespaces, resolv.conf and hostname files, and the
//! pod's CNI attachment.

use super::records::{self, SandboxRecord};
use super::*;

/// resolv.conf for a pod, from its DNS config.
pub(super) fn resolv_conf(dns: &DnsConfig) -> String {
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for s in &dns.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

impl LocalRuntime {
    pub(super) async fn run_sandbox(
        &self,
        config: &PodSandboxConfig,
    ) -> RuntimeResult<PodSandboxStatus> {
        let id = new_id();
        let dir = self.sandbox_dir(&id);
        std::fs::create_dir_all(&dir).map_err(host_error(format!("creating {}", dir.display())))?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .map_err(host_error(format!("writing {}", dir.join(name).display())))
        };
        write("resolv.conf", &resolv_conf(&config.dns))?;
        write("hostname", &format!("{}\n", config.hostname))?;
        let request = NamespaceRequest {
            net: !config.host_network,
            ipc: !config.host_ipc,
            uts: !config.host_network,
            hostname: &config.hostname,
        };
        let namespaces = {
            let ns = self.host.namespaces.clone();
            let ns_dir = dir.join("ns");
            let hostname = config.hostname.clone();
            tokio::task::spawn_blocking(move || {
                ns.create(
                    &ns_dir,
                    NamespaceRequest {
                        hostname: &hostname,
                        ..request
                    },
                )
            })
            .await
            .map_err(|e| RuntimeError::Host {
                action: "creating namespaces".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(host_error("creating the sandbox's namespaces"))?
        };
        let mut record = SandboxRecord {
            id: id.clone(),
            uid: config.uid.clone(),
            name: config.name.clone(),
            namespace: config.namespace.clone(),
            host_network: config.host_network,
            net: namespaces.net.clone(),
            ipc: namespaces.ipc.clone(),
            uts: namespaces.uts.clone(),
            ports: config
                .port_mappings
                .iter()
                .map(|p| (p.protocol.clone(), p.container_port, p.host_port, p.host_ip))
                .collect(),
            ip: None,
            ready: false,
            created_at_ns: records::now_ns(),
            cgroup: format!(
                "{}/{}",
                self.cgroup_root,
                config.cgroup_parent.trim_matches('/')
            ),
        };
        // Recorded before the network is set up, so a crash in between still
        // leaves something to clean up.
        records::save(&dir, &record).map_err(host_error("saving the sandbox record"))?;
        self.state().sandboxes.insert(id.clone(), record.clone());
        if let Some(netns) = &namespaces.net {
            let attach = Attachment {
                id: &id,
                netns,
                namespace: &config.namespace,
                name: &config.name,
                port_mappings: &config.port_mappings,
            };
            match self.host.cni.add(&attach).await {
                Ok(ip) => record.ip = Some(ip),
                Err(e) => {
                    let _ = self.remove_sandbox(&id).await;
                    return Err(e);
                }
            }
        }
        record.ready = true;
        records::save(&dir, &record).map_err(host_error("saving the sandbox record"))?;
        let status = record.status();
        self.state().sandboxes.insert(id, record);
        Ok(status)
    }

    pub(super) async fn stop_sandbox(&self, id: &str) -> RuntimeResult<()> {
        let mut record = self.sandbox(id)?;
        for c in self.containers_of(id) {
            self.stop(&c, Duration::ZERO).await?;
        }
        if let Some(netns) = &record.net
            && netns.exists()
        {
            let ports = record.port_mappings();
            let attach = Attachment {
                id,
                netns,
                namespace: &record.namespace,
                name: &record.name,
                port_mappings: &ports,
            };
            self.host.cni.del(&attach).await?;
        }
        let ns = self.host.namespaces.clone();
        let paths = record.namespaces();
        tokio::task::spawn_blocking(move || ns.remove(&paths))
            .await
            .map_err(|e| RuntimeError::Host {
                action: "removing namespaces".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(host_error("removing the sandbox's namespaces"))?;
        record.ready = false;
        let dir = self.sandbox_dir(id);
        records::save(&dir, &record).map_err(host_error("saving the sandbox record"))?;
        self.state().sandboxes.insert(id.to_owned(), record);
        Ok(())
    }

    pub(super) async fn remove_sandbox(&self, id: &str) -> RuntimeResult<()> {
        let record = match self.sandbox(id) {
            Ok(r) => r,
            Err(RuntimeError::SandboxNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if record.ready || record.net.as_ref().is_some_and(|n| n.exists()) {
            self.stop_sandbox(id).await?;
        }
        for c in self.containers_of(id) {
            self.remove(&c).await?;
        }
        self.host
            .cgroups
            .remove(&record.cgroup)
            .map_err(host_error(format!("removing cgroup {}", record.cgroup)))?;
        let dir = self.sandbox_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(host_error(format!("removing {}", dir.display()))(e));
            }
            _ => {}
        }
        self.state().sandboxes.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lists_search_servers_and_options() {
        let dns = DnsConfig {
            servers: vec!["10.43.0.10".into()],
            searches: vec!["default.svc.cluster.local".into(), "cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search default.svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
    }
}
