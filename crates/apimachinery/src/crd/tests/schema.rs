//! Rules for a CRD's `openAPIV3Schema`: structural schemas, allowed keywords, extensions
//! and defaults. A single-version CRD reports them at `spec.validation`, as Kubernetes does.

use serde_json::{Value, json};

use super::{crontab, messages, widget};
use crate::crd::validate_crd;

const AT: &str = "spec.validation.openAPIV3Schema";

fn crontab_with(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut crd = crontab();
    edit(&mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]);
    messages(&validate_crd(&crd, None))
}

fn spec_prop(schema: &mut Value, name: &str, value: Value) {
    schema["properties"]["spec"]["properties"][name] = value;
}

#[test]
fn schemas_must_be_structural() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, Vec<String>)> = vec![
        (
            |s| spec_prop(s, "image", json!({})),
            vec![format!(
                "{AT}.properties[spec].properties[image].type: Required value: must not be empty for specified object fields"
            )],
        ),
        (
            |s| spec_prop(s, "tags", json!({"type": "array"})),
            vec![format!(
                "{AT}.properties[spec].properties[tags].items: Required value: must be specified"
            )],
        ),
        (
            |s| spec_prop(s, "tags", json!({"type": "array", "items": {}})),
            vec![format!(
                "{AT}.properties[spec].properties[tags].items.type: Required value: must not be empty for specified array items"
            )],
        ),
        (
            |s| s["type"] = json!("string"),
            vec![format!(
                r#"{AT}.type: Invalid value: "string": must be object at the root"#
            )],
        ),
        (
            |s| s["additionalProperties"] = json!({"type": "string"}),
            vec![
                format!("{AT}.additionalProperties: Forbidden: must not be used at the root"),
                format!(
                    "{AT}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
                ),
            ],
        ),
        (
            |s| {
                s["properties"]["metadata"] =
                    json!({"type": "object", "properties": {"labels": {"type": "object"}}})
            },
            vec![format!(
                "{AT}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            )],
        ),
        (
            |s| s["properties"]["metadata"] = json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}),
            vec![],
        ),
        (
            |s| s["properties"]["metadata"] = json!({"type": "string"}),
            vec![format!(
                r#"{AT}.properties[metadata].type: Invalid value: "string": must be object"#
            )],
        ),
        (
            |s| s["properties"]["kind"] = json!({"type": "integer"}),
            vec![format!(
                r#"{AT}.properties[kind].type: Invalid value: "integer": must be string"#
            )],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "port",
                    json!({"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}),
                )
            },
            vec![format!(
                "{AT}.properties[spec].properties[port].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
            )],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "template",
                    json!({"x-kubernetes-embedded-resource": true, "type": "string"}),
                )
            },
            vec![
                format!(
                    "{AT}.properties[spec].properties[template].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
                ),
                format!(
                    r#"{AT}.properties[spec].properties[template].type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true"#
                ),
            ],
        ),
        (
            |s| {
                s["anyOf"] =
                    json!([{"type": "object", "properties": {"other": {"description": "x"}}}])
            },
            vec![
                format!(
                    "{AT}.anyOf[0].properties[other].description: Forbidden: must be empty to be structural"
                ),
                format!("{AT}.anyOf[0].type: Forbidden: must be empty to be structural"),
                format!(
                    "{AT}.properties[other]: Required value: because it is defined in {AT}.anyOf[0].properties[other]"
                ),
            ],
        ),
        (
            |s| s["oneOf"] = json!([{"properties": {"metadata": {"required": ["name"]}}}]),
            vec![
                format!(
                    "{AT}.oneOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"
                ),
                format!(
                    "{AT}.properties[metadata]: Required value: because it is defined in {AT}.oneOf[0].properties[metadata]"
                ),
            ],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "port",
                    json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
                )
            },
            vec![],
        ),
        (
            |s| spec_prop(s, "name", json!({"type": "string", "pattern": "("})),
            vec![format!(
                r#"{AT}.properties[spec].properties[name].pattern: Invalid value: "(": must be a valid regular expression, but isn't: error parsing regexp: unclosed group: `(`"#
            )],
        ),
    ];
    for (edit, want) in cases {
        assert_eq!(crontab_with(edit), want);
    }
}

