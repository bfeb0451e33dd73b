//! The OCI runtime spec (`config.json`) of one container, as containerd's CRI
//! plugin writes it for runc: the process (args by Kubernetes' rules, env,
//! user, capabilities), the default mounts and the pod's bind mounts, the
//! namespaces it creates or joins, cgroup resources and the seccomp profile.
//!
//! Everything here is pure except reading the rootfs's `/etc/passwd` and
//! `/etc/group` (and a `Localhost` seccomp profile).
//!
//! Left out compared to containerd: AppArmor and SELinux labels, host devices
//! of privileged containers (they get every device allowed in the device
//! cgroup, but no device nodes are enumerated here) and the memory+swap limit.

#[cfg(test)]
mod tests;
mod user;

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory,
    LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources as OciResources, Mount, Process,
    Root, Spec, User,
};

use super::{
    ContainerConfig, LinuxResources, PodSandboxConfig, RuntimeError, SeccompProfile,
    SecurityContext, seccomp,
};
use crate::images::ImageConfig;

/// Where the container's pieces are on the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecPaths {
    /// The container's root filesystem (its overlay mount).
    pub rootfs: PathBuf,
    /// The sandbox's network namespace; `None` for the host's network.
    pub netns: Option<PathBuf>,
    /// The sandbox's IPC namespace; `None` for the host's.
    pub ipcns: Option<PathBuf>,
    /// The sandbox's UTS namespace (its hostname is set there); `None` for the
    /// host's.
    pub utsns: Option<PathBuf>,
    /// The container's cgroup, as runc takes it (`linux.cgroupsPath`).
    pub cgroups_path: String,
}

/// `PATH` for images that set none, as containerd's `WithDefaultPathEnv`.
const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd's default capability set of unprivileged containers.
const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability, for privileged containers and `add: [ALL]`.
const ALL_CAPABILITIES: &[Capability] = &[
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

/// Hidden from unprivileged containers (the kubelet's default `procMount`).
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices every container may use (null, random, full, tty, zero,
/// urandom, console, ptmx, the pts and tun), as containerd's
/// `WithDefaultUnixDevices` allows them; `None` minor is any.
const ALLOWED_CHAR_DEVICES: &[(i64, Option<i64>)] = &[
    (1, Some(3)),
    (1, Some(8)),
    (1, Some(7)),
    (5, Some(0)),
    (1, Some(5)),
    (1, Some(9)),
    (5, Some(1)),
    (136, None),
    (5, Some(2)),
    (10, Some(200)),
];

/// The spec of `container` in `sandbox`, from its image's config.
pub fn build(
    container: &ContainerConfig,
    sandbox: &PodSandboxConfig,
    image: &ImageConfig,
    paths: &SpecPaths,
) -> Result<Spec, RuntimeError> {
    let security = &container.security;
    let capabilities = capability_set(security)?;
    let user = user::resolve(&paths.rootfs, security, image.user.as_deref())?;

    let mut process = Process::default();
    process.set_terminal(Some(container.tty));
    process.set_args(Some(process_args(container, image)?));
    process.set_env(Some(environment(container, sandbox, image)));
    process.set_cwd(PathBuf::from(working_dir(container, image)));
    let mut oci_user = User::default();
    oci_user.set_uid(user.uid);
    oci_user.set_gid(user.gid);
    oci_user.set_additional_gids(Some(user.additional_gids));
    process.set_user(oci_user);
    process.set_capabilities(Some(linux_capabilities(&capabilities)));
    process.set_rlimits(None);
    process.set_no_new_privileges(Some(security.no_new_privs));
    process.set_oom_score_adj(container.resources.oom_score_adj);

    let mut root = Root::default();
    root.set_path(paths.rootfs.clone());
    root.set_readonly(Some(security.readonly_rootfs));

    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_namespaces(Some(namespaces(sandbox, paths, security.privileged)));
    linux.set_resources(Some(resources(&container.resources, security.privileged)));
    linux.set_cgroups_path(
        (!paths.cgroups_path.is_empty()).then(|| PathBuf::from(&paths.cgroups_path)),
    );
    linux.set_sysctl((!sandbox.sysctls.is_empty()).then(|| {
        sandbox
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }));
    let masked = !security.privileged && !security.unmasked_proc;
    linux.set_masked_paths(masked.then(|| strings(MASKED_PATHS)));
    linux.set_readonly_paths(masked.then(|| strings(READONLY_PATHS)));
    linux.set_seccomp(match (&security.seccomp, security.privileged) {
        (_, true) | (SeccompProfile::Unconfined, _) => None,
        (SeccompProfile::RuntimeDefault, false) => Some(seccomp::default_profile(&capabilities)),
        (SeccompProfile::Localhost(path), false) => Some(seccomp::load_profile(path)?),
    });

    let mut spec = Spec::default();
    spec.set_hostname(None);
    spec.set_domainname(None);
    spec.set_hooks(None);
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts(container, security.privileged)?));
    spec.set_annotations(Some(annotations(container, sandbox)));
    spec.set_linux(Some(linux));
    Ok(spec)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Kubernetes' rules: `command` replaces the image's entrypoint, `args` its
/// cmd, and a `command` without `args` drops the image's cmd.
fn process_args(
    container: &ContainerConfig,
    image: &ImageConfig,
) -> Result<Vec<String>, RuntimeError> {
    let mut command = container.command.clone();
    let mut args = container.args.clone();
    if command.is_empty() {
        if args.is_empty() {
            args = image.cmd.clone();
        }
        // `ENTRYPOINT [""]` clears the entrypoint.
        if !(image.entrypoint.len() == 1 && image.entrypoint[0].is_empty()) {
            command = image.entrypoint.clone();
        }
    }
    command.extend(args);
    if command.is_empty() {
        return Err(RuntimeError::Spec(format!(
            "no command specified for container {}",
            container.name
        )));
    }
    Ok(command)
}

/// The default `PATH`, `TERM` for a tty, `HOSTNAME`, then the image's env and
/// the container's: a later value of a name replaces the earlier one in place.
fn environment(
    container: &ContainerConfig,
    sandbox: &PodSandboxConfig,
    image: &ImageConfig,
) -> Vec<String> {
    let mut env = vec![DEFAULT_PATH_ENV.to_string()];
    if container.tty {
        env.push("TERM=xterm".to_string());
    }
    if !sandbox.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", sandbox.hostname));
    }
    merge_env(&mut env, image.env.iter().cloned());
    merge_env(
        &mut env,
        container.envs.iter().map(|(k, v)| format!("{k}={v}")),
    );
    env
}

