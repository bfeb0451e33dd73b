//! The spec's fields, checked on its JSON as runc reads it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::runtime::Mount as ConfigMount;

struct Fixture {
    rootfs: tempfile::TempDir,
    container: ContainerConfig,
    sandbox: PodSandboxConfig,
    image: ImageConfig,
    paths: SpecPaths,
}

fn fixture() -> Fixture {
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(rootfs.path().join("etc")).unwrap();
    std::fs::write(
        rootfs.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.path().join("etc/group"), "root:x:0:\nweb:x:33:\n").unwrap();
    let paths = SpecPaths {
        rootfs: rootfs.path().to_path_buf(),
        netns: Some("/run/netns/pod".into()),
        ipcns: Some("/run/flotilla/ns/pod/ipc".into()),
        utsns: Some("/run/flotilla/ns/pod/uts".into()),
        cgroups_path: "kubepods/besteffort/podabc/c1".into(),
    };
    Fixture {
        rootfs,
        container: ContainerConfig {
            name: "app".into(),
            image: "docker.io/library/busybox:latest".into(),
            ..Default::default()
        },
        sandbox: PodSandboxConfig {
            name: "web-0".into(),
            namespace: "default".into(),
            uid: "abc".into(),
            hostname: "web-0".into(),
            ..Default::default()
        },
        image: ImageConfig {
            env: vec!["PATH=/bin:/usr/bin".into(), "LANG=C".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into(), "--port=80".into()],
            working_dir: None,
            user: None,
        },
        paths,
    }
}

impl Fixture {
    fn json(&self) -> Value {
        serde_json::to_value(self.try_json().unwrap()).unwrap()
    }
    fn try_json(&self) -> Result<Spec, RuntimeError> {
        build(&self.container, &self.sandbox, &self.image, &self.paths)
    }
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn mount<'a>(spec: &'a Value, destination: &str) -> Option<&'a Value> {
    spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == destination)
}

#[test]
fn args_follow_kubernetes_rules() {
    let mut f = fixture();
    assert_eq!(
        f.json()["process"]["args"],
        json!(["/entry", "serve", "--port=80"])
    );
    f.container.args = vec!["other".into()];
    assert_eq!(f.json()["process"]["args"], json!(["/entry", "other"]));
    f.container.command = vec!["/bin/sh".into()];
    f.container.args = vec![];
    // A command without args drops the image's cmd.
    assert_eq!(f.json()["process"]["args"], json!(["/bin/sh"]));
    f.container.args = vec!["-c".into(), "true".into()];
    assert_eq!(
        f.json()["process"]["args"],
        json!(["/bin/sh", "-c", "true"])
    );
    f.container.command = vec![];
    f.container.args = vec![];
    f.image.entrypoint = vec![String::new()];
    assert_eq!(f.json()["process"]["args"], json!(["serve", "--port=80"]));
    f.image.cmd = vec![];
    let err = f.try_json().unwrap_err().to_string();
    assert!(err.contains("no command specified"), "{err}");
}

#[test]
fn env_merges_image_then_container_in_place() {
    let mut f = fixture();
    f.container.envs = vec![
        ("LANG".into(), "en_US.UTF-8".into()),
        ("A".into(), "1=2".into()),
    ];
    f.container.tty = true;
    assert_eq!(
        f.json()["process"]["env"],
        json!([
            "PATH=/bin:/usr/bin",
            "TERM=xterm",
            "HOSTNAME=web-0",
            "LANG=en_US.UTF-8",
            "A=1=2"
        ])
    );
    assert_eq!(f.json()["process"]["terminal"], true);
    f.image.env = vec![];
    f.container.tty = false;
    f.container.envs = vec![];
    assert_eq!(
        f.json()["process"]["env"],
        json!([DEFAULT_PATH_ENV, "HOSTNAME=web-0"])
    );
    assert_eq!(f.json()["process"]["terminal"], false);
}

#[test]
fn cwd_prefers_the_container_then_the_image() {
    let mut f = fixture();
    assert_eq!(f.json()["process"]["cwd"], "/");
    f.image.working_dir = Some("/srv".into());
    assert_eq!(f.json()["process"]["cwd"], "/srv");
    f.container.working_dir = Some("/data".into());
    assert_eq!(f.json()["process"]["cwd"], "/data");
}

#[test]
fn user_comes_from_security_context_or_image() {
    let mut f = fixture();
    let user = &f.json()["process"]["user"];
    assert_eq!(
        (user["uid"].clone(), user["gid"].clone()),
        (json!(0), json!(0))
    );
    f.image.user = Some("web".into());
    let user = &f.json()["process"]["user"];
    assert_eq!(
        (user["uid"].clone(), user["gid"].clone()),
        (json!(33), json!(33))
    );
    f.container.security.run_as_user = Some(1000);
    f.container.security.run_as_group = Some(2000);
    f.container.security.supplemental_groups = vec![3000];
    let user = &f.json()["process"]["user"];
    assert_eq!(user["uid"], 1000);
    assert_eq!(user["gid"], 2000);
    assert_eq!(user["additionalGids"], json!([2000, 3000]));
    f.image.user = Some("ghost".into());
    f.container.security = SecurityContext::default();
    assert!(f.try_json().is_err());
}

