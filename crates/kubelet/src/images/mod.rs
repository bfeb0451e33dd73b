//! The node's image store: images imported from archives (oci-archive and
//! docker-archive) or pulled from registries ([`Puller`], the OCI
//! distribution API), their blobs content-addressed and SHA-256 verified,
//! their layers unpacked once into directories usable as overlayfs lowerdirs.
//!
//! Layout under the store's root:
//!
//! - `blobs/sha256/<hex>`: manifests, configs and layer blobs, each written
//!   through a temporary file and renamed into place once its digest checked.
//! - `layers/sha256/<diff_id hex>/`: unpacked layers, whiteouts converted to
//!   overlayfs ones, renamed into place once their diff_id checked.
//! - `images.json`: which names and digests lead to which image, written
//!   atomically.
//! - `tmp/`: work in progress, emptied when the store is opened.
//!
//! The store is synchronous and blocking: async callers use
//! `spawn_blocking` (the [`Puller`] is async and does so itself). It is `Send + Sync`; its methods take `&self`.

mod archive;
mod auth;
mod digest;
mod error;
mod fsutil;
mod manifest;
mod pull;
mod reference;
mod registry;
mod store;
mod unpack;

pub use auth::Credentials;
pub use digest::Digest;
pub use error::ImageError;
pub use pull::{Pulled, Puller};
pub use reference::Reference;
pub use store::ImageStore;

/// What a container inherits from its image's config (`config` of the OCI
/// image configuration).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// One image in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<hex>` of the image's config blob (status.imageID's digest part).
    pub id: String,
    /// Normalized references naming it: its tags
    /// (`docker.io/library/busybox:latest`) first, then its repo digests
    /// (`docker.io/library/busybox@sha256:...`), as node.status.images lists
    /// them.
    pub names: Vec<String>,
    pub config: ImageConfig,
    /// Bytes of its compressed layers, for node.status.images.
    pub size: u64,
    /// Imported from an archive (`flotilla images import`, the agent's
    /// `images/*.tar`), not pulled: the node's own copy, which an
    /// `imagePullPolicy: Always` does not re-resolve against a registry, so
    /// that air-gapped nodes run what they were given (as with k3s's
    /// `agent/images`).
    pub pinned: bool,
}
