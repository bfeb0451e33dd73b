//! The server side of SPDY/3.1, as far as Kubernetes' streaming protocols
//! (`v4.channel.k8s.io` for exec and attach, `portforward.k8s.io`) use it:
//! the client opens streams with SYN_STREAM and typed headers, the server
//! answers each with SYN_REPLY, data flows in DATA frames, FIN half-closes.
//!
//! Written here rather than taken from a crate: no maintained Rust crate
//! speaks SPDY/3 any more (it was superseded by HTTP/2 in 2015), and the
//! part needed is small. Like the Go implementation kubectl uses
//! (`moby/spdystream`), this one does no flow control: WINDOW_UPDATE and
//! SETTINGS frames are read and ignored. Header blocks are zlib streams with
//! the preset dictionary of the SPDY/3 specification, one stream per
//! direction for the whole connection.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
pub const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream is being cancelled.
pub const CANCEL: u32 = 5;
/// The largest DATA payload sent in one frame (the format allows 16 MiB).
pub const MAX_DATA: usize = 32 * 1024;
/// Frames larger than this are refused: nothing Kubernetes sends comes close.
const MAX_FRAME: usize = 1 << 24;

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1):
/// length-prefixed header names and values, then a run of common strings.
pub fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413\
        414415416417502504505203 Non-Authoritative Information204 No Content301 Moved \
        Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal \
        Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul \
        Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,\
        text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,\
        text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8\
        charset=iso-8859-1,utf-,*,enq=0.";
    let mut out = Vec::with_capacity(1423);
    for w in WORDS {
        out.extend_from_slice(&(w.len() as u32).to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

/// Header names (lower case, as SPDY requires) and values.
pub type Headers = Vec<(String, String)>;

/// The value of header `name`, compared without regard to case.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    SynStream {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        id: u32,
        headers: Headers,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last: u32,
    },
    Headers {
        id: u32,
        headers: Headers,
    },
    Data {
        id: u32,
        fin: bool,
        data: Bytes,
    },
    /// SETTINGS, WINDOW_UPDATE and anything unknown: read, ignored.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn protocol(msg: impl Into<String>) -> SpdyError {
    SpdyError::Protocol(msg.into())
}

/// Compresses header blocks: one zlib stream for the connection, flushed
/// after each block (Z_SYNC_FLUSH), as SPDY/3 specifies.
pub struct HeaderWriter(Compress);

impl HeaderWriter {
    pub fn new() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(&dictionary())
            .expect("zlib-rs accepts a preset dictionary");
        Self(c)
    }

    pub fn encode(&mut self, headers: &Headers) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (n, v) in headers {
            raw.put_u32(n.len() as u32);
            raw.extend_from_slice(n.to_ascii_lowercase().as_bytes());
            raw.put_u32(v.len() as u32);
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(256);
            let before = self.0.total_in();
            let status = self
                .0
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate of an in-memory buffer");
            input = &input[(self.0.total_in() - before) as usize..];
            // Done once all input is in and the sync flush left spare room.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if status == Status::StreamEnd {
                break;
            }
        }
        out
    }
}

impl Default for HeaderWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Decompresses header blocks of the peer's zlib stream.
pub struct HeaderReader {
    z: Decompress,
    dict: Vec<u8>,
}

impl HeaderReader {
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
            dict: dictionary(),
        }
    }

    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let mut raw: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if raw.capacity() - raw.len() < 256 {
                raw.reserve(raw.capacity().max(1024));
            }
            let before_in = self.z.total_in();
            let before_out = raw.len();
            match self
                .z
                .decompress_vec(input, &mut raw, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    input = &input[(self.z.total_in() - before_in) as usize..];
                    self.z
                        .set_dictionary(&self.dict)
                        .map_err(|e| protocol(format!("header dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(protocol(format!("header block: {e}"))),
            }
            input = &input[(self.z.total_in() - before_in) as usize..];
            let progressed = raw.len() > before_out || self.z.total_in() > before_in;
            if input.is_empty() && raw.len() < raw.capacity() {
                break;
            }
            if !progressed {
                break;
            }
        }
        parse_header_block(&raw)
    }
}

impl Default for HeaderReader {
    fn default() -> Self {
        Self::new()
    }
}

