//! The proxy: authenticates every client, decides per CONNECT whether to tunnel, intercept or
//! refuse, and for intercepted requests applies [`crate::rewrite`]: block, inject, scrub.
//!
//! Files, in the order a request meets them:
//! - this one: the listener, authentication (every client, every request), the answers the
//!   broker itself gives, and helpers the phases share;
//! - `connect.rs`: CONNECT, where the upstream choice is made for a whole tunnel (pass the
//!   bytes through, intercept, or refuse) and intercepted tunnels are answered over TLS;
//! - `plain.rs`: absolute-form plain-HTTP requests, which never carry a credential;
//! - `intercept.rs`: a request inside an intercepted tunnel, as named phases: request filter
//!   and request rewrite (`request.rs`), upstream choice (`intercept.rs`), response filter
//!   (`response.rs`), logging (`log.rs`);
//! - `body.rs`: the streaming request and response bodies (placeholder scan, scrubbing, the
//!   audit event recorded when the response ends).
//!
//! Bodies stream in both directions (hyper frames are passed on as they arrive). Buffered are
//! only a request body for a binding that opted in to body injection, and bodies of a small
//! known length (read whole and sent in one write).

mod aws;
mod body;
mod connect;
mod gate;
mod intercept;
mod log;
mod mcp;
mod mcp_sse;
mod mint;
mod plain;
mod request;
mod response;

use std::net::SocketAddr;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::upstream::Body;
use crate::{AgentRuntime, Broker};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Largest request body buffered for body injection.
const MAX_BUFFERED_BODY: usize = 32 << 20;

/// Bodies of known length up to this size are read whole and sent in one write.
const SMALL_BODY: u64 = 64 << 10;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

fn json_response(status: u16, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert("x-airlock-broker", HeaderValue::from_static("1"));
    r
}

fn error_response(status: u16, msg: &str) -> Response<Body> {
    json_response(
        status,
        serde_json::json!({"error": format!("airlock broker: {msg}")}),
    )
}

fn blocked_response(binding: Option<&str>, reason: &str) -> Response<Body> {
    json_response(
        403,
        serde_json::json!({
            "error": format!("airlock broker: blocked: {reason}"),
            "blocked": true,
            "binding": binding,
        }),
    )
}

pub use mcp_sse::Sessions as McpSessions;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Accepts proxy clients until the listener fails.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "broker: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let b = broker.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let b = b.clone();
                async move { Ok::<_, std::convert::Infallible>(b.front(req, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// What a phase gives: `Continue` with what the next phase needs, or `Break` with the
/// answer the client gets instead (a refusal or an error, audited by the phase that gave it
/// where an event is due).
type Phase<T> = ControlFlow<Response<Body>, T>;

/// An intercepted tunnel: the agent that opened it and the `host:port` it was opened to.
struct Ctx {
    agent: Arc<AgentRuntime>,
    host: String,
    port: u16,
}

impl Broker {
    /// The proxy-facing handler: authentication, then CONNECT or plain HTTP.
    async fn front(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let agent = match self.authenticate(&req, peer) {
            Continue(a) => a,
            Break(refused) => return refused,
        };
        if req.method() == Method::CONNECT {
            return self.connect(agent, req).await;
        }
        if req.uri().scheme_str().is_some() {
            return self.plain_http(agent, req).await;
        }
        error_response(
            400,
            "this is a forward proxy: send CONNECT or an absolute URL",
        )
    }

    /// The first filter every request passes: its `Proxy-Authorization` must be a valid
    /// proxy credential of an existing agent, or the answer is 407. A missing or invalid
    /// credential is audited (who tried, for what, from where; never what they presented).
    fn authenticate(&self, req: &Request<Incoming>, peer: SocketAddr) -> Phase<Arc<AgentRuntime>> {
        let agent = match req
            .headers()
            .get(hyper::header::PROXY_AUTHORIZATION)
            .map(|h| self.cred.verify_header(h.as_bytes(), unix_now()))
        {
            Some(Ok(a)) => a,
            other => {
                self.stats.denied.fetch_add(1, Ordering::Relaxed);
                let why = match other {
                    Some(Err(e)) => e,
                    _ => "proxy credentials required",
                };
                let host = req.uri().host().unwrap_or("").to_string();
                let port = req.uri().port_u16().unwrap_or(0);
                let mut ev = self.event("deny", "", req.method().as_str(), &host, port, "");
                ev.status = 407;
                ev.reason = Some(format!("{why} (from {peer})"));
                self.audit.record(ev);
                let mut r = error_response(407, why);
                r.headers_mut().insert(
                    hyper::header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"airlock-broker\""),
                );
                return Break(r);
            }
        };
        match self.agent(&agent) {
            Some(a) => Continue(a),
            None => Break(error_response(407, "unknown agent")),
        }
    }
}

/// Whether one of the agent's bindings names `host` (such hosts are always intercepted).
fn is_bound(agent: &AgentRuntime, host: &str) -> bool {
    agent
        .bindings
        .iter()
        .any(|b| b.dest.hosts.iter().any(|h| h.matches(host)))
}

/// Whether the agent's egress allowlist names `host`.
fn is_allowed(agent: &AgentRuntime, host: &str) -> bool {
    agent.allow_hosts.iter().any(|h| h.matches(host))
}

fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<String> = h
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for n in HOP_BY_HOP {
        if keep_upgrade && (*n == "connection" || *n == "upgrade") {
            continue;
        }
        h.remove(*n);
    }
    if !keep_upgrade {
        for n in named {
            h.remove(n.as_str());
        }
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Reads a body of at most `limit` bytes whole; `None` when it is longer or fails.
async fn read_whole(body: Incoming, limit: usize) -> Option<Bytes> {
    http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}
