//! Exec, attach and port-forward sessions, over WebSocket or SPDY.
//!
//! Exec and attach speak the remote command protocol: over WebSocket each
//! message starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 error,
//! 4 resize; in v5, 255 closes a channel); over SPDY each of those is a
//! stream the client opens with a `streamType` header. The error channel
//! ends the session with a `metav1.Status`, whose `NonZeroExitCode` cause
//! carries the exit code kubectl exits with.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::ws::{self, Transport};
use super::{Body, spdy, status_response};
use crate::runtime::{ContainerStatus, ExecRequest, PodSandboxStatus, Runtime, TerminalSize};

/// How long a SPDY client has to open the streams it announced.
const STREAMS_TIMEOUT: Duration = Duration::from_secs(30);
/// After the process exits, how long its output may still be drained (a
/// background child can hold stdout open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the query asks of an exec or attach.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    pub fn parse(query: &str) -> Self {
        let mut o = StreamOptions::default();
        for (k, v) in super::query_pairs(query) {
            let on = matches!(v.as_str(), "1" | "true");
            match k.as_str() {
                "command" => o.command.push(v),
                "input" | "stdin" => o.stdin = on,
                "output" | "stdout" => o.stdout = on,
                "error" | "stderr" => o.stderr = on,
                "tty" => o.tty = on,
                _ => {}
            }
        }
        // A terminal merges stderr into stdout.
        if o.tty {
            o.stderr = false;
        }
        o
    }
}

/// Sends bytes on one channel; false once the client is gone.
type Write = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// One output channel towards the client.
struct Output {
    write: Write,
    close: Box<dyn Fn() + Send + Sync>,
}

/// The client's side of a session, whatever the transport.
#[derive(Default)]
struct Channels {
    stdin: Option<mpsc::UnboundedReceiver<Bytes>>,
    stdout: Option<Output>,
    stderr: Option<Output>,
    resize: Option<mpsc::UnboundedReceiver<Bytes>>,
}

pub(super) async fn exec(
    runtime: Arc<dyn Runtime>,
    container: ContainerStatus,
    req: Request<Incoming>,
    query: &str,
    attach: bool,
) -> Response<Body> {
    let opts = StreamOptions::parse(query);
    if !attach && opts.command.is_empty() {
        return status_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least one command for the container",
        );
    }
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return status_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least one of stdin, stdout, stderr",
        );
    }
    let (transport, protocol, resp) =
        match negotiate(&req, &[ws::WS_V5, ws::WS_V4], &[ws::SPDY_EXEC_V4]) {
            Ok(n) => n,
            Err(refused) => return *refused,
        };
    let v5 = protocol == ws::WS_V5;
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade failed");
                return;
            }
        };
        match transport {
            Transport::WebSocket => {
                let socket = ws::websocket(upgraded).await;
                exec_over_websocket(runtime, container, opts, socket, v5, attach).await;
            }
            Transport::Spdy => {
                let (r, w) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
                let session = spdy::Session::start(r, w);
                exec_over_spdy(runtime, container, opts, session, attach).await;
            }
        }
    });
    resp
}

