//! A container of a Pod as a CRI [`ContainerConfig`], with everything the
//! runtime needs resolved: env, `$(VAR)`-expanded command and args, volume
//! mounts, resources and security context.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, VolumeMount};

use super::{env, expansion, resources, security};
use crate::runtime::{ContainerConfig, Mount};

pub use super::sandbox::sandbox_config;

/// The objects a pod's env refers to, fetched by the caller beforehand.
pub trait ObjectLookup {
    fn config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<Secret>;
}

/// What the node knows that a pod's configs depend on.
pub struct ConfigContext<'a> {
    pub node_name: String,
    /// The node's hostname: the hostname of `hostNetwork` pods.
    pub node_hostname: String,
    /// `status.hostIP(s)`; the first is `status.hostIP`.
    pub node_ips: Vec<IpAddr>,
    /// `status.podIP(s)`; the first is `status.podIP`.
    pub pod_ips: Vec<IpAddr>,
    /// Bytes of memory of the machine: the default of `limits.memory` in
    /// `resourceFieldRef`s and the base of Burstable OOM scores.
    pub machine_memory: i64,
    /// Millicores of the machine: the default of `limits.cpu`.
    pub machine_milli_cpu: i64,
    /// Bytes of ephemeral storage: the default of `limits.ephemeral-storage`.
    pub machine_ephemeral_storage: i64,
    /// The container's restart count (the sandbox's for [`sandbox_config`]).
    pub attempt: u32,
    /// Where the runtime writes the container's log.
    pub log_path: PathBuf,
    /// Host paths of the pod's volumes, by volume name.
    pub volumes: BTreeMap<String, PathBuf>,
    /// The pod's hosts file, mounted on /etc/hosts unless the container mounts
    /// something there itself.
    pub hosts_file: Option<PathBuf>,
    /// The file mounted on the container's `terminationMessagePath`.
    pub termination_log: Option<PathBuf>,
    /// Where `Localhost` seccomp profiles are (`<root>/seccomp`).
    pub seccomp_root: PathBuf,
    /// The kubelet's `--seccomp-default`: RuntimeDefault when the pod says
    /// nothing.
    pub seccomp_default: bool,
    /// `--cluster-dns` and `--cluster-domain`.
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The content of the node's resolv.conf (`--resolv-conf`); `None` when
    /// it is disabled.
    pub host_resolv_conf: Option<String>,
    pub objects: &'a dyn ObjectLookup,
}

/// Why a container's config could not be made. The messages are the
/// kubelet's: they become the pod's `CreateContainerConfigError` message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configmap \"{name}\" not found")]
    ConfigMapNotFound { namespace: String, name: String },
    #[error("secret \"{name}\" not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    /// A `fieldRef` the kubelet cannot resolve.
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    /// A `resourceFieldRef` to a resource the kubelet does not expose.
    #[error("unsupported container resource : {0}")]
    Resource(String),
    /// A `resourceFieldRef` naming a container the pod does not have.
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("invalid quantity {value:?} in {field}")]
    Quantity {
        field: String,
        value: String,
        #[source]
        source: apimachinery::quantity::QuantityError,
    },
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    VolumeNotFound { volume: String, container: String },
    #[error("error SubPath `{0}` must not be an absolute path")]
    AbsoluteSubPath(String),
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    /// `subPathExpr` referring to variables the container does not have.
    #[error("missing value for {0}")]
    SubPathExpr(String),
    /// A `Localhost` seccomp profile without a valid `localhostProfile`.
    #[error("invalid localhost seccomp profile {0:?}")]
    SeccompProfile(String),
}

