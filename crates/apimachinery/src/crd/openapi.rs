//! Validation of a custom resource against its schema with the rules and the words of
//! Kubernetes' OpenAPI validator (kube-openapi `validate`), turned into field errors as
//! the API server does (`kubeOpenAPIResultToFieldErrors`).
//!
//! Messages name the value by its path relative to the validated root (`spec.replicas in
//! body …`); errors that carry no field (`anyOf` and friends) are reported on `<nil>` with
//! an empty value, exactly as Kubernetes prints them.

use serde_json::Value;

use super::formats;
use super::gotext::{go_float, go_quote, go_value};
use super::structural::{Additional, Structural};
use crate::validation::{FieldError, FieldErrorKind};

/// Collects the errors of one validation, with the count of checks Kubernetes uses to
/// pick the closest failing branch of an `anyOf` / `oneOf`.
pub(crate) struct Validator<'p> {
    /// Field path the whole validated value sits at (`status` for the status subresource).
    prefix: Option<&'p str>,
    pub(crate) errs: Vec<FieldError>,
    matches: usize,
}

/// A JSON number as Go's JSON decoding gives it: `int64` when it fits, else `float64`.
#[derive(Clone, Copy)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn of(v: &Value) -> Option<Num> {
        let n = v.as_number()?;
        Some(match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
        })
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// The text `strconv.FormatFloat(v, 'f', -1, 64)` / `FormatInt` gives.
    fn decimal(self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => f.to_string(),
        }
    }
}

/// The JSON type name of a value as the validator reports it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => match Num::of(v) {
            Some(Num::Int(_)) => "integer",
            _ => "number",
        },
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `child` of the kube-openapi path `name`.
pub(crate) fn join(name: &str, child: &str) -> String {
    if name.is_empty() {
        child.to_string()
    } else {
        format!("{name}.{child}")
    }
}

impl<'p> Validator<'p> {
    pub(crate) fn new(prefix: Option<&'p str>) -> Self {
        Self {
            prefix,
            errs: Vec::new(),
            matches: 0,
        }
    }

    /// Validates `v` at kube-openapi path `name` and returns the errors, de-duplicated.
    pub(crate) fn run(mut self, s: &Structural, v: &Value) -> Vec<FieldError> {
        self.node(s, v, "");
        let mut out: Vec<FieldError> = Vec::with_capacity(self.errs.len());
        for e in self.errs {
            if !out.contains(&e) {
                out.push(e);
            }
        }
        out
    }

    /// The field path of kube-openapi path `name`.
    fn field(&self, name: &str) -> String {
        let name = name.trim_start_matches('.');
        match (self.prefix, name.is_empty()) {
            (Some(p), true) => p.to_string(),
            (None, true) => "<nil>".to_string(),
            (Some(p), false) => format!("{p}.{name}"),
            (None, false) => name.to_string(),
        }
    }

    fn invalid(&mut self, name: &str, value: &Value, detail: String) {
        self.errs.push(FieldError {
            kind: FieldErrorKind::Invalid,
            field: self.field(name),
            value: Some(go_value(value)),
            detail,
        });
    }

    /// An error without a field: reported on the root with an empty value.
    fn plain(&mut self, detail: String) {
        let field = self.field("");
        self.errs.push(FieldError::invalid(field, "", detail));
    }

    fn type_error(&mut self, name: &str, expected: &str, actual: &str) {
        let detail = format!(
            "{name} in body must be of type {expected}: {}",
            go_quote(actual)
        );
        self.invalid(name, &Value::String(actual.to_string()), detail);
    }

