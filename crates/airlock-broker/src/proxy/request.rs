//! The request side of an intercepted request: the request filter (placeholders located and
//! judged, credentials taken from the cache) and the request rewrite (placeholders replaced
//! by credentials, the upstream request built).

use std::ops::ControlFlow::{Break, Continue};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{HeaderMap, Request, Response};
use zeroize::Zeroizing;

use super::aws;
use super::body::ScanBody;
use super::intercept::{Exchange, Needles, UNBOUND_BODY_PLACEHOLDER};
use super::{
    content_length, error_response, full, read_whole, strip_hop_by_hop, Phase, MAX_BUFFERED_BODY,
    SMALL_BODY,
};
use crate::rewrite::{self, Place, PrefixDetector, Verdict};
use crate::upstream::Body;
use crate::{AgentRuntime, Broker};

/// A credential, as the cache holds it.
type Secret = Arc<Zeroizing<String>>;

/// A request body on its way upstream.
enum ReqBody {
    /// Read whole, for bindings that inject into bodies.
    Buffered(Bytes),
    /// Not read yet.
    Streaming(Incoming),
}

/// What the request filter hands to the request rewrite.
pub(super) struct Admitted<'a> {
    x: Exchange<'a>,
    parts: Parts,
    body: ReqBody,
    client_upgrade: Option<OnUpgrade>,
    /// The bindings whose credentials the request will carry (indices), with the credentials.
    secrets: Vec<(usize, Secret)>,
    /// A SigV4 request to sign again with an `aws_sigv4` binding's real credentials.
    aws: Option<(aws::Signed, aws::Creds)>,
}

/// What the request rewrite hands to the upstream choice.
pub(super) struct Rewritten<'a> {
    pub(super) x: Exchange<'a>,
    pub(super) req: Request<Body>,
    pub(super) client_upgrade: Option<OnUpgrade>,
    /// The injected credentials, in every form an upstream might echo them, with their
    /// placeholders.
    pub(super) needles: Needles,
    /// The request carries a credential.
    pub(super) credential: bool,
}

impl Exchange<'_> {
    /// The verdict of the binding rules on the placeholders found so far.
    fn judge(&self, found: &[(String, Place)]) -> Verdict {
        rewrite::analyse(
            &self.agent.bindings,
            &self.agent.placeholders,
            &self.outgoing(),
            found,
        )
    }

    /// The request as the SigV4 steps see it.
    fn aws_ctx(&self) -> aws::Ctx<'_> {
        aws::Ctx {
            agent: self.agent,
            host: self.host,
            port: self.port,
            method: &self.method,
            raw_path: &self.raw_path,
            query: self.query.as_deref(),
        }
    }

    /// Whether a binding that allows this request injects into bodies.
    fn injects_body(&self) -> bool {
        let out = self.outgoing();
        self.agent
            .bindings
            .iter()
            .any(|b| (b.body || b.hmac.is_some()) && b.dest.check(&out).is_ok())
    }
}

