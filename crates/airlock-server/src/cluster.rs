//! This node among others on one shared store (PostgreSQL): the change feed applied to every
//! cache, the lead of the background duties, and the status endpoints that report them.
//!
//! Every node serves reads and writes. What each node caches — barrier ciphertexts and
//! known-absent keys, parsed policies and compiled ACLs, the mount tables with their engines,
//! the keyring, an engine's own state — is dropped when the feed names a key it came from,
//! within milliseconds of the commit on another node. While the feed is down the node
//! answers 503 to everything but the status endpoints (a load balancer's health check sees
//! it too), and when it is back every cache is dropped before the node serves again: it
//! never serves what it cannot know is current. Writes do not depend on the feed at all:
//! read-modify-write sequences are conditional on the version they read (see
//! `airlock_logical::Locked`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use airlock_store::{Change, NodeInfo};
use serde_json::{json, Value};

use crate::core::Core;
use crate::error::{ApiError, ApiResult};
use crate::router::{Route, Which};

impl Core {
    /// Starts the node's session on a shared store and applies its feed until the process
    /// ends. Without a shared store, nothing to do.
    pub fn start_cluster(self: &Arc<Self>, me: NodeInfo) {
        let Some(h) = &self.ha.handle else {
            return;
        };
        let Some(mut feed) = h.start(me) else {
            return;
        };
        let core = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(change) = feed.recv().await {
                core.apply_change(change).await;
            }
        });
    }

    async fn apply_change(&self, change: Change) {
        match change {
            Change::Keys(keys) => {
                for k in &keys {
                    self.barrier.invalidate(k);
                    if k.starts_with(airlock_store::EVENTS_PENDING) {
                        // Another node committed an event: the sequencer (if here) runs.
                        self.barrier.events_written().notify_one();
                    }
                    self.events.saw_key(k);
                }
                for k in &keys {
                    self.invalidate_key(k).await;
                }
            }
            Change::All => self.invalidate_everything().await,
            Change::Lost => {
                self.ha.coherent.store(false, Ordering::SeqCst);
                self.barrier.invalidate_all();
                tracing::warn!("storage change feed lost: refusing requests until resubscribed");
            }
            Change::Resumed => {
                self.invalidate_everything().await;
                self.ha.coherent.store(true, Ordering::SeqCst);
                tracing::info!("storage change feed subscribed");
            }
        }
    }

    /// What a key another node wrote means for this node's caches beyond the barrier's.
    async fn invalidate_key(&self, key: &str) {
        if key.starts_with("sys/policy/") {
            self.policies.clear();
        } else if key == crate::mounts::MOUNTS_KEY {
            self.reload_or_warn(Which::Secrets).await;
        } else if key == crate::core::AUTH_TABLE_KEY {
            self.reload_or_warn(Which::Auth).await;
        } else if key == airlock_store::seal::KEYRING_KEY {
            if let Err(e) = self.reload_keyring().await {
                tracing::warn!(error = ?e.errors, "reloading the rotated keyring failed");
            }
        } else if let Some(rest) = key.strip_prefix("logical/") {
            if let Some((uuid, rel)) = rest.split_once('/') {
                if let Some(m) = self.router.by_uuid(uuid) {
                    let ctx = self.leases.ctx(&m, None);
                    m.backend.invalidate(&ctx, rel).await;
                }
            }
        }
    }

    async fn invalidate_everything(&self) {
        self.barrier.invalidate_all();
        self.policies.clear();
        if self.is_sealed() {
            return;
        }
        match self.barrier.reload_keyring().await {
            Ok(()) => {}
            // A backup of a cluster with other keys was restored: this node's root key
            // opens nothing any more. It seals (and unseals again with a key-file seal).
            Err(
                airlock_store::StoreError::Corrupt(_) | airlock_store::StoreError::InvalidKey(_),
            ) => {
                tracing::warn!("the stored keyring no longer opens with this node's root key (a restore?): sealing");
                {
                    let _g = self.seal_lock.lock().await;
                    self.seal_now();
                }
                if let Err(e) = self.try_auto_unseal().await {
                    tracing::warn!(error = ?e.errors, "unsealing again failed");
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "reloading the keyring failed"),
        }
        self.reload_or_warn(Which::Secrets).await;
        self.reload_or_warn(Which::Auth).await;
        for m in self.router.all() {
            let ctx = self.leases.ctx(&m, None);
            m.backend.invalidate(&ctx, "").await;
        }
    }

    /// The mount serving `path`. On a shared store a miss re-reads the stored table first
    /// (bypassing the cache): a mount enabled on another node a moment ago, before this
    /// node's feed said so, is found rather than answered 404. Concurrent misses share one
    /// read: a miss waits for a read that started after it, so a flood of unknown paths
    /// costs one storage read at a time.
    pub async fn route(&self, path: &str) -> Option<Route> {
        if let Some(r) = self.router.route(path) {
            return Some(r);
        }
        if self.ha.handle.is_none() || self.is_sealed() {
            return None;
        }
        let missed = std::time::Instant::now();
        {
            let mut last = self.ha.miss_reload.lock().await;
            if last.is_none_or(|started| started < missed) {
                let started = std::time::Instant::now();
                let which = if path.starts_with("auth/") {
                    Which::Auth
                } else {
                    Which::Secrets
                };
                self.barrier.invalidate(crate::core::table_key(which));
                if let Err(e) = self.reload_table(which).await {
                    tracing::warn!(error = ?e.errors, "re-reading a mount table after a miss failed");
                }
                *last = Some(started);
            }
        }
        self.router.route(path)
    }

    /// Installs the stored keyring (another node rotated it).
    pub async fn reload_keyring(&self) -> ApiResult<()> {
        Ok(self.barrier.reload_keyring().await?)
    }

    async fn reload_or_warn(&self, which: Which) {
        if self.is_sealed() {
            return;
        }
        if let Err(e) = self.reload_table(which).await {
            tracing::warn!(error = ?e.errors, "reloading a mount table another node changed failed");
        }
    }

    /// `sys/leader`: Vault's fields; with a shared store the leader is the node that runs
    /// the background duties (every node serves reads and writes).
    pub async fn leader_status(&self) -> ApiResult<Value> {
        let Some(h) = &self.ha.handle else {
            return Ok(json!({ "ha_enabled": false }));
        };
        let nodes = h.nodes().await?;
        let leader = nodes.iter().find(|n| n.active);
        Ok(json!({
            "ha_enabled": true,
            "is_self": h.is_leader(),
            "active_time": leader
                .and_then(|n| n.active_since_ms)
                .map(|ms| airlock_logical::util::rfc3339_nanos(ms as i128 * 1_000_000))
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "leader_address": leader.map(|n| n.info.api_addr.clone()).unwrap_or_default(),
            "leader_cluster_address": leader.map(|n| n.info.cluster_addr.clone()).unwrap_or_default(),
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
        }))
    }

    /// `sys/ha-status`: the nodes that sent a heartbeat in the last 10 s.
    pub async fn ha_status(&self) -> ApiResult<Value> {
        let Some(h) = &self.ha.handle else {
            return Err(ApiError::bad_request(
                "high availability is not enabled: the storage backend is not shared",
            ));
        };
        let nodes = h.nodes().await?;
        let list: Vec<Value> = nodes
            .iter()
            .map(|n| {
                json!({
                    "hostname": n.info.hostname,
                    "api_address": n.info.api_addr,
                    "cluster_address": n.info.cluster_addr,
                    "active_node": n.active,
                    "last_echo": airlock_logical::util::rfc3339_nanos(n.last_seen_ms as i128 * 1_000_000),
                    "version": n.info.version,
                    "node_id": n.id,
                })
            })
            .collect();
        Ok(json!({ "nodes": list }))
    }
}
