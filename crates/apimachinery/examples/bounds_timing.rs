//! Times the bounded decoders against serde alone on hostile and ordinary
//! bodies, and JSON patches of 10,000 small operations on documents of
//! growing size: `cargo run --release -p apimachinery --example bounds_timing`.

use std::time::{Duration, Instant};

use apimachinery::{decode, patch};
use serde_json::{Value, json};

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn manifest(target: usize) -> String {
    let mut doc = String::from("apiVersion: v1\nkind: List\nitems:\n");
    let mut i = 0;
    while doc.len() < target {
        doc += &format!(
            "- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: web-{i}\n    labels: {{app: web, tier: \"front\"}}\n  spec:\n    replicas: 3\n    selector:\n      matchLabels:\n        app: web\n    template:\n      metadata:\n        labels:\n          app: web\n      spec:\n        containers:\n        - name: web\n          image: nginx:1.27\n          args: [\"--port=80\", '--verbose']\n          ports:\n          - containerPort: 80\n          env:\n          - name: NOTE\n            value: |\n              line one\n              line two # not a comment\n"
        );
        i += 1;
    }
    doc
}

fn main() {
    let bodies = [
        ("300,000 x '['", "[".repeat(300_000)),
        ("300,000 x '{'", "{".repeat(300_000)),
        ("3 MiB of '['", "[".repeat(3 << 20)),
        ("1 MiB manifest", manifest(1 << 20)),
    ];
    for (name, body) in &bodies {
        let (plain, r) = time(|| serde_yaml_ng::from_str::<serde_json::Value>(body).map(|_| ()));
        let (ours, d) = time(|| decode::yaml(body.as_bytes()).map(|_| ()));
        println!(
            "{name:16} {:>9} bytes  serde_yaml_ng {plain:>12.3?} ({})  decode::yaml {ours:>12.3?} ({})",
            body.len(),
            r.map_or_else(
                |e| e.to_string().chars().take(30).collect::<String>(),
                |()| "ok".into()
            ),
            d.map_or_else(
                |e| e.to_string().chars().take(30).collect::<String>(),
                |()| "ok".into()
            ),
        );
    }
    let json =
        serde_json::to_vec(&decode::yaml(bodies[3].1.as_bytes()).expect("manifest")).expect("json");
    let (plain, _) = time(|| serde_json::from_slice::<serde_json::Value>(&json));
    let (ours, _) = time(|| decode::json(&json));
    println!(
        "{:16} {:>9} bytes  serde_json {plain:>12.3?}  decode::json {ours:>12.3?}",
        "manifest as JSON",
        json.len()
    );

    for fields in [2_000, 20_000, 200_000] {
        let doc: Value = (0..fields)
            .map(|i| (format!("k{i}"), json!("v".repeat(100))))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let ops: Vec<Value> = (0..patch::MAX_JSON_PATCH_OPERATIONS)
            .map(|i| {
                let k = i % fields;
                match i % 4 {
                    0 => json!({"op": "replace", "path": format!("/k{k}"), "value": i}),
                    1 => json!({"op": "add", "path": format!("/a{i}"), "value": [i]}),
                    2 => json!({"op": "move", "from": format!("/a{}", i - 1), "path": format!("/m{i}")}),
                    _ => json!({"op": "copy", "from": format!("/k{k}"), "path": format!("/c{i}")}),
                }
            })
            .collect();
        let body = serde_json::to_vec(&ops).expect("patch");
        let (clone, _) = time(|| doc.clone());
        let (took, r) = time(|| patch::json_patch(&doc, &body).map(|_| ()));
        println!(
            "JSON patch, 10,000 operations on {:>8} bytes: {took:>10.3?} ({}); one clone of the document {clone:.3?}",
            serde_json::to_vec(&doc).map_or(0, |b| b.len()),
            r.map_or_else(|e| e.to_string(), |()| "ok".into()),
        );
    }
    for n in [20_000, 100_000] {
        let doc = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "web", "image": "x"}]}});
        let containers: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("c{i}"), "image": "x"}))
            .collect();
        let body = json!({"spec": {"containers": containers}});
        let (took, r) = time(|| patch::strategic_merge_patch(&doc, &body, "v1", "Pod").map(|_| ()));
        println!(
            "strategic merge patch adding {n} containers ({} bytes): {took:.3?} ({})",
            body.to_string().len(),
            r.map_or_else(|e| e.to_string(), |()| "ok".into()),
        );
    }
}
