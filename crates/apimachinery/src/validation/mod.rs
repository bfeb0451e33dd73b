//! Validation of objects as Kubernetes' API server does it: generic name and
//! metadata rules, per-kind rules, and what an update may not change.

mod error;
mod names;

pub use error::{BadValue, FieldError, FieldErrorKind, Path, aggregate};
pub use names::*;
