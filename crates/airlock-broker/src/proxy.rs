//! The proxy: authenticates every client, decides per CONNECT whether to tunnel, intercept or
//! refuse, and for intercepted requests applies [`crate::rewrite`]: block, inject, scrub.
//!
//! Bodies stream in both directions (hyper frames are passed on as they arrive); the only
//! buffering is a request body for a binding that opted in to body injection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use airlock_core::binding::Outgoing;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::audit::Event;
use crate::config::Egress;
use crate::rewrite::{self, Place, Scrubber, Verdict};
use crate::upstream::{Body, BoxError};
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

struct Ctx {
    agent: Arc<AgentRuntime>,
    host: String,
    port: u16,
}

impl Broker {
    fn event(
        &self,
        kind: &'static str,
        agent: &str,
        method: &str,
        host: &str,
        port: u16,
        path: &str,
    ) -> Event {
        Event {
            time: time::OffsetDateTime::now_utc(),
            kind,
            agent: agent.to_string(),
            binding: None,
            method: method.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            latency_ms: 0.0,
            reason: None,
            scrubbed: 0,
        }
    }

    fn block(
        &self,
        mut ev: Event,
        binding: Option<String>,
        reason: String,
        start: Instant,
    ) -> Response<Body> {
        self.stats.blocked.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(agent = %ev.agent, host = %ev.host, path = %ev.path, reason = %reason, "broker: blocked a request");
        let resp = blocked_response(binding.as_deref(), &reason);
        ev.binding = binding;
        ev.reason = Some(reason);
        ev.status = 403;
        ev.latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        self.audit.record(ev);
        resp
    }

    fn resp_body(
        &self,
        inner: Incoming,
        scrub: Option<Scrubber>,
        ev: Event,
        bytes_in: Arc<AtomicU64>,
        start: Instant,
    ) -> RespBody {
        RespBody {
            inner,
            scrub,
            bytes: 0,
            done: false,
            trailers: None,
            event: Some(ev),
            bytes_in,
            start,
            audit: self.audit.clone(),
            scrub_counter: self.stats.scrubbed.clone(),
        }
    }

