//! Validation of custom resources: the messages Kubernetes' own tests expect
//! (`pkg/apiserver/validation/validation_test.go`), then realistic objects.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{crontab_object, crontab_schema, messages, widget_object, widget_schema};
use crate::crd::{Structural, validate};

fn field_schema(field: Value) -> Value {
    json!({"type": "object", "properties": {"field": field}})
}

fn set(errs: Vec<String>) -> BTreeSet<String> {
    errs.into_iter().collect()
}

#[test]
fn kubernetes_type_and_junctor_messages() {
    let int_or_string_any_of = field_schema(json!({
        "nullable": true, "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    }));
    let int_or_string_all_of = field_schema(json!({
        "nullable": true, "x-kubernetes-int-or-string": true,
        "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}]
    }));
    let cases: Vec<(Value, Value, Vec<&str>)> = vec![
        (
            field_schema(json!({"type": "object"})),
            json!("foo"),
            vec![
                r#"field: Invalid value: "string": field in body must be of type object: "string""#,
            ],
        ),
        (
            field_schema(json!({"type": "object"})),
            json!(1.2),
            vec![
                r#"field: Invalid value: "number": field in body must be of type object: "number""#,
            ],
        ),
        (
            field_schema(json!({"type": "object"})),
            json!(null),
            vec![r#"field: Invalid value: "null": field in body must be of type object: "null""#],
        ),
        (
            field_schema(json!({"type": "object", "nullable": true})),
            json!(null),
            vec![],
        ),
        (field_schema(json!({"nullable": true})), json!([]), vec![]),
        (
            field_schema(json!({"x-kubernetes-int-or-string": true})),
            json!(42),
            vec![],
        ),
        (
            field_schema(json!({"x-kubernetes-int-or-string": true})),
            json!(true),
            vec![
                r#"field: Invalid value: "boolean": field in body must be of type integer,string: "boolean""#,
            ],
        ),
        (
            field_schema(json!({"x-kubernetes-int-or-string": true})),
            json!(null),
            vec![
                r#"field: Invalid value: "null": field in body must be of type integer,string: "null""#,
            ],
        ),
        (int_or_string_any_of.clone(), json!(null), vec![]),
        (
            int_or_string_any_of.clone(),
            json!(true),
            vec![
                r#"<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)"#,
                r#"field: Invalid value: "boolean": field in body must be of type integer,string: "boolean""#,
                r#"field: Invalid value: "boolean": field in body must be of type integer: "boolean""#,
            ],
        ),
        (
            int_or_string_any_of.clone(),
            json!(1.2),
            vec![
                r#"<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)"#,
                r#"field: Invalid value: "number": field in body must be of type integer,string: "number""#,
                r#"field: Invalid value: "number": field in body must be of type integer: "number""#,
                r#"<nil>: Invalid value: "": Checked value must be of type integer (default format) in field"#,
            ],
        ),
        (
            int_or_string_any_of,
            json!({}),
            vec![
                r#"<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)"#,
                r#"field: Invalid value: "object": field in body must be of type integer,string: "object""#,
                r#"field: Invalid value: "object": field in body must be of type integer: "object""#,
            ],
        ),
        (
            int_or_string_all_of,
            json!([]),
            vec![
                r#"<nil>: Invalid value: "": "field" must validate all the schemas (allOf). None validated"#,
                r#"<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)"#,
                r#"field: Invalid value: "array": field in body must be of type integer,string: "array""#,
                r#"field: Invalid value: "array": field in body must be of type integer: "array""#,
            ],
        ),
    ];
    for (schema, value, want) in cases {
        let got = messages(&validate(&schema, &json!({"field": value})));
        assert_eq!(
            set(got),
            set(want.iter().map(|s| s.to_string()).collect()),
            "{value}"
        );
    }
}

#[test]
fn kubernetes_keyword_messages() {
    let schema = json!({
        "type": "object",
        "required": ["field"],
        "properties": {
            "field": {
                "type": "object",
                "required": ["nestedint", "nestedstring"],
                "properties": {
                    "nestedint": {"type": "integer", "enum": [1, 2]},
                    "nestedstring": {"type": "string", "enum": ["a", "b"]}
                }
            },
            "fieldX": {"type": "object", "maxProperties": 2},
            "list": {"type": "array", "maxItems": 2},
            "short": {"type": "string", "maxLength": 2},
            "long": {"type": "string", "format": "k8s-long-name"},
            "shortName": {"type": "string", "format": "k8s-short-name"},
            "intThirtyTwo": {"type": "integer", "format": "int32"},
            "intSixtyFour": {"type": "integer", "format": "int64"},
            "floatThreeTwo": {"type": "number", "format": "float"}
        }
    });
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"test": "a"}), vec!["field: Required value"]),
        (
            json!({"field": {}}),
            vec![
                "field.nestedint: Required value",
                "field.nestedstring: Required value",
            ],
        ),
        (
            json!({"field": {"nestedint": "x", "nestedstring": true}}),
            vec![
                r#"field.nestedint: Invalid value: "string": field.nestedint in body must be of type integer: "string""#,
                r#"field.nestedint: Unsupported value: "x": supported values: "1", "2""#,
                r#"field.nestedstring: Invalid value: "boolean": field.nestedstring in body must be of type string: "boolean""#,
                r#"field.nestedstring: Unsupported value: true: supported values: "a", "b""#,
            ],
        ),
        (
            json!({"field": {"nestedint": 2.0, "nestedstring": "a"}}),
            vec![],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "fieldX": {"a": 1, "b": 2, "c": 3}}),
            vec!["fieldX: Too many: 3: must have at most 2 items"],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "list": ["a", "b", "c"]}),
            vec!["list: Too many: 3: must have at most 2 items"],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "short": "abc"}),
            vec!["short: Too long: may not be more than 2 bytes"],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "long": "a.-", "shortName": "a-"}),
            vec![
                r#"long: Invalid value: "a.-": long in body must be of type k8s-long-name: "a.-""#,
                r#"shortName: Invalid value: "a-": shortName in body must be of type k8s-short-name: "a-""#,
            ],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "intThirtyTwo": 2147483648i64}),
            vec![
                r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in intThirtyTwo"#,
            ],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "intSixtyFour": 1.0145709240540254e19}),
            vec![
                r#"intSixtyFour: Invalid value: "float64": intSixtyFour in body must be of type int64: "float64""#,
                r#"<nil>: Invalid value: "": Checked value must be of type integer with format int64 in intSixtyFour"#,
            ],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "floatThreeTwo": 3.7431058e38}),
            vec![
                r#"<nil>: Invalid value: "": Checked value must be of type number with format float in floatThreeTwo"#,
            ],
        ),
        (
            json!({"field": {"nestedint": 1, "nestedstring": "b"}, "intThirtyTwo": -2147483648i64,
            "intSixtyFour": i64::MAX, "floatThreeTwo": 3.4028234663852886e38}),
            vec![],
        ),
    ];
    let parsed = Structural::new(&schema);
    for (obj, want) in cases {
        let got = messages(&parsed.validate(&obj));
        assert_eq!(
            set(got),
            set(want.iter().map(|s| s.to_string()).collect()),
            "{obj}"
        );
    }
}