fn parse_header_block(mut raw: &[u8]) -> Result<Headers, SpdyError> {
    let short = || protocol("truncated header block");
    let take = |raw: &mut &[u8]| -> Result<String, SpdyError> {
        if raw.len() < 4 {
            return Err(short());
        }
        let n = raw.get_u32() as usize;
        if raw.len() < n {
            return Err(short());
        }
        let s = String::from_utf8_lossy(&raw[..n]).into_owned();
        raw.advance(n);
        Ok(s)
    };
    if raw.len() < 4 {
        return Err(short());
    }
    let count = raw.get_u32() as usize;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take(&mut raw)?;
        let value = take(&mut raw)?;
        // Several values of one name are joined by NUL.
        for v in value.split('\0') {
            out.push((name.to_ascii_lowercase(), v.to_owned()));
        }
    }
    Ok(out)
}

/// Encodes one frame; `headers` compresses header blocks.
pub fn encode(frame: &Frame, headers: &mut HeaderWriter) -> Vec<u8> {
    let control = |kind: u16, flags: u8, body: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + body.len());
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32(((flags as u32) << 24) | body.len() as u32);
        out.extend_from_slice(body);
        out
    };
    match frame {
        Frame::SynStream {
            id,
            fin,
            headers: h,
        } => {
            let mut body = Vec::new();
            body.put_u32(*id);
            body.put_u32(0);
            body.put_u16(0);
            body.extend(headers.encode(h));
            control(SYN_STREAM, if *fin { FLAG_FIN } else { 0 }, &body)
        }
        Frame::SynReply { id, headers: h } => {
            let mut body = Vec::new();
            body.put_u32(*id);
            body.extend(headers.encode(h));
            control(SYN_REPLY, 0, &body)
        }
        Frame::Headers { id, headers: h } => {
            let mut body = Vec::new();
            body.put_u32(*id);
            body.extend(headers.encode(h));
            control(HEADERS, 0, &body)
        }
        Frame::RstStream { id, status } => {
            let mut body = Vec::new();
            body.put_u32(*id);
            body.put_u32(*status);
            control(RST_STREAM, 0, &body)
        }
        Frame::Ping(id) => control(PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last } => {
            let mut body = Vec::new();
            body.put_u32(*last);
            body.put_u32(0);
            control(GOAWAY, 0, &body)
        }
        Frame::Data { id, fin, data } => {
            let mut out = Vec::with_capacity(8 + data.len());
            out.put_u32(id & 0x7fff_ffff);
            out.put_u32((u32::from(if *fin { FLAG_FIN } else { 0 }) << 24) | data.len() as u32);
            out.extend_from_slice(data);
            out
        }
        Frame::Other => Vec::new(),
    }
}

