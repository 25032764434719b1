//! Human approval of brokered requests. A binding or an agent with `approval` holds each
//! request that would use it until someone decides (`airlock broker approvals approve|deny`,
//! or the API under `sys/broker/approvals`), up to a timeout:
//!
//! - `mode = "request"`: every request needs its own approval, bound to a digest of its
//!   method, host, port, normalised path, query and body ([`digest`]); an approval lets one
//!   request through (it is consumed), so a replay — or the same request with another body —
//!   waits for a new decision;
//! - `mode = "window"`: one approval lets the binding's requests through for `window` seconds.
//!
//! The state lives in Airlock ([`Approvals`] is the broker's way to it), so a pending request
//! keeps its approval across a broker restart (the retried request has the same digest) and
//! several replicas see the same decisions. Denied or timed out: 403 with the reason.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What a binding or an agent requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// `request` or `window`.
    pub mode: &'static str,
    /// Seconds an approved window lasts.
    pub window: u64,
    /// Seconds a request waits for a decision.
    pub timeout: u64,
}

/// Parses `approval = "request" | "window"` or `{ mode, window, timeout }`.
pub fn parse(v: &Value) -> Result<Approval, String> {
    let mut a = Approval {
        mode: "request",
        window: 900,
        timeout: 120,
    };
    let mode_of = |s: &str| match s {
        "request" => Ok("request"),
        "window" => Ok("window"),
        other => Err(format!("approval mode {other:?} is not request or window")),
    };
    match v {
        Value::String(s) => a.mode = mode_of(s)?,
        Value::Object(o) => {
            let o: &Map<String, Value> = o;
            for (k, x) in o {
                match k.as_str() {
                    "mode" => {
                        a.mode = mode_of(x.as_str().ok_or("approval.mode must be a string")?)?
                    }
                    "window" | "timeout" => {
                        let n = x
                            .as_u64()
                            .filter(|n| {
                                *n >= 1 && *n <= if k == "window" { 30 * 86_400 } else { 3600 }
                            })
                            .ok_or_else(|| {
                                format!("approval.{k} must be a number of seconds in range")
                            })?;
                        if k == "window" {
                            a.window = n;
                        } else {
                            a.timeout = n;
                        }
                    }
                    _ => {
                        return Err(format!(
                            "unknown approval field `{k}` (known: mode, window, timeout)"
                        ))
                    }
                }
            }
        }
        _ => return Err("`approval` must be \"request\", \"window\" or a table".into()),
    }
    Ok(a)
}

/// The digest an approval is bound to (hex SHA-256).
pub fn digest(
    method: &str,
    host: &str,
    port: u16,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> String {
    let mut h = Sha256::new();
    for part in [method, host, &port.to_string(), path, query.unwrap_or("")] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.update(Sha256::digest(body));
    hex::encode(h.finalize())
}

/// A broker's question.
#[derive(Clone, Debug)]
pub struct Ask {
    pub agent: String,
    pub binding: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub digest: String,
    pub approval: Approval,
}

/// An approval as Airlock holds it.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub id: String,
    /// `pending`, `approved`, `denied`, `expired`, `used`.
    pub status: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
}

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Where approvals live (Airlock's `sys/broker/approvals`).
pub trait Approvals: Send + Sync + 'static {
    /// The approval for this request (created pending when there is none).
    fn ask<'a>(&'a self, ask: &'a Ask) -> Fut<'a, State>;
    fn get<'a>(&'a self, id: &'a str) -> Fut<'a, State>;
    /// Consumes a per-request approval.
    fn consume<'a>(&'a self, id: &'a str) -> Fut<'a, State>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_digest() {
        assert_eq!(parse(&Value::from("window")).unwrap().mode, "window");
        let a = parse(&serde_json::json!({"mode": "request", "timeout": 5})).unwrap();
        assert_eq!((a.mode, a.timeout, a.window), ("request", 5, 900));
        for bad in [
            serde_json::json!("x"),
            serde_json::json!({"timeout": 0}),
            serde_json::json!({"nope": 1}),
            serde_json::json!(3),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
        let d = digest("POST", "api.x", 443, "/v1/a", None, b"{}");
        assert_eq!(d, digest("POST", "api.x", 443, "/v1/a", None, b"{}"));
        assert_ne!(d, digest("POST", "api.x", 443, "/v1/a", None, b"{ }"));
        assert_ne!(d, digest("POST", "api.x", 443, "/v1/a", Some("q=1"), b"{}"));
        assert_ne!(d, digest("GET", "api.x", 443, "/v1/a", None, b"{}"));
    }
}
