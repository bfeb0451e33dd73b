//! Pods, objects and a node context for the tests of this module.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::{Value, json};

use super::config::{ConfigContext, ObjectLookup};

/// A pod `web-0` in `shop` with `spec` as its spec.
pub(super) fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "shop",
            "uid": "1f2e3d",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "say \"hi\""}
        },
        "spec": spec
    }))
    .unwrap()
}

/// ConfigMaps and Secrets by (namespace, name).
#[derive(Default)]
pub(super) struct Objects {
    config_maps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
}

impl Objects {
    pub fn config_map(mut self, name: &str, data: Value) -> Self {
        let cm = serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"},
            "data": data}))
        .unwrap();
        self.config_maps.insert(("shop".into(), name.into()), cm);
        self
    }

    /// `data` as plain strings; they are stored base64-encoded as in the API.
    pub fn secret(mut self, name: &str, data: &[(&str, &str)]) -> Self {
        let data: BTreeMap<String, k8s_openapi::ByteString> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    k8s_openapi::ByteString(v.as_bytes().to_vec()),
                )
            })
            .collect();
        let mut secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "shop"}}))
                .unwrap();
        secret.data = Some(data);
        self.secrets.insert(("shop".into(), name.into()), secret);
        self
    }
}

impl ObjectLookup for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps
            .get(&(namespace.into(), name.into()))
            .cloned()
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets.get(&(namespace.into(), name.into())).cloned()
    }
}

/// A 4-core, 8 GiB node `node-1` at 10.0.0.5, the pod at 10.244.1.7.
pub(super) fn context(objects: &Objects) -> ConfigContext<'_> {
    ConfigContext {
        node_name: "node-1".into(),
        node_hostname: "node-1.example.com".into(),
        node_ips: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        pod_ips: vec!["10.244.1.7".parse().unwrap(), "fd00:244::7".parse().unwrap()],
        machine_memory: 8 << 30,
        machine_milli_cpu: 4000,
        machine_ephemeral_storage: 100 << 30,
        attempt: 2,
        log_path: PathBuf::from("/var/log/pods/shop_web-0_1f2e3d/app/2.log"),
        volumes: BTreeMap::from([
            ("data".to_string(), PathBuf::from("/var/lib/flotilla/pods/1f2e3d/volumes/data")),
            ("config".to_string(), PathBuf::from("/var/lib/flotilla/pods/1f2e3d/volumes/config")),
        ]),
        hosts_file: None,
        termination_log: None,
        seccomp_root: PathBuf::from("/var/lib/flotilla/seccomp"),
        seccomp_default: false,
        cluster_dns: vec!["10.96.0.10".parse().unwrap()],
        cluster_domain: "cluster.local".into(),
        host_resolv_conf: Some(
            "# host\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example. lab.example\noptions edns0 timeout:2\n"
                .into(),
        ),
        objects,
    }
}