impl Broker {
    /// Request filter: the placeholders in the path, query and headers are located and judged
    /// by [`rewrite::analyse`], and a misused one blocks the request. When a binding allowing
    /// this request injects into bodies, the body is read whole (up to 32 MiB) and judged with
    /// them. Then the credentials of the bindings to inject are taken from the cache; one that
    /// is unavailable refuses the request (503, failing closed).
    pub(super) async fn request_filter<'a>(
        &self,
        x: Exchange<'a>,
        mut req: Request<Incoming>,
    ) -> Phase<Admitted<'a>> {
        if let Some(name) = self.honeytoken_in(&x.raw_path, x.query.as_deref(), req.headers(), None)
        {
            let start = x.start;
            return Break(self.honeytoken_hit(x.ev, &name, start));
        }
        let mut found = rewrite::locate(
            &x.raw_path,
            x.query.as_deref(),
            req.headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes())),
        );
        let mut inject = match x.judge(&found) {
            Verdict::Block { binding, reason } => return Break(x.refuse(self, binding, reason)),
            Verdict::Forward(i) => i,
        };
        let mut signed = match aws::filter(&x.aws_ctx(), &req) {
            aws::Verdict::NotAws => None,
            aws::Verdict::Block { binding, reason } => {
                return Break(x.refuse(self, binding, reason))
            }
            aws::Verdict::Admit(s) => Some(*s),
        };
        let client_upgrade = x.is_upgrade.then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let aws_body = signed.as_ref().is_some_and(aws::needs_body);
        let gated = x.may_need_approval();
        let mcp = x
            .agent
            .mcp
            .as_ref()
            .filter(|p| p.applies_to(x.host) && x.method == "POST");
        let body = if (x.injects_body() || aws_body || gated || mcp.is_some()) && !x.is_upgrade {
            let Some(buf) = read_whole(body, MAX_BUFFERED_BODY).await else {
                return Break(error_response(
                    413,
                    "request body too large for body injection (limit 32 MiB)",
                ));
            };
            let in_body: Vec<(String, Place)> =
                airlock_core::binding::find_placeholders(&String::from_utf8_lossy(&buf))
                    .into_iter()
                    .map(|(_, p)| (p.to_string(), Place::Body))
                    .collect();
            if !in_body.is_empty() {
                found.extend(in_body);
                inject = match x.judge(&found) {
                    Verdict::Block { binding, reason } => {
                        return Break(x.refuse(self, binding, reason))
                    }
                    Verdict::Forward(i) => i,
                };
            }
            if let Some(name) = self.honeytoken_in("", None, &parts.headers, Some(&buf)) {
                let start = x.start;
                return Break(self.honeytoken_hit(x.ev, &name, start));
            }
            // MCP tool calls are judged before any credential is looked at.
            if let Some(p) = mcp {
                let to = super::mcp::Target {
                    agent: &x.agent.name,
                    host: x.host,
                    path: &x.raw_path,
                    query: x.query.as_deref(),
                };
                if let Some(denied) = self.mcp_judge(p, &buf, &x.ev, x.start, to) {
                    return Break(denied);
                }
            }
            ReqBody::Buffered(buf)
        } else {
            ReqBody::Streaming(body)
        };
        // Minted tokens first (a token endpoint may be asked; the request waits).
        let mut minted = Vec::new();
        for &i in &inject {
            let Some(b) = x.agent.bindings.get(i).filter(|b| b.mint.is_some()) else {
                continue;
            };
            match self.minted(x.agent, i).await {
                Ok(t) => minted.push((i, t)),
                Err(e) => {
                    tracing::warn!(binding = %b.name, error = %e, "broker: minting a token failed");
                    let msg = format!(
                        "the credential of binding {:?} could not be obtained from its token endpoint (failing closed)",
                        b.name
                    );
                    return Break(x.fail(self, 502, &msg));
                }
            }
        }
        let secrets = match credentials(x.agent, &inject, &minted) {
            Ok(s) => s,
            Err(binding) => return Break(self.unavailable(x, binding)),
        };
        let aws = match signed.as_mut() {
            None => None,
            Some(sg) => {
                let buffered = match &body {
                    ReqBody::Buffered(b) if aws_body => Some(&b[..]),
                    _ => None,
                };
                if let Err(reason) = aws::check(&x.aws_ctx(), sg, buffered) {
                    let binding = x.agent.bindings.get(sg.binding).map(|b| b.name.clone());
                    return Break(x.refuse(self, binding, reason));
                }
                match aws::Creds::get(x.agent, sg.binding) {
                    Some(c) => signed.map(|sg| (sg, c)),
                    None => {
                        let name = x
                            .agent
                            .bindings
                            .get(sg.binding)
                            .map(|b| b.name.as_str())
                            .unwrap_or_default();
                        return Break(self.unavailable(x, name));
                    }
                }
            }
        };
        let mut x = x;
        x.meters = x.agent.meters.for_request(
            secrets
                .iter()
                .map(|(i, _)| *i)
                .chain(aws.as_ref().map(|(sg, _)| sg.binding)),
        );
        if let Some(limited) = self.admit(&x.meters, &x.ev, x.start) {
            return Break(limited);
        }
        if gated {
            let used: Vec<usize> = secrets
                .iter()
                .map(|(i, _)| *i)
                .chain(aws.as_ref().map(|(sg, _)| sg.binding))
                .collect();
            let bytes: &[u8] = match &body {
                ReqBody::Buffered(b) => b,
                ReqBody::Streaming(_) => &[],
            };
            if let Some(refused) = self.approval_gate(&mut x, &used, bytes).await {
                return Break(refused);
            }
        }
        Continue(Admitted {
            x,
            parts,
            body,
            client_upgrade,
            secrets,
            aws,
        })
    }

    /// Refuses a request whose credential the cache cannot give (the store was not reached
    /// recently enough): audited as a `block` naming the binding, answered 503.
    fn unavailable(&self, x: Exchange<'_>, binding: &str) -> Response<Body> {
        let mut ev = x.ev;
        ev.kind = "block";
        ev.binding = Some(binding.to_string());
        ev.status = 503;
        ev.reason = Some("credential unavailable (store unreachable)".into());
        self.audit.record(ev);
        error_response(
            503,
            &format!(
                "the credential for binding {binding:?} is unavailable: Airlock could not be reached recently enough (failing closed)"
            ),
        )
    }

    /// Request rewrite: hop-by-hop headers are dropped (an upgrade keeps its own) and each
    /// placeholder becomes its credential where its binding injects it. A request carrying a
    /// credential asks for an uncompressed response and offers no WebSocket extension
    /// (permessage-deflate), so that everything coming back can be checked. The body goes
    /// upstream rewritten (buffered), read whole (small, of known length: one write, and the
    /// placeholder check sees all of it) or streamed through the placeholder scan.
    pub(super) async fn rewrite_request<'a>(&self, a: Admitted<'a>) -> Phase<Rewritten<'a>> {
        let Admitted {
            mut x,
            mut parts,
            body,
            client_upgrade,
            secrets,
            aws,
        } = a;
        let mut headers = std::mem::take(&mut parts.headers);
        let content_type = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        strip_hop_by_hop(&mut headers, x.is_upgrade);
        let injected = inject_credentials(
            x.agent,
            (&x.method, &x.raw_path),
            &secrets,
            &mut headers,
            x.query.clone(),
            body,
            content_type.as_deref(),
        )?;
        if !secrets.is_empty() {
            headers.insert(
                hyper::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            headers.remove(hyper::header::SEC_WEBSOCKET_EXTENSIONS);
        }
        // Placeholders in the URL path, for bindings that inject there.
        for (i, secret) in &secrets {
            let path_binding = x.agent.bindings.get(*i).is_some_and(|b| b.path);
            if let (true, Some(ph)) = (path_binding, placeholder_of(x.agent, *i)) {
                if x.raw_path.contains(ph) {
                    let enc = rewrite::path_encode(secret);
                    x.raw_path = x.raw_path.replace(ph, &enc);
                }
            }
        }
        let mut chunks = None;
        let mut query = injected.query;
        if let Some((sg, creds)) = &aws {
            match aws::resign(&x.aws_ctx(), sg, creds, &mut headers) {
                Ok(rw) => {
                    if rw.query.is_some() {
                        query = rw.query;
                    }
                    chunks = rw.chunks;
                }
                Err(e) => return Break(x.fail(self, 502, &e)),
            }
        }
        let pq = match &query {
            Some(q) => format!("{}?{q}", x.raw_path),
            None => x.raw_path.clone(),
        };
        let up_body: Body = match (injected.body, chunks) {
            (ReqBody::Streaming(body), Some(c)) => aws::ResignBody::new(body, c).boxed(),
            (ReqBody::Buffered(b), Some(mut c)) => {
                let out = match c.feed(&b).and_then(|o| c.finish().map(|()| o)) {
                    Ok(o) => o,
                    Err(e) => {
                        let binding = aws
                            .as_ref()
                            .and_then(|(sg, _)| x.agent.bindings.get(sg.binding))
                            .map(|b| b.name.clone());
                        return Break(x.refuse(self, binding, format!("aws: {e}")));
                    }
                };
                headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                full(Bytes::from(out))
            }
            (body, None) => match body {
                ReqBody::Buffered(b) => {
                    headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                    x.bytes_in.store(b.len() as u64, Ordering::Relaxed);
                    full(b)
                }
                ReqBody::Streaming(body)
                    if !x.is_upgrade
                        && content_length(&headers).is_some_and(|n| n <= SMALL_BODY) =>
                {
                    let Some(b) = read_whole(body, SMALL_BODY as usize).await else {
                        return Break(error_response(
                            400,
                            "request body does not match its Content-Length",
                        ));
                    };
                    if PrefixDetector::default().feed(&b) {
                        return Break(x.refuse(self, None, UNBOUND_BODY_PLACEHOLDER));
                    }
                    if let Some(name) = self.honeytoken_in("", None, &HeaderMap::new(), Some(&b)) {
                        let start = x.start;
                        return Break(self.honeytoken_hit(x.ev, &name, start));
                    }
                    x.bytes_in.store(b.len() as u64, Ordering::Relaxed);
                    full(b)
                }
                ReqBody::Streaming(body) => {
                    ScanBody::new(body, x.leaked.clone(), x.bytes_in.clone()).boxed()
                }
            },
        };
        let mut req = Request::new(up_body);
        *req.method_mut() = parts.method;
        *req.headers_mut() = headers;
        *req.uri_mut() = match pq.parse() {
            Ok(u) => u,
            Err(_) => return Break(error_response(400, "invalid request target")),
        };
        x.ev.kind = if secrets.is_empty() && aws.is_none() {
            "forward"
        } else {
            "inject"
        };
        x.ev.binding = secrets
            .iter()
            .map(|(i, _)| *i)
            .chain(aws.as_ref().map(|(sg, _)| sg.binding))
            .filter_map(|i| x.agent.bindings.get(i).map(|b| b.name.clone()))
            .reduce(|a, b| format!("{a},{b}"));
        let mut needles = Vec::new();
        for (i, s) in &secrets {
            // A computed value shorter than 8 bytes (a one-time code) would match ordinary
            // response text; it is not looked for.
            let templated = x
                .agent
                .bindings
                .get(*i)
                .is_some_and(|b| b.template.is_some());
            if templated && s.len() < 8 {
                continue;
            }
            if let Some(ph) = placeholder_of(x.agent, *i) {
                needles.extend(rewrite::scrub_needles(s, ph));
            }
        }
        needles.extend(injected.needles);
        Continue(Rewritten {
            x,
            req,
            client_upgrade,
            needles,
            credential: !secrets.is_empty(),
        })
    }
}

