//! A real `flotilla server` (started through testkit) on an ephemeral port, the
//! controller manager running
//! in this process as `system:kube-controller-manager`, and a stand-in for the
//! node agent (and, while there is none, the scheduler) on fake nodes.

#![allow(dead_code)]

pub mod nodes;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::bail;
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use testkit::ServerProcess;

/// How long any one condition may take to come true.
pub const LIMIT: Duration = Duration::from_secs(60);

pub fn obj<K: DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).expect("valid object")
}

pub struct Cluster {
    /// The server process, killed when the cluster is dropped.
    pub server: ServerProcess,
    pub data: PathBuf,
    pub kubeconfig: PathBuf,
    pub admin: Client,
    controllers: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The server goes when its field is dropped, after this.
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
    }
}

/// Options tuned for tests: short node grace so a dead node shows quickly.
pub fn test_options() -> controllers::ControllerOptions {
    controllers::ControllerOptions {
        identity: format!("test-{}", std::process::id()),
        node_monitor_grace_period: Duration::from_secs(4),
        workers: 4,
        ..Default::default()
    }
}

impl Cluster {
    /// Starts the server and the controller manager with `opts`.
    pub async fn start_with(opts: controllers::ControllerOptions) -> anyhow::Result<Cluster> {
        let mut c = Cluster::start_server().await?;
        let client = c.client_as("system:kube-controller-manager").await?;
        c.controllers = Some(tokio::spawn(controllers::run(client, opts)));
        Ok(c)
    }

    pub async fn start() -> anyhow::Result<Cluster> {
        Cluster::start_with(test_options()).await
    }

    /// Starts the server only.
    pub async fn start_server() -> anyhow::Result<Cluster> {
        let builder = ServerProcess::builder()
            .args(["--disable-agent", "--node-name", "server-node"])
            // The controller manager under test runs in this process with test
            // options, and the stand-in node agent binds pods.
            .args(["--disable-controller-manager", "--disable-scheduler"]);
        let server = tokio::task::spawn_blocking(move || builder.try_start()).await??;
        let data = server.data_dir().to_path_buf();
        let kubeconfig = server.kubeconfig();
        let admin = client_from(&kubeconfig, None).await?;
        Ok(Cluster {
            server,
            data,
            kubeconfig,
            admin,
            controllers: None,
        })
    }

    /// A client authenticated as the admin but acting as `user`.
    pub async fn client_as(&self, user: &str) -> anyhow::Result<Client> {
        client_from(&self.kubeconfig, Some(user)).await
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl on PATH")
    }

    /// Runs kubectl (blocking, off the async workers) and returns stdout, failing
    /// with both streams when it fails.
    /// Writes `manifest` (JSON or YAML) to a file and `kubectl apply`s it.
    pub async fn apply(&self, manifest: &serde_json::Value) -> anyhow::Result<String> {
        let path = self.data.join(format!(
            "manifest-{}.json",
            std::process::id() ^ rand_suffix()
        ));
        std::fs::write(&path, serde_json::to_vec_pretty(manifest)?)?;
        let path = path.to_string_lossy().into_owned();
        self.kubectl_ok(&["apply", "-f", &path]).await
    }

    pub async fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .stdin(Stdio::null())
                .output()
        })
        .await??;
        if !out.status.success() {
            bail!(
                "kubectl failed ({}):\nstdout: {}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name}
            }))?;
        Api::<k8s_openapi::api::core::v1::Namespace>::all(self.admin.clone())
            .create(&Default::default(), &ns)
            .await?;
        Ok(())
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

async fn client_from(path: &Path, impersonate: Option<&str>) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(path)?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    if let Some(user) = impersonate {
        config.auth_info.impersonate = Some(user.to_string());
    }
    Ok(Client::try_from(config)?)
}

/// Waits until the objects `api` lists (with `lp`) satisfy `done`, re-checking on
/// every watch event; fails after `limit` showing what was last seen.
pub async fn wait_list<K>(
    api: Api<K>,
    lp: watcher::Config,
    limit: Duration,
    what: &str,
    done: impl Fn(&[K]) -> bool,
) -> anyhow::Result<Vec<K>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, lp).default_backoff().reflect(writer);
    futures::pin_mut!(stream);
    let waiting = async {
        while let Some(ev) = stream.next().await {
            // The store is complete only from the first InitDone on.
            if !matches!(
                ev,
                Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_))
            ) {
                continue;
            }
            let items: Vec<K> = reader.state().iter().map(|o| (**o).clone()).collect();
            if done(&items) {
                return items;
            }
        }
        Vec::new()
    };
    match tokio::time::timeout(limit, waiting).await {
        Ok(items) => Ok(items),
        Err(_) => {
            let items: Vec<K> = reader.state().iter().map(|o| (**o).clone()).collect();
            bail!(
                "timed out after {limit:?} waiting for {what}; last seen: {}",
                serde_json::to_string_pretty(
                    &items
                        .iter()
                        .map(|o| serde_json::to_value(o).ok())
                        .collect::<Vec<_>>()
                )
                .unwrap_or_default()
            )
        }
    }
}

/// Waits until one object satisfies `done` (absent objects are `None`).
pub async fn wait_object<K>(
    api: Api<K>,
    name: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(Option<&K>) -> bool,
) -> anyhow::Result<Option<K>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug
        + Send
        + Sync
        + 'static,
{
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let items = wait_list(api, cfg, limit, what, |items| done(items.first())).await?;
    Ok(items.into_iter().next())
}

pub fn labels_param(selector: &str) -> ListParams {
    ListParams::default().labels(selector)
}

/// Installs a log subscriber once, honouring RUST_LOG.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            // kube's client logs an ERROR for every failed request; the tests
            // expect some (conflicts, 404s after deletes).
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into()),
        )
        .with_test_writer()
        .try_init();
}
