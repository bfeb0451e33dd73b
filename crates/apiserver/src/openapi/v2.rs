//! The OpenAPI v2 (Swagger 2.0) document, converted from the v3 documents so both describe
//! the same types and operations.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Document, JSON, OpenApiV3, V2_PROTOBUF, V2_PROTOBUF_RESPONSE};

/// The built-in v2 document, built once on first use.
pub fn document() -> &'static Document {
    static BUILT: OnceLock<Document> = OnceLock::new();
    BUILT.get_or_init(|| Document::new(&convert(OpenApiV3::builtin())))
}

/// The same document as protobuf, built once on first use.
pub fn protobuf() -> &'static Bytes {
    static BUILT: OnceLock<Bytes> = OnceLock::new();
    BUILT.get_or_init(|| {
        let json: Value = serde_json::from_slice(&document().bytes).unwrap_or_default();
        Bytes::from(super::v2_proto::encode_document(&json))
    })
}

/// `/openapi/v2`: protobuf when the client asks for it (client-go always does, and decodes
/// the body as protobuf whatever the content type says), JSON for everyone else.
pub(super) fn serve(accept: &str) -> Option<(&'static str, Bytes)> {
    let mut wants_protobuf = false;
    for range in accept.split(',') {
        match range.split(';').next().unwrap_or_default().trim() {
            V2_PROTOBUF | V2_PROTOBUF_RESPONSE => wants_protobuf = true,
            "application/json" | "application/*" | "*/*" | "" if !wants_protobuf => {
                return Some((JSON, document().bytes.clone()));
            }
            _ => {}
        }
    }
    wants_protobuf.then(|| (V2_PROTOBUF_RESPONSE, protobuf().clone()))
}

fn convert(spec: &OpenApiV3) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for doc in spec.docs.values() {
        let Ok(v3) = serde_json::from_slice::<Value>(&doc.bytes) else {
            continue;
        };
        if let Some(Value::Object(schemas)) = v3.pointer("/components/schemas") {
            for (name, schema) in schemas {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| schema_v2(schema));
            }
        }
        if let Some(Value::Object(v3_paths)) = v3.get("paths") {
            for (path, item) in v3_paths {
                paths.insert(path.clone(), path_item_v2(item));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    })
}

/// Rewrites references to `#/definitions/` and unwraps `allOf: [$ref]`, which Swagger 2.0
/// tools expect as a plain `$ref` beside its description.
fn schema_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        out.insert(
                            k.clone(),
                            r.replace("#/components/schemas/", "#/definitions/").into(),
                        );
                    }
                    ("allOf", Value::Array(items))
                        if items.len() == 1 && items[0].get("$ref").is_some() =>
                    {
                        if let Value::Object(inner) = schema_v2(&items[0]) {
                            out.extend(inner);
                        }
                    }
                    _ => {
                        out.insert(k.clone(), schema_v2(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema_v2).collect()),
        other => other.clone(),
    }
}

fn parameter_v2(p: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in p.as_object().into_iter().flatten() {
        if k == "schema" {
            out.extend(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn path_item_v2(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        if key == "parameters" {
            let params: Vec<Value> = value
                .as_array()
                .into_iter()
                .flatten()
                .map(parameter_v2)
                .collect();
            out.insert(key.clone(), params.into());
        } else {
            out.insert(key.clone(), operation_v2(value));
        }
    }
    Value::Object(out)
}

fn operation_v2(op: &Value) -> Value {
    let mut out = Map::new();
    let mut params: Vec<Value> = Vec::new();
    for (key, value) in op.as_object().into_iter().flatten() {
        match key.as_str() {
            "parameters" => params.extend(value.as_array().into_iter().flatten().map(parameter_v2)),
            "requestBody" => {
                let content = value.get("content").and_then(Value::as_object);
                let consumes: Vec<Value> = content
                    .into_iter()
                    .flatten()
                    .map(|(t, _)| t.clone().into())
                    .collect();
                let schema = content
                    .and_then(|c| c.values().next())
                    .and_then(|m| m.get("schema"));
                params.push(json!({"name": "body", "in": "body", "required": true,
                                   "schema": schema.map(schema_v2).unwrap_or_else(|| json!({}))}));
                out.insert("consumes".into(), consumes.into());
            }
            "responses" => {
                let mut produces: Vec<Value> = Vec::new();
                let mut responses = Map::new();
                for (code, r) in value.as_object().into_iter().flatten() {
                    let mut resp = Map::new();
                    resp.insert(
                        "description".into(),
                        r.get("description").cloned().unwrap_or_else(|| "".into()),
                    );
                    if let Some(content) = r.get("content").and_then(Value::as_object) {
                        for t in content.keys() {
                            if !produces.iter().any(|p| p == t) {
                                produces.push(t.clone().into());
                            }
                        }
                        if let Some(schema) = content.values().next().and_then(|m| m.get("schema"))
                        {
                            resp.insert("schema".into(), schema_v2(schema));
                        }
                    }
                    responses.insert(code.clone(), Value::Object(resp));
                }
                out.insert("produces".into(), produces.into());
                out.insert("responses".into(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), params.into());
    }
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}