/// Reads one frame; `Ok(None)` at a clean end of the connection.
pub async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
    headers: &mut HeaderReader,
) -> Result<Option<Frame>, SpdyError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len > MAX_FRAME {
        return Err(protocol(format!("frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    decode(head, flags, Bytes::from(body), headers).map(Some)
}

fn decode(
    head: [u8; 8],
    flags: u8,
    body: Bytes,
    headers: &mut HeaderReader,
) -> Result<Frame, SpdyError> {
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        return Ok(Frame::Data {
            id,
            fin,
            data: body,
        });
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(protocol(format!("version {version}")));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let mut b = &body[..];
    let need = |b: &[u8], n: usize| {
        if b.len() < n {
            Err(protocol(format!("short control frame of type {kind}")))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        SYN_STREAM => {
            need(b, 10)?;
            let id = b.get_u32() & 0x7fff_ffff;
            b.advance(6);
            Frame::SynStream {
                id,
                fin,
                headers: headers.decode(b)?,
            }
        }
        SYN_REPLY | HEADERS => {
            need(b, 4)?;
            let id = b.get_u32() & 0x7fff_ffff;
            let h = headers.decode(b)?;
            if kind == SYN_REPLY {
                Frame::SynReply { id, headers: h }
            } else {
                Frame::Headers { id, headers: h }
            }
        }
        RST_STREAM => {
            need(b, 8)?;
            Frame::RstStream {
                id: b.get_u32() & 0x7fff_ffff,
                status: b.get_u32(),
            }
        }
        PING => {
            need(b, 4)?;
            Frame::Ping(b.get_u32())
        }
        GOAWAY => {
            need(b, 4)?;
            Frame::GoAway {
                last: b.get_u32() & 0x7fff_ffff,
            }
        }
        _ => Frame::Other,
    })
}

/// What the session's writer task is asked to send.
enum Out {
    Frame(Frame),
    /// Sends GOAWAY, flushes and shuts the connection down.
    Close,
}

/// A stream the client opened: its headers, the data it sends (`None` once
/// it half-closed or reset the stream), and a writer back.
pub struct Stream {
    pub headers: Headers,
    pub data: mpsc::UnboundedReceiver<Bytes>,
    pub writer: StreamWriter,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Writes DATA frames on one stream. Frames of all streams leave in the
/// order they were written.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    tx: mpsc::UnboundedSender<Out>,
}

impl StreamWriter {
    /// Sends `data`, in frames of at most [`MAX_DATA`]; false once the
    /// connection is gone.
    pub fn write(&self, data: &[u8]) -> bool {
        data.chunks(MAX_DATA).all(|c| {
            self.tx
                .send(Out::Frame(Frame::Data {
                    id: self.id,
                    fin: false,
                    data: Bytes::copy_from_slice(c),
                }))
                .is_ok()
        })
    }

    /// Half-closes the stream (an empty DATA frame with FIN).
    pub fn close(&self) {
        let _ = self.tx.send(Out::Frame(Frame::Data {
            id: self.id,
            fin: true,
            data: Bytes::new(),
        }));
    }

    /// Resets the stream.
    pub fn reset(&self) {
        let _ = self.tx.send(Out::Frame(Frame::RstStream {
            id: self.id,
            status: CANCEL,
        }));
    }
}

/// The connection: streams as the client opens them.
pub struct Session {
    pub incoming: mpsc::UnboundedReceiver<Stream>,
    tx: mpsc::UnboundedSender<Out>,
}

impl Session {
    /// Starts reading and writing frames on an upgraded connection.
    pub fn start<R, W>(mut r: R, mut w: W) -> Session
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut hw = HeaderWriter::new();
            while let Some(out) = out_rx.recv().await {
                let bytes = match out {
                    Out::Frame(f) => encode(&f, &mut hw),
                    Out::Close => {
                        let _ = w
                            .write_all(&encode(&Frame::GoAway { last: 0 }, &mut hw))
                            .await;
                        let _ = w.flush().await;
                        let _ = w.shutdown().await;
                        return;
                    }
                };
                if w.write_all(&bytes).await.is_err() {
                    return;
                }
                // Write everything queued before flushing once.
                if out_rx.is_empty() && w.flush().await.is_err() {
                    return;
                }
            }
            let _ = w.shutdown().await;
        });
        let reply = tx.clone();
        tokio::spawn(async move {
            let mut hr = HeaderReader::new();
            let mut streams: HashMap<u32, mpsc::UnboundedSender<Bytes>> = HashMap::new();
            loop {
                let frame = match read_frame(&mut r, &mut hr).await {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "SPDY connection ended");
                        break;
                    }
                };
                match frame {
                    Frame::SynStream { id, fin, headers } => {
                        let (data_tx, data) = mpsc::unbounded_channel();
                        if !fin {
                            streams.insert(id, data_tx);
                        }
                        let _ = reply.send(Out::Frame(Frame::SynReply {
                            id,
                            headers: Vec::new(),
                        }));
                        let writer = StreamWriter {
                            id,
                            tx: reply.clone(),
                        };
                        if in_tx
                            .send(Stream {
                                headers,
                                data,
                                writer,
                            })
                            .is_err()
                        {
                            // Nobody takes new streams any more.
                            let _ = reply.send(Out::Frame(Frame::RstStream { id, status: CANCEL }));
                        }
                    }
                    Frame::Data { id, fin, data } => {
                        if !data.is_empty()
                            && let Some(s) = streams.get(&id)
                        {
                            let _ = s.send(data);
                        }
                        if fin {
                            streams.remove(&id);
                        }
                    }
                    Frame::RstStream { id, .. } => {
                        streams.remove(&id);
                    }
                    Frame::Ping(id) => {
                        let _ = reply.send(Out::Frame(Frame::Ping(id)));
                    }
                    Frame::GoAway { .. } => break,
                    Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Other => {}
                }
            }
        });
        Session { incoming, tx }
    }

    /// Ends the connection after everything written so far.
    pub fn close(&self) {
        let _ = self.tx.send(Out::Close);
    }
}

/// Copies what the client sends on a stream into `w`, until it half-closes.
pub async fn copy_to(
    mut data: mpsc::UnboundedReceiver<Bytes>,
    mut w: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    while let Some(chunk) = data.recv().await {
        w.write_all(&chunk).await?;
        w.flush().await?;
    }
    w.shutdown().await
}

