//! What a shared backend tells the nodes that use it: which keys other nodes changed (the
//! change feed), which node leads the background duties, and which nodes are alive.
//!
//! A backend only one process uses (SQLite) has none of this: its node is alone and leads.
//! The PostgreSQL backend implements it with one session per node that `LISTEN`s for the
//! notifications every commit sends, holds the leader's advisory lock, and records a
//! heartbeat in the nodes table.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One event of the change feed, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Another node committed writes to these keys.
    Keys(Vec<String>),
    /// Another node committed more than a notification can name (a restore, a huge batch):
    /// forget everything cached.
    All,
    /// The feed was lost: changes may be missed from now on, so nothing cached can be
    /// trusted until [`Change::Resumed`].
    Lost,
    /// The feed is (again) subscribed. Everything committed before this event is visible to
    /// reads made after it, and everything committed after it will be announced: forget
    /// every cache, then trust again.
    Resumed,
}

/// How a node describes itself to the others (`sys/ha-status`, `sys/leader`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub hostname: String,
    pub api_addr: String,
    pub cluster_addr: String,
    pub version: String,
}

/// A node as the nodes table records it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub id: String,
    pub info: NodeInfo,
    pub active: bool,
    /// Unix milliseconds of its last heartbeat, and of the moment it took the lead.
    pub last_seen_ms: i64,
    pub active_since_ms: Option<i64>,
}

/// The cluster side of a shared backend.
pub trait Cluster: Send + Sync {
    /// This node's id (random per process start).
    fn node_id(&self) -> &str;
    /// Starts the node's session (feed, heartbeat, leader election) and returns the feed.
    /// Called once; later calls return `None`.
    fn start(&self, me: NodeInfo) -> Option<tokio::sync::mpsc::UnboundedReceiver<Change>>;
    /// Whether this node holds the lead now (background duties run only there).
    fn is_leader(&self) -> bool;
    /// The nodes that sent a heartbeat recently, the leader first.
    fn nodes(&self) -> Pin<Box<dyn Future<Output = crate::Result<Vec<NodeStatus>>> + Send + '_>>;
}

/// A cluster handle, shared.
pub type ClusterRef = Arc<dyn Cluster>;
