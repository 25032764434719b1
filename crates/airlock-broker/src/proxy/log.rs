//! The logging phase: each exchange is described by one audit event, opened when the request
//! arrives and recorded once its answer is settled: refused, failed, fully streamed (see
//! `body.rs`), or, for an upgrade, when the spliced connections close. Echoed credentials
//! that were replaced add a `scrub` event. An event never holds a credential or a query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::Response;

use super::blocked_response;
use crate::audit::{Auditor, Event};
use crate::upstream::Body;
use crate::Broker;

impl Broker {
    /// Opens the audit event of an exchange (kind `forward`, `deny`, `tunnel`, ...).
    pub(super) fn event(
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
            severity: None,
        }
    }

    /// Refuses a request: counted, logged, audited as a `block` naming the binding whose
    /// placeholder was misused (if known), and answered 403 with the reason.
    pub(super) fn block(
        &self,
        mut ev: Event,
        binding: Option<String>,
        reason: String,
        start: Instant,
    ) -> Response<Body> {
        self.stats.blocked.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(agent = %ev.agent, host = %ev.host, path = %ev.path, reason = %reason, "broker: blocked a request");
        let resp = blocked_response(binding.as_deref(), &reason);
        ev.kind = "block";
        ev.binding = binding;
        ev.reason = Some(reason);
        ev.status = 403;
        ev.latency_ms = elapsed_ms(start);
        self.audit.record(ev);
        resp
    }
}

impl Broker {
    /// The honeytoken a request carries, if any (see [`crate::honeytoken::find`]).
    pub(super) fn honeytoken_in(
        &self,
        raw_path: &str,
        query: Option<&str>,
        headers: &hyper::HeaderMap,
        body: Option<&[u8]>,
    ) -> Option<String> {
        let tokens = self.honeytokens_now();
        crate::honeytoken::find(
            &tokens,
            raw_path,
            query,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
            body,
        )
        .map(|t| t.name.clone())
    }

    /// Ends an exchange that carried a honeytoken: blocked, and a high-severity
    /// `honeytoken` event (the decoy's name, never its value).
    pub(super) fn honeytoken_hit(
        &self,
        mut ev: Event,
        name: &str,
        start: Instant,
    ) -> Response<Body> {
        self.stats.honeytokens.fetch_add(1, Ordering::Relaxed);
        tracing::error!(agent = %ev.agent, host = %ev.host, path = %ev.path, honeytoken = %name, "broker: a honeytoken was used");
        let reason = format!("honeytoken {name:?} used");
        let resp = blocked_response(None, &reason);
        ev.kind = "honeytoken";
        ev.severity = Some("high");
        ev.reason = Some(reason);
        ev.status = 403;
        ev.latency_ms = elapsed_ms(start);
        self.audit.record(ev);
        resp
    }
}

impl Broker {
    /// Admits a request against its budgets (counting it: `None`), or gives the 429 answer
    /// with `Retry-After`, having recorded a `limit` event.
    pub(super) fn admit(
        &self,
        meters: &[Arc<crate::budget::Meter>],
        ev: &Event,
        start: Instant,
    ) -> Option<Response<Body>> {
        let now = super::unix_now();
        for m in meters {
            if let Err((retry, which)) = m.admit(now) {
                self.stats.limited.fetch_add(1, Ordering::Relaxed);
                let reason = format!("budget exhausted: {which} (retry in {retry} s)");
                let mut e = ev.clone();
                e.kind = "limit";
                e.status = 429;
                e.reason = Some(reason.clone());
                e.latency_ms = elapsed_ms(start);
                self.audit.record(e);
                let mut resp = super::json_response(
                    429,
                    serde_json::json!({
                        "error": format!("airlock broker: {reason}"),
                        "limited": true,
                    }),
                );
                if let Ok(v) = hyper::header::HeaderValue::from_str(&retry.max(1).to_string()) {
                    resp.headers_mut().insert(hyper::header::RETRY_AFTER, v);
                }
                return Some(resp);
            }
        }
        None
    }
}

impl Broker {
    /// Records an MCP policy decision (`status`: what a denied call was answered with —
    /// 200 with a JSON-RPC error, or 202 when the error went on the session's event stream;
    /// 0 for allowed calls whose request goes on).
    pub(super) fn mcp_event(&self, ev: &Event, start: Instant, status: u16, reason: String) {
        let mut e = ev.clone();
        e.kind = "mcp";
        e.status = status;
        e.reason = Some(reason);
        e.latency_ms = elapsed_ms(start);
        if status != 0 {
            self.stats.denied.fetch_add(1, Ordering::Relaxed);
        }
        self.audit.record(e);
    }
}

/// Charges an ended exchange to its budgets.
pub(super) fn charge(meters: &[Arc<crate::budget::Meter>], bytes: u64, tokens: u64) {
    if meters.is_empty() {
        return;
    }
    let now = super::unix_now();
    for m in meters {
        m.charge(now, bytes, tokens);
    }
}

/// Milliseconds since `start`, for an event's latency.
pub(super) fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Records the event, plus a `scrub` event when echoed credentials were replaced.
pub(super) fn record_with_scrub(audit: &Auditor, counter: &AtomicU64, ev: Event) {
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