/// Replaces or appends each `NAME=value`; a bare `NAME` (an image's way of
/// unsetting) removes the name.
fn merge_env(env: &mut Vec<String>, new: impl IntoIterator<Item = String>) {
    let name = |entry: &str| entry.split('=').next().unwrap_or("").to_string();
    for entry in new {
        let key = name(&entry);
        let existing = env.iter().position(|e| name(e) == key);
        match (existing, entry.contains('=')) {
            (Some(i), true) => env[i] = entry,
            (None, true) => env.push(entry),
            (Some(i), false) => {
                env.remove(i);
            }
            (None, false) => {}
        }
    }
}

fn working_dir(container: &ContainerConfig, image: &ImageConfig) -> String {
    [
        container.working_dir.as_deref(),
        image.working_dir.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find(|d| !d.is_empty())
    .unwrap_or("/")
    .to_string()
}

fn parse_capability(name: &str) -> Result<Capability, RuntimeError> {
    serde_json::from_value(serde_json::Value::String(name.trim().to_string()))
        .map_err(|_| RuntimeError::Spec(format!("unknown capability {name:?}")))
}

fn is_all(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("ALL")
}

/// The default set with the container's `add`/`drop` applied as containerd
/// does: `ALL` first (add, then drop), then single names added, then dropped.
/// Privileged containers get every capability.
fn capability_set(security: &SecurityContext) -> Result<HashSet<Capability>, RuntimeError> {
    if security.privileged {
        return Ok(ALL_CAPABILITIES.iter().copied().collect());
    }
    let mut set: HashSet<Capability> = DEFAULT_CAPABILITIES.iter().copied().collect();
    if security.capabilities_add.iter().any(|c| is_all(c)) {
        set.extend(ALL_CAPABILITIES.iter().copied());
    }
    if security.capabilities_drop.iter().any(|c| is_all(c)) {
        set.clear();
    }
    for name in security.capabilities_add.iter().filter(|c| !is_all(c)) {
        set.insert(parse_capability(name)?);
    }
    for name in security.capabilities_drop.iter().filter(|c| !is_all(c)) {
        set.remove(&parse_capability(name)?);
    }
    Ok(set)
}

fn linux_capabilities(set: &HashSet<Capability>) -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set.clone()));
    caps.set_inheritable(Some(HashSet::new()));
    caps.set_ambient(Some(HashSet::new()));
    caps
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns.set_path(path.map(Path::to_path_buf));
    ns
}

