//! End to end with the Python `kubernetes` client (installed from PyPI by
//! scripts/test.sh).

mod common;

use common::Cluster;

const SCRIPT: &str = r#"
import sys
from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
apps = client.AppsV1Api()

names = sorted(ns.metadata.name for ns in v1.list_namespace().items)
assert "kube-system" in names, names

cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"from": "python"}), data={"k": "v"})
created = v1.create_namespaced_config_map("default", cm)
assert created.metadata.uid, created
assert int(created.metadata.resource_version) > 0

got = v1.read_namespaced_config_map("py-cm", "default")
assert got.data == {"k": "v"}, got.data

got.data["k2"] = "v2"
updated = v1.replace_namespaced_config_map("py-cm", "default", got)
assert updated.data["k2"] == "v2"

patched = v1.patch_namespaced_config_map("py-cm", "default", {"data": {"k3": "v3"}})
assert patched.data == {"k": "v", "k2": "v2", "k3": "v3"}, patched.data

listed = v1.list_namespaced_config_map("default", label_selector="from=python")
assert [c.metadata.name for c in listed.items] == ["py-cm"], listed.items

dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="py-dep"),
    spec=client.V1DeploymentSpec(
        replicas=1,
        selector=client.V1LabelSelector(match_labels={"app": "py"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "py"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
        ),
    ),
)
apps.create_namespaced_deployment("default", dep)
scale = apps.patch_namespaced_deployment_scale("py-dep", "default", {"spec": {"replicas": 4}})
assert scale.spec.replicas == 4, scale
assert apps.read_namespaced_deployment("py-dep", "default").spec.replicas == 4

w = watch.Watch()
rv = v1.list_namespaced_config_map("default").metadata.resource_version
v1.delete_namespaced_config_map("py-cm", "default")
for event in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10):
    if event["type"] == "DELETED" and event["object"].metadata.name == "py-cm":
        w.stop()
        break
else:
    raise AssertionError("no DELETED event")

try:
    v1.read_namespaced_config_map("py-cm", "default")
    raise AssertionError("still there")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
print("python client ok")
"#;

#[test]
fn python_kubernetes_client() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "the Python `kubernetes` package is not installed: scripts/test.sh installs it with pip ({})",
        String::from_utf8_lossy(&check.stderr)
    );
    let c = Cluster::start(&[]);
    let script = c.data.join("client.py");
    std::fs::write(&script, SCRIPT).expect("write script");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&c.kubeconfig)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client ok"));
}