    /// The proxy-facing handler: authentication, CONNECT, plain HTTP.
    async fn front(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
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
                // Audited (who tried to use the proxy without a valid credential, and for
                // what); never the presented credential.
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
                return r;
            }
        };
        let Some(agent) = self.agent(&agent) else {
            return error_response(407, "unknown agent");
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

    async fn connect(
        self: Arc<Self>,
        agent: Arc<AgentRuntime>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let start = Instant::now();
        let Some(auth) = req.uri().authority().cloned() else {
            return error_response(400, "CONNECT needs host:port");
        };
        let host = auth
            .host()
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let Some(port) = auth.port_u16() else {
            return error_response(400, "CONNECT needs host:port");
        };
        let bound = agent
            .bindings
            .iter()
            .any(|b| b.dest.hosts.iter().any(|h| h.matches(&host)));
        let intercept = bound
            || match agent.egress {
                Egress::Inspect => true,
                Egress::Tunnel => false,
                Egress::Allowlist => {
                    if !agent.allow_hosts.iter().any(|h| h.matches(&host)) {
                        let mut ev = self.event("deny", &agent.name, "CONNECT", &host, port, "");
                        ev.status = 403;
                        ev.reason = Some("host not in the allowlist".into());
                        self.audit.record(ev);
                        self.stats.denied.fetch_add(1, Ordering::Relaxed);
                        return error_response(
                            403,
                            &format!("{host} is not allowed by this agent's egress allowlist"),
                        );
                    }
                    false
                }
            };
        if !intercept {
            // Dial first so a refusal is a clear HTTP answer, not a dead tunnel.
            let upstream = match self.upstream.dial(&host, port).await {
                Ok(s) => s,
                Err(e) => {
                    let mut ev = self.event("deny", &agent.name, "CONNECT", &host, port, "");
                    ev.status = e.status;
                    ev.reason = Some(e.message.clone());
                    self.audit.record(ev);
                    return error_response(e.status, &e.message);
                }
            };
            let me = self.clone();
            tokio::spawn(async move {
                let Ok(up) = hyper::upgrade::on(req).await else {
                    return;
                };
                let mut client = TokioIo::new(up);
                let mut upstream = upstream;
                let r = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                let mut ev = me.event("tunnel", &agent.name, "CONNECT", &host, port, "");
                if let Ok((a, b)) = r {
                    ev.bytes_in = a;
                    ev.bytes_out = b;
                }
                ev.status = 200;
                ev.latency_ms = start.elapsed().as_secs_f64() * 1000.0;
                me.audit.record(ev);
            });
            return Response::new(full(Bytes::new()));
        }
        let tls_cfg = match self.ca.server_config(&host) {
            Ok(c) => c,
            Err(e) => return error_response(502, &format!("cannot mint a certificate: {e}")),
        };
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(up) = hyper::upgrade::on(req).await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls_cfg);
            let tls = match tokio::time::timeout(
                Duration::from_secs(10),
                acceptor.accept(TokioIo::new(up)),
            )
            .await
            {
                Ok(Ok(t)) => t,
                _ => return,
            };
            let ctx = Arc::new(Ctx { agent, host, port });
            let svc = hyper::service::service_fn(move |req| {
                let me = me.clone();
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(me.intercepted(&ctx, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(60));
            builder
                .http2()
                .max_concurrent_streams(256)
                .timer(hyper_util::rt::TokioTimer::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
        });
        Response::new(full(Bytes::new()))
    }

    /// A request inside an intercepted TLS connection.
    async fn intercepted(&self, ctx: &Ctx, mut req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let agent = &ctx.agent;
        let method = req.method().as_str().to_string();
        let raw_path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let client_h2 = req.version() == hyper::Version::HTTP_2;
        let mut ev = self.event(
            "forward",
            &agent.name,
            &method,
            &ctx.host,
            ctx.port,
            &rewrite::audit_path(&raw_path),
        );
        let out = Outgoing {
            scheme: "https",
            host: &ctx.host,
            port: ctx.port,
            method: &method,
            raw_path: &raw_path,
        };
        let mut found = rewrite::locate(
            &raw_path,
            query.as_deref(),
            req.headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes())),
        );
        let inject = match rewrite::analyse(&agent.bindings, &agent.placeholders, &out, &found) {
            Verdict::Block { binding, reason } => {
                ev.kind = "block";
                return self.block(ev, binding, reason, start);
            }
            Verdict::Forward(i) => i,
        };
        // Body: buffered and rewritten for bindings that opted in; otherwise streamed through
        // a detector that aborts the request if a placeholder shows up.
        let body_bindings: Vec<usize> = agent
            .bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| b.body && b.dest.check(&out).is_ok())
            .map(|(i, _)| i)
            .collect();
        let is_upgrade = req.headers().contains_key(hyper::header::UPGRADE);
        let client_websocket = req
            .headers()
            .get(hyper::header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));

        let client_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let mut body = Some(body);
        let content_type = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut inject = inject;
        let leaked = Arc::new(AtomicBool::new(false));
        let bytes_in = Arc::new(AtomicU64::new(0));
        let mut body_replace: Option<Bytes> = None;
        if !body_bindings.is_empty() && !is_upgrade {
            let Some(incoming) = body.take() else {
                return error_response(500, "request body already taken");
            };
            let collected = match http_body_util::Limited::new(incoming, MAX_BUFFERED_BODY)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(_) => {
                    return error_response(
                        413,
                        "request body too large for body injection (limit 32 MiB)",
                    )
                }
            };
            let text = String::from_utf8_lossy(&collected);
            let in_body: Vec<(String, Place)> = airlock_core::binding::find_placeholders(&text)
                .into_iter()
                .map(|(_, p)| (p.to_string(), Place::Body))
                .collect();
            if !in_body.is_empty() {
                found.extend(in_body);
                match rewrite::analyse(&agent.bindings, &agent.placeholders, &out, &found) {
                    Verdict::Block { binding, reason } => {
                        ev.kind = "block";
                        return self.block(ev, binding, reason, start);
                    }
                    Verdict::Forward(i) => inject = i,
                }
            }
            body_replace = Some(collected);
        }
        // Credentials, from memory only.
        let mut secrets = Vec::with_capacity(inject.len());
        for &i in &inject {
            let Some(b) = agent.bindings.get(i) else {
                continue;
            };
            match agent.cache.get(&b.secret_path, &b.secret_key) {
                Some(s) => secrets.push((i, s)),
                None => {
                    ev.kind = "block";
                    ev.binding = Some(b.name.clone());
                    ev.status = 503;
                    ev.reason = Some("credential unavailable (store unreachable)".into());
                    self.audit.record(ev);
                    return error_response(
                        503,
                        &format!(
                            "the credential for binding {:?} is unavailable: Airlock could not be reached recently enough (failing closed)",
                            b.name
                        ),
                    );
                }
            }
        }
        // Rewrite headers and query.
        let mut headers = std::mem::take(&mut parts.headers);
        strip_hop_by_hop(&mut headers, is_upgrade);
        let mut new_query = query.clone();
        let mut extra_needles = Vec::new();
        for (i, secret) in &secrets {
            let Some(b) = agent.bindings.get(*i) else {
                continue;
            };
            let Some(ph) = agent
                .placeholders
                .iter()
                .find(|(_, j)| j == i)
                .map(|(p, _)| p.as_str())
            else {
                continue;
            };
            if let Some(h) = &b.header {
                if let Some(v) = headers.get(h.as_str()) {
                    let nv = rewrite::inject_header(v.as_bytes(), ph, &b.format, secret);
                    extra_needles.extend(rewrite::basic_needles(v.as_bytes(), &nv));
                    match HeaderValue::from_bytes(&nv) {
                        Ok(mut hv) => {
                            hv.set_sensitive(true);
                            if let Ok(n) = HeaderName::from_bytes(h.as_bytes()) {
                                headers.insert(n, hv);
                            }
                        }
                        Err(_) => {
                            return error_response(
                                502,
                                &format!(
                                    "the credential of binding {:?} cannot be sent in a header",
                                    b.name
                                ),
                            )
                        }
                    }
                }
            }
            if let (Some(q), Some(param)) = (&new_query, &b.query) {
                new_query = Some(rewrite::inject_query(q, param, ph, secret));
            }
            for (k, v) in &b.extra_headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    headers.insert(n, v);
                }
            }
            if let Some(buf) = body_replace.take() {
                let esc = rewrite::body_escape(content_type.as_deref(), secret);
                body_replace = Some(Bytes::from(rewrite::replace_bytes(
                    &buf,
                    ph.as_bytes(),
                    esc.as_bytes(),
                )));
            }
        }
        if !secrets.is_empty() {
            // Compressed responses could not be scrubbed: ask for identity, and offer no
            // WebSocket extension (permessage-deflate frames could not be checked either).
            headers.insert(
                hyper::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            headers.remove(hyper::header::SEC_WEBSOCKET_EXTENSIONS);
        }
        let pq = match &new_query {
            Some(q) => format!("{raw_path}?{q}"),
            None => raw_path.clone(),
        };
        let up_body: Body = match (body_replace, body) {
            (Some(b), _) => {
                headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                bytes_in.store(b.len() as u64, Ordering::Relaxed);
                full(b)
            }
            (None, None) => full(Bytes::new()),
            // Small bodies of known length are read whole: one write upstream instead of a
            // head and a body write, and the placeholder check sees everything at once.
            (None, Some(body))
                if !is_upgrade && content_length(&headers).is_some_and(|n| n <= SMALL_BODY) =>
            {
                let b = match http_body_util::Limited::new(body, SMALL_BODY as usize)
                    .collect()
                    .await
                {
                    Ok(c) => c.to_bytes(),
                    Err(_) => {
                        return error_response(
                            400,
                            "request body does not match its Content-Length",
                        )
                    }
                };
                if rewrite::PrefixDetector::default().feed(&b) {
                    ev.kind = "block";
                    return self.block(
                        ev,
                        None,
                        "placeholder in the request body, which no binding for this destination allows"
                            .into(),
                        start,
                    );
                }
                bytes_in.store(b.len() as u64, Ordering::Relaxed);
                full(b)
            }
            (None, Some(body)) => ScanBody {
                inner: body,
                detector: rewrite::PrefixDetector::default(),
                leaked: leaked.clone(),
                bytes: bytes_in.clone(),
            }
            .boxed(),
        };
        let mut up_req = Request::new(up_body);
        *up_req.method_mut() = parts.method.clone();
        *up_req.headers_mut() = headers;
        *up_req.uri_mut() = match pq.parse() {
            Ok(u) => u,
            Err(_) => return error_response(400, "invalid request target"),
        };
        ev.kind = if secrets.is_empty() {
            "forward"
        } else {
            "inject"
        };
        ev.binding = secrets
            .iter()
            .filter_map(|(i, _)| agent.bindings.get(*i).map(|b| b.name.clone()))
            .reduce(|a, b| format!("{a},{b}"));
        if secrets.is_empty()
            && !agent
                .bindings
                .iter()
                .any(|b| b.dest.hosts.iter().any(|h| h.matches(&ctx.host)))
        {
            ev.kind = "forward";
        }
        let result = if is_upgrade {
            self.upstream
                .send_upgrade(&ctx.host, ctx.port, up_req)
                .await
        } else {
            self.upstream
                .send(&ctx.host, ctx.port, client_h2, up_req)
                .await
        };
        if leaked.load(Ordering::Relaxed) {
            ev.kind = "block";
            return self.block(
                ev,
                None,
                "placeholder in the request body, which no binding for this destination allows"
                    .into(),
                start,
            );
        }
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                ev.status = e.status;
                ev.reason = Some(e.message.clone());
                self.audit.record(ev);
                return error_response(e.status, &e.message);
            }
        };
        if !secrets.is_empty() {
            self.stats.injected.fetch_add(1, Ordering::Relaxed);
        }
        ev.status = resp.status().as_u16();
        let mut needles = Vec::new();
        for (i, s) in &secrets {
            if let Some((ph, _)) = agent.placeholders.iter().find(|(_, j)| j == i) {
                needles.extend(rewrite::scrub_needles(s, ph));
            }
        }
        needles.extend(extra_needles);
        // WebSocket and other upgrades: splice the two upgraded connections (scrubbing what
        // comes back when the upgrade carried a credential).
        if is_upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let up_fut = hyper::upgrade::on(&mut resp);
            let (mut p, _) = resp.into_parts();
            let websocket = client_websocket
                && p.headers
                    .get(hyper::header::UPGRADE)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
            if !needles.is_empty() {
                if !websocket {
                    // Only WebSocket frames can be checked for an echoed credential.
                    ev.kind = "block";
                    return self.block(
                        ev,
                        None,
                        "upgrade to a protocol other than WebSocket on a request carrying a credential; refused because its traffic cannot be checked for an echoed credential".into(),
                        start,
                    );
                }
                if p.headers
                    .contains_key(hyper::header::SEC_WEBSOCKET_EXTENSIONS)
                {
                    ev.kind = "block";
                    return self.block(
                        ev,
                        None,
                        "upstream accepted a WebSocket extension the broker did not offer; refused because its frames cannot be checked for an echoed credential".into(),
                        start,
                    );
                }
                for v in p.headers.values_mut() {
                    if let Some((nv, n)) = rewrite::scrub_value(&needles, v.as_bytes()) {
                        ev.scrubbed += n;
                        if let Ok(h) = HeaderValue::from_bytes(&nv) {
                            *v = h;
                        }
                    }
                }
            }
            if let Some(cu) = client_upgrade {
                let audit = self.audit.clone();
                let scrubbed = self.stats.scrubbed.clone();
                let mut ev2 = ev.clone();
                tokio::spawn(async move {
                    if let (Ok(c), Ok(u)) = (cu.await, up_fut.await) {
                        let (c, u) = (TokioIo::new(c), TokioIo::new(u));
                        if websocket && !needles.is_empty() {
                            let s = crate::ws::splice(c, u, needles).await;
                            ev2.bytes_in = s.bytes_in;
                            ev2.bytes_out = s.bytes_out;
                            ev2.scrubbed += s.scrubbed;
                        } else {
                            let (mut c, mut u) = (c, u);
                            if let Ok((a, b)) = tokio::io::copy_bidirectional(&mut c, &mut u).await
                            {
                                ev2.bytes_in = a;
                                ev2.bytes_out = b;
                            }
                        }
                    }
                    ev2.latency_ms = start.elapsed().as_secs_f64() * 1000.0;
                    record_with_scrub(&audit, &scrubbed, ev2);
                });
            }
            return Response::from_parts(p, full(Bytes::new()));
        }
        let (mut rparts, rbody) = resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers, false);
        // Small responses of known length are read whole, checked, and sent in one write with
        // their (possibly scrubbed) length; decided before the scrubber drops the header.
        let small =
            content_length(&rparts.headers).is_some_and(|n| n <= SMALL_BODY) && method != "HEAD";
        let mut scrubber = None;
        if !secrets.is_empty() {
            if let Some(enc) = rparts.headers.get(hyper::header::CONTENT_ENCODING) {
                if !enc.as_bytes().eq_ignore_ascii_case(b"identity") {
                    ev.kind = "block";
                    return self.block(
                        ev,
                        None,
                        "upstream sent a compressed response to a request carrying a credential; refused because it cannot be checked for an echoed credential".into(),
                        start,
                    );
                }
            }
            let mut hits = 0;
            for v in rparts.headers.values_mut() {
                if let Some((nv, n)) = rewrite::scrub_value(&needles, v.as_bytes()) {
                    hits += n;
                    if let Ok(h) = HeaderValue::from_bytes(&nv) {
                        *v = h;
                    }
                }
            }
            ev.scrubbed = hits;
            if method != "HEAD" {
                // A scrubbed body may change length; small ones get their new length below.
                rparts.headers.remove(hyper::header::CONTENT_LENGTH);
            }
            scrubber = Some(Scrubber::new(needles));
        }
        if small {
            let b = match http_body_util::Limited::new(rbody, SMALL_BODY as usize)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(_) => {
                    ev.status = 502;
                    ev.reason = Some("upstream body did not match its Content-Length".into());
                    self.audit.record(ev);
                    return error_response(502, "upstream body did not match its Content-Length");
                }
            };
            let b = match &mut scrubber {
                Some(sc) => {
                    let mut out = sc.feed(&b);
                    out.extend(sc.finish());
                    ev.scrubbed += sc.hits;
                    Bytes::from(out)
                }
                None => b,
            };
            rparts
                .headers
                .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
            ev.bytes_out = b.len() as u64;
            ev.bytes_in = bytes_in.load(Ordering::Relaxed);
            ev.latency_ms = start.elapsed().as_secs_f64() * 1000.0;
            record_with_scrub(&self.audit, &self.stats.scrubbed, ev);
            return Response::from_parts(rparts, full(b));
        }
        let body = self.resp_body(rbody, scrubber, ev, bytes_in, start);
        Response::from_parts(rparts, body.boxed())
    }

    /// An absolute-form request (`GET http://host/…`): plain HTTP never carries a credential,
    /// so any placeholder in it is an exfiltration attempt.
    async fn plain_http(&self, agent: Arc<AgentRuntime>, req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let uri = req.uri().clone();
        let host = uri.host().unwrap_or("").to_string();
        let scheme = uri.scheme_str().unwrap_or("").to_string();
        let port = uri.port_u16().unwrap_or(80);
        let raw_path = uri.path().to_string();
        let method = req.method().as_str().to_string();
        let ev = self.event(
            "forward",
            &agent.name,
            &method,
            &host,
            port,
            &rewrite::audit_path(&raw_path),
        );
        let found = rewrite::locate(
            &raw_path,
            uri.query(),
            req.headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes())),
        );
        if let Some((p, place)) = found.first() {
            let binding = agent
                .placeholders
                .iter()
                .find(|(x, _)| x == p)
                .and_then(|(_, i)| agent.bindings.get(*i))
                .map(|b| b.name.clone());
            let mut ev = ev;
            ev.kind = "block";
            return self.block(
                ev,
                binding,
                format!("placeholder in {place} of a plain-HTTP ({scheme}) request: credentials only travel over https"),
                start,
            );
        }
        if scheme != "http" {
            return error_response(400, "only http:// URLs can be proxied without CONNECT");
        }
        let bound = agent
            .bindings
            .iter()
            .any(|b| b.dest.hosts.iter().any(|h| h.matches(&host)));
        if agent.egress == Egress::Allowlist
            && !bound
            && !agent.allow_hosts.iter().any(|h| h.matches(&host))
        {
            return error_response(
                403,
                &format!("{host} is not allowed by this agent's egress allowlist"),
            );
        }
        let leaked = Arc::new(AtomicBool::new(false));
        let bytes_in = Arc::new(AtomicU64::new(0));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers, false);
        let mut up = Request::new(
            ScanBody {
                inner: body,
                detector: rewrite::PrefixDetector::default(),
                leaked: leaked.clone(),
                bytes: bytes_in.clone(),
            }
            .boxed(),
        );
        *up.method_mut() = parts.method;
        *up.headers_mut() = headers;
        *up.uri_mut() = match uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
        {
            Ok(u) => u,
            Err(_) => return error_response(400, "invalid request target"),
        };
        let r = self.upstream.send_plain(&host, port, up).await;
        if leaked.load(Ordering::Relaxed) {
            let mut ev = ev;
            ev.kind = "block";
            return self.block(
                ev,
                None,
                "placeholder in the body of a plain-HTTP request".into(),
                start,
            );
        }
        match r {
            Ok(resp) => {
                let (mut p, b) = resp.into_parts();
                strip_hop_by_hop(&mut p.headers, false);
                let mut ev = ev;
                ev.status = p.status.as_u16();
                let body = self.resp_body(b, None, ev, bytes_in, start);
                Response::from_parts(p, body.boxed())
            }
            Err(e) => error_response(e.status, &e.message),
        }
    }
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

