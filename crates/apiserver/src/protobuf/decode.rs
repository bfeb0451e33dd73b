//! Schema-driven rendering of one protobuf message as Kubernetes JSON.

use std::borrow::Cow;

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::schema::{self, Card, Field, Message, Shape, Ty};
use super::wellknown;
use super::wire::{Reader, Wire};
use super::{ProtoError, decode_envelope};

/// How many messages may nest inside each other. Real objects stay far below this (a pod
/// is about ten deep); the limit bounds stack use on hostile input.
pub const MAX_DEPTH: usize = 100;

/// Where a value sits in the object, for error messages. Lives on the stack, one link per
/// level, and is only rendered when something goes wrong.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Name(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub fn root(name: &'a str) -> Self {
        Path {
            parent: None,
            step: Step::Name(name),
        }
    }

    fn name(&'a self, name: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Step::Name(name),
        }
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Step::Index(i),
        }
    }

    pub fn render(&self) -> String {
        let mut steps = vec![self.step];
        let mut at = self.parent;
        while let Some(p) = at {
            steps.push(p.step);
            at = p.parent;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Name(n) if out.is_empty() => out.push_str(n),
                Step::Name(n) => {
                    out.push('.');
                    out.push_str(n);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// Renders `buf`, an encoded `msg`, as JSON. `depth` counts the messages around it.
pub fn message(
    buf: &[u8],
    msg: &'static Message,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep {
            at: path.render(),
            limit: MAX_DEPTH,
        });
    }
    match msg.shape {
        Shape::Object => object(buf, msg, path, depth).map(Value::Object),
        Shape::Time => {
            // An empty message is Go's zero time, which metav1.Time prints as null.
            if buf.is_empty() {
                return Ok(Value::Null);
            }
            let seconds = int_field(buf, 1, path)?.unwrap_or(0);
            let text = wellknown::time(seconds as i64).map_err(|r| invalid(path, r))?;
            Ok(text.map_or(Value::Null, Value::String))
        }
        Shape::MicroTime => {
            if buf.is_empty() {
                return Ok(Value::Null);
            }
            let seconds = int_field(buf, 1, path)?.unwrap_or(0) as i64;
            // int32 on the wire: truncation is protobuf's rule for int32.
            let nanos = int_field(buf, 2, path)?.unwrap_or(0) as i32;
            let text = wellknown::micro_time(seconds, nanos).map_err(|r| invalid(path, r))?;
            Ok(text.map_or(Value::Null, Value::String))
        }
        Shape::Duration => {
            let nanos = int_field(buf, 1, path)?.unwrap_or(0) as i64;
            Ok(Value::String(wellknown::duration(nanos)))
        }
        Shape::Quantity => {
            // A Quantity with no string is Go's zero Quantity, which prints as "0".
            let text = bytes_field(buf, 1, path)?.unwrap_or(b"0");
            Ok(Value::String(String::from_utf8_lossy(text).into_owned()))
        }
        Shape::IntOrString => match int_field(buf, 1, path)?.unwrap_or(0) {
            0 => Ok(Value::from(int_field(buf, 2, path)?.unwrap_or(0) as i32)),
            1 => {
                let s = bytes_field(buf, 3, path)?.unwrap_or_default();
                Ok(Value::String(String::from_utf8_lossy(s).into_owned()))
            }
            t => Err(invalid(
                path,
                format!("IntOrString type {t} is neither 0 (int) nor 1 (string)"),
            )),
        },
        Shape::RawJson => match bytes_field(buf, 1, path)? {
            None | Some([]) => Ok(Value::Null),
            Some(raw) if raw.starts_with(&super::MAGIC) => decode_envelope(raw, depth + 1),
            Some(raw) => serde_json::from_slice(raw).map_err(|source| ProtoError::EmbeddedJson {
                at: path.render(),
                source,
            }),
        },
        Shape::ListWrapper => {
            let mut obj = object(buf, msg, path, depth)?;
            let items = msg.field(1).and_then(|f| obj.remove(f.json));
            Ok(items.unwrap_or_else(|| Value::Array(Vec::new())))
        }
        Shape::SchemaOrArray | Shape::SchemaOrBool | Shape::SchemaOrStringArray => {
            schema_or(buf, msg, path, depth)
        }
    }
}

