//! Absolute-form requests (`GET http://host/…`): plain HTTP never carries a credential, so a
//! placeholder anywhere in one is an exfiltration attempt and is blocked. The rest is sent
//! on a fresh connection (dialled through the SSRF guard), its body scanned as it streams —
//! or, for a POST to a host the agent's MCP policy covers, read whole and judged first, as
//! over https: a denied tool call never reaches an MCP server on plain HTTP either.

use std::ops::ControlFlow::{Break, Continue};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::body::ScanBody;
use super::{
    error_response, full, is_allowed, is_bound, read_whole, strip_hop_by_hop, Phase,
    MAX_BUFFERED_BODY,
};
use crate::audit::Event;
use crate::config::Egress;
use crate::rewrite;
use crate::upstream::Body;
use crate::{AgentRuntime, Broker};

impl Broker {
    /// A plain-HTTP request: filtered, then forwarded.
    pub(super) async fn plain_http(
        &self,
        agent: Arc<AgentRuntime>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let start = Instant::now();
        let host = req.uri().host().unwrap_or("").to_string();
        let port = req.uri().port_u16().unwrap_or(80);
        let ev = self.event(
            "forward",
            &agent.name,
            req.method().as_str(),
            &host,
            port,
            &rewrite::audit_path(req.uri().path()),
        );
        match self.plain_request_filter(&agent, &req, ev, start) {
            Continue(ev) => {
                let meters = agent.meters.for_request(std::iter::empty());
                if let Some(limited) = self.admit(&meters, &ev, start) {
                    return limited;
                }
                self.plain_forward(&agent, req, &host, port, ev, start, meters)
                    .await
            }
            Break(refused) => refused,
        }
    }

    /// Request filter for plain HTTP: a placeholder in the path, query or headers is blocked
    /// (naming its binding), only `http://` is proxied, and an `allowlist` agent reaches only
    /// hosts that are bound or listed.
    fn plain_request_filter(
        &self,
        agent: &AgentRuntime,
        req: &Request<Incoming>,
        ev: Event,
        start: Instant,
    ) -> Phase<Event> {
        let uri = req.uri();
        if let Some(name) = self.honeytoken_in(uri.path(), uri.query(), req.headers(), None) {
            return Break(self.honeytoken_hit(ev, &name, start));
        }
        let host = uri.host().unwrap_or("");
        let scheme = uri.scheme_str().unwrap_or("");
        let found = rewrite::locate(
            uri.path(),
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
            return Break(self.block(
                ev,
                binding,
                format!("placeholder in {place} of a plain-HTTP ({scheme}) request: credentials only travel over https"),
                start,
            ));
        }
        if scheme != "http" {
            return Break(error_response(
                400,
                "only http:// URLs can be proxied without CONNECT",
            ));
        }
        if agent.egress == Egress::Allowlist && !is_bound(agent, host) && !is_allowed(agent, host) {
            return Break(error_response(
                403,
                &format!("{host} is not allowed by this agent's egress allowlist"),
            ));
        }
        Continue(ev)
    }

    /// Upstream and response for plain HTTP: hop-by-hop headers dropped, the body scanned as
    /// it streams (a placeholder in it turns the answer into a block), the response streamed
    /// back and its event recorded when it ends.
    #[allow(clippy::too_many_arguments)]
    async fn plain_forward(
        &self,
        agent: &AgentRuntime,
        req: Request<Incoming>,
        host: &str,
        port: u16,
        ev: Event,
        start: Instant,
        meters: Vec<Arc<crate::budget::Meter>>,
    ) -> Response<Body> {
        let leaked = Arc::new(AtomicBool::new(false));
        let bytes_in = Arc::new(AtomicU64::new(0));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers, false);
        let mcp = agent
            .mcp
            .as_ref()
            .filter(|p| p.applies_to(host) && parts.method == hyper::Method::POST);
        let body = match mcp {
            None => ScanBody::new(body, leaked.clone(), bytes_in.clone()).boxed(),
            Some(policy) => {
                let Some(buf) = read_whole(body, MAX_BUFFERED_BODY).await else {
                    return error_response(
                        413,
                        "request body too large for an MCP policy check (limit 32 MiB)",
                    );
                };
                if let Some(name) = self.honeytoken_in("", None, &headers, Some(&buf)) {
                    return self.honeytoken_hit(ev, &name, start);
                }
                let text = String::from_utf8_lossy(&buf);
                if !airlock_core::binding::find_placeholders(&text).is_empty() {
                    return self.block(
                        ev,
                        None,
                        "placeholder in the body of a plain-HTTP request".into(),
                        start,
                    );
                }
                let to = super::mcp::Target {
                    agent: &agent.name,
                    host,
                    path: parts.uri.path(),
                    query: parts.uri.query(),
                };
                if let Some(denied) = self.mcp_judge(policy, &buf, &ev, start, to) {
                    return denied;
                }
                bytes_in.store(buf.len() as u64, Ordering::Relaxed);
                full(buf)
            }
        };
        let mut up = Request::new(body);
        *up.method_mut() = parts.method.clone();
        *up.headers_mut() = headers;
        *up.uri_mut() = match parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
        {
            Ok(u) => u,
            Err(_) => return error_response(400, "invalid request target"),
        };
        let r = self.upstream.send_plain(host, port, up).await;
        if leaked.load(Ordering::Relaxed) {
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
                let body = self.resp_body(b, None, ev, bytes_in, start, meters);
                let body = self.mcp_tap(
                    agent,
                    host,
                    parts.method.as_str(),
                    parts.uri.path(),
                    &p.headers,
                    body.boxed(),
                );
                Response::from_parts(p, body)
            }
            Err(e) => error_response(e.status, &e.message),
        }
    }
}