/// Request body that streams through, counting bytes, and fails the request the moment a
/// placeholder shows up in it (the bytes holding the placeholder are never released).
struct ScanBody {
    inner: Incoming,
    detector: rewrite::PrefixDetector,
    leaked: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Leak;
impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("placeholder in request body")
    }
}
impl std::error::Error for Leak {}

impl hyper::body::Body for ScanBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                    if this.detector.feed(d) {
                        this.leaked.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(Leak))));
                    }
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Response body: scrubs echoed credentials (if any were injected), counts bytes, and
/// records the audit event when the exchange ends.
struct RespBody {
    inner: Incoming,
    scrub: Option<Scrubber>,
    bytes: u64,
    done: bool,
    trailers: Option<Frame<Bytes>>,
    event: Option<Event>,
    bytes_in: Arc<AtomicU64>,
    start: Instant,
    audit: crate::audit::Auditor,
    scrub_counter: Arc<AtomicU64>,
}

impl hyper::body::Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(Ok));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(s) = &mut this.scrub {
                        let t = s.finish();
                        if !t.is_empty() {
                            this.bytes += t.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(t)))));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = match &mut this.scrub {
                            Some(s) => s.feed_bytes(data),
                            None => data,
                        };
                        if out.is_empty() {
                            continue;
                        }
                        this.bytes += out.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(frame) => {
                        // Trailers end the body: release any held-back bytes first.
                        this.done = true;
                        let frame = match (frame.into_trailers(), &mut this.scrub) {
                            (Ok(mut t), Some(s)) => {
                                scrub_trailers(&mut t, s);
                                Frame::trailers(t)
                            }
                            (Ok(t), None) => Frame::trailers(t),
                            (Err(f), _) => f,
                        };
                        let tail = this.scrub.as_mut().map(|s| s.finish()).unwrap_or_default();
                        if tail.is_empty() {
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        this.trailers = Some(frame);
                        this.bytes += tail.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(tail)))));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }
}

