//! Pruning of unknown fields and defaulting.

use serde_json::{Value, json};

use super::{crontab_object, crontab_schema, widget_object, widget_schema};
use crate::crd::{Structural, apply_defaults, prune};

#[test]
fn prune_removes_unknown_fields_and_reports_them() {
    let cases: Vec<(Value, Value, Value, Vec<&str>)> = vec![
        (
            crontab_schema(),
            json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c", "bogus": 1},
                   "spec": {"image": "i", "foo": 1, "bar": {"x": 1}}, "extra": true}),
            json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c", "bogus": 1},
                   "spec": {"image": "i"}}),
            vec!["extra", "spec.bar", "spec.foo"],
        ),
        (
            widget_schema(),
            json!({"spec": {"size": "small", "extra": {"free": {"x": 1}, "known": {"a": "1", "b": 2}},
                   "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"y": 2}},
                   "ports": [{"name": "a", "bogus": 1}, {"name": "b"}],
                   "labels": {"any": "key"}, "kind": "nested kinds are not resource fields"}}),
            json!({"spec": {"size": "small", "extra": {"free": {"x": 1}, "known": {"a": "1"}},
                   "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"y": 2}},
                   "ports": [{"name": "a"}, {"name": "b"}],
                   "labels": {"any": "key"}}}),
            vec!["spec.extra.known.b", "spec.kind", "spec.ports[0].bogus"],
        ),
        (
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            json!({"anything": {"goes": [1, {"deep": true}]}}),
            json!({"anything": {"goes": [1, {"deep": true}]}}),
            vec![],
        ),
        (
            json!({"type": "object", "properties": {
                "free": {"type": "object", "additionalProperties": true},
                "list": {"type": "array"},
                "scalars": {"type": "object", "additionalProperties": {"type": "string"}}
            }}),
            json!({"free": {"a": 1, "b": {"c": 1}}, "list": [{"x": 1}, 2], "scalars": {"k": "v"}}),
            json!({"free": {"a": 1, "b": {}}, "list": [{}, 2], "scalars": {"k": "v"}}),
            vec!["free.b.c", "list[0].x"],
        ),
        (
            json!({"type": "object"}),
            json!("not an object"),
            json!("not an object"),
            vec![],
        ),
        (
            json!("not a schema"),
            json!({"kind": "K", "spec": {}}),
            json!({"kind": "K"}),
            vec!["spec"],
        ),
    ];
    for (schema, mut obj, want, removed) in cases {
        assert_eq!(prune(&schema, &mut obj), removed);
        assert_eq!(obj, want);
    }
}

#[test]
fn defaults_fill_absent_and_disallowed_null_fields() {
    let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c"}, "spec": {}});
    apply_defaults(&crontab_schema(), &mut obj);
    assert_eq!(obj["spec"], json!({"cronSpec": "5 0 * * *", "replicas": 1}));

    let mut obj = json!({"spec": {"replicas": null, "image": null, "cronSpec": "1 2 3 4 5"}});
    apply_defaults(&crontab_schema(), &mut obj);
    assert_eq!(obj["spec"], json!({"cronSpec": "1 2 3 4 5", "replicas": 1}));

    let mut obj = crontab_object();
    let before = obj.clone();
    apply_defaults(&crontab_schema(), &mut obj);
    assert_eq!(obj, before);

    let widget = Structural::new(&widget_schema());
    let mut obj = json!({"spec": {"size": "small", "note": null, "ports": [{"name": "a"}, {"name": "b", "protocol": "UDP"}]}});
    widget.apply_defaults(&mut obj);
    assert_eq!(
        obj["spec"],
        json!({"size": "small", "note": null, "replicas": 1, "mode": "a",
               "ports": [{"name": "a", "protocol": "TCP"}, {"name": "b", "protocol": "UDP"}]})
    );
    let mut full = widget_object();
    let before = full.clone();
    widget.apply_defaults(&mut full);
    assert_eq!(full, before);
}

#[test]
fn defaults_reach_into_defaults_maps_and_lists() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "default": {}, "properties": {
            "size": {"type": "integer", "default": 3},
            "limits": {"type": "object", "additionalProperties": {"type": "string", "default": "none"}},
            "steps": {"type": "array", "items": {"type": "object", "default": {"name": "step"},
                "properties": {"name": {"type": "string"}, "retries": {"type": "integer", "default": 0}}}}
        }}
    }});
    let cases = [
        (json!({}), json!({"spec": {"size": 3}})),
        (
            json!({"spec": {"limits": {"cpu": null, "mem": "1"}, "steps": [null, {"name": "x"}]}}),
            json!({"spec": {"size": 3, "limits": {"cpu": "none", "mem": "1"},
                   "steps": [{"name": "step", "retries": 0}, {"name": "x", "retries": 0}]}}),
        ),
        (json!({"spec": "wrong type"}), json!({"spec": "wrong type"})),
        (json!([1, 2]), json!([1, 2])),
    ];
    for (mut obj, want) in cases {
        apply_defaults(&schema, &mut obj);
        assert_eq!(obj, want);
    }
}

#[test]
fn pruning_then_defaulting_is_stable() {
    let widget = Structural::new(&widget_schema());
    let mut obj = json!({"spec": {"size": "small", "bogus": 1, "ports": [{"name": "a", "x": 1}]}});
    assert_eq!(widget.prune(&mut obj), ["spec.bogus", "spec.ports[0].x"]);
    widget.apply_defaults(&mut obj);
    let once = obj.clone();
    assert!(widget.prune(&mut obj).is_empty());
    widget.apply_defaults(&mut obj);
    assert_eq!(obj, once);
    assert!(widget.validate(&obj).is_empty());
}
