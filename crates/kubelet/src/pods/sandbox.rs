//! A Pod as a CRI [`PodSandboxConfig`]: hostname, DNS by `dnsPolicy` and
//! `dnsConfig`, host aliases, `hostPort`s, namespace sharing, sysctls and the
//! pod's cgroup.

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

use super::config::ConfigContext;
use super::resources::qos;
use crate::runtime::{DnsConfig, PodSandboxConfig, PortMapping};

/// Limits the kubelet trims resolv.conf to.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;
const MAX_HOSTNAME: usize = 63;

/// The sandbox of `pod`.
pub fn sandbox_config(pod: &Pod, ctx: &ConfigContext<'_>) -> PodSandboxConfig {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let uid = meta.uid.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);

    let hostname = if host_network {
        ctx.node_hostname.clone()
    } else {
        pod_hostname(
            spec.hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .unwrap_or(&name),
        )
    };

    let host_aliases = spec
        .host_aliases
        .iter()
        .flatten()
        .filter_map(|alias| {
            let ip = alias.ip.parse().ok()?;
            Some((ip, alias.hostnames.clone().unwrap_or_default()))
        })
        .collect();

    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|port| {
            let host_port = u16::try_from(port.host_port?).ok().filter(|p| *p > 0)?;
            Some(PortMapping {
                protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                container_port: u16::try_from(port.container_port).ok()?,
                host_port,
                host_ip: port.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
            })
        })
        .collect();

    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();

    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.insert("io.kubernetes.pod.name".to_string(), name.clone());
    labels.insert("io.kubernetes.pod.namespace".to_string(), namespace.clone());
    labels.insert("io.kubernetes.pod.uid".to_string(), uid.clone());

    PodSandboxConfig {
        dns: dns_config(pod, ctx),
        cgroup_parent: format!("{}/pod{uid}", qos(pod).cgroup_parent()),
        name,
        namespace,
        uid,
        attempt: ctx.attempt,
        hostname,
        host_network,
        host_ipc: spec.host_ipc.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        host_aliases,
        port_mappings,
        sysctls,
        labels,
        annotations: meta.annotations.clone().unwrap_or_default(),
    }
}

/// The name cut to 63 characters, without a trailing `-` or `.` left by the
/// cut.
fn pod_hostname(name: &str) -> String {
    if name.len() <= MAX_HOSTNAME {
        return name.to_string();
    }
    name[..MAX_HOSTNAME]
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The host's resolv.conf: nameservers, search domains (without their
/// trailing dot) and options.
fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut config = DnsConfig::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => config.servers.extend(fields.next().map(str::to_string)),
            Some("search") => {
                config.searches = fields
                    .filter(|s| *s != ".")
                    .map(|s| s.trim_end_matches('.').to_string())
                    .collect();
            }
            Some("options") => config.options.extend(fields.map(str::to_string)),
            _ => {}
        }
    }
    config
}

/// `dnsPolicy` (ClusterFirst on the host network means Default) then
/// `dnsConfig` merged in, trimmed to the resolver's limits.
fn dns_config(pod: &Pod, ctx: &ConfigContext<'_>) -> DnsConfig {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host = || match &ctx.host_resolv_conf {
        Some(text) => parse_resolv_conf(text),
        // No resolv.conf: the local resolver, no search.
        None => DnsConfig {
            servers: vec!["127.0.0.1".to_string()],
            searches: vec![".".to_string()],
            options: Vec::new(),
        },
    };
    let cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "Default" => Some(false),
        _ => Some(!host_network),
    };
    let mut config = match cluster {
        None => DnsConfig::default(),
        Some(true) if !ctx.cluster_dns.is_empty() => {
            let host = host();
            let mut searches = Vec::new();
            if !ctx.cluster_domain.is_empty() {
                let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                let domain = &ctx.cluster_domain;
                searches.push(format!("{namespace}.svc.{domain}"));
                searches.push(format!("svc.{domain}"));
                searches.push(domain.clone());
            }
            searches.extend(host.searches.into_iter().filter(|s| s != "."));
            DnsConfig {
                servers: ctx.cluster_dns.iter().map(ToString::to_string).collect(),
                searches: unique(searches),
                options: vec!["ndots:5".to_string()],
            }
        }
        // No cluster DNS configured: the kubelet falls back to the host's.
        Some(_) => host(),
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        merge_dns_config(&mut config, extra);
    }
    config.servers.truncate(MAX_NAMESERVERS);
    config.searches.truncate(MAX_SEARCHES);
    while config.searches.iter().map(|s| s.len() + 1).sum::<usize>() > MAX_SEARCH_CHARS {
        config.searches.pop();
    }
    config
}

fn unique(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// `dnsConfig`: nameservers and searches appended (no duplicates), options
/// replacing those of the same name.
fn merge_dns_config(config: &mut DnsConfig, extra: &PodDNSConfig) {
    let mut servers = std::mem::take(&mut config.servers);
    servers.extend(extra.nameservers.iter().flatten().cloned());
    config.servers = unique(servers);
    let mut searches = std::mem::take(&mut config.searches);
    searches.extend(extra.searches.iter().flatten().cloned());
    config.searches = unique(searches);

    let mut options: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match options.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value.to_string(),
        None => options.push((name.to_string(), value.to_string())),
    };
    for option in &config.options {
        let (name, value) = option.split_once(':').unwrap_or((option, ""));
        set(name, value);
    }
    for option in extra.options.iter().flatten() {
        let name = option.name.as_deref().unwrap_or("");
        set(name, option.value.as_deref().unwrap_or(""));
    }
    config.options = options
        .into_iter()
        .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
        .collect();
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
