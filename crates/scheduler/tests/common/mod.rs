//! Starts the real `flotilla server` (control plane only) through testkit, on
//! an ephemeral port with a temp data dir, and gives clients for the admin and
//! for the scheduler's own identity (`system:kube-scheduler`, a client
//! certificate issued here by the cluster CA).

#![allow(dead_code)]

pub mod objects;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use testkit::{Profile, ServerProcess};

pub struct ApiServer {
    /// The `flotilla server` child, killed when this is dropped.
    pub process: ServerProcess,
    pub admin: kube::Client,
    pub scheduler: kube::Client,
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
        Self::start_with(&testkit::flotilla_bin(Profile::Debug)).await
    }

    pub async fn start_with(bin: &Path) -> ApiServer {
        let builder = ServerProcess::builder()
            .bin(bin)
            .arg("--disable-agent")
            .args(own_components_off(bin))
            .env("RUST_LOG", "info");
        let process = tokio::task::spawn_blocking(move || builder.try_start())
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("{e}"));
        let kubeconfig = process.kubeconfig();
        let admin =
            client_from(Kubeconfig::read_from(&kubeconfig).expect("admin kubeconfig")).await;
        let scheduler = client_from(scheduler_kubeconfig(process.data_dir(), &kubeconfig)).await;
        ApiServer {
            process,
            admin,
            scheduler,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid().expect("the server is running")
    }

    pub fn log(&self) -> String {
        self.process.log()
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
