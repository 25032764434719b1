//! The lease manager: every dynamic secret gets a lease owned by the token that created it.
//!
//! Storage (behind the barrier):
//! - `lease/id/<sha256(lease id)>`: the [`LeaseEntry`] (engine data included, encrypted).
//! - `lease/due/<20-digit unix secs>/<hash>`: expiry index, scanned in order by the
//!   background task (so expiry survives restarts: a lease that ended while Airlock was down
//!   is revoked on the first pass after start-up).
//! - `lease/token/<token hash>/<hash>`: leases of a token (revoked with the token).
//! - `lease/path/<lease id>`: for `LIST sys/leases/lookup/<prefix>` and `revoke-prefix`.
//!
//! A failed revocation keeps the lease and moves its due time out with exponential backoff
//! (2^n s, at most 5 min), counted in metrics and logged. TTL arithmetic is the pure
//! `airlock_core::lease`.

use std::sync::Arc;

use airlock_core::lease::{self, Limits};
use airlock_store::barrier::BarrierOp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::core::{now_nanos, now_unix, rfc3339_nanos, Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};

#[derive(Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    pub lease_id: String,
    /// The request path that created it (`database/creds/app`).
    pub path: String,
    pub mount_uuid: String,
    pub issue_nanos: i128,
    /// Unix seconds.
    pub expire_time: i64,
    pub last_renewal_nanos: Option<i128>,
    pub renewable: bool,
    pub max_ttl: u64,
    pub token_hash: Option<String>,
    pub token_expiry: Option<i64>,
    /// Engine data needed to revoke (e.g. the database user name); encrypted at rest.
    pub internal: Value,
    #[serde(default)]
    pub attempts: u32,
    /// Next due time when a revocation failed (else `expire_time`).
    #[serde(default)]
    pub due: i64,
}

impl std::fmt::Debug for LeaseEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseEntry")
            .field("lease_id", &self.lease_id)
            .field("expire_time", &self.expire_time)
            .finish_non_exhaustive()
    }
}

fn hash(lease_id: &str) -> String {
    hex::encode(Sha256::digest(lease_id.as_bytes()))
}

fn id_key(lease_id: &str) -> String {
    format!("lease/id/{}", hash(lease_id))
}

fn due_key(t: i64, lease_id: &str) -> String {
    format!("lease/due/{:020}/{}", t.max(0), hash(lease_id))
}

fn valid_lease_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('/')
        && id
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

async fn load(core: &Core, lease_id: &str) -> ApiResult<Option<LeaseEntry>> {
    if !valid_lease_id(lease_id) {
        return Ok(None);
    }
    Ok(core
        .barrier
        .get_json::<LeaseEntry>(&id_key(lease_id))
        .await?
        .filter(|e| e.lease_id == lease_id))
}

fn index_ops(e: &LeaseEntry) -> ApiResult<Vec<BarrierOp>> {
    let h = hash(&e.lease_id);
    let mut ops = vec![
        BarrierOp::Put(
            id_key(&e.lease_id),
            serde_json::to_vec(e).map_err(|x| ApiError::internal(&x))?,
        ),
        BarrierOp::Put(due_key(e.due, &e.lease_id), Vec::new()),
        BarrierOp::Put(format!("lease/path/{}", e.lease_id), h.clone().into_bytes()),
    ];
    if let Some(t) = &e.token_hash {
        ops.push(BarrierOp::Put(format!("lease/token/{t}/{h}"), Vec::new()));
    }
    Ok(ops)
}

fn delete_ops(e: &LeaseEntry) -> Vec<BarrierOp> {
    let h = hash(&e.lease_id);
    let mut ops = vec![
        BarrierOp::Delete(id_key(&e.lease_id)),
        BarrierOp::Delete(due_key(e.due, &e.lease_id)),
        BarrierOp::Delete(format!("lease/path/{}", e.lease_id)),
    ];
    if let Some(t) = &e.token_hash {
        ops.push(BarrierOp::Delete(format!("lease/token/{t}/{h}")));
    }
    ops
}

/// What an engine hands the lease manager when it issues a leased secret.
pub struct NewLease {
    /// `database/creds/app` (the lease id is this plus a random suffix).
    pub path: String,
    pub mount_uuid: String,
    pub default_ttl: u64,
    pub max_ttl: u64,
    pub internal: Value,
}

