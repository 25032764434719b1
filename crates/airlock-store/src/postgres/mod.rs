//! PostgreSQL backend: the same ordered byte map as SQLite, in one table, shared by any
//! number of nodes.
//!
//! Reads and commits each use a small pool of connections with prepared statements; a
//! commit is one transaction whose statements are pipelined (sorted by key, so concurrent
//! batches lock rows in one order), and it notifies the other nodes of the keys it wrote
//! (`pg_notify` on the table's channel, delivered at commit, in commit order). A connection that breaks
//! (server restart, network) is re-established on the next call; until then calls fail with
//! a backend error and the server keeps serving. Values arrive already encrypted by the
//! barrier. `feed.rs` is the node's session: change feed, heartbeat, leader lock.

use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::backend::{children, Backend, BoxFut, Op};
use crate::cluster::ClusterRef;
use crate::{Result, StoreError};

pub mod feed;
mod pool;
pub mod tls;

pub struct PostgresBackend {
    connector: PgConnector,
    table: String,
    reader: Arc<pool::Pool>,
    writer: pool::Pool,
    cluster: Arc<feed::PgCluster>,
}

/// Connections per node for reads, and for commits (opened as load needs them).
const READERS: usize = 6;
const WRITERS: usize = 6;

pub(crate) fn pe(e: tokio_postgres::Error) -> StoreError {
    // The driver's messages name SQL state and server text, never bound parameters.
    StoreError::Backend(format!("postgresql: {e}"))
}

/// Deadlocks and serialisation failures: the batch can be run again.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

fn valid_table(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 57
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !t.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// How this backend opens connections (TLS as the connection string says).
#[derive(Clone)]
pub(crate) struct PgConnector {
    url: String,
    target: tls::PgTarget,
}

impl PgConnector {
    pub(crate) async fn connect_raw(&self) -> Result<(Client, tls::PgConnection)> {
        self.target
            .connect()
            .await
            .map_err(|e| StoreError::Backend(format!("postgresql: {e}")))
    }

    /// A client whose connection runs on its own task.
    pub(crate) async fn connect(&self) -> Result<Client> {
        let (client, conn) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "postgresql connection closed");
            }
        });
        Ok(client)
    }
}

impl PostgresBackend {
    /// Connects and creates the tables if needed. `table` is a plain lower-case identifier
    /// (its nodes table is `<table>_nodes`).
    pub async fn connect(url: &str, table: &str) -> Result<Self> {
        if !valid_table(table) {
            return Err(StoreError::Backend(format!(
                "postgresql: invalid table name {table:?}"
            )));
        }
        let connector = PgConnector {
            url: url.to_string(),
            target: tls::parse(url).map_err(|e| StoreError::Backend(format!("postgresql: {e}")))?,
        };
        let c = connector.connect().await?;
        let node_id = crate::random_id();
        let session = Arc::new(feed::Session::new(node_id, connector.clone(), table));
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (k BYTEA PRIMARY KEY, v BYTEA NOT NULL); \
             CREATE TABLE IF NOT EXISTS {n} (node_id TEXT PRIMARY KEY, hostname TEXT NOT NULL, \
               api_addr TEXT NOT NULL, cluster_addr TEXT NOT NULL, version TEXT NOT NULL, \
               active BOOLEAN NOT NULL, active_since TIMESTAMPTZ, last_seen TIMESTAMPTZ NOT NULL)",
            n = session.nodes_table()
        ))
        .await
        .map_err(pe)?;
        let reader = Arc::new(pool::Pool::new(connector.clone(), READERS));
        let writer = pool::Pool::new(connector.clone(), WRITERS);
        drop(c);
        Ok(Self {
            cluster: Arc::new(feed::PgCluster {
                session,
                reader: Arc::clone(&reader),
            }),
            connector,
            table: table.to_string(),
            reader,
            writer,
        })
    }

    /// Another backend on the same table with connections of its own (a second node, in
    /// tests).
    pub async fn reconnect(&self) -> Result<Self> {
        Self::connect(&self.connector.url, &self.table).await
    }

    /// Drops the tables (tests).
    pub async fn drop_table(&self) -> Result<()> {
        let mut t = self.writer.take().await?;
        let c = &t.conn()?.client;
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}",
            self.table,
            self.cluster.session.nodes_table()
        ))
        .await
        .map_err(pe)
    }

    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>> {
        let mut upper = prefix.as_bytes().to_vec();
        upper.push(0xFF);
        let sql = format!(
            "SELECT k FROM {} WHERE k >= $1 AND k < $2 ORDER BY k",
            self.table
        );
        let rows = self
            .reader
            .query(sql.as_str(), &[&prefix.as_bytes(), &upper])
            .await?;
        rows.iter()
            .map(|r| {
                String::from_utf8(r.get::<_, Vec<u8>>(0))
                    .map_err(|e| StoreError::Backend(e.to_string()))
            })
            .collect()
    }
}

