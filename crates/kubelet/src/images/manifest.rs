//! The JSON documents of OCI images (image layout index, image index,
//! manifest, config) and of `docker save` archives, as far as the store reads
//! them, plus the media types it knows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ImageError;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Annotation of the image layout's `index.json` naming a manifest.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation carrying the full image name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index (`index.json` of a layout, or a multi-platform manifest
/// list).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The image configuration: what a container inherits and the layers'
/// uncompressed digests.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One entry of a `docker save` archive's `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// The compression of a layer of this media type; zstd and foreign layers
/// are refused.
pub fn layer_compression(media_type: &str, what: &str) -> Result<Compression, ImageError> {
    let unsupported = |hint: &str| ImageError::UnsupportedMediaType {
        media_type: media_type.to_string(),
        what: what.to_string(),
        hint: hint.to_string(),
    };
    match media_type {
        OCI_LAYER_TAR
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        OCI_LAYER_GZIP
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        m if m.ends_with("+zstd") || m.ends_with(".zstd") => Err(unsupported(
            "zstd layers are not supported yet; recompress the image with gzip, e.g. \
             `skopeo copy --dest-compress-format gzip ...`",
        )),
        _ => Err(unsupported(
            "expected an OCI or Docker tar or tar+gzip layer",
        )),
    }
}

/// The compression of a layer blob by its first bytes (docker-archive
/// layers carry no media type).
pub fn sniff_compression(head: &[u8], what: &str) -> Result<Compression, ImageError> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        layer_compression("application/vnd.oci.image.layer.v1.tar+zstd", what)
    } else {
        Ok(Compression::None)
    }
}

/// Parses a JSON document, naming it in the error.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(ImageError::json(what))
}

/// The Go architecture name of this host (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Picks the manifest for linux and this host's architecture from a
/// multi-platform index.
pub fn pick_platform<'a>(index: &'a Index, reference: &str) -> Result<&'a Descriptor, ImageError> {
    let arch = host_arch();
    let matches = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    };
    index
        .manifests
        .iter()
        .find(matches)
        .ok_or_else(|| ImageError::NoMatchingPlatform {
            reference: reference.to_string(),
            wanted: format!("linux/{arch}"),
            available: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Refuses an image built for another OS; another architecture only warns
/// (it may run under binfmt emulation).
pub fn check_platform(config: &ConfigFile, reference: &str) -> Result<(), ImageError> {
    if !config.os.is_empty() && config.os != "linux" {
        return Err(ImageError::NoMatchingPlatform {
            reference: reference.to_string(),
            wanted: format!("linux/{}", host_arch()),
            available: format!("{}/{}", config.os, config.architecture),
        });
    }
    if !config.architecture.is_empty() && config.architecture != host_arch() {
        tracing::warn!(image = reference, arch = %config.architecture, "image built for another architecture");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        assert_eq!(
            layer_compression(OCI_LAYER_GZIP, "l").unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            layer_compression(OCI_LAYER_TAR, "l").unwrap(),
            Compression::None
        );
        let zstd = layer_compression("application/vnd.oci.image.layer.v1.tar+zstd", "l");
        assert!(zstd.unwrap_err().to_string().contains("gzip"));
        assert!(layer_compression("text/plain", "l").is_err());
        assert_eq!(
            sniff_compression(&[0x1f, 0x8b, 8], "l").unwrap(),
            Compression::Gzip
        );
        assert_eq!(sniff_compression(b"etc/", "l").unwrap(), Compression::None);
        assert!(sniff_compression(&[0x28, 0xb5, 0x2f, 0xfd], "l").is_err());
    }

    #[test]
    fn platform_is_picked_for_this_host() {
        let json = format!(
            r#"{{"manifests":[
              {{"digest":"sha256:a","size":1,"platform":{{"architecture":"s390x","os":"linux"}}}},
              {{"digest":"sha256:b","size":1,"platform":{{"architecture":"{}","os":"linux"}}}}]}}"#,
            host_arch()
        );
        let index: Index = parse(json.as_bytes(), "index").unwrap();
        assert_eq!(pick_platform(&index, "x").unwrap().digest, "sha256:b");
        let only_s390x = Index {
            manifests: index.manifests[..1].to_vec(),
        };
        let err = pick_platform(&only_s390x, "x").unwrap_err().to_string();
        assert!(err.contains("linux/s390x"), "{err}");
    }
}
