//! Dry-run over the whole resource table: every resource × mutating verb ×
//! writable subresource answers as a real write would, and writes nothing — the
//! store's revision does not move, so no watch event is sent and no cluster IP
//! or node port is held.

use apimachinery::resources::{BUILTIN, Resource};
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::{Harness, harness};

fn pod_spec() -> Value {
    json!({"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Always"})
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec()})
}

/// The smallest valid body of each built-in kind, without metadata.
fn body_of(r: &Resource) -> Option<Value> {
    let spec = |s: Value| json!({"spec": s});
    let selected = json!({"selector": {"matchLabels": {"app": "x"}}, "template": template()});
    Some(match (r.group.as_ref(), r.kind.as_ref()) {
        ("", "Namespace" | "Node" | "Endpoints" | "ConfigMap" | "Secret" | "ServiceAccount") => {
            json!({})
        }
        ("", "Pod") => spec(pod_spec()),
        ("", "Service") => spec(json!({"selector": {"app": "x"}, "ports": [{"port": 80}]})),
        ("", "Event") => json!({
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Tested", "message": "m", "type": "Normal",
            "source": {"component": "test"},
        }),
        ("", "PersistentVolume") => spec(json!({
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/dry-run"},
        })),
        ("", "PersistentVolumeClaim") => spec(json!({
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
        })),
        ("", "LimitRange") => spec(json!({"limits": [{"type": "Container", "max": {"cpu": "1"}}]})),
        ("", "ResourceQuota") => spec(json!({"hard": {"pods": "10"}})),
        ("", "ReplicationController") => spec(json!({
            "replicas": 1, "selector": {"app": "x"}, "template": template(),
        })),
        ("", "PodTemplate") => json!({"template": template()}),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => spec(selected),
        ("apps", "StatefulSet") => {
            let mut s = selected;
            s["serviceName"] = json!("x");
            spec(s)
        }
        ("apps", "ControllerRevision") => json!({"revision": 1}),
        ("batch", "Job") => {
            let mut t = template();
            t["spec"]["restartPolicy"] = json!("Never");
            spec(json!({"template": t}))
        }
        ("batch", "CronJob") => {
            let mut t = template();
            t["spec"]["restartPolicy"] = json!("Never");
            spec(json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": t}}}))
        }
        ("autoscaling", "HorizontalPodAutoscaler") => spec(json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "maxReplicas": 3,
        })),
        ("coordination.k8s.io", "Lease") => spec(json!({"holderIdentity": "a"})),
        ("discovery.k8s.io", "EndpointSlice") => json!({"addressType": "IPv4", "endpoints": []}),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => json!({"rules": []}),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [],
        }),
        ("networking.k8s.io", "Ingress") => spec(json!({
            "defaultBackend": {"service": {"name": "s", "port": {"number": 80}}},
        })),
        ("networking.k8s.io", "IngressClass") => spec(json!({"controller": "example.com/x"})),
        ("networking.k8s.io", "NetworkPolicy") => spec(json!({"podSelector": {}})),
        ("storage.k8s.io", "StorageClass") => json!({"provisioner": "example.com/x"}),
        ("events.k8s.io", "Event") => json!({
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/x",
            "reportingInstance": "i", "action": "Tested", "reason": "Tested", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
        }),
        ("scheduling.k8s.io", "PriorityClass") => json!({"value": 100}),
        ("policy", "PodDisruptionBudget") => spec(json!({
            "minAvailable": 1, "selector": {"matchLabels": {"app": "x"}},
        })),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => spec(json!({
            "group": "dry.example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                }}}}],
        })),
        _ => return None,
    })
}

/// A full object of resource `r` named `name`.
fn object(r: &Resource, name: &str) -> Value {
    let mut obj = body_of(r).unwrap_or_else(|| {
        panic!(
            "no sample body for {}/{} {}: add one to body_of so dry-run is proven for it",
            r.group, r.version, r.kind
        )
    });
    obj["apiVersion"] = json!(r.api_version());
    obj["kind"] = json!(r.kind);
    let name = if r.kind == "CustomResourceDefinition" {
        "widgets.dry.example.com"
    } else {
        name
    };
    obj["metadata"] = json!({"name": name, "labels": {"app": "x"}});
    obj
}

