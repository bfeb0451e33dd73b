//! Starts the real `flotilla server` (control plane only) on an ephemeral port
//! with a temp data dir, and gives clients for the admin and for the
//! scheduler's own identity (`system:kube-scheduler`, a client certificate
//! issued here by the cluster CA).

#![allow(dead_code)]

pub mod objects;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct ApiServer {
    child: KillOnDrop,
    _tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub admin: kube::Client,
    pub scheduler: kube::Client,
}

/// `target/<profile>/flotilla`, built by `cargo build -p flotilla` (or
/// `--release`); `FLOTILLA_BIN` overrides.
pub fn flotilla_bin(profile: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("FLOTILLA_BIN") {
        return PathBuf::from(p);
    }
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(profile)
        .join("flotilla");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p flotilla{}` first",
        bin.display(),
        if profile == "release" {
            " --release"
        } else {
            ""
        }
    );
    bin
}

/// Scheduler logs in the test output (`RUST_LOG` filters; default warn).
pub fn init_logs() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

impl ApiServer {
    pub async fn start() -> ApiServer {
        init_logs();
        Self::start_with(&flotilla_bin("debug")).await
    }

    pub async fn start_with(bin: &Path) -> ApiServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let mut child = Command::new(bin)
            .args([
                "server",
                "--https-listen-port",
                "0",
                "--disable-agent",
                "--data-dir",
            ])
            .arg(&data)
            .args(own_components_off(bin))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start flotilla server");
        let stderr = child.stderr.take().expect("stderr");
        // Killed when dropped: if anything below fails, or with the ApiServer.
        let child = KillOnDrop(child);
        let (ready_tx, ready_rx) = mpsc::channel();
        let log_path = data.join("server.log");
        // Copies the server's log to a file (so the pipe never fills) and
        // reports the line that says the store is reachable.
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(log_path).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if line.contains("API server ready") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let ready =
            tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(60)))
                .await
                .expect("join");
        if ready.is_err() {
            let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
            panic!("flotilla server did not become ready:\n{log}");
        }
        let kubeconfig = data.join("kubeconfig.yaml");
        let admin =
            client_from(Kubeconfig::read_from(&kubeconfig).expect("admin kubeconfig")).await;
        let scheduler = client_from(scheduler_kubeconfig(&data, &kubeconfig)).await;
        ApiServer {
            child,
            _tmp: tmp,
            data,
            admin,
            scheduler,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }
}

/// The server process, killed (only this PID) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tests run their own scheduler, and no node agent heartbeats for the
/// nodes they create: the server's scheduler and controller manager (which
/// would mark those nodes unreachable) are turned off where the binary has
/// the flags.
fn own_components_off(bin: &Path) -> Vec<&'static str> {
    let help = Command::new(bin).args(["server", "--help"]).output();
    let help = help
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    ["--disable-scheduler", "--disable-controller-manager"]
        .into_iter()
        .filter(|flag| help.contains(flag))
        .collect()
}

async fn client_from(kc: Kubeconfig) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    kube::Client::try_from(config).expect("client")
}

/// The admin kubeconfig with the user swapped for `system:kube-scheduler`.
fn scheduler_kubeconfig(data: &Path, admin: &Path) -> Kubeconfig {
    let tls = data.join("tls");
    let ca_cert = std::fs::read_to_string(tls.join("server-ca.crt")).expect("ca cert");
    let ca_key = std::fs::read_to_string(tls.join("server-ca.key")).expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &ca_cert,
        rcgen::KeyPair::from_pem(&ca_key).expect("ca key"),
    )
    .expect("issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "system:kube-scheduler");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let admin = std::fs::read_to_string(admin).expect("admin kubeconfig");
    let mut out = String::new();
    for line in admin.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("client-certificate-data:") {
            out.push_str(&format!(
                "{indent}client-certificate-data: {}\n",
                b64(&cert.pem())
            ));
        } else if trimmed.starts_with("client-key-data:") {
            out.push_str(&format!(
                "{indent}client-key-data: {}\n",
                b64(&key.serialize_pem())
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Kubeconfig::from_yaml(&out).expect("scheduler kubeconfig")
}
