//! [`ImageStore`]: the index of images (`images.json`), the blob store and
//! the unpacked layers, with lookup by name, id or digest and removal of what
//! no other image uses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, HashingWriter, is_sha256_hex};
use super::error::ImageError;
use super::fsutil::{remove_path, temp_path, write_atomic};
use super::manifest::{self, Compression, ConfigFile, Manifest};
use super::reference::Reference;
use super::unpack::unpack_layer_blob;
use super::{Image, ImageConfig};

const INDEX_FILE: &str = "images.json";
const INDEX_VERSION: u32 = 1;

/// Images and unpacked layers under one root directory.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    state: Mutex<State>,
    /// Held shared by imports and exclusively by removals, so a removal never
    /// deletes a layer an import has just found present.
    gc: RwLock<()>,
}

/// `images.json`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    /// Image id (config digest) → its record.
    images: BTreeMap<String, Record>,
    /// Normalized `repo:tag` → image id.
    names: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    manifest: String,
    /// Digests that name the image in `repo@digest` references: its
    /// manifest's and, when imported through one, the image index's.
    digests: Vec<String>,
    /// Blobs kept for it besides the manifest, config and layers (image
    /// indexes).
    #[serde(default)]
    extra_blobs: Vec<String>,
    size: u64,
    /// Imported from an archive rather than pulled (records from before
    /// pulls existed were all imported).
    #[serde(default = "imported")]
    pinned: bool,
}

fn imported() -> bool {
    true
}

/// What the store knows of an image in memory: the parsed manifest and config.
#[derive(Debug, Clone)]
struct Loaded {
    config: ImageConfig,
    diff_ids: Vec<Digest>,
    layer_blobs: Vec<Digest>,
}

#[derive(Debug, Default)]
struct State {
    index: IndexFile,
    loaded: HashMap<String, Loaded>,
}

