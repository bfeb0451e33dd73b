//! Validation and defaulting of the CustomResourceDefinition object.

use serde_json::{Value, json};

use super::{crontab, messages, widget};
use crate::crd::{default_crd, validate_crd};
use crate::validation::{is_dns1035_label, is_dns1123_subdomain};

type Mutation = fn(&mut Value);
type Case = (&'static str, fn() -> Value, Mutation, Vec<String>);

fn dns1035(v: &str) -> String {
    is_dns1035_label(v).join(",")
}

fn check(name: &str, base: fn() -> Value, mutate: Mutation, want: &[String]) {
    let mut crd = base();
    mutate(&mut crd);
    assert_eq!(messages(&validate_crd(&crd, None)), want, "{name}");
}

#[test]
fn realistic_crds_are_valid() {
    assert_eq!(
        messages(&validate_crd(&crontab(), None)),
        Vec::<String>::new()
    );
    assert_eq!(
        messages(&validate_crd(&widget(), None)),
        Vec::<String>::new()
    );
    assert_eq!(
        messages(&validate_crd(&widget(), Some(&widget()))),
        Vec::<String>::new()
    );
}

#[test]
fn spec_rules() {
    let storage_err = |versions: &Value| {
        format!(
            "spec.versions: Invalid value: {versions}: must have exactly one version marked as storage version"
        )
    };
    let cases: Vec<Case> = vec![
        ("name must be plural.group", crontab, |c| c["metadata"]["name"] = json!("crontab.stable.example.com"), vec![
            r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#.into(),
        ]),
        ("group needs a dot", crontab, |c| {
            c["spec"]["group"] = json!("example");
            c["metadata"]["name"] = json!("crontabs.example");
        }, vec![r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#.into()]),
        ("group is a subdomain", crontab, |c| {
            c["spec"]["group"] = json!("Example.com");
            c["metadata"]["name"] = json!("crontabs.Example.com");
        }, vec![format!(r#"spec.group: Invalid value: "Example.com": {}"#, is_dns1123_subdomain("Example.com").join(","))]),
        ("group is required", crontab, |c| {
            c["spec"].as_object_mut().map(|s| s.remove("group"));
            c["metadata"]["name"] = json!("crontabs.");
        }, vec!["spec.group: Required value".into()]),
        ("scope is an enum", crontab, |c| c["spec"]["scope"] = json!("Global"), vec![
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#.into(),
        ]),
        ("scope is required", crontab, |c| c["spec"]["scope"] = json!(""), vec!["spec.scope: Required value".into()]),
        ("versions must not be empty", crontab, |c| c["spec"]["versions"] = json!([]), vec![storage_err(&json!([]))]),
        ("one storage version", widget, |c| c["spec"]["versions"][1]["storage"] = json!(true), {
            let mut w = widget();
            w["spec"]["versions"][1]["storage"] = json!(true);
            vec![
                storage_err(&w["spec"]["versions"]),
                r#"status.storedVersions: Invalid value: ["v1"]: must have the storage version v1beta1"#.into(),
            ]
        }),
        ("unique version names", widget, |c| c["spec"]["versions"][1]["name"] = json!("v1"), {
            let mut w = widget();
            w["spec"]["versions"][1]["name"] = json!("v1");
            let versions = &w["spec"]["versions"];
            vec![format!("spec.versions: Invalid value: {versions}: must contain unique version names")]
        }),
        ("version names are DNS-1035 labels", crontab, |c| c["spec"]["versions"][0]["name"] = json!("1v"), vec![
            format!(r#"spec.versions[0].name: Invalid value: "1v": {}"#, dns1035("1v")),
            format!(r#"spec.version: Invalid value: "1v": {}"#, dns1035("1v")),
        ]),
        ("schema is required", crontab, |c| {
            c["spec"]["versions"][0].as_object_mut().map(|v| v.remove("schema"));
        }, vec!["spec.versions[0].schema.openAPIV3Schema: Required value".into()]),
        ("deprecation warning needs deprecation", widget, |c| c["spec"]["versions"][1]["deprecated"] = json!(false), vec![
            r#"spec.versions[1].deprecationWarning: Invalid value: "example.com/v1beta1 Widget is deprecated; use example.com/v1": can only be set for deprecated versions"#.into(),
        ]),
        ("preserveUnknownFields may not be true", crontab, |c| c["spec"]["preserveUnknownFields"] = json!(true), vec![
            "spec.preserveUnknownFields: Invalid value: true: must be false in order to use defaults in the schema".into(),
            "spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead".into(),
        ]),
        ("protected groups need approval", crontab, |c| {
            c["spec"]["group"] = json!("stable.k8s.io");
            c["metadata"]["name"] = json!("crontabs.stable.k8s.io");
        }, vec![
            r#"metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111"#.into(),
        ]),
        ("approved protected group", crontab, |c| {
            c["spec"]["group"] = json!("stable.k8s.io");
            c["metadata"]["name"] = json!("crontabs.stable.k8s.io");
            c["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": "https://github.com/kubernetes/kubernetes/pull/78458"});
        }, vec![]),
    ];
    for (name, base, mutate, want) in cases {
        check(name, base, mutate, &want);
    }
}

#[test]
fn names_rules() {
    let cases: Vec<(&str, Mutation, Vec<String>)> = vec![
        ("plural is a DNS-1035 label", |c| {
            c["spec"]["names"]["plural"] = json!("CronTabs");
            c["metadata"]["name"] = json!("CronTabs.stable.example.com");
        }, vec![format!(r#"spec.names.plural: Invalid value: "CronTabs": {}"#, dns1035("CronTabs"))]),
        ("kind may have mixed case", |c| c["spec"]["names"]["kind"] = json!("Cron_Tab"), vec![format!(
            r#"spec.names.kind: Invalid value: "Cron_Tab": may have mixed case, but should otherwise match: {}"#,
            dns1035("cron_tab")
        )]),
        ("kind and listKind differ", |c| c["spec"]["names"]["listKind"] = json!("CronTab"), vec![
            r#"spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same"#.into(),
        ]),
        ("short names are labels", |c| c["spec"]["names"]["shortNames"] = json!(["ct", "CT"]), vec![
            format!(r#"spec.names.shortNames[1]: Invalid value: "CT": {}"#, dns1035("CT")),
        ]),
        ("names are required before defaulting", |c| {
            c["spec"]["names"] = json!({"plural": "crontabs"});
        }, vec![
            "spec.names.singular: Required value".into(),
            "spec.names.kind: Required value".into(),
            "spec.names.listKind: Required value".into(),
        ]),
        ("accepted names are checked too", |c| c["status"] = json!({"acceptedNames": {"plural": "Bad"}}), vec![
            format!(r#"status.acceptedNames.plural: Invalid value: "Bad": {}"#, dns1035("Bad")),
        ]),
    ];
    for (name, mutate, want) in cases {
        let mut crd = crontab();
        default_crd(&mut crd);
        mutate(&mut crd);
        assert_eq!(messages(&validate_crd(&crd, None)), want, "{name}");
    }
}

#[test]
fn subresource_and_column_rules() {
    let cases: Vec<(&str, Mutation, Vec<&str>)> = vec![
        (
            "identical subresources are reported once at spec.subresources",
            |c| {
                for i in 0..2 {
                    c["spec"]["versions"][i]["subresources"]["scale"]["specReplicasPath"] =
                        json!("spec.replicas");
                }
            },
            vec![
                r#"spec.subresources.scale.specReplicasPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#,
            ],
        ),
        (
            "differing subresources are reported per version",
            |c| {
                c["spec"]["versions"][1]["subresources"]["scale"]["statusReplicasPath"] =
                    json!(".spec.replicas");
                c["spec"]["versions"][1]["subresources"]["scale"]["labelSelectorPath"] =
                    json!(".metadata.labels");
            },
            vec![
                r#"spec.versions[1].subresources.scale.statusReplicasPath: Invalid value: ".spec.replicas": should be a json path under .status"#,
                r#"spec.versions[1].subresources.scale.labelSelectorPath: Invalid value: ".metadata.labels": should be a json path under either .spec or .status"#,
            ],
        ),
        (
            "scale paths are required",
            |c| {
                for i in 0..2 {
                    c["spec"]["versions"][i]["subresources"]["scale"] = json!({});
                }
            },
            vec![
                "spec.subresources.scale.specReplicasPath: Required value",
                "spec.subresources.scale.statusReplicasPath: Required value",
            ],
        ),
        (
            "column rules",
            |c| {
                for i in 0..2 {
                    c["spec"]["versions"][i]["additionalPrinterColumns"] = json!([
                        {"name": "", "type": "float", "jsonPath": "spec.x"},
                        {"name": "b", "format": "hex"}
                    ]);
                }
            },
            vec![
                "spec.additionalPrinterColumns[0].name: Required value",
                r#"spec.additionalPrinterColumns[0].type: Invalid value: "float": must be one of boolean,date,integer,number,string"#,
                r#"spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.x": must be a simple json path starting with ."#,
                "spec.additionalPrinterColumns[1].type: Required value: must be one of boolean,date,integer,number,string",
                r#"spec.additionalPrinterColumns[1].format: Invalid value: "hex": must be one of byte,date,date-time,double,float,int32,int64,password"#,
                "spec.additionalPrinterColumns[1].JSONPath: Required value",
            ],
        ),
        (
            "conversion webhook needs its config",
            |c| c["spec"]["conversion"] = json!({"strategy": "Webhook"}),
            vec![
                "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
                "spec.conversion.conversionReviewVersions: Required value",
            ],
        ),
        (
            "conversion webhook with a service",
            |c| {
                c["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
            "clientConfig": {"service": {"name": "conv", "namespace": "system"}}, "conversionReviewVersions": ["v2", "v2"]}})
            },
            vec![
                r#"spec.conversion.conversionReviewVersions[1]: Invalid value: "v2": duplicate version"#,
                r#"spec.conversion.conversionReviewVersions: Invalid value: ["v2","v2"]: must include at least one of v1, v1beta1"#,
            ],
        ),
        (
            "no webhook without the strategy",
            |c| {
                c["spec"]["conversion"] = json!({"strategy": "None", "webhook": {
            "clientConfig": {"url": "https://conv"}, "conversionReviewVersions": ["v1"]}})
            },
            vec![
                "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
                "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook",
            ],
        ),
        (
            "stored versions stay in spec",
            |c| c["status"] = json!({"storedVersions": ["v1alpha1"]}),
            vec![
                r#"status.storedVersions: Invalid value: ["v1alpha1"]: must have the storage version v1"#,
                r#"status.storedVersions[0]: Invalid value: "v1alpha1": missing from spec.versions; v1alpha1 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v1alpha1 and removes v1alpha1 from status.storedVersions"#,
            ],
        ),
    ];
    for (name, mutate, want) in cases {
        let want: Vec<String> = want.into_iter().map(str::to_string).collect();
        check(name, widget, mutate, &want);
    }
}

#[test]
fn updates_keep_group_plural_and_established_scope() {
    let old = widget();
    let mut new = widget();
    new["spec"]["group"] = json!("other.example.com");
    new["spec"]["names"]["plural"] = json!("gadgets");
    new["spec"]["scope"] = json!("Cluster");
    new["spec"]["names"]["kind"] = json!("Gadget");
    new["spec"]["names"]["listKind"] = json!("GadgetList");
    assert_eq!(
        messages(&validate_crd(&new, Some(&old))),
        [
            r#"spec.group: Invalid value: "other.example.com": field is immutable"#,
            r#"spec.names.plural: Invalid value: "gadgets": field is immutable"#,
        ]
    );
    let mut established = old.clone();
    established["status"] = json!({"conditions": [{"type": "Established", "status": "True"}], "storedVersions": ["v1"]});
    assert_eq!(
        messages(&validate_crd(&new, Some(&established))),
        [
            r#"spec.scope: Invalid value: "Cluster": field is immutable"#,
            r#"spec.names.kind: Invalid value: "Gadget": field is immutable"#,
            r#"spec.group: Invalid value: "other.example.com": field is immutable"#,
            r#"spec.names.plural: Invalid value: "gadgets": field is immutable"#,
        ]
    );
    let mut renamed = widget();
    renamed["metadata"]["name"] = json!("anything");
    assert!(
        validate_crd(&renamed, Some(&old)).is_empty(),
        "names are checked on create only"
    );
}

#[test]
fn defaulting_fills_names_conversion_and_stored_versions() {
    let mut crd = crontab();
    crd["spec"]["names"] = json!({"plural": "crontabs", "kind": "CronTab"});
    default_crd(&mut crd);
    assert_eq!(
        crd["spec"]["names"],
        json!({"plural": "crontabs", "kind": "CronTab", "singular": "crontab", "listKind": "CronTabList"})
    );
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    assert!(validate_crd(&crd, None).is_empty());

    let mut hooked = widget();
    hooked["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {"clientConfig": {"service": {"name": "c", "namespace": "n"}}}});
    default_crd(&mut hooked);
    assert_eq!(
        hooked.pointer("/spec/conversion/webhook/clientConfig/service/port"),
        Some(&json!(443))
    );
    for mut odd in [
        json!(null),
        json!({"spec": 1}),
        json!({"spec": {"names": "x", "versions": "y"}}),
    ] {
        default_crd(&mut odd);
    }
}
