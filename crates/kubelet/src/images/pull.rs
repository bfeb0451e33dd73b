//! Pulling images from registries into the store: the manifest (an index
//! resolves to this host's platform, linux and its architecture), the config
//! and the layers are fetched, each verified against its digest while it
//! streams to disk, the layers unpacked, and the reference recorded so that
//! [`ImageStore::get`] finds it.
//!
//! Blobs already in the store are not fetched again; a reference by digest
//! whose image is present costs no request at all. Concurrent pulls of one
//! reference share a single pull, run as its own task so that a waiter going
//! away does not cancel it for the others.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::mpsc;

use super::Image;
use super::auth::Credentials;
use super::digest::Digest;
use super::error::ImageError;
use super::manifest::{
    self, ConfigFile, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, Index, Manifest,
    OCI_INDEX, OCI_MANIFEST,
};
use super::reference::Reference;
use super::registry::{self, Client, Repo};
use super::store::{ImageStore, Staged};

/// Manifests and indexes bigger than this are refused (containerd's limit).
const MAX_MANIFEST: usize = 4 << 20;
/// Image configs bigger than this are refused.
const MAX_CONFIG: usize = 16 << 20;
/// Nested indexes followed at most.
const MAX_INDEX_DEPTH: usize = 3;

/// A finished pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: Image,
    /// How long the pull itself took (a waiter on a shared pull waited
    /// longer, or less).
    pub duration: Duration,
    /// Bytes of blobs fetched; 0 when everything was present.
    pub fetched: u64,
}

type SharedPull = Shared<BoxFuture<'static, Result<Pulled, Arc<ImageError>>>>;

/// Pulls images into a store; cheap to clone, shared by every pod worker.
#[derive(Clone)]
pub struct Puller {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<ImageStore>,
    client: Client,
    /// Pulls under way, by reference (and user name).
    inflight: Mutex<HashMap<String, SharedPull>>,
}

