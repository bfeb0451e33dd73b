//! The node agent: registers this machine as a Node, keeps its Lease and
//! conditions fresh, and runs the pods bound to it as real Linux containers, as
//! the kubelet does.
//!
//! Like the scheduler and the controllers, it is an API client only (brief,
//! invariant 1). Every host side effect sits behind a small trait with a real
//! implementation and a fake (invariant 6):
//!
//! - [`images`]: the node's image store: OCI archives imported or images
//!   pulled from registries, layers unpacked once, content-addressed and
//!   digest-verified.
//! - [`runtime`]: a CRI-shaped [`runtime::Runtime`] whose default implementation
//!   runs in this process: a pod sandbox of bind-mounted namespaces, CNI for its
//!   network, an overlayfs rootfs per container and an OCI bundle run by `runc`
//!   or `crun` through a per-container shim.
//! - `node`: registration, the Lease heartbeat and node status.
//! - `workers`: one task per pod bound here, driven by a watch and by
//!   container exits.

mod error;
pub mod images;
mod network;
mod node;
mod options;
pub mod pods;
pub mod runtime;
mod server;
mod workers;

use std::sync::Arc;

use tokio::sync::watch;

/// The Kubernetes version this agent speaks for (as the API server's /version).
pub const KUBELET_VERSION: &str = "v1.33.0";

pub use error::{Error, Result};
pub use options::{EvictionHard, KubeletOptions, OciRuntimeKind, ServingTls};
pub use server::KUBELET_CLIENT_USER;

use runtime::{
    BridgeNetwork, Host, HostCgroups, HostMounter, HostNamespaces, LocalRuntime, OciCli,
};

/// Runs the node agent until it fails or the process ends.
pub async fn run(client: kube::Client, opts: KubeletOptions) -> Result<()> {
    let opts = Arc::new(opts);
    let root = opts.root_dir.clone();
    std::fs::create_dir_all(&root).map_err(Error::io("creating", &root))?;
    if opts.oci_runtime == OciRuntimeKind::Crun {
        let cgroup_root = std::path::Path::new("/sys/fs/cgroup");
        runtime::hugetlb::ensure_v1_hierarchy(cgroup_root)
            .map_err(Error::io("preparing cgroups for crun under", cgroup_root))?;
    }
    let machine = node::Machine::read(&root);
    let images = Arc::new(images::ImageStore::open(&root.join("image-store"))?);
    import_dropped_archives(&images, &root.join("images"));
    let puller = images::Puller::new(images.clone(), &opts.insecure_registries)?;
    node::register(&client, &opts, &machine).await?;
    let (network_ready, ready_rx) = watch::channel(false);
    let mut heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        opts.clone(),
        machine,
        images.clone(),
        ready_rx,
    ));
    let pod_cidr = tokio::select! {
        cidr = node::wait_for_pod_cidr(&client, &opts.node_name) => cidr?,
        r = &mut heartbeat => return r.map_err(|e| Error::Config(format!("heartbeat: {e}")))?,
    };
    tracing::info!(node = %opts.node_name, %pod_cidr, "pod network");
    let held: Vec<String> = [&opts.cluster_cidr, &opts.service_cidr]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    network::LocalRoutes::hold(&network::IpRoutes, &held)
        .map_err(|e| Error::Config(format!("keeping pod and service addresses local: {e}")))?;
    let runtime_root = root.join("runtime");
    let mounter: Arc<dyn runtime::Mounter> = Arc::new(HostMounter);
    let host = Host {
        namespaces: Arc::new(HostNamespaces),
        mounter: mounter.clone(),
        cni: Arc::new(BridgeNetwork {
            bin_dir: opts.cni_bin_dir.clone(),
            data_dir: root.join("cni"),
            bridge: BridgeNetwork::bridge_name(&opts.node_name),
            subnet: pod_cidr,
            network_name: "flotilla".into(),
        }),
        oci: Arc::new(OciCli {
            binary: opts.oci_runtime.binary(),
            root: runtime_root.join("oci"),
            shim: opts.shim_binary.clone(),
        }),
        cgroups: Arc::new(HostCgroups::default()),
    };
    let cgroup_root = format!("flotilla/{}", opts.node_name);
    let runtime = Arc::new(LocalRuntime::open(
        &runtime_root,
        &cgroup_root,
        images,
        host,
    )?);
    let _ = network_ready.send(true);
    let endpoint = async {
        match &opts.tls {
            Some(tls) => {
                let addr = std::net::SocketAddr::new(opts.node_ip, opts.port);
                server::serve(addr, tls, runtime.clone()).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = workers::run(client, opts.clone(), runtime.clone(), machine, mounter, puller) => r,
        r = endpoint => r,
        r = heartbeat => r.map_err(|e| Error::Config(format!("heartbeat: {e}")))?,
    }
}

/// Imports every `*.tar` dropped into `dir` (as k3s does with its
/// `agent/images`), so air-gapped nodes start with their images.
fn import_dropped_archives(images: &images::ImageStore, dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    files.sort();
    for file in files {
        match images.import_archive(&file) {
            Ok(names) => tracing::info!(file = %file.display(), ?names, "imported images"),
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "importing images"),
        }
    }
}
