//! The node's session with PostgreSQL: the change feed (`LISTEN` on the table's channel),
//! the heartbeat in the nodes table, and leader election by advisory lock.
//!
//! One connection does all three, so they fail together: when it breaks (PostgreSQL
//! restarted, the backend terminated, three seconds without an answer), the node reports
//! [`Change::Lost`], stops leading at once, and reconnects with a short backoff; once it
//! listens again it reports [`Change::Resumed`]. The leader's lock is a session lock, so
//! PostgreSQL releases it when the leader's session ends (a killed process closes its
//! socket) and another node takes it at its next heartbeat, within about a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::{AsyncMessage, Client};

use super::{pe, PgConnector};
use crate::cluster::{Change, Cluster, NodeInfo, NodeStatus};
use crate::{Result, StoreError};
use std::future::Future;
use std::pin::Pin;

/// A notification payload is at most 8000 bytes; a batch whose keys do not fit is announced
/// as "everything changed".
const MAX_PAYLOAD: usize = 7900;
/// A heartbeat that takes longer than this counts the session as lost.
const BEAT_TIMEOUT: Duration = Duration::from_secs(3);
const BEAT_EVERY: Duration = Duration::from_millis(500);

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    /// The committing node.
    n: String,
    /// The keys written, or absent for "everything".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<Vec<String>>,
}

/// The payload announcing a commit of `keys` by `node`.
pub(crate) fn payload(node: &str, keys: &[&str]) -> String {
    let mut p = Payload {
        n: node.to_string(),
        k: Some(keys.iter().map(|k| k.to_string()).collect()),
    };
    let s = serde_json::to_string(&p).unwrap_or_default();
    if s.len() <= MAX_PAYLOAD && !s.is_empty() {
        return s;
    }
    p.k = None;
    serde_json::to_string(&p).unwrap_or_default()
}

/// What a received payload means for this node (`None`: its own commit, or garbage).
fn decode(me: &str, raw: &str) -> Option<Change> {
    let p: Payload = serde_json::from_str(raw).ok()?;
    if p.n == me {
        return None;
    }
    Some(match p.k {
        Some(k) => Change::Keys(k),
        None => Change::All,
    })
}

pub(crate) struct Session {
    pub(crate) node_id: String,
    connector: PgConnector,
    channel: String,
    nodes_table: String,
    lock_key: i64,
    leader: AtomicBool,
    started: AtomicBool,
}

impl Session {
    pub(crate) fn new(node_id: String, connector: PgConnector, table: &str) -> Self {
        Self {
            node_id,
            connector,
            channel: table.to_string(),
            nodes_table: format!("{table}_nodes"),
            lock_key: lock_key(table),
            leader: AtomicBool::new(false),
            started: AtomicBool::new(false),
        }
    }

    pub(crate) fn nodes_table(&self) -> &str {
        &self.nodes_table
    }