impl Puller {
    /// A puller into `store`; registries listed in `insecure_registries`
    /// (`HOST:PORT`, as in image references) are spoken to in plain HTTP.
    pub fn new(store: Arc<ImageStore>, insecure_registries: &[String]) -> Result<Self, ImageError> {
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                client: Client::new(insecure_registries)?,
                inflight: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn store(&self) -> &Arc<ImageStore> {
        &self.inner.store
    }

    /// Pulls `reference` (`busybox`, `host:port/x/y:tag`, `name@sha256:...`)
    /// with `credentials` if given, anonymously otherwise. A pull of the
    /// same reference already under way is joined, not repeated.
    pub async fn pull(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Pulled, Arc<ImageError>> {
        let parsed = Reference::parse(reference).map_err(Arc::new)?;
        let key = format!(
            "{parsed}\n{}",
            credentials.map_or("", |c| c.username.as_str())
        );
        let pull = {
            let mut inflight = self.inner.lock();
            match inflight.get(&key) {
                Some(p) => p.clone(),
                None => {
                    let inner = self.inner.clone();
                    let credentials = credentials.cloned();
                    let task_key = key.clone();
                    let task = tokio::spawn(async move {
                        let r = inner.pull(&parsed, credentials.as_ref()).await;
                        inner.lock().remove(&task_key);
                        r.map_err(Arc::new)
                    });
                    let registry = Reference::parse(reference)
                        .map(|r| r.domain().to_string())
                        .unwrap_or_default();
                    let p = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(Arc::new(ImageError::RegistryUnreachable {
                                registry,
                                reason: format!("the pull stopped: {e}"),
                            }))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, p.clone());
                    p
                }
            }
        };
        pull.await
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SharedPull>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn pull(
        &self,
        r: &Reference,
        credentials: Option<&Credentials>,
    ) -> Result<Pulled, ImageError> {
        let start = Instant::now();
        let label = r.to_string();
        if r.digest().is_some()
            && let Some(image) = self.store.get(&label)
        {
            return Ok(Pulled {
                image,
                duration: start.elapsed(),
                fetched: 0,
            });
        }
        let repo = self.client.repo(r, credentials);
        let target = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        let doc = repo.manifest(&target, MAX_MANIFEST).await?;
        let mut bytes = doc.bytes;
        let mut media_type = doc.media_type;
        let mut digest = Digest::of(&bytes);
        if let Some(pinned) = r.digest() {
            pinned.verify(&digest, &format!("manifest of {label}"))?;
        }
        let mut digests = Vec::new();
        let mut indexes: Vec<(Digest, Bytes)> = Vec::new();
        let mut depth = 0;
        while kind_of(media_type.as_deref(), &bytes, &label)? == Kind::Index {
            depth += 1;
            if depth > MAX_INDEX_DEPTH {
                return Err(bad_manifest(&label, "image indexes nested too deep"));
            }
            let index: Index =
                manifest::parse(&bytes, &format!("image index {digest} of {label}"))?;
            let desc = manifest::pick_platform(&index, &label)?.clone();
            digests.push(digest.clone());
            indexes.push((digest, bytes));
            let want = Digest::parse(&desc.digest)?;
            let doc = repo.manifest(want.as_str(), MAX_MANIFEST).await?;
            check_fetched(
                &want,
                desc.size,
                &doc.bytes,
                &format!("manifest {want} of {label}"),
            )?;
            digest = want;
            bytes = doc.bytes;
            media_type = doc
                .media_type
                .filter(|m| !m.is_empty())
                .or(Some(desc.media_type).filter(|m| !m.is_empty()));
        }
        let manifest: Manifest = manifest::parse(&bytes, &format!("manifest {digest} of {label}"))?;
        digests.push(digest.clone());

        let mut fetched = 0;
        let config_digest = Digest::parse(&manifest.config.digest)?;
        let config_bytes: Bytes = if self.store.blob_path(&config_digest).is_file() {
            let store = self.store.clone();
            let d = config_digest.clone();
            blocking(move || store.read_blob(&d)).await?.into()
        } else {
            let what = format!("config {config_digest} of {label}");
            let body = repo.blob(&config_digest).await?;
            let b = registry::read_limited(body, MAX_CONFIG, repo.registry(), &what).await?;
            check_fetched(&config_digest, manifest.config.size, &b, &what)?;
            fetched += b.len() as u64;
            b
        };
        let config: ConfigFile =
            manifest::parse(&config_bytes, &format!("config {config_digest}"))?;
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(bad_manifest(
                &label,
                &format!(
                    "the manifest lists {} layers but the config has {} diff_ids",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        manifest::check_platform(&config, &label)?;

        let mut layers = Vec::new();
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let what = format!("layer {} of {label}", layer.digest);
            let compression = manifest::layer_compression(&layer.media_type, &what)?;
            let blob = Digest::parse(&layer.digest)?;
            let diff_id = Digest::parse(diff_id)?;
            if !self.store.layer_path(&diff_id).is_dir() && !self.store.blob_path(&blob).is_file() {
                self.fetch_blob(&repo, layer, &blob, &what).await?;
                fetched += layer.size;
            }
            layers.push((blob, compression, diff_id));
        }

        let store = self.store.clone();
        let names = if r.tag().is_some() {
            vec![r.clone()]
        } else {
            Vec::new()
        };
        let manifest_digest = digest.clone();
        let staged = Staged {
            names,
            manifest_digest: manifest_digest.clone(),
            manifest,
            config,
            digests,
            extra_blobs: indexes.iter().map(|(d, _)| d.clone()).collect(),
            pinned: false,
        };
        blocking(move || {
            let mut documents: Vec<(Digest, &[u8], &str)> = indexes
                .iter()
                .map(|(d, b)| (d.clone(), &b[..], "image index"))
                .collect();
            documents.push((config_digest, &config_bytes[..], "config"));
            documents.push((manifest_digest, &bytes[..], "manifest"));
            store.import_fetched(&documents, &layers, staged)
        })
        .await?;
        let image = self
            .store
            .get(digest.as_str())
            .ok_or_else(|| ImageError::NotFound(label.clone()))?;
        tracing::info!(image = %label, id = %image.id, fetched, elapsed = ?start.elapsed(), "pulled image");
        Ok(Pulled {
            image,
            duration: start.elapsed(),
            fetched,
        })
    }

    /// Streams a blob into the store, verified by [`ImageStore::put_blob`]
    /// while it is written: the network side sends chunks over a bounded
    /// channel to the blocking writer.
    async fn fetch_blob(
        &self,
        repo: &Repo<'_>,
        desc: &Descriptor,
        digest: &Digest,
        what: &str,
    ) -> Result<(), ImageError> {
        let mut body = repo.blob(digest).await?;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
        let store = self.store.clone();
        let (d, size, w) = (digest.clone(), desc.size, what.to_string());
        let writer = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader {
                rx,
                chunk: Bytes::new(),
            };
            store.put_blob(&mut reader, Some(&d), Some(size), &w)
        });
        let mut received: u64 = 0;
        let mut failed = None;
        loop {
            match registry::next_chunk(&mut body, repo.registry(), what).await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if received > desc.size {
                        failed = Some(ImageError::DigestMismatch {
                            what: format!("the size of {what}"),
                            expected: format!("{} bytes", desc.size),
                            actual: format!("more than {} bytes", desc.size),
                        });
                    } else if tx.send(Ok(chunk)).await.is_ok() {
                        continue;
                    }
                }
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
            break;
        }
        if failed.is_some() {
            let _ = tx
                .send(Err(io::Error::other("the transfer was abandoned")))
                .await;
        }
        drop(tx);
        let written = writer.await.map_err(|e| ImageError::RegistryUnreachable {
            registry: repo.registry().to_string(),
            reason: format!("{what}: writing it stopped: {e}"),
        })?;
        match failed {
            Some(e) => Err(e),
            None => written.map(|_| ()),
        }
    }
}

/// Reads the chunks a fetch sends; the end of the channel is the end of the
/// blob.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => self.chunk = chunk,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ImageError::Io {
            action: "the image store's worker thread failed:",
            path: Default::default(),
            source: io::Error::other(e.to_string()),
        })
    })
}

