//! Pulls from a real registry: Debian's `docker-registry` on a loopback port
//! (plain HTTP, listed as insecure), the testkit busybox image pushed with
//! skopeo as an OCI manifest and as a Docker schema 2 one, plus an index.
//! Authentication is tested through a small gate in front of it, in this
//! process: a token server and a registry front that wants a bearer token
//! (or basic credentials), and a front that corrupts blobs.
//!
//! Nothing here leaves the loopback interface.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kubelet::images::{Credentials, ImageError, ImageStore, Puller};
use testkit::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A registry with `lib/busybox:1` (OCI) and `lib/busybox:v2s2` (Docker).
fn busybox_registry(dir: &Path) -> Registry {
    let archive = dir.join("busybox.tar");
    testkit::image::busybox_oci_archive(&archive, "busybox:1").expect("busybox archive");
    let reg = Registry::start().expect("starting docker-registry");
    reg.push_oci_archive(&archive, "lib/busybox:1", &[])
        .expect("pushing the OCI image");
    reg.push_oci_archive(&archive, "lib/busybox:v2s2", &["--format", "v2s2"])
        .expect("pushing the Docker schema 2 image");
    reg
}

fn puller(dir: &Path, insecure: &[&str]) -> Puller {
    let store = ImageStore::open(dir).expect("opening the store");
    let insecure: Vec<String> = insecure.iter().map(|s| s.to_string()).collect();
    Puller::new(Arc::new(store), &insecure).expect("puller")
}

