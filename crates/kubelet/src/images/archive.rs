//! Importing image archives: oci-archive (an OCI image layout in a tar, as
//! `skopeo copy ... oci-archive:FILE:NAME` writes it; image indexes resolve to
//! this host's platform) and docker-archive (`docker save`: `manifest.json`
//! with `RepoTags`, `Config` and `Layers`, legacy `<id>/layer.tar` dirs or
//! `blobs/sha256/`). A gzip-compressed archive is accepted too.
//!
//! The archive is indexed once (entry → offset in the file) and blobs are
//! then read in place, each digest checked while it is copied into the store.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::digest::{Digest, is_sha256_hex};
use super::error::ImageError;
use super::fsutil::{remove_path, temp_path};
use super::manifest::{
    self, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Compression, ConfigFile, Descriptor,
    DockerArchiveEntry, Index, Manifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST,
};
use super::reference::Reference;
use super::store::{ImageStore, Staged};
use super::unpack::unpack_layer_blob;

/// JSON documents bigger than this are refused.
const MAX_DOCUMENT: u64 = 16 << 20;

/// Imports every image of the archive at `path` into `store`.
pub fn import(store: &ImageStore, path: &Path) -> Result<Vec<String>, ImageError> {
    let archive = ArchiveFile::open(store, path)?;
    if archive.entries.contains_key("index.json") {
        import_oci(store, &archive)
    } else if archive.entries.contains_key("manifest.json") {
        import_docker(store, &archive)
    } else {
        Err(archive
            .bad("it has neither index.json (oci-archive) nor manifest.json (docker-archive)"))
    }
}

fn import_oci(store: &ImageStore, ar: &ArchiveFile) -> Result<Vec<String>, ImageError> {
    let index: Index = manifest::parse(&ar.read_doc("index.json")?, &ar.what("index.json"))?;
    if index.manifests.is_empty() {
        return Err(ar.bad("index.json lists no image"));
    }
    let mut names = Vec::new();
    for desc in &index.manifests {
        let annotated = desc
            .annotations
            .get(ANNOTATION_CONTAINERD_NAME)
            .or_else(|| desc.annotations.get(ANNOTATION_REF_NAME));
        let refs = match annotated {
            Some(name) => vec![Reference::parse(name)?],
            None => {
                tracing::warn!(archive = %ar.path.display(), digest = %desc.digest, "image without a name: reachable by id only");
                Vec::new()
            }
        };
        let label = annotated.cloned().unwrap_or_else(|| desc.digest.clone());
        names.extend(import_oci_image(store, ar, desc, refs, &label)?);
    }
    Ok(names)
}

fn import_oci_image(
    store: &ImageStore,
    ar: &ArchiveFile,
    desc: &Descriptor,
    names: Vec<Reference>,
    label: &str,
) -> Result<Vec<String>, ImageError> {
    let mut desc = desc.clone();
    let (mut digest, mut bytes) = ar.read_blob_doc(&desc)?;
    let mut digests = Vec::new();
    let mut extra_blobs = Vec::new();
    // An image index (nested at most twice) resolves to this host's manifest.
    for _ in 0..3 {
        if !is_index(&desc.media_type, &bytes) {
            break;
        }
        let index: Index = manifest::parse(&bytes, &format!("image index {digest}"))?;
        store.put_blob(
            &mut &bytes[..],
            Some(&digest),
            None,
            &format!("image index {digest}"),
        )?;
        digests.push(digest.clone());
        extra_blobs.push(digest.clone());
        desc = manifest::pick_platform(&index, label)?.clone();
        (digest, bytes) = ar.read_blob_doc(&desc)?;
    }
    let manifest: Manifest = manifest::parse(&bytes, &format!("manifest {digest} of {label}"))?;
    let (config_digest, config_bytes) = ar.read_blob_doc(&manifest.config)?;
    let config: ConfigFile = manifest::parse(&config_bytes, &format!("config {config_digest}"))?;
    check_layer_count(ar, &manifest.layers, &config, label)?;
    manifest::check_platform(&config, label)?;
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let what = format!("layer {} of {label}", layer.digest);
        let compression = manifest::layer_compression(&layer.media_type, &what)?;
        let blob = Digest::parse(&layer.digest)?;
        let diff_id = Digest::parse(diff_id)?;
        if !store.blob_path(&blob).is_file() {
            let mut reader = ar.member(&blob_entry(&blob))?;
            store.put_blob(&mut reader, Some(&blob), Some(layer.size), &what)?;
        }
        unpack_layer_blob(
            &store.blob_path(&blob),
            compression,
            &diff_id,
            &store.layer_path(&diff_id),
            &store.tmp(),
        )?;
    }
    store.put_blob(&mut &config_bytes[..], Some(&config_digest), None, "config")?;
    store.put_blob(&mut &bytes[..], Some(&digest), None, "manifest")?;
    digests.push(digest.clone());
    store.commit(Staged {
        names,
        manifest_digest: digest,
        manifest,
        config,
        digests,
        extra_blobs,
        pinned: true,
    })
}

