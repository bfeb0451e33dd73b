use serde_json::{Value, json};

use super::meta;
use super::*;

fn sample() -> Value {
    json!({
        "s": "text", "empty": "", "n": 7, "neg": -3, "big": u64::MAX, "f": 1.5,
        "t": true, "no": false, "nul": null, "arr": [1, "two"], "obj": {"k": "v"},
        "deep": {"a": [{"b": "c"}]},
    })
}

#[test]
fn present_values_of_the_right_type_are_read() {
    let v = sample();
    assert_eq!(str_at(&v, "s"), "text");
    assert_eq!(str_opt(&v, "empty"), Some(""));
    assert_eq!(str_ptr(&v, "/deep/a/0/b"), "c");
    assert_eq!(str_ptr_opt(&v, "/obj/k"), Some("v"));
    assert!(bool_at(&v, "t"));
    assert!(bool_ptr(&v, "/t"));
    assert_eq!(i64_at(&v, "n"), Some(7));
    assert_eq!(i64_at(&v, "neg"), Some(-3));
    assert_eq!(i64_ptr(&v, "/n"), Some(7));
    assert_eq!(f64_at(&v, "f"), Some(1.5));
    assert_eq!(f64_at(&v, "n"), Some(7.0));
    assert_eq!(array_at(&v, "arr"), &[json!(1), json!("two")]);
    assert_eq!(array_ptr(&v, "/deep/a").len(), 1);
    assert_eq!(object_at(&v, "obj").map(|m| m.len()), Some(1));
    assert!(object_ptr(&v, "/deep/a/0").is_some());
    assert_eq!(entries_at(&v, "obj").count(), 1);
    assert_eq!(child(&v, "obj"), &json!({"k": "v"}));
    assert_eq!(child_ptr(&v, "/deep/a/0/b"), "c");
    assert!(has(&v, "no"));
    assert!(has(&v, "empty"));
}

#[test]
fn absent_values_read_as_missing() {
    let v = sample();
    for key in ["missing", "nul"] {
        assert_eq!(str_at(&v, key), "");
        assert_eq!(str_opt(&v, key), None);
        assert!(!bool_at(&v, key));
        assert_eq!(i64_at(&v, key), None);
        assert_eq!(f64_at(&v, key), None);
        assert!(array_at(&v, key).is_empty());
        assert!(object_at(&v, key).is_none());
        assert_eq!(entries_at(&v, key).count(), 0);
        assert!(child(&v, key).is_null());
        assert!(!has(&v, key));
    }
    for p in [
        "/missing",
        "/nul",
        "/deep/a/5/b",
        "/obj/k/x",
        "no-leading-slash",
    ] {
        assert_eq!(str_ptr(&v, p), "");
        assert_eq!(str_ptr_opt(&v, p), None);
        assert!(!bool_ptr(&v, p));
        assert_eq!(i64_ptr(&v, p), None);
        assert!(array_ptr(&v, p).is_empty());
        assert!(object_ptr(&v, p).is_none());
        assert!(child_ptr(&v, p).is_null());
    }
}

#[test]
fn wrong_typed_values_read_as_missing() {
    let v = sample();
    assert_eq!(str_at(&v, "n"), "");
    assert_eq!(str_opt(&v, "t"), None);
    assert_eq!(str_ptr(&v, "/arr"), "");
    assert!(!bool_at(&v, "s"));
    assert!(!bool_ptr(&v, "/n"));
    assert_eq!(i64_at(&v, "s"), None);
    assert_eq!(i64_at(&v, "f"), None);
    assert_eq!(i64_at(&v, "big"), None);
    assert_eq!(i64_ptr(&v, "/t"), None);
    assert_eq!(f64_at(&v, "s"), None);
    assert!(array_at(&v, "obj").is_empty());
    assert!(array_ptr(&v, "/s").is_empty());
    assert!(object_at(&v, "arr").is_none());
    assert!(object_ptr(&v, "/s").is_none());
    assert_eq!(entries_at(&v, "arr").count(), 0);
}

