//! Property tests over everything that parses or applies what a client sends:
//! patches, selectors and request bodies. Nothing may panic, and what comes
//! out stays bounded by what went in. Case counts keep the whole file to a few
//! seconds in a debug build, since it runs with every `cargo test`.

use std::collections::BTreeMap;

use apimachinery::decode::{self, DecodeError, MAX_DEPTH, YAML_EXTRA_VALUES};
use apimachinery::patch::{
    MAX_JSON_PATCH_COPY_BYTES, json_patch, merge_patch, strategic_merge_patch,
};
use apimachinery::selectors::{FieldSelector, LabelSelector};
use proptest::prelude::*;
use serde_json::{Value, json};

/// `cases` per property, unless `PROPTEST_CASES` asks for a longer run.
fn config(cases: u32) -> ProptestConfig {
    let env = std::env::var("PROPTEST_CASES").ok();
    ProptestConfig {
        cases: env.and_then(|n| n.parse().ok()).unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn count(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(|x| 1 + count(x)).sum::<usize>(),
        _ => 1,
    }
}

/// Words that mean something to the code under test: keys of built-in kinds,
/// patch directives, pointer tokens.
const WORDS: &[&str] = &[
    "a",
    "b",
    "0",
    "1",
    "-",
    "~0",
    "~1",
    "",
    "spec",
    "metadata",
    "name",
    "image",
    "containers",
    "initContainers",
    "ports",
    "containerPort",
    "env",
    "value",
    "volumes",
    "tolerations",
    "key",
    "template",
    "finalizers",
    "labels",
    "data",
    "$patch",
    "replace",
    "delete",
    "merge",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
    "$bogus",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(String::from),
        1 => "[a-z$/~-]{0,4}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..1000).prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        word().prop_map(Value::String),
    ]
}

/// JSON values at most 5 levels deep with at most ~64 nodes.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Every pointer into `v`, and pointers where something could be added.
fn pointers(v: &Value, at: &str, existing: &mut Vec<String>, new: &mut Vec<String>) {
    existing.push(at.to_string());
    match v {
        Value::Object(m) => {
            new.push(format!("{at}/new"));
            for (k, c) in m {
                pointers(c, &format!("{at}/{}", escape(k)), existing, new);
            }
        }
        Value::Array(a) => {
            new.push(format!("{at}/-"));
            new.push(format!("{at}/{}", a.len()));
            for (i, c) in a.iter().enumerate() {
                pointers(c, &format!("{at}/{i}"), existing, new);
            }
        }
        _ => {}
    }
}

/// A document and a patch for it: mostly operations on paths the document
/// has (which later operations may have moved), now and then malformed ones.
fn document_and_patch() -> impl Strategy<Value = (Value, Vec<Value>)> {
    let object = prop::collection::btree_map(word(), value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    prop_oneof![4 => object, 1 => value()].prop_flat_map(|doc| {
        let (mut existing, mut new) = (Vec::new(), Vec::new());
        pointers(&doc, "", &mut existing, &mut new);
        if existing.len() > 1 {
            existing.remove(0); // the root, which most operations cannot take
        }
        new.extend(existing.iter().cloned());
        let original = doc.clone();
        let op = prop::sample::select(&["add", "remove", "replace", "move", "copy", "test"][..]);
        let operation = (
            op,
            prop::sample::select(existing),
            prop::sample::select(new),
            value(),
            0..100u8,
        )
            .prop_map(move |(op, from, path, value, odd)| {
                let path = if matches!(op, "add" | "move" | "copy") {
                    path
                } else {
                    from.clone()
                };
                // A test mostly of what the document held before the patch.
                let value = match (op, original.pointer(&path)) {
                    ("test", Some(v)) if odd % 2 == 0 => v.clone(),
                    _ => value,
                };
                match odd {
                    0 => json!({"op": op, "path": "no-slash", "from": from, "value": value}),
                    1 => json!({"op": op, "value": value}),
                    2 => value,
                    3 => json!({"op": "x", "path": path}),
                    _ => json!({"op": op, "path": path, "from": from, "value": value}),
                }
            });
        (Just(doc), prop::collection::vec(operation, 0..8))
    })
}

/// Operations that grow the document by copying parts of it into itself.
fn growing_operations() -> impl Strategy<Value = Vec<Value>> {
    let step = prop::sample::select(vec![
        json!({"op": "copy", "from": "/z", "path": "/z/-"}),
        json!({"op": "copy", "from": "/z/0", "path": "/z/-"}),
        json!({"op": "copy", "from": "/z", "path": "/z/0"}),
        json!({"op": "move", "from": "/z/0", "path": "/z/-"}),
        json!({"op": "copy", "from": "/z", "path": "/y"}),
    ]);
    (value(), prop::collection::vec(step, 1..40)).prop_map(|(v, steps)| {
        let mut ops = vec![json!({"op": "add", "path": "/z", "value": [v]})];
        ops.extend(steps);
        ops
    })
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}, "finalizers": ["a", "b"]},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
            "env": [{"name": "A", "value": "1"}]}], "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "k", "operator": "Exists"}]}})
}

