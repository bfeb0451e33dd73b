//! What a pod's containers need from outside the pod spec before they can be
//! configured: the ConfigMaps and Secrets its env refers to (read from the API
//! server, which allows a node exactly the objects its pods use), and the
//! files the agent keeps per pod (`/etc/hosts`, termination logs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;

use crate::pods::config::ObjectLookup;

/// The ConfigMaps and Secrets a pod refers to, as read just now. Missing ones
/// are simply absent: the config step reports them, or skips optional ones.
#[derive(Default)]
pub(crate) struct Objects {
    config_maps: HashMap<String, ConfigMap>,
    secrets: HashMap<String, Secret>,
}

impl ObjectLookup for Objects {
    fn config_map(&self, _ns: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps.get(name).cloned()
    }
    fn secret(&self, _ns: &str, name: &str) -> Option<Secret> {
        self.secrets.get(name).cloned()
    }
}

/// Names of the ConfigMaps and Secrets a container's env refers to.
fn references(c: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for e in c.env_from.iter().flatten() {
        if let Some(r) = &e.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &e.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.push(r.name.clone());
        }
    }
    (cms, secrets)
}

/// Reads what `container` refers to.
pub(crate) async fn objects(client: &kube::Client, pod: &Pod, container: &Container) -> Objects {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let (cms, secrets) = references(container);
    let mut out = Objects::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in cms {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.config_maps.entry(name.clone())
            && let Ok(Some(cm)) = cm_api.get_opt(&name).await
        {
            slot.insert(cm);
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in secrets {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.secrets.entry(name.clone())
            && let Ok(Some(s)) = secret_api.get_opt(&name).await
        {
            slot.insert(s);
        }
    }
    out
}

/// The directory the agent keeps a pod's files in.
pub(crate) fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// The pod's /etc/hosts, as the kubelet writes it.
pub(crate) fn hosts_file(pod: &Pod, ip: Option<std::net::IpAddr>, hostname: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = ip {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_references_are_collected() {
        let c: Container = serde_json::from_value(json!({
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s"}}],
            "env": [
                {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "b", "key": "k"}}},
                {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}},
                {"name": "Z", "value": "z"},
            ],
        }))
        .unwrap();
        assert_eq!(
            references(&c),
            (vec!["a".into(), "b".into()], vec!["s".into(), "t".into()])
        );
    }

    #[test]
    fn hosts_file_names_the_pod_and_its_aliases() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "hostAliases": [{"ip": "10.1.1.1", "hostnames": ["a", "b"]}]},
        }))
        .unwrap();
        let text = hosts_file(&pod, Some("10.42.0.5".parse().unwrap()), "p");
        assert!(text.contains("10.42.0.5\tp\n"), "{text}");
        assert!(text.ends_with("10.1.1.1\ta\tb\n"), "{text}");
    }
}
