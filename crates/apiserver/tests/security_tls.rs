//! The HTTPS listener with a real client (curl): client certificates are
//! optional but verified, h2 is negotiated, streams flow, shutdown ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::auth::Authenticator;
use apiserver::pki::{Pki, ServerSans};
use apiserver::tls::{self, PeerCertificate};
use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::http::HeaderMap;
use axum::routing::get;

struct Files {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs curl against `url` with `args`, returning (success, stdout).
async fn curl(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("curl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn router(authn: Arc<Authenticator>) -> Router {
    Router::new()
        .route(
            "/whoami",
            get(
                move |Extension(peer): Extension<PeerCertificate>, headers: HeaderMap| async move {
                    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
                    match authn.authenticate(peer.0.as_deref(), header) {
                        Ok(Some(user)) => format!("{} {}", user.name, user.groups.join(",")),
                        Ok(None) => "anonymous".to_string(),
                        Err(e) => format!("error: {e}"),
                    }
                },
            ),
        )
        .route(
            "/stream",
            get(|| async {
                // A watch-like body: chunks spaced out in time, then the end.
                let chunks = futures::stream::unfold(0u32, |n| async move {
                    if n == 3 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, std::io::Error>(format!("event{n}\n")), n + 1))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/forever",
            get(|| async {
                let ticks = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::io::Error>("tick\n"), ()))
                });
                Body::from_stream(ticks)
            }),
        )
}

fn setup() -> (Files, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&dir.path().join("tls"), &ServerSans::default()).unwrap();
    let (cert, key) = pki.issue_client_cert("alice", &["devs"]).unwrap();
    let stranger = Pki::load_or_create(&dir.path().join("other"), &ServerSans::default()).unwrap();
    let (stranger_cert, stranger_key) = stranger
        .issue_client_cert("mallory", &["system:masters"])
        .unwrap();
    let files = Files {
        ca: write(dir.path(), "ca.crt", pki.ca_pem()),
        cert: write(dir.path(), "alice.crt", &cert),
        key: write(dir.path(), "alice.key", &key),
        stranger_cert: write(dir.path(), "mallory.crt", &stranger_cert),
        stranger_key: write(dir.path(), "mallory.key", &stranger_key),
        _dir: dir,
    };
    (files, pki)
}

fn args(files: &Files, extra: &[&str], url: &str) -> Vec<String> {
    let mut args = vec!["--cacert".to_string(), files.ca.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url.to_string());
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_real_clients() {
    let (files, pki) = setup();
    let authn =
        Arc::new(Authenticator::new(pki.service_account_key_pem(), Some("jointoken")).unwrap());
    let sa_token = authn
        .issue_service_account_token("default", "app", "uid-1", &[], 600)
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tls::serve(
        listener,
        pki.server_config().unwrap(),
        router(authn),
        async {
            let _ = stop_rx.await;
        },
    ));

    // A client that connects and never speaks TLS must not hold others up.
    let _silent = tokio::net::TcpStream::connect(base.trim_start_matches("https://"))
        .await
        .unwrap();

    let whoami = format!("{base}/whoami");
    let cert = files.cert.display().to_string();
    let key = files.key.display().to_string();
    let with_cert = ["--cert", &cert, "--key", &key];

    let (ok, out) = curl(args(
        &files,
        &[&with_cert[..], &["--http2", "-w", "|%{http_version}"]].concat(),
        &whoami,
    ))
    .await;
    assert!(ok);
    assert_eq!(out, "alice devs,system:authenticated|2");

    let (ok, out) = curl(args(
        &files,
        &[&with_cert[..], &["--http1.1", "-w", "|%{http_version}"]].concat(),
        &whoami,
    ))
    .await;
    assert!(ok);
    assert_eq!(out, "alice devs,system:authenticated|1.1");

    // No certificate is fine: authentication is optional at the TLS layer.
    let (ok, out) = curl(args(
        &files,
        &["--http2", "-w", "|%{http_version}"],
        &whoami,
    ))
    .await;
    assert!(ok);
    assert_eq!(out, "anonymous|2");

    let bearer = format!("Authorization: Bearer {sa_token}");
    let (ok, out) = curl(args(&files, &["-H", &bearer], &whoami)).await;
    assert!(ok);
    assert_eq!(
        out,
        "system:serviceaccount:default:app system:serviceaccounts,system:serviceaccounts:default,system:authenticated"
    );

    // Optional does not mean unverified: another CA's certificate is refused.
    let stranger = [
        "--cert",
        &files.stranger_cert.display().to_string(),
        "--key",
        &files.stranger_key.display().to_string(),
    ]
    .map(str::to_string);
    let mut stranger_args = args(&files, &[], &whoami);
    stranger_args.splice(0..0, stranger);
    let (ok, out) = curl(stranger_args).await;
    assert!(!ok, "a foreign client certificate was accepted: {out}");

    // Streamed bodies arrive whole over h2.
    let (ok, out) = curl(args(&files, &["--http2", "-N"], &format!("{base}/stream"))).await;
    assert!(ok);
    assert_eq!(out, "event0\nevent1\nevent2\n");

    // Shutdown completes even with an endless stream open.
    let forever = args(&files, &["--http2", "-N"], &format!("{base}/forever"));
    let watcher = tokio::spawn(curl(forever));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let (_, ticks) = watcher.await.unwrap();
    assert!(ticks.starts_with("tick\n"), "{ticks:?}");
}
