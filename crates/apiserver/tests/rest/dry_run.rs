//! Dry-run over the whole resource table: every resource × mutating verb ×
//! writable subresource answers as a real write would, and writes nothing — the
//! store's revision does not move, so no watch event is sent and no cluster IP
//! or node port is held.

use apimachinery::resources::{BUILTIN, Resource};
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::{Harness, harness};
use crate::samples::{collection, object};

/// Waits until the definition at `item` has its Established condition.
async fn established(h: &Harness, item: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, crd) = h.get(item).await;
        let conditions = crd["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{item} never established: {crd}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn revision(h: &Harness) -> u64 {
    h.api.store.current_revision().await.expect("revision") as u64
}

async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    body: Value,
    content_type: &str,
) -> (StatusCode, Value) {
    h.call(method, path, Some(body), content_type).await
}

/// Asserts that a dry-run request answered `want` and left the store untouched.
async fn expect_dry(
    h: &Harness,
    what: &str,
    (code, body): (StatusCode, Value),
    want: &[StatusCode],
    rev: u64,
) {
    assert!(want.contains(&code), "{what}: {code} {body}");
    assert_eq!(revision(h).await, rev, "{what} wrote to the store");
}

#[tokio::test]
async fn dry_run_writes_nothing_for_any_resource_verb_or_subresource() {
    let h = harness().await;
    let mut covered = 0;
    for r in BUILTIN.iter().filter(|r| !r.is_virtual()) {
        let name = if r.kind == "Namespace" {
            "dry-ns"
        } else {
            "dry"
        };
        sweep(&h, r, object(r, name)).await;
        covered += 1;
    }
    assert!(covered > 30, "only {covered} resources covered");
}

