//! Request bodies to JSON values, with bounds on what decoding may cost: how
//! deeply a body nests and, for YAML, how far its aliases expand.
//!
//! JSON is parsed by serde_json, which stops at its own recursion limit as soon
//! as it reaches it. YAML is first pre-scanned in linear time for its nesting
//! ([`scan`]), because libyaml reads a whole document (at a high cost per level
//! of flow nesting) before serde_yaml_ng's recursion limit can apply; it is
//! then built value by value, counting what aliases expand to.

mod scan;

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How many arrays and objects a body may nest, JSON or YAML: what serde_json's
/// default recursion limit (128) lets through. A scalar inside 127 arrays
/// decodes; inside 128 it does not.
pub const MAX_DEPTH: usize = 127;

/// How many values (map keys included) a YAML body may decode to beyond one per
/// byte of input. Without aliases a document has fewer values than bytes; the
/// allowance lets small documents reuse anchors freely, while aliases that
/// expand a large node many times ("billion laughs") are refused.
pub const YAML_EXTRA_VALUES: usize = 10_000;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Arrays and objects nest more than [`MAX_DEPTH`] levels deep.
    #[error(
        "the document nests arrays and objects more than {MAX_DEPTH} levels deep (line {line}, column {column})"
    )]
    TooDeep { line: usize, column: usize },
    /// A YAML document's aliases expand to more than `limit` values.
    #[error("the YAML document expands to more than {limit} values through its aliases")]
    TooManyValues { limit: usize },
    /// Not JSON; serde_json's message.
    #[error("{0}")]
    Json(String),
    /// Not a single YAML document; serde_yaml_ng's message.
    #[error("{0}")]
    Yaml(String),
}

/// Decodes a JSON body.
pub fn json(bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            DecodeError::TooDeep {
                line: e.line(),
                column: e.column(),
            }
        } else {
            DecodeError::Json(e.to_string())
        }
    })
}

/// Decodes a body holding one YAML document (UTF-8, or UTF-16 with a byte
/// order mark, as libyaml accepts).
pub fn yaml(bytes: &[u8]) -> Result<Value, DecodeError> {
    let text = yaml_text(bytes)?;
    scan::check_depth(&text, MAX_DEPTH).map_err(|p| DecodeError::TooDeep {
        line: p.line,
        column: p.column,
    })?;
    let limit = text.len().saturating_add(YAML_EXTRA_VALUES);
    let limits = Limits {
        values_left: Cell::new(limit),
        hit: Cell::new(None),
    };
    let seed = ValueSeed {
        limits: &limits,
        depth: 0,
    };
    seed.deserialize(serde_yaml_ng::Deserializer::from_str(&text))
        .map_err(|e| match limits.hit.get() {
            Some(Limit::Values) => DecodeError::TooManyValues { limit },
            Some(Limit::Depth) => too_deep_at(&e),
            None if e.to_string().starts_with("recursion limit exceeded") => too_deep_at(&e),
            None => DecodeError::Yaml(e.to_string()),
        })
}

fn too_deep_at(e: &serde_yaml_ng::Error) -> DecodeError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    DecodeError::TooDeep { line, column }
}

fn yaml_text(bytes: &[u8]) -> Result<Cow<'_, str>, DecodeError> {
    let utf16 = |be: bool| -> Result<Cow<'_, str>, DecodeError> {
        let units = bytes[2..].chunks(2).map(|c| match (c, be) {
            ([a, b], true) => u16::from_be_bytes([*a, *b]),
            ([a, b], false) => u16::from_le_bytes([*a, *b]),
            _ => 0xFFFF,
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map(Cow::Owned)
            .map_err(|e| DecodeError::Yaml(format!("invalid UTF-16: {e}")))
    };
    match bytes {
        [0xFE, 0xFF, ..] => utf16(true),
        [0xFF, 0xFE, ..] => utf16(false),
        _ => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|e| DecodeError::Yaml(format!("invalid UTF-8: {e}"))),
    }
}

#[derive(Clone, Copy)]
enum Limit {
    Depth,
    Values,
}

struct Limits {
    values_left: Cell<usize>,
    hit: Cell<Option<Limit>>,
}

impl Limits {
    fn refuse<E: de::Error>(&self, limit: Limit) -> E {
        self.hit.set(Some(limit));
        E::custom(match limit {
            Limit::Depth => "recursion limit exceeded",
            Limit::Values => "too many values",
        })
    }

    fn take_one<E: de::Error>(&self) -> Result<(), E> {
        match self.values_left.get().checked_sub(1) {
            Some(left) => {
                self.values_left.set(left);
                Ok(())
            }
            None => Err(self.refuse(Limit::Values)),
        }
    }
}

/// Builds a `serde_json::Value` as serde_json's own visitor does, counting
/// every value against the budget and every collection against [`MAX_DEPTH`].
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    limits: &'a Limits,
    /// How many collections enclose the value being built.
    depth: usize,
}

impl<'a> ValueSeed<'a> {
    fn leaf<E: de::Error>(self, v: Value) -> Result<Value, E> {
        self.limits.take_one()?;
        Ok(v)
    }

    fn child<E: de::Error>(self) -> Result<Self, E> {
        self.limits.take_one()?;
        if self.depth >= MAX_DEPTH {
            return Err(self.limits.refuse(Limit::Depth));
        }
        Ok(Self {
            limits: self.limits,
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.leaf(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.leaf(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.leaf(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        let n = Number::deserialize(de::value::I128Deserializer::<E>::new(v))?;
        self.leaf(Value::Number(n))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        let n = Number::deserialize(de::value::U128Deserializer::<E>::new(v))?;
        self.leaf(Value::Number(n))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.leaf(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.leaf(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.leaf(Value::String(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(child)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let child = self.child()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(self.limits))? {
            let value = map.next_value_seed(child)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// A map key: a string, as serde_json's visitor asks for one.
struct KeySeed<'a>(&'a Limits);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.0.take_one()?;
        Ok(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.0.take_one()?;
        Ok(v)
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
