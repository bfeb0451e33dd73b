//! The assembled container config: expansion of command and args, mounts,
//! labels and annotations.

use serde_json::{Value, json};

use super::*;
use crate::pods::test_support::{Objects, context, pod};
use crate::runtime::SeccompProfile;

fn config_with(
    spec: Value,
    adjust: impl FnOnce(&mut ConfigContext<'_>),
) -> Result<ContainerConfig, ConfigError> {
    let objects = Objects::default();
    let mut ctx = context(&objects);
    adjust(&mut ctx);
    let p = pod(spec);
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    container_config(&p, &c, &ctx)
}

fn config(spec: Value) -> Result<ContainerConfig, ConfigError> {
    config_with(spec, |_| {})
}

#[test]
fn assembles_the_container() {
    let c = config(json!({
        "terminationGracePeriodSeconds": 30,
        "containers": [{
            "name": "app", "image": "nginx:1.27",
            "command": ["/bin/sh", "-c"],
            "args": ["echo $(GREETING) $(UNKNOWN) $$(GREETING)"],
            "workingDir": "/srv",
            "env": [{"name": "GREETING", "value": "hello"}],
            "stdin": true, "tty": true,
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
            "securityContext": {"runAsUser": 1000}
        }]
    }))
    .unwrap();
    assert_eq!(c.name, "app");
    assert_eq!(c.image, "nginx:1.27");
    assert_eq!(c.attempt, 2);
    assert_eq!(c.command, vec!["/bin/sh", "-c"]);
    assert_eq!(c.args, vec!["echo hello $(UNKNOWN) $(GREETING)"]);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!(c.envs, vec![("GREETING".to_string(), "hello".to_string())]);
    assert!(c.stdin && c.tty && !c.stdin_once);
    assert_eq!(
        c.log_path,
        PathBuf::from("/var/log/pods/shop_web-0_1f2e3d/app/2.log")
    );
    assert_eq!(c.resources.cpu_quota, Some(100_000));
    assert_eq!(c.resources.oom_score_adj, Some(-997));
    assert_eq!(c.security.run_as_user, Some(1000));
    assert_eq!(c.security.seccomp, SeccompProfile::Unconfined);
    assert_eq!(c.labels["io.kubernetes.container.name"], "app");
    assert_eq!(c.labels["io.kubernetes.pod.namespace"], "shop");
    assert_eq!(c.annotations["io.kubernetes.container.restartCount"], "2");
    assert_eq!(
        c.annotations["io.kubernetes.container.terminationMessagePath"],
        "/dev/termination-log"
    );
    assert_eq!(
        c.annotations["io.kubernetes.pod.terminationGracePeriod"],
        "30"
    );
    assert!(c.mounts.is_empty());
}

#[test]
fn seccomp_default_applies_when_the_pod_says_nothing() {
    let c = config_with(json!({"containers": [{"name": "app"}]}), |ctx| {
        ctx.seccomp_default = true;
    })
    .unwrap();
    assert_eq!(c.security.seccomp, SeccompProfile::RuntimeDefault);
}

#[test]
fn volume_mounts_with_sub_paths() {
    let c = config(json!({"containers": [{
        "name": "app",
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/cache", "subPath": "cache/v1", "readOnly": true},
            {"name": "config", "mountPath": "/logs", "subPathExpr": "logs/$(POD)"}
        ]
    }]}))
    .unwrap();
    let volumes = "/var/lib/flotilla/pods/1f2e3d/volumes";
    assert_eq!(
        c.mounts,
        vec![
            Mount {
                container_path: "/data".into(),
                host_path: format!("{volumes}/data").into(),
                read_only: false
            },
            Mount {
                container_path: "/cache".into(),
                host_path: format!("{volumes}/data/cache/v1").into(),
                read_only: true
            },
            Mount {
                container_path: "/logs".into(),
                host_path: format!("{volumes}/config/logs/web-0").into(),
                read_only: false
            },
        ]
    );
}

#[test]
fn sub_paths_must_stay_in_their_volume() {
    let with_mount = |mount: Value| {
        config(json!({"containers": [{"name": "app", "volumeMounts": [mount]}]}))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        with_mount(json!({"name": "data", "mountPath": "/d", "subPath": "../../etc"})),
        "unable to provision SubPath `../../etc`: must not contain '..'"
    );
    assert_eq!(
        with_mount(json!({"name": "data", "mountPath": "/d", "subPath": "a/../../b"})),
        "unable to provision SubPath `a/../../b`: must not contain '..'"
    );
    assert_eq!(
        with_mount(json!({"name": "data", "mountPath": "/d", "subPath": "/etc"})),
        "error SubPath `/etc` must not be an absolute path"
    );
    assert_eq!(
        with_mount(json!({"name": "data", "mountPath": "/d", "subPathExpr": "$(NOPE)/$(ALSO)"})),
        "missing value for ALSO, NOPE"
    );
    assert_eq!(
        with_mount(json!({"name": "nope", "mountPath": "/d"})),
        "cannot find volume \"nope\" to mount into container \"app\""
    );
}

#[test]
fn hosts_file_and_termination_log() {
    let adjust = |ctx: &mut ConfigContext<'_>| {
        ctx.hosts_file = Some("/pods/1f2e3d/etc-hosts".into());
        ctx.termination_log = Some("/pods/1f2e3d/containers/app/abc".into());
    };
    let c = config_with(
        json!({"containers": [{"name": "app", "terminationMessagePath": "/tmp/term"}]}),
        adjust,
    )
    .unwrap();
    assert_eq!(
        c.mounts,
        vec![
            Mount {
                container_path: "/etc/hosts".into(),
                host_path: "/pods/1f2e3d/etc-hosts".into(),
                read_only: false
            },
            Mount {
                container_path: "/tmp/term".into(),
                host_path: "/pods/1f2e3d/containers/app/abc".into(),
                read_only: false
            },
        ]
    );
    // A container mounting its own /etc/hosts keeps it.
    let c = config_with(
        json!({"containers": [{"name": "app",
            "volumeMounts": [{"name": "config", "mountPath": "/etc/hosts", "subPath": "hosts"}]}]}),
        adjust,
    )
    .unwrap();
    let hosts: Vec<_> = c
        .mounts
        .iter()
        .filter(|m| m.container_path == "/etc/hosts")
        .collect();
    assert_eq!(hosts.len(), 1);
    assert!(hosts[0].host_path.ends_with("config/hosts"));
}

#[test]
fn config_errors_surface_with_kubelet_messages() {
    let err = config(json!({"containers": [{"name": "app",
        "envFrom": [{"configMapRef": {"name": "x"}}]}]}))
    .unwrap_err();
    assert_eq!(err.to_string(), "configmap \"x\" not found");
}
