//! The protobuf wire format: tags, varints, fixed-width and length-delimited values.
//!
//! Every read is bounds-checked; malformed input yields a `WireError`, never a panic.

/// One field value as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    /// The wire type's name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "fixed64",
            Wire::Bytes(_) => "length-delimited",
            Wire::Fixed32(_) => "fixed32",
        }
    }
}

/// What was wrong with the bytes; the caller adds where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The input ended inside a value.
    Truncated,
    /// A varint ran past 10 bytes.
    VarintTooLong,
    /// A length prefix points past the end of the enclosing message.
    LengthPastEnd { len: u64, remaining: usize },
    /// Field number 0 or above 2^29-1.
    BadFieldNumber(u64),
    /// Wire types 3 and 4 (groups) are not used by Kubernetes; 6 and 7 do not exist.
    UnsupportedWireType(u8),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Truncated => write!(f, "the data ends in the middle of a value"),
            WireError::VarintTooLong => write!(f, "a varint is longer than 10 bytes"),
            WireError::LengthPastEnd { len, remaining } => write!(
                f,
                "a length of {len} bytes runs past the end ({remaining} bytes remain)"
            ),
            WireError::BadFieldNumber(n) => write!(f, "invalid field number {n}"),
            WireError::UnsupportedWireType(t) => write!(f, "unsupported wire type {t}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Reads (field number, value) pairs from one message's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next varint, e.g. one element of a packed repeated field.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = self.buf.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        if self.buf.len() >= 10 {
            Err(WireError::VarintTooLong)
        } else {
            Err(WireError::Truncated)
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The next field, or `None` at the end of the message.
    pub fn field(&mut self) -> Option<Result<(u32, Wire<'a>), WireError>> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.read_field())
    }

    fn read_field(&mut self) -> Result<(u32, Wire<'a>), WireError> {
        let key = self.varint()?;
        let number = key >> 3;
        let number = match u32::try_from(number) {
            Ok(n) if (1..=0x1fff_ffff).contains(&n) => n,
            _ => return Err(WireError::BadFieldNumber(number)),
        };
        // The mask keeps the value below 8, so the cast cannot truncate.
        let value = match (key & 7) as u8 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.fixed()?)),
            2 => {
                let len = self.varint()?;
                let remaining = self.buf.len();
                match usize::try_from(len) {
                    Ok(n) if n <= remaining => Wire::Bytes(self.take(n)?),
                    _ => return Err(WireError::LengthPastEnd { len, remaining }),
                }
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.fixed()?)),
            t => return Err(WireError::UnsupportedWireType(t)),
        };
        Ok((number, value))
    }
}

/// Test helpers that build protobuf bytes by hand.
#[cfg(test)]
pub mod build {
    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A varint field.
    pub fn int(tag: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(u64::from(tag) << 3, &mut out);
        varint(v, &mut out);
        out
    }

    /// A length-delimited field (string, bytes or message).
    pub fn bytes(tag: u32, v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint((u64::from(tag) << 3) | 2, &mut out);
        varint(v.len() as u64, &mut out);
        out.extend_from_slice(v);
        out
    }

    pub fn string(tag: u32, v: &str) -> Vec<u8> {
        bytes(tag, v.as_bytes())
    }

    /// A message field built from its already-encoded fields.
    pub fn msg(tag: u32, parts: &[Vec<u8>]) -> Vec<u8> {
        bytes(tag, &parts.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_wire_type() {
        let mut buf = build::int(1, 300);
        buf.extend([0x11, 1, 0, 0, 0, 0, 0, 0, 0]); // field 2, fixed64 = 1
        buf.extend(build::string(3, "hi"));
        buf.extend([0x25, 2, 0, 0, 0]); // field 4, fixed32 = 2
        let mut r = Reader::new(&buf);
        assert_eq!(r.field(), Some(Ok((1, Wire::Varint(300)))));
        assert_eq!(r.field(), Some(Ok((2, Wire::Fixed64(1)))));
        assert_eq!(r.field(), Some(Ok((3, Wire::Bytes(b"hi")))));
        assert_eq!(r.field(), Some(Ok((4, Wire::Fixed32(2)))));
        assert_eq!(r.field(), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: &[(&[u8], WireError)] = &[
            (&[0x08], WireError::Truncated),
            (&[0x08, 0x80], WireError::Truncated),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                WireError::VarintTooLong,
            ),
            (
                &[0x1a, 0x05, b'a'],
                WireError::LengthPastEnd {
                    len: 5,
                    remaining: 1,
                },
            ),
            (
                &[
                    0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                WireError::LengthPastEnd {
                    len: u64::MAX,
                    remaining: 0,
                },
            ),
            (&[0x11, 1, 2], WireError::Truncated),
            (&[0x25, 1], WireError::Truncated),
            (&[0x00, 0x00], WireError::BadFieldNumber(0)),
            (&[0x0b], WireError::UnsupportedWireType(3)),
            (&[0x0e], WireError::UnsupportedWireType(6)),
        ];
        for (bytes, want) in cases {
            assert_eq!(Reader::new(bytes).field(), Some(Err(*want)), "{bytes:x?}");
        }
    }

    #[test]
    fn ten_byte_varints_are_accepted() {
        // Negative int32/int64 values are sign-extended to ten bytes on the wire.
        let buf = build::int(1, u64::MAX);
        assert_eq!(buf.len(), 11);
        assert_eq!(
            Reader::new(&buf).field(),
            Some(Ok((1, Wire::Varint(u64::MAX))))
        );
    }
}
