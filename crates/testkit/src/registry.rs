//! A Debian `docker-registry` (distribution 2.8) for tests: on a loopback
//! port, with its own config and storage in a temp dir and no auth; images
//! pushed with `skopeo`. Dropping it kills the process (by its handle, so
//! only this one) and removes the dir.
//!
//! ```no_run
//! let reg = testkit::registry::Registry::start().unwrap();
//! reg.push_oci_archive("/tmp/busybox.tar".as_ref(), "lib/busybox:1", &[]).unwrap();
//! println!("pull {}/lib/busybox:1", reg.addr());
//! ```

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry on a free loopback port.
    pub fn start() -> io::Result<Registry> {
        let mut last = None;
        // The port is free when picked; another process may take it before
        // the registry binds it, so a few tries.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match Self::start_on(port) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port")))
    }

    /// Starts a registry on `127.0.0.1:port`.
    pub fn start_on(port: u16) -> io::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("flotilla-registry-")
            .tempdir()?;
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)?;
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: flotilla-test\n",
                storage.display()
            ),
        )?;
        let log = fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("starting {BINARY} ({e}); install the docker-registry package"),
                )
            })?;
        let mut reg = Registry { child, addr, dir };
        let start = Instant::now();
        loop {
            if let Some(status) = reg.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{BINARY} exited ({status}) on start:\n{}",
                    reg.log()
                )));
            }
            if let Ok((200, _, _)) = reg.request("GET", "/v2/", &[], &[]) {
                return Ok(reg);
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(io::Error::other(format!(
                    "{BINARY} not answering on {} after {START_TIMEOUT:?}:\n{}",
                    reg.addr,
                    reg.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes the only image of an oci-archive as `name` (`repo/path:tag`)
    /// with `skopeo copy`; `extra` goes before the two locations
    /// (`--format v2s2` pushes a Docker schema 2 manifest).
    pub fn push_oci_archive(&self, archive: &Path, name: &str, extra: &[&str]) -> io::Result<()> {
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{name}", self.addr))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("skopeo ({e}); install skopeo")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "skopeo copy to {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// One HTTP/1.0 request to the registry: status, headers (lower-cased
    /// names), body.
    #[allow(clippy::type_complexity)]
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let end = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| io::Error::other("no HTTP header end"))?;
        let head = String::from_utf8_lossy(&resp[..end]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok((status, headers, resp[end + 4..].to_vec()))
    }

    /// The manifest `reference` (tag or digest) of `repo`, as served for
    /// `accept`: its bytes and its `Docker-Content-Digest`.
    pub fn manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &str,
    ) -> io::Result<(Vec<u8>, String)> {
        let (status, headers, body) = self.request(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", accept)],
            &[],
        )?;
        if status != 200 {
            return Err(io::Error::other(format!(
                "GET manifest {repo}:{reference}: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let digest = headers
            .iter()
            .find(|(k, _)| k == "docker-content-digest")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Ok((body, digest))
    }

    /// Uploads a manifest (or an index) of `media_type` under `reference`.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> io::Result<()> {
        let (status, _, body) = self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            bytes,
        )?;
        if status == 201 {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "PUT manifest {repo}:{reference}: {status} {}",
                String::from_utf8_lossy(&body)
            )))
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