fn import_docker(store: &ImageStore, ar: &ArchiveFile) -> Result<Vec<String>, ImageError> {
    let entries: Vec<DockerArchiveEntry> =
        manifest::parse(&ar.read_doc("manifest.json")?, &ar.what("manifest.json"))?;
    let mut names = Vec::new();
    for entry in entries {
        let label = entry
            .repo_tags
            .as_ref()
            .and_then(|t| t.first())
            .cloned()
            .unwrap_or_else(|| entry.config.clone());
        let config_bytes = ar.read_doc(&entry.config)?;
        let config_digest = Digest::of(&config_bytes);
        if let Some(named) = digest_in_name(&entry.config) {
            named.verify(&config_digest, &ar.what(&entry.config))?;
        }
        let config: ConfigFile = manifest::parse(&config_bytes, &ar.what(&entry.config))?;
        manifest::check_platform(&config, &label)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(ar.bad(&format!(
                "{label} lists {} layers but its config has {} diff_ids",
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let what = ar.what(path);
            let mut head = [0u8; 4];
            let n = read_up_to(&mut ar.member(path)?, &mut head)
                .map_err(ImageError::io("reading", &ar.path))?;
            let compression = manifest::sniff_compression(&head[..n], &what)?;
            let named = if path.starts_with("blobs/sha256/") {
                digest_in_name(path)
            } else {
                None
            };
            let size = ar.size(path)?;
            let blob = store.put_blob(&mut ar.member(path)?, named.as_ref(), Some(size), &what)?;
            let diff_id = Digest::parse(diff_id)?;
            unpack_layer_blob(
                &store.blob_path(&blob),
                compression,
                &diff_id,
                &store.layer_path(&diff_id),
                &store.tmp(),
            )?;
            let media_type = match compression {
                Compression::None => OCI_LAYER_TAR,
                Compression::Gzip => OCI_LAYER_GZIP,
            };
            layers.push(descriptor(media_type, &blob, size));
        }
        store.put_blob(&mut &config_bytes[..], Some(&config_digest), None, "config")?;
        // The archive has no manifest: one is made, so the store is uniform.
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: descriptor(OCI_CONFIG, &config_digest, config_bytes.len() as u64),
            layers,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(ImageError::json("manifest"))?;
        let manifest_digest = store.put_blob(&mut &manifest_bytes[..], None, None, "manifest")?;
        let refs = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        names.extend(store.commit(Staged {
            names: refs,
            manifest_digest: manifest_digest.clone(),
            manifest,
            config,
            digests: vec![manifest_digest],
            extra_blobs: Vec::new(),
            pinned: true,
        })?);
    }
    Ok(names)
}

fn check_layer_count(
    ar: &ArchiveFile,
    layers: &[Descriptor],
    config: &ConfigFile,
    label: &str,
) -> Result<(), ImageError> {
    if layers.len() == config.rootfs.diff_ids.len() {
        Ok(())
    } else {
        Err(ar.bad(&format!(
            "{label}: the manifest lists {} layers but the config has {} diff_ids",
            layers.len(),
            config.rootfs.diff_ids.len()
        )))
    }
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: digest.to_string(),
        size,
        annotations: Default::default(),
        platform: None,
    }
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    match media_type {
        manifest::OCI_INDEX | manifest::DOCKER_MANIFEST_LIST => true,
        manifest::OCI_MANIFEST | manifest::DOCKER_MANIFEST => false,
        _ => serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("manifests").is_some() && v.get("layers").is_none()),
    }
}

