//! The simple JSON paths of CRDs (`.spec.replicas`, `.status.conditions[0].type`): checked
//! as Kubernetes checks them, and evaluated for printer columns and the scale subresource.

use serde_json::Value;

use crate::validation::FieldError;

/// `validateSimpleJSONPath`: Kubernetes only insists on the leading dot.
pub(crate) fn validate_simple_json_path(path: &str, field: &str) -> Vec<FieldError> {
    if path.is_empty() {
        vec![FieldError::invalid(field, path, "must not be empty")]
    } else if !path.starts_with('.') {
        vec![FieldError::invalid(
            field,
            path,
            "must be a simple json path starting with .",
        )]
    } else {
        Vec::new()
    }
}

/// Evaluates a path of fields and indexes such as `.spec.template.spec.containers[0].image`
/// or `.metadata.labels['app.kubernetes.io/name']`; an optional `{…}` around it is allowed.
/// `None` when a step is missing, has the wrong type, or the path uses more than this
/// subset (wildcards, filters, slices, recursive descent).
pub fn eval_simple_jsonpath<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    let path = match path.strip_prefix('{') {
        Some(inner) => inner.strip_suffix('}')?.trim(),
        None => path,
    };
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    let mut at = obj;
    if rest == "." || rest.is_empty() {
        return Some(at);
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name == "*" {
                return None;
            }
            at = at.as_object()?.get(name)?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = closing_bracket(after)?;
            let inside = after[..end].trim();
            at = match quoted(inside) {
                Some(key) => at.as_object()?.get(key)?,
                None => {
                    let i: usize = inside.parse().ok()?;
                    at.as_array()?.get(i)?
                }
            };
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(at)
}

/// The position of the `]` closing a bracket, skipping over a quoted key.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn quoted(s: &str) -> Option<&str> {
    ['\'', '"']
        .into_iter()
        .find_map(|q| s.strip_prefix(q)?.strip_suffix(q))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn simple_paths_evaluate() {
        let obj = json!({
            "spec": {"replicas": 3, "containers": [{"image": "nginx"}, {"image": "redis"}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "status": {"conditions": [[1, 2]]}
        });
        let cases = [
            (".spec.replicas", Some(json!(3))),
            ("{.spec.replicas}", Some(json!(3))),
            ("$.spec.replicas", Some(json!(3))),
            (".spec.containers[1].image", Some(json!("redis"))),
            (
                ".metadata.labels['app.kubernetes.io/name']",
                Some(json!("web")),
            ),
            (
                ".metadata.labels[\"app.kubernetes.io/name\"]",
                Some(json!("web")),
            ),
            (".status.conditions[0][1]", Some(json!(2))),
            (".", Some(obj.clone())),
            (".spec.missing", None),
            (".spec.replicas.deeper", None),
            (".spec.containers[2].image", None),
            (".spec.containers[*].image", None),
            (".spec.containers[-1]", None),
            (".spec.containers[0", None),
            ("spec.replicas", None),
            ("..spec", None),
            ("{.spec.replicas", None),
        ];
        for (path, want) in cases {
            assert_eq!(eval_simple_jsonpath(&obj, path).cloned(), want, "{path}");
        }
        assert_eq!(eval_simple_jsonpath(&json!("x"), ".a"), None);
    }

    #[test]
    fn paths_need_a_leading_dot() {
        assert!(validate_simple_json_path(".spec.replicas", "f").is_empty());
        let msgs: Vec<String> = ["", "spec.replicas"]
            .iter()
            .flat_map(|p| validate_simple_json_path(p, "f"))
            .map(|e| e.message())
            .collect();
        assert_eq!(
            msgs,
            [
                "f: Invalid value: \"\": must not be empty",
                "f: Invalid value: \"spec.replicas\": must be a simple json path starting with .",
            ]
        );
    }
}
