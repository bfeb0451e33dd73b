use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn apply(doc: &Value, ops: &[Value]) -> Result<Value, PatchError> {
    json_patch(doc, &serde_json::to_vec(ops).expect("patch"))
}

fn copy(from: &str, path: &str) -> Value {
    json!({"op": "copy", "from": from, "path": path})
}

#[test]
fn more_than_ten_thousand_operations_are_refused_before_any_applies() {
    // The first operation fails, so applying anything would report that instead.
    let mut ops = vec![json!({"op": "test", "path": "/a", "value": 2})];
    ops.resize(
        MAX_JSON_PATCH_OPERATIONS + 1,
        json!({"op": "add", "path": "/b", "value": 1}),
    );
    assert_eq!(
        apply(&json!({"a": 1}), &ops),
        Err(PatchError::TooLarge(
            "The allowed maximum operations in a JSON patch is 10000, got 10001".into()
        ))
    );
    ops.pop();
    assert!(matches!(
        apply(&json!({"a": 1}), &ops),
        Err(PatchError::Apply(_))
    ));
    ops[0] = json!({"op": "test", "path": "/a", "value": 1});
    assert_eq!(apply(&json!({"a": 1}), &ops), Ok(json!({"a": 1, "b": 1})));
}

#[test]
fn doubling_a_value_with_copy_is_refused() {
    // Twelve doublings of 1 KiB copy 4 MiB in all: over the 3 MiB limit.
    let mut ops = vec![json!({"op": "add", "path": "/z", "value": ["x".repeat(1024)]})];
    ops.extend((0..12).map(|_| copy("/z", "/z/-")));
    let r = apply(&json!({}), &ops);
    assert!(
        matches!(&r, Err(PatchError::Apply(m)) if m.starts_with("operation '/12'") && m.ends_with("exceeds the limit 3145728")),
        "{r:?}"
    );
    ops.truncate(11);
    let out = apply(&json!({}), &ops).expect("ten doublings copy 1 MiB");
    assert_eq!(out["z"].as_array().map(Vec::len), Some(11));

    // The probe that took 24 GB: thirty doublings.
    let mut ops = vec![json!({"op": "add", "path": "/z", "value": [1]})];
    ops.extend((0..30).map(|_| copy("/z", "/z/-")));
    let start = Instant::now();
    assert!(matches!(apply(&json!({}), &ops), Err(PatchError::Apply(_))));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn copies_add_up_across_operations() {
    // Each copy is 100,002 bytes of JSON: 31 fit in 3 MiB, 32 do not.
    let doc = json!({"s": "x".repeat(100_000), "l": []});
    let mut ops: Vec<Value> = (0..31).map(|_| copy("/s", "/l/-")).collect();
    let out = apply(&doc, &ops).expect("31 copies");
    assert_eq!(out["l"].as_array().map(Vec::len), Some(31));
    ops.push(copy("/s", "/l/-"));
    assert!(matches!(apply(&doc, &ops), Err(PatchError::Apply(_))));
}

#[test]
fn many_small_operations_on_a_large_document_stay_fast() {
    // 20,000 fields of 100 bytes: 2 MB. Copying or serializing the document
    // for every one of 10,000 operations would take minutes.
    let doc: Value = (0..20_000)
        .map(|i| (format!("k{i}"), json!("v".repeat(100))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let ops: Vec<Value> = (0..MAX_JSON_PATCH_OPERATIONS)
        .map(|i| match i % 4 {
            0 => json!({"op": "replace", "path": format!("/k{i}"), "value": i}),
            1 => json!({"op": "copy", "from": format!("/k{i}"), "path": format!("/c{i}")}),
            2 => json!({"op": "move", "from": format!("/k{i}"), "path": format!("/m{i}")}),
            _ => json!({"op": "test", "path": format!("/k{i}"), "value": "v".repeat(100)}),
        })
        .collect();
    let start = Instant::now();
    let out = apply(&doc, &ops).expect("applies");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out["k0"], 0);
    assert_eq!(out["c1"], out["k1"]);
    assert_eq!(out.get("k2"), None);
}

#[test]
fn values_may_not_nest_deeper_than_a_decoder_reads() {
    let nest = |n: usize| (0..n).fold(json!(1), |v, _| json!([v]));
    // The patch's own nesting leaves room for values 125 levels deep.
    let doc = json!({"a": {"b": {"c": {}}}});
    let ok = apply(
        &doc,
        &[json!({"op": "add", "path": "/a/b/c/d", "value": nest(MAX_DEPTH - 4)})],
    );
    assert!(ok.is_ok(), "{ok:?}");
    for op in ["add", "replace"] {
        let deep = apply(
            &doc,
            &[json!({"op": op, "path": "/a/b/c", "value": {"d": nest(MAX_DEPTH - 3)}})],
        );
        assert_eq!(
            deep,
            Err(PatchError::Apply(
                "operation '/0' failed at path '/a/b/c': the result would nest more than 127 levels deep"
                    .into()
            ))
        );
    }
    // A copy into itself doubles the depth.
    let doc = json!({"a": nest(70)});
    let mut inner = String::from("/a");
    for _ in 0..70 {
        inner.push_str("/0");
    }
    assert!(matches!(
        apply(&doc, &[copy("/a", &inner)]),
        Err(PatchError::Apply(m)) if m.contains("levels deep")
    ));
}

#[test]
fn moves_may_not_build_a_deep_document_step_by_step() {
    // Each round moves the document's deep part under 61 more levels: without
    // a check, 10,000 operations could nest values hundreds of thousands of
    // levels deep, and dropping such a value overflows the stack. /d nests 62
    // levels after the first round, 123 after the second; the third round's
    // move (operation 7) would put it at 62 + 123.
    let chain = (0..60).fold(json!({}), |v, _| json!({"a": v}));
    let down: String = "/a".repeat(60);
    let mut ops = Vec::new();
    for _ in 0..5 {
        ops.push(json!({"op": "add", "path": "/n", "value": chain}));
        ops.push(json!({"op": "move", "from": "/d", "path": format!("/n{down}/d")}));
        ops.push(json!({"op": "move", "from": "/n", "path": "/d"}));
    }
    let r = apply(&json!({"d": {}}), &ops);
    assert!(
        matches!(&r, Err(PatchError::Apply(m)) if m.starts_with("operation '/7'") && m.contains("levels deep")),
        "{r:?}"
    );
    // Moving values up or sideways needs no look at them.
    let ok = apply(
        &json!({"d": {"x": {"y": 1}}}),
        &[json!({"op": "move", "from": "/d/x", "path": "/x"})],
    );
    assert_eq!(ok, Ok(json!({"d": {}, "x": {"y": 1}})));
}

#[test]
fn errors_name_the_failing_operation() {
    let r = apply(
        &json!({"a": 1}),
        &[
            json!({"op": "add", "path": "/b", "value": 2}),
            json!({"op": "remove", "path": "/nope"}),
        ],
    );
    assert_eq!(
        r,
        Err(PatchError::Apply(
            "operation '/1' failed at path '/nope': path is invalid".into()
        ))
    );
}