    async fn run(self: Arc<Self>, me: NodeInfo, tx: UnboundedSender<Change>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let began = std::time::Instant::now();
            let res = self.session(&me, &tx).await;
            if began.elapsed() > Duration::from_secs(5) {
                backoff = Duration::from_millis(100);
            }
            self.leader.store(false, Ordering::SeqCst);
            if tx.send(Change::Lost).is_err() {
                return;
            }
            match res {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "storage change feed lost; reconnecting"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn session(&self, me: &NodeInfo, tx: &UnboundedSender<Change>) -> Result<()> {
        let (client, mut conn) = self.connector.connect_raw().await?;
        let (note_tx, mut notes) = tokio::sync::mpsc::unbounded_channel::<String>();
        // Drives the connection and hands notifications over; ends with it.
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if note_tx.send(n.payload().to_string()).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "storage change feed connection failed");
                        return;
                    }
                    None => return,
                }
            }
        });
        let _abort = AbortOnDrop(driver);
        // Keepalives make a vanished node's session (and its lock) end within seconds.
        tokio::time::timeout(
            BEAT_TIMEOUT,
            client.batch_execute(&format!(
                "SET application_name = 'airlock-feed-{}'; \
                 SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; \
                 SET tcp_keepalives_count = 2; LISTEN \"{}\"",
                self.node_id, self.channel
            )),
        )
        .await
        .map_err(|_| StoreError::Backend("postgresql: LISTEN timed out".into()))?
        .map_err(pe)?;
        self.beat(&client, me).await?;
        if tx.send(Change::Resumed).is_err() {
            return Ok(());
        }
        let mut tick = tokio::time::interval(BEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = notes.recv() => {
                    let Some(raw) = n else {
                        return Err(StoreError::Backend("postgresql: feed connection closed".into()));
                    };
                    if let Some(c) = decode(&self.node_id, &raw) {
                        if tx.send(c).is_err() {
                            return Ok(());
                        }
                    }
                }
                _ = tick.tick() => {
                    if tx.is_closed() {
                        return Ok(());
                    }
                    self.beat(&client, me).await?;
                }
            }
        }
    }

    /// Records this node's heartbeat and takes the lead if nobody holds it.
    async fn beat(&self, client: &Client, me: &NodeInfo) -> Result<()> {
        let work = async {
            if !self.leader.load(Ordering::SeqCst) {
                let row = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&self.lock_key])
                    .await
                    .map_err(pe)?;
                if row.get::<_, bool>(0) {
                    self.leader.store(true, Ordering::SeqCst);
                    tracing::info!(node = %self.node_id, "this node now leads the background duties");
                }
            }
            let active = self.leader.load(Ordering::SeqCst);
            client
                .execute(
                    &format!(
                        "INSERT INTO {t} (node_id, hostname, api_addr, cluster_addr, version, active, active_since, last_seen) \
                         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN now() END, now()) \
                         ON CONFLICT (node_id) DO UPDATE SET last_seen = now(), active = $6, \
                         active_since = CASE WHEN NOT $6 THEN NULL ELSE COALESCE({t}.active_since, now()) END",
                        t = self.nodes_table
                    ),
                    &[&self.node_id, &me.hostname, &me.api_addr, &me.cluster_addr, &me.version, &active],
                )
                .await
                .map_err(pe)?;
            Ok::<_, StoreError>(())
        };
        tokio::time::timeout(BEAT_TIMEOUT, work)
            .await
            .map_err(|_| StoreError::Backend("postgresql: heartbeat timed out".into()))?
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The advisory lock id of a table's leader (FNV-1a of its name: stable across versions).
fn lock_key(table: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "airlock-leader:".bytes().chain(table.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// The [`Cluster`] of a PostgreSQL backend.
pub struct PgCluster {
    pub(crate) session: Arc<Session>,
    pub(crate) reader: Arc<super::pool::Pool>,
}

impl Cluster for PgCluster {
    fn node_id(&self) -> &str {
        &self.session.node_id
    }

    fn start(&self, me: NodeInfo) -> Option<tokio::sync::mpsc::UnboundedReceiver<Change>> {
        if self.session.started.swap(true, Ordering::SeqCst) {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(Arc::clone(&self.session).run(me, tx));
        Some(rx)
    }

    fn is_leader(&self) -> bool {
        self.session.leader.load(Ordering::SeqCst)
    }

    fn nodes(&self) -> Pin<Box<dyn Future<Output = Result<Vec<NodeStatus>>> + Send + '_>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT node_id, hostname, api_addr, cluster_addr, version, active, \
                 (extract(epoch from last_seen) * 1000)::bigint, \
                 (extract(epoch from active_since) * 1000)::bigint \
                 FROM {} WHERE last_seen > now() - interval '10 seconds' \
                 ORDER BY active DESC, node_id",
                self.session.nodes_table
            );
            let rows = self.reader.query(&sql, &[]).await?;
            Ok(rows
                .iter()
                .map(|r| NodeStatus {
                    id: r.get(0),
                    info: NodeInfo {
                        hostname: r.get(1),
                        api_addr: r.get(2),
                        cluster_addr: r.get(3),
                        version: r.get(4),
                    },
                    active: r.get(5),
                    last_seen_ms: r.get(6),
                    active_since_ms: r.get(7),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_keys_or_everything() {
        let p = payload("a", &["k/1", "k/2"]);
        assert_eq!(decode("a", &p), None, "a node skips its own commits");
        assert_eq!(
            decode("b", &p),
            Some(Change::Keys(vec!["k/1".into(), "k/2".into()]))
        );
        let long = "x".repeat(5000);
        let p = payload("a", &[long.as_str(), long.as_str()]);
        assert!(p.len() <= MAX_PAYLOAD);
        assert_eq!(decode("b", &p), Some(Change::All));
        assert_eq!(decode("b", "not json"), None);
        assert_ne!(lock_key("t1"), lock_key("t2"));
    }
}
