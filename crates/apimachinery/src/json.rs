//! Lenient reading of `serde_json::Value` trees: the one way this crate reads fields.
//!
//! Every accessor treats a field that is absent, `null` or of the wrong type as missing
//! and never panics; type errors are reported when an object is decoded or validated,
//! not here. `*_at` functions read one key of an object (a `Value` or, through
//! [`Fields`], an object's `Map`); `*_ptr` functions follow a JSON pointer (RFC 6901,
//! e.g. `"/spec/template/metadata"`). Reading a key of a value that is not an object
//! is also "missing".
//!
//! ```
//! use apimachinery::json::{self, meta};
//! use serde_json::json;
//!
//! let pod = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
//!                  "spec": {"containers": [{"name": "c"}], "hostNetwork": true}});
//! assert_eq!(meta::name(&pod), "web");
//! assert_eq!(meta::label(&pod, "app"), Some("web"));
//! assert_eq!(json::array_ptr(&pod, "/spec/containers").len(), 1);
//! assert!(json::bool_ptr(&pod, "/spec/hostNetwork"));
//! assert_eq!(json::str_ptr(&pod, "/spec/nodeName"), "");
//! ```

use serde_json::{Map, Value};

/// The string at `key`, or `""` when absent or not a string.
pub fn str_at<'a>(v: &'a (impl Fields + ?Sized), key: &str) -> &'a str {
    str_opt(v, key).unwrap_or_default()
}

/// The string at `key`, or `None` when absent or not a string (so `""` stays distinct).
pub fn str_opt<'a>(v: &'a (impl Fields + ?Sized), key: &str) -> Option<&'a str> {
    v.field(key).and_then(Value::as_str)
}

/// The string at `pointer`, or `""` when absent or not a string.
pub fn str_ptr<'a>(v: &'a Value, pointer: &str) -> &'a str {
    str_ptr_opt(v, pointer).unwrap_or_default()
}

/// The string at `pointer`, or `None` when absent or not a string.
pub fn str_ptr_opt<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The string at `pointer` when it is set and not empty; `""` reads as `None` too, as
/// optional references (`spec.nodeName`, `secretRef.name`) treat it.
pub fn nonempty_ptr<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    str_ptr_opt(v, pointer).filter(|s| !s.is_empty())
}

/// Whether `key` holds `true`; absent or not a boolean reads as `false`.
pub fn bool_at(v: &(impl Fields + ?Sized), key: &str) -> bool {
    v.field(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Whether `pointer` leads to `true`; absent or not a boolean reads as `false`.
pub fn bool_ptr(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer).and_then(Value::as_bool).unwrap_or(false)
}

/// The integer at `key`, or `None` when absent or not an integer that fits an `i64`.
pub fn i64_at(v: &(impl Fields + ?Sized), key: &str) -> Option<i64> {
    v.field(key).and_then(Value::as_i64)
}

/// The integer at `pointer`, or `None` when absent or not an integer that fits an `i64`.
pub fn i64_ptr(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// The number at `key` as an `f64`, or `None` when absent or not a number.
pub fn f64_at(v: &(impl Fields + ?Sized), key: &str) -> Option<f64> {
    v.field(key).and_then(Value::as_f64)
}

/// The items of the array at `key`, or an empty slice when absent or not an array.
pub fn array_at<'a>(v: &'a (impl Fields + ?Sized), key: &str) -> &'a [Value] {
    v.field(key).map(as_slice).unwrap_or_default()
}

/// The items of the array at `pointer`, or an empty slice when absent or not an array.
pub fn array_ptr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer).map(as_slice).unwrap_or_default()
}

/// The object at `key`, or `None` when absent or not an object.
pub fn object_at<'a>(v: &'a (impl Fields + ?Sized), key: &str) -> Option<&'a Map<String, Value>> {
    v.field(key).and_then(Value::as_object)
}

