//! What can go wrong in the image store. Every variant keeps its source and
//! says what to do about it, since these messages end up in pod Events.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image by that reference, id or digest in the store.
    #[error(
        "image {0} is not present on this node; pull it from its registry or import an archive \
         of it (oci-archive or docker-archive) into the node's image store"
    )]
    NotFound(String),

    /// The registry could not be reached (DNS, connection, TLS, timeout) or
    /// broke off a transfer.
    #[error("registry {registry} unreachable: {reason}")]
    RegistryUnreachable { registry: String, reason: String },

    /// The registry has no such manifest (tag or digest) or repository.
    #[error("{reference}: not found: manifest unknown to registry {registry}{detail}")]
    ManifestUnknown {
        reference: String,
        registry: String,
        detail: String,
    },

    /// The registry refused access: no or wrong credentials.
    #[error(
        "pull access denied for {reference}, repository does not exist or may require \
         authorization: {reason}"
    )]
    Unauthorized { reference: String, reason: String },

    /// Any other answer the registry gave that the pull cannot go on with.
    #[error("registry {registry} answered {status} for {what}: {message}")]
    Registry {
        registry: String,
        what: String,
        status: u16,
        message: String,
    },

    /// A reference that Docker/containerd would refuse as well.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },

    /// A file operation failed; `action` says which, `path` on what.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The archive is not an oci-archive or docker-archive this store can
    /// read, or is inconsistent.
    #[error(
        "{}: not a usable image archive: {reason}; write it with `skopeo copy ... \
         oci-archive:FILE:NAME` or `docker save`",
        archive.display()
    )]
    BadArchive {
        archive: PathBuf,
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Content did not hash to the digest that names it: a corrupt or
    /// tampered archive or download, or a store file damaged on disk.
    #[error(
        "digest mismatch for {what}: expected {expected}, got {actual}; the content is corrupt \
         or was modified (a damaged archive, or a registry or proxy serving altered data)"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("unsupported media type {media_type} for {what}: {hint}")]
    UnsupportedMediaType {
        media_type: String,
        what: String,
        hint: String,
    },

    /// A JSON document (manifest, config, index, the store's own index)
    /// could not be parsed.
    #[error("{what} is not valid JSON of the expected shape: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// A layer could not be unpacked; `entry` is the path inside the layer.
    #[error("unpacking layer {layer} at {entry:?}: {source}")]
    Unpack {
        layer: String,
        entry: String,
        #[source]
        source: io::Error,
    },

    /// The image's manifest lists no platform this node runs.
    #[error(
        "{reference}: no manifest for {wanted} (the archive has: {available}); export the image for this platform"
    )]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
}

impl ImageError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let what = what.into();
        move |source| ImageError::Json { what, source }
    }
}

/// Appended to errors that need privileges the process lacks.
pub(crate) const NEEDS_ROOT: &str = "overlay whiteouts and device nodes need root (CAP_MKNOD, CAP_SYS_ADMIN): run the node agent as root";
