//! Tables of custom resources from a CRD version's `additionalPrinterColumns`, with the
//! JSONPath subset those columns use in practice: fields, `['quoted keys']`, indexes, `[*]`
//! and equality filters such as `[?(@.type=="Ready")]`.

use std::time::SystemTime;

use serde_json::Value;

use super::format::{at, str_at};
use super::{
    AGE_DESC, IncludeObject, NAME_DESC, Row, column_value, row_value, table, unix_seconds,
};

pub use apimachinery::crd::PrinterColumn;

/// The columns a custom resource version prints: its declared ones, or AGE when it
/// declares none, as Kubernetes does.
pub fn columns_or_age(declared: &[PrinterColumn]) -> Vec<PrinterColumn> {
    if !declared.is_empty() {
        return declared.to_vec();
    }
    vec![PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: AGE_DESC.into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

/// A `Table` of custom resources: NAME, then `columns`.
pub fn custom_resource_table(
    columns: &[PrinterColumn],
    items: &[&Value],
    include_object: IncludeObject,
    list_meta: Value,
    now: SystemTime,
) -> Value {
    let now = unix_seconds(now);
    let mut definitions = vec![column_value("Name", "string", "name", NAME_DESC, 0)];
    definitions.extend(columns.iter().map(|c| {
        let description = if c.description.is_empty() {
            "Custom resource definition column (in JSONPath format): "
        } else {
            ""
        };
        let description = format!(
            "{description}{}",
            if c.description.is_empty() {
                &c.json_path
            } else {
                &c.description
            }
        );
        column_value(&c.name, &c.type_, &c.format, &description, c.priority)
    }));
    let rows = items
        .iter()
        .map(|obj| {
            let mut cells = vec![Value::from(str_at(obj, "metadata.name"))];
            cells.extend(columns.iter().map(|c| cell(c, obj, now)));
            row_value(
                Row {
                    cells,
                    conditions: None,
                },
                obj,
                include_object,
            )
        })
        .collect();
    table(definitions, rows, list_meta)
}

/// Converts the first match as Kubernetes' CRD table convertor does; null when nothing
/// matches or the value does not fit the column type.
fn cell(column: &PrinterColumn, obj: &Value, now: i64) -> Value {
    let Some(value) = json_path(obj, &column.json_path).into_iter().next() else {
        return Value::Null;
    };
    match column.type_.as_str() {
        "string" => match value {
            Value::String(s) => Value::String(s.clone()),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        },
        "integer" => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        "number" => value.as_f64().map_or(Value::Null, Value::from),
        "boolean" => value.as_bool().map_or(Value::Null, Value::from),
        "date" => match super::format::parse_time(value) {
            Some(t) => Value::String(super::format::human_duration(now - t)),
            None if value.is_string() => Value::String("<invalid>".into()),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// One step of a parsed path.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.a.b=="v")]`: elements whose `a.b` equals `v`.
    Filter(String, Value),
}

/// Every value `path` selects in `root`; empty for paths outside the subset.
pub(crate) fn json_path<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![root];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(i) => next.extend(v.get(*i)),
                Step::All => match v {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter(field, want) => {
                    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
                    next.extend(items.iter().filter(|item| at(item, field) == want));
                }
            }
        }
        current = next;
    }
    current
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let mut rest = path.trim().strip_prefix('$').unwrap_or(path.trim());
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end > 0 {
                steps.push(Step::Field(after[..end].to_string()));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = bracket_end(after)?;
            steps.push(parse_bracket(after[..end].trim())?);
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// Index of the `]` closing a bracket, skipping any inside quotes.
fn bracket_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse::<usize>() {
        return Some(Step::Index(i));
    }
    if let Some(key) = unquote(inner) {
        return Some(Step::Field(key.to_string()));
    }
    let filter = inner.strip_prefix("?(")?.strip_suffix(')')?;
    let (lhs, rhs) = filter.split_once("==")?;
    let field = lhs.trim().strip_prefix("@.")?.to_string();
    let rhs = rhs.trim();
    let want = match unquote(rhs) {
        Some(s) => Value::String(s.to_string()),
        None => serde_json::from_str(rhs).ok()?,
    };
    Some(Step::Filter(field, want))
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_path_subset() {
        let obj = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
                         "metadata": {"labels": {"app.kubernetes.io/name": "db"}}, "spec": {"replicas": 3, "ports": [1, 2]}});
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![&json!("True")]
        );
        assert_eq!(
            json_path(&obj, ".metadata.labels['app.kubernetes.io/name']"),
            vec![&json!("db")]
        );
        assert_eq!(json_path(&obj, "{.spec.ports[1]}"), vec![&json!(2)]);
        assert_eq!(json_path(&obj, "$.spec.ports[*]").len(), 2);
        assert!(json_path(&obj, ".spec.missing").is_empty());
        assert!(json_path(&obj, "spec[").is_empty());
        assert!(json_path(&obj, ".spec[?(@.x>1)]").is_empty());
    }

    #[test]
    fn custom_columns_convert_by_type() {
        let version = json!({"name": "v1", "additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]});
        let columns = columns_or_age(&apimachinery::crd::printer_columns(&version));
        let obj = json!({"metadata": {"name": "db1", "creationTimestamp": "1970-01-01T00:00:00Z"},
                         "spec": {"replicas": 2.0}, "status": {}});
        let now = UNIX_EPOCH + Duration::from_secs(300);
        let table = custom_resource_table(&columns, &[&obj], IncludeObject::None, json!({}), now);
        assert_eq!(table["rows"][0]["cells"], json!(["db1", 2, null, "5m"]));
        assert_eq!(table["columnDefinitions"][2]["priority"], 1);
        assert_eq!(
            columns_or_age(&apimachinery::crd::printer_columns(&json!({})))[0].name,
            "Age"
        );
    }
}
