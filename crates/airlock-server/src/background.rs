//! Background work while unsealed: purging expired tokens and wrapped responses, sweeping
//! login rate buckets, revoking leases that reached their end (with retries), and each
//! engine's periodic work (static role rotation, ...). With several nodes on one store only
//! the leader does the cluster-wide duties (everything but this node's own rate buckets).

use std::sync::Arc;

use crate::core::{now_unix, Core};

impl Core {
    /// Background work: purge expired tokens. Runs until the returned handle is aborted.
    pub fn spawn_housekeeping(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                core.limiter.sweep(&core.config.auth);
                if core.is_sealed() || !core.ha.is_leader() || !core.ha.is_coherent() {
                    continue;
                }
                match core.tokens.purge_expired(now_unix()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "purged expired tokens"),
                    Err(e) => tracing::warn!(error = ?e.errors, "token purge failed"),
                }
                if let Err(e) = crate::sys::wrapping::purge(&core, now_unix()).await {
                    tracing::warn!(error = ?e.errors, "wrapped response purge failed");
                }
            }
        })
    }

    /// Background work: revoke leases that reached their end (and retry failed revocations).
    /// Runs every second; the first pass after start-up catches leases that ended while
    /// Airlock was stopped.
    pub fn spawn_lease_expiry(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if core.is_sealed() || !core.ha.is_leader() || !core.ha.is_coherent() {
                    continue;
                }
                match core.leases.expire_due(now_unix()).await {
                    Ok((0, 0)) => {}
                    Ok((n, f)) => tracing::info!(revoked = n, failed = f, "expired leases"),
                    Err(e) => tracing::warn!(error = ?e.errors, "lease expiry pass failed"),
                }
                for m in core.router.all() {
                    let ctx = core.leases.ctx(&m, None);
                    if let Err(e) = m.backend.periodic(&ctx).await {
                        tracing::warn!(mount = %m.entry.path, error = ?e.errors, "periodic work failed");
                    }
                }
            }
        })
    }
}
