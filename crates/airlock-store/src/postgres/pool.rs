//! A small pool of PostgreSQL connections, opened on first use and again after one broke,
//! each with its prepared statements. A caller takes the first idle connection (so a
//! lightly loaded node holds one or two), or waits for one when all are busy.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use super::{pe, PgConnector};
use crate::{Result, StoreError};

/// One open connection and the statements prepared on it.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    stmts: HashMap<String, Statement>,
}

impl PgConn {
    /// `sql` prepared on this connection (once).
    pub(crate) async fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(pe)?;
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

pub(crate) struct Pool {
    connector: PgConnector,
    slots: Vec<Mutex<Option<PgConn>>>,
    next: AtomicUsize,
}

/// A connection taken from the pool (connected).
pub(crate) struct Taken<'a>(MutexGuard<'a, Option<PgConn>>);

impl Taken<'_> {
    pub(crate) fn conn(&mut self) -> Result<&mut PgConn> {
        self.0.as_mut().ok_or_else(no_connection)
    }
}

fn no_connection() -> StoreError {
    StoreError::Backend("postgresql: no connection".into())
}

impl Pool {
    pub(crate) fn new(connector: PgConnector, size: usize) -> Self {
        Self {
            connector,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// An idle connection, or the next busy one once it is free; (re)connected if needed.
    pub(crate) async fn take(&self) -> Result<Taken<'_>> {
        let mut guard = None;
        for s in &self.slots {
            if let Ok(g) = s.try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut g = match guard {
            Some(g) => g,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[i].lock().await
            }
        };
        if g.as_ref().map(|c| c.client.is_closed()).unwrap_or(true) {
            *g = Some(PgConn {
                client: self.connector.connect().await?,
                stmts: HashMap::new(),
            });
        }
        Ok(Taken(g))
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let mut t = self.take().await?;
        let c = t.conn()?;
        let s = c.prepared(sql).await?;
        c.client.query(&s, params).await.map_err(pe)
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let mut t = self.take().await?;
        let c = t.conn()?;
        let s = c.prepared(sql).await?;
        c.client.query_opt(&s, params).await.map_err(pe)
    }
}

/// Runs futures concurrently (on one connection: pipelined) and returns their outputs in
/// order.
pub(crate) async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
