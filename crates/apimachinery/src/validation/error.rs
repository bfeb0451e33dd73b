//! Field errors as Kubernetes reports them in a `Status` of reason `Invalid`.

use std::fmt;

use serde_json::Value;

/// What was wrong with a field; each maps to one Kubernetes cause reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
    NotFound,
}

impl FieldErrorKind {
    /// The `reason` of a `StatusCause`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::NotFound => "FieldValueNotFound",
        }
    }

    /// The words Kubernetes puts before the value in a message.
    pub fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::NotFound => "Not found",
        }
    }
}

/// One invalid field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// Path of the field, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The offending value rendered as Kubernetes prints it: strings quoted,
    /// numbers and booleans bare, anything else as JSON.
    pub value: Option<String>,
    pub detail: String,
}

/// A value that can be shown in a field error.
pub trait BadValue {
    fn render(&self) -> String;
}

impl BadValue for str {
    fn render(&self) -> String {
        Value::String(self.to_string()).to_string()
    }
}
impl BadValue for String {
    fn render(&self) -> String {
        self.as_str().render()
    }
}
impl BadValue for Value {
    fn render(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            other => other.to_string(),
        }
    }
}
macro_rules! bare_value {
    ($($t:ty),*) => {$(
        impl BadValue for $t {
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
bare_value!(i64, i32, u64, usize, bool, f64);

impl<T: BadValue + ?Sized> BadValue for &T {
    fn render(&self) -> String {
        (**self).render()
    }
}

impl FieldError {
    fn new(
        kind: FieldErrorKind,
        field: impl fmt::Display,
        value: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field: field.to_string(),
            value,
            detail: detail.into(),
        }
    }

    pub fn required(field: impl fmt::Display, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail)
    }

    pub fn invalid(
        field: impl fmt::Display,
        value: impl BadValue,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorKind::Invalid, field, Some(value.render()), detail)
    }

    /// A value outside an enumeration; `supported` lists the allowed ones.
    pub fn not_supported(
        field: impl fmt::Display,
        value: impl BadValue,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| s.render()).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            Some(value.render()),
            detail,
        )
    }

    pub fn duplicate(field: impl fmt::Display, value: impl BadValue) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, Some(value.render()), "")
    }

    pub fn forbidden(field: impl fmt::Display, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail)
    }

    pub fn too_long(field: impl fmt::Display, max_bytes: usize) -> Self {
        Self::new(
            FieldErrorKind::TooLong,
            field,
            None,
            format!("may not be more than {max_bytes} bytes"),
        )
    }

    pub fn too_many(field: impl fmt::Display, actual: usize, max: usize) -> Self {
        Self::new(
            FieldErrorKind::TooMany,
            field,
            Some(actual.render()),
            format!("must have at most {max} items"),
        )
    }

    /// A reference to something that does not exist, e.g. a volume mount's volume.
    pub fn not_found(field: impl fmt::Display, value: impl BadValue) -> Self {
        Self::new(FieldErrorKind::NotFound, field, Some(value.render()), "")
    }

    /// The `reason` of the `StatusCause` for this error.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// The message without the field path, as Kubernetes' `ErrorBody`.
    pub fn body(&self) -> String {
        let mut s = self.kind.label().to_string();
        let shows_value = !matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        if let (true, Some(v)) = (shows_value, &self.value) {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The full message, e.g. `spec.containers[0].image: Required value`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FieldError {}

/// Joins errors the way Kubernetes aggregates them: one message alone, several in brackets.
pub fn aggregate(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.message(),
        many => format!(
            "[{}]",
            many.iter()
                .map(FieldError::message)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A field path under construction: `spec`, `.containers`, `[0]`, `[key]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Path(String);

impl Path {
    pub fn new(root: &str) -> Self {
        Self(root.to_string())
    }

    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub fn key(&self, k: &str) -> Self {
        Self(format!("{}[{k}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_kubernetes() {
        let cases = [
            (
                FieldError::required("spec.containers[0].image", ""),
                "spec.containers[0].image: Required value",
            ),
            (
                FieldError::invalid("metadata.name", "Foo", "bad"),
                "metadata.name: Invalid value: \"Foo\": bad",
            ),
            (
                FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"]),
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\"",
            ),
            (
                FieldError::duplicate("spec.containers[1].name", "web"),
                "spec.containers[1].name: Duplicate value: \"web\"",
            ),
            (
                FieldError::invalid("spec.replicas", -1i64, "must be greater than or equal to 0"),
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                FieldError::forbidden("spec", "pod updates may not change fields"),
                "spec: Forbidden: pod updates may not change fields",
            ),
            (
                FieldError::too_long("metadata.annotations", 262144),
                "metadata.annotations: Too long: may not be more than 262144 bytes",
            ),
            (
                FieldError::too_many("spec.x", 5, 3),
                "spec.x: Too many: 5: must have at most 3 items",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.message(), want);
        }
        assert_eq!(FieldError::required("a", "").reason(), "FieldValueRequired");
        assert_eq!(
            FieldError::too_many("a", 1, 0).reason(),
            "FieldValueTooMany"
        );
    }

    #[test]
    fn paths_compose() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("resources")
            .child("limits")
            .key("cpu");
        assert_eq!(p.as_str(), "spec.containers[0].resources.limits[cpu]");
        assert_eq!(Path::default().child("metadata").as_str(), "metadata");
    }
}
