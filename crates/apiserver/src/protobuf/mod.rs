//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) as JSON.
//!
//! client-go's typed clients, and so kubectl, send protobuf bodies: the 4-byte magic
//! `k8s\0`, then a `runtime.Unknown` message holding the (apiVersion, kind) and the object's
//! own message. [`decode`] turns that into the Kubernetes JSON the rest of the server
//! handles, driven by a generated table of every built-in message (`schema_generated.rs`,
//! made by `scripts/gen-protobuf-schema.py`). Responses stay JSON: clients list JSON as
//! acceptable too.
//!
//! The JSON matches what the Go API server would produce after decoding the same bytes:
//! zero values of Go non-pointer `omitempty` fields are dropped (gogo protobuf writes them
//! regardless), present pointer fields keep their zero values, and the apimachinery types
//! with custom JSON (Time, MicroTime, Duration, Quantity, IntOrString, RawExtension,
//! FieldsV1, ...) print as their `MarshalJSON` does.

mod decode;
mod schema;
mod schema_generated;
mod wellknown;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

#[cfg(test)]
use decode::MAX_DEPTH;
pub(crate) use wire::WireError;

/// The prefix of every Kubernetes protobuf body and of embedded protobuf objects.
pub(crate) const MAGIC: [u8; 4] = *b"k8s\0";

/// The content type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be turned into JSON. `at` names the field, as a JSON path
/// from the kind (`Deployment.spec.template.spec.containers[0].ports`).
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The body does not start with `k8s\0`.
    #[error(
        "the body is not a Kubernetes protobuf message: it does not start with the 4-byte prefix \"k8s\\x00\""
    )]
    MissingMagic,
    /// The bytes are not well-formed protobuf.
    #[error("malformed protobuf at {at}: {error}")]
    Malformed {
        at: String,
        #[source]
        error: WireError,
    },
    /// A known field arrived with a wire type its schema does not allow.
    #[error("malformed protobuf at {at}: expected a {expected} value, found a {found} value")]
    WrongWireType {
        at: String,
        expected: &'static str,
        found: &'static str,
    },
    /// Messages nest deeper than [`MAX_DEPTH`].
    #[error("protobuf messages nest more than {limit} levels deep at {at}")]
    TooDeep { at: String, limit: usize },
    /// The `runtime.Unknown` envelope has no apiVersion or no kind.
    #[error("the protobuf envelope does not name the object's apiVersion and kind")]
    MissingTypeMeta,
    /// The (apiVersion, kind) is not a built-in kind this server can decode.
    #[error(
        "cannot decode protobuf for apiVersion {api_version:?}, kind {kind:?}: not a built-in kind; send application/json instead"
    )]
    UnknownKind { api_version: String, kind: String },
    /// The envelope's contentEncoding is set (e.g. gzip); clients never do that.
    #[error(
        "unsupported contentEncoding {0:?} in the protobuf envelope: only unencoded objects are accepted"
    )]
    UnsupportedEncoding(String),
    /// The envelope says the object inside is not protobuf.
    #[error("unsupported contentType {0:?} in the protobuf envelope: expected {CONTENT_TYPE}")]
    UnsupportedContentType(String),
    /// A RawExtension, FieldsV1 or JSON field holds bytes that are not JSON.
    #[error("invalid embedded JSON at {at}: {source}")]
    EmbeddedJson {
        at: String,
        #[source]
        source: serde_json::Error,
    },
    /// A value that has no JSON form (an IntOrString of unknown type, a time outside years
    /// 0-9999, a NaN).
    #[error("invalid value at {at}: {reason}")]
    InvalidValue { at: String, reason: String },
}

/// Decodes a Kubernetes protobuf request body into the object's Kubernetes JSON, with
/// `apiVersion` and `kind` set from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    decode_envelope(body, 0)
}

/// The `runtime.Unknown` envelope: magic, then 1 typeMeta {1 apiVersion, 2 kind}, 2 raw,
/// 3 contentEncoding, 4 contentType. Also used for protobuf objects inside a RawExtension.
fn decode_envelope(body: &[u8], depth: usize) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(&MAGIC).ok_or(ProtoError::MissingMagic)?;
    let root = decode::Path::root("runtime.Unknown");
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut encoding = String::new();
    let mut content_type = String::new();
    for field in fields(rest, &root)? {
        match field {
            (1, type_meta) => {
                let at = decode::Path::root("runtime.Unknown.typeMeta");
                for f in fields(type_meta, &at)? {
                    match f {
                        (1, v) => api_version = text(v),
                        (2, v) => kind = text(v),
                        _ => {}
                    }
                }
            }
            (2, v) => raw = v,
            (3, v) => encoding = text(v),
            (4, v) => content_type = text(v),
            _ => {}
        }
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtoError::MissingTypeMeta);
    }
    if !encoding.is_empty() {
        return Err(ProtoError::UnsupportedEncoding(encoding));
    }
    if !content_type.is_empty() && content_type != CONTENT_TYPE {
        return Err(ProtoError::UnsupportedContentType(content_type));
    }
    let message = schema::kind(&api_version, &kind).ok_or_else(|| ProtoError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let path = decode::Path::root(&kind);
    let object = match decode::message(raw, message, &path, depth)? {
        Value::Object(o) => o,
        // Every registered kind is an object-shaped message; the schema test checks it.
        _ => return Err(ProtoError::UnknownKind { api_version, kind }),
    };
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    out.extend(object);
    Ok(Value::Object(out))
}

/// The length-delimited fields of a flat envelope message; other wire types are skipped,
/// as unknown fields are.
fn fields<'a>(buf: &'a [u8], path: &decode::Path<'_>) -> Result<Vec<(u32, &'a [u8])>, ProtoError> {
    let mut out = Vec::new();
    let mut r = wire::Reader::new(buf);
    while let Some(next) = r.field() {
        match next {
            Ok((tag, wire::Wire::Bytes(b))) => out.push((tag, b)),
            Ok((1..=4, w)) => {
                return Err(ProtoError::WrongWireType {
                    at: path.render(),
                    expected: "length-delimited",
                    found: w.name(),
                });
            }
            Ok(_) => {}
            Err(error) => {
                return Err(ProtoError::Malformed {
                    at: path.render(),
                    error,
                });
            }
        }
    }
    Ok(out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