/// Registers a lease; returns the entry and the grant (TTL, warning).
pub async fn create(
    core: &Core,
    caller: &Caller,
    lease_id: String,
    n: NewLease,
    now: i64,
) -> ApiResult<(LeaseEntry, lease::Grant)> {
    let token_expiry = caller.entry.as_ref().and_then(|e| e.expire_time);
    let limits = Limits {
        default_ttl: n.default_ttl.max(1),
        max_ttl: n.max_ttl.max(1),
        token_expiry,
    };
    let grant = lease::issue(now, 0, &limits);
    let e = LeaseEntry {
        lease_id,
        path: n.path,
        mount_uuid: n.mount_uuid,
        issue_nanos: now_nanos(),
        expire_time: grant.expires_at,
        last_renewal_nanos: None,
        renewable: true,
        max_ttl: n.max_ttl.max(1),
        token_hash: caller.entry.as_ref().map(|e| e.id_hash.clone()),
        token_expiry,
        internal: n.internal,
        attempts: 0,
        due: grant.expires_at,
    };
    core.barrier.commit(index_ops(&e)?).await?;
    core.metrics
        .leases_created
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok((e, grant))
}

/// Calls the engine that issued the lease to revoke the secret behind it.
async fn revoke_secret(core: &Core, e: &LeaseEntry) -> ApiResult<()> {
    let mount = core
        .mounts_snapshot()
        .entries
        .into_iter()
        .find(|m| m.uuid == e.mount_uuid);
    match mount {
        Some(m) if m.kind == "database" => crate::database::revoke(core, &m, &e.internal).await,
        // The mount is gone (disabled): nothing left to call.
        _ => Ok(()),
    }
}

/// Revokes one lease: engine first, then the records. With `force`, records go even if the
/// engine fails.
pub async fn revoke(core: &Core, lease_id: &str, force: bool) -> ApiResult<bool> {
    let key = id_key(lease_id);
    let _g = core.locks.lock(&key).await;
    let Some(e) = load(core, lease_id).await? else {
        return Ok(false);
    };
    if let Err(err) = revoke_secret(core, &e).await {
        if !force {
            core.metrics
                .lease_revoke_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(err);
        }
        tracing::warn!(lease = %e.lease_id, "revoke-force: the engine failed; records removed anyway");
    }
    core.barrier.commit(delete_ops(&e)).await?;
    core.metrics
        .leases_revoked
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(true)
}

/// Every lease id under `prefix` (recursive).
async fn ids_under(core: &Core, prefix: &str) -> ApiResult<Vec<String>> {
    let p = prefix.trim_matches('/');
    let mut out = Vec::new();
    let mut stack = vec![if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }];
    while let Some(dir) = stack.pop() {
        for k in core.barrier.list(&format!("lease/path/{dir}")).await? {
            if k.ends_with('/') {
                stack.push(format!("{dir}{k}"));
            } else {
                out.push(format!("{dir}{k}"));
            }
        }
        if out.len() > 1_000_000 {
            break;
        }
    }
    // An exact lease id given as the prefix.
    if !p.is_empty() && load(core, p).await?.is_some() {
        out.push(p.to_string());
    }
    Ok(out)
}

/// Revokes every lease owned by a token (called when the token is revoked or expires).
pub async fn revoke_for_token(core: &Core, token_hash: &str) -> ApiResult<()> {
    for h in core
        .barrier
        .list(&format!("lease/token/{token_hash}/"))
        .await?
    {
        let Some(e) = core
            .barrier
            .get_json::<LeaseEntry>(&format!("lease/id/{h}"))
            .await?
        else {
            core.barrier
                .delete(&format!("lease/token/{token_hash}/{h}"))
                .await?;
            continue;
        };
        if let Err(err) = revoke(core, &e.lease_id, false).await {
            // The lease stays and the expiry task retries it; the token still goes.
            tracing::warn!(lease = %e.lease_id, error = ?err.errors, "revoking a token's lease failed; will retry");
            reschedule_now(core, &e).await?;
        }
    }
    Ok(())
}