fn kinds() -> impl Strategy<Value = (&'static str, &'static str, Value)> {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod()["spec"].clone()}}});
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["x"]},
        "data": {"a": "1", "b": "2"}});
    let base = prop::sample::select(vec![
        ("v1", "Pod", pod()),
        ("apps/v1", "Deployment", deployment),
        ("v1", "ConfigMap", config_map),
    ]);
    (base, value(), prop::bool::weighted(0.2))
        .prop_map(|((v, k, doc), other, swap)| (v, k, if swap { other } else { doc }))
}

fn words(from: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::sample::select(from), 0..4).prop_map(|w| json!(w))
}

/// A strategic merge patch shaped like the kinds' own objects, its directives
/// mostly well formed.
fn strategic_patch() -> impl Strategy<Value = Value> {
    let names = &["web", "sidecar", "a", ""][..];
    let container = (
        prop::sample::select(names),
        prop::option::of(value()),
        prop::option::of(prop::sample::select(
            &["merge", "delete", "replace", "bogus"][..],
        )),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(name, image, directive, nameless)| {
            let mut c = json!({"name": name});
            if let Some(image) = image {
                c["image"] = image;
            }
            if let Some(d) = directive {
                c["$patch"] = json!(d);
            }
            if nameless {
                c = json!({"image": "x"});
            }
            c
        });
    let finalizers = || words(&["a", "b", "c"]);
    let parts = (
        prop::option::of(prop::collection::vec(container, 0..4)),
        prop::option::of(finalizers()),
        prop::option::of(finalizers()),
        prop::option::of(prop::collection::vec(prop::sample::select(names), 0..4)),
        prop::option::of(words(&["replicas", "template", "selector"])),
        prop::option::of(value()),
    );
    parts.prop_map(|(containers, fins, remove, order, retain, other)| {
        let mut p = json!({"metadata": {}, "spec": {"template": {"spec": {}}}});
        if let Some(c) = containers {
            p["spec"]["containers"] = json!(c);
            p["spec"]["template"]["spec"]["containers"] = json!(c);
        }
        if let Some(f) = fins {
            p["metadata"]["finalizers"] = f;
        }
        if let Some(r) = remove {
            p["metadata"]["$deleteFromPrimitiveList/finalizers"] = r;
        }
        if let Some(o) = order {
            let o: Vec<Value> = o.iter().map(|n| json!({"name": n})).collect();
            p["spec"]["$setElementOrder/containers"] = json!(o);
            p["spec"]["template"]["spec"]["$setElementOrder/containers"] = json!(o);
        }
        if let Some(r) = retain {
            p["spec"]["$retainKeys"] = r;
        }
        if let Some(v) = other {
            p["data"] = v;
        }
        p
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_patch_never_panics_and_stays_bounded((doc, ops) in document_and_patch()) {
        let body = serde_json::to_vec(&ops).expect("patch");
        if let Ok(out) = json_patch(&doc, &body) {
            prop_assert!(depth(&out) <= MAX_DEPTH.max(depth(&doc)));
            prop_assert!(len(&out) <= len(&doc) + body.len() + MAX_JSON_PATCH_COPY_BYTES);
        }
    }

    #[test]
    fn merge_patch_output_is_no_larger_than_its_inputs(doc in value(), patch in value()) {
        let out = merge_patch(&doc, &patch);
        prop_assert!(len(&out) <= len(&doc) + len(&patch), "{out}");
    }

    #[test]
    fn strategic_merge_patch_never_panics_and_stays_bounded(
        (api_version, kind, doc) in kinds(),
        patch in prop_oneof![4 => strategic_patch(), 1 => value()],
    ) {
        if let Ok(out) = strategic_merge_patch(&doc, &patch, api_version, kind) {
            prop_assert!(len(&out) <= len(&doc) + len(&patch), "{out}");
            prop_assert!(depth(&out) <= depth(&doc).max(depth(&patch)));
        }
    }

    #[test]
    fn label_selectors_never_panic(
        text in prop_oneof![
            "[a-z0-9=!,()<> ./_-]{0,24}",
            prop::collection::vec(
                prop::sample::select(&["a", "b/c", "in", "notin", "(", ")", ",", "=", "==", "!=", "!", " ", "<", ">", "1", "x.y"][..]),
                0..12,
            ).prop_map(|t| t.concat()),
            any::<String>(),
        ],
        labels in prop::collection::btree_map("[a-z/]{1,3}", "[a-z0-9]{0,3}", 0..4),
        metav1 in value(),
    ) {
        if let Ok(s) = LabelSelector::parse(&text) {
            let _ = s.matches_map(&labels);
            let _ = s.to_string();
        }
        let _ = LabelSelector::from_metav1(&metav1);
        let _ = LabelSelector::from_metav1(&json!({"matchExpressions": [metav1]}));
    }

    #[test]
    fn field_selectors_never_panic(
        text in prop_oneof![
            "[a-z.=!,\\\\ ]{0,24}",
            any::<String>(),
        ],
        fields in prop::collection::btree_map("[a-z.]{1,4}", "[a-z]{0,3}", 0..4),
    ) {
        if let Ok(s) = FieldSelector::parse(&text) {
            let fields: BTreeMap<String, String> = fields;
            let _ = s.matches(&|f| fields.get(f).cloned());
            let _ = s.to_string();
        }
    }

    #[test]
    fn decode_json_never_panics(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "[\\[\\]{}\":,0-9a-z ]{0,64}".prop_map(String::into_bytes),
            value().prop_map(|v| v.to_string().into_bytes()),
        ],
    ) {
        if let Ok(v) = decode::json(&bytes) {
            prop_assert!(depth(&v) <= MAX_DEPTH);
        }
    }

    #[test]
    fn decode_yaml_never_panics_and_stays_bounded(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "[\\[\\]{}'\"#:,&*!|>?%\\- \n\ta-c0-9]{0,64}".prop_map(String::into_bytes),
            any::<String>().prop_map(String::into_bytes),
        ],
    ) {
        match decode::yaml(&bytes) {
            Ok(v) => {
                prop_assert!(depth(&v) <= MAX_DEPTH);
                // UTF-16 input may take up to twice its bytes as UTF-8 text.
                prop_assert!(count(&v) <= 2 * bytes.len() + YAML_EXTRA_VALUES);
            }
            Err(DecodeError::TooManyValues { limit }) => {
                prop_assert!(limit <= 2 * bytes.len() + YAML_EXTRA_VALUES);
            }
            Err(_) => {}
        }
    }
}

proptest! {
    // Each case copies up to the 3 MiB limit, so fewer of them.
    #![proptest_config(config(64))]

    #[test]
    fn json_patch_copies_stay_within_the_copy_limit(doc in value(), ops in growing_operations()) {
        let body = serde_json::to_vec(&ops).expect("patch");
        if let Ok(out) = json_patch(&doc, &body) {
            prop_assert!(len(&out) <= len(&doc) + body.len() + MAX_JSON_PATCH_COPY_BYTES);
        }
    }
}
