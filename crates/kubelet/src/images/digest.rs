//! SHA-256 content digests (`sha256:<64 hex>`): parsing, and readers and
//! writers that hash what passes through them so a blob is verified while it
//! is copied, never read twice.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use super::error::ImageError;

/// A validated `sha256:<hex>` digest. Only SHA-256 is accepted: it is what
/// every registry and archive writer uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidDigest {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(invalid("expected <algorithm>:<hex>"));
        };
        if algo != "sha256" {
            return Err(invalid("only sha256 digests are supported"));
        }
        if !is_sha256_hex(hex) {
            return Err(invalid("sha256 wants 64 lowercase hex digits"));
        }
        Ok(Self(s.to_string()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Self {
        Self(format!("sha256:{}", hex(&hasher.finalize())))
    }

    /// The 64 hex digits, as used for file names.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Fails with [`ImageError::DigestMismatch`] unless `actual` is `self`.
    pub fn verify(&self, actual: &Digest, what: &str) -> Result<(), ImageError> {
        if self == actual {
            Ok(())
        } else {
            Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: self.0.clone(),
                actual: actual.0.clone(),
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for exactly 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Reads what is left (a tar's trailing padding counts in a diff_id),
    /// then returns the digest and the byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(Digest::of(b"").as_str(), EMPTY);
        let r = HashingReader::new(&b""[..]);
        assert_eq!(r.finish().unwrap(), (Digest::parse(EMPTY).unwrap(), 0));
    }

    #[test]
    fn parse_rejects_bad_digests() {
        assert!(Digest::parse(EMPTY).is_ok());
        assert!(Digest::parse("sha512:abcd").is_err());
        assert!(Digest::parse("sha256:ABC").is_err());
        assert!(Digest::parse(&EMPTY.to_uppercase()).is_err());
        assert!(
            Digest::parse("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
                .is_err()
        );
    }

    #[test]
    fn mismatch_names_both_digests() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let msg = a.verify(&b, "layer").unwrap_err().to_string();
        assert!(
            msg.contains(a.as_str()) && msg.contains(b.as_str()),
            "{msg}"
        );
    }

    #[test]
    fn writer_hashes_what_it_writes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello").unwrap();
        let (buf, d, n) = w.finish();
        assert_eq!(
            (buf.as_slice(), d, n),
            (&b"hello"[..], Digest::of(b"hello"), 5)
        );
    }
}