#[test]
fn default_capabilities_with_add_and_drop() {
    let mut f = fixture();
    let caps = &f.json()["process"]["capabilities"];
    let expected = sorted(&json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]));
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(sorted(&caps[set]), expected, "{set}");
    }
    assert_eq!(caps["inheritable"], json!([]));
    assert_eq!(caps["ambient"], json!([]));

    f.container.security.capabilities_add = vec!["NET_ADMIN".into(), "CAP_SYS_TIME".into()];
    f.container.security.capabilities_drop = vec!["net_raw".into(), "CAP_MKNOD".into()];
    let bounding = sorted(&f.json()["process"]["capabilities"]["bounding"]);
    assert!(bounding.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(bounding.contains(&"CAP_SYS_TIME".to_string()));
    assert!(!bounding.contains(&"CAP_NET_RAW".to_string()));
    assert!(!bounding.contains(&"CAP_MKNOD".to_string()));
    assert_eq!(bounding.len(), 14);

    f.container.security.capabilities_add = vec!["NET_BIND_SERVICE".into()];
    f.container.security.capabilities_drop = vec!["ALL".into()];
    let caps = &f.json()["process"]["capabilities"];
    assert_eq!(caps["effective"], json!(["CAP_NET_BIND_SERVICE"]));

    f.container.security.capabilities_add = vec!["all".into()];
    f.container.security.capabilities_drop = vec!["CHOWN".into()];
    let bounding = sorted(&f.json()["process"]["capabilities"]["bounding"]);
    assert_eq!(bounding.len(), ALL_CAPABILITIES.len() - 1);
    assert!(!bounding.contains(&"CAP_CHOWN".to_string()));

    f.container.security.capabilities_add = vec!["NOT_A_CAP".into()];
    assert!(f.try_json().unwrap_err().to_string().contains("NOT_A_CAP"));
}

#[test]
fn unprivileged_defaults() {
    let f = fixture();
    let spec = f.json();
    assert!(spec.get("hostname").is_none());
    assert_eq!(spec["process"]["noNewPrivileges"], false);
    assert!(spec["process"].get("rlimits").is_none());
    assert_eq!(spec["root"]["path"], json!(f.rootfs.path()));
    assert_eq!(spec["root"]["readonly"], false);
    assert_eq!(spec["linux"]["maskedPaths"], json!(MASKED_PATHS));
    assert_eq!(spec["linux"]["readonlyPaths"], json!(READONLY_PATHS));
    assert_eq!(
        spec["linux"]["cgroupsPath"],
        "kubepods/besteffort/podabc/c1"
    );
    assert!(spec["linux"].get("seccomp").is_none());
    let devices = spec["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(devices[0], json!({"allow": false, "access": "rwm"}));
    assert!(
        devices.contains(
            &json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
        )
    );
    assert!(devices.contains(&json!({"allow": true, "type": "c", "major": 136, "access": "rwm"})));
    assert_eq!(
        spec["annotations"]["io.kubernetes.cri.container-name"],
        "app"
    );
    assert_eq!(spec["annotations"]["io.kubernetes.cri.sandbox-uid"], "abc");
}

#[test]
fn no_new_privs_readonly_root_and_unmasked_proc() {
    let mut f = fixture();
    f.container.security.no_new_privs = true;
    f.container.security.readonly_rootfs = true;
    f.container.security.unmasked_proc = true;
    let spec = f.json();
    assert_eq!(spec["process"]["noNewPrivileges"], true);
    assert_eq!(spec["root"]["readonly"], true);
    assert!(spec["linux"].get("maskedPaths").is_none());
    assert!(spec["linux"].get("readonlyPaths").is_none());
}

#[test]
fn privileged_gets_everything() {
    let mut f = fixture();
    f.container.security.privileged = true;
    f.container.security.seccomp = SeccompProfile::RuntimeDefault;
    let spec = f.json();
    let bounding = sorted(&spec["process"]["capabilities"]["bounding"]);
    assert_eq!(bounding.len(), ALL_CAPABILITIES.len());
    assert!(bounding.contains(&"CAP_SYS_ADMIN".to_string()));
    assert!(spec["linux"].get("maskedPaths").is_none());
    assert!(spec["linux"].get("readonlyPaths").is_none());
    assert!(spec["linux"].get("seccomp").is_none());
    assert_eq!(mount(&spec, "/sys").unwrap()["options"][3], "rw");
    assert_eq!(mount(&spec, "/sys/fs/cgroup").unwrap()["options"][4], "rw");
    assert_eq!(
        spec["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
    let types: Vec<&Value> = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["type"])
        .collect();
    assert!(!types.contains(&&json!("cgroup")));
}

#[test]
fn default_mounts_then_binds_sorted_by_depth() {
    let mut f = fixture();
    let spec = f.json();
    let destinations: Vec<&str> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        destinations,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup"
        ]
    );
    assert_eq!(
        mount(&spec, "/sys").unwrap()["options"],
        json!(["nosuid", "noexec", "nodev", "ro"])
    );

    let bind = |container_path: &str, host: &str, read_only| ConfigMount {
        container_path: container_path.into(),
        host_path: PathBuf::from(host),
        read_only,
    };
    f.container.mounts = vec![
        bind("/data/cache", "/var/lib/v/cache", false),
        bind("/data", "/var/lib/v/data", true),
        bind("/etc/hosts", "/var/lib/pod/etc-hosts", false),
        bind("/etc/resolv.conf", "/var/lib/pod/resolv.conf", true),
        bind("/etc/hostname", "/var/lib/pod/hostname", true),
        bind("/dev/shm/", "/run/pod/shm", false),
    ];
    let spec = f.json();
    let destinations: Vec<&str> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        destinations,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/data",
            "/data/cache",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/dev/shm"
        ]
    );
    assert_eq!(
        mount(&spec, "/data").unwrap(),
        &json!({"destination": "/data", "type": "bind", "source": "/var/lib/v/data",
                "options": ["rbind", "rprivate", "ro"]})
    );
    assert_eq!(mount(&spec, "/etc/hosts").unwrap()["options"][2], "rw");
    assert_eq!(mount(&spec, "/dev/shm").unwrap()["source"], "/run/pod/shm");

    // A /dev of its own replaces everything under /dev.
    f.container.mounts = vec![bind("/dev", "/host/dev", false)];
    let spec = f.json();
    assert!(mount(&spec, "/dev/pts").is_none());
    assert_eq!(mount(&spec, "/dev").unwrap()["type"], "bind");

    f.container.mounts = vec![bind("relative/path", "/x", false)];
    assert!(f.try_json().is_err());
}