#[tokio::test]
async fn dry_run_writes_nothing_for_custom_resources() {
    let h = harness().await;
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd = BUILTIN
        .iter()
        .find(|r| r.kind == "CustomResourceDefinition")
        .expect("crd resource");
    let (code, st) = h.post(crds, object(crd, "")).await;
    assert_eq!(code, StatusCode::CREATED, "{st}");
    established(&h, &format!("{crds}/widgets.dry.example.com")).await;
    let r = crate::harness::served(&h, "dry.example.com", "v1", "widgets").await;
    let widget = json!({"apiVersion": "dry.example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "labels": {"app": "x"}}, "spec": {"replicas": 1}});
    sweep(&h, &r, widget).await;
}

/// Every mutating verb and writable subresource of `r`, dry-run, on `obj`.
async fn sweep(h: &Harness, r: &Resource, obj: Value) {
    let ok = [StatusCode::OK];
    let created = [StatusCode::CREATED];
    let is_builtin = apimachinery::resources::builtin(&r.group, &r.version, &r.plural).is_some();
    {
        let coll = collection(r);
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let item = format!("{coll}/{name}");
        let kind = format!("{}/{}", r.group, r.plural);

        // create
        let rev = revision(h).await;
        let resp = h.post(&format!("{coll}?dryRun=All"), obj.clone()).await;
        expect_dry(h, &format!("create {kind}"), resp, &created, rev).await;
        assert_eq!(h.get(&item).await.0, StatusCode::NOT_FOUND, "{kind}");
        let (code, st) = h.post(&coll, obj.clone()).await;
        assert_eq!(code, StatusCode::CREATED, "create {kind}: {st}");
        if r.kind == "CustomResourceDefinition" {
            // The server marks a new definition Established by a write of its own.
            established(h, &item).await;
        }
        let (_, stored) = h.get(&item).await;

        // update and the four patch types
        let rev = revision(h).await;
        let mut changed = stored.clone();
        changed["metadata"]["labels"]["dry"] = json!("run");
        let resp = h.put(&format!("{item}?dryRun=All"), changed).await;
        expect_dry(h, &format!("update {kind}"), resp, &ok, rev).await;
        let label = json!({"metadata": {"labels": {"dry": "run"}}});
        for (ct, patch) in [
            ("application/merge-patch+json", label.clone()),
            ("application/strategic-merge-patch+json", label.clone()),
            (
                "application/json-patch+json",
                json!([{"op": "add", "path": "/metadata/labels/dry", "value": "run"}]),
            ),
            (
                "application/apply-patch+yaml",
                json!({"apiVersion": r.api_version(), "kind": r.kind,
                    "metadata": {"name": name, "labels": {"dry": "run"}}}),
            ),
        ] {
            let resp = send(
                h,
                Method::PATCH,
                &format!("{item}?dryRun=All&fieldManager=dry&force=true"),
                patch,
                ct,
            )
            .await;
            // Strategic merge needs a built-in type (415 for custom resources, as
            // in Kubernetes).
            let want: &[StatusCode] = if ct.contains("strategic") && !is_builtin {
                &[StatusCode::UNSUPPORTED_MEDIA_TYPE]
            } else {
                &ok
            };
            expect_dry(h, &format!("patch {kind} ({ct})"), resp, want, rev).await;
        }
        assert_eq!(h.get(&item).await.1, stored, "{kind} changed by a dry run");

        // writable subresources
        for sub in r.subresources.iter() {
            let path = format!("{item}/{sub}?dryRun=All");
            let what = format!("{sub} of {kind}");
            match *sub {
                "status" => {
                    let mut s = stored.clone();
                    s["status"] = json!({});
                    expect_dry(h, &what, h.put(&path, s).await, &ok, rev).await;
                    let resp = send(
                        h,
                        Method::PATCH,
                        &path,
                        json!({"status": {}}),
                        "application/merge-patch+json",
                    )
                    .await;
                    expect_dry(h, &what, resp, &ok, rev).await;
                }
                "scale" => {
                    let (code, mut scale) = h.get(&format!("{item}/scale")).await;
                    assert_eq!(code, StatusCode::OK, "{what}: {scale}");
                    scale["spec"]["replicas"] = json!(7);
                    expect_dry(h, &what, h.put(&path, scale).await, &ok, rev).await;
                    let resp = send(
                        h,
                        Method::PATCH,
                        &path,
                        json!({"spec": {"replicas": 9}}),
                        "application/merge-patch+json",
                    )
                    .await;
                    expect_dry(h, &what, resp, &ok, rev).await;
                }
                "binding" => {
                    let b = json!({"apiVersion": "v1", "kind": "Binding",
                        "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
                    expect_dry(h, &what, h.post(&path, b).await, &created, rev).await;
                }
                "eviction" => {
                    let e = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": name}, "deleteOptions": {"dryRun": ["All"]}});
                    let resp = h.post(&format!("{item}/{sub}"), e.clone()).await;
                    expect_dry(h, &what, resp, &created, rev).await;
                    expect_dry(h, &what, h.post(&path, e).await, &created, rev).await;
                }
                "ephemeralcontainers" => {
                    let mut p = stored.clone();
                    p["spec"]["ephemeralContainers"] = json!([{
                        "name": "debug", "image": "busybox", "terminationMessagePolicy": "File",
                    }]);
                    expect_dry(h, &what, h.put(&path, p).await, &ok, rev).await;
                }
                "finalize" => {
                    let mut ns = stored.clone();
                    ns["spec"]["finalizers"] = json!([]);
                    expect_dry(h, &what, h.put(&path, ns).await, &ok, rev).await;
                }
                "token" => {
                    let tr = json!({"apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenRequest", "spec": {"audiences": ["a"]}});
                    let resp = h.post(&path, tr).await;
                    assert_eq!(
                        resp.1["status"]["token"], "",
                        "{what}: a dry run issued a token"
                    );
                    expect_dry(h, &what, resp, &created, rev).await;
                }
                // Streaming and proxy subresources write nothing.
                "log" | "exec" | "attach" | "portforward" | "proxy" => {}
                other => panic!("{kind} has subresource {other} that this test does not know"),
            }
        }
        assert_eq!(h.get(&item).await.1, stored, "{kind} changed by a dry run");

        // delete (query and body), deletecollection
        let resp = h.delete(&format!("{item}?dryRun=All")).await;
        expect_dry(h, &format!("delete {kind}"), resp, &ok, rev).await;
        let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]});
        let resp = send(h, Method::DELETE, &item, body.clone(), "application/json").await;
        expect_dry(h, &format!("delete {kind} (body)"), resp, &ok, rev).await;
        let collection_ok = if r.verbs.contains(&"deletecollection") {
            &ok
        } else {
            &[StatusCode::METHOD_NOT_ALLOWED]
        };
        let resp = h
            .call(
                Method::DELETE,
                &format!("{coll}?dryRun=All&labelSelector=app%3Dx"),
                None,
                "application/json",
            )
            .await;
        expect_dry(
            h,
            &format!("deletecollection {kind}"),
            resp,
            collection_ok,
            rev,
        )
        .await;
        let resp = send(h, Method::DELETE, &coll, body, "application/json").await;
        expect_dry(
            h,
            &format!("deletecollection {kind} (body)"),
            resp,
            collection_ok,
            rev,
        )
        .await;
        assert_eq!(h.get(&item).await.1, stored, "{kind} changed by a dry run");
    }
}

#[tokio::test]
async fn dry_run_values_other_than_all_are_refused() {
    let h = harness().await;
    let rev = revision(&h).await;
    for v in ["true", "1", "all", "None"] {
        let (code, st) = h
            .post(
                &format!("{}?dryRun={v}", crate::harness::CMS),
                crate::harness::cm("y"),
            )
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}: {st}");
        assert_eq!(st["reason"], "Invalid");
        assert!(
            st["message"]
                .as_str()
                .unwrap_or("")
                .contains("dryRun: Unsupported value"),
            "{st}"
        );
    }
    assert_eq!(revision(&h).await, rev);
    let body = Bytes::from(json!({"dryRun": ["true"]}).to_string());
    h.post(crate::harness::CMS, crate::harness::cm("y")).await;
    let rev = revision(&h).await;
    let resp = h
        .raw(
            Method::DELETE,
            &format!("{}/y", crate::harness::CMS),
            Some(body),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(revision(&h).await, rev);
}
