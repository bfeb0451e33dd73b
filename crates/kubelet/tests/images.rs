//! The image store over real archives: busybox built by testkit as
//! oci-archive and docker-archive, archives rewritten by skopeo, whiteouts
//! checked under a real overlayfs mount, and the archives it must refuse.
//!
//! Unpacking whiteouts and mounting overlayfs need root; those tests say so
//! when they fail for lack of it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kubelet::images::{Image, ImageError, ImageStore};
use testkit::image::{EntryType, ImageBuilder, Layer, busybox_layer, rewrite_archive};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn require_root(what: &str) {
    assert!(is_root(), "this test needs root ({what}); run it as root");
}

fn busybox_archive(dir: &Path) -> PathBuf {
    let path = dir.join("busybox-oci.tar");
    testkit::image::busybox_oci_archive(&path, BUSYBOX).expect("building the busybox archive");
    path
}

/// busybox plus a second layer that deletes `etc/gone` and makes `data`
/// opaque (hiding `data/old`) while adding `data/new`.
fn whiteout_image() -> ImageBuilder {
    let mut base = busybox_layer().expect("busybox layer");
    base.file("etc/keep", 0o644, b"keep\n")
        .file("etc/gone", 0o644, b"gone\n")
        .dir("data", 0o755)
        .file("data/old", 0o644, b"old\n");
    let mut top = Layer::new();
    top.whiteout("etc/gone")
        .opaque("data")
        .file("data/new", 0o600, b"new\n");
    ImageBuilder::new()
        .layer(base)
        .and_then(|i| i.layer(top))
        .expect("layers")
        .env(&[testkit::image::DEFAULT_PATH])
        .cmd(&["sh"])
}

fn check_busybox_layer(layer: &Path) {
    let host = fs::metadata("/bin/busybox").unwrap();
    let ours = fs::metadata(layer.join("bin/busybox")).expect("bin/busybox unpacked");
    assert_eq!(ours.len(), host.len());
    assert_eq!(ours.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(layer.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    let passwd = fs::read_to_string(layer.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nobody:x:65534:65534"), "{passwd}");
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ImageStore>();
}

#[test]
fn imports_the_busybox_oci_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = busybox_archive(dir.path());
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.import_archive(&archive).unwrap(), [BUSYBOX]);

    let image = store.get("busybox").expect("busybox by short name");
    assert_eq!(store.get("busybox:latest").as_ref(), Some(&image));
    assert_eq!(store.get(BUSYBOX).as_ref(), Some(&image));
    assert_eq!(store.get(&image.id).as_ref(), Some(&image));
    assert!(store.get("busybox:1.36").is_none());
    assert!(store.get("other").is_none());
    assert_eq!(image.config.cmd, ["sh"]);
    assert_eq!(image.config.env, [testkit::image::DEFAULT_PATH]);
    assert!(image.config.entrypoint.is_empty());
    assert!(image.size > 100_000, "{}", image.size);
    let digest_ref = image
        .names
        .iter()
        .find(|n| n.contains('@'))
        .expect("a repo digest");
    assert!(
        digest_ref.starts_with("docker.io/library/busybox@sha256:"),
        "{digest_ref}"
    );
    let short_digest_ref = digest_ref.replace("docker.io/library/", "");
    assert_eq!(store.get(&short_digest_ref).as_ref(), Some(&image));

    let layers = store.layers(&image).unwrap();
    assert_eq!(layers.len(), 1);
    check_busybox_layer(&layers[0]);
    assert_eq!(store.list(), std::slice::from_ref(&image));

    // Importing again changes nothing; a reopened store has the same image.
    assert_eq!(store.import_archive(&archive).unwrap(), [BUSYBOX]);
    drop(store);
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.get("busybox"), Some(image.clone()));
    assert_eq!(store.layers(&image).unwrap(), layers);
    assert_eq!(
        fs::read_dir(dir.path().join("store/tmp")).unwrap().count(),
        0
    );
}

#[test]
fn imports_docker_archives_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let docker = dir.path().join("busybox-docker.tar");
    testkit::image::busybox_docker_archive(&docker, "busybox:docker").unwrap();
    assert_eq!(
        store.import_archive(&docker).unwrap(),
        ["docker.io/library/busybox:docker"]
    );
    let image = store.get("busybox:docker").unwrap();
    check_busybox_layer(&store.layers(&image).unwrap()[0]);

    // The same config as the OCI archive's: the same image under two names.
    let oci = busybox_archive(dir.path());
    store.import_archive(&oci).unwrap();
    let both = store.get("busybox").unwrap();
    assert_eq!(both.id, image.id);
    assert!(
        both.names.contains(&BUSYBOX.to_string())
            && both
                .names
                .contains(&"docker.io/library/busybox:docker".to_string())
    );
    assert_eq!(store.list().len(), 1);

    let gz = dir.path().join("busybox-docker.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&fs::read(&docker).unwrap()).unwrap();
    enc.finish().unwrap();
    let other = ImageStore::open(&dir.path().join("other")).unwrap();
    assert_eq!(
        other.import_archive(&gz).unwrap(),
        ["docker.io/library/busybox:docker"]
    );
}