fn blob_entry(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The digest a file name carries: `<hex>.json` or `.../sha256/<hex>`.
fn digest_in_name(path: &str) -> Option<Digest> {
    let name = path.rsplit('/').next()?;
    let hex = name.strip_suffix(".json").unwrap_or(name);
    is_sha256_hex(hex)
        .then(|| Digest::parse(&format!("sha256:{hex}")).ok())
        .flatten()
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

enum Item {
    File { offset: u64, size: u64 },
    Link(String),
}

/// An archive file indexed for reading its members in place.
struct ArchiveFile {
    path: PathBuf,
    file: File,
    entries: HashMap<String, Item>,
    /// A decompressed copy of a gzip archive, removed on drop.
    temp: Option<PathBuf>,
}

impl ArchiveFile {
    fn open(store: &ImageStore, path: &Path) -> Result<Self, ImageError> {
        let mut file = File::open(path).map_err(ImageError::io("opening image archive", path))?;
        let mut head = [0u8; 2];
        let n = read_up_to(&mut file, &mut head).map_err(ImageError::io("reading", path))?;
        file.rewind().map_err(ImageError::io("reading", path))?;
        let mut temp = None;
        if head[..n] == [0x1f, 0x8b] {
            let t = temp_path(&store.tmp(), "archive");
            let mut out = File::create(&t).map_err(ImageError::io("creating", &t))?;
            temp = Some(t.clone());
            let gz = File::open(path).map_err(ImageError::io("opening image archive", path))?;
            let mut decoder = flate2::read::MultiGzDecoder::new(BufReader::new(gz));
            if let Err(e) = io::copy(&mut decoder, &mut out) {
                let _ = remove_path(&t);
                return Err(bad_with(
                    path,
                    "it looks gzip-compressed but does not decompress",
                    e,
                ));
            }
            file = File::open(&t).map_err(ImageError::io("opening", &t))?;
        }
        let mut ar = Self {
            path: path.to_path_buf(),
            file,
            entries: HashMap::new(),
            temp,
        };
        ar.entries = ar
            .index()
            .map_err(|e| bad_with(path, "it is not a readable tar archive", e))?;
        Ok(ar)
    }

    fn index(&self) -> io::Result<HashMap<String, Item>> {
        let mut entries = HashMap::new();
        let mut archive = tar::Archive::new(BufReader::new(&self.file));
        for entry in archive.entries()? {
            let entry = entry?;
            let Some(name) = normalize(&entry.path()?) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_file() || kind.is_contiguous() {
                let item = Item::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                };
                entries.insert(name, item);
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name()? else {
                    continue;
                };
                let base = if kind.is_symlink() {
                    Path::new(&name)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(&target)
                } else {
                    target.into_owned()
                };
                if let Some(target) = normalize(&base) {
                    entries.insert(name, Item::Link(target));
                }
            }
        }
        Ok(entries)
    }

    /// The member's data offset and size, links followed.
    fn locate(&self, name: &str) -> Result<(u64, u64), ImageError> {
        let mut name = name.trim_start_matches("./").to_string();
        for _ in 0..16 {
            match self.entries.get(&name) {
                Some(Item::File { offset, size }) => return Ok((*offset, *size)),
                Some(Item::Link(target)) => name = target.clone(),
                None => return Err(self.bad(&format!("it has no file {name}"))),
            }
        }
        Err(self.bad(&format!("too many links resolving {name}")))
    }

    fn size(&self, name: &str) -> Result<u64, ImageError> {
        Ok(self.locate(name)?.1)
    }

    fn member(&self, name: &str) -> Result<Section<'_>, ImageError> {
        let (offset, size) = self.locate(name)?;
        Ok(Section {
            file: &self.file,
            pos: offset,
            end: offset + size,
        })
    }

    fn read_doc(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let size = self.size(name)?;
        if size > MAX_DOCUMENT {
            return Err(self.bad(&format!(
                "{name} is {size} bytes, too big for a JSON document"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.member(name)?
            .read_to_end(&mut bytes)
            .map_err(ImageError::io("reading", &self.path))?;
        Ok(bytes)
    }

    /// A small blob (index, manifest, config) named by `desc`, verified.
    fn read_blob_doc(&self, desc: &Descriptor) -> Result<(Digest, Vec<u8>), ImageError> {
        let digest = Digest::parse(&desc.digest)?;
        let bytes = self.read_doc(&blob_entry(&digest))?;
        digest.verify(&Digest::of(&bytes), &self.what(&blob_entry(&digest)))?;
        if bytes.len() as u64 != desc.size {
            return Err(ImageError::DigestMismatch {
                what: format!("the size of {}", self.what(&blob_entry(&digest))),
                expected: format!("{} bytes", desc.size),
                actual: format!("{} bytes", bytes.len()),
            });
        }
        Ok((digest, bytes))
    }

    fn what(&self, member: &str) -> String {
        format!("{member} in {}", self.path.display())
    }

    fn bad(&self, reason: &str) -> ImageError {
        ImageError::BadArchive {
            archive: self.path.clone(),
            reason: reason.to_string(),
            source: None,
        }
    }
}

impl Drop for ArchiveFile {
    fn drop(&mut self) {
        if let Some(t) = &self.temp {
            let _ = remove_path(t);
        }
    }
}

fn bad_with(path: &Path, reason: &str, e: io::Error) -> ImageError {
    ImageError::BadArchive {
        archive: path.to_path_buf(),
        reason: reason.to_string(),
        source: Some(Box::new(e)),
    }
}

/// A member path as a `/`-separated relative path, `.` and `..` resolved
/// lexically; `None` for the archive root or a path above it.
fn normalize(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A member's bytes, read in place with `pread`.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "image archive truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_normalized() {
        assert_eq!(
            normalize(Path::new("./blobs/sha256/ab")).as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normalize(Path::new("a/../b")).as_deref(), Some("b"));
        assert_eq!(normalize(Path::new("../b")), None);
        assert_eq!(normalize(Path::new("./")), None);
    }

    #[test]
    fn digests_in_file_names() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(digest_in_name(&format!("{hex}.json")).unwrap().hex(), hex);
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{hex}"))
                .unwrap()
                .hex(),
            hex
        );
        assert!(digest_in_name("abc/layer.tar").is_none());
    }
}
