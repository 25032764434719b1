//! One accepted connection, served: the protocol the client speaks (ALPN over TLS, the
//! HTTP/2 preface on plain TCP), hyper's connection for just that protocol, the idle watch
//! (`conn::watch`) and graceful shutdown.
//!
//! Each protocol gets its own connection future rather than one that can become either:
//! an open connection (an idle keep-alive client, an event stream's subscriber) then holds
//! only what its protocol needs. The HTTP/1.1 future lives inline in the connection's
//! task; the larger HTTP/2 one is boxed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::conn::{self, Activity, Ended, Limits};
use crate::http::Body;

/// The protocol of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

/// What an HTTP/2 client with prior knowledge sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol the first bytes of a plain connection announce, or `None` while they are a
/// beginning of the HTTP/2 preface (more are needed).
pub fn by_preface(first: &[u8]) -> Option<Proto> {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Some(Proto::Http1)
    } else if n == PREFACE.len() {
        Some(Proto::Http2)
    } else {
        None
    }
}

/// The protocol a plain connection speaks, from its first bytes (peeked, not consumed).
/// Connections that close before sending anything are handed to HTTP/1.1, which ends them.
pub async fn sniff(stream: &TcpStream) -> std::io::Result<Proto> {
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(Proto::Http1);
        }
        if let Some(p) = by_preface(&buf[..n]) {
            return Ok(p);
        }
        // Part of the preface so far (rare): the rest is on its way.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The protocol a TLS connection agreed on (ALPN); HTTP/1.1 without one.
pub fn by_alpn(alpn: Option<&[u8]>) -> Proto {
    match alpn {
        Some(b"h2") => Proto::Http2,
        _ => Proto::Http1,
    }
}

/// The two protocols' settings, shared by every connection.
pub struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    /// Headers within `header_timeout` (HTTP/1.1); at most 256 concurrent HTTP/2 streams.
    /// Bodies are bounded by the minimum rate in `http::collect_body` and idle connections
    /// by [`conn::watch`] (HTTP/2 pings of our own would count as activity, so none are sent).
    pub fn new(header_timeout: Duration) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new()).max_concurrent_streams(256);
        Self { h1, h2 }
    }
}

/// Serves one connection in `proto` until it ends, goes idle or is closed gracefully.
pub async fn serve<I, S>(
    io: I,
    proto: Proto,
    protocols: &Protocols,
    svc: S,
    activity: &Arc<Activity>,
    limits: &Limits,
    stop: watch::Receiver<bool>,
) -> Ended<Result<(), hyper::Error>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = Body, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let io = TokioIo::new(io);
    match proto {
        Proto::Http1 => {
            let c = std::pin::pin!(protocols.h1.serve_connection(io, svc).with_upgrades());
            conn::watch(c, activity, limits, stop, |c| c.graceful_shutdown()).await
        }
        Proto::Http2 => {
            Box::pin(async move {
                let c = std::pin::pin!(protocols.h2.serve_connection(io, svc));
                conn::watch(c, activity, limits, stop, |c| c.graceful_shutdown()).await
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_picks_http2_and_anything_else_http1() {
        assert_eq!(by_preface(b"GET / HTTP/1.1\r\n"), Some(Proto::Http1));
        assert_eq!(by_preface(b"P"), None);
        assert_eq!(by_preface(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(by_preface(b"POST /v1/x HTTP/1.1"), Some(Proto::Http1));
        assert_eq!(by_preface(PREFACE), Some(Proto::Http2));
        assert_eq!(
            by_preface(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"),
            Some(Proto::Http1)
        );
        assert_eq!(by_alpn(Some(b"h2")), Proto::Http2);
        assert_eq!(by_alpn(Some(b"http/1.1")), Proto::Http1);
        assert_eq!(by_alpn(None), Proto::Http1);
    }
}