async fn exec_over_websocket(
    runtime: Arc<dyn Runtime>,
    container: ContainerStatus,
    opts: StreamOptions,
    socket: ws::WebSocket,
    v5: bool,
    attach: bool,
) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (resize_tx, resize_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
        while let Some(Ok(msg)) = stream.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            match data.first() {
                Some(0) if data.len() > 1 => {
                    if let Some(tx) = &stdin_tx {
                        let _ = tx.send(data.slice(1..));
                    }
                }
                Some(4) => {
                    let _ = resize_tx.send(data.slice(1..));
                }
                // v5: the client closed a channel (stdin is the only one it writes).
                Some(255) if data.get(1) == Some(&0) => stdin_tx = None,
                _ => {}
            }
        }
    });
    let output = |channel: u8| {
        let tx = out_tx.clone();
        Output {
            write: Box::new(move |b: &[u8]| {
                let mut m = Vec::with_capacity(b.len() + 1);
                m.push(channel);
                m.extend_from_slice(b);
                tx.send(Message::Binary(m.into())).is_ok()
            }),
            close: Box::new(|| {}),
        }
    };
    let channels = Channels {
        stdin: opts.stdin.then_some(stdin_rx),
        stdout: opts.stdout.then(|| output(1)),
        stderr: opts.stderr.then(|| output(2)),
        resize: opts.tty.then_some(resize_rx),
    };
    let status = run(runtime, container, &opts, channels, attach).await;
    let mut m = vec![3u8];
    m.extend_from_slice(status.to_string().as_bytes());
    let _ = out_tx.send(Message::Binary(m.into()));
    let _ = v5;
    // kubectl reads a normal closure as the end of every channel.
    let _ = out_tx.send(normal_close());
    drop(out_tx);
    let _ = writer.await;
    reader.abort();
}

async fn exec_over_spdy(
    runtime: Arc<dyn Runtime>,
    container: ContainerStatus,
    opts: StreamOptions,
    mut session: spdy::Session,
    attach: bool,
) {
    let wanted = |t: &str| match t {
        "error" => true,
        "stdin" => opts.stdin,
        "stdout" => opts.stdout,
        "stderr" => opts.stderr,
        "resize" => opts.tty,
        _ => false,
    };
    let expected = ["error", "stdin", "stdout", "stderr", "resize"]
        .iter()
        .filter(|t| wanted(t))
        .count();
    let mut streams: Vec<(String, spdy::Stream)> = Vec::new();
    let deadline = tokio::time::Instant::now() + STREAMS_TIMEOUT;
    while streams.len() < expected {
        match tokio::time::timeout_at(deadline, session.incoming.recv()).await {
            Ok(Some(s)) => {
                let kind = s.header("streamtype").unwrap_or_default().to_owned();
                if wanted(&kind) && !streams.iter().any(|(k, _)| *k == kind) {
                    streams.push((kind, s));
                } else {
                    s.writer.reset();
                }
            }
            Ok(None) => return,
            Err(_) => {
                tracing::debug!("exec: the client did not open its streams in time");
                session.close();
                return;
            }
        }
    }
    let mut take = |kind: &str| {
        streams
            .iter()
            .position(|(k, _)| k == kind)
            .map(|i| streams.swap_remove(i).1)
    };
    let error = take("error").expect("counted");
    let output = |s: spdy::Stream| {
        let (w, c) = (s.writer.clone(), s.writer);
        Output {
            write: Box::new(move |b: &[u8]| w.write(b)),
            close: Box::new(move || c.close()),
        }
    };
    let channels = Channels {
        stdin: take("stdin").map(|s| s.data),
        stdout: take("stdout").map(output),
        stderr: take("stderr").map(output),
        resize: take("resize").map(|s| s.data),
    };
    let status = run(runtime, container, &opts, channels, attach).await;
    error.writer.write(status.to_string().as_bytes());
    error.writer.close();
    session.close();
}

