//! A CRD version's `openAPIV3Schema` read once into a tree the pruning, defaulting and
//! validation walks share. Reading is lenient: a keyword of the wrong JSON type counts
//! as absent, because the CRD's own validation reports it, and serving must not panic.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::json::{array_at, bool_at, f64_at, i64_at, object_at, str_at, str_opt};

/// One node of a custom resource schema.
#[derive(Debug, Clone, Default)]
pub struct Structural {
    /// `type`, empty when absent.
    pub(crate) ty: String,
    pub(crate) nullable: bool,
    /// `format` as Kubernetes keeps it: formats it does not support for the type are dropped.
    pub(crate) format: String,
    pub(crate) properties: Vec<(String, Structural)>,
    pub(crate) additional: Option<Additional>,
    pub(crate) items: Option<Box<Structural>>,
    pub(crate) required: Vec<String>,
    pub(crate) enumeration: Option<Vec<Value>>,
    pub(crate) default: Option<Value>,
    pub(crate) maximum: Option<f64>,
    pub(crate) exclusive_maximum: bool,
    pub(crate) minimum: Option<f64>,
    pub(crate) exclusive_minimum: bool,
    pub(crate) multiple_of: Option<f64>,
    pub(crate) max_length: Option<i64>,
    pub(crate) min_length: Option<i64>,
    pub(crate) max_items: Option<i64>,
    pub(crate) min_items: Option<i64>,
    pub(crate) unique_items: bool,
    pub(crate) max_properties: Option<i64>,
    pub(crate) min_properties: Option<i64>,
    pub(crate) pattern: Option<Pattern>,
    pub(crate) all_of: Vec<Structural>,
    pub(crate) any_of: Vec<Structural>,
    pub(crate) one_of: Vec<Structural>,
    pub(crate) not: Option<Box<Structural>>,
    pub(crate) preserve_unknown_fields: bool,
    pub(crate) int_or_string: bool,
    pub(crate) embedded_resource: bool,
    pub(crate) list_type: Option<String>,
    pub(crate) list_map_keys: Vec<String>,
}

/// `additionalProperties`: a boolean or a schema for every other key.
#[derive(Debug, Clone)]
pub(crate) enum Additional {
    Allows(bool),
    Schema(Box<Structural>),
}

/// A `pattern`, compiled when first used.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub(crate) source: String,
    compiled: OnceLock<Result<Regex, String>>,
}

/// Formats Kubernetes validates on strings, without dashes (`date-time` is `datetime`).
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

impl Structural {
    /// Reads a schema node. Anything that is not an object reads as an empty schema.
    pub fn new(schema: &Value) -> Self {
        if !schema.is_object() {
            return Self::default();
        }
        let m = schema;
        let ty = str_at(m, "type").to_string();
        let int_or_string = bool_at(m, "x-kubernetes-int-or-string");
        Self {
            format: supported_format(&ty, int_or_string, str_at(m, "format")),
            ty,
            nullable: bool_at(m, "nullable"),
            properties: object_at(m, "properties")
                .map(|p| p.iter().map(|(k, v)| (k.clone(), Self::new(v))).collect())
                .unwrap_or_default(),
            additional: match m.get("additionalProperties") {
                Some(Value::Bool(b)) => Some(Additional::Allows(*b)),
                Some(v @ Value::Object(_)) => Some(Additional::Schema(Box::new(Self::new(v)))),
                _ => None,
            },
            items: m
                .get("items")
                .filter(|v| v.is_object())
                .map(|v| Box::new(Self::new(v))),
            required: strings_at(m, "required"),
            enumeration: m.get("enum").and_then(Value::as_array).cloned(),
            default: m.get("default").cloned(),
            maximum: f64_at(m, "maximum"),
            exclusive_maximum: bool_at(m, "exclusiveMaximum"),
            minimum: f64_at(m, "minimum"),
            exclusive_minimum: bool_at(m, "exclusiveMinimum"),
            multiple_of: f64_at(m, "multipleOf"),
            max_length: i64_at(m, "maxLength"),
            min_length: i64_at(m, "minLength"),
            max_items: i64_at(m, "maxItems"),
            min_items: i64_at(m, "minItems"),
            unique_items: bool_at(m, "uniqueItems"),
            max_properties: i64_at(m, "maxProperties"),
            min_properties: i64_at(m, "minProperties"),
            pattern: str_opt(m, "pattern")
                .filter(|p| !p.is_empty())
                .map(Pattern::new),
            all_of: schemas_at(m, "allOf"),
            any_of: schemas_at(m, "anyOf"),
            one_of: schemas_at(m, "oneOf"),
            not: m
                .get("not")
                .filter(|v| v.is_object())
                .map(|v| Box::new(Self::new(v))),
            preserve_unknown_fields: bool_at(m, "x-kubernetes-preserve-unknown-fields"),
            int_or_string,
            embedded_resource: bool_at(m, "x-kubernetes-embedded-resource"),
            list_type: str_opt(m, "x-kubernetes-list-type").map(str::to_string),
            list_map_keys: strings_at(m, "x-kubernetes-list-map-keys"),
        }
    }

