//! Physical backends: ordered byte maps with atomic batch commits.
//!
//! The contract every backend keeps (and the shared storage suite checks):
//! - `commit` applies all its ops atomically and durably enough to survive the process being
//!   killed once it returns (`SyncMode::Full` also survives power loss).
//! - `list(prefix)` returns the immediate children of `prefix` (which ends in `/` or is
//!   empty), sorted, with sub-folders suffixed by `/`, each once.
//! - `scan(prefix)` returns every full key under `prefix`, sorted.
//! - Conditional ops (`PutIf`, `DeleteIf`, `Check`) hold only if the key's current value is
//!   the expected one (`None`: absent) at commit time; if any fails, the whole batch fails with
//!   [`StoreError::Conflict`] and nothing is written. This is the compare-and-swap that keeps
//!   read-modify-write sequences correct across several nodes on one database.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::{Result, StoreError};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One write (or precondition) in an atomic batch.
#[derive(Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    /// Writes the value only if the current one is the expected value (`None`: absent).
    PutIf(String, Vec<u8>, Option<Vec<u8>>),
    /// Deletes only if the current value is the expected one (`None`: the key is absent).
    DeleteIf(String, Option<Vec<u8>>),
    /// Writes nothing; the batch applies only if the key's current value is the expected one.
    Check(String, Option<Vec<u8>>),
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put(k, _) | Op::Delete(k) | Op::PutIf(k, _, _) | Op::DeleteIf(k, _) => k,
            Op::Check(k, _) => k,
        }
    }
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Op::Put(..) => "Put",
            Op::Delete(..) => "Delete",
            Op::PutIf(..) => "PutIf",
            Op::DeleteIf(..) => "DeleteIf",
            Op::Check(..) => "Check",
        };
        write!(f, "{kind}({:?})", self.key())
    }
}

fn conflict(key: &str) -> StoreError {
    StoreError::Conflict(key.to_string())
}

/// A physical key/value store. Values are already encrypted by the barrier, except the few
/// bootstrap records (seal configuration) that must be readable while sealed.
pub trait Backend: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>>;
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<String>>;
    fn scan<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<String>>;
    fn commit(&self, ops: Vec<Op>) -> BoxFut<'_, ()>;
    /// Every row, sorted by key, as of one moment (one statement, one snapshot): backups
    /// and migration.
    fn snapshot(&self) -> BoxFut<'_, Vec<(String, Vec<u8>)>>;
    /// Short name for health and metrics (`sqlite`, `postgresql`).
    fn kind(&self) -> &'static str;
    /// Whether other processes write to the same store (then caches need the change feed and
    /// read-modify-write sequences must read fresh).
    fn shared(&self) -> bool {
        false
    }
    /// The cluster side of a shared backend (change feed, leader, nodes); `None` for a
    /// backend one process owns.
    fn cluster(&self) -> Option<crate::cluster::ClusterRef> {
        None
    }
}

/// How hard a SQLite commit pushes to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// WAL + `synchronous=NORMAL`: a returned commit survives a process crash (`kill -9`);
    /// the last commits may be lost on power failure.
    Normal,
    /// WAL + `synchronous=FULL`: fsync on every commit; survives power loss.
    Full,
}

struct SqliteInner {
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    path: Option<std::path::PathBuf>,
    commits: tokio::sync::mpsc::UnboundedSender<CommitJob>,
    /// The exclusive lock on `<path>.lock`, held while open: a SQLite store serves one node.
    _lock: Option<std::fs::File>,
}

struct CommitJob {
    ops: Vec<Op>,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// The embedded backend: one SQLite file in WAL mode, a writer thread that group-commits
/// concurrent batches into one transaction, and a small pool of reader connections.
/// Blocking SQLite reads run on tokio's blocking pool.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<SqliteInner>,
}