async fn reschedule_now(core: &Core, e: &LeaseEntry) -> ApiResult<()> {
    let mut n = e.clone();
    let now = now_unix();
    if n.due <= now {
        return Ok(());
    }
    let mut ops = vec![BarrierOp::Delete(due_key(n.due, &n.lease_id))];
    n.due = now;
    ops.extend(index_ops(&n)?);
    core.barrier.commit(ops).await?;
    Ok(())
}

/// Revokes every lease due at or before `now`; failed ones are retried with backoff.
/// Returns (revoked, failed).
pub async fn expire_due(core: &Arc<Core>, now: i64) -> ApiResult<(usize, usize)> {
    let (mut ok, mut failed) = (0, 0);
    for bucket in core.barrier.list("lease/due/").await? {
        let t: i64 = bucket.trim_end_matches('/').parse().unwrap_or(i64::MAX);
        if t > now {
            break;
        }
        let hashes = core.barrier.list(&format!("lease/due/{bucket}")).await?;
        // Revocations of one bucket run concurrently (bounded), so a mass expiry finishes fast.
        let mut set = tokio::task::JoinSet::new();
        for h in hashes {
            let core = Arc::clone(core);
            let bucket = bucket.clone();
            set.spawn(async move { expire_one(&core, &bucket, &h, now).await });
            while set.len() >= 16 {
                if let Some(r) = set.join_next().await {
                    tally(r, &mut ok, &mut failed);
                }
            }
        }
        while let Some(r) = set.join_next().await {
            tally(r, &mut ok, &mut failed);
        }
    }
    Ok((ok, failed))
}

fn tally(r: Result<ApiResult<bool>, tokio::task::JoinError>, ok: &mut usize, failed: &mut usize) {
    match r {
        Ok(Ok(true)) => *ok += 1,
        Ok(Ok(false)) => {}
        _ => *failed += 1,
    }
}

async fn expire_one(core: &Arc<Core>, bucket: &str, h: &str, now: i64) -> ApiResult<bool> {
    let Some(e) = core
        .barrier
        .get_json::<LeaseEntry>(&format!("lease/id/{h}"))
        .await?
    else {
        core.barrier
            .delete(&format!("lease/due/{bucket}{h}"))
            .await?;
        return Ok(false);
    };
    match revoke(core, &e.lease_id, false).await {
        Ok(_) => Ok(true),
        Err(err) => {
            let key = id_key(&e.lease_id);
            let _g = core.locks.lock(&key).await;
            let mut n = e.clone();
            n.attempts = n.attempts.saturating_add(1);
            let backoff = lease::revoke_backoff(n.attempts.saturating_sub(1)) as i64;
            let mut ops = vec![BarrierOp::Delete(due_key(e.due, &e.lease_id))];
            n.due = now + backoff;
            ops.extend(index_ops(&n)?);
            core.barrier.commit(ops).await?;
            tracing::warn!(lease = %e.lease_id, attempt = n.attempts, retry_in_s = backoff, error = ?err.errors, "lease revocation failed; will retry");
            Err(err)
        }
    }
}

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

/// `sys/leases/*` and the legacy `sys/renew`, `sys/revoke`, `sys/revoke-prefix`.
pub async fn handle(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    rest: &str,
) -> ApiResult<Response> {
    let write = matches!(req.op, Op::Create | Op::Update);
    let now = now_unix();
    let r = rest.strip_prefix("leases/").unwrap_or(rest);
    if req.op == Op::List {
        let prefix = r
            .strip_prefix("lookup")
            .ok_or_else(ApiError::unsupported_operation)?
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
    if !write {
        return Err(ApiError::unsupported_operation());
    }
    if r == "lookup" {
        let id = req.str_field("lease_id")?.unwrap_or_default();
        let e = load(core, &id)
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
        let _g = core.locks.lock(&key).await;
        let e = load(core, &id)
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
        core.barrier.commit(ops).await?;
        crate::database::renew_hook(core, &n).await;
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
        revoke(core, &id, false).await?;
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
    let ids = ids_under(core, prefix).await?;
    let mut first_err = None;
    for id in ids {
        if let Err(e) = revoke(core, &id, force).await {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(Response::empty()),
    }
}