/// Runs the command (or attaches) with the client's channels; returns the
/// Status for the error channel.
async fn run(
    runtime: Arc<dyn Runtime>,
    container: ContainerStatus,
    opts: &StreamOptions,
    channels: Channels,
    attach: bool,
) -> Value {
    if attach {
        return attach_output(runtime, container, opts, channels).await;
    }
    let request = ExecRequest {
        cmd: opts.command.clone(),
        tty: opts.tty,
        stdin: channels.stdin.is_some(),
    };
    let mut process = match runtime.exec(&container.id, &request).await {
        Ok(p) => p,
        Err(e) => return failure(&e.to_string()),
    };
    let stdin = match (channels.stdin, process.stdin.take()) {
        (Some(rx), Some(w)) => Some(tokio::spawn(spdy::copy_to(rx, w))),
        _ => None,
    };
    if let (Some(mut rx), Some(tx)) = (channels.resize, process.resize.take()) {
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                for v in serde_json::Deserializer::from_slice(&b)
                    .into_iter::<Value>()
                    .flatten()
                {
                    let dim = |k: &str| v[k].as_u64().and_then(|n| u16::try_from(n).ok());
                    if let (Some(width), Some(height)) = (dim("Width"), dim("Height")) {
                        let _ = tx.send(TerminalSize { width, height });
                    }
                }
            }
        });
    }
    let pumps: Vec<_> = [
        (process.stdout.take(), channels.stdout),
        (process.stderr.take(), channels.stderr),
    ]
    .into_iter()
    .filter_map(|(r, out)| r.map(|r| tokio::spawn(pump(r, out))))
    .collect();
    let code = process.exit.await;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, futures::future::join_all(pumps)).await;
    if let Some(t) = stdin {
        t.abort();
    }
    exit_status(code, &opts.command)
}

/// Copies a process's output to the client (or nowhere), then closes it.
async fn pump(mut r: impl AsyncRead + Unpin, out: Option<Output>) {
    let mut buf = BytesMut::zeroed(32 * 1024);
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(o) = &out
                    && !(o.write)(&buf[..n])
                {
                    break;
                }
            }
        }
    }
    if let Some(o) = out {
        (o.close)();
    }
}

/// Attach: the container's output from now on, from its log (the shim
/// holds its stdio); stdin is not connected, since containers here run
/// without one.
async fn attach_output(
    runtime: Arc<dyn Runtime>,
    container: ContainerStatus,
    opts: &StreamOptions,
    channels: Channels,
) -> Value {
    use tokio::io::AsyncSeekExt;
    let mut file = match tokio::fs::File::open(&container.log_path).await {
        Ok(f) => f,
        Err(e) => return failure(&format!("opening the container's log: {e}")),
    };
    let mut offset = file.seek(std::io::SeekFrom::End(0)).await.unwrap_or(0);
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let _ = file.seek(std::io::SeekFrom::Start(offset)).await;
        let n = file.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            let running = matches!(
                runtime
                    .container_status(&container.id)
                    .await
                    .map(|s| s.state),
                Ok(crate::runtime::ContainerState::Running { .. })
            );
            if !running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        offset += n as u64;
        pending.extend_from_slice(&chunk[..n]);
        let end = pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in pending[..end].split(|b| *b == b'\n') {
            let Some(r) = super::logs::parse_record(line) else {
                continue;
            };
            let out = if r.stream == "stderr" && !opts.tty {
                channels.stderr.as_ref()
            } else {
                channels.stdout.as_ref()
            };
            if let Some(o) = out {
                let mut text = r.text.to_vec();
                if r.full {
                    text.push(b'\n');
                }
                if !(o.write)(&text) {
                    return success();
                }
            }
        }
        pending.drain(..end);
    }
    for o in [channels.stdout, channels.stderr].into_iter().flatten() {
        (o.close)();
    }
    success()
}