fn be<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS entries (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;";

impl SqliteBackend {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Self> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(be)?;
            }
        }
        let lock = lock_exclusively(path)?;
        let writer = Connection::open(path).map_err(be)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(be)?;
        let sync_val = match sync {
            SyncMode::Normal => "NORMAL",
            SyncMode::Full => "FULL",
        };
        writer
            .pragma_update(None, "synchronous", sync_val)
            .map_err(be)?;
        writer
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(be)?;
        writer.execute_batch(SCHEMA).map_err(be)?;
        // Checkpoints run on their own thread (below) so commits never pay for them; the
        // automatic checkpoint stays as a backstop if that thread falls behind.
        writer
            .pragma_update(None, "wal_autocheckpoint", 16384)
            .map_err(be)?;
        let checkpointer = Connection::open(path).map_err(be)?;
        checkpointer
            .busy_timeout(std::time::Duration::from_secs(1))
            .map_err(be)?;
        let mut readers = Vec::new();
        for _ in 0..4 {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(be)?;
            r.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(be)?;
            readers.push(r);
        }
        let me = Self::start(writer, readers, Some(path.to_path_buf()), Some(lock))?;
        let weak = Arc::downgrade(&me.inner);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Passive checkpoints never block the writer or readers.
                while weak.strong_count() > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    let _ =
                        checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(be)?;
        Ok(me)
    }

    fn start(
        writer: Connection,
        readers: Vec<Connection>,
        path: Option<std::path::PathBuf>,
        lock: Option<std::fs::File>,
    ) -> Result<Self> {
        let writer = Arc::new(Mutex::new(writer));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let w = Arc::clone(&writer);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(&w, rx))
            .map_err(be)?;
        Ok(Self {
            inner: Arc::new(SqliteInner {
                writer,
                readers: Mutex::new(readers),
                path,
                commits: tx,
                _lock: lock,
            }),
        })
    }

    /// A private in-memory database (dev mode, tests). Everything is lost at exit.
    pub fn memory() -> Result<Self> {
        let writer = Connection::open_in_memory().map_err(be)?;
        writer.execute_batch(SCHEMA).map_err(be)?;
        Self::start(writer, Vec::new(), None, None)
    }

    /// Path of the database file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    fn with_reader<T, F>(inner: &SqliteInner, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T>,
    {
        let conn = inner.readers.lock().map_err(be)?.pop();
        match conn {
            Some(c) => {
                let out = f(&c);
                if let Ok(mut pool) = inner.readers.lock() {
                    pool.push(c);
                }
                out
            }
            None => {
                let w = inner.writer.lock().map_err(be)?;
                f(&w)
            }
        }
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteInner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(be)?
    }
}

/// Takes the exclusive lock of a SQLite store (`<path>.lock`, released when the process
/// ends however it ends). A second node on the same file is refused: SQLite serves one.
fn lock_exclusively(path: &Path) -> Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .map_err(be)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Backend(format!(
            "the SQLite store {} is in use by another Airlock process; a SQLite store serves \
             one node (run several nodes on PostgreSQL)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(be(e)),
    }
}

/// Applies queued commits: everything waiting is written in one transaction (group commit).
/// If that transaction fails, each job is retried alone so one bad batch fails only itself.
fn writer_loop(
    writer: &Mutex<Connection>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<CommitJob>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < 512 {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let Ok(mut conn) = writer.lock() else {
            for j in jobs {
                let _ = j
                    .done
                    .send(Err(StoreError::Backend("writer lock poisoned".into())));
            }
            continue;
        };
        let all: Vec<&Op> = jobs.iter().flat_map(|j| j.ops.iter()).collect();
        if apply(&mut conn, &all).is_ok() {
            for j in jobs {
                let _ = j.done.send(Ok(()));
            }
            continue;
        }
        for j in jobs {
            let ops: Vec<&Op> = j.ops.iter().collect();
            let _ = j.done.send(apply(&mut conn, &ops));
        }
    }
}