#[test]
fn remove_deletes_what_no_other_image_uses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    store.import_archive(&busybox_archive(dir.path())).unwrap();
    // "app" shares busybox's layer and adds one of its own.
    let mut top = Layer::new();
    top.file("app", 0o755, b"#!/bin/sh\necho app\n");
    let app = ImageBuilder::new()
        .layer(busybox_layer().unwrap())
        .and_then(|i| i.layer(top));
    let archive = dir.path().join("app.tar");
    app.unwrap().write_oci_archive(&archive, "app:1").unwrap();
    store.import_archive(&archive).unwrap();
    let busybox = store.get("busybox").unwrap();
    let app = store.get("app:1").unwrap();
    let app_layers = store.layers(&app).unwrap();
    assert_eq!(app_layers[0], store.layers(&busybox).unwrap()[0]);

    store.remove(&app).unwrap();
    assert!(store.get("app:1").is_none());
    assert!(matches!(store.remove(&app), Err(ImageError::NotFound(_))));
    assert!(!app_layers[1].exists(), "app's own layer is gone");
    assert!(app_layers[0].is_dir(), "the shared layer stays");
    assert_eq!(store.list(), std::slice::from_ref(&busybox));
    assert!(store.layers(&busybox).is_ok());
    store.remove(&busybox).unwrap();
    assert!(store.list().is_empty());
    let blobs = fs::read_dir(root.join("blobs/sha256")).unwrap().count();
    let layers = fs::read_dir(root.join("layers/sha256")).unwrap().count();
    assert_eq!((blobs, layers), (0, 0));
    // A reopened store agrees.
    drop(store);
    assert!(ImageStore::open(&root).unwrap().list().is_empty());
}

#[test]
fn concurrent_imports_of_one_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = busybox_archive(dir.path());
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.import_archive(&archive)))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), [BUSYBOX]);
        }
    });
    assert_eq!(
        fs::read_dir(dir.path().join("store/layers/sha256"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        fs::read_dir(dir.path().join("store/tmp")).unwrap().count(),
        0
    );
}

#[test]
fn a_corrupt_blob_is_refused_naming_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let good = busybox_archive(dir.path());
    let bad = dir.path().join("bad.tar");
    let mut tampered = None;
    rewrite_archive(
        &good,
        &bad,
        |name, mut data| {
            // The layer: the only big blob.
            if name.starts_with("blobs/sha256/") && data.len() > 100_000 {
                tampered = Some(name.trim_start_matches("blobs/sha256/").to_string());
                let n = data.len();
                data[n / 2] ^= 0xff;
            }
            data
        },
        &[],
    )
    .unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let err = store.import_archive(&bad).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains(&tampered.unwrap()),
        "names the expected digest: {msg}"
    );
    assert!(
        msg.matches("sha256:").count() >= 2,
        "names both digests: {msg}"
    );
    assert!(store.list().is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("store/layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read_dir(dir.path().join("store/tmp")).unwrap().count(),
        0
    );
}

#[test]
fn a_layer_not_matching_its_diff_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("docker.tar");
    testkit::image::busybox_docker_archive(&good, "busybox").unwrap();
    let bad = dir.path().join("bad.tar");
    rewrite_archive(
        &good,
        &bad,
        |name, mut data| {
            if name.ends_with("/layer.tar") {
                // A different file content (etc/passwd's), still a valid tar.
                let at = data.windows(8).position(|w| w == b"nobody:x").unwrap();
                data[at] = b'N';
            }
            data
        },
        &[],
    )
    .unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let err = store.import_archive(&bad).unwrap_err();
    assert!(err.to_string().contains("uncompressed layer"), "{err}");
    assert_eq!(
        fs::read_dir(dir.path().join("store/layers/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn an_image_index_resolves_to_this_hosts_platform() {
    let dir = tempfile::tempdir().unwrap();
    let single = busybox_archive(dir.path());
    let index_json = {
        let mut ar = tar::Archive::new(File::open(&single).unwrap());
        let mut entry = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().ends_with("index.json"))
            .unwrap();
        let mut s = String::new();
        entry.read_to_string(&mut s).unwrap();
        serde_json::from_str::<serde_json::Value>(&s).unwrap()
    };
    let mut manifest = index_json["manifests"][0].clone();
    manifest.as_object_mut().unwrap().remove("annotations");
    let arch = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        "arm64"
    };
    manifest["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
    let image_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
             "digest": format!("sha256:{}", "0".repeat(64)),
             "platform": {"os": "linux", "architecture": "s390x"}},
            manifest,
        ],
    }))
    .unwrap();
    let index_digest = testkit::image::sha256(&image_index);
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index_digest, "size": image_index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi:1"},
    }]});
    let multi = dir.path().join("multi.tar");
    let blob = format!("blobs/sha256/{}", &index_digest[7..]);
    rewrite_archive(
        &single,
        &multi,
        |name, data| {
            if name == "index.json" {
                serde_json::to_vec(&top).unwrap()
            } else {
                data
            }
        },
        &[(blob, image_index)],
    )
    .unwrap();

    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    assert_eq!(
        store.import_archive(&multi).unwrap(),
        ["docker.io/library/multi:1"]
    );
    let image = store.get("multi:1").unwrap();
    // Reachable by the index's digest, as a multi-arch pull by digest would be.
    assert_eq!(
        store.get(&format!("multi@{index_digest}")).as_ref(),
        Some(&image)
    );
    check_busybox_layer(&store.layers(&image).unwrap()[0]);
}

