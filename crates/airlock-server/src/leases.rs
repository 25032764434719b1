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
use serde_json::Value;
use sha2::{Digest, Sha256};

use airlock_logical::util::{now_nanos, now_unix};
use airlock_logical::{CallerInfo, Ctx, KeyLocks, LeaseGrant, LeaseInfo, NewLease, Storage, View};
use airlock_store::Barrier;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::hmac::HmacKey;
use crate::metrics::Metrics;
use crate::router::{Mounted, Router};
use crate::sysview::SysView;

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
    /// Unix seconds when a node claimed the lease to revoke it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoking_since: Option<i64>,
}

/// How long a revocation claim holds off other nodes.
const REVOKE_CLAIM_SECS: i64 = 60;

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

pub(crate) fn id_key(lease_id: &str) -> String {
    format!("lease/id/{}", hash(lease_id))
}

pub(crate) fn due_key(t: i64, lease_id: &str) -> String {
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

pub(crate) fn index_ops(e: &LeaseEntry) -> ApiResult<Vec<BarrierOp>> {
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

/// The event for a lease's creation, renewal or revocation (`lease/create`, `lease/renew`,
/// `lease/revoke`), about the path that issued it: who may read that path sees it. It names
/// the lease and its expiry, never the secret.
pub(crate) fn lease_event(router: &Router, kind: &str, e: &LeaseEntry) -> Option<BarrierOp> {
    let m = router.by_uuid(&e.mount_uuid)?;
    let path = e.lease_id.rsplit_once('/').map_or("", |(p, _)| p);
    Some(airlock_logical::system::event_op(
        kind,
        path,
        path,
        &m.entry,
        &[
            ("lease_id", e.lease_id.clone()),
            (
                "expire_time",
                airlock_logical::util::rfc3339_nanos(e.expire_time as i128 * 1_000_000_000),
            ),
            ("renewable", e.renewable.to_string()),
        ],
        now_nanos(),
    ))
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

pub(crate) fn info(e: &LeaseEntry) -> LeaseInfo<'_> {
    LeaseInfo {
        lease_id: &e.lease_id,
        internal: &e.internal,
        expire_time: e.expire_time,
    }
}

fn tally(r: Result<ApiResult<bool>, tokio::task::JoinError>, ok: &mut usize, failed: &mut usize) {
    match r {
        Ok(Ok(true)) => *ok += 1,
        Ok(Ok(false)) => {}
        _ => *failed += 1,
    }
}

/// The lease manager. It owns its handles and reaches engines only through the router.
pub struct LeaseManager {
    /// The system view every engine call gets (it refers back to this manager).
    sys: Arc<SysView>,
    barrier: Arc<Barrier>,
    /// The whole barrier as a view: read-modify-write sequences lock through it.
    root: View,
    locks: Arc<KeyLocks>,
    metrics: Arc<Metrics>,
    router: Arc<Router>,
}

impl LeaseManager {
    pub fn new(
        barrier: Arc<Barrier>,
        locks: Arc<KeyLocks>,
        metrics: Arc<Metrics>,
        router: Arc<Router>,
        config: Arc<Config>,
        hmac: Arc<HmacKey>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| LeaseManager {
            sys: Arc::new(SysView {
                leases: me.clone(),
                barrier: Arc::clone(&barrier),
                config: Arc::clone(&config),
                hmac: Arc::clone(&hmac),
            }),
            root: View::new(barrier.clone(), "", Arc::clone(&locks)),
            locks,
            barrier,
            metrics,
            router,
        })
    }

    /// The context of one call into the engine mounted at `entry`: its storage view and the
    /// system view (clock, TTL limits, password policies, HMAC, this lease manager).
    pub fn ctx(&self, m: &Mounted, caller: Option<CallerInfo>) -> Ctx {
        let storage: Arc<dyn Storage> = self.barrier.clone();
        Ctx {
            storage: View::new(storage, Arc::clone(&m.prefix), Arc::clone(&self.locks)),
            sys: self.sys.clone(),
            mount: Arc::clone(&m.entry),
            caller,
        }
    }

    pub(crate) async fn load(&self, lease_id: &str) -> ApiResult<Option<LeaseEntry>> {
        if !valid_lease_id(lease_id) {
            return Ok(None);
        }
        Ok(self
            .barrier
            .get_json::<LeaseEntry>(&id_key(lease_id))
            .await?
            .filter(|e| e.lease_id == lease_id))
    }

    /// Registers a lease for the engine at `mount_uuid`, owned by the caller's token (a lease
    /// never outlives its token). Written durably before the engine creates the secret.
    pub async fn create(
        &self,
        mount_uuid: &str,
        caller: Option<&CallerInfo>,
        n: NewLease,
    ) -> ApiResult<LeaseGrant> {
        let now = now_unix();
        let token_expiry = caller.and_then(|c| c.token_expiry);
        let limits = Limits {
            default_ttl: n.default_ttl.max(1),
            max_ttl: n.max_ttl.max(1),
            token_expiry,
        };
        let grant = lease::issue(now, 0, &limits);
        let e = LeaseEntry {
            lease_id: n.lease_id,
            path: n.path,
            mount_uuid: mount_uuid.to_string(),
            issue_nanos: now_nanos(),
            expire_time: grant.expires_at,
            last_renewal_nanos: None,
            renewable: true,
            max_ttl: n.max_ttl.max(1),
            token_hash: caller.and_then(|c| c.token_hash.clone()),
            token_expiry,
            internal: n.internal,
            attempts: 0,
            due: grant.expires_at,
            revoking_since: None,
        };
        let mut ops = index_ops(&e)?;
        ops.extend(lease_event(&self.router, "lease/create", &e));
        self.barrier.commit(ops).await?;
        self.metrics
            .leases_created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(LeaseGrant {
            lease_id: e.lease_id,
            ttl: grant.ttl,
            expires_at: grant.expires_at,
            warning: grant.warning,
        })
    }

    /// Calls the engine that issued the lease to revoke the secret behind it.
    async fn revoke_secret(&self, e: &LeaseEntry) -> ApiResult<()> {
        // A mount's leases are revoked before the mount goes; a lease whose mount is gone has
        // nothing left to call.
        let Some(m) = self.router.by_uuid(&e.mount_uuid) else {
            return Ok(());
        };
        let ctx = self.ctx(&m, None);
        m.backend.revoke(&ctx, &info(e)).await
    }

    /// Revokes every lease below `prefix` (a mount path when its mount is disabled): all of
    /// them are tried; the first failure is returned.
    pub async fn revoke_prefix(&self, prefix: &str, force: bool) -> ApiResult<usize> {
        let ids = self.ids_under(prefix).await?;
        let mut first_err = None;
        let mut n = 0;
        for id in ids {
            match self.revoke(&id, force).await {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Revokes one lease: engine first, then the records. With `force`, records go even if the
    /// engine fails.
    pub async fn revoke(&self, lease_id: &str, force: bool) -> ApiResult<bool> {
        let key = id_key(lease_id);
        let g = self.root.lock(&key).await?;
        let Some(mut e) = self.load(lease_id).await? else {
            return Ok(false);
        };
        // Claimed first, with a conditional write: when two nodes (expiry on one, an API
        // call on another) revoke the same lease, one wins and the engine revokes once. A
        // claim older than `REVOKE_CLAIM_SECS` belonged to a node that died mid-way.
        let now = now_unix();
        if e.revoking_since
            .is_some_and(|t| now - t < REVOKE_CLAIM_SECS)
        {
            return Ok(true);
        }
        e.revoking_since = Some(now);
        g.put_json(&key, &e).await?;
        if let Err(err) = self.revoke_secret(&e).await {
            e.revoking_since = None;
            let _ = g.put_json(&key, &e).await;
            if !force {
                self.metrics
                    .lease_revoke_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(err);
            }
            tracing::warn!(lease = %e.lease_id, "revoke-force: the engine failed; records removed anyway");
        }
        let mut ops = delete_ops(&e);
        ops.extend(lease_event(&self.router, "lease/revoke", &e));
        g.commit(ops).await?;
        self.metrics
            .leases_revoked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// Every lease id under `prefix` (recursive).
    async fn ids_under(&self, prefix: &str) -> ApiResult<Vec<String>> {
        let p = prefix.trim_matches('/');
        let mut out = Vec::new();
        let mut stack = vec![if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }];
        while let Some(dir) = stack.pop() {
            for k in self.barrier.list(&format!("lease/path/{dir}")).await? {
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
        if !p.is_empty() && self.load(p).await?.is_some() {
            out.push(p.to_string());
        }
        Ok(out)
    }

    /// Revokes every lease owned by a token (called when the token is revoked or expires).
    pub async fn revoke_for_token(&self, token_hash: &str) -> ApiResult<()> {
        for h in self
            .barrier
            .list(&format!("lease/token/{token_hash}/"))
            .await?
        {
            let Some(e) = self
                .barrier
                .get_json::<LeaseEntry>(&format!("lease/id/{h}"))
                .await?
            else {
                self.barrier
                    .delete(&format!("lease/token/{token_hash}/{h}"))
                    .await?;
                continue;
            };
            if let Err(err) = self.revoke(&e.lease_id, false).await {
                // The lease stays and the expiry task retries it; the token still goes.
                tracing::warn!(lease = %e.lease_id, error = ?err.errors, "revoking a token's lease failed; will retry");
                self.reschedule_now(&e).await?;
            }
        }
        Ok(())
    }

    async fn reschedule_now(&self, e: &LeaseEntry) -> ApiResult<()> {
        let mut n = e.clone();
        let now = now_unix();
        if n.due <= now {
            return Ok(());
        }
        let mut ops = vec![BarrierOp::Delete(due_key(n.due, &n.lease_id))];
        n.due = now;
        ops.extend(index_ops(&n)?);
        self.barrier.commit(ops).await?;
        Ok(())
    }

    /// Revokes every lease due at or before `now`; failed ones are retried with backoff.
    /// Returns (revoked, failed).
    pub async fn expire_due(self: &Arc<Self>, now: i64) -> ApiResult<(usize, usize)> {
        let (mut ok, mut failed) = (0, 0);
        for bucket in self.barrier.list("lease/due/").await? {
            let t: i64 = bucket.trim_end_matches('/').parse().unwrap_or(i64::MAX);
            if t > now {
                break;
            }
            let hashes = self.barrier.list(&format!("lease/due/{bucket}")).await?;
            // Revocations of one bucket run concurrently (bounded), so a mass expiry finishes fast.
            let mut set = tokio::task::JoinSet::new();
            for h in hashes {
                let me = Arc::clone(self);
                let bucket = bucket.clone();
                set.spawn(async move { me.expire_one(&bucket, &h, now).await });
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

    async fn expire_one(&self, bucket: &str, h: &str, now: i64) -> ApiResult<bool> {
        let Some(e) = self
            .barrier
            .get_json::<LeaseEntry>(&format!("lease/id/{h}"))
            .await?
        else {
            self.barrier
                .delete(&format!("lease/due/{bucket}{h}"))
                .await?;
            return Ok(false);
        };
        match self.revoke(&e.lease_id, false).await {
            Ok(_) => Ok(true),
            Err(err) => {
                let key = id_key(&e.lease_id);
                let g = self.root.lock(&key).await?;
                let Some(mut n) = self.load(&e.lease_id).await? else {
                    return Err(err);
                };
                n.attempts = n.attempts.saturating_add(1);
                let backoff = lease::revoke_backoff(n.attempts.saturating_sub(1)) as i64;
                let mut ops = vec![BarrierOp::Delete(due_key(n.due, &n.lease_id))];
                n.due = now + backoff;
                ops.extend(index_ops(&n)?);
                g.commit(ops).await?;
                tracing::warn!(lease = %e.lease_id, attempt = n.attempts, retry_in_s = backoff, error = ?err.errors, "lease revocation failed; will retry");
                Err(err)
            }
        }
    }
}