/// The credentials of the bindings to inject, from memory only; `Err` names the binding
/// whose credential is unavailable.
fn credentials<'a>(
    agent: &'a AgentRuntime,
    inject: &[usize],
    minted: &[(usize, Secret)],
) -> Result<Vec<(usize, Secret)>, &'a str> {
    let mut secrets = Vec::with_capacity(inject.len());
    for &i in inject {
        let Some(b) = agent.bindings.get(i) else {
            continue;
        };
        if b.mint.is_some() {
            match minted.iter().find(|(j, _)| *j == i) {
                Some((_, t)) => secrets.push((i, t.clone())),
                None => return Err(&b.name),
            }
            continue;
        }
        let value = match &b.template {
            // Computed per request (a TOTP code changes every period).
            Some(t) => t
                .render(
                    |k| agent.cache.get(&b.secret_path, k).map(|v| (*v).clone()),
                    super::unix_now(),
                )
                .map(Arc::new),
            None => agent.cache.get(&b.secret_path, &b.secret_key),
        };
        match value {
            Some(s) => secrets.push((i, s)),
            None => return Err(&b.name),
        }
    }
    Ok(secrets)
}

/// The placeholder the agent holds for its binding `i`.
fn placeholder_of(agent: &AgentRuntime, i: usize) -> Option<&str> {
    agent
        .placeholders
        .iter()
        .find(|(_, j)| *j == i)
        .map(|(p, _)| p.as_str())
}

