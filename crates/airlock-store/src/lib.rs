//! Encrypted persistence for Airlock.
//!
//! Layers, bottom to top:
//! - [`backend`]: a physical key/value store (`Backend` trait). Keys are `/`-separated paths,
//!   values opaque bytes. [`SqliteBackend`] is the embedded default; the trait is async and
//!   speaks only in atomic batches; [`PostgresBackend`] is the networked one.
//! - [`barrier`]: the AEAD barrier. Every value is encrypted with the active data-key term
//!   before it reaches a backend, with the storage key as associated data, so a ciphertext
//!   cannot be moved to another row. While sealed, every call fails with [`StoreError::Sealed`].
//! - [`seal`]: initialisation, Shamir/key-file unsealing and key rotation. The root key that
//!   wraps the keyring is itself stored only encrypted under the unseal key.

pub mod backend;
pub mod barrier;
pub mod keyring;
pub mod postgres;
pub mod seal;

pub use backend::{Backend, Op, SqliteBackend, SyncMode};
pub use barrier::{Barrier, BarrierOp};
pub use keyring::Keyring;
pub use postgres::PostgresBackend;

/// Errors from the storage stack. Messages never contain stored values.
#[derive(Debug)]
pub enum StoreError {
    /// The barrier has no keyring: the server is sealed.
    Sealed,
    /// The physical backend failed (I/O, SQL, lock timeout). The string is the backend's
    /// message, which names no stored value.
    Backend(String),
    /// A stored blob failed authentication or is malformed: tampering, a row moved between
    /// keys, or a wrong key.
    Corrupt(String),
    /// An unseal key or share was wrong.
    InvalidKey(String),
    /// `sys/init` on an initialised store.
    AlreadyInitialized,
    /// Unseal or rotate on a store that was never initialised.
    NotInitialized,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Sealed => write!(f, "Vault is sealed"),
            StoreError::Backend(m) => write!(f, "storage backend error: {m}"),
            StoreError::Corrupt(m) => write!(f, "stored data failed authentication: {m}"),
            StoreError::InvalidKey(m) => write!(f, "invalid key: {m}"),
            StoreError::AlreadyInitialized => write!(f, "Vault is already initialized"),
            StoreError::NotInitialized => write!(f, "Vault is not initialized"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The storage contract, run against every backend (SQLite in memory and on disk; a
/// PostgreSQL backend joins this list when it lands).
#[cfg(test)]
mod contract {
    use std::sync::Arc;

    use crate::{
        Backend, Barrier, BarrierOp, Keyring, Op, PostgresBackend, SqliteBackend, StoreError,
        SyncMode,
    };

    /// A fresh table on the local PostgreSQL (`AIRLOCK_TEST_POSTGRES_URL`, default
    /// `host=127.0.0.1 user=postgres`). Required when `CI` is set; skipped visibly otherwise.
    async fn postgres() -> Option<Arc<PostgresBackend>> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let url = std::env::var("AIRLOCK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=postgres".into());
        let table = format!(
            "airlock_contract_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        match PostgresBackend::connect(&url, &table).await {
            Ok(b) => Some(Arc::new(b)),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL is required in CI: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: PostgreSQL backend not tested: {e}");
                None
            }
        }
    }

    async fn backends() -> (
        Vec<(&'static str, Arc<dyn Backend>)>,
        Option<Arc<PostgresBackend>>,
    ) {
        let pg = postgres().await;
        let mut v = sqlite_backends();
        if let Some(p) = &pg {
            v.push(("postgresql", Arc::clone(p) as Arc<dyn Backend>));
        }
        (v, pg)
    }

    async fn cleanup(pg: Option<Arc<PostgresBackend>>) {
        if let Some(p) = pg {
            p.drop_table().await.unwrap();
        }
    }

    fn sqlite_backends() -> Vec<(&'static str, Arc<dyn Backend>)> {
        let dir = std::env::temp_dir().join(format!(
            "airlock-store-contract-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        vec![
            ("sqlite-memory", Arc::new(SqliteBackend::memory().unwrap())),
            (
                "sqlite-file",
                Arc::new(SqliteBackend::open(&dir.join("c.db"), SyncMode::Normal).unwrap()),
            ),
        ]
    }

    #[test]
    fn zz_remove_temp_files() {
        // Contract tests share one process; stale dirs from earlier runs are removed here.
        if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let mine = format!("airlock-store-contract-{}-", std::process::id());
                if name.starts_with("airlock-store-contract-") && !name.starts_with(&mine) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    #[tokio::test]
    async fn batches_lists_and_scans() {
        let (all, pg) = backends().await;
        for (name, b) in all {
            b.commit(vec![
                Op::Put("a/b".into(), b"1".to_vec()),
                Op::Put("a/c/d".into(), b"2".to_vec()),
                Op::Put("a/c/e".into(), b"3".to_vec()),
                Op::Put("ab".into(), b"4".to_vec()),
            ])
            .await
            .unwrap();
            assert_eq!(
                b.get("a/b").await.unwrap().as_deref(),
                Some(&b"1"[..]),
                "{name}"
            );
            assert_eq!(b.list("a/").await.unwrap(), vec!["b", "c/"], "{name}");
            assert_eq!(
                b.scan("a/c/").await.unwrap(),
                vec!["a/c/d", "a/c/e"],
                "{name}"
            );
            b.commit(vec![
                Op::Delete("a/b".into()),
                Op::Put("a/c/d".into(), b"9".to_vec()),
            ])
            .await
            .unwrap();
            assert_eq!(b.get("a/b").await.unwrap(), None, "{name}");
            assert_eq!(
                b.get("a/c/d").await.unwrap().as_deref(),
                Some(&b"9"[..]),
                "{name}"
            );
            assert!(b.list("zzz/").await.unwrap().is_empty(), "{name}");
        }
        cleanup(pg).await;
    }

    #[tokio::test]
    async fn concurrent_commits_all_land() {
        let (all, pg) = backends().await;
        for (name, b) in all {
            let mut tasks = Vec::new();
            for i in 0..200 {
                let b = Arc::clone(&b);
                tasks.push(tokio::spawn(async move {
                    b.commit(vec![Op::Put(format!("k/{i:03}"), vec![i as u8])])
                        .await
                }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            assert_eq!(b.scan("k/").await.unwrap().len(), 200, "{name}");
        }
        cleanup(pg).await;
    }

    #[tokio::test]
    async fn barrier_encrypts_binds_rows_and_seals() {
        let (all, pg) = backends().await;
        for (name, b) in all {
            let bar = Barrier::new(Arc::clone(&b));
            assert!(
                matches!(bar.get("x").await, Err(StoreError::Sealed)),
                "{name}"
            );
            bar.install(Keyring::generate(0));
            bar.commit(vec![
                BarrierOp::Put("row/a".into(), b"secret-a".to_vec()),
                BarrierOp::Put("row/b".into(), b"secret-b".to_vec()),
            ])
            .await
            .unwrap();
            let raw = b.get("row/a").await.unwrap().unwrap();
            assert!(
                !raw.windows(8).any(|w| w == b"secret-a"),
                "{name}: plaintext stored"
            );
            // Move row a's ciphertext into row b: authentication must fail.
            b.commit(vec![Op::Put("row/b".into(), raw)]).await.unwrap();
            let fresh = Barrier::new(Arc::clone(&b));
            fresh.install(Keyring::generate(0));
            assert!(fresh.get("row/b").await.is_err(), "{name}");
            assert_eq!(&bar.get("row/a").await.unwrap().unwrap()[..], b"secret-a");
            bar.seal();
            assert!(
                matches!(bar.get("row/a").await, Err(StoreError::Sealed)),
                "{name}"
            );
        }
        cleanup(pg).await;
    }

    #[tokio::test]
    async fn barrier_cache_stays_coherent_under_concurrent_writes() {
        let (all, pg) = backends().await;
        for (name, b) in all {
            let bar = Arc::new(Barrier::new(b));
            bar.install(Keyring::generate(0));
            let mut tasks = Vec::new();
            for w in 0..8u8 {
                let bar = Arc::clone(&bar);
                tasks.push(tokio::spawn(async move {
                    for i in 0..50u8 {
                        bar.put("hot", &[w, i]).await.unwrap();
                        let _ = bar.get("hot").await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            bar.put("hot", b"final").await.unwrap();
            assert_eq!(
                &bar.get("hot").await.unwrap().unwrap()[..],
                b"final",
                "{name}"
            );
        }
        cleanup(pg).await;
    }
}
