//! PostgreSQL backend: the same ordered byte map as SQLite, in one table.
//!
//! Reads share one pipelined connection; commits run in a transaction on a dedicated writer
//! connection. A connection that breaks (server restart, network) is re-established on the
//! next call; until then calls fail with a backend error and the server keeps serving.
//! Values arrive already encrypted by the barrier. TLS to PostgreSQL is not supported yet:
//! use a local socket or a trusted network.

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use crate::backend::{children, Backend, BoxFut, Op};
use crate::{Result, StoreError};

pub struct PostgresBackend {
    url: String,
    table: String,
    reader: Mutex<Option<Client>>,
    writer: Mutex<Option<Client>>,
}

fn pe(e: tokio_postgres::Error) -> StoreError {
    // The driver's messages name SQL state and server text, never bound parameters.
    StoreError::Backend(format!("postgresql: {e}"))
}

fn valid_table(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 63
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !t.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

impl PostgresBackend {
    /// Connects and creates the table if needed. `table` is a plain lower-case identifier.
    pub async fn connect(url: &str, table: &str) -> Result<Self> {
        if !valid_table(table) {
            return Err(StoreError::Backend(format!(
                "postgresql: invalid table name {table:?}"
            )));
        }
        let me = Self {
            url: url.to_string(),
            table: table.to_string(),
            reader: Mutex::new(None),
            writer: Mutex::new(None),
        };
        let c = me.open().await?;
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (k BYTEA PRIMARY KEY, v BYTEA NOT NULL)",
            me.table
        ))
        .await
        .map_err(pe)?;
        *me.writer.lock().await = Some(c);
        Ok(me)
    }

    async fn open(&self) -> Result<Client> {
        let (client, conn) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio_postgres::connect(&self.url, NoTls),
        )
        .await
        .map_err(|_| StoreError::Backend("postgresql: connect timed out".into()))?
        .map_err(pe)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "postgresql connection closed");
            }
        });
        Ok(client)
    }

    /// Drops the table (tests).
    pub async fn drop_table(&self) -> Result<()> {
        let mut g = self.writer.lock().await;
        let c = self.ensure(&mut g).await?;
        c.batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await
            .map_err(pe)
    }

    async fn ensure<'a>(&self, slot: &'a mut Option<Client>) -> Result<&'a mut Client> {
        if slot.as_ref().map(Client::is_closed).unwrap_or(true) {
            *slot = Some(self.open().await?);
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
        let mut g = self.reader.lock().await;
        let c = self.ensure(&mut g).await?;
        let rows = c
            .query(sql.as_str(), &[&prefix.as_bytes(), &upper])
            .await
            .map_err(pe)?;
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
            let mut g = self.reader.lock().await;
            let c = self.ensure(&mut g).await?;
            let row = c
                .query_opt(sql.as_str(), &[&key.as_bytes()])
                .await
                .map_err(pe)?;
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
            let put = format!(
                "INSERT INTO {} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                self.table
            );
            let del = format!("DELETE FROM {} WHERE k = $1", self.table);
            let mut g = self.writer.lock().await;
            let c = self.ensure(&mut g).await?;
            let tx = c.transaction().await.map_err(pe)?;
            for op in &ops {
                match op {
                    Op::Put(k, v) => tx.execute(put.as_str(), &[&k.as_bytes(), v]).await,
                    Op::Delete(k) => tx.execute(del.as_str(), &[&k.as_bytes()]).await,
                }
                .map_err(pe)?;
            }
            tx.commit().await.map_err(pe)
        })
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }
}