/// An image ready to be recorded by [`ImageStore::commit`]: its blobs and
/// layers are in the store already.
pub(super) struct Staged {
    pub names: Vec<Reference>,
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub config: ConfigFile,
    pub digests: Vec<Digest>,
    pub extra_blobs: Vec<Digest>,
    /// Imported from an archive (see [`Image::pinned`]).
    pub pinned: bool,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`. Leftovers of an
    /// interrupted import are removed; images whose manifest or config blob
    /// is missing or corrupt are dropped from the index with a warning.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        for dir in ["blobs/sha256", "layers/sha256"] {
            let dir = root.join(dir);
            fs::create_dir_all(&dir).map_err(ImageError::io("creating", &dir))?;
        }
        let tmp = root.join("tmp");
        remove_path(&tmp).map_err(ImageError::io("emptying", &tmp))?;
        fs::create_dir_all(&tmp).map_err(ImageError::io("creating", &tmp))?;
        let index_path = root.join(INDEX_FILE);
        let mut index = match fs::read(&index_path) {
            Ok(bytes) => manifest::parse::<IndexFile>(&bytes, &index_path.display().to_string())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => IndexFile::default(),
            Err(e) => return Err(ImageError::io("reading", &index_path)(e)),
        };
        index.version = INDEX_VERSION;
        let store = Self {
            root: root.to_path_buf(),
            state: Mutex::new(State::default()),
            gc: RwLock::new(()),
        };
        let mut loaded = HashMap::new();
        for (id, record) in &index.images {
            match store.load(id, &record.manifest) {
                Ok(l) => {
                    loaded.insert(id.clone(), l);
                }
                Err(e) => tracing::warn!(image = %id, error = %e, "dropping unreadable image"),
            }
        }
        index.images.retain(|id, _| loaded.contains_key(id));
        index.names.retain(|_, id| loaded.contains_key(id));
        *store.lock() = State { index, loaded };
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports every image of an oci-archive or docker-archive file; returns
    /// the normalized names imported.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<String>, ImageError> {
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        super::archive::import(self, path)
    }

    /// The image a pod's `image` field names: a reference (`busybox`,
    /// `busybox:1.36`, `host:5000/x/y:t`, `name@sha256:...`), an image id
    /// (`sha256:<config hex>`), or a bare manifest digest.
    pub fn get(&self, reference: &str) -> Option<Image> {
        let state = self.lock();
        let id = resolve(&state.index, reference)?;
        image_of(&state, &id)
    }

    /// Every image, for node.status.images.
    pub fn list(&self) -> Vec<Image> {
        let state = self.lock();
        state
            .index
            .images
            .keys()
            .filter_map(|id| image_of(&state, id))
            .collect()
    }

    /// The image's unpacked layer directories, lowest first (overlayfs wants
    /// them the other way round in `lowerdir=`).
    pub fn layers(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        let diff_ids = {
            let state = self.lock();
            let loaded = state
                .loaded
                .get(&image.id)
                .ok_or_else(|| ImageError::NotFound(image.id.clone()))?;
            loaded.diff_ids.clone()
        };
        diff_ids
            .iter()
            .map(|d| {
                let dir = self.layer_path(d);
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(ImageError::Io {
                        action: "the unpacked layer is missing; remove the image and import it again:",
                        path: dir,
                        source: io::ErrorKind::NotFound.into(),
                    })
                }
            })
            .collect()
    }

    /// Removes the image, its names, and the blobs and layers no other image
    /// uses. Layers still mounted by a container must not be removed: the
    /// caller removes only images no container uses.
    pub fn remove(&self, image: &Image) -> Result<(), ImageError> {
        let _gc = self.gc.write().unwrap_or_else(|e| e.into_inner());
        let (record, loaded, blobs_in_use, layers_in_use) = {
            let mut state = self.lock();
            let Some(record) = state.index.images.get(&image.id).cloned() else {
                return Err(ImageError::NotFound(image.id.clone()));
            };
            let mut index = state.index.clone();
            index.images.remove(&image.id);
            index.names.retain(|_, id| *id != image.id);
            self.persist(&index)?;
            state.index = index;
            let loaded = state.loaded.remove(&image.id);
            let mut blobs = BTreeSet::new();
            let mut layers = BTreeSet::new();
            for (id, r) in &state.index.images {
                blobs.insert(id.clone());
                blobs.insert(r.manifest.clone());
                blobs.extend(r.extra_blobs.iter().cloned());
                if let Some(l) = state.loaded.get(id) {
                    blobs.extend(l.layer_blobs.iter().map(|d| d.to_string()));
                    layers.extend(l.diff_ids.iter().map(|d| d.to_string()));
                }
            }
            (record, loaded, blobs, layers)
        };
        let mut blobs: Vec<String> = vec![image.id.clone(), record.manifest];
        blobs.extend(record.extra_blobs);
        let mut layers = Vec::new();
        if let Some(l) = loaded {
            blobs.extend(l.layer_blobs.iter().map(|d| d.to_string()));
            layers = l.diff_ids;
        }
        for blob in blobs.iter().filter(|b| !blobs_in_use.contains(*b)) {
            if let Ok(d) = Digest::parse(blob) {
                let path = self.blob_path(&d);
                remove_path(&path).map_err(ImageError::io("removing", &path))?;
            }
        }
        for layer in layers
            .iter()
            .filter(|l| !layers_in_use.contains(l.as_str()))
        {
            // Renamed away first: a half-deleted layer must never sit under
            // its final name, where it would pass for an unpacked one.
            let path = self.layer_path(layer);
            let doomed = temp_path(&self.tmp(), "removing");
            match fs::rename(&path, &doomed) {
                Ok(()) => remove_path(&doomed).map_err(ImageError::io("removing", &doomed))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("removing", &path)(e)),
            }
        }
        Ok(())
    }

    pub(super) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub(super) fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    /// Copies `reader` into the blob store. With `expected`, the content must
    /// hash to it (and an existing blob is taken as is); without, the blob is
    /// named by its digest. `size` is checked when given.
    pub(super) fn put_blob(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
        size: Option<u64>,
        what: &str,
    ) -> Result<Digest, ImageError> {
        if let Some(d) = expected
            && self.blob_path(d).is_file()
        {
            return Ok(d.clone());
        }
        let temp = temp_path(&self.tmp(), "blob");
        let result = (|| {
            let file = File::create(&temp).map_err(ImageError::io("creating", &temp))?;
            let mut w = HashingWriter::new(file);
            io::copy(reader, &mut w).map_err(ImageError::io("copying into", &temp))?;
            let (file, actual, len) = w.finish();
            file.sync_all().map_err(ImageError::io("syncing", &temp))?;
            if let Some(d) = expected {
                d.verify(&actual, what)?;
            }
            if let Some(size) = size
                && size != len
            {
                return Err(ImageError::DigestMismatch {
                    what: format!("the size of {what}"),
                    expected: format!("{size} bytes"),
                    actual: format!("{len} bytes"),
                });
            }
            let path = self.blob_path(&actual);
            fs::rename(&temp, &path).map_err(ImageError::io("renaming into place", &path))?;
            Ok(actual)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Records a pulled image: `documents` (index, config, manifest, already
    /// verified) are written into the blob store, the layer blobs (fetched
    /// already) unpacked unless they are, and the image committed; all on
    /// the import side of the removal lock, so no layer found present can
    /// vanish before the image that uses it is recorded.
    pub(super) fn import_fetched(
        &self,
        documents: &[(Digest, &[u8], &str)],
        layers: &[(Digest, Compression, Digest)],
        staged: Staged,
    ) -> Result<Vec<String>, ImageError> {
        let _gc = self.gc.read().unwrap_or_else(|e| e.into_inner());
        for (blob, compression, diff_id) in layers {
            let dest = self.layer_path(diff_id);
            let path = self.blob_path(blob);
            if !dest.is_dir() && !path.is_file() {
                return Err(ImageError::Io {
                    action: "the layer was removed while the image was pulled; pull it again:",
                    path,
                    source: io::ErrorKind::NotFound.into(),
                });
            }
            unpack_layer_blob(&path, *compression, diff_id, &dest, &self.tmp())?;
        }
        for (digest, bytes, what) in documents {
            self.put_blob(&mut &bytes[..], Some(digest), None, what)?;
        }
        self.commit(staged)
    }

    /// Records a staged image under its names (moving names that pointed to
    /// other images) and persists the index.
    pub(super) fn commit(&self, staged: Staged) -> Result<Vec<String>, ImageError> {
        let id = staged.manifest.config.digest.clone();
        let loaded = loaded_of(&staged.manifest, &staged.config)?;
        let size = staged.manifest.layers.iter().map(|l| l.size).sum();
        let mut state = self.lock();
        let mut index = state.index.clone();
        let mut digests: Vec<String> = staged.digests.iter().map(|d| d.to_string()).collect();
        let mut extra_blobs: Vec<String> =
            staged.extra_blobs.iter().map(|d| d.to_string()).collect();
        if let Some(old) = index.images.get(&id) {
            digests.extend(old.digests.iter().cloned());
            extra_blobs.extend(old.extra_blobs.iter().cloned());
        }
        digests.sort();
        digests.dedup();
        extra_blobs.sort();
        extra_blobs.dedup();
        let pinned = staged.pinned || index.images.get(&id).is_some_and(|old| old.pinned);
        let record = Record {
            manifest: staged.manifest_digest.to_string(),
            digests,
            extra_blobs,
            size,
            pinned,
        };
        index.images.insert(id.clone(), record);
        let names: Vec<String> = staged
            .names
            .iter()
            .filter(|r| r.tag().is_some())
            .map(|r| {
                // `name:tag@digest` is recorded as `name:tag`: the digest is the image's.
                format!("{}:{}", r.repository(), r.tag().unwrap_or_default())
            })
            .collect();
        for name in &names {
            index.names.insert(name.clone(), id.clone());
        }
        self.persist(&index)?;
        state.index = index;
        state.loaded.insert(id, loaded);
        Ok(names)
    }

    fn persist(&self, index: &IndexFile) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(index).map_err(ImageError::json(INDEX_FILE))?;
        write_atomic(&self.tmp(), &self.root.join(INDEX_FILE), &bytes)
    }

    fn load(&self, id: &str, manifest_digest: &str) -> Result<Loaded, ImageError> {
        let manifest_digest = Digest::parse(manifest_digest)?;
        let bytes = self.read_blob(&manifest_digest)?;
        let manifest: Manifest = manifest::parse(&bytes, &format!("manifest {manifest_digest}"))?;
        let config_digest = Digest::parse(id)?;
        let bytes = self.read_blob(&config_digest)?;
        let config: ConfigFile = manifest::parse(&bytes, &format!("config {config_digest}"))?;
        loaded_of(&manifest, &config)
    }

    pub(super) fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(ImageError::io("reading", &path))?;
        digest.verify(&Digest::of(&bytes), &path.display().to_string())?;
        Ok(bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn loaded_of(manifest: &Manifest, config: &ConfigFile) -> Result<Loaded, ImageError> {
    let run = config.config.clone().unwrap_or_default();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(Loaded {
        config: ImageConfig {
            env: run.env.unwrap_or_default(),
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            working_dir: non_empty(run.working_dir),
            user: non_empty(run.user),
        },
        diff_ids: config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<_, _>>()?,
        layer_blobs: manifest
            .layers
            .iter()
            .map(|l| Digest::parse(&l.digest))
            .collect::<Result<_, _>>()?,
    })
}

/// The id of the image `reference` leads to.
fn resolve(index: &IndexFile, reference: &str) -> Option<String> {
    let reference = reference.trim();
    let by_digest = |digest: &str| {
        if index.images.contains_key(digest) {
            return Some(digest.to_string());
        }
        index
            .images
            .iter()
            .find(|(_, r)| r.digests.iter().any(|d| d == digest))
            .map(|(id, _)| id.clone())
    };
    if let Some(hex) = reference.strip_prefix("sha256:") {
        return if is_sha256_hex(hex) {
            by_digest(reference)
        } else {
            None
        };
    }
    if is_sha256_hex(reference) {
        return by_digest(&format!("sha256:{reference}"));
    }
    let parsed = Reference::parse(reference).ok()?;
    if let Some(digest) = parsed.digest() {
        // The content is pinned by the digest: any image with it will do.
        return by_digest(digest.as_str());
    }
    index.names.get(&parsed.to_string()).cloned()
}

fn image_of(state: &State, id: &str) -> Option<Image> {
    let record = state.index.images.get(id)?;
    let loaded = state.loaded.get(id)?;
    let tags: Vec<String> = state
        .index
        .names
        .iter()
        .filter(|(_, i)| *i == id)
        .map(|(n, _)| n.clone())
        .collect();
    let repositories: BTreeSet<String> = tags
        .iter()
        .filter_map(|t| Reference::parse(t).ok())
        .map(|r| r.repository())
        .collect();
    let mut names = tags;
    for repo in &repositories {
        names.extend(record.digests.iter().map(|d| format!("{repo}@{d}")));
    }
    Some(Image {
        id: id.to_string(),
        names,
        config: loaded.config.clone(),
        size: record.size,
        pinned: record.pinned,
    })
}
