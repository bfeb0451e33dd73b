//! `metadata` rules common to every kind: names, namespace, labels, annotations,
//! owner references, finalizers, and what an update may not change.

use serde_json::Value;

use super::json::push_all;
use super::{
    FieldError, Path, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
};
use super::{is_valid_label_value, max_len_error};
use crate::json::{array_at, bool_at, i64_at, str_at, str_opt};

/// Total size of all annotation keys and values (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// How the names of a kind are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
    /// Any string usable as a URL path segment (RBAC objects).
    PathSegment,
}

impl NameRule {
    /// The rule Kubernetes applies to names of a kind.
    pub fn for_kind(kind: &str) -> Self {
        match kind {
            "Namespace" => Self::Dns1123Label,
            "Service" => Self::Dns1035Label,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => Self::PathSegment,
            _ => Self::Dns1123Subdomain,
        }
    }

    /// Problems with `name`; `prefix` is true for a `generateName`, whose trailing dash is allowed.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && name.ends_with('-') && self != Self::PathSegment {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            Self::Dns1123Subdomain => is_dns1123_subdomain(name),
            Self::Dns1123Label => is_dns1123_label(name),
            Self::Dns1035Label => is_dns1035_label(name),
            Self::PathSegment => is_path_segment_name(name, prefix),
        }
    }
}