fn collection(r: &Resource) -> String {
    let root = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    if r.namespaced {
        format!("{root}/namespaces/default/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
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
    let ok = [StatusCode::OK];
    let created = [StatusCode::CREATED];
    let mut covered = 0;
    for r in BUILTIN.iter().filter(|r| !r.is_virtual()) {
        let name = if r.kind == "Namespace" {
            "dry-ns"
        } else {
            "dry"
        };
        let coll = collection(r);
        let obj = object(r, name);
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let item = format!("{coll}/{name}");
        let kind = format!("{}/{}", r.group, r.plural);

        // create
        let rev = revision(&h).await;
        let resp = h.post(&format!("{coll}?dryRun=All"), obj.clone()).await;
        expect_dry(&h, &format!("create {kind}"), resp, &created, rev).await;
        assert_eq!(h.get(&item).await.0, StatusCode::NOT_FOUND, "{kind}");
        let (code, st) = h.post(&coll, obj.clone()).await;
        assert_eq!(code, StatusCode::CREATED, "create {kind}: {st}");
        let (_, stored) = h.get(&item).await;

        // update and the four patch types
        let rev = revision(&h).await;
        let mut changed = stored.clone();
        changed["metadata"]["labels"]["dry"] = json!("run");
        let resp = h.put(&format!("{item}?dryRun=All"), changed).await;
        expect_dry(&h, &format!("update {kind}"), resp, &ok, rev).await;
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
                &h,
                Method::PATCH,
                &format!("{item}?dryRun=All&fieldManager=dry&force=true"),
                patch,
                ct,
            )
            .await;
            expect_dry(&h, &format!("patch {kind} ({ct})"), resp, &ok, rev).await;
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
                    expect_dry(&h, &what, h.put(&path, s).await, &ok, rev).await;
                    let resp = send(
                        &h,
                        Method::PATCH,
                        &path,
                        json!({"status": {}}),
                        "application/merge-patch+json",
                    )
                    .await;
                    expect_dry(&h, &what, resp, &ok, rev).await;
                }
                "scale" => {
                    let (code, mut scale) = h.get(&format!("{item}/scale")).await;
                    assert_eq!(code, StatusCode::OK, "{what}: {scale}");
                    scale["spec"]["replicas"] = json!(7);
                    expect_dry(&h, &what, h.put(&path, scale).await, &ok, rev).await;
                    let resp = send(
                        &h,
                        Method::PATCH,
                        &path,
                        json!({"spec": {"replicas": 9}}),
                        "application/merge-patch+json",
                    )
                    .await;
                    expect_dry(&h, &what, resp, &ok, rev).await;
                }
                "binding" => {
                    let b = json!({"apiVersion": "v1", "kind": "Binding",
                        "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
                    expect_dry(&h, &what, h.post(&path, b).await, &created, rev).await;
                }
                "eviction" => {
                    let e = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": name}, "deleteOptions": {"dryRun": ["All"]}});
                    let resp = h.post(&format!("{item}/{sub}"), e.clone()).await;
                    expect_dry(&h, &what, resp, &created, rev).await;
                    expect_dry(&h, &what, h.post(&path, e).await, &created, rev).await;
                }
                "ephemeralcontainers" => {
                    let mut p = stored.clone();
                    p["spec"]["ephemeralContainers"] = json!([{
                        "name": "debug", "image": "busybox", "terminationMessagePolicy": "File",
                    }]);
                    expect_dry(&h, &what, h.put(&path, p).await, &ok, rev).await;
                }
                "finalize" => {
                    let mut ns = stored.clone();
                    ns["spec"]["finalizers"] = json!([]);
                    expect_dry(&h, &what, h.put(&path, ns).await, &ok, rev).await;
                }
                "token" => {
                    let tr = json!({"apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenRequest", "spec": {"audiences": ["a"]}});
                    expect_dry(&h, &what, h.post(&path, tr).await, &created, rev).await;
                }
                // Streaming and proxy subresources write nothing.
                "log" | "exec" | "attach" | "portforward" | "proxy" => {}
                other => panic!("{kind} has subresource {other} that this test does not know"),
            }
        }
        assert_eq!(h.get(&item).await.1, stored, "{kind} changed by a dry run");

        // delete (query and body), deletecollection
        let resp = h.delete(&format!("{item}?dryRun=All")).await;
        expect_dry(&h, &format!("delete {kind}"), resp, &ok, rev).await;
        let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]});
        let resp = send(&h, Method::DELETE, &item, body.clone(), "application/json").await;
        expect_dry(&h, &format!("delete {kind} (body)"), resp, &ok, rev).await;
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
            &h,
            &format!("deletecollection {kind}"),
            resp,
            collection_ok,
            rev,
        )
        .await;
        let resp = send(&h, Method::DELETE, &coll, body, "application/json").await;
        expect_dry(
            &h,
            &format!("deletecollection {kind} (body)"),
            resp,
            collection_ok,
            rev,
        )
        .await;
        assert_eq!(h.get(&item).await.1, stored, "{kind} changed by a dry run");
        covered += 1;
    }
    assert!(covered > 30, "only {covered} resources covered");
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
