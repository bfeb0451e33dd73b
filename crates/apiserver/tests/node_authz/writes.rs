//! What a node may write: NodeRestriction admission through the real path.

use serde_json::json;

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restriction_limits_nodes_leases_and_pods() {
    let c = Cluster::start().await;
    c.populate().await;

    // Other nodes' objects.
    let body = c
        .expect(
            As::Node1,
            "POST",
            "/api/v1/nodes",
            Some(json!({"metadata": {"name": "n3"}})),
            403,
        )
        .await;
    assert_eq!(
        message(&body),
        r#"nodes "n3" is forbidden: node "n1" is not allowed to modify node "n3""#
    );
    c.expect(
        As::Node1,
        "PATCH",
        "/api/v1/nodes/n2/status",
        Some(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        403,
    )
    .await;
    c.expect(
        As::Node1,
        "PATCH",
        "/api/v1/nodes/n2",
        Some(json!({"metadata": {"labels": {"a": "b"}}})),
        403,
    )
    .await;

    // Its own Node: status yes; restricted labels, taints and the pod CIDR no.
    c.expect(
        As::Node1,
        "PATCH",
        "/api/v1/nodes/n1/status",
        Some(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        200,
    )
    .await;
    let body = c
        .expect(
            As::Node1,
            "PATCH",
            "/api/v1/nodes/n1",
            Some(
                json!({"metadata": {"labels": {"node-restriction.kubernetes.io/secure": "true"}}}),
            ),
            403,
        )
        .await;
    assert_eq!(
        message(&body),
        r#"nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/secure"#
    );
    c.expect(
        As::Node1,
        "PATCH",
        "/api/v1/nodes/n1",
        Some(json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}})),
        403,
    )
    .await;
    c.expect(
        As::Node1,
        "PATCH",
        "/api/v1/nodes/n1",
        Some(json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "z1", "example.com/rack": "r7"}}})),
        200,
    )
    .await;
    let body = c
        .expect(
            As::Node1,
            "PATCH",
            "/api/v1/nodes/n1",
            Some(json!({"spec": {"podCIDR": "10.99.0.0/24", "podCIDRs": ["10.99.0.0/24"]}})),
            422,
        )
        .await;
    assert!(
        message(&body).contains("spec.podCIDRs: Forbidden"),
        "{body}"
    );
    let body = c
        .expect(
            As::Node1,
            "PATCH",
            "/api/v1/nodes/n1",
            Some(json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}})),
            403,
        )
        .await;
    assert!(
        message(&body).ends_with(r#"node "n1" is not allowed to modify taints"#),
        "{body}"
    );

    // Its own Lease in kube-node-lease only.
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    let lease = |name: &str| json!({"metadata": {"name": name}, "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}});
    let body = c
        .expect(As::Node1, "POST", leases, Some(lease("n2")), 403)
        .await;
    assert_eq!(
        message(&body),
        r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#
    );
    c.expect(
        As::Node1,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/team/leases",
        Some(lease("n1")),
        403,
    )
    .await;
    let created = c
        .expect(As::Node1, "POST", leases, Some(lease("n1")), 201)
        .await;
    let mut renewed = created.clone();
    renewed["spec"]["renewTime"] = json!("2030-01-01T00:00:00.000000Z");
    c.expect(
        As::Node1,
        "PUT",
        &format!("{leases}/n1"),
        Some(renewed),
        200,
    )
    .await;
    c.expect(As::Admin, "POST", leases, Some(lease("n2")), 201)
        .await;
    c.expect(As::Node1, "GET", &format!("{leases}/n2"), None, 403)
        .await;
    c.expect(
        As::Node1,
        "PUT",
        &format!("{leases}/n2"),
        Some(lease("n2")),
        403,
    )
    .await;

    // Pods: status of its own, never another node's; no creating, deleting or
    // evicting pods it does not run.
    let status = json!({"status": {"phase": "Running"}});
    c.expect(
        As::Node1,
        "PATCH",
        "/api/v1/namespaces/team/pods/web/status",
        Some(status.clone()),
        200,
    )
    .await;
    c.expect(
        As::Node1,
        "PATCH",
        "/api/v1/namespaces/team/pods/far/status",
        Some(status),
        403,
    )
    .await;
    c.expect(
        As::Node1,
        "DELETE",
        "/api/v1/namespaces/team/pods/far",
        None,
        403,
    )
    .await;
    c.expect(
        As::Node1,
        "POST",
        "/api/v1/namespaces/team/pods/far/eviction",
        Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "far"}})),
        403,
    )
    .await;
    let mut pod = web_pod();
    pod["metadata"]["name"] = json!("mine");
    let body = c
        .expect(
            As::Node1,
            "POST",
            "/api/v1/namespaces/team/pods",
            Some(pod),
            403,
        )
        .await;
    assert!(
        message(&body).contains("can only create mirror pods"),
        "{body}"
    );
    c.expect(
        As::Node1,
        "DELETE",
        "/api/v1/namespaces/team/pods/web",
        None,
        200,
    )
    .await;
}