fn is_path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if !prefix && (name == "." || name == "..") {
        errs.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Characters of the random suffix of generated names (no vowels, no look-alikes).
pub const GENERATED_NAME_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
/// Length of the random suffix of generated names.
pub const GENERATED_NAME_SUFFIX_LEN: usize = 5;

/// The name for an object created with `generateName`: the base, cut so the whole
/// stays within 63 characters, followed by `suffix` (which the caller draws at
/// random from [`GENERATED_NAME_ALPHABET`], [`GENERATED_NAME_SUFFIX_LEN`] long).
pub fn generate_name(base: &str, suffix: &str) -> String {
    let max_base = 63 - GENERATED_NAME_SUFFIX_LEN;
    let mut cut = base.len().min(max_base);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

/// Validates `metadata` of an object being created.
pub fn validate_object_meta(meta: &Value, namespaced: bool) -> Vec<FieldError> {
    validate_object_meta_with(meta, namespaced, NameRule::Dns1123Subdomain)
}

/// Validates `metadata` with the given name rule.
pub fn validate_object_meta_with(
    meta: &Value,
    namespaced: bool,
    rule: NameRule,
) -> Vec<FieldError> {
    let path = Path::new("metadata");
    let mut errs = Vec::new();
    if !meta.is_object() {
        errs.push(FieldError::required(&path, ""));
        return errs;
    }
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        push_all(
            &mut errs,
            path.child("generateName"),
            generate_name,
            rule.check(generate_name, true),
        );
    }
    match str_at(meta, "name") {
        "" => errs.push(FieldError::required(
            path.child("name"),
            "name or generateName is required",
        )),
        name => push_all(&mut errs, path.child("name"), name, rule.check(name, false)),
    }
    let namespace = str_at(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        } else {
            push_all(
                &mut errs,
                path.child("namespace"),
                namespace,
                is_dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(g) = i64_at(meta, "generation").filter(|g| *g < 0) {
        errs.push(FieldError::invalid(
            path.child("generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    errs.extend(validate_labels(meta.get("labels"), &path.child("labels")));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        array_at(meta, "ownerReferences"),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_finalizers(
        array_at(meta, "finalizers"),
        &path.child("finalizers"),
    ));
    errs
}

/// Label keys must be qualified names and values valid label values.
pub fn validate_labels(labels: Option<&Value>, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(Value::Object(labels)) = labels else {
        return errs;
    };
    for (k, v) in labels {
        push_all(&mut errs, path, k, is_qualified_name(k));
        match v.as_str() {
            Some(v) => push_all(&mut errs, path, v, is_valid_label_value(v)),
            None => errs.push(FieldError::invalid(path, v, "label values must be strings")),
        }
    }
    errs
}

/// Annotation keys must be qualified names and the whole must fit in 256 KiB.
pub fn validate_annotations(annotations: Option<&Value>, path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(Value::Object(annotations)) = annotations else {
        return errs;
    };
    let mut total = 0;
    for (k, v) in annotations {
        push_all(&mut errs, path, k, is_qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

fn validate_owner_references(refs: &[Value], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut controllers = Vec::new();
    for r in refs {
        for (key, what) in [
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ] {
            let v = str_at(r, key);
            if v.is_empty() {
                errs.push(FieldError::invalid(
                    path.child(key),
                    v,
                    format!("{what} must not be empty"),
                ));
            }
        }
        if bool_at(r, "controller") {
            controllers.push(format!("{}/{}", str_at(r, "kind"), str_at(r, "name")));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            path,
            Value::Array(refs.to_vec()),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
    errs
}

fn validate_finalizers(finalizers: &[Value], path: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let names: Vec<&str> = finalizers.iter().filter_map(Value::as_str).collect();
    for (i, f) in names.iter().enumerate() {
        push_all(&mut errs, path.index(i), f, is_qualified_name(f));
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            Value::Array(finalizers.to_vec()),
            "finalizers orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `metadata` rules of an update: identity fields may not change.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let path = Path::new("metadata");
    let mut errs = Vec::new();
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        let (n, o) = (new.get(key), old.get(key));
        // An update may omit server-set fields; they are filled in from the stored object.
        let omitted = matches!(key, "uid" | "creationTimestamp") && n.is_none_or(Value::is_null);
        if n != o && !omitted {
            errs.push(FieldError::invalid(
                path.child(key),
                n.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    if let (Some(n), Some(o)) = (i64_at(new, "generation"), i64_at(old, "generation"))
        && n < o
    {
        errs.push(FieldError::invalid(
            path.child("generation"),
            n,
            "must not be decremented",
        ));
    }
    errs
}

/// The name limit of objects whose name is reused with a suffix (CronJob: 52).
pub(crate) fn check_name_length(errs: &mut Vec<FieldError>, meta: &Value, max: usize) {
    if let Some(name) = str_opt(meta, "name").filter(|n| n.len() > max) {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            max_len_error(max),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn names_and_namespaces() {
        let errs = validate_object_meta(&json!({"name": "Foo", "namespace": "default"}), true);
        assert_eq!(
            messages(&errs),
            vec![
                "metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        let errs = validate_object_meta(&json!({}), true);
        assert_eq!(
            messages(&errs),
            vec![
                "metadata.name: Required value: name or generateName is required",
                "metadata.namespace: Required value"
            ]
        );
        let errs = validate_object_meta(&json!({"name": "n", "namespace": "x"}), false);
        assert_eq!(
            messages(&errs),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert!(
            validate_object_meta(&json!({"name": "web-", "generateName": "web-"}), false).len()
                == 1
        );
        assert!(
            validate_object_meta(&json!({"name": "webx", "generateName": "web-"}), false)
                .is_empty()
        );
        assert!(validate_object_meta(&json!("x"), false).len() == 1);
        let svc = validate_object_meta_with(
            &json!({"name": "1abc", "namespace": "d"}),
            true,
            NameRule::Dns1035Label,
        );
        assert_eq!(svc.len(), 1);
        let role =
            validate_object_meta_with(&json!({"name": "system:a"}), false, NameRule::PathSegment);
        assert!(role.is_empty());
    }

    #[test]
    fn labels_annotations_and_references() {
        let meta = json!({
            "name": "a",
            "labels": {"bad key": "v", "ok": "-bad"},
            "annotations": {"big": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)},
            "ownerReferences": [{"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
                                {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "", "controller": true}],
            "finalizers": ["orphan", "foregroundDeletion", "-x"]
        });
        let errs = messages(&validate_object_meta(&meta, false));
        let has = |prefix: &str| errs.iter().any(|e| e.starts_with(prefix));
        assert!(
            has("metadata.labels: Invalid value: \"bad key\": name part must consist"),
            "{errs:?}"
        );
        assert!(
            has("metadata.labels: Invalid value: \"-bad\": a valid label must be"),
            "{errs:?}"
        );
        assert!(
            has("metadata.annotations: Too long: may not be more than 262144 bytes"),
            "{errs:?}"
        );
        assert!(
            has("metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"),
            "{errs:?}"
        );
        assert!(
            has("metadata.ownerReferences: Invalid value: [")
                && errs.iter().any(|e| e.contains("A/a and B/b"))
        );
        assert!(
            has("metadata.finalizers[2]: Invalid value: \"-x\""),
            "{errs:?}"
        );
        assert!(has(
            "metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\",\"-x\"]: finalizers orphan"
        ));
    }

    #[test]
    fn updates_keep_identity() {
        let old = json!({"name": "a", "namespace": "d", "uid": "u1", "generation": 2});
        assert!(
            validate_object_meta_update(&json!({"name": "a", "namespace": "d", "uid": "u1"}), &old)
                .is_empty()
        );
        assert!(
            validate_object_meta_update(&json!({"name": "a", "namespace": "d"}), &old).is_empty()
        );
        let errs = messages(&validate_object_meta_update(
            &json!({"name": "b", "namespace": "d", "uid": "u2", "generation": 1}),
            &old,
        ));
        assert_eq!(
            errs,
            vec![
                "metadata.name: Invalid value: \"b\": field is immutable",
                "metadata.uid: Invalid value: \"u2\": field is immutable",
                "metadata.generation: Invalid value: 1: must not be decremented"
            ]
        );
    }

    #[test]
    fn generated_names_fit() {
        assert_eq!(generate_name("web-", "abcde"), "web-abcde");
        assert_eq!(generate_name(&"a".repeat(70), "bcdfg").len(), 63);
    }
}
