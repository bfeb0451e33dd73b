//! Exec and port-forward: `runc exec` in a running container, and TCP
//! connections made from inside a sandbox's network namespace.

use std::process::Stdio;

use tokio::sync::mpsc;

use super::*;

impl LocalRuntime {
    pub(super) async fn exec_in(
        &self,
        id: &str,
        request: &ExecRequest,
    ) -> RuntimeResult<ExecProcess> {
        let record = self.container(id)?;
        if self.exits.get(id).is_some() || record.started_at_ns.is_none() {
            return Err(RuntimeError::Oci {
                runtime: "oci",
                action: "exec".into(),
                message: format!("container {} is not running", record.name),
            });
        }
        if request.cmd.is_empty() {
            return Err(RuntimeError::Spec("exec needs a command".into()));
        }
        let Some(mut command) = self.host.oci.exec_command(id, &request.cmd) else {
            return Err(super::super::unsupported("exec", id));
        };
        command.kill_on_drop(true);
        let fail = |e: std::io::Error| RuntimeError::Oci {
            runtime: "oci",
            action: "exec".into(),
            message: e.to_string(),
        };
        if request.tty {
            return exec_on_terminal(command, request.stdin).map_err(fail);
        }
        command
            .stdin(if request.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(fail)?;
        let stdin = child
            .stdin
            .take()
            .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>);
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::pin(s) as std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>);
        Ok(ExecProcess {
            stdin,
            stdout,
            stderr,
            resize: None,
            exit: Box::pin(async move { exit_code(child.wait().await) }),
        })
    }

    pub(super) async fn connect_in(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> RuntimeResult<tokio::net::TcpStream> {
        let sandbox = self.sandbox(sandbox_id)?;
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let fail = |e: std::io::Error| RuntimeError::Host {
            action: format!("connecting to port {port} in the pod"),
            source: e,
        };
        let stream = match sandbox.net {
            None => tokio::net::TcpStream::connect(target).await.map_err(fail)?,
            Some(netns) => {
                // setns(2) moves only the calling thread: a thread of its own,
                // which ends right after, so no pooled thread is left in the
                // pod's namespace. The socket stays in the namespace it was
                // made in.
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    let connect = || -> std::io::Result<std::net::TcpStream> {
                        let ns = std::fs::File::open(&netns)?;
                        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                        let s =
                            std::net::TcpStream::connect_timeout(&target, Duration::from_secs(10))?;
                        s.set_nonblocking(true)?;
                        Ok(s)
                    };
                    let _ = tx.send(connect());
                });
                let std_stream = rx
                    .await
                    .map_err(|_| fail(std::io::Error::other("connect thread ended")))?
                    .map_err(fail)?;
                tokio::net::TcpStream::from_std(std_stream).map_err(fail)?
            }
        };
        Ok(stream)
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s
            .code()
            .or_else(|| s.signal().map(|sig| 128 + sig))
            .unwrap_or(255),
        Err(_) => 255,
    }
}

/// A terminal without `runc exec --tty` (whose console socket passes the
/// pty by SCM_RIGHTS, which needs unsafe code to take): a pty made here, its
/// slave end the exec's stdin, stdout and stderr. Resizes go through
/// `stty` on the slave.
fn exec_on_terminal(
    mut command: tokio::process::Command,
    with_stdin: bool,
) -> std::io::Result<ExecProcess> {
    let pty = nix::pty::openpty(None, None)?;
    let slave_path = nix::unistd::ttyname(&pty.slave)?;
    let slave = std::fs::File::from(pty.slave);
    command
        .stdin(if with_stdin {
            Stdio::from(slave.try_clone()?)
        } else {
            Stdio::null()
        })
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    let mut child = command.spawn()?;
    // The command holds the slave now; ours closed with the Command's stdio.
    drop(command);
    let master = std::fs::File::from(pty.master);
    let reader = tokio::fs::File::from_std(master.try_clone()?);
    let writer = tokio::fs::File::from_std(master);
    let (resize, mut sizes) = mpsc::unbounded_channel::<TerminalSize>();
    tokio::spawn(async move {
        while let Some(size) = sizes.recv().await {
            let _ = tokio::process::Command::new("stty")
                .arg("-F")
                .arg(&slave_path)
                .arg("rows")
                .arg(size.height.to_string())
                .arg("cols")
                .arg(size.width.to_string())
                .status()
                .await;
        }
    });
    Ok(ExecProcess {
        stdin: with_stdin
            .then(|| Box::pin(writer) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>),
        stdout: Some(Box::pin(PtyReader(reader))),
        stderr: None,
        resize: Some(resize),
        exit: Box::pin(async move { exit_code(child.wait().await) }),
    })
}

/// A pty master reads EIO once every slave is closed: that is its EOF.
struct PtyReader(tokio::fs::File);

impl tokio::io::AsyncRead for PtyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
