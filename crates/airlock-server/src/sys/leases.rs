//! `sys/leases/*` and the legacy `sys/renew`, `sys/revoke`, `sys/revoke-prefix`, over the
//! lease manager.

use airlock_core::lease::{self, Limits};
use airlock_logical::framework::{self, PathSpec};
use airlock_logical::util::{now_nanos, now_unix, rfc3339_nanos};
use airlock_store::BarrierOp;
use serde_json::json;

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::leases::{due_key, id_key, index_ops, info};
use crate::logical::{Op, Request, Response};

fn lease_id_field(req: &Request, rest: &str, verb: &str) -> ApiResult<String> {
    let from_url = rest
        .strip_prefix(verb)
        .map(|s| s.trim_start_matches('/'))
        .unwrap_or("");
    if !from_url.is_empty() {
        return Ok(from_url.to_string());
    }
    Ok(req.str_field("lease_id")?.unwrap_or_default())
}

#[derive(Clone, Copy)]
enum L {
    List,
    Write,
}

/// The lease endpoints below `sys/leases/` (the legacy ones below `sys/` are the same).
#[rustfmt::skip]
static PATHS: &[PathSpec<L>] = &[
    PathSpec::new("lookup/{prefix*}", &[(Op::List, L::List), (Op::Update, L::Write)]),
    PathSpec::new("renew/{id*}", &[(Op::Update, L::Write)]),
    PathSpec::new("revoke/{id*}", &[(Op::Update, L::Write)]),
    PathSpec::new("revoke-prefix/{prefix*}", &[(Op::Update, L::Write)]),
    PathSpec::new("revoke-force/{prefix*}", &[(Op::Update, L::Write)]),
];

/// `sys/leases/*` and the legacy `sys/renew`, `sys/revoke`, `sys/revoke-prefix`.
pub async fn handle(
    core: &Core,
    req: &Request,
    caller: &Caller,
    rest: &str,
) -> ApiResult<Response> {
    let now = now_unix();
    let r = rest.strip_prefix("leases/").unwrap_or(rest);
    let Some((_, h, _)) = framework::route(PATHS, r, req.op)? else {
        return Err(ApiError::unsupported_path());
    };
    if let L::List = h {
        let prefix = r
            .strip_prefix("lookup")
            .unwrap_or_default()
            .trim_start_matches('/');
        let dir = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_end_matches('/'))
        };
        let keys = core.barrier.list(&format!("lease/path/{dir}")).await?;
        if keys.is_empty() {
            return Err(ApiError::not_found());
        }
        return Ok(Response::list(keys));
    }
    if r == "lookup" {
        let id = req.str_field("lease_id")?.unwrap_or_default();
        let e = core
            .leases
            .load(&id)
            .await?
            .filter(|e| e.expire_time > now || e.attempts > 0)
            .ok_or_else(|| ApiError::bad_request("invalid lease"))?;
        return Ok(Response::data(json!({
            "id": e.lease_id,
            "issue_time": rfc3339_nanos(e.issue_nanos),
            "expire_time": rfc3339_nanos(e.expire_time as i128 * 1_000_000_000),
            "last_renewal": e.last_renewal_nanos.map(rfc3339_nanos),
            "renewable": e.renewable,
            "ttl": (e.expire_time - now).max(0),
            "path": e.path,
        })));
    }
    if r == "renew" || r.starts_with("renew/") {
        let id = lease_id_field(req, r, "renew")?;
        if id.is_empty() {
            return Err(ApiError::bad_request("lease_id must be specified"));
        }
        let increment = req.duration_field("increment")?.unwrap_or(0).max(0) as u64;
        let key = id_key(&id);
        let guard = core.root.lock(&key).await?;
        let e = core
            .leases
            .load(&id)
            .await?
            .filter(|e| e.expire_time > now)
            .ok_or_else(|| ApiError::bad_request("lease not found"))?;
        if !e.renewable {
            return Err(ApiError::bad_request("lease is not renewable"));
        }
        let issued = (e.issue_nanos / 1_000_000_000) as i64;
        let limits = Limits {
            default_ttl: (e.expire_time - issued).max(1) as u64,
            max_ttl: e.max_ttl,
            token_expiry: e.token_expiry,
        };
        let g = lease::renew(issued, now, increment, &limits);
        let mut n = e.clone();
        n.expire_time = g.expires_at;
        n.last_renewal_nanos = Some(now_nanos());
        let mut ops = vec![BarrierOp::Delete(due_key(e.due, &e.lease_id))];
        n.due = g.expires_at;
        ops.extend(index_ops(&n)?);
        ops.extend(crate::leases::lease_event(&core.router, "lease/renew", &n));
        guard.commit(ops).await?;
        if let Some(m) = core.router.by_uuid(&n.mount_uuid) {
            let ctx = core.leases.ctx(&m, None);
            if let Err(err) = m.backend.renew(&ctx, &info(&n)).await {
                tracing::warn!(lease = %n.lease_id, error = ?err.errors, "the engine's renewal hook failed");
            }
        }
        let mut resp = Response::empty();
        resp.lease_id = n.lease_id.clone();
        resp.lease_duration = g.ttl as i64;
        resp.renewable = true;
        resp.status = Some(200);
        if let Some(w) = g.warning {
            resp.warnings.push(w);
        }
        return Ok(resp);
    }
    if r == "revoke" || r.starts_with("revoke/") {
        let id = lease_id_field(req, r, "revoke")?;
        if id.is_empty() {
            return Err(ApiError::bad_request("lease_id must be specified"));
        }
        core.leases.revoke(&id, false).await?;
        return Ok(Response::empty());
    }
    let (prefix, force) = if let Some(p) = r.strip_prefix("revoke-prefix/") {
        (p, false)
    } else if let Some(p) = r.strip_prefix("revoke-force/") {
        (p, true)
    } else {
        return Err(ApiError::unsupported_path());
    };
    if prefix.trim_matches('/').is_empty() {
        return Err(ApiError::bad_request("prefix must be specified"));
    }
    let _ = caller;
    core.leases.revoke_prefix(prefix, force).await?;
    Ok(Response::empty())
}
