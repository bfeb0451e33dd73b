//! The shape of the generated message table and lookups into it.
//!
//! The table itself (`schema_generated.rs`) is produced by `scripts/gen-protobuf-schema.py`
//! from k8s-pb (tags and types), k8s-openapi (JSON names) and the Go API packages (pointer
//! fields, inline fields, kind registrations).

use super::schema_generated::{KINDS, MESSAGES};

/// One protobuf message type and how its fields map to Kubernetes JSON.
#[derive(Debug)]
pub struct Message {
    /// Full protobuf name, e.g. `k8s.io.api.core.v1.ConfigMap`; used in error messages.
    pub name: &'static str,
    pub shape: Shape,
    /// Sorted by tag.
    pub fields: &'static [Field],
}

/// How a message renders as JSON. Everything but `Object` mirrors a Go type with its own
/// `MarshalJSON`, so the JSON is not a field-by-field rendering of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A JSON object with one member per present field.
    Object,
    /// `metav1.Time`: seconds → RFC 3339, empty → `null`.
    Time,
    /// `metav1.MicroTime`: seconds and nanos → RFC 3339 with microseconds, empty → `null`.
    MicroTime,
    /// `metav1.Duration`: nanoseconds → Go duration string.
    Duration,
    /// `resource.Quantity`: its string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`, apiextensions `JSON`: embedded JSON bytes
    /// (or an embedded protobuf object).
    RawJson,
    /// A Go slice type (`type ExtraValue []string`): the items field as a JSON array.
    ListWrapper,
    /// apiextensions `JSONSchemaPropsOrArray`: the array if non-empty, else the schema.
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: the schema if present, else the bool.
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: the strings if any, else the schema.
    SchemaOrStringArray,
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    /// The JSON member name; empty for `Inline` fields.
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
}

/// A field's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    /// `[]byte`: base64 in JSON.
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    /// Index into the message table.
    Msg(u16),
}

/// A field's cardinality and presence rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// Present on the wire → present in JSON, zero or not (a Go pointer or a field without
    /// `omitempty`).
    Optional,
    /// A Go non-pointer field with `omitempty`: the Go encoder writes it even when zero, and
    /// encoding/json drops it when zero, so a zero value is omitted.
    OmitZero,
    Repeated,
    /// `map<string, ty>` as a JSON object.
    Map,
    /// A Go embedded struct tagged `json:",inline"`: its members join the parent object.
    Inline,
}

/// The message a registered (apiVersion, kind) is encoded as.
pub fn kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    let i = KINDS
        .binary_search_by(|(av, k, _)| (*av, *k).cmp(&(api_version, kind)))
        .ok()?;
    let (_, _, m) = KINDS.get(i)?;
    MESSAGES.get(usize::from(*m))
}

/// The message with this index, as stored in `Ty::Msg`.
pub fn message(index: u16) -> Option<&'static Message> {
    MESSAGES.get(usize::from(index))
}

impl Message {
    /// The field with this tag, if the schema knows it.
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        let i = self.fields.binary_search_by_key(&tag, |f| f.tag).ok()?;
        self.fields.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Binary search is only right if the generator sorted; check instead of trusting it.
    #[test]
    fn tables_are_sorted_and_indices_resolve() {
        assert!(
            KINDS
                .windows(2)
                .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
        );
        for (av, k, m) in &KINDS {
            assert!(message(*m).is_some(), "{av} {k}");
        }
        for m in &MESSAGES {
            assert!(
                m.fields.windows(2).all(|w| w[0].tag < w[1].tag),
                "{}",
                m.name
            );
            for f in m.fields {
                if let Ty::Msg(i) = f.ty {
                    assert!(message(i).is_some(), "{}.{}", m.name, f.json);
                }
            }
        }
    }

    #[test]
    fn request_kinds_are_registered() {
        for (av, k, name) in [
            ("v1", "ConfigMap", "k8s.io.api.core.v1.ConfigMap"),
            ("v1", "Binding", "k8s.io.api.core.v1.Binding"),
            (
                "v1",
                "DeleteOptions",
                "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
            ("policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction"),
            ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1.Scale"),
            (
                "authentication.k8s.io/v1",
                "TokenRequest",
                "k8s.io.api.authentication.v1.TokenRequest",
            ),
            (
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
            ),
            (
                "apps/v1",
                "DeploymentList",
                "k8s.io.api.apps.v1.DeploymentList",
            ),
        ] {
            assert_eq!(kind(av, k).map(|m| m.name), Some(name), "{av} {k}");
        }
        assert!(kind("v1", "NoSuchKind").is_none());
    }
}
