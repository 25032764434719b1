//! The approval gate of an intercepted request (see [`crate::approval`]): after the request
//! filter admitted a request, each approval it needs — its agent's, and those of the bindings
//! whose credentials it carries — is asked for in Airlock and waited for, before anything is
//! sent upstream.

use std::time::{Duration, Instant};

use hyper::Response;

use super::intercept::Exchange;
use super::{error_response, log::elapsed_ms};
use crate::approval::{self, Ask};
use crate::upstream::Body;
use crate::Broker;

/// How often a held request asks whether it was decided.
const POLL: Duration = Duration::from_millis(300);

impl Exchange<'_> {
    /// Whether a request to this destination may need an approval (its body is then read
    /// whole, for the digest).
    pub(super) fn may_need_approval(&self) -> bool {
        let out = self.outgoing();
        self.agent.approval.is_some()
            || self
                .agent
                .bindings
                .iter()
                .any(|b| b.approval.is_some() && b.dest.check(&out).is_ok())
    }
}

impl Broker {
    /// Holds the request until every approval it needs is given. The answer to send instead:
    /// 403 when one is denied or times out, 503 when Airlock cannot be asked.
    pub(super) async fn approval_gate(
        &self,
        x: &mut Exchange<'_>,
        bindings: &[usize],
        body: &[u8],
    ) -> Option<Response<Body>> {
        if bindings.is_empty() {
            return None;
        }
        let mut needed: Vec<(String, approval::Approval)> = Vec::new();
        if let Some(a) = &x.agent.approval {
            needed.push(("*".into(), a.clone()));
        }
        for i in bindings {
            if let Some(b) = x.agent.bindings.get(*i) {
                if let Some(a) = &b.approval {
                    needed.push((b.name.clone(), a.clone()));
                }
            }
        }
        if needed.is_empty() {
            return None;
        }
        let Some(store) = self.approvals.clone() else {
            return Some(self.gate_fail(
                x,
                503,
                "this request needs an approval, and this broker has no approval service",
            ));
        };
        // The normalised path: `/v1/./a` and `/v1/a` are the same request.
        let path = airlock_core::binding::normalize_path(&x.raw_path)
            .unwrap_or_else(|| x.raw_path.clone());
        let digest = approval::digest(&x.method, x.host, x.port, &path, x.query.as_deref(), body);
        let mut notes = Vec::new();
        for (binding, a) in needed {
            let ask = Ask {
                agent: x.agent.name.clone(),
                binding,
                method: x.method.clone(),
                host: x.host.to_string(),
                path: crate::rewrite::audit_path(&x.raw_path),
                digest: digest.clone(),
                approval: a.clone(),
            };
            let mut st = match store.ask(&ask).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "broker: asking for an approval failed");
                    return Some(self.gate_fail(
                        x,
                        503,
                        "approvals cannot be reached (failing closed)",
                    ));
                }
            };
            let deadline = Instant::now() + Duration::from_secs(a.timeout) + Duration::from_secs(2);
            loop {
                match st.status.as_str() {
                    "approved" => break,
                    "pending" if Instant::now() < deadline => {
                        tokio::time::sleep(POLL).await;
                        st = match store.get(&st.id).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::warn!(error = %e, "broker: reading an approval failed");
                                return Some(self.gate_fail(
                                    x,
                                    503,
                                    "approvals cannot be reached (failing closed)",
                                ));
                            }
                        };
                    }
                    "pending" | "expired" => {
                        return Some(self.gate_block(x, format!("approval {} timed out", st.id)))
                    }
                    "denied" => {
                        let why = st
                            .reason
                            .clone()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default();
                        let who = st.decided_by.clone().unwrap_or_default();
                        return Some(
                            self.gate_block(x, format!("approval {} denied by {who}{why}", st.id)),
                        );
                    }
                    other => {
                        return Some(self.gate_block(x, format!("approval {} is {other}", st.id)))
                    }
                }
            }
            if a.mode == "request" {
                if let Err(e) = store.consume(&st.id).await {
                    return Some(
                        self.gate_block(x, format!("approval {} could not be used: {e}", st.id)),
                    );
                }
            }
            notes.push(format!(
                "approved {} by {}",
                st.id,
                st.decided_by.unwrap_or_default()
            ));
        }
        x.ev.reason = Some(notes.join("; "));
        None
    }

    fn gate_block(&self, x: &Exchange<'_>, reason: String) -> Response<Body> {
        self.block(x.ev.clone(), None, reason, x.start)
    }

    fn gate_fail(&self, x: &Exchange<'_>, status: u16, message: &str) -> Response<Body> {
        let mut ev = x.ev.clone();
        ev.status = status;
        ev.reason = Some(message.to_string());
        ev.latency_ms = elapsed_ms(x.start);
        self.audit.record(ev);
        error_response(status, message)
    }
}
