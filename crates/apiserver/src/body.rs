//! Reading request bodies, bounded in size and in time: a client that sends part
//! of a body and stops is cut off instead of holding its buffer and its task, so
//! one client cannot stall or exhaust the server for others.

use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::time::Instant;

use crate::error::{ApiError, ApiResult};

/// Longest pause between two pieces of a body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time a whole body may take, as Kubernetes' default request timeout.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads a whole body of at most `limit` bytes within the timeouts above.
pub async fn read(body: Body, limit: usize) -> ApiResult<Bytes> {
    read_within(body, limit, BODY_IDLE_TIMEOUT, BODY_TIMEOUT).await
}

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "the request body is larger than {} MiB",
        limit / (1024 * 1024)
    ))
}

async fn read_within(
    body: Body,
    limit: usize,
    idle: Duration,
    total: Duration,
) -> ApiResult<Bytes> {
    let deadline = Instant::now() + total;
    let mut stream = body.into_data_stream();
    // Most bodies arrive as one piece, which is returned without a copy.
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    loop {
        let wait_until = deadline.min(Instant::now() + idle);
        let next = match tokio::time::timeout_at(wait_until, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                let got = first.as_ref().map_or(0, Bytes::len) + rest.len();
                return Err(ApiError::Timeout(format!(
                    "the request body did not arrive in time ({got} bytes received); the server waits {}s between pieces and {}s in all",
                    idle.as_secs(),
                    total.as_secs()
                )));
            }
        };
        match next {
            None => {
                return Ok(match first {
                    None => Bytes::new(),
                    Some(f) if rest.is_empty() => f,
                    Some(f) => {
                        let mut all = BytesMut::with_capacity(f.len() + rest.len());
                        all.extend_from_slice(&f);
                        all.extend_from_slice(&rest);
                        all.freeze()
                    }
                });
            }
            Some(Err(e)) => {
                return Err(ApiError::BadRequest(format!(
                    "reading the request body failed: {e}"
                )));
            }
            Some(Ok(chunk)) => {
                let have = first.as_ref().map_or(0, Bytes::len) + rest.len();
                if have + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                if first.is_none() {
                    first = Some(chunk);
                } else {
                    rest.extend_from_slice(&chunk);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn stalling_body(pieces: Vec<&'static [u8]>) -> Body {
        let sent = stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        );
        Body::from_stream(sent.chain(stream::pending()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_cut_off_after_the_idle_timeout() {
        let started = Instant::now();
        let err = read(stalling_body(vec![b"{\"a\":", b"1"]), 1024)
            .await
            .unwrap_err();
        assert_eq!(err.code().as_u16(), 504, "{err}");
        assert!(err.to_string().contains("6 bytes received"), "{err}");
        assert_eq!(started.elapsed(), BODY_IDLE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_cut_off_after_the_total_timeout() {
        let trickle = stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
        });
        let started = Instant::now();
        let err = read(Body::from_stream(trickle), 1 << 20).await.unwrap_err();
        assert_eq!(err.code().as_u16(), 504, "{err}");
        assert_eq!(started.elapsed(), BODY_TIMEOUT);
    }

    #[tokio::test]
    async fn whole_bodies_are_read_and_large_ones_refused() {
        let body = Body::from_stream(stream::iter(
            [&b"ab"[..], b"cd", b"e"].map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        ));
        assert_eq!(read(body, 5).await.unwrap(), Bytes::from_static(b"abcde"));
        assert_eq!(read(Body::from("xyz"), 5).await.unwrap(), "xyz");
        assert_eq!(read(Body::empty(), 5).await.unwrap(), "");
        let err = read(Body::from("toolong"), 5).await.unwrap_err();
        assert_eq!(err.code().as_u16(), 413);
    }
}
