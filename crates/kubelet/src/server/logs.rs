//! `GET /containerLogs/{ns}/{pod}/{container}`: a container's CRI log file
//! rendered as `kubectl logs` expects, with the kubelet's options (follow,
//! previous, tailLines, sinceSeconds, sinceTime, timestamps, limitBytes).
//!
//! Each record of the file is `<RFC 3339 time> <stream> <F|P> <text>`; a
//! `P` record is a piece of a line too long for one record, and is joined
//! with the records after it up to the next `F` of the same stream.

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// A followed log is read again when inotify says it was written; without a
/// write, this often to notice that the container has stopped or the client
/// has gone.
const FOLLOW_IDLE_CHECK: Duration = Duration::from_secs(1);

/// The query of a log request (`PodLogOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    /// Lines from the end; `None` for all.
    pub tail_lines: Option<u64>,
    /// Only lines at or after this time (`sinceSeconds` or `sinceTime`).
    pub since: Option<SystemTime>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// From the query string, as kubectl sends it; `now` resolves `sinceSeconds`.
    pub fn parse(query: &str, now: SystemTime) -> Result<Self, String> {
        let mut o = LogOptions::default();
        for (k, v) in super::query_pairs(query) {
            let boolean = || matches!(v.as_str(), "true" | "1" | "");
            let number = |what: &str| -> Result<i64, String> {
                v.parse::<i64>()
                    .map_err(|_| format!("{what}: {v:?} is not a number"))
            };
            match k.as_str() {
                "follow" => o.follow = boolean(),
                "previous" => o.previous = boolean(),
                "timestamps" => o.timestamps = boolean(),
                "tailLines" => {
                    let n = number("tailLines")?;
                    o.tail_lines = (n >= 0).then_some(n as u64);
                }
                "limitBytes" => {
                    let n = number("limitBytes")?;
                    if n < 1 {
                        return Err("limitBytes must be greater than zero".into());
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = number("sinceSeconds")?;
                    if n < 1 {
                        return Err("sinceSeconds must be greater than zero".into());
                    }
                    o.since = Some(now - Duration::from_secs(n as u64));
                }
                "sinceTime" => {
                    o.since = Some(
                        parse_rfc3339(&v)
                            .ok_or_else(|| format!("sinceTime: {v:?} is not RFC 3339"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One record of a CRI log file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub timestamp: &'a str,
    pub stream: &'a str,
    pub full: bool,
    pub text: &'a [u8],
}

/// Parses one line (without its newline); `None` for a malformed one.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    let full = match tag {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Record {
        timestamp,
        stream,
        full,
        text,
    })
}

/// `2026-12-02T19:43:21.123456789Z` or with an offset (`+01:00`), fraction
/// optional.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut padded = frac[..digits.min(9)].to_string();
        while padded.len() < 9 {
            padded.push('0');
        }
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Turns records into what the client reads, keeping the state a followed
/// log needs between reads (lines begun by `P` records, bytes left).
#[derive(Debug)]
pub struct Renderer {
    timestamps: bool,
    since: Option<SystemTime>,
    remaining: Option<u64>,
    /// Per stream: a line is open (its first piece was seen), and whether it
    /// is being skipped (it began before `since`).
    open: Vec<(String, bool)>,
}

impl Renderer {
    pub fn new(opts: &LogOptions) -> Self {
        Self {
            timestamps: opts.timestamps,
            since: opts.since,
            remaining: opts.limit_bytes,
            open: Vec::new(),
        }
    }

    /// Whether `limitBytes` has been used up.
    pub fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Appends the record's output to `out`.
    pub fn push(&mut self, r: &Record<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        let open = self.open.iter().position(|(s, _)| s == r.stream);
        let skip = match open {
            Some(i) => self.open[i].1,
            None => {
                let skip = self
                    .since
                    .is_some_and(|since| parse_rfc3339(r.timestamp).is_some_and(|t| t < since));
                if !skip && self.timestamps {
                    out.extend_from_slice(r.timestamp.as_bytes());
                    out.push(b' ');
                }
                skip
            }
        };
        if !skip {
            out.extend_from_slice(r.text);
            if r.full {
                out.push(b'\n');
            }
        }
        match (open, r.full) {
            (Some(i), true) => {
                self.open.remove(i);
            }
            (None, false) => self.open.push((r.stream.to_owned(), skip)),
            _ => {}
        }
        if let Some(left) = self.remaining.as_mut() {
            let written = (out.len() - start) as u64;
            if written >= *left {
                out.truncate(start + *left as usize);
                *left = 0;
            } else {
                *left -= written;
            }
        }
    }
}

/// Index of the first line of `lines` to show for `tail` lines: whole log
/// lines, counting a run of `P` records and their `F` as one.
pub fn tail_start(lines: &[&[u8]], tail: Option<u64>) -> usize {
    let Some(tail) = tail else { return 0 };
    let mut seen = 0u64;
    for (i, line) in lines.iter().enumerate().rev() {
        if parse_record(line).is_some_and(|r| r.full) {
            if seen == tail {
                return i + 1;
            }
            seen += 1;
        }
    }
    0
}

/// Renders the complete lines of `text` (everything up to its last newline);
/// returns how many bytes were consumed.
pub fn render_lines(text: &[u8], renderer: &mut Renderer, out: &mut Vec<u8>) -> usize {
    let end = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    for line in text[..end].split(|b| *b == b'\n') {
        if renderer.done() {
            break;
        }
        if let Some(r) = parse_record(line) {
            renderer.push(&r, out);
        }
    }
    end
}

/// Sends the log at `path` to `tx` as `opts` asks. With `follow`, keeps
/// sending lines as they are written until `running` says the container
/// stopped (and nothing is left to read) or the client goes away.
pub async fn send<F, Fut>(
    path: &Path,
    opts: &LogOptions,
    tx: mpsc::Sender<Bytes>,
    mut running: F,
) -> std::io::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        // A container that never wrote anything may have no file yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !opts.follow => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut renderer = Renderer::new(opts);
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).await?;
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let lines: Vec<&[u8]> = buf[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let start = tail_start(&lines, opts.tail_lines);
    let mut out = Vec::new();
    for line in &lines[start..] {
        if renderer.done() {
            break;
        }
        if let Some(r) = parse_record(line) {
            renderer.push(&r, &mut out);
        }
    }
    if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
        return Ok(());
    }
    if !opts.follow {
        return Ok(());
    }
    // Writes to the file wake the loop below (the shim appends to it).
    let inotify = inotify::Inotify::init()?;
    inotify.watches().add(
        path,
        inotify::WatchMask::MODIFY | inotify::WatchMask::CLOSE_WRITE,
    )?;
    let mut writes = inotify.into_event_stream([0u8; 1024])?;
    let mut offset = end as u64;
    buf.drain(..end);
    let mut pending = buf;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if renderer.done() || tx.is_closed() {
            return Ok(());
        }
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let n = file.read(&mut chunk).await?;
        if n == 0 {
            if !running().await {
                // One more look: lines written just before the exit.
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                pending.extend_from_slice(&chunk[..n]);
                offset += n as u64;
                continue;
            }
            let _ = tokio::time::timeout(FOLLOW_IDLE_CHECK, writes.next()).await;
            continue;
        }
        offset += n as u64;
        pending.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        let used = render_lines(&pending, &mut renderer, &mut out);
        pending.drain(..used);
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-01-01T00:00:01.000000000Z stdout F one
2026-01-01T00:00:02.000000000Z stderr F two
2026-01-01T00:00:03.000000000Z stdout P thr
2026-01-01T00:00:03.500000000Z stdout F ee
2026-01-01T00:00:04.000000000Z stdout F four
";

    fn render(opts: &LogOptions) -> String {
        let lines: Vec<&[u8]> = LOG.as_bytes().split(|b| *b == b'\n').collect();
        let start = tail_start(&lines, opts.tail_lines);
        let mut r = Renderer::new(opts);
        let mut out = Vec::new();
        let rest: Vec<u8> = lines[start..].join(&b'\n');
        let mut rest = rest;
        rest.push(b'\n');
        render_lines(&rest, &mut r, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn at(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn records_parse() {
        let r = parse_record(b"2026-01-01T00:00:01.5Z stderr P a b").unwrap();
        assert_eq!(r.timestamp, "2026-01-01T00:00:01.5Z");
        assert_eq!((r.stream, r.full, r.text), ("stderr", false, &b"a b"[..]));
        assert_eq!(parse_record(b"t stdout F").unwrap().text, b"");
        assert!(parse_record(b"t stdout X y").is_none());
        assert!(parse_record(b"garbage").is_none());
    }

    #[test]
    fn times_parse() {
        let t = at("2026-01-01T00:00:01.5Z");
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::new(1_767_225_601, 500_000_000)
        );
        assert_eq!(at("2026-01-01T01:00:01.5+01:00"), t);
        assert_eq!(
            at("2000-02-29T00:00:00Z"),
            SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)
        );
        assert!(parse_rfc3339("2026-01-01").is_none());
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
    }

    #[test]
    fn partial_records_join_into_lines() {
        assert_eq!(render(&LogOptions::default()), "one\ntwo\nthree\nfour\n");
    }

    #[test]
    fn timestamps_prefix_each_line_once() {
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(&opts).lines().nth(2).unwrap(),
            "2026-01-01T00:00:03.000000000Z three"
        );
    }

    #[test]
    fn tail_counts_joined_lines() {
        let tail = |n| {
            render(&LogOptions {
                tail_lines: Some(n),
                ..Default::default()
            })
        };
        assert_eq!(tail(1), "four\n");
        assert_eq!(tail(2), "three\nfour\n");
        assert_eq!(tail(0), "");
        assert_eq!(tail(10), "one\ntwo\nthree\nfour\n");
    }

    #[test]
    fn since_skips_earlier_lines_whole() {
        let since = |s| {
            render(&LogOptions {
                since: Some(at(s)),
                ..Default::default()
            })
        };
        assert_eq!(since("2026-01-01T00:00:02Z"), "two\nthree\nfour\n");
        // A line that began before is skipped whole, even its later pieces.
        assert_eq!(since("2026-01-01T00:00:03.2Z"), "four\n");
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let opts = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(render(&opts), "one\ntw");
    }

    #[test]
    fn options_parse_from_the_query() {
        let now = at("2026-01-01T00:01:00Z");
        let o = LogOptions::parse(
            "follow=true&tailLines=5&timestamps=true&limitBytes=10&sinceSeconds=30&previous=false",
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(10));
        assert_eq!(o.since, Some(at("2026-01-01T00:00:30Z")));
        let o = LogOptions::parse("sinceTime=2026-01-01T00%3A00%3A02Z&tailLines=-1", now).unwrap();
        assert_eq!(o.since, Some(at("2026-01-01T00:00:02Z")));
        assert_eq!(o.tail_lines, None);
        assert!(LogOptions::parse("limitBytes=0", now).is_err());
        assert!(LogOptions::parse("sinceTime=yesterday", now).is_err());
    }

    #[tokio::test]
    async fn following_sends_lines_written_later_and_ends_with_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r = running.clone();
        let p = path.clone();
        let task = tokio::spawn(async move {
            let opts = LogOptions {
                follow: true,
                tail_lines: Some(1),
                ..Default::default()
            };
            send(&p, &opts, tx, move || {
                let r = r.clone();
                async move { r.load(std::sync::atomic::Ordering::SeqCst) }
            })
            .await
        });
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"four\n"));
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"2026-01-01T00:00:05Z stdout P fi").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        f.write_all(b"\n2026-01-01T00:00:05Z stdout F ve\n")
            .unwrap();
        let mut got = Vec::new();
        while got != b"five\n" {
            got.extend_from_slice(&rx.recv().await.unwrap());
        }
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        task.await.unwrap().unwrap();
        assert!(rx.recv().await.is_none());
    }
}