#[test]
fn namespaces_join_the_sandbox() {
    let mut f = fixture();
    let spec = f.json();
    assert_eq!(
        spec["linux"]["namespaces"],
        json!([
            {"type": "pid"},
            {"type": "mount"},
            {"type": "network", "path": "/run/netns/pod"},
            {"type": "ipc", "path": "/run/flotilla/ns/pod/ipc"},
            {"type": "uts", "path": "/run/flotilla/ns/pod/uts"},
            {"type": "cgroup"}
        ])
    );
    // Host network, IPC and PID: no entries for them.
    f.paths.netns = None;
    f.paths.ipcns = None;
    f.paths.utsns = None;
    f.sandbox.host_pid = true;
    let spec = f.json();
    assert_eq!(
        spec["linux"]["namespaces"],
        json!([{"type": "mount"}, {"type": "cgroup"}])
    );
}

#[test]
fn resources_sysctls_and_oom_score() {
    let mut f = fixture();
    let spec = f.json();
    assert!(spec["linux"]["resources"].get("cpu").is_none());
    assert!(spec["linux"]["resources"].get("memory").is_none());
    assert!(spec["linux"].get("sysctl").is_none());
    assert!(spec["process"].get("oomScoreAdj").is_none());

    f.container.resources = LinuxResources {
        cpu_period: Some(100_000),
        cpu_quota: Some(50_000),
        cpu_shares: Some(512),
        memory_limit_in_bytes: Some(64 << 20),
        oom_score_adj: Some(-997),
        pids_limit: Some(1024),
    };
    f.sandbox.sysctls =
        BTreeMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "0".into())]);
    let spec = f.json();
    assert_eq!(
        spec["linux"]["resources"]["cpu"],
        json!({"shares": 512, "quota": 50000, "period": 100000})
    );
    assert_eq!(
        spec["linux"]["resources"]["memory"],
        json!({"limit": 67108864})
    );
    assert_eq!(spec["linux"]["resources"]["pids"], json!({"limit": 1024}));
    assert_eq!(spec["process"]["oomScoreAdj"], -997);
    assert_eq!(
        spec["linux"]["sysctl"],
        json!({"net.ipv4.ip_unprivileged_port_start": "0"})
    );
}

#[test]
fn seccomp_profiles() {
    let mut f = fixture();
    f.container.security.seccomp = SeccompProfile::RuntimeDefault;
    let spec = f.json();
    assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    // CAP_SYS_CHROOT is in the default set, so chroot is allowed.
    let rules = spec["linux"]["seccomp"]["syscalls"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["names"] == json!(["chroot"])));

    let profile = f.rootfs.path().join("profile.json");
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    f.container.security.seccomp = SeccompProfile::Localhost(profile);
    assert_eq!(
        f.json()["linux"]["seccomp"],
        json!({"defaultAction": "SCMP_ACT_ALLOW"})
    );
    f.container.security.seccomp = SeccompProfile::Localhost(f.rootfs.path().join("nope.json"));
    assert!(f.try_json().is_err());
    f.container.security.seccomp = SeccompProfile::Unconfined;
    assert!(f.json()["linux"].get("seccomp").is_none());
}

#[test]
fn merge_env_unsets_bare_names() {
    let mut env = vec!["A=1".to_string(), "B=2".to_string()];
    merge_env(
        &mut env,
        ["A".to_string(), "C=3".to_string(), "B=4".to_string()],
    );
    assert_eq!(env, ["B=4", "C=3"]);
}