fn check_busybox(puller: &Puller, reference: &str) {
    let store = puller.store();
    let image = store
        .get(reference)
        .unwrap_or_else(|| panic!("{reference} not in the store"));
    assert_eq!(image.config.cmd, ["sh"]);
    assert!(image.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert!(!image.pinned, "a pulled image is not pinned");
    let layers = store.layers(&image).expect("layers");
    assert_eq!(layers.len(), 1);
    let host = std::fs::metadata("/bin/busybox").unwrap();
    let ours = std::fs::metadata(layers[0].join("bin/busybox")).expect("bin/busybox unpacked");
    assert_eq!(ours.len(), host.len());
    assert!(layers[0].join("bin/sh").is_symlink());
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_by_tag_and_by_digest_and_again_without_the_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = busybox_registry(tmp.path());
    let addr = reg.addr().to_string();
    let p = puller(&tmp.path().join("store"), &[&addr]);
    let tag = format!("{addr}/lib/busybox:1");

    let pulled = p.pull(&tag, None).await.expect("pull by tag");
    assert!(pulled.fetched > 0);
    assert!(pulled.image.size > 0);
    check_busybox(&p, &tag);
    let (_, digest) = reg.manifest("lib/busybox", "1", OCI_MANIFEST).unwrap();
    let by_digest = format!("{addr}/lib/busybox@{digest}");
    assert!(
        pulled.image.names.contains(&by_digest),
        "{:?} lacks {by_digest}",
        pulled.image.names
    );

    // Present: only the manifest is asked for.
    let again = p.pull(&tag, None).await.expect("pull again");
    assert_eq!((again.fetched, &again.image.id), (0, &pulled.image.id));

    // By digest into another store.
    let p2 = puller(&tmp.path().join("store2"), &[&addr]);
    let pulled2 = p2.pull(&by_digest, None).await.expect("pull by digest");
    assert_eq!(pulled2.image.id, pulled.image.id);
    check_busybox(&p2, &by_digest);
    assert!(
        p2.store().get(&tag).is_none(),
        "a pull by digest names no tag"
    );

    // With the registry gone, a present digest is a no-op; a tag is not.
    drop(reg);
    let noop = p2
        .pull(&by_digest, None)
        .await
        .expect("pull of a present digest");
    assert_eq!(noop.fetched, 0);
    let err = p.pull(&tag, None).await.unwrap_err();
    assert!(
        matches!(*err, ImageError::RegistryUnreachable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_schema2_manifests_and_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = busybox_registry(tmp.path());
    let addr = reg.addr().to_string();
    let p = puller(&tmp.path().join("store"), &[&addr]);

    let (docker, docker_digest) = reg
        .manifest("lib/busybox", "v2s2", DOCKER_MANIFEST)
        .unwrap();
    assert!(String::from_utf8_lossy(&docker).contains(DOCKER_MANIFEST));
    let v2s2 = format!("{addr}/lib/busybox:v2s2");
    p.pull(&v2s2, None)
        .await
        .expect("pull of a Docker schema 2 image");
    check_busybox(&p, &v2s2);

    // An index: this host's entry is the OCI manifest, another platform's
    // the Docker one.
    let (oci, oci_digest) = reg.manifest("lib/busybox", "1", OCI_MANIFEST).unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let other = if arch == "s390x" { "ppc64le" } else { "s390x" };
    let entry = |media: &str, digest: &str, size: usize, arch: &str| {
        format!(
            r#"{{"mediaType":"{media}","digest":"{digest}","size":{size},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        entry(DOCKER_MANIFEST, &docker_digest, docker.len(), other),
        entry(OCI_MANIFEST, &oci_digest, oci.len(), arch),
    );
    reg.put_manifest("lib/busybox", "multi", OCI_INDEX, index.as_bytes())
        .unwrap();
    let (_, index_digest) = reg.manifest("lib/busybox", "multi", OCI_INDEX).unwrap();
    let multi = format!("{addr}/lib/busybox:multi");
    let pulled = p.pull(&multi, None).await.expect("pull through an index");
    check_busybox(&p, &multi);
    for d in [&index_digest, &oci_digest] {
        let name = format!("{addr}/lib/busybox@{d}");
        assert!(
            pulled.image.names.contains(&name),
            "{:?}",
            pulled.image.names
        );
    }

    // An index without this platform.
    let foreign = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entry(DOCKER_MANIFEST, &docker_digest, docker.len(), other),
    );
    reg.put_manifest("lib/busybox", "foreign", OCI_INDEX, foreign.as_bytes())
        .unwrap();
    let err = p
        .pull(&format!("{addr}/lib/busybox:foreign"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(*err, ImageError::NoMatchingPlatform { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("linux/{arch}")), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_images_and_unreachable_registries_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = busybox_registry(tmp.path());
    let addr = reg.addr().to_string();
    let p = puller(&tmp.path().join("store"), &[&addr, "127.0.0.1:1"]);

    for missing in [
        format!("{addr}/lib/busybox:nope"),
        format!("{addr}/lib/nothing:1"),
    ] {
        let err = p.pull(&missing, None).await.unwrap_err();
        eprintln!("MSG {err}");
        assert!(matches!(*err, ImageError::ManifestUnknown { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("not found") && msg.contains(&missing), "{msg}");
    }
    let msg = p
        .pull(&format!("{addr}/lib/busybox:nope"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("MANIFEST_UNKNOWN"), "{msg}");

    let err = p.pull("127.0.0.1:1/x:1", None).await.unwrap_err();
    eprintln!("MSG {err}");
    assert!(
        matches!(*err, ImageError::RegistryUnreachable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("unreachable"), "{err}");

    // Not listed as insecure: HTTPS, which a plain HTTP registry fails.
    let strict = puller(&tmp.path().join("strict"), &[]);
    let err = strict
        .pull(&format!("{addr}/lib/busybox:1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(*err, ImageError::RegistryUnreachable { .. }),
        "{err}"
    );
    eprintln!("MSG {err}");
    assert!(p.store().list().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_from_a_token_server_and_concurrent_pulls_shared() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = busybox_registry(tmp.path());
    let gate = Gate::start(reg.addr(), Mode::Bearer).await;
    let image = format!("{}/lib/busybox:1", gate.addr);
    let insecure = gate.addr.to_string();

    // Anonymous: the token server refuses.
    let p = puller(&tmp.path().join("store"), &[&insecure]);
    let err = p.pull(&image, None).await.unwrap_err();
    assert!(matches!(*err, ImageError::Unauthorized { .. }), "{err}");
    eprintln!("MSG {err}");
    assert!(err.to_string().contains("pull access denied"), "{err}");

    // With credentials; two pulls at once share one.
    let creds = gate.credentials();
    let (a, b) = tokio::join!(p.pull(&image, Some(&creds)), p.pull(&image, Some(&creds)));
    let (a, b) = (a.expect("first pull"), b.expect("second pull"));
    assert_eq!(a.image.id, b.image.id);
    check_busybox(&p, &image);
    assert_eq!(
        gate.blob_gets.load(Ordering::SeqCst),
        2,
        "config and layer fetched once each"
    );
    let queries = gate.token_queries.lock().unwrap().clone();
    assert!(
        queries.iter().any(|q| q.contains("service=flotilla-test")
            && q.contains("scope=repository%3Alib%2Fbusybox%3Apull")),
        "{queries:?}"
    );
    // The token got with those credentials does not serve an anonymous pull.
    let err = p.pull(&image, None).await.unwrap_err();
    assert!(matches!(*err, ImageError::Unauthorized { .. }), "{err}");

    // Blobs were redirected to another origin: the token did not follow.
    assert_eq!(gate.leaked.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_challenges() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = busybox_registry(tmp.path());
    let gate = Gate::start(reg.addr(), Mode::Basic).await;
    let image = format!("{}/lib/busybox:1", gate.addr);
    let p = puller(&tmp.path().join("store"), &[&gate.addr.to_string()]);
    let err = p.pull(&image, None).await.unwrap_err();
    assert!(matches!(*err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("imagePullSecret"), "{err}");
    let wrong = Credentials {
        username: "user".into(),
        password: "wrong".into(),
    };
    let err = p.pull(&image, Some(&wrong)).await.unwrap_err();
    assert!(matches!(*err, ImageError::Unauthorized { .. }), "{err}");
    p.pull(&image, Some(&gate.credentials()))
        .await
        .expect("pull with basic credentials");
    check_busybox(&p, &image);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_blob_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = busybox_registry(tmp.path());
    let gate = Gate::start(reg.addr(), Mode::Corrupt).await;
    let image = format!("{}/lib/busybox:1", gate.addr);
    let dir = tmp.path().join("store");
    let p = puller(&dir, &[&gate.addr.to_string()]);
    let err = p.pull(&image, None).await.unwrap_err();
    assert!(matches!(*err, ImageError::DigestMismatch { .. }), "{err}");
    eprintln!("MSG {err}");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(p.store().get(&image).is_none());
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(dir.join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `401` with a Bearer challenge; tokens from `/token` for basic
    /// credentials; blobs redirected to the registry.
    Bearer,
    /// `401` with a Basic challenge.
    Basic,
    /// No auth; blobs served with their last byte flipped.
    Corrupt,
}

const USER: &str = "puller";
const PASSWORD: &str = "s3cret";
const TOKEN: &str = "t0ken-for-lib-busybox";

/// A front for the registry, in this process.
struct Gate {
    addr: SocketAddr,
    blob_gets: Arc<AtomicUsize>,
    /// Authorization headers seen on redirected (registry) requests.
    leaked: Arc<AtomicUsize>,
    token_queries: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gate {
    async fn start(registry: &str, mode: Mode) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let blob_gets = Arc::new(AtomicUsize::new(0));
        let leaked = Arc::new(AtomicUsize::new(0));
        let token_queries = Arc::new(Mutex::new(Vec::new()));
        let ctx = Arc::new(Ctx {
            registry: registry.to_string(),
            addr,
            mode,
            blob_gets: blob_gets.clone(),
            leaked: leaked.clone(),
            token_queries: token_queries.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _ = ctx.serve(conn).await;
                });
            }
        });
        Gate {
            addr,
            blob_gets,
            leaked,
            token_queries,
            task,
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            username: USER.into(),
            password: PASSWORD.into(),
        }
    }
}

struct Ctx {
    registry: String,
    addr: SocketAddr,
    mode: Mode,
    blob_gets: Arc<AtomicUsize>,
    leaked: Arc<AtomicUsize>,
    token_queries: Arc<Mutex<Vec<String>>>,
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Ctx {
    async fn serve(&self, mut conn: TcpStream) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let target = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let auth = headers.get("authorization").cloned().unwrap_or_default();
        let reply = |status: &str, extra: String, body: String| {
            format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\
                 Connection: close\r\n{extra}\r\n{body}",
                body.len()
            )
        };
        let unauthorized = |challenge: String| {
            reply(
                "401 Unauthorized",
                format!("WWW-Authenticate: {challenge}\r\n"),
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .into(),
            )
        };
        if let Some(query) = target.strip_prefix("/token") {
            self.token_queries.lock().unwrap().push(query.to_string());
            let out = if auth == basic(USER, PASSWORD) {
                reply("200 OK", String::new(), format!(r#"{{"token":"{TOKEN}"}}"#))
            } else {
                reply(
                    "401 Unauthorized",
                    String::new(),
                    r#"{"details":"bad credentials"}"#.into(),
                )
            };
            return conn.write_all(out.as_bytes()).await;
        }
        // Where blobs are redirected: another origin (`localhost`, not
        // `127.0.0.1`), so credentials must not come along.
        let direct = target.strip_prefix("/direct").map(str::to_string);
        if direct.is_some() && !auth.is_empty() {
            self.leaked.fetch_add(1, Ordering::SeqCst);
        }
        let target = direct.clone().unwrap_or(target);
        let allowed = direct.is_some()
            || match self.mode {
                Mode::Bearer => auth == format!("Bearer {TOKEN}"),
                Mode::Basic => auth == basic(USER, PASSWORD),
                Mode::Corrupt => true,
            };
        if !allowed {
            let challenge = match self.mode {
                Mode::Bearer => format!(
                    r#"Bearer realm="http://{}/token",service="flotilla-test",scope="repository:lib/busybox:pull""#,
                    self.addr
                ),
                _ => r#"Basic realm="flotilla test""#.into(),
            };
            return conn.write_all(unauthorized(challenge).as_bytes()).await;
        }
        let is_blob = target.contains("/blobs/");
        if is_blob && direct.is_none() {
            self.blob_gets.fetch_add(1, Ordering::SeqCst);
        }
        if is_blob && direct.is_none() && self.mode == Mode::Bearer {
            let out = reply(
                "307 Temporary Redirect",
                format!(
                    "Location: http://localhost:{}/direct{target}\r\n",
                    self.addr.port()
                ),
                String::new(),
            );
            return conn.write_all(out.as_bytes()).await;
        }
        // Forwarded to the registry as HTTP/1.0: answered, then closed.
        let mut upstream = TcpStream::connect(&self.registry).await?;
        let accept = headers.get("accept").cloned().unwrap_or_default();
        let req = format!(
            "GET {target} HTTP/1.0\r\nHost: {}\r\nAccept: {accept}\r\n\r\n",
            self.registry
        );
        upstream.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        upstream.read_to_end(&mut resp).await?;
        if is_blob
            && self.mode == Mode::Corrupt
            && let Some(last) = resp.last_mut()
        {
            *last ^= 0xff;
        }
        conn.write_all(&resp).await
    }
}