#[test]
fn entries_escaping_the_layer_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let out = outside.to_str().unwrap();
    let (file, symlink, link) = (EntryType::Regular, EntryType::Symlink, EntryType::Link);
    let mut cases: Vec<(&str, Layer)> = Vec::new();
    let mut l = Layer::new();
    l.unchecked("../../../escaped", file, "", b"x");
    cases.push(("dotdot", l));
    let mut l = Layer::new();
    l.unchecked("evil", symlink, out, b"")
        .unchecked("evil/escaped", file, "", b"x");
    cases.push(("symlink", l));
    let mut l = Layer::new();
    l.unchecked("evil", symlink, out, b"")
        .unchecked("evil/.wh.escaped", file, "", b"");
    cases.push(("whiteout-through-symlink", l));
    let mut l = Layer::new();
    l.unchecked("passwd", link, "../../../../etc/passwd", b"");
    cases.push(("hardlink", l));
    for (what, layer) in cases {
        let archive = dir.path().join(format!("{what}.tar"));
        let image = ImageBuilder::new().layer(layer).unwrap();
        image.write_oci_archive(&archive, "evil").unwrap();
        let store = ImageStore::open(&dir.path().join("store")).unwrap();
        let err = store.import_archive(&archive).expect_err(what);
        assert!(matches!(err, ImageError::Unpack { .. }), "{what}: {err}");
        let written = fs::read_dir(&outside).unwrap().count();
        assert_eq!(written, 0, "{what}: wrote outside the layer");
        assert!(!dir.path().join("escaped").exists(), "{what}");
        assert!(store.list().is_empty());
    }
}