/// The apiextensions `JSONSchemaPropsOr*` unions, printed as their Go MarshalJSON does.
fn schema_or(
    buf: &[u8],
    msg: &'static Message,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, ProtoError> {
    let mut obj = object(buf, msg, path, depth)?;
    let mut take = |tag| msg.field(tag).and_then(|f| obj.remove(f.json));
    let non_empty = |v: Option<Value>| v.filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    Ok(match msg.shape {
        // OrArray: 1 schema, 2 schemas. OrStringArray: 1 schema, 2 strings.
        Shape::SchemaOrArray | Shape::SchemaOrStringArray => {
            let schema = take(1);
            non_empty(take(2)).or(schema).unwrap_or(Value::Null)
        }
        // OrBool: 1 allows, 2 schema.
        _ => {
            let allows = take(1);
            take(2).or(allows).unwrap_or(Value::Bool(false))
        }
    })
}

/// Renders an `Object`-shaped message: one member per present field the schema knows.
fn object(
    buf: &[u8],
    msg: &'static Message,
    path: &Path<'_>,
    depth: usize,
) -> Result<Map<String, Value>, ProtoError> {
    let mut fields = Vec::new();
    let mut reader = Reader::new(buf);
    while let Some(next) = reader.field() {
        fields.push(next.map_err(|error| malformed(path, error))?);
    }
    // Group repeated occurrences of a tag; the sort is stable, so wire order survives.
    fields.sort_by_key(|(tag, _)| *tag);
    let mut out = Map::new();
    for group in fields.chunk_by(|a, b| a.0 == b.0) {
        let Some(field) = group.first().and_then(|(tag, _)| msg.field(*tag)) else {
            // Unknown tags come from newer clients; skipping them is protobuf's rule.
            continue;
        };
        let values = group.iter().map(|(_, w)| *w);
        let here = path.name(field.json);
        match field.card {
            Card::Repeated => {
                let mut items = Vec::new();
                for w in values {
                    repeated(field, w, &here, depth, &mut items)?;
                }
                out.insert(field.json.into(), Value::Array(items));
            }
            Card::Map => {
                let mut entries = Map::new();
                for w in values {
                    let entry = expect_bytes(field.ty, w, &here)?;
                    let (key, value) = map_entry(field, entry, &here, depth)?;
                    entries.insert(key, value);
                }
                out.insert(field.json.into(), Value::Object(entries));
            }
            Card::Optional | Card::OmitZero => {
                let value = single(field.ty, values, &here, depth)?;
                if field.card == Card::OmitZero && is_zero(&value) {
                    continue;
                }
                out.insert(field.json.into(), value);
            }
            Card::Inline => match single(field.ty, values, path, depth)? {
                Value::Object(members) => out.extend(members),
                _ => {
                    let reason = format!("an inline field of {} is not an object", msg.name);
                    return Err(invalid(path, reason));
                }
            },
        }
    }
    Ok(out)
}

/// A non-repeated field. Protobuf's merge rule: the last scalar wins, and occurrences of a
/// message are merged, which is what decoding their concatenation does.
fn single<'a>(
    ty: Ty,
    mut values: impl Iterator<Item = Wire<'a>>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, ProtoError> {
    let Ty::Msg(index) = ty else {
        return match values.last() {
            Some(w) => scalar(ty, w, path),
            None => Ok(zero(ty)),
        };
    };
    let first = values.next();
    let payload: Cow<'_, [u8]> = match (first, values.next()) {
        (None, _) => Cow::Borrowed(&[]),
        (Some(w), None) => Cow::Borrowed(expect_bytes(ty, w, path)?),
        (Some(a), Some(b)) => {
            let mut joined = Vec::new();
            for w in [a, b].into_iter().chain(values) {
                joined.extend_from_slice(expect_bytes(ty, w, path)?);
            }
            Cow::Owned(joined)
        }
    };
    message(&payload, lookup(index, path)?, path, depth + 1)
}

/// One occurrence of a repeated field: a message, a scalar, or a packed run of scalars.
fn repeated(
    field: &Field,
    w: Wire<'_>,
    path: &Path<'_>,
    depth: usize,
    items: &mut Vec<Value>,
) -> Result<(), ProtoError> {
    let here = path.index(items.len());
    match (field.ty, w) {
        (Ty::Msg(index), _) => {
            let buf = expect_bytes(field.ty, w, &here)?;
            items.push(message(buf, lookup(index, &here)?, &here, depth + 1)?);
        }
        // Parsers must accept packed encoding for repeated numbers whatever the .proto says.
        (Ty::Bool | Ty::I32 | Ty::I64, Wire::Bytes(run)) => {
            let mut r = Reader::new(run);
            while !r.is_empty() {
                let v = r.varint().map_err(|e| malformed(&here, e))?;
                items.push(scalar(field.ty, Wire::Varint(v), &here)?);
            }
        }
        (Ty::F64, Wire::Bytes(run)) => {
            let chunks = run.chunks_exact(8);
            if !chunks.remainder().is_empty() {
                return Err(invalid(
                    &here,
                    "packed doubles are not a multiple of 8 bytes".into(),
                ));
            }
            for c in chunks {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                items.push(scalar(
                    Ty::F64,
                    Wire::Fixed64(u64::from_le_bytes(b)),
                    &here,
                )?);
            }
        }
        _ => items.push(scalar(field.ty, w, &here)?),
    }
    Ok(())
}

