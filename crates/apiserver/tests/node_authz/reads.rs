//! What a node may read.

use std::time::{Duration, Instant};

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_reads_only_what_its_pods_reference() {
    let c = Cluster::start().await;
    c.populate().await;

    // What pods on n1 reference, one object at a time.
    c.expect(
        As::Node1,
        "GET",
        "/api/v1/namespaces/team/secrets/web-secret",
        None,
        200,
    )
    .await;
    c.expect(
        As::Node1,
        "GET",
        "/api/v1/namespaces/team/configmaps/web-config",
        None,
        200,
    )
    .await;
    let list = c
        .expect(
            As::Node1,
            "GET",
            "/api/v1/namespaces/team/secrets?fieldSelector=metadata.name%3Dweb-secret",
            None,
            200,
        )
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    c.expect(
        As::Node1,
        "GET",
        "/api/v1/namespaces/team/configmaps?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dweb-config",
        None,
        200,
    )
    .await;

    // Secrets of pods on other nodes, unreferenced ones, and whole lists are refused.
    let body = c
        .expect(
            As::Node1,
            "GET",
            "/api/v1/namespaces/team/secrets/far-secret",
            None,
            403,
        )
        .await;
    assert_eq!(
        message(&body),
        r#"secrets "far-secret" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "team": no relationship found between node 'n1' and this object"#
    );
    assert_eq!(body["reason"], "Forbidden");
    for path in [
        "/api/v1/namespaces/team/secrets/unused",
        "/api/v1/secrets",
        "/api/v1/namespaces/team/secrets",
        "/api/v1/namespaces/team/configmaps",
        "/api/v1/configmaps?fieldSelector=metadata.name%3Dweb-config",
        "/api/v1/namespaces/team/secrets?fieldSelector=metadata.name%3Dfar-secret",
        "/api/v1/namespaces/team/secrets?watch=true&timeoutSeconds=1",
        "/api/v1/namespaces/team/serviceaccounts/app",
    ] {
        c.expect(As::Node1, "GET", path, None, 403).await;
    }
    c.expect(
        As::Node1,
        "DELETE",
        "/api/v1/namespaces/team/secrets/web-secret",
        None,
        403,
    )
    .await;

    // Its own Node object only, by name or by a one-name field selector.
    c.expect(As::Node1, "GET", "/api/v1/nodes/n1", None, 200)
        .await;
    c.expect(
        As::Node1,
        "GET",
        "/api/v1/nodes?fieldSelector=metadata.name%3Dn1",
        None,
        200,
    )
    .await;
    let body = c
        .expect(As::Node1, "GET", "/api/v1/nodes/n2", None, 403)
        .await;
    assert!(
        message(&body).ends_with("node 'n1' cannot read 'n2', only its own Node object"),
        "{body}"
    );
    c.expect(As::Node1, "GET", "/api/v1/nodes", None, 403).await;

    // A user without roles gets nothing; an admin gets everything.
    c.expect(
        As::Alice,
        "GET",
        "/api/v1/namespaces/team/secrets/web-secret",
        None,
        403,
    )
    .await;
    c.expect(
        As::Admin,
        "GET",
        "/api/v1/namespaces/team/secrets/unused",
        None,
        200,
    )
    .await;

    // Once the pod is gone, so is the node's access to what it referenced.
    c.expect(
        As::Admin,
        "DELETE",
        "/api/v1/namespaces/team/pods/web?gracePeriodSeconds=0",
        None,
        200,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _) = c
            .call(
                As::Node1,
                "GET",
                "/api/v1/namespaces/team/secrets/web-secret",
                None,
            )
            .await;
        if code == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "access outlived the pod: {code}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
