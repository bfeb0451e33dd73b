//! The runtime over fakes of every host side effect: what it asks of them and
//! what it leaves behind.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::runtime::cgroups::fake::FakeCgroups;
use crate::runtime::cni::fake::FakeCni;
use crate::runtime::mounts::fake::FakeMounter;
use crate::runtime::namespaces::fake::FakeNamespaces;
use crate::runtime::oci::fake::FakeOci;

struct Fakes {
    ns: Arc<FakeNamespaces>,
    mounts: Arc<FakeMounter>,
    cni: Arc<FakeCni>,
    oci: Arc<FakeOci>,
    cgroups: Arc<FakeCgroups>,
}

fn runtime(dir: &Path) -> (LocalRuntime, Fakes) {
    let images = ImageStore::open(&dir.join("images")).unwrap();
    let archive = dir.join("busybox.tar");
    testkit::image::busybox_oci_archive(&archive, "docker.io/library/busybox:latest").unwrap();
    images.import_archive(&archive).unwrap();
    let f = Fakes {
        ns: Arc::default(),
        mounts: Arc::default(),
        cni: Arc::default(),
        oci: Arc::default(),
        cgroups: Arc::default(),
    };
    let host = Host {
        namespaces: f.ns.clone(),
        mounter: f.mounts.clone(),
        cni: f.cni.clone(),
        oci: f.oci.clone(),
        cgroups: f.cgroups.clone(),
    };
    let rt = LocalRuntime::open(&dir.join("rt"), "flotilla/n1", Arc::new(images), host).unwrap();
    (rt, f)
}

fn sandbox_config() -> PodSandboxConfig {
    PodSandboxConfig {
        name: "web".into(),
        namespace: "default".into(),
        uid: "u1".into(),
        hostname: "web".into(),
        cgroup_parent: "kubepods/besteffort/podu1".into(),
        ..Default::default()
    }
}

fn container_config(dir: &Path) -> ContainerConfig {
    ContainerConfig {
        name: "c".into(),
        image: "busybox".into(),
        command: vec!["sleep".into(), "1000".into()],
        log_path: dir.join("logs/c/0.log"),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_pod_runs_stops_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, f) = runtime(dir.path());
    let sandbox = rt.run_pod_sandbox(&sandbox_config()).await.unwrap();
    assert!(sandbox.ready);
    assert_eq!(sandbox.ip, Some("10.42.0.2".parse().unwrap()));
    assert_eq!(
        f.ns.live.lock().unwrap().len(),
        3,
        "net, ipc and uts pinned"
    );

    let id = rt
        .create_container(
            &sandbox.id,
            &container_config(dir.path()),
            &sandbox_config(),
        )
        .await
        .unwrap();
    let bundle: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("rt/containers")
                .join(&id)
                .join("config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        bundle["process"]["args"],
        serde_json::json!(["sleep", "1000"])
    );
    assert_eq!(
        bundle["linux"]["cgroupsPath"],
        format!("/flotilla/n1/kubepods/besteffort/podu1/{id}")
    );
    assert_eq!(
        f.mounts.mounted.lock().unwrap().len(),
        1,
        "one overlay rootfs"
    );
    assert_eq!(
        rt.container_status(&id).await.unwrap().state,
        ContainerState::Created
    );

    rt.start_container(&id).await.unwrap();
    assert!(matches!(
        rt.container_status(&id).await.unwrap().state,
        ContainerState::Running { .. }
    ));
    rt.stop_container(&id, Duration::from_secs(5))
        .await
        .unwrap();
    match rt.container_status(&id).await.unwrap().state {
        ContainerState::Exited {
            exit_code, reason, ..
        } => {
            assert_eq!((exit_code, reason.as_str()), (143, "Error"));
        }
        other => panic!("{other:?}"),
    }

    rt.stop_pod_sandbox(&sandbox.id).await.unwrap();
    rt.remove_pod_sandbox(&sandbox.id).await.unwrap();
    assert!(f.ns.live.lock().unwrap().is_empty(), "namespaces released");
    assert!(
        f.mounts.mounted.lock().unwrap().is_empty(),
        "rootfs unmounted"
    );
    assert!(
        f.cni.attached.lock().unwrap().is_empty(),
        "address released"
    );
    assert!(
        f.oci.containers.lock().unwrap().is_empty(),
        "container deleted"
    );
    assert_eq!(
        *f.cgroups.removed.lock().unwrap(),
        ["/flotilla/n1/kubepods/besteffort/podu1"]
    );
    assert!(rt.list_pod_sandboxes().await.unwrap().is_empty());
    assert!(rt.list_containers(None).await.unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("rt/sandboxes"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("rt/containers"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn a_restarted_runtime_adopts_what_it_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, f) = runtime(dir.path());
    let sandbox = rt.run_pod_sandbox(&sandbox_config()).await.unwrap();
    let id = rt
        .create_container(
            &sandbox.id,
            &container_config(dir.path()),
            &sandbox_config(),
        )
        .await
        .unwrap();
    rt.start_container(&id).await.unwrap();
    drop(rt);

    let host = Host {
        namespaces: f.ns.clone(),
        mounter: f.mounts.clone(),
        cni: f.cni.clone(),
        oci: f.oci.clone(),
        cgroups: f.cgroups.clone(),
    };
    let images = Arc::new(ImageStore::open(&dir.path().join("images")).unwrap());
    let again = LocalRuntime::open(&dir.path().join("rt"), "flotilla/n1", images, host).unwrap();
    let sandboxes = again.list_pod_sandboxes().await.unwrap();
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].id, sandbox.id);
    assert!(sandboxes[0].ready);
    let status = again.container_status(&id).await.unwrap();
    assert!(
        matches!(status.state, ContainerState::Running { .. }),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_missing_image_fails_the_create_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, f) = runtime(dir.path());
    let sandbox = rt.run_pod_sandbox(&sandbox_config()).await.unwrap();
    let mut config = container_config(dir.path());
    config.image = "example.com/missing:1".into();
    let err = rt
        .create_container(&sandbox.id, &config, &sandbox_config())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Image(_)), "{err}");
    assert!(rt.list_containers(None).await.unwrap().is_empty());
    assert!(f.mounts.mounted.lock().unwrap().is_empty());
}