/// New pid (unless the pod uses the host's) and mount namespaces, the
/// sandbox's network, IPC and UTS namespaces by path (absent: the host's), and
/// a new cgroup namespace for unprivileged containers.
fn namespaces(
    sandbox: &PodSandboxConfig,
    paths: &SpecPaths,
    privileged: bool,
) -> Vec<LinuxNamespace> {
    let mut out = Vec::new();
    if !sandbox.host_pid {
        out.push(namespace(LinuxNamespaceType::Pid, None));
    }
    out.push(namespace(LinuxNamespaceType::Mount, None));
    let joined = [
        (LinuxNamespaceType::Network, &paths.netns),
        (LinuxNamespaceType::Ipc, &paths.ipcns),
        (LinuxNamespaceType::Uts, &paths.utsns),
    ];
    for (typ, path) in joined {
        if let Some(path) = path {
            out.push(namespace(typ, Some(path)));
        }
    }
    if !privileged {
        out.push(namespace(LinuxNamespaceType::Cgroup, None));
    }
    out
}

fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow);
    rule.set_typ(typ);
    rule.set_major(major);
    rule.set_minor(minor);
    rule.set_access(Some("rwm".to_string()));
    rule
}

fn resources(config: &LinuxResources, privileged: bool) -> OciResources {
    let devices = if privileged {
        vec![device_rule(true, None, None, None)]
    } else {
        let mut rules = vec![device_rule(false, None, None, None)];
        rules.extend(ALLOWED_CHAR_DEVICES.iter().map(|(major, minor)| {
            device_rule(true, Some(LinuxDeviceType::C), Some(*major), *minor)
        }));
        rules
    };
    let mut out = OciResources::default();
    out.set_devices(Some(devices));
    if config.cpu_shares.is_some() || config.cpu_quota.is_some() || config.cpu_period.is_some() {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(config.cpu_shares);
        cpu.set_quota(config.cpu_quota);
        cpu.set_period(config.cpu_period);
        out.set_cpu(Some(cpu));
    }
    if let Some(limit) = config.memory_limit_in_bytes.filter(|l| *l > 0) {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        out.set_memory(Some(memory));
    }
    if let Some(limit) = config.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        out.set_pids(Some(pids));
    }
    out
}

fn oci_mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(strings(options)));
    m
}

/// What every container gets before its own mounts (containerd's defaults
/// without `/run`, plus the cgroup filesystem).
fn default_mounts(privileged: bool) -> Vec<Mount> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    vec![
        oci_mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        oci_mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        oci_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        oci_mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        oci_mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        oci_mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        oci_mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ]
}

/// `path` without `.`, `..` and repeated slashes; None unless absolute.
fn clean_absolute(path: &str) -> Option<String> {
    let path = Path::new(path);
    if !path.is_absolute() {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// The defaults not shadowed by the container's mounts (a mount on `/dev`
/// shadows everything under it), then the container's bind mounts, parents
/// before children.
fn mounts(container: &ContainerConfig, privileged: bool) -> Result<Vec<Mount>, RuntimeError> {
    let mut binds = Vec::new();
    for m in &container.mounts {
        let destination = clean_absolute(&m.container_path).ok_or_else(|| {
            RuntimeError::Spec(format!(
                "mount path {:?} of container {} is not absolute",
                m.container_path, container.name
            ))
        })?;
        binds.push((destination, m));
    }
    binds.sort_by_key(|(destination, _)| destination.matches('/').count());

    let shadows_dev = binds.iter().any(|(d, _)| d == "/dev");
    let mut out: Vec<Mount> = default_mounts(privileged)
        .into_iter()
        .filter(|m| {
            let destination = m.destination().to_string_lossy();
            let replaced = binds.iter().any(|(d, _)| *d == destination);
            let under_dev = shadows_dev && destination.starts_with("/dev/");
            !replaced && !under_dev
        })
        .collect();
    for (destination, m) in binds {
        let mode = if m.read_only { "ro" } else { "rw" };
        let mut mount = Mount::default();
        mount.set_destination(PathBuf::from(destination));
        mount.set_typ(Some("bind".to_string()));
        mount.set_source(Some(m.host_path.clone()));
        mount.set_options(Some(strings(&["rbind", "rprivate", mode])));
        out.push(mount);
    }
    Ok(out)
}

/// The container's annotations and the CRI's own, which tools reading bundles
/// (and runc hooks) use to tell containers apart.
fn annotations(container: &ContainerConfig, sandbox: &PodSandboxConfig) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = container
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cri = [
        ("io.kubernetes.cri.container-type", "container"),
        ("io.kubernetes.cri.container-name", container.name.as_str()),
        ("io.kubernetes.cri.image-name", container.image.as_str()),
        ("io.kubernetes.cri.sandbox-name", sandbox.name.as_str()),
        (
            "io.kubernetes.cri.sandbox-namespace",
            sandbox.namespace.as_str(),
        ),
        ("io.kubernetes.cri.sandbox-uid", sandbox.uid.as_str()),
    ];
    for (k, v) in cri {
        out.insert(k.to_string(), v.to_string());
    }
    out
}
