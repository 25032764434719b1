//! This node's place among others on a shared store: whether it may trust its caches (its
//! change feed is up) and whether it leads the background duties. `cluster.rs` keeps it
//! up to date; without a shared store the node is alone, coherent and the leader.

use std::sync::atomic::{AtomicBool, Ordering};

use airlock_store::ClusterRef;

use crate::error::ApiError;

/// The cluster side of the core.
pub struct Ha {
    pub(crate) handle: Option<ClusterRef>,
    /// Whether this node's caches can be trusted (always, without a shared store).
    pub(crate) coherent: AtomicBool,
    /// When the last re-read of a mount table after a route miss started (see
    /// `Core::route`): concurrent misses share one read.
    pub(crate) miss_reload: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Ha {
    pub fn new(handle: Option<ClusterRef>) -> Self {
        Self {
            coherent: AtomicBool::new(handle.is_none()),
            miss_reload: tokio::sync::Mutex::new(None),
            handle,
        }
    }

    pub fn enabled(&self) -> bool {
        self.handle.is_some()
    }

    pub fn is_coherent(&self) -> bool {
        self.coherent.load(Ordering::SeqCst)
    }

    /// Whether this node runs the cluster's background duties (a lone node always does).
    pub fn is_leader(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_leader())
    }

    /// Waits (at most `limit`) until the caches can be trusted.
    pub async fn wait_coherent(&self, limit: std::time::Duration) {
        let t0 = std::time::Instant::now();
        while !self.is_coherent() && t0.elapsed() < limit {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub fn node_id(&self) -> Option<&str> {
        self.handle.as_ref().map(|h| h.node_id())
    }
}

/// 503 while the feed is down.
pub fn incoherent() -> ApiError {
    ApiError::new(
        503,
        "this node lost its storage change feed and is resubscribing; retry on another node",
    )
}
