//! Every node of a schema, an object or a CRD replaced by a value of another type:
//! nothing may panic, and pruning and defaulting must settle.

use serde_json::json;

use super::{crontab, crontab_object, crontab_schema, widget, widget_object, widget_schema};
use crate::crd::{
    Resource, Structural, default_crd, eval_simple_jsonpath, scale_paths, served_resources,
    validate_crd, validate_scale,
};
use crate::testing::mutations;

fn exercise(schema: &Structural, obj: &serde_json::Value) {
    let _ = schema.validate(obj);
    let _ = schema.validate_status(obj);
    let mut pruned = obj.clone();
    schema.prune(&mut pruned);
    schema.apply_defaults(&mut pruned);
    let settled = pruned.clone();
    assert!(
        schema.prune(&mut pruned).is_empty(),
        "defaults are pruned: {obj}"
    );
    schema.apply_defaults(&mut pruned);
    assert_eq!(pruned, settled);
    let _ = schema.validate(&pruned);
}

#[test]
fn wrong_types_in_objects() {
    for (schema, obj) in [
        (widget_schema(), widget_object()),
        (crontab_schema(), crontab_object()),
    ] {
        let schema = Structural::new(&schema);
        for obj in mutations(&obj) {
            exercise(&schema, &obj);
        }
    }
}

#[test]
fn wrong_types_in_schemas() {
    let objects = [
        widget_object(),
        json!({"spec": {"tags": [null, 1], "ports": [null, {"name": null}]}}),
        json!(null),
    ];
    for schema in mutations(&widget_schema()) {
        let parsed = Structural::new(&schema);
        for obj in &objects {
            let _ = parsed.validate(obj);
            let mut copy = obj.clone();
            parsed.prune(&mut copy);
            parsed.apply_defaults(&mut copy);
        }
    }
}

#[test]
fn wrong_types_in_crds() {
    for base in [widget(), crontab()] {
        for (i, mut crd) in mutations(&base).into_iter().enumerate() {
            // Alternate create and update, and a broken old object on update.
            match i % 3 {
                0 => validate_crd(&crd, None),
                1 => validate_crd(&crd, Some(&base)),
                _ => validate_crd(&base, Some(&crd)),
            };
            for v in served_resources(&crd) {
                let _ = Resource::custom(&v);
                if let Some(scale) = &v.scale {
                    let _ = validate_scale(scale, &widget_object());
                }
            }
            if let Some(versions) = crd.pointer("/spec/versions").and_then(|v| v.as_array()) {
                for v in versions {
                    let _ = scale_paths(v);
                }
            }
            default_crd(&mut crd);
        }
    }
}

#[test]
fn odd_json_paths() {
    let obj = widget_object();
    for path in [
        "",
        ".",
        "{",
        "}",
        "{}",
        "[",
        "]",
        ".[",
        "[']",
        "['a",
        "[\"a']",
        ".spec[0]",
        "..",
        ".spec.ports[99999999999999999999]",
        "$",
        "{.}",
    ] {
        let _ = eval_simple_jsonpath(&obj, path);
    }
}
