//! What the server needs to serve a CRD: versions, resource-table entries, scale paths,
//! printer columns.

use std::borrow::Cow;

use serde_json::json;

use super::{crontab, messages, widget, widget_schema};
use crate::crd::{
    CrdVersion, PrinterColumn, ScalePaths, printer_columns, scale_paths, served_resources,
    validate_scale,
};
use crate::resources::{ALL_VERBS, Resource};

fn widget_scale() -> ScalePaths {
    ScalePaths {
        spec_replicas: ".spec.replicas".into(),
        status_replicas: ".status.replicas".into(),
        label_selector: Some(".status.selector".into()),
    }
}

#[test]
fn served_versions_carry_names_subresources_and_schema() {
    let served = served_resources(&widget());
    assert_eq!(served.len(), 2);
    let v1 = &served[0];
    assert_eq!(
        (
            v1.group.as_str(),
            v1.version.as_str(),
            v1.kind.as_str(),
            v1.list_kind.as_str()
        ),
        ("example.com", "v1", "Widget", "WidgetList")
    );
    assert_eq!(
        (v1.plural.as_str(), v1.singular.as_str()),
        ("widgets", "widget")
    );
    assert_eq!(v1.short_names, ["wd"]);
    assert_eq!(v1.categories, ["all", "gadgets"]);
    assert!(v1.namespaced && v1.status && v1.storage && !v1.deprecated);
    assert_eq!(v1.scale, Some(widget_scale()));
    assert_eq!(v1.schema, widget_schema());
    assert_eq!(v1.printer_columns.len(), 3);
    let beta = &served[1];
    assert!(!beta.storage && beta.deprecated);
    assert_eq!(
        beta.deprecation_warning.as_deref(),
        Some("example.com/v1beta1 Widget is deprecated; use example.com/v1")
    );

    let mut crd = crontab();
    crd["spec"]["scope"] = json!("Cluster");
    crd["spec"]["names"] = json!({"plural": "crontabs", "kind": "CronTab"});
    crd["spec"]["versions"]
        .as_array_mut()
        .expect("versions")
        .push(json!({"name": "v2", "served": false, "storage": false}));
    let served = served_resources(&crd);
    assert_eq!(served.len(), 1, "unserved versions are left out");
    let v1: &CrdVersion = &served[0];
    assert!(!v1.namespaced && !v1.status && v1.scale.is_none());
    assert_eq!(
        (v1.singular.as_str(), v1.list_kind.as_str()),
        ("crontab", "CronTabList")
    );
    assert!(v1.short_names.is_empty() && v1.printer_columns.is_empty());

    for odd in [
        json!(null),
        json!({"spec": []}),
        json!({"spec": {"versions": [1, {"served": "yes"}]}}),
    ] {
        assert!(served_resources(&odd).is_empty());
    }
}

#[test]
fn parsed_schemas_can_be_shared_between_requests() {
    fn shared<T: Send + Sync + Clone + std::fmt::Debug>() {}
    shared::<crate::crd::Structural>();
    shared::<CrdVersion>();
}

#[test]
fn resource_entries_for_the_table() {
    let served = served_resources(&widget());
    let r = Resource::custom(&served[0]);
    assert_eq!(r.api_version(), "example.com/v1");
    assert_eq!(r.storage_resource(), "widgets.example.com");
    assert_eq!(
        r.key(Some("default"), "w1"),
        "/registry/widgets.example.com/default/w1"
    );
    assert!(r.has_subresource("status") && r.has_subresource("scale"));
    assert_eq!(r.short_names.as_ref(), ["wd"]);
    assert_eq!(r.categories.as_ref(), ["all", "gadgets"]);
    assert_eq!(r.verbs.as_ref(), ALL_VERBS);
    assert!(matches!(r.plural, Cow::Owned(_)));
    let again = Resource::custom(&served[1]);
    assert!(
        std::ptr::eq(r.short_names[0], again.short_names[0]),
        "names are kept once"
    );

    let plain = Resource::custom(&served_resources(&crontab())[0]);
    assert!(plain.subresources.is_empty() && plain.namespaced);
    assert_eq!(plain.short_names.as_ref(), ["ct"]);
}

#[test]
fn scale_paths_and_columns() {
    let w = widget();
    let v1 = &w["spec"]["versions"][0];
    assert_eq!(scale_paths(v1), Some(widget_scale()));
    assert_eq!(scale_paths(&json!({"subresources": {"status": {}}})), None);
    assert_eq!(
        scale_paths(
            &json!({"subresources": {"scale": {"specReplicasPath": ".spec.r", "statusReplicasPath": ".status.r"}}})
        ),
        Some(ScalePaths {
            spec_replicas: ".spec.r".into(),
            status_replicas: ".status.r".into(),
            label_selector: None
        })
    );
    assert_eq!(
        printer_columns(v1)[1],
        PrinterColumn {
            name: "Mode".into(),
            type_: "string".into(),
            format: String::new(),
            description: "how it runs".into(),
            priority: 1,
            json_path: ".spec.mode".into(),
        }
    );
    assert!(printer_columns(&json!({"additionalPrinterColumns": "nope"})).is_empty());
}

#[test]
fn scale_values_are_checked() {
    let scale = widget_scale();
    let cases = [
        (
            json!({"spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "a=b"}}),
            vec![],
        ),
        (json!({}), vec![]),
        (
            json!({"spec": {"replicas": -1}}),
            vec![".spec.replicas: Invalid value: -1: should be a non-negative integer"],
        ),
        (
            json!({"spec": {"replicas": 2147483648i64}}),
            vec![
                ".spec.replicas: Invalid value: 2147483648: should be less than or equal to 2147483647",
            ],
        ),
        (
            json!({"spec": {"replicas": "3"}, "status": {"replicas": 1.5, "selector": 7}}),
            vec![
                ".spec.replicas: Invalid value: 0: .spec.replicas accessor error: 3 is of the type string, expected int64",
                ".status.replicas: Invalid value: 0: .status.replicas accessor error: 1.5 is of the type float64, expected int64",
                r#".status.selector: Invalid value: "": .status.selector accessor error: 7 is of the type int64, expected string"#,
            ],
        ),
        (
            json!({"spec": "x", "status": null}),
            vec![
                ".spec.replicas: Invalid value: 0: .spec.replicas accessor error: x is of the type string, expected map[string]interface{}",
            ],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(messages(&validate_scale(&scale, &obj)), want, "{obj}");
    }
}
