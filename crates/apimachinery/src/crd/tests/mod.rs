//! Shared CRDs for the tests: the `CronTab` of the Kubernetes documentation and a
//! `Widget` with status and scale subresources, two versions, and most schema features.

mod definition;
mod fuzz;
mod objects;
mod prune;
mod schema;
mod served;

use serde_json::{Value, json};

use crate::validation::FieldError;

pub(super) fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::message).collect()
}

/// The `CronTab` of "Extend the Kubernetes API with CustomResourceDefinitions", with the
/// validation and defaults of its later sections.
pub(super) fn crontab() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": crontab_schema()}
            }],
            "scope": "Namespaced",
            "names": {
                "plural": "crontabs",
                "singular": "crontab",
                "kind": "CronTab",
                "shortNames": ["ct"]
            }
        }
    })
}

pub(super) fn crontab_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "cronSpec": {
                        "type": "string",
                        "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$",
                        "default": "5 0 * * *"
                    },
                    "image": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}
                }
            }
        }
    })
}

pub(super) fn crontab_object() -> Value {
    json!({
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "my-new-cron-object", "namespace": "default"},
        "spec": {"cronSpec": "* * * * */5", "image": "my-awesome-cron-image", "replicas": 3}
    })
}

/// A namespaced `Widget` served as `v1` (stored) and `v1beta1`, with status and scale.
pub(super) fn widget() -> Value {
    let subresources = json!({
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector"
        }
    });
    let columns = json!([
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "description": "how it runs", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
                "shortNames": ["wd"],
                "categories": ["all", "gadgets"]
            },
            "versions": [
                {
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": widget_schema()},
                    "subresources": subresources.clone(),
                    "additionalPrinterColumns": columns.clone()
                },
                {
                    "name": "v1beta1",
                    "served": true,
                    "storage": false,
                    "deprecated": true,
                    "deprecationWarning": "example.com/v1beta1 Widget is deprecated; use example.com/v1",
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true
                    }},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns
                }
            ]
        }
    })
}

pub(super) fn widget_schema() -> Value {
    json!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "string", "enum": ["small", "large"]},
                    "replicas": {"type": "integer", "format": "int32", "minimum": 0, "default": 1},
                    "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "exclusiveMaximum": true, "maximum": 1},
                    "name": {"type": "string", "minLength": 2, "maxLength": 8, "pattern": "^[a-z]+$"},
                    "owner": {"type": "string", "format": "email"},
                    "since": {"type": "string", "format": "date-time"},
                    "id": {"type": "string", "format": "uuid"},
                    "note": {"type": "string", "nullable": true},
                    "tags": {
                        "type": "array",
                        "maxItems": 3,
                        "minItems": 1,
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string"}
                    },
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "protocol": {"type": "string", "default": "TCP"},
                                "number": {"type": "integer"}
                            }
                        }
                    },
                    "labels": {
                        "type": "object",
                        "maxProperties": 2,
                        "additionalProperties": {"type": "string", "maxLength": 5}
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}}
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "selector": {"type": "string"},
                    "conditions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string"},
                                "status": {"type": "string", "enum": ["True", "False", "Unknown"]}
                            }
                        }
                    }
                }
            }
        }
    })
}

pub(super) fn widget_object() -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default"},
        "spec": {
            "size": "small",
            "replicas": 2,
            "mode": "b",
            "port": "http",
            "ratio": 0.5,
            "name": "abc",
            "owner": "ann@example.com",
            "since": "2024-05-01T10:00:00Z",
            "id": "123e4567-e89b-12d3-a456-426614174000",
            "note": null,
            "tags": ["x", "y"],
            "ports": [{"name": "http", "protocol": "TCP", "number": 80}, {"name": "https", "protocol": "TCP"}],
            "labels": {"a": "1"},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
            "extra": {"anything": [1, 2], "known": {"a": "x"}}
        },
        "status": {"replicas": 2, "selector": "app=w", "conditions": [{"type": "Ready", "status": "True"}]}
    })
}