/// One `map<string, V>` entry: a message with the key at tag 1 and the value at tag 2.
fn map_entry(
    field: &Field,
    entry: &[u8],
    path: &Path<'_>,
    depth: usize,
) -> Result<(String, Value), ProtoError> {
    let mut key = None;
    let mut values = Vec::new();
    let mut r = Reader::new(entry);
    while let Some(next) = r.field() {
        match next.map_err(|e| malformed(path, e))? {
            (1, w) => key = Some(expect_bytes(Ty::Str, w, path)?),
            (2, w) => values.push(w),
            _ => {}
        }
    }
    let key = String::from_utf8_lossy(key.unwrap_or_default()).into_owned();
    let here = path.name(&key);
    // A missing value is the zero value, as in Go's map decoding.
    let value = single(field.ty, values.into_iter(), &here, depth)?;
    Ok((key, value))
}

fn scalar(ty: Ty, w: Wire<'_>, path: &Path<'_>) -> Result<Value, ProtoError> {
    Ok(match (ty, w) {
        // Go strings may hold any bytes; encoding/json prints invalid UTF-8 as U+FFFD,
        // which is what a lossy conversion does.
        (Ty::Str, Wire::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Ty::Bytes, Wire::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Ty::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // Protobuf int32 is the low 32 bits of the varint (negatives are sign-extended).
        (Ty::I32, Wire::Varint(v)) => Value::from(v as i32),
        (Ty::I64, Wire::Varint(v)) => Value::from(v as i64),
        (Ty::F64, Wire::Fixed64(bits)) => {
            let f = f64::from_bits(bits);
            Value::Number(
                Number::from_f64(f)
                    .ok_or_else(|| invalid(path, format!("{f} cannot be represented in JSON")))?,
            )
        }
        _ => return Err(wrong_wire(ty, w, path)),
    })
}

/// The value an absent map value stands for.
fn zero(ty: Ty) -> Value {
    match ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::I32 | Ty::I64 => Value::from(0),
        Ty::F64 => Value::from(0.0),
        Ty::Msg(_) => Value::Null,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn expect_bytes<'a>(ty: Ty, w: Wire<'a>, path: &Path<'_>) -> Result<&'a [u8], ProtoError> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(wrong_wire(ty, w, path)),
    }
}

fn wrong_wire(ty: Ty, w: Wire<'_>, path: &Path<'_>) -> ProtoError {
    let expected = match ty {
        Ty::Str | Ty::Bytes | Ty::Msg(_) => "length-delimited",
        Ty::Bool | Ty::I32 | Ty::I64 => "varint",
        Ty::F64 => "fixed64",
    };
    ProtoError::WrongWireType {
        at: path.render(),
        expected,
        found: w.name(),
    }
}

fn lookup(index: u16, path: &Path<'_>) -> Result<&'static Message, ProtoError> {
    schema::message(index).ok_or_else(|| invalid(path, format!("schema has no message {index}")))
}

/// The last varint at `tag` in a flat message (for the fixed-layout well-known types).
fn int_field(buf: &[u8], tag: u32, path: &Path<'_>) -> Result<Option<u64>, ProtoError> {
    let mut found = None;
    let mut r = Reader::new(buf);
    while let Some(next) = r.field() {
        match next.map_err(|e| malformed(path, e))? {
            (t, Wire::Varint(v)) if t == tag => found = Some(v),
            (t, w) if t == tag => return Err(wrong_wire(Ty::I64, w, path)),
            _ => {}
        }
    }
    Ok(found)
}

/// The last length-delimited value at `tag` in a flat message.
fn bytes_field<'a>(
    buf: &'a [u8],
    tag: u32,
    path: &Path<'_>,
) -> Result<Option<&'a [u8]>, ProtoError> {
    let mut found = None;
    let mut r = Reader::new(buf);
    while let Some(next) = r.field() {
        match next.map_err(|e| malformed(path, e))? {
            (t, Wire::Bytes(b)) if t == tag => found = Some(b),
            (t, w) if t == tag => return Err(wrong_wire(Ty::Bytes, w, path)),
            _ => {}
        }
    }
    Ok(found)
}

fn malformed(path: &Path<'_>, error: super::wire::WireError) -> ProtoError {
    ProtoError::Malformed {
        at: path.render(),
        error,
    }
}

fn invalid(path: &Path<'_>, reason: String) -> ProtoError {
    ProtoError::InvalidValue {
        at: path.render(),
        reason,
    }
}