/// Checks a small blob fetched by its descriptor.
fn check_fetched(digest: &Digest, size: u64, bytes: &[u8], what: &str) -> Result<(), ImageError> {
    digest.verify(&Digest::of(bytes), what)?;
    if size != bytes.len() as u64 {
        return Err(ImageError::DigestMismatch {
            what: format!("the size of {what}"),
            expected: format!("{size} bytes"),
            actual: format!("{} bytes", bytes.len()),
        });
    }
    Ok(())
}

fn bad_manifest(label: &str, reason: &str) -> ImageError {
    ImageError::UnsupportedMediaType {
        media_type: "(manifest)".into(),
        what: label.to_string(),
        hint: reason.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Index,
    Manifest,
}

/// Whether a fetched document is an image index or a manifest: by the
/// media type the registry served, else by its own `mediaType`, else by its
/// shape. Docker's schema 1 manifests are refused.
fn kind_of(served: Option<&str>, bytes: &[u8], label: &str) -> Result<Kind, ImageError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Peek {
        #[serde(default)]
        schema_version: Option<u32>,
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let peek: Peek = manifest::parse(bytes, &format!("manifest of {label}"))?;
    let unsupported = |media_type: &str, hint: &str| ImageError::UnsupportedMediaType {
        media_type: media_type.to_string(),
        what: format!("the manifest of {label}"),
        hint: hint.to_string(),
    };
    let generic = |m: &str| {
        m.is_empty()
            || m == "application/json"
            || m == "application/octet-stream"
            || m == "text/plain"
    };
    let declared = served
        .filter(|m| !generic(m))
        .or(peek.media_type.as_deref().filter(|m| !m.is_empty()));
    match declared {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => return Ok(Kind::Index),
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => return Ok(Kind::Manifest),
        Some(m) if m.starts_with("application/vnd.docker.distribution.manifest.v1") => {
            return Err(unsupported(
                m,
                "Docker schema 1 manifests are deprecated and not supported; push the image \
                 again with a current client",
            ));
        }
        Some(m) => {
            return Err(unsupported(
                m,
                "expected an OCI or Docker v2 image index or manifest",
            ));
        }
        None => {}
    }
    if peek.schema_version == Some(1) {
        return Err(unsupported(
            "application/vnd.docker.distribution.manifest.v1+json",
            "Docker schema 1 manifests are deprecated and not supported",
        ));
    }
    match (peek.manifests.is_some(), peek.layers.is_some()) {
        (true, false) => Ok(Kind::Index),
        (false, true) => Ok(Kind::Manifest),
        _ => Err(unsupported(
            "(none)",
            "the document is neither an image index nor a manifest",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_apart_by_served_media_type_then_content() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let man = br#"{"schemaVersion":2,"config":{"digest":"sha256:a","size":1},"layers":[]}"#;
        assert_eq!(kind_of(Some(OCI_INDEX), index, "x").unwrap(), Kind::Index);
        assert_eq!(
            kind_of(Some(DOCKER_MANIFEST_LIST), index, "x").unwrap(),
            Kind::Index
        );
        assert_eq!(
            kind_of(Some(OCI_MANIFEST), man, "x").unwrap(),
            Kind::Manifest
        );
        assert_eq!(
            kind_of(Some(DOCKER_MANIFEST), man, "x").unwrap(),
            Kind::Manifest
        );
        // No useful Content-Type: the document's own mediaType, then its shape.
        let typed = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert_eq!(kind_of(None, typed.as_bytes(), "x").unwrap(), Kind::Index);
        assert_eq!(
            kind_of(Some("application/json"), index, "x").unwrap(),
            Kind::Index
        );
        assert_eq!(kind_of(None, man, "x").unwrap(), Kind::Manifest);
    }

    #[test]
    fn schema1_and_foreign_documents_are_refused_clearly() {
        let v1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let err = kind_of(
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            v1,
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("schema 1"), "{err}");
        assert!(
            kind_of(None, v1, "x")
                .unwrap_err()
                .to_string()
                .contains("schema 1")
        );
        let err = kind_of(Some("text/html"), b"{}", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("text/html"), "{err}");
        assert!(kind_of(None, b"{}", "x").is_err());
        assert!(kind_of(None, b"<html>", "x").is_err());
    }

    #[test]
    fn an_index_resolves_to_this_hosts_platform() {
        let arch = manifest::host_arch();
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:1","size":1,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:2","size":1,"platform":{{"architecture":"{arch}","os":"windows"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:3","size":1,"platform":{{"architecture":"{arch}","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:4","size":1,"platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
        );
        assert_eq!(kind_of(None, json.as_bytes(), "x").unwrap(), Kind::Index);
        let index: Index = manifest::parse(json.as_bytes(), "index").unwrap();
        assert_eq!(
            manifest::pick_platform(&index, "x").unwrap().digest,
            "sha256:3"
        );
    }

    #[test]
    fn fetched_documents_are_checked_by_digest_and_size() {
        let d = Digest::of(b"abc");
        assert!(check_fetched(&d, 3, b"abc", "m").is_ok());
        let err = check_fetched(&d, 3, b"abd", "m").unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        assert!(check_fetched(&d, 4, b"abc", "m").is_err());
    }

    #[test]
    fn the_channel_reader_reassembles_chunks() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"hel"))).unwrap();
        tx.try_send(Ok(Bytes::from_static(b""))).unwrap();
        tx.try_send(Ok(Bytes::from_static(b"lo"))).unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            chunk: Bytes::new(),
        };
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
    }
}