    fn sub(&self, s: &Structural, v: &Value, name: &str) -> Validator<'p> {
        let mut r = Validator::new(self.prefix);
        r.node(s, v, name);
        r
    }

    fn merge(&mut self, other: Validator<'_>) {
        self.errs.extend(other.errs);
        self.matches += other.matches;
    }

    fn node(&mut self, s: &Structural, v: &Value, name: &str) {
        let types = s.types();
        if v.is_null() {
            if !types.is_empty() && !s.nullable {
                self.type_error(name, &types.join(","), "null");
            }
            self.enumeration(s, v, name);
            return;
        }
        if !types.is_empty() || !s.format.is_empty() {
            self.matches += 1;
            self.check_type(s, &types, v, name);
        }
        self.matches += 1;
        self.combinators(s, v, name);
        match v {
            Value::String(text) => {
                self.matches += 1;
                self.string(s, text, v, name);
                if !s.format.is_empty() && formats::is_known(&s.format) {
                    self.matches += 1;
                    if !formats::validates(&s.format, text) {
                        self.type_error(name, &s.format, text);
                    }
                }
            }
            Value::Number(_) => {
                self.matches += 1;
                if let Some(n) = Num::of(v) {
                    self.number(s, &types, n, v, name);
                }
            }
            Value::Array(items) => {
                self.matches += 1;
                self.array(s, items, name);
            }
            _ => {}
        }
        self.matches += 1;
        self.enumeration(s, v, name);
        if let Value::Object(fields) = v {
            self.matches += 1;
            self.object(s, fields, name);
        }
        self.matches += 1;
    }

    fn check_type(&mut self, s: &Structural, types: &[&str], v: &Value, name: &str) {
        let actual = type_name(v);
        let integral = matches!(Num::of(v), Some(Num::Float(f)) if is_json_integer(f));
        let float_int = actual == "number" && integral && types.contains(&"integer");
        let int_float = actual == "integer" && types.contains(&"number");
        let matches_type = types.contains(&actual) || float_int || int_float;
        let data_format = match Num::of(v) {
            Some(Num::Int(_)) => "int64",
            Some(Num::Float(_)) => "float64",
            None => "",
        };
        // A number, boolean or object against a format is named by the format it misses.
        let checks_format = !v.is_string() && !v.is_array() && !s.format.is_empty();
        if checks_format && !matches_type && data_format != s.format {
            self.type_error(name, &s.format, data_format);
            return;
        }
        let numeric = types.contains(&"number") || types.contains(&"integer");
        // Kubernetes lets any string through a format-only check; arrays still need the type.
        if v.is_string() && !numeric && !s.format.is_empty() {
            return;
        }
        if !matches_type {
            self.type_error(name, &types.join(","), actual);
        }
    }

    fn combinators(&mut self, s: &Structural, v: &Value, name: &str) {
        if !s.any_of.is_empty() {
            let mut best: Option<Validator<'p>> = None;
            let mut success = None;
            for branch in &s.any_of {
                let r = self.sub(branch, v, name);
                if r.errs.is_empty() {
                    success = Some(r);
                    best = None;
                    break;
                }
                if best.as_ref().is_none_or(|b| r.matches > b.matches) {
                    best = Some(r);
                }
            }
            if success.is_none() {
                self.plain(format!(
                    "{} must validate at least one schema (anyOf)",
                    go_quote(name)
                ));
            }
            if let Some(r) = best.or(success) {
                self.merge(r);
            }
        }
        if !s.one_of.is_empty() {
            let mut best: Option<Validator<'p>> = None;
            let mut success = None;
            let mut valid = 0;
            for branch in &s.one_of {
                let r = self.sub(branch, v, name);
                if r.errs.is_empty() {
                    valid += 1;
                    best = None;
                    success.get_or_insert(r);
                } else if valid == 0 && best.as_ref().is_none_or(|b| r.matches > b.matches) {
                    best = Some(r);
                }
            }
            if valid == 1 {
                if let Some(r) = success {
                    self.merge(r);
                }
            } else {
                let found = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                self.plain(format!(
                    "{} must validate one and only one schema (oneOf). {found}",
                    go_quote(name)
                ));
                if let Some(r) = best {
                    self.merge(r);
                }
            }
        }
        if !s.all_of.is_empty() {
            let mut valid = 0;
            for branch in &s.all_of {
                let r = self.sub(branch, v, name);
                if r.errs.is_empty() {
                    valid += 1;
                }
                self.merge(r);
            }
            if valid != s.all_of.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                self.plain(format!(
                    "{} must validate all the schemas (allOf){none}",
                    go_quote(name)
                ));
            }
        }
        if let Some(not) = &s.not
            && self.sub(not, v, name).errs.is_empty()
        {
            self.plain(format!(
                "{} must not validate the schema (not)",
                go_quote(name)
            ));
        }
    }

    fn string(&mut self, s: &Structural, text: &str, v: &Value, name: &str) {
        let len = text.chars().count() as i64;
        if let Some(max) = s.max_length.filter(|max| len > *max) {
            let unit = if max == 1 { "byte" } else { "bytes" };
            self.errs.push(FieldError {
                kind: FieldErrorKind::TooLong,
                field: self.field(name),
                value: None,
                detail: format!("may not be more than {max} {unit}"),
            });
            return;
        }
        if let Some(min) = s.min_length.filter(|min| len < *min) {
            self.invalid(
                name,
                v,
                format!("{name} in body should be at least {min} chars long"),
            );
            return;
        }
        if let Some(p) = &s.pattern {
            let shown = match p.compiled() {
                Ok(re) if re.is_match(text) => return,
                Ok(_) => p.source.clone(),
                Err(e) => format!("{}, but pattern is invalid: {e}", p.source),
            };
            self.invalid(name, v, format!("{name} in body should match '{shown}'"));
        }
    }

    fn number(&mut self, s: &Structural, types: &[&str], n: Num, v: &Value, name: &str) {
        let ty = match types {
            [t @ ("integer" | "number")] => *t,
            _ => "",
        };
        let format = if ty.is_empty() { "" } else { s.format.as_str() };
        if let Some(e) = out_of_range(n, ty, format, "Checked", name) {
            self.plain(e);
        }
        if let Some(factor) = s.multiple_of {
            let native = self.bound_in_range(factor, ty, format, "MultipleOf", name);
            let (positive, multiple, shown) = match (native, n) {
                (true, Num::Int(i)) => {
                    let f = factor as i64;
                    (f > 0, f > 0 && i % f == 0, f.to_string())
                }
                _ => {
                    let d = n.as_f64();
                    let m = if factor < 1.0 {
                        1.0 / factor * d
                    } else {
                        d / factor
                    };
                    (factor > 0.0, is_json_integer(m), go_float(factor))
                }
            };
            if !positive {
                let detail =
                    format!("factor MultipleOf declared for {name} must be positive: {shown}");
                let field = self.field(name);
                self.errs.push(FieldError {
                    kind: FieldErrorKind::Invalid,
                    field,
                    value: Some(shown.clone()),
                    detail,
                });
            } else if !multiple {
                self.invalid(
                    name,
                    v,
                    format!("{name} in body should be a multiple of {shown}"),
                );
            }
        }
        if let Some(min) = s.minimum {
            let native = self.bound_in_range(min, ty, format, "Minimum boundary", name);
            let (bound_vs_value, shown) = compare(n, min, native);
            let fails = if s.exclusive_minimum {
                bound_vs_value >= 0
            } else {
                bound_vs_value > 0
            };
            if fails {
                let op = if s.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.invalid(name, v, format!("{name} in body should be {op} {shown}"));
            }
        }
        if let Some(max) = s.maximum {
            let native = self.bound_in_range(max, ty, format, "Maximum boundary", name);
            let (bound_vs_value, shown) = compare(n, max, native);
            let fails = if s.exclusive_maximum {
                bound_vs_value <= 0
            } else {
                bound_vs_value < 0
            };
            if fails {
                let op = if s.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.invalid(name, v, format!("{name} in body should be {op} {shown}"));
            }
        }
    }

    /// Whether a schema bound fits the type; Kubernetes reports it and compares as floats when not.
    fn bound_in_range(
        &mut self,
        bound: f64,
        ty: &str,
        format: &str,
        what: &str,
        name: &str,
    ) -> bool {
        match out_of_range(Num::Float(bound), ty, format, what, name) {
            Some(e) => {
                self.plain(e);
                false
            }
            None => true,
        }
    }

    fn array(&mut self, s: &Structural, items: &[Value], name: &str) {
        if let Some(item) = &s.items {
            for (i, v) in items.iter().enumerate() {
                self.node(item, v, &format!("{name}[{i}]"));
            }
        }
        let size = items.len() as i64;
        if let Some(min) = s.min_items.filter(|min| size < *min) {
            self.invalid(
                name,
                &size.into(),
                format!("{name} in body should have at least {min} items"),
            );
        }
        if let Some(max) = s.max_items.filter(|max| size > *max) {
            self.too_many(name, size, max);
        }
        if s.unique_items
            && items
                .iter()
                .enumerate()
                .any(|(i, x)| items[..i].contains(x))
        {
            self.invalid(
                name,
                &Value::from(""),
                format!("{name} in body shouldn't contain duplicates"),
            );
        }
    }

    fn too_many(&mut self, name: &str, actual: i64, max: i64) {
        let unit = if max == 1 { "item" } else { "items" };
        self.errs.push(FieldError {
            kind: FieldErrorKind::TooMany,
            field: self.field(name),
            value: Some(actual.to_string()),
            detail: format!("must have at most {max} {unit}"),
        });
    }

    fn enumeration(&mut self, s: &Structural, v: &Value, name: &str) {
        let Some(allowed) = &s.enumeration else {
            return;
        };
        if allowed.is_empty() || (!v.is_null() && allowed.iter().any(|a| enum_equal(v, a))) {
            return;
        }
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let field = self.field(name);
        self.errs.push(FieldError::not_supported(field, v, &values));
    }

    fn object(&mut self, s: &Structural, fields: &serde_json::Map<String, Value>, name: &str) {
        let count = fields.len() as i64;
        if let Some(min) = s.min_properties.filter(|min| count < *min) {
            self.invalid(
                name,
                &count.into(),
                format!("{name} in body should have at least {min} properties"),
            );
        }
        if let Some(max) = s.max_properties.filter(|max| count > *max) {
            self.too_many(name, count, max);
        }
        match &s.additional {
            Some(Additional::Allows(false)) => {
                for key in fields.keys().filter(|k| s.property(k).is_none()) {
                    let detail = format!("{name}.{key} in body is a forbidden property");
                    self.invalid(name, &Value::String(key.clone()), detail);
                }
            }
            Some(Additional::Schema(extra)) => {
                for (key, v) in fields.iter().filter(|(k, _)| s.property(k).is_none()) {
                    self.node(extra, v, &format!("{name}.{key}"));
                }
            }
            _ => {}
        }
        for (key, prop) in &s.properties {
            if let Some(v) = fields.get(key) {
                self.node(prop, v, &join(name, key));
            }
        }
        for key in s.required.iter().filter(|k| !fields.contains_key(*k)) {
            let field = self.field(&format!("{name}.{key}"));
            self.errs.push(FieldError::required(field, ""));
        }
    }
}