/// Copies `r` onto a stream until EOF, then half-closes it.
pub async fn copy_from(mut r: impl AsyncRead + Unpin, out: &StreamWriter) -> std::io::Result<()> {
    let mut buf = BytesMut::zeroed(MAX_DATA);
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            out.close();
            return Ok(());
        }
        if !out.write(&buf[..n]) {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_specified_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
        // The Adler-32 the zlib header of every SPDY/3 header stream names.
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(&d).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_one_zlib_stream() {
        let mut w = HeaderWriter::new();
        let mut r = HeaderReader::new();
        let a: Headers = vec![
            ("streamtype".into(), "error".into()),
            ("port".into(), "8080".into()),
        ];
        let b: Headers = vec![("streamtype".into(), "data".into())];
        let ea = w.encode(&a);
        let eb = w.encode(&b);
        // The zlib header names the dictionary (FDICT set).
        assert_eq!(ea[0], 0x78);
        assert_ne!(ea[1] & 0x20, 0);
        assert_eq!(r.decode(&ea).unwrap(), a);
        assert_eq!(r.decode(&eb).unwrap(), b);
    }

    #[test]
    fn multiple_values_split_on_nul() {
        let mut raw = Vec::new();
        raw.put_u32(1);
        raw.put_u32(1);
        raw.extend_from_slice(b"A");
        raw.put_u32(3);
        raw.extend_from_slice(b"x\0y");
        assert_eq!(
            parse_header_block(&raw).unwrap(),
            vec![("a".to_string(), "x".to_string()), ("a".into(), "y".into())]
        );
        assert!(parse_header_block(&raw[..6]).is_err());
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut w = HeaderWriter::new();
        let frames = vec![
            Frame::SynStream {
                id: 1,
                fin: false,
                headers: vec![("streamtype".into(), "stdin".into())],
            },
            Frame::SynReply {
                id: 1,
                headers: vec![],
            },
            Frame::Data {
                id: 1,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Ping(7),
            Frame::RstStream { id: 3, status: 5 },
            Frame::GoAway { last: 1 },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(encode(f, &mut w));
        }
        // A DATA frame's header: stream id, then flags and length.
        assert_eq!(
            &encode(&frames[2], &mut HeaderWriter::new())[..8],
            &[0, 0, 0, 1, 1, 0, 0, 5]
        );
        let mut r = HeaderReader::new();
        let mut input = &wire[..];
        let mut got = Vec::new();
        while let Some(f) = read_frame(&mut input, &mut r).await.unwrap() {
            got.push(f);
        }
        assert_eq!(got, frames);
    }

    #[tokio::test]
    async fn a_session_replies_to_streams_and_carries_data() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (sr, sw) = tokio::io::split(server);
        let mut session = Session::start(sr, sw);
        let (mut cr, mut cw) = tokio::io::split(client);
        let mut hw = HeaderWriter::new();
        let mut hr = HeaderReader::new();
        let open = Frame::SynStream {
            id: 1,
            fin: false,
            headers: vec![("streamtype".into(), "stdin".into())],
        };
        cw.write_all(&encode(&open, &mut hw)).await.unwrap();
        let data = Frame::Data {
            id: 1,
            fin: true,
            data: Bytes::from_static(b"hi"),
        };
        cw.write_all(&encode(&data, &mut hw)).await.unwrap();
        cw.write_all(&encode(&Frame::Ping(1), &mut hw))
            .await
            .unwrap();
        let mut stream = session.incoming.recv().await.unwrap();
        assert_eq!(stream.header("streamType"), Some("stdin"));
        assert_eq!(stream.data.recv().await.unwrap(), Bytes::from_static(b"hi"));
        assert!(stream.data.recv().await.is_none(), "FIN ends the data");
        stream.writer.write(b"out");
        stream.writer.close();
        session.close();
        let mut got = Vec::new();
        while let Some(f) = read_frame(&mut cr, &mut hr).await.unwrap() {
            got.push(f);
        }
        assert_eq!(
            got,
            vec![
                Frame::SynReply {
                    id: 1,
                    headers: vec![]
                },
                Frame::Ping(1),
                Frame::Data {
                    id: 1,
                    fin: false,
                    data: Bytes::from_static(b"out")
                },
                Frame::Data {
                    id: 1,
                    fin: true,
                    data: Bytes::new()
                },
                Frame::GoAway { last: 0 },
            ]
        );
    }
}