/// The object at `pointer`, or `None` when absent or not an object.
pub fn object_ptr<'a>(v: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    v.pointer(pointer).and_then(Value::as_object)
}

/// The entries of the object at `key`, none when absent or not an object.
pub fn entries_at<'a>(
    v: &'a (impl Fields + ?Sized),
    key: &str,
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    object_at(v, key).into_iter().flatten()
}

/// The value at `key` whatever its type, or `null` when absent.
pub fn child<'a>(v: &'a (impl Fields + ?Sized), key: &str) -> &'a Value {
    v.field(key).unwrap_or(&Value::Null)
}

/// The value at `pointer` whatever its type, or `null` when absent.
pub fn child_ptr<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// Whether `key` is set to anything but `null`.
pub fn has(v: &(impl Fields + ?Sized), key: &str) -> bool {
    v.field(key).is_some_and(|x| !x.is_null())
}

/// What the `*_at` accessors read a key of: a JSON value (an object, or anything else,
/// which has no fields) or an object's map.
pub trait Fields: sealed::Sealed {
    /// The value at `key`, if `self` is an object that has it.
    fn field(&self, key: &str) -> Option<&Value>;
}

impl Fields for Value {
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl Fields for Map<String, Value> {
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl<T: Fields + ?Sized> Fields for &T {
    fn field(&self, key: &str) -> Option<&Value> {
        (**self).field(key)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for serde_json::Value {}
    impl Sealed for serde_json::Map<String, serde_json::Value> {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
}

fn as_slice(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The `metadata` fields of an object (`ObjectMeta`), read as leniently as the rest.
pub mod meta {
    use serde_json::{Map, Value};

    use super::{array_ptr, i64_ptr, object_ptr, str_ptr, str_ptr_opt};

    /// `metadata.name`, or `""`.
    pub fn name(obj: &Value) -> &str {
        str_ptr(obj, "/metadata/name")
    }

    /// `metadata.generateName`, or `""`.
    pub fn generate_name(obj: &Value) -> &str {
        str_ptr(obj, "/metadata/generateName")
    }

    /// `metadata.namespace`, or `""` (cluster-scoped, or not yet defaulted).
    pub fn namespace(obj: &Value) -> &str {
        str_ptr(obj, "/metadata/namespace")
    }

    /// `metadata.uid`, or `""`.
    pub fn uid(obj: &Value) -> &str {
        str_ptr(obj, "/metadata/uid")
    }

    /// `metadata.resourceVersion`, or `""`.
    pub fn resource_version(obj: &Value) -> &str {
        str_ptr(obj, "/metadata/resourceVersion")
    }

    /// `metadata.generation`, when an integer.
    pub fn generation(obj: &Value) -> Option<i64> {
        i64_ptr(obj, "/metadata/generation")
    }

    /// `metadata.deletionTimestamp`, when set: the object is being deleted.
    pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
        str_ptr_opt(obj, "/metadata/deletionTimestamp")
    }

    /// `metadata.labels`, when an object.
    pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
        object_ptr(obj, "/metadata/labels")
    }

    /// The label `key`, when set to a string.
    pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
        labels(obj)?.get(key)?.as_str()
    }

    /// `metadata.annotations`, when an object.
    pub fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
        object_ptr(obj, "/metadata/annotations")
    }

    /// The annotation `key`, when set to a string.
    pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
        annotations(obj)?.get(key)?.as_str()
    }

    /// `metadata.finalizers`, or none.
    pub fn finalizers(obj: &Value) -> &[Value] {
        array_ptr(obj, "/metadata/finalizers")
    }

    /// `metadata.ownerReferences`, or none.
    pub fn owner_references(obj: &Value) -> &[Value] {
        array_ptr(obj, "/metadata/ownerReferences")
    }

    /// `metadata.managedFields`, or none.
    pub fn managed_fields(obj: &Value) -> &[Value] {
        array_ptr(obj, "/metadata/managedFields")
    }
}

#[cfg(test)]
mod tests;
