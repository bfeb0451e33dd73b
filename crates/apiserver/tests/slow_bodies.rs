//! A client that sends part of a body and stops is cut off by the server's body
//! timeout, and meanwhile other clients are served. The real HTTPS listener, with
//! Python's `ssl` module as the slow client (it can stop mid-body, which curl
//! cannot be made to do).

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::{Server, ServerConfig};

const SLOW_CLIENT: &str = r#"
import socket, ssl, sys, time
host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host)
s.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
          b"Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n" + b" " * 100000)
started = time.time()
s.settimeout(60)
head = s.recv(4096).decode("latin-1").split("\r\n")[0]
print(head, round(time.time() - started, 1))
"#;

#[tokio::test]
async fn a_stalled_body_is_cut_off_and_others_are_served_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        data_dir: dir.path().join("data"),
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        https_port: 0,
        datastore_endpoint: None,
        token: Some("slow-bodies-test-token".into()),
        node_name: "server".into(),
        node_ip: None,
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".parse().expect("cidr"),
        cluster_dns: Ipv4Addr::new(10, 43, 0, 10),
    };
    let running = Server::start(config).await.expect("server starts");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, running.server.pki.ca_pem()).expect("ca");
    let (cert, key) = running
        .server
        .pki
        .issue_client_cert("system:admin", &["system:masters"])
        .expect("client cert");
    let (cert_path, key_path) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cert_path, cert).expect("cert");
    std::fs::write(&key_path, key).expect("key");
    let url = running.server.server_url.clone();
    let port = running.addr.port().to_string();

    let curl = |path: &str| {
        let (ca, cert_path, key_path, url) =
            (ca.clone(), cert_path.clone(), key_path.clone(), url.clone());
        let path = path.to_string();
        // The server runs on this test's runtime: curl waits on a thread of its own.
        tokio::task::spawn_blocking(move || curl_once(&ca, &cert_path, &key_path, &url, &path))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = curl("/readyz").await.expect("join");
        if got == "200" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never became ready: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let args: Vec<String> = vec![
        "-c".into(),
        SLOW_CLIENT.into(),
        "127.0.0.1".into(),
        port,
        ca.display().to_string(),
        cert_path.display().to_string(),
        key_path.display().to_string(),
    ];
    let slow = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("python3 runs: the slow client is a Python script")
    });
    // While the slow client's body hangs, the server answers others at once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            curl("/api/v1/namespaces/default/configmaps")
                .await
                .expect("join"),
            "200"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let out = slow.await.expect("join");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "slow client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words = printed.split_whitespace();
    assert_eq!(
        (words.next(), words.next()),
        (Some("HTTP/1.1"), Some("504")),
        "{printed}"
    );
    let waited: f64 = words.last().and_then(|w| w.parse().ok()).expect("seconds");
    let idle = apiserver::body::BODY_IDLE_TIMEOUT.as_secs_f64();
    assert!(
        waited >= idle - 1.0 && waited < idle + 5.0,
        "cut off after {waited} s, the idle timeout is {idle} s"
    );
}

/// One GET with the admin certificate: the status code, and curl's error if any.
fn curl_once(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    url: &str,
    path: &str,
) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(ca)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(format!("{url}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
