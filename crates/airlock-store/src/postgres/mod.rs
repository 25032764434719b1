//! PostgreSQL backend: the same ordered byte map as SQLite, in one table, shared by any
//! number of nodes.
//!
//! Reads go through one connection; commits run in a transaction on a dedicated writer
//! connection, and each commit notifies the other nodes of the keys it wrote (`pg_notify` on
//! the table's channel, delivered at commit, in commit order). A connection that breaks
//! (server restart, network) is re-established on the next call; until then calls fail with
//! a backend error and the server keeps serving. Values arrive already encrypted by the
//! barrier. `feed.rs` is the node's session: change feed, heartbeat, leader lock.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::backend::{children, Backend, BoxFut, Op};
use crate::cluster::ClusterRef;
use crate::{Result, StoreError};

pub mod feed;
pub mod tls;

pub struct PostgresBackend {
    connector: PgConnector,
    table: String,
    reader: Arc<Conn>,
    writer: Mutex<Option<Client>>,
    cluster: Arc<feed::PgCluster>,
}

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

/// One connection, re-opened on the next call after it broke.
pub(crate) struct Conn {
    connector: PgConnector,
    slot: Mutex<Option<Client>>,
}

impl Conn {
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>> {
        let mut g = self.slot.lock().await;
        if g.as_ref().map(Client::is_closed).unwrap_or(true) {
            *g = Some(self.connector.connect().await?);
        }
        Ok(g)
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let g = self.client().await?;
        let c = g.as_ref().ok_or_else(no_connection)?;
        c.query(sql, params).await.map_err(pe)
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let g = self.client().await?;
        let c = g.as_ref().ok_or_else(no_connection)?;
        c.query_opt(sql, params).await.map_err(pe)
    }
}

fn no_connection() -> StoreError {
    StoreError::Backend("postgresql: no connection".into())
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
        let reader = Arc::new(Conn {
            connector: connector.clone(),
            slot: Mutex::new(None),
        });
        Ok(Self {
            cluster: Arc::new(feed::PgCluster {
                session,
                reader: Arc::clone(&reader),
                lock: std::sync::Mutex::new(()),
            }),
            connector,
            table: table.to_string(),
            reader,
            writer: Mutex::new(Some(c)),
        })
    }

    /// Another backend on the same table with connections of its own (a second node, in
    /// tests).
    pub async fn reconnect(&self) -> Result<Self> {
        Self::connect(&self.connector.url, &self.table).await
    }

    /// Drops the tables (tests).
    pub async fn drop_table(&self) -> Result<()> {
        let mut g = self.writer.lock().await;
        let c = self.ensure(&mut g).await?;
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}",
            self.table,
            self.cluster.session.nodes_table()
        ))
        .await
        .map_err(pe)
    }

    async fn ensure<'a>(&self, slot: &'a mut Option<Client>) -> Result<&'a mut Client> {
        if slot.as_ref().map(Client::is_closed).unwrap_or(true) {
            *slot = Some(self.connector.connect().await?);
        }
        slot.as_mut()
            .ok_or_else(|| StoreError::Backend("postgresql: no connection".into()))
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
            let put = format!(
                "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
            );
            let del = format!("DELETE FROM {t} WHERE k = $1");
            let mut g = self.writer.lock().await;
            let c = self.ensure(&mut g).await?;
            let tx = c.transaction().await.map_err(pe)?;
            for op in &ops {
                let ok = match op {
                    Op::Put(k, v) => tx
                        .execute(put.as_str(), &[&k.as_bytes(), v])
                        .await
                        .map(|_| true),
                    Op::Delete(k) => tx
                        .execute(del.as_str(), &[&k.as_bytes()])
                        .await
                        .map(|_| true),
                    // The row-level conditions below are atomic under READ COMMITTED: an
                    // UPDATE or DELETE waits for a concurrent writer of the row and re-checks
                    // its condition on the new version; an INSERT waits on the unique index.
                    Op::PutIf(k, v, Some(old)) => tx
                        .execute(
                            format!("UPDATE {t} SET v = $3 WHERE k = $1 AND v = $2").as_str(),
                            &[&k.as_bytes(), old, v],
                        )
                        .await
                        .map(|n| n == 1),
                    Op::PutIf(k, v, None) => tx
                        .execute(
                            format!(
                                "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING"
                            )
                            .as_str(),
                            &[&k.as_bytes(), v],
                        )
                        .await
                        .map(|n| n == 1),
                    Op::DeleteIf(k, Some(old)) => tx
                        .execute(
                            format!("DELETE FROM {t} WHERE k = $1 AND v = $2").as_str(),
                            &[&k.as_bytes(), old],
                        )
                        .await
                        .map(|n| n == 1),
                    // Expected absent: deleting finds nothing; any row found fails the batch
                    // (and the rollback restores it).
                    Op::DeleteIf(k, None) => tx
                        .execute(del.as_str(), &[&k.as_bytes()])
                        .await
                        .map(|n| n == 0),
                    Op::Check(k, Some(old)) => tx
                        .query_opt(
                            format!("SELECT 1 FROM {t} WHERE k = $1 AND v = $2 FOR SHARE").as_str(),
                            &[&k.as_bytes(), old],
                        )
                        .await
                        .map(|r| r.is_some()),
                    Op::Check(k, None) => tx
                        .query_opt(
                            format!("SELECT 1 FROM {t} WHERE k = $1").as_str(),
                            &[&k.as_bytes()],
                        )
                        .await
                        .map(|r| r.is_none()),
                };
                match ok {
                    Ok(true) => {}
                    // Dropping the transaction rolls it back.
                    Ok(false) => return Err(StoreError::Conflict(op.key().to_string())),
                    Err(e) if is_conflict(&e) => {
                        return Err(StoreError::Conflict(op.key().to_string()))
                    }
                    Err(e) => return Err(pe(e)),
                }
            }
            // Delivered to the other nodes when (and only if) the transaction commits.
            let keys: Vec<&str> = ops
                .iter()
                .filter(|o| !matches!(o, Op::Check(..)))
                .map(Op::key)
                .collect();
            if !keys.is_empty() {
                let note = feed::payload(&self.cluster.session.node_id, &keys);
                tx.execute("SELECT pg_notify($1, $2)", &[&self.table, &note])
                    .await
                    .map_err(pe)?;
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
