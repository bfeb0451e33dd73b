//! The OCI runtime spec of one container (placeholder; filled in by the spec work).
