//! `sys/airlock/audit/query` and `sys/airlock/audit/verify`: reading the audit log back
//! (both need `sudo`, like every `sys/audit*` path).
//!
//! `GET sys/airlock/audit/query` filters a device's index (see `airlock-audit`'s
//! `index.rs`): `from`/`to` (RFC 3339 or Unix seconds), `path` (exact), `path_prefix`,
//! `operation`, `status`, `accessor` (a token accessor, matched through its HMAC, or the
//! HMAC itself), `display_name`, `remote_address`, `agent`, `binding`, `kind` (a broker
//! event's), `type` (`request`, `response`, `broker`), `hmac` (a value's HMAC from
//! `sys/audit-hash`), `before` (the cursor a page returned) and `limit` (1–500, default
//! 50). Newest first. An unknown parameter or a bad value is a 400.
//!
//! `POST sys/airlock/audit/verify` walks a device's whole file and checks its hash chain.

use std::sync::Arc;

use serde_json::json;

use airlock_audit::query::{Query, MAX_LIMIT};

use crate::core::Core;
use crate::error::{ApiError, ApiResult};
use crate::logical::{Request, Response};

const PARAMS: &[&str] = &[
    "device",
    "from",
    "to",
    "path",
    "path_prefix",
    "operation",
    "status",
    "accessor",
    "display_name",
    "remote_address",
    "agent",
    "binding",
    "kind",
    "type",
    "hmac",
    "before",
    "limit",
];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg.into())
}

/// A time bound: RFC 3339, or whole Unix seconds.
fn time_bound(name: &str, v: &str) -> ApiResult<i64> {
    if let Ok(secs) = v.parse::<i64>() {
        return secs
            .checked_mul(1_000_000)
            .ok_or_else(|| bad(format!("{name} is out of range")));
    }
    airlock_audit::parse_time(v).ok_or_else(|| {
        bad(format!(
            "{name} must be an RFC 3339 time (2026-12-04T10:00:00Z) or Unix seconds"
        ))
    })
}

fn parse(core: &Core, req: &Request) -> ApiResult<(Option<String>, Query)> {
    for (k, _) in &req.query {
        if !PARAMS.contains(&k.as_str()) {
            return Err(bad(format!("unknown parameter {k:?}")));
        }
    }
    let get = |k: &str| req.query(k).map(str::trim).filter(|v| !v.is_empty());
    let text = |k: &str| -> ApiResult<Option<String>> {
        match get(k) {
            Some(v) if v.len() > 4096 => Err(bad(format!("{k} is too long"))),
            v => Ok(v.map(str::to_string)),
        }
    };
    let mut q = Query {
        from_us: get("from").map(|v| time_bound("from", v)).transpose()?,
        to_us: get("to").map(|v| time_bound("to", v)).transpose()?,
        path: text("path")?,
        path_prefix: text("path_prefix")?,
        operation: text("operation")?,
        display_name: text("display_name")?,
        remote_address: text("remote_address")?,
        agent: text("agent")?,
        binding: text("binding")?,
        kind: text("kind")?,
        entry_type: text("type")?,
        hmac: text("hmac")?,
        limit: 50,
        ..Default::default()
    };
    if let (Some(f), Some(t)) = (q.from_us, q.to_us) {
        if f > t {
            return Err(bad("from is after to"));
        }
    }
    if let Some(t) = &q.entry_type {
        if !matches!(t.as_str(), "request" | "response" | "broker") {
            return Err(bad("type must be request, response or broker"));
        }
    }
    if let Some(h) = &q.hmac {
        if airlock_audit::query::hmac_is_valid(h).is_none() {
            return Err(bad(
                "hmac must be a value from sys/audit-hash: hmac-sha256:<64 hex digits>",
            ));
        }
    }
    if let Some(s) = get("status") {
        let n: i64 = s
            .parse()
            .ok()
            .filter(|n| (100..=599).contains(n))
            .ok_or_else(|| bad("status must be an HTTP status code"))?;
        q.status = Some(n);
    }
    if let Some(b) = get("before") {
        q.before = Some(
            b.parse()
                .map_err(|_| bad("before must be a cursor from a previous page"))?,
        );
    }
    if let Some(l) = get("limit") {
        let n: usize = l
            .parse()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| bad(format!("limit must be between 1 and {MAX_LIMIT}")))?;
        q.limit = n;
    }
    if let Some(a) = get("accessor") {
        q.accessor_hmac = Some(if a.starts_with("hmac-sha256:") {
            a.to_string()
        } else {
            core.audit
                .hash(a)
                .ok_or_else(|| ApiError::internal(&"the audit key is not loaded"))?
        });
    }
    Ok((text("device")?, q))
}

/// GET `sys/airlock/audit/query`.
pub async fn query(core: &Arc<Core>, req: &Request) -> ApiResult<Response> {
    let (device, q) = parse(core, req)?;
    let Some((name, log)) = core.audit.indexed_log(device.as_deref()) else {
        return Err(bad(match device {
            Some(d) => format!("no indexed audit device named {d:?}"),
            None => "no audit device with an index is configured".to_string(),
        }));
    };
    let page = tokio::task::spawn_blocking(move || airlock_audit::query::run(&log, &q))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::new(503, e))?;
    let summary = json!({
        "device": name,
        "entries_returned": page.entries.len(),
        "next": page.next.map(|n| n.to_string()),
    });
    let mut resp = Response::data(json!({
        "device": name,
        "entries": page.entries,
        "next": page.next.map(|n| n.to_string()),
        "chain": {
            "indexed_through": page.chain.indexed_through,
            "broken_at": page.chain.broken_at,
            "intact": page.chain.broken_at.is_none(),
        },
    }));
    resp.audit_data = Some(summary);
    Ok(resp)
}

/// POST `sys/airlock/audit/verify`: the whole file's hash chain, now.
pub async fn verify(core: &Arc<Core>, req: &Request) -> ApiResult<Response> {
    let device = req.str_field("device")?.filter(|d| !d.is_empty());
    let Some((name, log)) = core.audit.log_path(device.as_deref()) else {
        return Err(bad("no such audit device"));
    };
    let r = tokio::task::spawn_blocking(move || airlock_audit::verify(&log))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Response::data(match r {
        Ok(rep) => json!({
            "device": name, "intact": true, "entries": rep.entries,
            "first_seq": rep.first_seq, "last_seq": rep.last_seq,
        }),
        Err(e) => json!({"device": name, "intact": false, "error": e}),
    }))
}