fn apply(conn: &mut Connection, ops: &[&Op]) -> Result<()> {
    let tx = conn.transaction().map_err(be)?;
    for op in ops {
        let changed = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<usize> {
            tx.prepare_cached(sql).map_err(be)?.execute(p).map_err(be)
        };
        let current = |k: &str| -> Result<Option<Vec<u8>>> {
            tx.prepare_cached("SELECT v FROM entries WHERE k = ?1")
                .map_err(be)?
                .query_row(params![k.as_bytes()], |r| r.get::<_, Vec<u8>>(0))
                .optional()
                .map_err(be)
        };
        match op {
            Op::Put(k, v) => {
                changed(
                    "INSERT INTO entries (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                    params![k.as_bytes(), v],
                )?;
            }
            Op::Delete(k) => {
                changed("DELETE FROM entries WHERE k = ?1", params![k.as_bytes()])?;
            }
            Op::PutIf(k, v, Some(old)) => {
                let n = changed(
                    "UPDATE entries SET v = ?3 WHERE k = ?1 AND v = ?2",
                    params![k.as_bytes(), old, v],
                )?;
                if n != 1 {
                    return Err(conflict(k));
                }
            }
            Op::PutIf(k, v, None) => {
                let n = changed(
                    "INSERT INTO entries (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO NOTHING",
                    params![k.as_bytes(), v],
                )?;
                if n != 1 {
                    return Err(conflict(k));
                }
            }
            Op::DeleteIf(k, Some(old)) => {
                let n = changed(
                    "DELETE FROM entries WHERE k = ?1 AND v = ?2",
                    params![k.as_bytes(), old],
                )?;
                if n != 1 {
                    return Err(conflict(k));
                }
            }
            Op::DeleteIf(k, None) | Op::Check(k, None) => {
                if current(k)?.is_some() {
                    return Err(conflict(k));
                }
            }
            Op::Check(k, Some(old)) => {
                if current(k)?.as_ref() != Some(old) {
                    return Err(conflict(k));
                }
            }
        }
    }
    tx.commit().map_err(be)
}

fn range_upper(prefix: &str) -> Vec<u8> {
    let mut v = prefix.as_bytes().to_vec();
    v.push(0xFF);
    v
}

fn scan_keys(conn: &Connection, prefix: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT k FROM entries WHERE k >= ?1 AND k < ?2 ORDER BY k")
        .map_err(be)?;
    let rows = stmt
        .query_map(params![prefix.as_bytes(), range_upper(prefix)], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .map_err(be)?;
    let mut out = Vec::new();
    for row in rows {
        let k = row.map_err(be)?;
        out.push(String::from_utf8(k).map_err(be)?);
    }
    Ok(out)
}

/// Immediate children of `prefix` from a sorted list of full keys under it.
pub fn children(prefix: &str, keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Backend for SqliteBackend {
    fn get<'a>(&'a self, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        let key = key.as_bytes().to_vec();
        Box::pin(self.blocking(move |inner| {
            Self::with_reader(inner, |c| {
                let mut stmt = c
                    .prepare_cached("SELECT v FROM entries WHERE k = ?1")
                    .map_err(be)?;
                stmt.query_row(params![key], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
                    .map_err(be)
            })
        }))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<String>> {
        let p = prefix.to_string();
        Box::pin(self.blocking(move |inner| {
            let keys = Self::with_reader(inner, |c| scan_keys(c, &p))?;
            Ok(children(&p, &keys))
        }))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> BoxFut<'a, Vec<String>> {
        let p = prefix.to_string();
        Box::pin(self.blocking(move |inner| Self::with_reader(inner, |c| scan_keys(c, &p))))
    }

    fn commit(&self, ops: Vec<Op>) -> BoxFut<'_, ()> {
        Box::pin(async move {
            if ops.is_empty() {
                return Ok(());
            }
            let (done, rx) = tokio::sync::oneshot::channel();
            self.inner
                .commits
                .send(CommitJob { ops, done })
                .map_err(|_| StoreError::Backend("storage writer stopped".into()))?;
            rx.await
                .map_err(|_| StoreError::Backend("storage writer stopped".into()))?
        })
    }

    fn snapshot(&self) -> BoxFut<'_, Vec<(String, Vec<u8>)>> {
        Box::pin(self.blocking(|inner| {
            Self::with_reader(inner, |c| {
                let mut stmt = c
                    .prepare("SELECT k, v FROM entries ORDER BY k")
                    .map_err(be)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })
                    .map_err(be)?;
                let mut out = Vec::new();
                for row in rows {
                    let (k, v) = row.map_err(be)?;
                    out.push((String::from_utf8(k).map_err(be)?, v));
                }
                Ok(out)
            })
        }))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_folds_folders() {
        let keys: Vec<String> = ["a/b", "a/c/d", "a/c/e", "a/d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(children("a/", &keys), vec!["b", "c/", "d"]);
    }
}
