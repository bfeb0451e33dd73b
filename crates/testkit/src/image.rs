//! Builds container images for tests without any external tool: layers as tar
//! archives, written as an oci-archive (what `skopeo copy ...
//! oci-archive:FILE:NAME` writes) or a docker-archive (what `docker save`
//! writes). [`busybox_oci_archive`] makes a usable busybox image from the
//! host's static `/bin/busybox`.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! let archive = dir.path().join("busybox.tar");
//! testkit::image::busybox_oci_archive(&archive, "docker.io/library/busybox:latest").unwrap();
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

pub use tar::EntryType;

/// Where the static busybox comes from (Debian's `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Applets linked to busybox under `/bin`.
#[rustfmt::skip]
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ash", "httpd", "nc", "wget", "sleep", "cat", "echo", "ls", "env", "id", "hostname",
    "mkdir", "true", "false", "ps", "kill", "rm", "rmdir", "cp", "mv", "ln", "touch", "grep",
    "sed", "awk", "head", "tail", "date", "uname", "printf", "test", "[", "whoami", "chmod",
    "chown", "ping", "nslookup", "ip", "ifconfig", "mount", "umount", "df", "du", "find",
    "xargs", "tee", "wc", "sort", "uniq", "cut", "tr", "dd", "stat", "readlink", "pwd", "seq",
    "yes", "timeout", "md5sum", "sha256sum", "basename", "dirname", "nproc", "free", "pidof",
    "netstat", "top", "vi", "tar", "gzip", "gunzip", "mktemp", "which", "realpath", "usleep",
];

/// `PATH` of the busybox image's config.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const MTIME: u64 = 1_700_000_000;

/// One layer being built: a tar archive in memory. Paths are relative to the
/// image root (`bin/sh`); owners are root unless given.
pub struct Layer {
    tar: tar::Builder<Vec<u8>>,
    error: Option<io::Error>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        Self { tar, error: None }
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.append(tar::EntryType::Directory, path, mode, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, mode: u32, contents: &[u8]) -> &mut Self {
        self.append(tar::EntryType::Regular, path, mode, (0, 0), contents)
    }

    /// A regular file owned by `uid:gid`.
    pub fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u64, u64),
        contents: &[u8],
    ) -> &mut Self {
        self.append(tar::EntryType::Regular, path, mode, owner, contents)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Symlink, path, target)
    }

    /// A hard link to `target`, a path in this layer.
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Link, path, target)
    }

    /// A character (`EntryType::Char`) or block (`EntryType::Block`) device
    /// node, or a fifo (`EntryType::Fifo`, numbers ignored).
    pub fn device(
        &mut self,
        path: &str,
        kind: EntryType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        if self.error.is_none() {
            let mut h = header(kind, mode, (0, 0), 0);
            let numbers = h
                .set_device_major(major)
                .and_then(|()| h.set_device_minor(minor));
            if let Err(e) = numbers.and_then(|()| self.tar.append_data(&mut h, path, &[][..])) {
                self.error = Some(e);
            }
        }
        self
    }

    /// An entry written as given, without the tar crate's checks (which
    /// refuse `..`): for archives an importer must refuse. `name` and `link`
    /// fit in 100 bytes.
    pub fn unchecked(&mut self, name: &str, kind: EntryType, link: &str, data: &[u8]) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        if name.len() > 100 || link.len() > 100 {
            self.error = Some(io::Error::other("unchecked entry names fit in 100 bytes"));
            return self;
        }
        let mut h = header(kind, 0o644, (0, 0), data.len() as u64);
        h.as_old_mut().name = [0; 100];
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        let out = self.tar.get_mut();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        self
    }

    /// An OCI whiteout: `path` is deleted from the layers below.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let entry = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&entry, 0o644, &[])
    }

    /// An OCI opaque whiteout: `dir` hides what the layers below have in it.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(
            &format!("{}/.wh..wh..opq", dir.trim_end_matches('/')),
            0o644,
            &[],
        )
    }

    fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
        if self.error.is_none() {
            let mut h = header(kind, 0o777, (0, 0), 0);
            if let Err(e) = self.tar.append_link(&mut h, path, target) {
                self.error = Some(e);
            }
        }
        self
    }

    fn append(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        owner: (u64, u64),
        data: &[u8],
    ) -> &mut Self {
        if self.error.is_none() {
            let mut h = header(kind, mode, owner, data.len() as u64);
            if let Err(e) = self.tar.append_data(&mut h, path, data) {
                self.error = Some(e);
            }
        }
        self
    }

    /// The layer as an uncompressed tar.
    pub fn into_tar(self) -> io::Result<Vec<u8>> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.tar.into_inner()
    }
}

