//! The sandbox's fields from the pod spec.

use serde_json::json;

use super::*;
use crate::pods::test_support::{Objects, context, pod};

fn sandbox(spec: serde_json::Value) -> PodSandboxConfig {
    let objects = Objects::default();
    sandbox_config(&pod(spec), &context(&objects))
}

fn containers() -> serde_json::Value {
    json!([{"name": "app", "image": "nginx"}])
}

#[test]
fn identity_labels_and_cgroup() {
    let s = sandbox(json!({"containers": containers()}));
    assert_eq!(
        (s.name.as_str(), s.namespace.as_str(), s.uid.as_str()),
        ("web-0", "shop", "1f2e3d")
    );
    assert_eq!(s.attempt, 2);
    assert_eq!(s.hostname, "web-0");
    assert_eq!(s.labels["app"], "web");
    assert_eq!(s.labels["io.kubernetes.pod.uid"], "1f2e3d");
    assert_eq!(s.annotations["note"], "say \"hi\"");
    assert_eq!(s.cgroup_parent, "kubepods/besteffort/pod1f2e3d");
    assert!(!s.host_network && !s.host_ipc && !s.host_pid);

    let s = sandbox(json!({"containers": [{"name": "app", "image": "nginx",
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}));
    assert_eq!(s.cgroup_parent, "kubepods/pod1f2e3d");
    let s = sandbox(json!({"containers": [{"name": "app", "image": "nginx",
        "resources": {"requests": {"cpu": "100m"}}}]}));
    assert_eq!(s.cgroup_parent, "kubepods/burstable/pod1f2e3d");
}

#[test]
fn hostnames() {
    let s = sandbox(json!({"hostname": "db", "containers": containers()}));
    assert_eq!(s.hostname, "db");
    let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
    let s = sandbox(json!({"hostname": long, "containers": containers()}));
    assert_eq!(s.hostname, "a".repeat(62));
    let s = sandbox(
        json!({"hostNetwork": true, "hostIPC": true, "hostPID": true,
        "containers": containers()}),
    );
    assert_eq!(s.hostname, "node-1.example.com");
    assert!(s.host_network && s.host_ipc && s.host_pid);
}

#[test]
fn cluster_first_dns() {
    let s = sandbox(json!({"containers": containers()}));
    assert_eq!(s.dns.servers, vec!["10.96.0.10"]);
    assert_eq!(
        s.dns.searches,
        vec![
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example",
            "lab.example"
        ]
    );
    assert_eq!(s.dns.options, vec!["ndots:5"]);
    // On the host network ClusterFirst means the host's resolv.conf ...
    let s = sandbox(json!({"hostNetwork": true, "containers": containers()}));
    assert_eq!(s.dns.servers, vec!["192.168.1.1", "192.168.1.2"]);
    // ... unless the pod asks for the cluster's.
    let s = sandbox(
        json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet",
        "containers": containers()}),
    );
    assert_eq!(s.dns.servers, vec!["10.96.0.10"]);
}

#[test]
fn default_and_none_dns() {
    let s = sandbox(json!({"dnsPolicy": "Default", "containers": containers()}));
    assert_eq!(s.dns.servers, vec!["192.168.1.1", "192.168.1.2"]);
    assert_eq!(s.dns.searches, vec!["corp.example", "lab.example"]);
    assert_eq!(s.dns.options, vec!["edns0", "timeout:2"]);

    let s = sandbox(
        json!({"dnsPolicy": "None", "containers": containers(), "dnsConfig": {
            "nameservers": ["1.1.1.1", "8.8.8.8", "1.1.1.1"],
            "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
        }}),
    );
    assert_eq!(s.dns.servers, vec!["1.1.1.1", "8.8.8.8"]);
    assert_eq!(s.dns.searches, vec!["a.example"]);
    assert_eq!(s.dns.options, vec!["ndots:2", "edns0"]);

    // dnsConfig merges into the policy's config, options by name.
    let s = sandbox(json!({"containers": containers(), "dnsConfig": {
        "nameservers": ["9.9.9.9", "10.96.0.10", "8.8.8.8", "7.7.7.7"],
        "searches": ["svc.cluster.local", "extra.example"],
        "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]
    }}));
    assert_eq!(s.dns.servers, vec!["10.96.0.10", "9.9.9.9", "8.8.8.8"]);
    assert_eq!(s.dns.searches.last().unwrap(), "extra.example");
    assert_eq!(s.dns.searches.len(), 6);
    assert_eq!(s.dns.options, vec!["ndots:1", "single-request"]);
}

#[test]
fn dns_without_cluster_dns_or_resolv_conf() {
    let objects = Objects::default();
    let mut ctx = context(&objects);
    ctx.cluster_dns.clear();
    let s = sandbox_config(&pod(json!({"containers": containers()})), &ctx);
    assert_eq!(s.dns.servers, vec!["192.168.1.1", "192.168.1.2"]);
    ctx.host_resolv_conf = None;
    let s = sandbox_config(&pod(json!({"containers": containers()})), &ctx);
    assert_eq!(s.dns.servers, vec!["127.0.0.1"]);
    assert_eq!(s.dns.searches, vec!["."]);
}

#[test]
fn aliases_ports_and_sysctls() {
    let s = sandbox(json!({
        "hostAliases": [
            {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
            {"ip": "not-an-ip", "hostnames": ["x"]}
        ],
        "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
        "containers": [{"name": "app", "image": "nginx", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
            {"containerPort": 9090}
        ]}]
    }));
    assert_eq!(
        s.host_aliases,
        vec![(
            "10.1.2.3".parse().unwrap(),
            vec!["foo.local".to_string(), "bar.local".to_string()]
        )]
    );
    assert_eq!(
        s.port_mappings,
        vec![
            PortMapping {
                protocol: "TCP".into(),
                container_port: 80,
                host_port: 8080,
                host_ip: None
            },
            PortMapping {
                protocol: "UDP".into(),
                container_port: 53,
                host_port: 5353,
                host_ip: Some("127.0.0.1".parse().unwrap())
            },
        ]
    );
    assert_eq!(s.sysctls["net.core.somaxconn"], "1024");
}

#[test]
fn resolv_conf_parsing() {
    let c = parse_resolv_conf(
        "nameserver 1.1.1.1 # comment\n; other\nsearch old.example\nsearch new.example. .\noptions a\noptions b:1\n",
    );
    assert_eq!(c.servers, vec!["1.1.1.1"]);
    assert_eq!(c.searches, vec!["new.example"]);
    assert_eq!(c.options, vec!["a", "b:1"]);
}
