//! The server on a real etcd (Debian's etcd 3.4) the test starts on loopback ports.

mod common;

#[path = "../../store/tests/common/etcd.rs"]
mod etcd;

use common::Cluster;

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_against_an_etcd_backed_server() {
    let etcd = etcd::EtcdCluster::start(1).await;
    let endpoint = etcd.endpoints().join(",");
    let c = tokio::task::spawn_blocking(move || {
        let c = Cluster::start(&["--datastore-endpoint", &endpoint]);
        c.ok_in(
            None,
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: in-etcd\ndata:\n  a: b\n"),
        );
        let out = c.ok(&["get", "configmap", "in-etcd", "-o", "jsonpath={.data.a}"]);
        assert_eq!(out, "b");
        let ns = c.ok(&["get", "namespaces", "-o", "name"]);
        assert!(ns.contains("namespace/kube-system"), "{ns}");
        c
    })
    .await
    .expect("test body");
    drop(c);
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_share_one_etcd_and_one_ca() {
    let etcd = etcd::EtcdCluster::start(1).await;
    let endpoint = etcd.endpoints().join(",");
    tokio::task::spawn_blocking(move || {
        let args = ["--datastore-endpoint", endpoint.as_str(), "--token", "shared-secret"];
        let a = Cluster::start(&args);
        let b = Cluster::start(&args);
        assert_eq!(
            std::fs::read(a.data.join("tls/server-ca.crt")).expect("ca a"),
            std::fs::read(b.data.join("tls/server-ca.crt")).expect("ca b"),
            "the second server must use the cluster's CA"
        );
        a.ok_in(None, &["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ha\ndata:\n  a: b\n"));
        assert_eq!(b.ok(&["get", "configmap", "ha", "-o", "jsonpath={.data.a}"]), "b");
        // Services created through either server never share a cluster IP.
        let svc = |n: &str| format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {n}\nspec:\n  ports:\n  - port: 80\n");
        for i in 0..5 {
            a.ok_in(None, &["apply", "-f", "-"], Some(&svc(&format!("a{i}"))));
            b.ok_in(None, &["apply", "-f", "-"], Some(&svc(&format!("b{i}"))));
        }
        let ips = a.ok(&["get", "services", "-o", "jsonpath={.items[*].spec.clusterIP}"]);
        let list: Vec<&str> = ips.split_whitespace().collect();
        let unique: std::collections::HashSet<&str> = list.iter().copied().collect();
        assert_eq!(list.len(), 11, "{ips}");
        assert_eq!(unique.len(), list.len(), "duplicate cluster IPs: {ips}");
        // One server going away leaves the other working.
        a.stop();
        b.ok_in(None, &["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n"));
        assert!(b.ok(&["get", "configmaps", "-o", "name"]).contains("configmap/after"));
        // A server with another token is refused the cluster's secrets.
        let err = common::server(&["--token", "other", "--datastore-endpoint", endpoint.as_str()])
            .data_dir(b.data.join("wrong"))
            .try_start()
            .expect_err("a server with another token must not start");
        assert!(err.to_string().contains("exited with"), "{err}");
        assert!(err.log().contains("another token"), "{err}");
    })
    .await
    .expect("test body");
    drop(etcd);
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_etcd_going_away_and_coming_back() {
    let ports = [(etcd::free_port(), etcd::free_port())];
    let etcd1 = etcd::EtcdCluster::start_on(&ports).await;
    let endpoint = etcd1.endpoints().join(",");
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let args = ["--datastore-endpoint".to_string(), endpoint.clone()];
    let (data2, args2) = (data.clone(), args.clone());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args2.iter().map(String::as_str).collect();
        Cluster::start_in(data2, &args).stop();
    })
    .await
    .expect("first start");
    drop(etcd1);
    // Restarted while etcd is down: it serves, and says it is not ready.
    let (data3, args3) = (data.clone(), args.clone());
    let mut c = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args3.iter().map(String::as_str).collect();
        let c = Cluster::spawn_in(data3, &args);
        let start = std::time::Instant::now();
        loop {
            let (ready, text) = c.readyz();
            if !ready
                && (text.contains("store")
                    || text.contains("ServiceUnavailable")
                    || text.contains("503"))
            {
                break;
            }
            assert!(!ready, "ready without etcd: {text}");
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "no answer from /readyz: {text}\n{}",
                c.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        c
    })
    .await
    .expect("restart without etcd");
    // etcd back on the same ports: the server becomes ready by itself.
    let etcd2 = etcd::EtcdCluster::start_on(&ports).await;
    tokio::task::spawn_blocking(move || {
        c.wait_ready(std::time::Duration::from_secs(60));
        c.ok_in(
            None,
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: back\n"),
        );
    })
    .await
    .expect("ready again");
    drop(etcd2);
}