#[test]
fn reading_a_key_of_a_non_object_reads_as_missing() {
    for v in [
        json!(null),
        json!("s"),
        json!(3),
        json!(true),
        json!([1, 2]),
    ] {
        assert_eq!(str_at(&v, "k"), "");
        assert!(!bool_at(&v, "k"));
        assert_eq!(i64_at(&v, "k"), None);
        assert!(array_at(&v, "k").is_empty());
        assert!(object_at(&v, "k").is_none());
        assert!(child(&v, "k").is_null());
        assert!(!has(&v, "k"));
        assert_eq!(str_ptr(&v, "/k/l"), "");
        assert_eq!(meta::name(&v), "");
        assert!(meta::labels(&v).is_none());
        assert!(meta::finalizers(&v).is_empty());
    }
}

#[test]
fn metadata_fields() {
    let obj = json!({"metadata": {
        "name": "web", "generateName": "web-", "namespace": "ns", "uid": "u-1",
        "resourceVersion": "42", "generation": 3, "deletionTimestamp": "2024-01-01T00:00:00Z",
        "labels": {"app": "web", "n": 1}, "annotations": {"a": "b"},
        "finalizers": ["f"], "ownerReferences": [{"uid": "o"}], "managedFields": [{}, {}],
    }});
    assert_eq!(meta::name(&obj), "web");
    assert_eq!(meta::generate_name(&obj), "web-");
    assert_eq!(meta::namespace(&obj), "ns");
    assert_eq!(meta::uid(&obj), "u-1");
    assert_eq!(meta::resource_version(&obj), "42");
    assert_eq!(meta::generation(&obj), Some(3));
    assert_eq!(meta::deletion_timestamp(&obj), Some("2024-01-01T00:00:00Z"));
    assert_eq!(meta::labels(&obj).map(|l| l.len()), Some(2));
    assert_eq!(meta::label(&obj, "app"), Some("web"));
    assert_eq!(meta::label(&obj, "n"), None);
    assert_eq!(meta::label(&obj, "x"), None);
    assert_eq!(meta::annotation(&obj, "a"), Some("b"));
    assert_eq!(meta::annotations(&obj).map(|a| a.len()), Some(1));
    assert_eq!(meta::finalizers(&obj), &[json!("f")]);
    assert_eq!(meta::owner_references(&obj).len(), 1);
    assert_eq!(meta::managed_fields(&obj).len(), 2);
}

#[test]
fn metadata_of_the_wrong_shape_reads_as_missing() {
    for obj in [
        json!({}),
        json!({"metadata": null}),
        json!({"metadata": "x"}),
        json!({"metadata": {"name": 1, "labels": [], "annotations": "a", "finalizers": {},
                            "generation": "3", "deletionTimestamp": false}}),
    ] {
        assert_eq!(meta::name(&obj), "");
        assert_eq!(meta::namespace(&obj), "");
        assert_eq!(meta::uid(&obj), "");
        assert_eq!(meta::generation(&obj), None);
        assert_eq!(meta::deletion_timestamp(&obj), None);
        assert!(meta::labels(&obj).is_none());
        assert_eq!(meta::label(&obj, "app"), None);
        assert_eq!(meta::annotation(&obj, "a"), None);
        assert!(meta::finalizers(&obj).is_empty());
        assert!(meta::owner_references(&obj).is_empty());
    }
}

#[test]
fn object_maps_read_like_object_values() {
    let v = sample();
    let m = v.as_object().unwrap();
    assert_eq!(str_at(m, "s"), "text");
    assert_eq!(str_opt(m, "n"), None);
    assert!(bool_at(m, "t"));
    assert_eq!(i64_at(m, "n"), Some(7));
    assert_eq!(f64_at(m, "f"), Some(1.5));
    assert_eq!(array_at(m, "arr").len(), 2);
    assert!(object_at(m, "obj").is_some());
    assert_eq!(entries_at(m, "obj").count(), 1);
    assert!(child(m, "missing").is_null());
    assert!(has(m, "no") && !has(m, "nul"));
    let by_ref: Vec<&Value> = vec![&v];
    assert!(by_ref.iter().all(|x| str_at(x, "s") == "text"));
}

#[test]
fn nonempty_strings_only() {
    let v = sample();
    assert_eq!(nonempty_ptr(&v, "/s"), Some("text"));
    assert_eq!(nonempty_ptr(&v, "/deep/a/0/b"), Some("c"));
    assert_eq!(nonempty_ptr(&v, "/empty"), None);
    assert_eq!(nonempty_ptr(&v, "/missing"), None);
    assert_eq!(nonempty_ptr(&v, "/n"), None);
    assert_eq!(nonempty_ptr(&v, "/nul"), None);
}