/// What [`inject_credentials`] gives besides the headers it edits in place.
struct Injected {
    query: Option<String>,
    body: ReqBody,
    /// Encoded forms of injected credentials (Basic auth) to scrub from the response too.
    needles: Needles,
}

/// Replaces each placeholder by its credential where its binding injects it: in its header
/// (in the binding's format), its query parameter, and a buffered body (escaped for the
/// content type); and adds the binding's extra headers. A credential that cannot be a header
/// value is answered 502.
fn inject_credentials(
    agent: &AgentRuntime,
    sign: (&str, &str),
    secrets: &[(usize, Secret)],
    headers: &mut HeaderMap,
    mut query: Option<String>,
    mut body: ReqBody,
    content_type: Option<&str>,
) -> Phase<Injected> {
    let mut needles = Vec::new();
    for (i, secret) in secrets {
        let Some(b) = agent.bindings.get(*i) else {
            continue;
        };
        let Some(ph) = placeholder_of(agent, *i) else {
            continue;
        };
        if let (Some(spec), Some(h)) = (&b.hmac, &b.header) {
            // The placeholder in the signature header becomes the request's signature.
            let body: &[u8] = match &body {
                ReqBody::Buffered(buf) => buf,
                ReqBody::Streaming(_) => &[],
            };
            let now = super::unix_now();
            let sig = spec.sign(
                secret.as_bytes(),
                sign.0,
                sign.1,
                query.as_deref(),
                body,
                now,
            );
            if let (Ok(n), Ok(mut v)) = (
                HeaderName::from_bytes(h.as_bytes()),
                HeaderValue::from_str(&sig),
            ) {
                v.set_sensitive(true);
                headers.insert(n, v);
            }
            if let Some(th) = spec
                .timestamp_header
                .as_ref()
                .and_then(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            {
                headers.insert(th, HeaderValue::from(now));
            }
            continue;
        }
        if let Some(h) = &b.header {
            if let Some(v) = headers.get(h.as_str()) {
                let nv = rewrite::inject_header(v.as_bytes(), ph, &b.format, secret);
                needles.extend(rewrite::basic_needles(v.as_bytes(), &nv));
                let Ok(mut hv) = HeaderValue::from_bytes(&nv) else {
                    return Break(error_response(
                        502,
                        &format!(
                            "the credential of binding {:?} cannot be sent in a header",
                            b.name
                        ),
                    ));
                };
                hv.set_sensitive(true);
                if let Ok(n) = HeaderName::from_bytes(h.as_bytes()) {
                    headers.insert(n, hv);
                }
            }
        }
        if let (Some(q), Some(param)) = (&query, &b.query) {
            query = Some(rewrite::inject_query(q, param, ph, secret));
        }
        for (k, v) in &b.extra_headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(n, v);
            }
        }
        if let ReqBody::Buffered(buf) = &body {
            let esc = rewrite::body_escape(content_type, secret);
            body = ReqBody::Buffered(Bytes::from(rewrite::replace_bytes(
                buf,
                ph.as_bytes(),
                esc.as_bytes(),
            )));
        }
    }
    Continue(Injected {
        query,
        body,
        needles,
    })
}