impl Backend for PostgresBackend {
    fn get<'a>(&'a self, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let sql = format!("SELECT v FROM {} WHERE k = $1", self.table);
            let row = self
                .reader
                .query_opt(sql.as_str(), &[&key.as_bytes()])
                .await?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<String>> {
        Box::pin(async move { Ok(children(prefix, &self.keys_under(prefix).await?)) })
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<String>> {
        Box::pin(self.keys_under(prefix))
    }

    fn commit(&self, ops: Vec<Op>) -> BoxFut<'_, ()> {
        Box::pin(async move {
            if ops.is_empty() {
                return Ok(());
            }
            let t = &self.table;
            let sql = [
                format!("INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"),
                format!("DELETE FROM {t} WHERE k = $1"),
                // The row-level conditions below are atomic under READ COMMITTED: an UPDATE
                // or DELETE waits for a concurrent writer of the row and re-checks its
                // condition on the new version; an INSERT waits on the unique index.
                format!("UPDATE {t} SET v = $3 WHERE k = $1 AND v = $2"),
                format!("INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING"),
                format!("DELETE FROM {t} WHERE k = $1 AND v = $2"),
                format!("SELECT 1 FROM {t} WHERE k = $1 AND v = $2 FOR SHARE"),
                format!("SELECT 1 FROM {t} WHERE k = $1"),
                "SELECT pg_notify($1, $2)".to_string(),
            ];
            // One order for every batch (stable: ops on one key keep theirs), so two
            // batches never wait on each other's rows in a cycle.
            let mut ops = ops;
            ops.sort_by(|a, b| a.key().cmp(b.key()));
            let keys: Vec<&str> = ops
                .iter()
                .filter(|o| !matches!(o, Op::Check(..)))
                .map(Op::key)
                .collect();
            let note =
                (!keys.is_empty()).then(|| feed::payload(&self.cluster.session.node_id, &keys));
            let mut taken = self.writer.take().await?;
            let conn = taken.conn()?;
            let mut st = Vec::with_capacity(sql.len());
            for q in &sql {
                st.push(conn.prepared(q).await?);
            }
            let tx = conn.client.transaction().await.map_err(pe)?;
            // (statement, params, rows that must have been affected: None = any).
            let mut calls: Vec<(
                &tokio_postgres::Statement,
                Vec<&(dyn ToSql + Sync)>,
                Option<u64>,
            )> = Vec::new();
            let kb: Vec<&[u8]> = ops.iter().map(|o| o.key().as_bytes()).collect();
            for (op, k) in ops.iter().zip(kb.iter()) {
                calls.push(match op {
                    Op::Put(_, v) => (&st[0], vec![k, v], None),
                    Op::Delete(_) => (&st[1], vec![k], None),
                    Op::PutIf(_, v, Some(old)) => (&st[2], vec![k, old, v], Some(1)),
                    Op::PutIf(_, v, None) => (&st[3], vec![k, v], Some(1)),
                    Op::DeleteIf(_, Some(old)) => (&st[4], vec![k, old], Some(1)),
                    // Expected absent: deleting finds nothing; a row found fails the batch
                    // (and the rollback restores it).
                    Op::DeleteIf(_, None) => (&st[1], vec![k], Some(0)),
                    Op::Check(_, Some(old)) => (&st[5], vec![k, old], Some(1)),
                    Op::Check(_, None) => (&st[6], vec![k], Some(0)),
                });
            }
            // Delivered to the other nodes when (and only if) the transaction commits.
            if let Some(n) = &note {
                calls.push((&st[7], vec![&self.table, n], None));
            }
            // Pipelined, a few hundred statements at a time (a restore can be a huge batch).
            let mut results = Vec::with_capacity(calls.len());
            for chunk in calls.chunks(256) {
                results.extend(
                    pool::join_all(
                        chunk
                            .iter()
                            .map(|(s, p, _)| tx.execute(*s, p.as_slice()))
                            .collect(),
                    )
                    .await,
                );
            }
            for (i, r) in results.into_iter().enumerate() {
                let key = || ops.get(i).map(|o| o.key().to_string()).unwrap_or_default();
                match (r, calls[i].2) {
                    (Ok(n), Some(want)) if n != want => return Err(StoreError::Conflict(key())),
                    (Ok(_), _) => {}
                    (Err(e), _) if is_conflict(&e) => return Err(StoreError::Conflict(key())),
                    (Err(e), _) => return Err(pe(e)),
                }
            }
            tx.commit().await.map_err(|e| {
                if is_conflict(&e) {
                    StoreError::Conflict(String::new())
                } else {
                    pe(e)
                }
            })
        })
    }

    fn snapshot(&self) -> BoxFut<'_, Vec<(String, Vec<u8>)>> {
        Box::pin(async move {
            let sql = format!("SELECT k, v FROM {} ORDER BY k", self.table);
            let rows = self.reader.query(sql.as_str(), &[]).await?;
            rows.iter()
                .map(|r| {
                    String::from_utf8(r.get::<_, Vec<u8>>(0))
                        .map(|k| (k, r.get::<_, Vec<u8>>(1)))
                        .map_err(|e| StoreError::Backend(e.to_string()))
                })
                .collect()
        })
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn shared(&self) -> bool {
        true
    }

    fn cluster(&self) -> Option<ClusterRef> {
        Some(Arc::clone(&self.cluster) as ClusterRef)
    }
}
