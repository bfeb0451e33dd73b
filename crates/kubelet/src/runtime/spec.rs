//! The OCI runtime spec of one container (interim version: the defaults of
//! oci-spec with the process, root, namespaces, mounts and cgroup filled in).

use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, ProcessBuilder, RootBuilder, Spec,
};

use super::{ContainerConfig, PodSandboxConfig, RuntimeError};
use crate::images::ImageConfig;

/// Where the container's pieces are on the host.
#[derive(Debug, Clone, Default)]
pub struct SpecPaths {
    pub rootfs: PathBuf,
    pub netns: Option<PathBuf>,
    pub ipcns: Option<PathBuf>,
    pub utsns: Option<PathBuf>,
    pub cgroups_path: String,
}

fn err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Spec(e.to_string())
}

pub fn build(
    container: &ContainerConfig,
    _sandbox: &PodSandboxConfig,
    image: &ImageConfig,
    paths: &SpecPaths,
) -> Result<Spec, RuntimeError> {
    let mut args: Vec<String> = if container.command.is_empty() {
        image.entrypoint.clone()
    } else {
        container.command.clone()
    };
    if !container.args.is_empty() {
        args.extend(container.args.iter().cloned());
    } else if container.command.is_empty() {
        args.extend(image.cmd.iter().cloned());
    }
    if args.is_empty() {
        return Err(err("no command specified"));
    }
    let mut env = image.env.clone();
    for (k, v) in &container.envs {
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(args)
        .env(env)
        .cwd(
            container
                .working_dir
                .clone()
                .or(image.working_dir.clone())
                .unwrap_or_else(|| "/".into()),
        )
        .build()
        .map_err(err)?;
    spec.set_process(Some(process));
    spec.set_hostname(None);
    spec.set_root(Some(
        RootBuilder::default()
            .path(paths.rootfs.clone())
            .readonly(false)
            .build()
            .map_err(err)?,
    ));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in &container.mounts {
        let mut options = vec!["rbind".to_string()];
        options.push(if m.read_only { "ro" } else { "rw" }.into());
        mounts.push(
            MountBuilder::default()
                .destination(m.container_path.clone())
                .typ("bind")
                .source(m.host_path.clone())
                .options(options)
                .build()
                .map_err(err)?,
        );
    }
    spec.set_mounts(Some(mounts));
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = vec![
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .build()
            .map_err(err)?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Mount)
            .build()
            .map_err(err)?,
    ];
    for (typ, path) in [
        (LinuxNamespaceType::Network, &paths.netns),
        (LinuxNamespaceType::Ipc, &paths.ipcns),
        (LinuxNamespaceType::Uts, &paths.utsns),
    ] {
        if let Some(path) = path {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .path(path.clone())
                    .build()
                    .map_err(err)?,
            );
        }
    }
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(PathBuf::from(&paths.cgroups_path)));
    spec.set_linux(Some(linux));
    Ok(spec)
}
