//! Containers: an overlay rootfs over the image's layers, an OCI bundle, and
//! the OCI runtime run through the shim.

use super::records::{self, ContainerRecord, time};
use super::*;
use crate::runtime::spec::{self, SpecPaths};

impl LocalRuntime {
    pub(super) async fn create(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
    ) -> RuntimeResult<String> {
        let sandbox = self.sandbox(sandbox_id)?;
        let images = self.images.clone();
        let reference = config.image.clone();
        let (image, layers) = tokio::task::spawn_blocking(move || {
            let image = images
                .get(&reference)
                .ok_or_else(|| crate::images::ImageError::NotFound(reference.clone()))?;
            let layers = images.layers(&image)?;
            Ok::<_, crate::images::ImageError>((image, layers))
        })
        .await
        .map_err(|e| RuntimeError::Host {
            action: "unpacking layers".into(),
            source: std::io::Error::other(e),
        })??;

        let id = new_id();
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir).map_err(host_error(format!("creating {}", dir.display())))?;
        if let Some(parent) = config.log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(host_error(format!("creating {}", parent.display())))?;
        }
        let record = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox_id.to_owned(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            image_id: image.id.clone(),
            log_path: config.log_path.clone(),
            created_at_ns: records::now_ns(),
            started_at_ns: None,
            cgroup: format!("{}/{}", sandbox.cgroup, id),
        };
        // Recorded first, so a failure below leaves something remove() finds.
        records::save(&dir, &record).map_err(host_error("saving the container record"))?;
        self.state().containers.insert(id.clone(), record.clone());
        if let Err(e) = self
            .make_bundle(
                &dir,
                &record,
                config,
                sandbox_config,
                &sandbox,
                &image,
                layers,
            )
            .await
        {
            let _ = self.remove(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn make_bundle(
        &self,
        dir: &Path,
        record: &ContainerRecord,
        config: &ContainerConfig,
        sandbox_config: &PodSandboxConfig,
        sandbox: &records::SandboxRecord,
        image: &crate::images::Image,
        layers: Vec<PathBuf>,
    ) -> RuntimeResult<()> {
        let overlay = Overlay {
            lower: layers,
            upper: dir.join("upper"),
            work: dir.join("work"),
            target: dir.join("rootfs"),
        };
        let mounter = self.host.mounter.clone();
        let o = overlay.clone();
        tokio::task::spawn_blocking(move || mounter.mount_overlay(&o))
            .await
            .map_err(|e| RuntimeError::Host {
                action: "mounting the rootfs".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(host_error("mounting the container's rootfs"))?;

        // The sandbox's resolv.conf and hostname, shared by its containers.
        let sandbox_dir = self.sandbox_dir(&sandbox.id);
        let mut config = config.clone();
        for (file, target) in [
            ("resolv.conf", "/etc/resolv.conf"),
            ("hostname", "/etc/hostname"),
        ] {
            if !config.mounts.iter().any(|m| m.container_path == target) {
                config.mounts.push(Mount {
                    container_path: target.into(),
                    host_path: sandbox_dir.join(file),
                    read_only: false,
                });
            }
        }
        let paths = SpecPaths {
            rootfs: overlay.target.clone(),
            netns: sandbox.net.clone(),
            ipcns: sandbox.ipc.clone(),
            utsns: sandbox.uts.clone(),
            cgroups_path: record.cgroup.clone(),
        };
        let mut spec = spec::build(&config, sandbox_config, &image.config, &paths)?;
        if let Some(process) = spec.process_mut()
            && let Some(wanted) = process.oom_score_adj()
        {
            process.set_oom_score_adj(Some(oom_floor().map_or(wanted, |floor| wanted.max(floor))));
        }
        let json = serde_json::to_vec(&spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
        std::fs::write(dir.join("config.json"), json)
            .map_err(host_error("writing the bundle's config.json"))?;
        self.host
            .oci
            .create(
                &record.id,
                dir,
                &record.log_path,
                &self.exits.path(&record.id),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn start(&self, id: &str) -> RuntimeResult<()> {
        let mut record = self.container(id)?;
        self.host.oci.start(id).await?;
        record.started_at_ns = Some(records::now_ns());
        records::save(&self.container_dir(id), &record)
            .map_err(host_error("saving the container record"))?;
        self.state().containers.insert(id.to_owned(), record);
        Ok(())
    }

    pub(super) async fn stop(&self, id: &str, timeout: Duration) -> RuntimeResult<()> {
        let record = self.container(id)?;
        if self.exits.get(id).is_some() {
            return Ok(());
        }
        if record.started_at_ns.is_none() {
            // Created, never started: its init waits in runc's exec fifo.
            self.host.oci.kill(id, "KILL").await?;
        } else if !timeout.is_zero() {
            self.host.oci.kill(id, "TERM").await?;
            if self.exits.wait(id, timeout).await.is_some() {
                return Ok(());
            }
        }
        self.host.oci.kill(id, "KILL").await?;
        // After SIGKILL the shim reports within moments; a container the
        // runtime no longer knows has nothing left to wait for.
        if self.exits.wait(id, Duration::from_secs(10)).await.is_none()
            && self.host.oci.state(id).await?.is_some()
        {
            return Err(RuntimeError::Oci {
                runtime: "oci",
                action: "stop".into(),
                message: format!("container {id} did not exit 10 s after SIGKILL"),
            });
        }
        Ok(())
    }

    pub(super) async fn remove(&self, id: &str) -> RuntimeResult<()> {
        let Ok(record) = self.container(id) else {
            return Ok(());
        };
        if self.exits.get(id).is_none() && self.host.oci.state(id).await?.is_some() {
            self.stop(id, Duration::ZERO).await?;
        }
        self.host.oci.delete(id).await?;
        let dir = self.container_dir(id);
        let mounter = self.host.mounter.clone();
        let rootfs = dir.join("rootfs");
        tokio::task::spawn_blocking(move || mounter.unmount(&rootfs))
            .await
            .map_err(|e| RuntimeError::Host {
                action: "unmounting the rootfs".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(host_error("unmounting the container's rootfs"))?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(host_error(format!("removing {}", dir.display()))(e));
            }
            _ => {}
        }
        self.exits.forget(id);
        let _ = record;
        self.state().containers.remove(id);
        Ok(())
    }

    pub(super) fn status_of(&self, r: &ContainerRecord) -> ContainerStatus {
        let state = match (self.exits.get(&r.id), r.started_at_ns) {
            (Some(exit), started) => {
                let oom = exit.exit_code == 137 && self.host.cgroups.oom_killed(&r.cgroup);
                let reason = if oom {
                    "OOMKilled"
                } else if exit.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                ContainerState::Exited {
                    started_at: started.map(time),
                    finished_at: exit.finished_at(),
                    exit_code: exit.exit_code,
                    reason: reason.into(),
                    message: None,
                }
            }
            (None, Some(started)) => ContainerState::Running {
                started_at: time(started),
            },
            (None, None) => ContainerState::Created,
        };
        ContainerStatus {
            id: r.id.clone(),
            sandbox_id: r.sandbox_id.clone(),
            name: r.name.clone(),
            attempt: r.attempt,
            image: r.image.clone(),
            image_id: r.image_id.clone(),
            state,
            created_at: time(r.created_at_ns),
            log_path: r.log_path.clone(),
        }
    }
}

/// Without CAP_SYS_RESOURCE a process may not lower an oom_score_adj below its
/// own, and the OCI runtime fails the whole start when asked to (seen on
/// machines whose root lacks that capability). Then the lowest score a
/// container can get is the agent's own, as containerd does for rootless runs.
fn oom_floor() -> Option<i32> {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
    if effective & (1 << CAP_SYS_RESOURCE) != 0 {
        return None;
    }
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()?
        .trim()
        .parse()
        .ok()
}