fn header(kind: tar::EntryType, mode: u32, (uid, gid): (u64, u64), size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

/// An image: layers (lowest first) and the config a container inherits.
#[derive(Default)]
pub struct ImageBuilder {
    layers: Vec<Vec<u8>>,
    env: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    working_dir: Option<String>,
    user: Option<String>,
}

impl ImageBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn layer(mut self, layer: Layer) -> io::Result<Self> {
        self.layers.push(layer.into_tar()?);
        Ok(self)
    }

    /// A layer given as an uncompressed tar, for layers [`Layer`] cannot
    /// express (such as entries meant to be refused).
    pub fn layer_tar(mut self, tar: Vec<u8>) -> Self {
        self.layers.push(tar);
        self
    }

    pub fn env(mut self, env: &[&str]) -> Self {
        self.env = env.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn entrypoint(mut self, args: &[&str]) -> Self {
        self.entrypoint = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.cmd = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = Some(dir.to_string());
        self
    }

    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// The config JSON; `diff_ids` are the layers' uncompressed digests.
    fn config_json(&self) -> String {
        let strings = |v: &[String]| {
            format!(
                "[{}]",
                v.iter()
                    .map(|s| json_string(s))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let mut config = vec![format!("\"Env\":{}", strings(&self.env))];
        if !self.entrypoint.is_empty() {
            config.push(format!("\"Entrypoint\":{}", strings(&self.entrypoint)));
        }
        if !self.cmd.is_empty() {
            config.push(format!("\"Cmd\":{}", strings(&self.cmd)));
        }
        if let Some(dir) = &self.working_dir {
            config.push(format!("\"WorkingDir\":{}", json_string(dir)));
        }
        if let Some(user) = &self.user {
            config.push(format!("\"User\":{}", json_string(user)));
        }
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(l)).collect();
        format!(
            "{{\"architecture\":{},\"os\":\"linux\",\"config\":{{{}}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":{}}}}}",
            json_string(go_arch()),
            config.join(","),
            strings(&diff_ids)
        )
    }

    /// Writes an oci-archive with gzip layers; `index.json` names the image
    /// `name` in `org.opencontainers.image.ref.name`, as skopeo does.
    pub fn write_oci_archive(&self, path: &Path, name: &str) -> io::Result<()> {
        let mut out = tar::Builder::new(BufWriter::new(File::create(path)?));
        out.mode(tar::HeaderMode::Deterministic);
        let blob = |out: &mut tar::Builder<BufWriter<File>>, bytes: &[u8]| -> io::Result<String> {
            let digest = sha256(bytes);
            let entry = format!("blobs/sha256/{}", &digest["sha256:".len()..]);
            append(out, &entry, bytes)?;
            Ok(format!(
                "{{\"digest\":\"{digest}\",\"size\":{}",
                bytes.len()
            ))
        };
        append_dir(&mut out, "blobs")?;
        append_dir(&mut out, "blobs/sha256")?;
        let mut layers = Vec::new();
        for layer in &self.layers {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(layer)?;
            let gz = gz.finish()?;
            layers.push(format!(
                "{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",{}}}",
                &blob(&mut out, &gz)?[1..]
            ));
        }
        let config = blob(&mut out, self.config_json().as_bytes())?;
        let manifest = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\
             \"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",{}}},\"layers\":[{}]}}",
            &config[1..],
            layers.join(",")
        );
        let manifest = blob(&mut out, manifest.as_bytes())?;
        let index = format!(
            "{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",{},\
             \"annotations\":{{\"org.opencontainers.image.ref.name\":{}}}}}]}}",
            &manifest[1..],
            json_string(name)
        );
        append(&mut out, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        append(&mut out, "index.json", index.as_bytes())?;
        out.into_inner()?.flush()
    }

    /// Writes a docker-archive as `docker save` does: `manifest.json`,
    /// `<config hex>.json` and uncompressed `<layer id>/layer.tar`.
    pub fn write_docker_archive(&self, path: &Path, name: &str) -> io::Result<()> {
        let mut out = tar::Builder::new(BufWriter::new(File::create(path)?));
        out.mode(tar::HeaderMode::Deterministic);
        let config = self.config_json();
        let config_name = format!("{}.json", &sha256(config.as_bytes())["sha256:".len()..]);
        let mut layer_paths = Vec::new();
        for layer in &self.layers {
            // Legacy layer ids are not content digests; any unique hex does.
            let id = &sha256(&[layer_paths.len() as u8, 0xd0])["sha256:".len()..];
            append_dir(&mut out, id)?;
            append(&mut out, &format!("{id}/VERSION"), b"1.0")?;
            append(&mut out, &format!("{id}/layer.tar"), layer)?;
            layer_paths.push(json_string(&format!("{id}/layer.tar")));
        }
        append(&mut out, &config_name, config.as_bytes())?;
        let manifest = format!(
            "[{{\"Config\":{},\"RepoTags\":[{}],\"Layers\":[{}]}}]",
            json_string(&config_name),
            json_string(name),
            layer_paths.join(",")
        );
        append(&mut out, "manifest.json", manifest.as_bytes())?;
        out.into_inner()?.flush()
    }
}