/// `IsValueValidAgainstRange`: whether a number fits the type and format, as text.
fn out_of_range(n: Num, ty: &str, format: &str, what: &str, name: &str) -> Option<String> {
    let text = n.decimal();
    let fits = match (ty, format) {
        ("integer", "int32") => text.parse::<i32>().is_ok(),
        ("integer", _) => text.parse::<i64>().is_ok(),
        (_, "float") => text.parse::<f32>().is_ok_and(f32::is_finite),
        _ => true,
    };
    if fits {
        return None;
    }
    Some(if format.is_empty() {
        format!("{what} value must be of type {ty} (default format) in {name}")
    } else {
        format!("{what} value must be of type {ty} with format {format} in {name}")
    })
}

/// Compares a value with a bound the way Kubernetes does: integers against the bound cut
/// to an integer, floats as floats. Returns the ordering of bound against value and the
/// bound as the message prints it.
fn compare(n: Num, bound: f64, native: bool) -> (i8, String) {
    let ord = |o: std::cmp::Ordering| o as i8;
    match (native, n) {
        (true, Num::Int(i)) => {
            let b = bound as i64;
            (ord(b.cmp(&i)), b.to_string())
        }
        _ => {
            let d = n.as_f64();
            let o = bound.partial_cmp(&d).unwrap_or(std::cmp::Ordering::Equal);
            (ord(o), go_float(bound))
        }
    }
}

/// `swag.IsFloat64AJSONInteger`.
fn is_json_integer(f: f64) -> bool {
    if !f.is_finite() || f.abs() > 9_007_199_254_740_992.0 {
        return false;
    }
    let diff = (f - f.round()).abs();
    diff == 0.0 || diff < 1e-9 * f.abs().max(1.0)
}

/// Enum membership: equal JSON, with numbers compared by value (Go converts types).
fn enum_equal(v: &Value, allowed: &Value) -> bool {
    match (Num::of(v), Num::of(allowed)) {
        (Some(a), Some(b)) => a.as_f64() == b.as_f64(),
        _ => v == allowed,
    }
}