/// Records the event, plus a `scrub` event when echoed credentials were replaced.
fn record_with_scrub(audit: &crate::audit::Auditor, counter: &AtomicU64, ev: Event) {
    if ev.scrubbed > 0 {
        counter.fetch_add(ev.scrubbed, Ordering::Relaxed);
        let mut s = ev.clone();
        s.kind = "scrub";
        s.reason = Some(format!(
            "upstream echoed the credential {} time(s); replaced by the placeholder",
            ev.scrubbed
        ));
        audit.record(s);
    }
    audit.record(ev);
}

/// Replaces an echoed credential in trailers (gRPC and others send values there).
fn scrub_trailers(t: &mut HeaderMap, s: &mut Scrubber) {
    for v in t.values_mut() {
        if let Some(nv) = s.scrub_whole(v.as_bytes()) {
            if let Ok(h) = HeaderValue::from_bytes(&nv) {
                *v = h;
            }
        }
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl Drop for RespBody {
    fn drop(&mut self) {
        if let Some(mut ev) = self.event.take() {
            ev.bytes_out = self.bytes;
            ev.bytes_in = self.bytes_in.load(Ordering::Relaxed);
            ev.latency_ms = self.start.elapsed().as_secs_f64() * 1000.0;
            ev.scrubbed += self.scrub.as_ref().map_or(0, |s| s.hits);
            record_with_scrub(&self.audit, &self.scrub_counter, ev);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn echoed_credentials_in_trailers_are_scrubbed() {
        let mut t = HeaderMap::new();
        t.insert(
            "grpc-message",
            HeaderValue::from_static("bad key sk-live-123"),
        );
        t.insert("grpc-status", HeaderValue::from_static("16"));
        let mut s = Scrubber::new(vec![(b"sk-live-123".to_vec(), b"airlock-ph-x".to_vec())]);
        scrub_trailers(&mut t, &mut s);
        assert_eq!(t["grpc-message"], "bad key airlock-ph-x");
        assert_eq!(t["grpc-status"], "16");
        assert_eq!(s.hits, 1);
    }
}