/// Copies the tar at `src` to `dst`: `edit` gets each member's name and data
/// and returns the data to write instead; `extra` members are appended.
/// For corrupting or extending archives in tests.
pub fn rewrite_archive(
    src: &Path,
    dst: &Path,
    mut edit: impl FnMut(&str, Vec<u8>) -> Vec<u8>,
    extra: &[(String, Vec<u8>)],
) -> io::Result<()> {
    let mut input = tar::Archive::new(File::open(src)?);
    let mut out = tar::Builder::new(BufWriter::new(File::create(dst)?));
    for entry in input.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.display().to_string();
        let mut data = Vec::new();
        io::Read::read_to_end(&mut entry, &mut data)?;
        let data = edit(&name, data);
        let mut h = entry.header().clone();
        h.set_size(data.len() as u64);
        out.append_data(&mut h, &name, &data[..])?;
    }
    for (name, data) in extra {
        append(&mut out, name, data)?;
    }
    out.into_inner()?.flush()
}

fn append(out: &mut tar::Builder<impl Write>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, (0, 0), data.len() as u64);
    out.append_data(&mut h, path, data)
}

fn append_dir(out: &mut tar::Builder<impl Write>, path: &str) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, (0, 0), 0);
    out.append_data(&mut h, path, &[][..])
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The busybox root filesystem as one layer: `/bin/busybox` from the host and
/// its applets as symlinks, `/etc/passwd` and `/etc/group` with root and
/// nobody (65534), `/tmp` (1777), `/root`, and the usual empty mount points.
pub fn busybox_layer() -> io::Result<Layer> {
    let busybox = std::fs::read(HOST_BUSYBOX).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("reading {HOST_BUSYBOX} ({e}); install busybox-static"),
        )
    })?;
    let mut layer = Layer::new();
    for dir in [
        "bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin", "var", "sbin",
    ] {
        layer.dir(dir, 0o755);
    }
    layer
        .dir("root", 0o700)
        .dir("tmp", 0o1777)
        .dir("var/tmp", 0o1777);
    layer.file("bin/busybox", 0o755, &busybox);
    for applet in BUSYBOX_APPLETS {
        layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    layer.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    );
    layer.file("etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n");
    layer.file("etc/hostname", 0o644, b"busybox\n");
    Ok(layer)
}

/// The busybox image: [`busybox_layer`], `PATH` set, `Cmd ["sh"]`.
pub fn busybox_image() -> io::Result<ImageBuilder> {
    Ok(ImageBuilder::new()
        .layer(busybox_layer()?)?
        .env(&[DEFAULT_PATH])
        .cmd(&["sh"]))
}

/// Writes the busybox image, named `name`, as an oci-archive at `path`.
pub fn busybox_oci_archive(path: &Path, name: &str) -> io::Result<()> {
    busybox_image()?.write_oci_archive(path, name)
}

/// Writes the busybox image, named `name`, as a docker-archive at `path`.
pub fn busybox_docker_archive(path: &Path, name: &str) -> io::Result<()> {
    busybox_image()?.write_docker_archive(path, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn whiteout_names() {
        let mut layer = Layer::new();
        layer.whiteout("etc/gone").whiteout("top").opaque("data/");
        let tar = layer.into_tar().unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["etc/.wh.gone", ".wh.top", "data/.wh..wh..opq"]);
    }

    #[test]
    fn archives_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let image = ImageBuilder::new().layer({
            let mut l = Layer::new();
            l.file("hello", 0o644, b"hi");
            l
        });
        let image = image.unwrap().cmd(&["sh"]);
        for docker in [false, true] {
            let path = dir.path().join(format!("a-{docker}.tar"));
            if docker {
                image.write_docker_archive(&path, "x:1").unwrap();
            } else {
                image.write_oci_archive(&path, "x:1").unwrap();
            }
            let mut archive = tar::Archive::new(File::open(&path).unwrap());
            let names: Vec<String> = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            let want = if docker {
                "manifest.json"
            } else {
                "index.json"
            };
            assert!(names.iter().any(|n| n == want), "{names:?}");
        }
    }
}
