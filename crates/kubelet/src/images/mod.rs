//! The node's image store (placeholder API; filled in by the image store work).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0} is not present on this node")]
    NotFound(String),
}

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
    /// Normalized references naming it (`docker.io/library/busybox:latest`).
    pub names: Vec<String>,
    pub config: ImageConfig,
    /// Bytes of its compressed layers, for node.status.images.
    pub size: u64,
}

/// Images and unpacked layers under one root directory.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        Ok(Self {
            root: root.to_path_buf(),
        })
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn import_archive(&self, _path: &Path) -> Result<Vec<String>, ImageError> {
        unimplemented!()
    }
    pub fn get(&self, reference: &str) -> Option<Image> {
        Err::<Image, _>(ImageError::NotFound(reference.into())).ok()
    }
    pub fn list(&self) -> Vec<Image> {
        Vec::new()
    }
    pub fn layers(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        Err(ImageError::NotFound(image.id.clone()))
    }
}