#[test]
fn crontab_messages() {
    let schema = crontab_schema();
    assert_eq!(validate(&schema, &crontab_object()), vec![]);
    let mut bad = crontab_object();
    bad["spec"] = json!({"cronSpec": "* * * *", "image": "my-awesome-cron-image", "replicas": 15});
    assert_eq!(
        messages(&validate(&schema, &bad)),
        [
            r#"spec.cronSpec: Invalid value: "* * * *": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
            "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10",
        ]
    );
    bad["spec"] = json!({"cronSpec": "* * * * *", "replicas": "string"});
    assert_eq!(
        messages(&validate(&schema, &bad)),
        [
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    bad["spec"] = json!({"cronSpec": "١ * * * *", "replicas": 0});
    assert_eq!(
        messages(&validate(&schema, &bad)),
        [
            r#"spec.cronSpec: Invalid value: "١ * * * *": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ]
    );
}

#[test]
fn widget_messages() {
    let widget = Structural::new(&widget_schema());
    assert_eq!(
        messages(&widget.validate(&widget_object())),
        Vec::<String>::new()
    );
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["spec: Required value"]),
        (json!({"spec": {}}), vec!["spec.size: Required value"]),
        (
            json!({"spec": {"size": "x"}}),
            vec![r#"spec.size: Unsupported value: "x": supported values: "small", "large""#],
        ),
        (
            json!({"spec": {"size": "small", "mode": "x"}}),
            vec![r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#],
        ),
        (
            json!({"spec": {"size": "small", "replicas": -1}}),
            vec![
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            ],
        ),
        (
            json!({"spec": {"size": "small", "replicas": 1.5}}),
            vec![
                r#"spec.replicas: Invalid value: "float64": spec.replicas in body must be of type int32: "float64""#,
                r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.replicas"#,
            ],
        ),
        (
            json!({"spec": {"size": "small", "ratio": 0}}),
            vec!["spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"],
        ),
        (
            json!({"spec": {"size": "small", "ratio": 1.0}}),
            vec!["spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"],
        ),
        (
            json!({"spec": {"size": "small", "name": "a"}}),
            vec![
                r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#,
            ],
        ),
        (
            json!({"spec": {"size": "small", "name": "abcdefghi"}}),
            vec!["spec.name: Too long: may not be more than 8 bytes"],
        ),
        (
            json!({"spec": {"size": "small", "name": "AB"}}),
            vec![r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#],
        ),
        (
            json!({"spec": {"size": "small", "owner": "nobody", "since": "yesterday", "id": "42"}}),
            vec![
                r#"spec.id: Invalid value: "42": spec.id in body must be of type uuid: "42""#,
                r#"spec.owner: Invalid value: "nobody": spec.owner in body must be of type email: "nobody""#,
                r#"spec.since: Invalid value: "yesterday": spec.since in body must be of type date-time: "yesterday""#,
            ],
        ),
        (
            json!({"spec": {"size": "small", "port": 8080, "note": null}}),
            vec![],
        ),
        (
            json!({"spec": {"size": "small", "tags": []}}),
            vec!["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"],
        ),
        (
            json!({"spec": {"size": "small", "tags": ["a", "b", "a", "a"]}}),
            vec![
                "spec.tags: Too many: 4: must have at most 3 items",
                r#"spec.tags[2]: Duplicate value: "a""#,
            ],
        ),
        (
            json!({"spec": {"size": "small", "ports": [{"name": "a"}, {"name": "b"}, {"name": "a", "number": 2}]}}),
            vec![r#"spec.ports[2]: Duplicate value: {"name":"a"}"#],
        ),
        (
            json!({"spec": {"size": "small", "ports": [{"name": "a"}, "b"]}}),
            vec![
                r#"spec.ports[1]: Invalid value: "string": spec.ports[1] in body must be of type object: "string""#,
                r#"spec.ports[1]: Invalid value: "b": must be an object for an array of list-type map"#,
            ],
        ),
        (
            json!({"spec": {"size": "small", "labels": {"a": "123456", "b": "1", "c": "2"}}}),
            vec![
                "spec.labels: Too many: 3: must have at most 2 items",
                "spec.labels.a: Too long: may not be more than 5 bytes",
            ],
        ),
        (
            json!({"spec": {"size": "small", "template": {"metadata": {"name": "a/b"}}}}),
            vec![
                "spec.template.apiVersion: Required value",
                "spec.template.kind: Required value",
                r#"spec.template.metadata.name: Invalid value: "a/b": may not contain '/'"#,
            ],
        ),
        (
            json!({"spec": {"size": "small", "template": {"apiVersion": "a/b/c", "kind": "not_a_kind"}}}),
            vec![
                r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#,
                r#"spec.template.kind: Invalid value: "not_a_kind": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            ],
        ),
        (
            json!({"spec": {"size": "small", "extra": {"known": {"a": 1}}}}),
            vec![
                r#"spec.extra.known.a: Invalid value: "integer": spec.extra.known.a in body must be of type string: "integer""#,
            ],
        ),
        (
            json!({"spec": {"size": "small"}, "status": {"conditions": [{"status": "Maybe"}]}}),
            vec![
                r#"status.conditions[0].status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown""#,
            ],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(messages(&widget.validate(&obj)), want, "{obj}");
    }
}

#[test]
fn status_is_validated_relative_to_status() {
    let widget = Structural::new(&widget_schema());
    let obj = json!({"spec": {"size": "wrong"}, "status": {"replicas": "two", "conditions": [{"status": "Maybe"}]}});
    assert_eq!(
        messages(&widget.validate_status(&obj)),
        [
            r#"status.conditions[0].status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown""#,
            r#"status.replicas: Invalid value: "string": replicas in body must be of type integer: "string""#,
        ]
    );
    assert!(widget.validate_status(&json!({"spec": {}})).is_empty());
}

#[test]
fn junctors_and_additional_properties() {
    let schema = json!({
        "type": "object",
        "properties": {
            "one": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]},
            "not": {"type": "string", "not": {"enum": ["forbidden"]}},
            "closed": {"type": "object", "additionalProperties": false},
            "mult": {"type": "integer", "multipleOf": 5},
            "float": {"type": "number", "multipleOf": 0.5, "maximum": 1e21}
        }
    });
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"one": 5}),
            vec![
                r#"<nil>: Invalid value: "": "one" must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
            ],
        ),
        (json!({"one": 20}), vec![]),
        (
            json!({"not": "forbidden"}),
            vec![r#"<nil>: Invalid value: "": "not" must not validate the schema (not)"#],
        ),
        (
            json!({"closed": {"x": 1}}),
            vec![r#"closed: Invalid value: "x": closed.x in body is a forbidden property"#],
        ),
        (
            json!({"mult": 12}),
            vec!["mult: Invalid value: 12: mult in body should be a multiple of 5"],
        ),
        (
            json!({"float": 0.75}),
            vec!["float: Invalid value: 0.75: float in body should be a multiple of 0.5"],
        ),
        // Beyond 2^53 no float counts as a multiple of anything, in Kubernetes too.
        (
            json!({"float": 2e21}),
            vec![
                "float: Invalid value: 2e+21: float in body should be a multiple of 0.5",
                "float: Invalid value: 2e+21: float in body should be less than or equal to 1e+21",
            ],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(messages(&validate(&schema, &obj)), want, "{obj}");
    }
}
