//! A request inside an intercepted tunnel, handled in named phases (each a function with its
//! own doc), in the order they run:
//!
//! 1. request filter ([`Broker::request_filter`], `request.rs`): placeholders located and
//!    judged, misuse blocked, credentials taken from the cache (failing closed);
//! 2. request rewrite ([`Broker::rewrite_request`], `request.rs`): placeholders replaced by
//!    credentials in headers, query and body, the upstream request built;
//! 3. upstream choice ([`Broker::send_upstream`], here): the connection the request goes on;
//! 4. response filter ([`Broker::response_filter`], `response.rs`): echoed credentials
//!    scrubbed, what cannot be checked refused;
//! 5. logging (`log.rs`, and `body.rs` for streamed responses): the audit event.
//!
//! Each phase takes the previous one's output and hands its own to the next, or returns the
//! answer the client gets instead (a refusal or an error, audited). The [`Exchange`] carries
//! what every phase needs to know about the request, and its audit event.

use std::ops::ControlFlow::{Break, Continue};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use airlock_core::binding::Outgoing;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response};

use super::request::Rewritten;
use super::{error_response, Ctx, Phase};
use crate::audit::Event;
use crate::rewrite;
use crate::upstream::Body;
use crate::{AgentRuntime, Broker};

/// Replacements the response filter applies: (echoed credential, placeholder) pairs.
pub(super) type Needles = Vec<(Vec<u8>, Vec<u8>)>;

/// Reason given when a placeholder shows up in a request body no binding rewrites.
pub(super) const UNBOUND_BODY_PLACEHOLDER: &str =
    "placeholder in the request body, which no binding for this destination allows";

/// One intercepted request as it moves through the phases: where it goes, what it is, and
/// the audit event that will describe it.
pub(super) struct Exchange<'a> {
    pub(super) agent: &'a AgentRuntime,
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) start: Instant,
    pub(super) ev: Event,
    pub(super) method: String,
    pub(super) raw_path: String,
    pub(super) query: Option<String>,
    /// The client spoke HTTP/2 (so the upstream may too).
    pub(super) client_h2: bool,
    /// The request asks for a protocol upgrade.
    pub(super) is_upgrade: bool,
    /// ... to WebSocket.
    pub(super) client_websocket: bool,
    /// Set when the streaming body scan met a placeholder.
    pub(super) leaked: Arc<AtomicBool>,
    /// Request body bytes sent upstream.
    pub(super) bytes_in: Arc<AtomicU64>,
    /// The budgets the exchange is charged to when it ends.
    pub(super) meters: Vec<Arc<crate::budget::Meter>>,
}

impl<'a> Exchange<'a> {
    fn new(broker: &Broker, ctx: &'a Ctx, req: &Request<Incoming>) -> Self {
        let start = Instant::now();
        let method = req.method().as_str().to_string();
        let raw_path = req.uri().path().to_string();
        let ev = broker.event(
            "forward",
            &ctx.agent.name,
            &method,
            &ctx.host,
            ctx.port,
            &rewrite::audit_path(&raw_path),
        );
        let upgrade = req.headers().get(hyper::header::UPGRADE);
        Exchange {
            agent: &ctx.agent,
            host: &ctx.host,
            port: ctx.port,
            start,
            ev,
            query: req.uri().query().map(str::to_string),
            client_h2: req.version() == hyper::Version::HTTP_2,
            is_upgrade: upgrade.is_some(),
            client_websocket: upgrade
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket")),
            method,
            raw_path,
            leaked: Arc::new(AtomicBool::new(false)),
            bytes_in: Arc::new(AtomicU64::new(0)),
            meters: Vec::new(),
        }
    }

    /// The request as binding destinations see it.
    pub(super) fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            scheme: "https",
            host: self.host,
            port: self.port,
            method: &self.method,
            raw_path: &self.raw_path,
        }
    }

    /// Ends the exchange with a block (see [`Broker::block`]).
    pub(super) fn refuse(
        self,
        broker: &Broker,
        binding: Option<String>,
        reason: impl Into<String>,
    ) -> Response<Body> {
        broker.block(self.ev, binding, reason.into(), self.start)
    }

    /// Ends the exchange with an error the broker answers itself, audited with the same
    /// status and reason.
    pub(super) fn fail(self, broker: &Broker, status: u16, message: &str) -> Response<Body> {
        let mut ev = self.ev;
        ev.status = status;
        ev.reason = Some(message.to_string());
        broker.audit.record(ev);
        error_response(status, message)
    }
}

/// What the upstream choice hands to the response filter.
pub(super) struct Forwarded<'a> {
    pub(super) x: Exchange<'a>,
    pub(super) resp: Response<Incoming>,
    pub(super) client_upgrade: Option<OnUpgrade>,
    pub(super) needles: Needles,
    /// The request carried a credential.
    pub(super) credential: bool,
}

impl Broker {
    /// A request inside an intercepted TLS connection.
    pub(super) async fn intercepted(&self, ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
        match self.phases(ctx, req).await {
            Continue(answer) | Break(answer) => answer,
        }
    }

    /// The phases in order; `Break` is the answer of a phase that ended the exchange early.
    async fn phases(&self, ctx: &Ctx, req: Request<Incoming>) -> Phase<Response<Body>> {
        let x = Exchange::new(self, ctx, &req);
        let admitted = self.request_filter(x, req).await?;
        let rewritten = self.rewrite_request(admitted).await?;
        let forwarded = self.send_upstream(rewritten).await?;
        Continue(self.response_filter(forwarded).await)
    }

    /// Upstream choice: the destination is the tunnel's `host:port`. An upgrade goes on a
    /// fresh HTTP/1.1 connection, anything else on a pooled one (HTTP/2 only for an HTTP/2
    /// client); [`crate::upstream`] resolves, applies the SSRF guard to the address it dials
    /// and verifies TLS. A placeholder the body scan met while the request streamed turns the
    /// answer into a block; an upstream failure is audited and answered with its status.
    async fn send_upstream<'a>(&self, r: Rewritten<'a>) -> Phase<Forwarded<'a>> {
        let Rewritten {
            mut x,
            req,
            client_upgrade,
            needles,
            credential,
        } = r;
        let result = if x.is_upgrade {
            self.upstream.send_upgrade(x.host, x.port, req).await
        } else {
            self.upstream.send(x.host, x.port, x.client_h2, req).await
        };
        if x.leaked.load(Ordering::Relaxed) {
            return Break(x.refuse(self, None, UNBOUND_BODY_PLACEHOLDER));
        }
        let resp = match result {
            Ok(r) => r,
            Err(e) => return Break(x.fail(self, e.status, &e.message)),
        };
        if credential {
            self.stats.injected.fetch_add(1, Ordering::Relaxed);
        }
        x.ev.status = resp.status().as_u16();
        Continue(Forwarded {
            x,
            resp,
            client_upgrade,
            needles,
            credential,
        })
    }
}
