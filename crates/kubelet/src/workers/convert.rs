//! Pod → CRI configs (interim: name, image, command, args and literal env;
//! replaced by `pods::config`).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::runtime::{ContainerConfig, DnsConfig, PodSandboxConfig};

pub(crate) fn sandbox_config(pod: &Pod, cluster_dns: &[String], domain: &str) -> PodSandboxConfig {
    let meta = &pod.metadata;
    let ns = meta.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = meta.uid.clone().unwrap_or_default();
    PodSandboxConfig {
        name: meta.name.clone().unwrap_or_default(),
        namespace: ns.clone(),
        uid: uid.clone(),
        hostname: spec
            .hostname
            .clone()
            .unwrap_or_else(|| meta.name.clone().unwrap_or_default()),
        host_network: spec.host_network.unwrap_or(false),
        dns: DnsConfig {
            servers: cluster_dns.to_vec(),
            searches: vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_owned(),
            ],
            options: vec!["ndots:5".into()],
        },
        cgroup_parent: format!("kubepods/pod{uid}"),
        ..Default::default()
    }
}

pub(crate) fn container_config(c: &Container, attempt: u32, log_path: PathBuf) -> ContainerConfig {
    ContainerConfig {
        name: c.name.clone(),
        attempt,
        image: c.image.clone().unwrap_or_default(),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone(),
        envs: c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect(),
        log_path,
        ..Default::default()
    }
}
