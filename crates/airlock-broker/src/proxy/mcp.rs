//! The MCP policy at the proxy (`crate::mcp_policy` decides): the tool calls of a POSTed
//! JSON-RPC message are judged before any credential is looked at, over intercepted HTTPS
//! and plain HTTP alike; a denied call is answered as its transport expects; and the event
//! streams of HTTP+SSE sessions are tapped so that a denial can be answered there
//! (`mcp_sse.rs`).

use std::time::Instant;

use http_body_util::BodyExt;
use hyper::Response;

use super::full;
use super::mcp_sse::{Sessions, SseTap};
use crate::audit::Event;
use crate::mcp_policy::{Decision, McpPolicy};
use crate::upstream::Body;
use crate::{AgentRuntime, Broker};

/// Where a judged message was going.
pub(super) struct Target<'a> {
    pub(super) agent: &'a str,
    pub(super) host: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
}

impl Broker {
    /// Judges the tool calls of an MCP message and records the decision; `Some` is the
    /// answer to a denied call.
    pub(super) fn mcp_judge(
        &self,
        policy: &McpPolicy,
        body: &[u8],
        ev: &Event,
        start: Instant,
        to: Target<'_>,
    ) -> Option<Response<Body>> {
        match policy.judge(body) {
            Decision::NoCall => None,
            Decision::Allow(notes) => {
                self.mcp_event(ev, start, 0, notes.join("; "));
                None
            }
            Decision::Deny { id, reason, .. } => {
                let answer = denied(&self.mcp_sessions, &to, &id, &reason);
                let status = answer.status().as_u16();
                self.mcp_event(ev, start, status, format!("deny: {reason}"));
                Some(answer)
            }
        }
    }

    /// A response body on its way back from an MCP host: an event stream answering a `GET`
    /// is tapped, so that denied calls of its session can be answered on it.
    pub(super) fn mcp_tap(
        &self,
        agent: &AgentRuntime,
        host: &str,
        method: &str,
        path: &str,
        headers: &hyper::HeaderMap,
        body: Body,
    ) -> Body {
        if method != "GET" || !agent.mcp.as_ref().is_some_and(|p| p.applies_to(host)) {
            return body;
        }
        let event_stream = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !event_stream {
            return body;
        }
        SseTap::new(body, self.mcp_sessions.clone(), &agent.name, host, path).boxed()
    }
}

/// The answer to a denied tool call: a JSON-RPC error, as the server would send one — on
/// the session's event stream when the POST went to the endpoint of an open HTTP+SSE
/// session (the POST itself then gets `202 Accepted`), else as the POST's body.
fn denied(
    sessions: &Sessions,
    to: &Target<'_>,
    id: &serde_json::Value,
    reason: &str,
) -> Response<Body> {
    let json = crate::mcp_policy::jsonrpc_error(id, reason);
    let endpoint = match to.query {
        Some(q) => format!("{}?{q}", to.path),
        None => to.path.to_string(),
    };
    if sessions.answer(to.agent, to.host, &endpoint, &json) {
        let mut r = Response::new(full("Accepted"));
        *r.status_mut() = hyper::StatusCode::ACCEPTED;
        return r;
    }
    let mut r = Response::new(full(bytes::Bytes::from(json)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