/// The config of `container` of `pod` (a regular, init or ephemeral one).
pub fn container_config(
    pod: &Pod,
    container: &Container,
    ctx: &ConfigContext<'_>,
) -> Result<ContainerConfig, ConfigError> {
    let envs = env::environment(pod, container, ctx)?;
    let expand = |items: &Option<Vec<String>>| -> Vec<String> {
        items
            .iter()
            .flatten()
            .map(|s| expansion::expand(s, |name| lookup(&envs, name)))
            .collect()
    };
    let command = expand(&container.command);
    let args = expand(&container.args);
    let mounts = mounts(container, &envs, ctx)?;
    let meta = &pod.metadata;
    let labels = BTreeMap::from([
        (
            "io.kubernetes.pod.name".to_string(),
            meta.name.clone().unwrap_or_default(),
        ),
        (
            "io.kubernetes.pod.namespace".to_string(),
            meta.namespace.clone().unwrap_or_default(),
        ),
        (
            "io.kubernetes.pod.uid".to_string(),
            meta.uid.clone().unwrap_or_default(),
        ),
        (
            "io.kubernetes.container.name".to_string(),
            container.name.clone(),
        ),
    ]);
    let mut annotations = BTreeMap::from([
        (
            "io.kubernetes.container.restartCount".to_string(),
            ctx.attempt.to_string(),
        ),
        (
            "io.kubernetes.container.terminationMessagePath".to_string(),
            termination_message_path(container).to_string(),
        ),
        (
            "io.kubernetes.container.terminationMessagePolicy".to_string(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".to_string()),
        ),
    ]);
    if let Some(grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        annotations.insert(
            "io.kubernetes.pod.terminationGracePeriod".to_string(),
            grace.to_string(),
        );
    }
    Ok(ContainerConfig {
        name: container.name.clone(),
        attempt: ctx.attempt,
        image: container.image.clone().unwrap_or_default(),
        command,
        args,
        working_dir: container.working_dir.clone().filter(|d| !d.is_empty()),
        envs,
        mounts,
        log_path: ctx.log_path.clone(),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        resources: resources::linux_resources(pod, container, ctx.machine_memory)?,
        security: security::security_context(pod, container, ctx)?,
        labels,
        annotations,
    })
}

fn lookup(envs: &[(String, String)], name: &str) -> Option<String> {
    envs.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn termination_message_path(container: &Container) -> &str {
    container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("/dev/termination-log")
}

/// The container's volume mounts on the volumes' host paths, then the pod's
/// hosts file and the termination log.
fn mounts(
    container: &Container,
    envs: &[(String, String)],
    ctx: &ConfigContext<'_>,
) -> Result<Vec<Mount>, ConfigError> {
    let mut out = Vec::new();
    let volume_mounts = container.volume_mounts.as_deref().unwrap_or_default();
    for vm in volume_mounts {
        let volume = ctx
            .volumes
            .get(&vm.name)
            .ok_or_else(|| ConfigError::VolumeNotFound {
                volume: vm.name.clone(),
                container: container.name.clone(),
            })?;
        let sub_path = sub_path(vm, envs)?;
        let host_path = if sub_path.is_empty() {
            volume.clone()
        } else {
            volume.join(&sub_path)
        };
        out.push(Mount {
            container_path: vm.mount_path.clone(),
            host_path,
            read_only: vm.read_only.unwrap_or(false),
        });
    }
    if let Some(hosts) = &ctx.hosts_file
        && !volume_mounts.iter().any(|vm| vm.mount_path == "/etc/hosts")
    {
        out.push(Mount {
            container_path: "/etc/hosts".to_string(),
            host_path: hosts.clone(),
            read_only: false,
        });
    }
    if let Some(log) = &ctx.termination_log {
        out.push(Mount {
            container_path: termination_message_path(container).to_string(),
            host_path: log.clone(),
            read_only: false,
        });
    }
    Ok(out)
}

/// `subPath`, or `subPathExpr` expanded with the container's env; relative
/// and without `..`, so it stays inside its volume.
fn sub_path(vm: &VolumeMount, envs: &[(String, String)]) -> Result<String, ConfigError> {
    let mut sub_path = vm.sub_path.clone().unwrap_or_default();
    if let Some(expr) = vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        let mut missing = std::collections::BTreeSet::new();
        sub_path = expansion::expand(expr, |name| match lookup(envs, name) {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                missing.insert(name.to_string());
                Some(String::new())
            }
        });
        if !missing.is_empty() {
            return Err(ConfigError::SubPathExpr(
                missing.into_iter().collect::<Vec<_>>().join(", "),
            ));
        }
    }
    if sub_path.is_empty() {
        return Ok(sub_path);
    }
    let path = Path::new(&sub_path);
    if path.is_absolute() {
        return Err(ConfigError::AbsoluteSubPath(sub_path));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(ConfigError::SubPathBacksteps(sub_path));
    }
    Ok(sub_path)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