pub(super) fn normal_close() -> Message {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

fn success() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

fn failure(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}

/// The Status kubectl turns into its own exit code.
pub fn exit_status(code: i32, command: &[String]) -> Value {
    if code == 0 {
        return success();
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Transport, subprotocol, and the 101 response of an accepted upgrade.
type Negotiated = (Transport, &'static str, Response<Body>);

/// The upgrade of a stream request: its transport, the subprotocol chosen
/// from ours (WebSocket or SPDY ones), and the 101 response to send; or the
/// refusal to send instead.
fn negotiate(
    req: &Request<Incoming>,
    websocket: &[&'static str],
    spdy: &[&'static str],
) -> Result<Negotiated, Box<Response<Body>>> {
    let Some(transport) = ws::transport(req) else {
        return Err(Box::new(status_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
        )));
    };
    let (header, ours) = match transport {
        Transport::WebSocket => ("Sec-WebSocket-Protocol", websocket),
        Transport::Spdy => ("X-Stream-Protocol-Version", spdy),
    };
    let Some(protocol) = ws::choose(req, header, ours) else {
        return Err(Box::new(status_response(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("none of the offered subprotocols is supported (want one of {ours:?})"),
        )));
    };
    Ok((transport, protocol, ws::switching(req, transport, protocol)))
}

pub(super) async fn port_forward(
    runtime: Arc<dyn Runtime>,
    sandbox: PodSandboxStatus,
    req: Request<Incoming>,
    _query: &str,
) -> Response<Body> {
    let (transport, _, resp) =
        match negotiate(&req, &[ws::WS_PORTFORWARD_TUNNEL], &[ws::SPDY_PORTFORWARD]) {
            Ok(n) => n,
            Err(refused) => return *refused,
        };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward upgrade failed");
                return;
            }
        };
        let session = match transport {
            Transport::WebSocket => {
                let pipe = ws::tunnel(ws::websocket(upgraded).await);
                let (r, w) = tokio::io::split(pipe);
                spdy::Session::start(r, w)
            }
            Transport::Spdy => {
                let (r, w) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
                spdy::Session::start(r, w)
            }
        };
        forward_ports(runtime, sandbox, session).await;
    });
    resp
}

/// Each forwarded connection is a pair of streams with one `requestID`: an
/// error stream, then a data stream spliced to the pod's port.
async fn forward_ports(
    runtime: Arc<dyn Runtime>,
    sandbox: PodSandboxStatus,
    mut session: spdy::Session,
) {
    let mut errors: std::collections::HashMap<String, spdy::StreamWriter> = Default::default();
    while let Some(stream) = session.incoming.recv().await {
        let request = stream.header("requestid").unwrap_or_default().to_owned();
        match stream.header("streamtype") {
            Some("error") => {
                errors.insert(request, stream.writer);
            }
            Some("data") => {
                let error = errors.remove(&request);
                let port = stream.header("port").and_then(|p| p.parse::<u16>().ok());
                let runtime = runtime.clone();
                let sandbox = sandbox.clone();
                tokio::spawn(async move {
                    let result = match port {
                        Some(port) => splice(&*runtime, &sandbox, port, stream).await,
                        None => {
                            stream.writer.reset();
                            Err("invalid or missing port".to_owned())
                        }
                    };
                    if let Some(e) = error {
                        if let Err(message) = result {
                            e.write(message.as_bytes());
                        }
                        e.close();
                    }
                });
            }
            _ => stream.writer.reset(),
        }
    }
}

async fn splice(
    runtime: &dyn Runtime,
    sandbox: &PodSandboxStatus,
    port: u16,
    stream: spdy::Stream,
) -> Result<(), String> {
    let tcp = match runtime.port_forward(&sandbox.id, port).await {
        Ok(t) => t,
        Err(e) => {
            stream.writer.close();
            return Err(format!(
                "error forwarding port {port} to pod {}, uid : {e}",
                sandbox.uid
            ));
        }
    };
    let (r, w) = tcp.into_split();
    let inbound = tokio::spawn(spdy::copy_to(stream.data, w));
    let _ = spdy::copy_from(r, &stream.writer).await;
    inbound.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let o = StreamOptions::parse(
            "command=sh&command=-c&command=exit+7&stdin=true&stdout=1&stderr=true&tty=false",
        );
        assert_eq!(o.command, ["sh", "-c", "exit 7"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let o = StreamOptions::parse("command=sh&input=1&output=1&tty=1&stderr=1");
        assert!(o.stdin && o.stdout && o.tty && !o.stderr, "{o:?}");
    }

    #[test]
    fn exit_codes_become_statuses() {
        assert_eq!(exit_status(0, &[])["status"], "Success");
        let s = exit_status(7, &["sh".into()]);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "7");
    }
}
