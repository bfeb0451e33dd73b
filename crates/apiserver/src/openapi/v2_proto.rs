//! The v2 document in the protobuf encoding client-go asks for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, gnostic's `openapi.v2`
//! messages). client-go decodes `/openapi/v2` as protobuf whatever the response says, and
//! kubectl 1.27's `explain` will not start without it, so JSON is not an option there.
//! Only the parts of the messages a Kubernetes document uses are written; vendor extensions
//! travel as gnostic does, as YAML text (JSON is valid YAML).

use apimachinery::json::str_at;
use serde_json::{Map, Value};

/// Encodes the v2 JSON document (`swagger: "2.0"`) as an `openapi.v2.Document`.
pub(crate) fn encode_document(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    m.string(1, str_at(doc, "swagger"));
    if let Some(info) = doc.get("info") {
        let mut i = Msg::default();
        i.string(1, str_at(info, "title"));
        i.string(2, str_at(info, "version"));
        m.message(2, &i);
    }
    if let Some(Value::Object(paths)) = doc.get("paths") {
        let mut p = Msg::default();
        for (name, item) in paths {
            p.message(2, &named(name, &path_item(item)));
        }
        m.message(8, &p);
    }
    if let Some(Value::Object(definitions)) = doc.get("definitions") {
        let mut d = Msg::default();
        for (name, schema) in definitions {
            d.message(1, &named(name, &schema_msg(schema)));
        }
        m.message(9, &d);
    }
    for requirement in doc
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut r = Msg::default();
        for (name, scopes) in requirement.as_object().into_iter().flatten() {
            let mut array = Msg::default();
            for scope in scopes.as_array().into_iter().flatten() {
                array.string(1, scope.as_str().unwrap_or_default());
            }
            r.message(1, &named(name, &array));
        }
        m.message(12, &r);
    }
    if let Some(Value::Object(defs)) = doc.get("securityDefinitions") {
        let mut s = Msg::default();
        for (name, def) in defs {
            let mut api_key = Msg::default();
            for (field, key) in [(1, "type"), (2, "name"), (3, "in"), (4, "description")] {
                api_key.string(field, str_at(def, key));
            }
            let mut item = Msg::default();
            item.message(2, &api_key);
            s.message(1, &named(name, &item));
        }
        m.message(13, &s);
    }
    m.buf
}

/// A protobuf message being written, fields in the order given.
#[derive(Default)]
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// proto3 leaves empty strings out.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn message(&mut self, field: u32, m: &Msg) {
        self.bytes(field, &m.buf);
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, 1);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// gnostic's `Named*` pair: name 1, value 2.
fn named(name: &str, value: &Msg) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.message(2, value);
    m
}

/// `openapi.v2.Any` holding `value` as YAML text.
fn any(value: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &value.to_string());
    m
}

fn vendor_extensions(m: &mut Msg, field: u32, object: &Map<String, Value>) {
    for (k, v) in object.iter().filter(|(k, _)| k.starts_with("x-")) {
        m.message(field, &named(k, &any(v)));
    }
}

fn schema_msg(s: &Value) -> Msg {
    let mut m = Msg::default();
    let Value::Object(o) = s else { return m };
    m.string(1, str_at(s, "$ref"));
    m.string(2, str_at(s, "format"));
    m.string(3, str_at(s, "title"));
    m.string(4, str_at(s, "description"));
    if let Some(d) = o.get("default") {
        m.message(5, &any(d));
    }
    for (field, key) in [(6, "multipleOf"), (7, "maximum"), (9, "minimum")] {
        m.double(
            field,
            o.get(key).and_then(Value::as_f64).unwrap_or_default(),
        );
    }
    m.boolean(
        8,
        o.get("exclusiveMaximum")
            .and_then(Value::as_bool)
            .unwrap_or_default(),
    );
    m.boolean(
        10,
        o.get("exclusiveMinimum")
            .and_then(Value::as_bool)
            .unwrap_or_default(),
    );
    for (field, key) in [
        (11, "maxLength"),
        (12, "minLength"),
        (14, "maxItems"),
        (15, "minItems"),
        (17, "maxProperties"),
        (18, "minProperties"),
    ] {
        m.int64(
            field,
            o.get(key).and_then(Value::as_i64).unwrap_or_default(),
        );
    }
    m.string(13, str_at(s, "pattern"));
    m.boolean(
        16,
        o.get("uniqueItems")
            .and_then(Value::as_bool)
            .unwrap_or_default(),
    );
    for r in o
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(19, r.as_str().unwrap_or_default());
    }
    for e in o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, &any(e));
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.key(2, 0);
            a.varint(u64::from(*b));
            m.message(21, &a);
        }
        Some(schema @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.message(1, &schema_msg(schema));
            m.message(21, &a);
        }
        _ => {}
    }
    let types: Vec<&str> = match o.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let mut t = Msg::default();
        types.iter().for_each(|ty| t.string(1, ty));
        m.message(22, &t);
    }
    if let Some(items) = o.get("items") {
        let mut i = Msg::default();
        match items {
            Value::Array(list) => list.iter().for_each(|s| i.message(1, &schema_msg(s))),
            single => i.message(1, &schema_msg(single)),
        }
        m.message(23, &i);
    }
    for s in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, &schema_msg(s));
    }
    if let Some(Value::Object(props)) = o.get("properties") {
        let mut p = Msg::default();
        for (name, schema) in props {
            p.message(1, &named(name, &schema_msg(schema)));
        }
        m.message(25, &p);
    }
    m.boolean(
        27,
        o.get("readOnly")
            .and_then(Value::as_bool)
            .unwrap_or_default(),
    );
    if let Some(e) = o.get("example") {
        m.message(30, &any(e));
    }
    vendor_extensions(&mut m, 31, o);
    m
}

