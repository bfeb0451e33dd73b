//! RFC 6902 JSON patch, applied one operation at a time so that what a patch
//! may cost stays bounded: how many operations it has, how many bytes its
//! `copy` operations add, and how deeply values end up nested.
//!
//! Without a bound, `add /z` followed by thirty `copy /z → /z/-` doubles the
//! document thirty times. Kubernetes refuses patches of more than 10,000
//! operations and limits the accumulated size of copied values to 3 MiB
//! (json-patch's `AccumulatedCopySizeLimit`, set from the API server's
//! `JSONPatchMaxCopyBytes`). Every other operation adds at most what the patch
//! itself holds, so the result is at most the document, plus the patch, plus
//! that limit.

use std::io;

use json_patch::PatchOperation;
use serde_json::Value;

use super::PatchError;
use crate::decode::MAX_DEPTH;

/// The most operations a JSON patch may have (Kubernetes' `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes, as compact JSON, that a patch's `copy` operations may copy
/// in total (Kubernetes' default `JSONPatchMaxCopyBytes`).
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Applies an RFC 6902 JSON patch given as its raw JSON text.
///
/// Refuses with [`PatchError::TooLarge`] a patch of more than
/// [`MAX_JSON_PATCH_OPERATIONS`] operations (before applying any), and with
/// [`PatchError::Apply`], as any operation that cannot be applied, one whose
/// copies add up to more than [`MAX_JSON_PATCH_COPY_BYTES`] or that would nest
/// values more than [`MAX_DEPTH`] levels deep, which no decoder would read back.
pub fn json_patch(doc: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(patch).map_err(|e| PatchError::Malformed(e.to_string()))?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut out = doc.clone();
    let mut copied = 0;
    for (i, op) in ops.iter().enumerate() {
        check(&out, op, &mut copied).map_err(|e| e.at(i, op))?;
        // The document is a copy, so an operation that fails half way leaves
        // nothing behind and needs no undo log.
        json_patch::patch_unsafe(&mut out, std::slice::from_ref(op)).map_err(|e| {
            PatchError::Apply(format!(
                "operation '/{i}' failed at path '{}': {}",
                e.path, e.kind
            ))
        })?;
    }
    Ok(out)
}

/// Why an operation was refused before it ran.
enum Refusal {
    CopyTooLarge,
    TooDeep,
}

impl Refusal {
    fn at(self, i: usize, op: &PatchOperation) -> PatchError {
        match self {
            Refusal::CopyTooLarge => PatchError::Apply(format!(
                "operation '/{i}': unable to complete the copy, the accumulated size increase of copy exceeds the limit {MAX_JSON_PATCH_COPY_BYTES}"
            )),
            Refusal::TooDeep => PatchError::Apply(format!(
                "operation '/{i}' failed at path '{}': the result would nest more than {MAX_DEPTH} levels deep",
                op.path()
            )),
        }
    }
}

/// Checks that `op` keeps the document within bounds: its values nest no
/// deeper than [`MAX_DEPTH`] (or than the document already did) and its copies
/// stay within [`MAX_JSON_PATCH_COPY_BYTES`], counted in `copied`.
fn check(doc: &Value, op: &PatchOperation, copied: &mut usize) -> Result<(), Refusal> {
    let at = op.path().count();
    let room = MAX_DEPTH.saturating_sub(at);
    let placed = match op {
        PatchOperation::Add(op) => Some(&op.value),
        PatchOperation::Replace(op) => Some(&op.value),
        PatchOperation::Copy(op) => {
            let Some(source) = doc.pointer(op.from.as_str()) else {
                return Ok(()); // The operation fails by itself.
            };
            let budget = MAX_JSON_PATCH_COPY_BYTES - *copied;
            match compact_len(source, budget) {
                Some(n) => *copied += n,
                None => return Err(Refusal::CopyTooLarge),
            }
            Some(source)
        }
        // A value moved no deeper than it was cannot nest deeper than the
        // document already does; only moving it down needs a look.
        PatchOperation::Move(op) if at > op.from.count() => doc.pointer(op.from.as_str()),
        PatchOperation::Move(_) | PatchOperation::Remove(_) | PatchOperation::Test(_) => None,
    };
    match placed {
        Some(v) if depth_exceeds(v, room) => Err(Refusal::TooDeep),
        _ => Ok(()),
    }
}

/// Whether `v` nests arrays and objects more than `room` levels deep. Looks no
/// deeper than `room + 1` levels, so deep values cannot exhaust the stack.
fn depth_exceeds(v: &Value, room: usize) -> bool {
    match v {
        Value::Array(a) => room == 0 || a.iter().any(|c| depth_exceeds(c, room - 1)),
        Value::Object(m) => room == 0 || m.values().any(|c| depth_exceeds(c, room - 1)),
        _ => false,
    }
}

/// The length of `v` as compact JSON, or `None` once it exceeds `budget`
/// (without writing out more than that).
fn compact_len(v: &Value, budget: usize) -> Option<usize> {
    struct Counter {
        n: usize,
        budget: usize,
    }
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.n += buf.len();
            if self.n > self.budget {
                return Err(io::Error::other("over budget"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { n: 0, budget };
    serde_json::to_writer(&mut counter, v).ok()?;
    Some(counter.n)
}

#[cfg(test)]
mod tests;
