//! Values and numbers as Go prints them, so messages read as Kubernetes' do.

use serde_json::Value;

use super::openapi::Num;

/// A bad value as Kubernetes prints a decoded JSON value: strings quoted, numbers and
/// booleans bare (floats as Go prints them), anything else as JSON.
pub(crate) fn go_value(v: &Value) -> String {
    match (v, Num::of(v)) {
        (Value::String(s), _) => go_quote(s),
        (_, Some(Num::Float(f))) => go_float(f),
        _ => v.to_string(),
    }
}

/// A float as Go's `%v` prints it: `1.5`, `10`, `1e+21`, `1e-05`.
pub(crate) fn go_float(f: f64) -> String {
    let abs = f.abs();
    if f == 0.0 || (1e-4..1e21).contains(&abs) || !f.is_finite() {
        return match f {
            f if f.is_nan() => "NaN".to_string(),
            f if f.is_infinite() && f > 0.0 => "+Inf".to_string(),
            f if f.is_infinite() => "-Inf".to_string(),
            f => f.to_string(),
        };
    }
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A string as Go's `%q` prints it.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