fn path_item(item: &Value) -> Msg {
    let mut m = Msg::default();
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(method) {
            m.message(field, &operation(op));
        }
    }
    for p in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(9, &parameter(p));
    }
    m
}

fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    let strings = |m: &mut Msg, field, key| {
        for s in op.get(key).and_then(Value::as_array).into_iter().flatten() {
            m.string(field, s.as_str().unwrap_or_default());
        }
    };
    strings(&mut m, 1, "tags");
    m.string(3, str_at(op, "description"));
    m.string(5, str_at(op, "operationId"));
    strings(&mut m, 6, "produces");
    strings(&mut m, 7, "consumes");
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(8, &parameter(p));
    }
    if let Some(Value::Object(responses)) = op.get("responses") {
        let mut r = Msg::default();
        for (code, response) in responses {
            let mut resp = Msg::default();
            resp.string(1, str_at(response, "description"));
            if let Some(schema) = response.get("schema") {
                let mut item = Msg::default();
                item.message(1, &schema_msg(schema));
                resp.message(2, &item);
            }
            let mut value = Msg::default();
            value.message(1, &resp);
            r.message(1, &named(code, &value));
        }
        m.message(9, &r);
    }
    strings(&mut m, 10, "schemes");
    if let Value::Object(o) = op {
        vendor_extensions(&mut m, 13, o);
    }
    m
}

/// A `ParametersItem`: body parameters, or query/path parameters as their sub-schemas.
fn parameter(p: &Value) -> Msg {
    let mut param = Msg::default();
    let required = p
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or_default();
    let unique = p
        .get("uniqueItems")
        .and_then(Value::as_bool)
        .unwrap_or_default();
    match str_at(p, "in") {
        "body" => {
            let mut b = Msg::default();
            b.string(1, str_at(p, "description"));
            b.string(2, str_at(p, "name"));
            b.string(3, "body");
            b.boolean(4, required);
            if let Some(schema) = p.get("schema") {
                b.message(5, &schema_msg(schema));
            }
            param.message(1, &b);
        }
        location => {
            // Query and path sub-schemas share their first four fields; type and
            // uniqueItems sit one field later in the query one (after allowEmptyValue).
            let (variant, type_field, unique_field) = if location == "path" {
                (4, 5, 19)
            } else {
                (3, 6, 20)
            };
            let mut s = Msg::default();
            s.boolean(1, required);
            s.string(2, location);
            s.string(3, str_at(p, "description"));
            s.string(4, str_at(p, "name"));
            s.string(type_field, str_at(p, "type"));
            s.boolean(unique_field, unique);
            let mut non_body = Msg::default();
            non_body.message(variant, &s);
            param.message(2, &non_body);
        }
    }
    let mut item = Msg::default();
    item.message(1, &param);
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn varints_and_fields_encode_as_protobuf() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.buf, [0xac, 0x02]);
        let doc =
            encode_document(&json!({"swagger": "2.0", "info": {"title": "K", "version": "v1"}}));
        assert_eq!(
            doc,
            [
                0x0a, 3, b'2', b'.', b'0', 0x12, 7, 0x0a, 1, b'K', 0x12, 2, b'v', b'1'
            ]
        );
    }

    #[test]
    fn schema_fields_and_extensions() {
        let s = schema_msg(
            &json!({"type": "object", "x-kubernetes-group-version-kind": [{"kind": "Pod"}]}),
        );
        // type (22) is a TypeItem holding "object"; the extension (31) a NamedAny with YAML.
        assert!(s.buf.starts_with(&[0xb2, 0x01, 8, 0x0a, 6]));
        let tail = String::from_utf8_lossy(&s.buf);
        assert!(
            tail.contains("x-kubernetes-group-version-kind")
                && tail.contains("[{\"kind\":\"Pod\"}]")
        );
        assert!(schema_msg(&json!("not a schema")).buf.is_empty());
    }
}
