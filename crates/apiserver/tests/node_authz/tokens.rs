//! TokenRequests: by a node, and bodies of every shape.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_tokens_only_for_its_pods() {
    let c = Cluster::start().await;
    c.populate().await;
    let web_uid = c.uid("/api/v1/namespaces/team/pods/web").await;
    let far_uid = c.uid("/api/v1/namespaces/team/pods/far").await;
    let n1_uid = c.uid("/api/v1/nodes/n1").await;
    let token_of =
        |ns: &str, sa: &str| format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token");

    // A cluster-admin account no pod on n1 uses, in another namespace.
    let body = c
        .expect(
            As::Node1,
            "POST",
            &token_of("kube-system", "root"),
            Some(token_request(None)),
            403,
        )
        .await;
    assert!(
        message(&body).ends_with("no relationship found between node 'n1' and this object"),
        "{body}"
    );
    // The account of a pod on another node.
    c.expect(
        As::Node1,
        "POST",
        &token_of("team", "builder"),
        Some(token_request(Some(("far", &far_uid)))),
        403,
    )
    .await;
    // Its own pod's account, but not bound to a pod, or bound without a uid,
    // or bound to a pod on another node.
    let body = c
        .expect(
            As::Node1,
            "POST",
            &token_of("team", "app"),
            Some(token_request(None)),
            403,
        )
        .await;
    assert_eq!(
        message(&body),
        r#"serviceaccounts "app" is forbidden: node requested token not bound to a pod"#
    );
    c.expect(
        As::Node1,
        "POST",
        &token_of("team", "app"),
        Some(token_request(Some(("web", "")))),
        403,
    )
    .await;
    let body = c
        .expect(
            As::Node1,
            "POST",
            &token_of("team", "app"),
            Some(token_request(Some(("far", &far_uid)))),
            403,
        )
        .await;
    assert!(
        message(&body)
            .ends_with("node requested token bound to a pod scheduled on a different node"),
        "{body}"
    );

    // Bound to its own pod: issued, and it names the pod and its node.
    let issued = c
        .expect(
            As::Node1,
            "POST",
            &token_of("team", "app"),
            Some(token_request(Some(("web", &web_uid)))),
            201,
        )
        .await;
    let token = issued["status"]["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let k8s = claims(&token);
    assert_eq!(k8s["pod"], json!({"name": "web", "uid": web_uid}));
    assert_eq!(k8s["node"], json!({"name": "n1", "uid": n1_uid}));
    assert_eq!(issued["spec"]["expirationSeconds"], 3600);
    assert_eq!(issued["spec"]["boundObjectRef"]["name"], "web");
    let (code, review) = whoami(&c, &token).await;
    assert_eq!(code, 201, "{review}");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:team:app"
    );
    assert_eq!(
        review["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([web_uid])
    );

    // The token dies with its pod, and a new pod of the same name does not revive it.
    c.expect(
        As::Admin,
        "DELETE",
        "/api/v1/namespaces/team/pods/web?gracePeriodSeconds=0",
        None,
        200,
    )
    .await;
    c.admin_create("/api/v1/namespaces/team/pods", web_pod())
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _) = whoami(&c, &token).await;
        if code == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the token outlived its pod: {code}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A plain user may not ask for tokens at all.
    c.expect(
        As::Alice,
        "POST",
        &token_of("team", "app"),
        Some(token_request(None)),
        403,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_bodies_are_checked() {
    let c = Cluster::start().await;
    c.populate().await;
    let web_uid = c.uid("/api/v1/namespaces/team/pods/web").await;
    let path = "/api/v1/namespaces/team/serviceaccounts/app/token";
    let with_spec = |spec: Value| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});

    // Durations: at least 10 minutes, at most 2^32 seconds.
    for (seconds, why) in [
        (
            json!(i64::MAX),
            "may not specify a duration larger than 2^32 seconds",
        ),
        (
            json!(4_294_967_297_i64),
            "may not specify a duration larger than 2^32 seconds",
        ),
        (
            json!(599),
            "may not specify a duration less than 10 minutes",
        ),
        (json!(-1), "may not specify a duration less than 10 minutes"),
    ] {
        let body = c
            .expect(
                As::Admin,
                "POST",
                path,
                Some(with_spec(json!({"expirationSeconds": seconds}))),
                422,
            )
            .await;
        assert_eq!(
            message(&body),
            format!(
                r#"TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: {seconds}: {why}"#
            )
        );
        assert_eq!(
            body["details"]["causes"][0]["field"],
            "spec.expirationSeconds"
        );
    }
    let issued = c
        .expect(
            As::Admin,
            "POST",
            path,
            Some(with_spec(json!({"expirationSeconds": 4_294_967_296_i64}))),
            201,
        )
        .await;
    assert_eq!(issued["spec"]["expirationSeconds"], 4_294_967_296_i64);

    // Bodies of the wrong shape are a 400 naming the field, never a dropped connection.
    for (spec, field) in [
        (json!("x"), "spec"),
        (json!([1, 2]), "spec"),
        (
            json!({"expirationSeconds": "600"}),
            "spec.expirationSeconds",
        ),
        (
            json!({"expirationSeconds": 600.5}),
            "spec.expirationSeconds",
        ),
        (json!({"audiences": "api"}), "spec.audiences"),
        (json!({"boundObjectRef": ["Pod"]}), "spec.boundObjectRef"),
    ] {
        let body = c
            .expect(As::Admin, "POST", path, Some(with_spec(spec)), 400)
            .await;
        assert!(message(&body).contains(field), "{body}");
    }

    // The bound object must exist, with the uid given.
    let body = c
        .expect(
            As::Admin,
            "POST",
            path,
            Some(token_request(Some(("gone", "")))),
            404,
        )
        .await;
    assert_eq!(message(&body), r#"pods "gone" not found"#);
    let body = c
        .expect(
            As::Admin,
            "POST",
            path,
            Some(token_request(Some(("web", "not-the-uid")))),
            409,
        )
        .await;
    assert_eq!(
        message(&body),
        r#"Operation cannot be fulfilled on Pod "web": the UID in the bound object reference (not-the-uid) does not match the UID in record. The object might have been deleted and then recreated"#
    );
    let body = c
        .expect(
            As::Admin,
            "POST",
            path,
            Some(with_spec(json!({"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}))),
            400,
        )
        .await;
    assert_eq!(
        message(&body),
        "cannot bind token to object of type apps/v1, Kind=Deployment"
    );
    // A pod running as another account.
    c.expect(
        As::Admin,
        "POST",
        "/api/v1/namespaces/team/serviceaccounts/builder/token",
        Some(token_request(Some(("web", &web_uid)))),
        400,
    )
    .await;
    // A secret binding carries the secret and lives as long as it does.
    let secret_uid = c.uid("/api/v1/namespaces/team/secrets/unused").await;
    let issued = c
        .expect(
            As::Admin,
            "POST",
            path,
            Some(with_spec(json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "unused", "uid": secret_uid}}))),
            201,
        )
        .await;
    let token = issued["status"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(claims(&token)["secret"]["name"], "unused");
    assert_eq!(whoami(&c, &token).await.0, 201);
    c.expect(
        As::Admin,
        "DELETE",
        "/api/v1/namespaces/team/secrets/unused",
        None,
        200,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while whoami(&c, &token).await.0 != 401 {
        assert!(Instant::now() < deadline, "the token outlived its secret");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