#[test]
fn devices_owners_modes_and_links_are_kept() {
    require_root("device nodes and file owners");
    let dir = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.device("dev/null", EntryType::Char, 0o666, 1, 3)
        .device("dev/loop9", EntryType::Block, 0o660, 7, 9)
        .device("run/fifo", EntryType::Fifo, 0o600, 0, 0)
        .file_owned("bin/suid", 0o4755, (1000, 1001), b"#!/bin/sh\n")
        .hardlink("bin/again", "bin/suid")
        .symlink("bin/abs", "/etc/passwd");
    let archive = dir.path().join("special.tar");
    ImageBuilder::new()
        .layer(l)
        .unwrap()
        .write_oci_archive(&archive, "special")
        .unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    store.import_archive(&archive).unwrap();
    let layer = &store.layers(&store.get("special").unwrap()).unwrap()[0];
    let null = fs::symlink_metadata(layer.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (null.rdev(), null.mode() & 0o7777),
        (nix::sys::stat::makedev(1, 3), 0o666)
    );
    let lp = fs::symlink_metadata(layer.join("dev/loop9")).unwrap();
    assert!(lp.file_type().is_block_device() && lp.rdev() == nix::sys::stat::makedev(7, 9));
    assert!(
        fs::symlink_metadata(layer.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let suid = fs::metadata(layer.join("bin/suid")).unwrap();
    assert_eq!(
        (suid.uid(), suid.gid(), suid.mode() & 0o7777),
        (1000, 1001, 0o4755)
    );
    assert_eq!(
        fs::metadata(layer.join("bin/again")).unwrap().ino(),
        suid.ino()
    );
    assert_eq!(
        fs::read_link(layer.join("bin/abs")).unwrap(),
        Path::new("/etc/passwd")
    );
}

#[test]
fn invalid_archives_say_what_they_want() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let junk = dir.path().join("junk.tar");
    fs::write(&junk, b"not a tar at all").unwrap();
    let err = store.import_archive(&junk).unwrap_err().to_string();
    assert!(
        err.contains("oci-archive") && err.contains("docker save"),
        "{err}"
    );
    let missing = store
        .import_archive(&dir.path().join("missing.tar"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing.tar"), "{missing}");
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Checks the converted whiteouts in the raw layers, then mounts them as an
/// overlay and checks what a container would see.
fn check_whiteouts(store: &ImageStore, image: &Image, scratch: &Path) {
    let layers = store.layers(image).unwrap();
    assert_eq!(layers.len(), 2);
    check_busybox_layer(&layers[0]);
    let top = &layers[1];
    let gone = fs::symlink_metadata(top.join("etc/gone")).expect("whiteout for etc/gone");
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "etc/gone is a 0/0 char device"
    );
    assert!(!top.join("etc/.wh.gone").exists());
    let opaque = xattr::get(top.join("data"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert!(!top.join("data/.wh..wh..opq").exists());
    assert_eq!(
        fs::metadata(top.join("data/new"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let merged = scratch.join("merged");
    fs::create_dir_all(&merged).unwrap();
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let options = format!("lowerdir={}", lower.join(":"));
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(options.as_str()),
    )
    .unwrap_or_else(|e| panic!("mounting overlay ({options}): {e}; this test needs root"));
    let _mounted = Mounted(merged.clone());
    assert!(merged.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_to_string(merged.join("etc/keep")).unwrap(),
        "keep\n"
    );
    assert!(
        !merged.join("etc/gone").exists(),
        "the whiteout hides etc/gone"
    );
    assert!(
        !merged.join("data/old").exists(),
        "the opaque dir hides data/old"
    );
    assert_eq!(
        fs::read_to_string(merged.join("data/new")).unwrap(),
        "new\n"
    );
    let out = Command::new("chroot")
        .arg(&merged)
        .args(["/bin/sh", "-c", "echo $((6 * 7)); ls /data"])
        .output();
    if let Ok(out) = out {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "42\nnew\n", "{out:?}");
    }
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    require_root(
        "overlay whiteouts are char devices and trusted.* xattrs; the test mounts overlayfs",
    );
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("w.tar");
    whiteout_image()
        .write_oci_archive(&archive, "whiteouts:1")
        .unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    store.import_archive(&archive).unwrap();
    check_whiteouts(&store, &store.get("whiteouts:1").unwrap(), dir.path());
    let docker = dir.path().join("w-docker.tar");
    whiteout_image()
        .write_docker_archive(&docker, "whiteouts:docker")
        .unwrap();
    store.import_archive(&docker).unwrap();
    check_whiteouts(&store, &store.get("whiteouts:docker").unwrap(), dir.path());
}

fn skopeo(args: &[&str]) {
    match Command::new("skopeo").args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "skopeo {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => panic!(
            "skopeo not runnable ({e}): this test checks interop with archives skopeo writes; \
             scripts/setup.sh installs it (Debian package skopeo)"
        ),
    }
}

#[test]
fn imports_archives_written_by_skopeo() {
    require_root(
        "overlay whiteouts are char devices and trusted.* xattrs; the test mounts overlayfs",
    );
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.tar");
    whiteout_image().write_oci_archive(&ours, "w:1").unwrap();
    let src = format!("oci-archive:{}:w:1", ours.display());
    let oci = dir.path().join("skopeo-oci.tar");
    let docker = dir.path().join("skopeo-docker.tar");
    let oci_dest = format!("oci-archive:{}:127.0.0.1:5000/x/skopeo:oci", oci.display());
    let docker_dest = format!(
        "docker-archive:{}:127.0.0.1:5000/x/skopeo:docker",
        docker.display()
    );
    skopeo(&["copy", "--quiet", &src, &oci_dest]);
    skopeo(&["copy", "--quiet", &src, &docker_dest]);
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    assert_eq!(
        store.import_archive(&oci).unwrap(),
        ["127.0.0.1:5000/x/skopeo:oci"]
    );
    check_whiteouts(
        &store,
        &store.get("127.0.0.1:5000/x/skopeo:oci").unwrap(),
        dir.path(),
    );
    assert_eq!(
        store.import_archive(&docker).unwrap(),
        ["127.0.0.1:5000/x/skopeo:docker"]
    );
    let image = store.get("127.0.0.1:5000/x/skopeo:docker").unwrap();
    check_whiteouts(&store, &image, dir.path());
    let configs: BTreeMap<_, _> = store.list().into_iter().map(|i| (i.id, i.names)).collect();
    assert_eq!(configs.len(), 1, "one config, two archives: {configs:?}");
}