#[test]
fn keywords_and_extensions() {
    type Edit = fn(&mut Value);
    let types = r#""array", "boolean", "integer", "number", "object", "string""#;
    let cases: Vec<(Edit, Vec<String>)> = vec![
        (
            |s| spec_prop(s, "image", json!({"type": "text"})),
            vec![format!(
                r#"{AT}.properties[spec].properties[image].type: Unsupported value: "text": supported values: {types}"#
            )],
        ),
        (
            |s| spec_prop(s, "image", json!({"type": "null"})),
            vec![
                format!(
                    r#"{AT}.properties[spec].properties[image].type: Unsupported value: "null": supported values: {types}"#
                ),
                format!(
                    "{AT}.properties[spec].properties[image].type: Forbidden: type cannot be set to null, use nullable as an alternative"
                ),
            ],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "tags",
                    json!({"type": "array", "uniqueItems": true, "items": {"type": "string"}}),
                )
            },
            vec![format!(
                "{AT}.properties[spec].properties[tags].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            )],
        ),
        (
            |s| s["properties"]["spec"]["additionalProperties"] = json!({"type": "string"}),
            vec![format!(
                "{AT}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            )],
        ),
        (
            |s| s["properties"]["spec"]["additionalProperties"] = json!(true),
            vec![],
        ),
        (
            |s| s["properties"]["metadata"] = json!({"type": "object", "default": {"name": "x"}}),
            vec![format!(
                "{AT}.properties[metadata].default: Forbidden: must not be set in top-level metadata"
            )],
        ),
        (
            |s| s["properties"]["spec"]["default"] = json!({"foo": 1}),
            vec![format!(
                r#"{AT}.properties[spec].default: Invalid value: {{"foo":1}}: must not have unknown fields"#
            )],
        ),
        (
            |s| s["properties"]["spec"]["properties"]["replicas"]["default"] = json!(20),
            vec![format!(
                "{AT}.properties[spec].properties[replicas].default: Invalid value: 20:  in body should be less than or equal to 10"
            )],
        ),
        (
            |s| s["properties"]["spec"]["default"] = json!({"replicas": "x"}),
            vec![format!(
                r#"{AT}.properties[spec].default.replicas: Invalid value: "string": replicas in body must be of type integer: "string""#
            )],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "free",
                    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false}),
                )
            },
            vec![format!(
                "{AT}.properties[spec].properties[free].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
            )],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "free",
                    json!({"type": "object", "$ref": "#/x", "id": "x", "patternProperties": {"a": {}}}),
                )
            },
            vec![
                format!(
                    "{AT}.properties[spec].properties[free].id: Forbidden: id is not supported"
                ),
                format!(
                    "{AT}.properties[spec].properties[free].patternProperties: Forbidden: patternProperties is not supported"
                ),
                format!(
                    "{AT}.properties[spec].properties[free].$ref: Forbidden: $ref is not supported"
                ),
            ],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "list",
                    json!({"type": "array", "items": [{"type": "string"}]}),
                )
            },
            vec![format!(
                "{AT}.properties[spec].properties[list].items: Forbidden: items must be a schema object and not an array"
            )],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "m",
                    json!({"type": "string", "x-kubernetes-map-type": "loose"}),
                )
            },
            vec![
                format!(
                    r#"{AT}.properties[spec].properties[m].type: Invalid value: "string": must be object if x-kubernetes-map-type is specified"#
                ),
                format!(
                    r#"{AT}.properties[spec].properties[m].x-kubernetes-map-type: Unsupported value: "loose": supported values: "atomic", "granular""#
                ),
            ],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "l",
                    json!({"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k", "missing"]}),
                )
            },
            vec![
                format!(
                    r#"{AT}.properties[spec].properties[l].x-kubernetes-list-map-keys: Invalid value: ["k","missing"]: entries must all be names of item properties"#
                ),
                format!(
                    "{AT}.properties[spec].properties[l].items.properties[k].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
                ),
            ],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "l",
                    json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "map"}),
                )
            },
            vec![
                format!(
                    "{AT}.properties[spec].properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
                ),
                format!(
                    r#"{AT}.properties[spec].properties[l].items.type: Invalid value: "string": must be object if parent array's x-kubernetes-list-type is map"#
                ),
            ],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "l",
                    json!({"type": "array", "items": {"type": "object", "nullable": true}, "x-kubernetes-list-type": "set"}),
                )
            },
            vec![
                format!(
                    "{AT}.properties[spec].properties[l].items.x-kubernetes-map-type: Invalid value: null: must be atomic as item of a list with x-kubernetes-list-type=set"
                ),
                format!(
                    "{AT}.properties[spec].properties[l].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is set"
                ),
            ],
        ),
        (
            |s| {
                spec_prop(
                    s,
                    "l",
                    json!({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag",
            "x-kubernetes-list-map-keys": ["k"]}),
                )
            },
            vec![
                format!(
                    r#"{AT}.properties[spec].properties[l].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map""#
                ),
                format!(
                    r#"{AT}.properties[spec].properties[l].x-kubernetes-list-type: Invalid value: "bag": must be map if x-kubernetes-list-map-keys is non-empty"#
                ),
            ],
        ),
        (
            |s| s["x-kubernetes-validations"] = json!([{"rule": " "}, {"rule": "self.a\n== 1"}, {"rule": "true", "reason": "Nope"}]),
            vec![
                format!(
                    "{AT}.x-kubernetes-validations[0].rule: Required value: rule is not specified"
                ),
                format!(
                    "{AT}.x-kubernetes-validations[1].message: Required value: message must be specified if rule contains line breaks"
                ),
                format!(
                    r#"{AT}.x-kubernetes-validations[2].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#
                ),
            ],
        ),
        (
            |s| s["nullable"] = json!(true),
            vec![format!(
                "{AT}.nullable: Forbidden: nullable cannot be true at the root"
            )],
        ),
        (
            |s| s["$schema"] = json!("http://json-schema.org/draft-04/schema#"),
            vec![format!(
                r#"{AT}: Invalid value: "": OpenAPIV3Schema 'schema' is not supported"#
            )],
        ),
    ];
    for (edit, want) in cases {
        assert_eq!(crontab_with(edit), want);
    }
}

#[test]
fn status_subresource_restricts_the_root() {
    let mut crd = widget();
    let schema = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    schema["maxProperties"] = json!(5);
    schema["description"] = json!("a widget");
    let shown = schema.to_string();
    assert_eq!(
        messages(&validate_crd(&crd, None)),
        [format!(
            "spec.versions[0].schema.openAPIV3Schema: Invalid value: {shown}: only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled"
        )]
    );
    let mut crd = widget();
    crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["type"] = json!("array");
    crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["items"] = json!({"type": "string"});
    assert_eq!(
        messages(&validate_crd(&crd, None)),
        [
            r#"spec.versions[1].schema.openAPIV3Schema.type: Invalid value: "array": only "object" is allowed as the type at the root of the schema if the status subresource is enabled"#,
            r#"spec.versions[1].schema.openAPIV3Schema.type: Invalid value: "array": must be object at the root"#,
        ]
    );
}
