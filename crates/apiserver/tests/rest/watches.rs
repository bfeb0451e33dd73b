//! Watches: resumption, expiry, per-node pod channels.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use futures::StreamExt;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn watch_resumes_from_a_revision_and_filters() {
    let h = harness().await;
    let (_, a) = h.post(CMS, cm("w1")).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    h.post(CMS, cm("w2")).await;
    h.delete(&format!("{CMS}/w1")).await;
    let events = watch_lines(&h, &format!("{CMS}?watch=true&resourceVersion={rv}"), 2).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "w2");
    assert_eq!(events[1]["type"], "DELETED");
    assert_eq!(events[1]["object"]["metadata"]["name"], "w1");
    let del_rv: i64 = events[1]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("int");
    assert!(del_rv > rv.parse::<i64>().expect("int"));

    // Without a resourceVersion, the current state comes first as ADDED.
    let events = watch_lines(&h, &format!("{CMS}?watch=true"), 1).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "w2");
}

#[tokio::test]
async fn watch_from_before_the_cache_is_gone() {
    let h = harness().await;
    h.post(CMS, cm("early")).await;
    // A cache loaded later (as after a restart) starts at the current revision:
    // older history is not in it, so resuming from revision 1 is 410 Gone.
    let fresh = apiserver::cache::Cache::start(h.api.store.clone())
        .await
        .expect("cache");
    let err = fresh
        .watch("configmaps", "/registry/configmaps/", Some(1), None)
        .err()
        .expect("too old");
    assert_eq!(err.code(), StatusCode::GONE, "{err}");
    assert!(
        fresh
            .watch(
                "configmaps",
                "/registry/configmaps/",
                Some(fresh.revision()),
                None
            )
            .is_ok()
    );
}

/// A watch of one node's pods (a kubelet's) is fed from that node's channel:
/// it sees pods bound to the node, and changes of other pods never reach it.
#[tokio::test]
async fn node_pod_watches_get_only_their_node() {
    let h = harness().await;
    let pods = "/api/v1/namespaces/default/pods";
    let rev = h.api.cache.revision();
    let mut live = h
        .api
        .cache
        .watch("pods", "/registry/pods/", Some(rev), Some("n1"))
        .expect("watch")
        .live;
    let watch = format!("{pods}?watch=true&fieldSelector=spec.nodeName%3Dn1&resourceVersion={rev}");
    let events = {
        let h = &h;
        let watch = watch.clone();
        let lines = async move { watch_lines(h, &watch, 2).await };
        let writes = async move {
            for (name, node) in [("a", "n1"), ("b", "n2")] {
                let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
                assert_eq!(h.post(pods, pod).await.0, StatusCode::CREATED);
                let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                    "target": {"kind": "Node", "name": node}});
                let (code, st) = h.post(&format!("{pods}/{name}/binding"), binding).await;
                assert_eq!(code, StatusCode::CREATED, "{st}");
            }
            let (code, st) = h.delete(&format!("{pods}/a?gracePeriodSeconds=0")).await;
            assert_eq!(code, StatusCode::OK, "{st}");
        };
        let (events, ()) = tokio::join!(lines, writes);
        events
    };
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "a");
    assert_eq!(events[0]["object"]["spec"]["nodeName"], "n1");
    assert_eq!(events[1]["type"], "DELETED");
    assert_eq!(events[1]["object"]["metadata"]["name"], "a");
    // The node's channel carried a's bind and delete only.
    let mut seen = Vec::new();
    while let Ok(c) = live.try_recv() {
        seen.push((
            c.object.key.clone(),
            c.object.field("spec.nodeName").unwrap_or("").to_string(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            ("/registry/pods/default/a".to_string(), "n1".to_string()),
            ("/registry/pods/default/a".to_string(), "n1".to_string()),
        ]
    );
}

/// What 2,000 kubelet-style watches (one node's pods each) cost while 2,000 pods
/// are created and bound: a measurement, not a check.
/// `cargo test --release -p apiserver --test rest node_watch_fan_out_cost -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --nocapture to read the cost"]
async fn node_watch_fan_out_cost() {
    const NODES: usize = 2_000;
    const PODS: usize = 2_000;
    let h = Arc::new(harness().await);
    let pods = "/api/v1/namespaces/default/pods";
    let rev = h.api.cache.revision();
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    for i in 0..NODES {
        let path =
            format!("{pods}?watch=true&fieldSelector=spec.nodeName%3Dn{i}&resourceVersion={rev}");
        let resp = h.raw(Method::GET, &path, None, "application/json").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let tx = count_tx.clone();
        tokio::spawn(async move {
            let mut stream = resp.into_body().into_data_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                let lines = chunk.iter().filter(|b| **b == b'\n').count();
                tx.send_modify(|n| *n += lines);
            }
        });
    }
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .expect("fields")
            .split_whitespace()
            .collect();
        (f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime")) / 100.0
    };
    let (cpu0, t0) = (cpu(), std::time::Instant::now());
    futures::stream::iter(0..PODS)
        .for_each_concurrent(32, |i| {
            let h = h.clone();
            async move {
                let name = format!("p{i}");
                let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
                assert_eq!(h.post(pods, pod).await.0, StatusCode::CREATED);
                let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                    "target": {"kind": "Node", "name": format!("n{}", i % NODES)}});
                assert_eq!(
                    h.post(&format!("{pods}/{name}/binding"), binding).await.0,
                    StatusCode::CREATED
                );
            }
        })
        .await;
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        count_rx.wait_for(|n| *n >= PODS),
    )
    .await
    .expect("every watch got its pods in time")
    .expect("counter");
    println!(
        "{NODES} node watches, {PODS} pods created and bound: {:.2} s, {:.2} CPU-s in the process",
        t0.elapsed().as_secs_f64(),
        cpu() - cpu0
    );
}