    /// The schema of property `name`, if declared.
    pub(crate) fn property(&self, name: &str) -> Option<&Structural> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, s)| s)
    }

    /// The schema `additionalProperties` gives other keys: `Some(None)` when they are
    /// allowed without a schema, `None` when there is no `additionalProperties`.
    pub(crate) fn additional_schema(&self) -> Option<Option<&Structural>> {
        match &self.additional {
            None => None,
            Some(Additional::Allows(_)) => Some(None),
            Some(Additional::Schema(s)) => Some(Some(s)),
        }
    }

    /// The schema of key `name` of an object: its property, else `additionalProperties`.
    pub(crate) fn field(&self, name: &str) -> Option<&Structural> {
        self.property(name)
            .or_else(|| self.additional_schema().flatten())
    }

    /// The types a value may have, as the validator sees them.
    pub(crate) fn types(&self) -> Vec<&str> {
        if self.int_or_string {
            vec!["integer", "string"]
        } else if self.ty.is_empty() {
            Vec::new()
        } else {
            vec![self.ty.as_str()]
        }
    }
}

impl Pattern {
    pub(crate) fn new(source: &str) -> Self {
        Self {
            source: source.to_string(),
            compiled: OnceLock::new(),
        }
    }

    /// The compiled pattern, or why it does not compile, in Go's words.
    pub(crate) fn compiled(&self) -> &Result<Regex, String> {
        self.compiled.get_or_init(|| {
            Regex::new(&go_classes(&self.source)).map_err(|e| go_regex_error(&self.source, &e))
        })
    }
}

/// A compile error worded like Go's: `error parsing regexp: unclosed group: `(``.
fn go_regex_error(source: &str, e: &regex::Error) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim());
    format!("error parsing regexp: {reason}: `{source}`")
}

/// Kubernetes matches patterns with Go's RE2, where `\d`, `\w`, `\s` and `\b` are ASCII
/// only; the `regex` crate makes them Unicode-aware unless told otherwise.
fn go_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let replaced = match (in_class, next) {
                    (false, 'd') => "[0-9]",
                    (false, 'D') => "[^0-9]",
                    (false, 'w') => "[0-9A-Za-z_]",
                    (false, 'W') => "[^0-9A-Za-z_]",
                    (false, 's') => "[\\t\\n\\f\\r ]",
                    (false, 'S') => "[^\\t\\n\\f\\r ]",
                    (false, 'b') => "(?-u:\\b)",
                    (false, 'B') => "(?-u:\\B)",
                    (true, 'd') => "0-9",
                    (true, 'w') => "0-9A-Za-z_",
                    (true, 's') => "\\t\\n\\f\\r ",
                    _ => {
                        out.push('\\');
                        out.push(next);
                        continue;
                    }
                };
                out.push_str(replaced);
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal, not the end of the class.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') {
                    1
                } else {
                    0
                };
                out.push_str(&rest[..skip]);
                chars = rest[skip..].chars();
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The format Kubernetes keeps for a type (`StripUnsupportedFormatsPostProcessor`).
fn supported_format(ty: &str, int_or_string: bool, format: &str) -> String {
    if format.is_empty() {
        return String::new();
    }
    let keep = match (int_or_string, ty) {
        (true, _) | (false, "" | "string") => {
            STRING_FORMATS.contains(&format.replace('-', "").as_str())
        }
        (false, "integer") => matches!(format, "int32" | "int64"),
        (false, "number") => matches!(format, "float" | "double"),
        _ => false,
    };
    if keep {
        format.to_string()
    } else {
        String::new()
    }
}

fn strings_at(m: &Value, key: &str) -> Vec<String> {
    array_at(m, key)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn schemas_at(m: &Value, key: &str) -> Vec<Structural> {
    array_at(m, key).iter().map(Structural::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_classes_are_ascii() {
        let cases = [
            (r"^\d+$", "^[0-9]+$"),
            (r"[\d.]+", "[0-9.]+"),
            (r"\w\s\b", r"[0-9A-Za-z_][\t\n\f\r ](?-u:\b)"),
            (r"[]\d]", "[]0-9]"),
            (r"[^]a]\.", r"[^]a]\."),
            ("trailing\\", "trailing\\"),
        ];
        for (pattern, want) in cases {
            assert_eq!(go_classes(pattern), want, "{pattern}");
        }
        let digits = Pattern::new(r"^\d+$").compiled().clone().expect("compiles");
        assert!(digits.is_match("123"));
        assert!(!digits.is_match("١٢٣"));
        assert!(Pattern::new(r"\bword\b").compiled().is_ok());
        assert!(Pattern::new("(").compiled().is_err());
    }

    #[test]
    fn unsupported_formats_are_dropped() {
        let cases = [
            ("string", false, "date-time", "date-time"),
            ("string", false, "int32", ""),
            ("integer", false, "int32", "int32"),
            ("integer", false, "date", ""),
            ("number", false, "double", "double"),
            ("boolean", false, "byte", ""),
            ("", true, "uuid", "uuid"),
            ("string", false, "k8s-short-name", "k8s-short-name"),
        ];
        for (ty, ios, format, want) in cases {
            assert_eq!(supported_format(ty, ios, format), want, "{ty} {format}");
        }
    }
}
