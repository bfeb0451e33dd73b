//! Small readers over Kubernetes JSON and the formatting kubectl users know: ages, label
//! selectors, container lists. Every reader tolerates missing or mistyped fields, because
//! stored objects are only as well-formed as the validation that admitted them.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

static NULL: Value = Value::Null;

/// The value at a dotted path, or null when any step is missing.
pub(crate) fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(v, |v, key| v.get(key))
        .unwrap_or(&NULL)
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_default()
}

pub(crate) fn int_at(v: &Value, path: &str) -> i64 {
    let value = at(v, path);
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f as i64))
        .unwrap_or_default()
}

pub(crate) fn opt_int_at(v: &Value, path: &str) -> Option<i64> {
    at(v, path).as_i64()
}

pub(crate) fn bool_at(v: &Value, path: &str) -> bool {
    at(v, path).as_bool().unwrap_or_default()
}

pub(crate) fn list_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Entries of a map or items of a list, as Kubernetes' `len()` of either.
pub(crate) fn count_at(v: &Value, path: &str) -> usize {
    match at(v, path) {
        Value::Object(map) => map.len(),
        Value::Array(items) => items.len(),
        _ => 0,
    }
}

/// `s`, or `<none>` when empty, as the printers show absent values.
pub(crate) fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp.
pub(crate) fn parse_time(value: &Value) -> Option<i64> {
    value
        .as_str()?
        .parse::<Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// How long ago `value` was, as `kubectl get` shows ages; `<unknown>` when unset.
pub(crate) fn since(value: &Value, now: i64) -> String {
    match parse_time(value) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// Kubernetes' `duration.HumanDuration`: coarser the older, two units at most.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, h)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{}d", hours / 24 / 365, days)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `k1=v1,k2=v2` sorted by key, `<none>` when empty (`labels.FormatLabels`).
pub(crate) fn format_labels(map: &Value) -> String {
    let Some(map) = map.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A `LabelSelector` as `metav1.FormatLabelSelector` prints it: requirements sorted by key,
/// `<none>` for an empty or absent selector.
pub(crate) fn format_label_selector(selector: &Value) -> String {
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = at(selector, "matchLabels").as_object() {
        for (k, v) in labels {
            requirements.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for expr in list_at(selector, "matchExpressions") {
        let key = str_at(expr, "key");
        let mut values: Vec<&str> = list_at(expr, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match str_at(expr, "operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".into(),
        };
        requirements.push((key.to_string(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let joined: Vec<String> = requirements.into_iter().map(|(_, text)| text).collect();
    or_none(&joined.join(","))
}

/// The CONTAINERS and IMAGES cells of workload printers.
pub(crate) fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "image")).collect();
    (names.join(","), images.join(","))
}

/// `a,b,c + N more...` for lists longer than three, as several printers abbreviate.
pub(crate) fn list_with_more(items: &[String], empty: &str) -> String {
    const MAX: usize = 3;
    if items.is_empty() {
        return empty.into();
    }
    let shown = items[..items.len().min(MAX)].join(",");
    if items.len() > MAX {
        format!("{shown} + {} more...", items.len() - MAX)
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_duration_matches_kubernetes() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (240, "4m"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (51 * 3600, "2d3h"),
            (48 * 3600, "2d"),
            (10 * 86400, "10d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (4 * 365 * 86400, "4y"),
            (9 * 365 * 86400 + 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn selectors_format_like_kubectl() {
        let sel = json!({"matchLabels": {"app": "web", "tier": "fe"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                 {"key": "zz", "operator": "DoesNotExist"}]});
        assert_eq!(
            format_label_selector(&sel),
            "app=web,env in (dev,prod),tier=fe,!zz"
        );
        assert_eq!(format_label_selector(&json!({})), "<none>");
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
    }

    #[test]
    fn readers_tolerate_missing_and_mistyped_fields() {
        let v = json!({"a": {"b": [1, 2]}, "s": 5});
        assert_eq!(count_at(&v, "a.b"), 2);
        assert_eq!(str_at(&v, "s"), "");
        assert_eq!(int_at(&v, "a.b.c"), 0);
        assert_eq!(since(&json!("not a time"), 0), "<unknown>");
        assert_eq!(since(&json!("1970-01-01T00:01:00Z"), 65), "5s");
    }
}
