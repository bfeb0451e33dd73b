//! Patching objects: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! Kubernetes' strategic merge patch, with the table of list strategies it needs.

mod json;
mod lists;
mod strategic;
mod table;
mod types;

use serde_json::{Map, Value};

pub use json::{MAX_JSON_PATCH_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS, json_patch};
pub use table::{ListStrategy, PATCH_STRATEGIES, field_type, list_strategy, root_type};
pub use types::FIELD_TYPES;

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is not of the shape its patch type requires.
    #[error("invalid patch: {0}")]
    Malformed(String),
    /// The patch is well formed but does not apply to this object (a `test` failed, a path is missing).
    #[error("the patch could not be applied: {0}")]
    Apply(String),
    /// The patch has more than [`MAX_JSON_PATCH_OPERATIONS`] operations
    /// (Kubernetes answers 413 Request Entity Too Large).
    #[error("{0}")]
    TooLarge(String),
    /// Strategic merge patch needs type information only built-in kinds have.
    #[error("strategic merge patch is not supported for {api_version}, Kind={kind}")]
    UnsupportedForKind { api_version: String, kind: String },
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// Applies a strategic merge patch to an object of a built-in kind.
pub fn strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let Some(ty) = root_type(api_version, kind) else {
        return Err(PatchError::UnsupportedForKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".to_string(),
        ));
    };
    let empty = Map::new();
    let original = doc.as_object().unwrap_or(&empty);
    strategic::merge_map(original, patch, Some(&ty))
}

#[cfg(test)]
mod tests;
