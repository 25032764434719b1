//! Encrypted persistence for Airlock.
//!
//! Layers, bottom to top:
//! - [`backend`]: a physical key/value store (`Backend` trait). Keys are `/`-separated paths,
//!   values opaque bytes. [`SqliteBackend`] is the embedded default; the trait is async and
//!   speaks only in atomic batches so that a networked backend (PostgreSQL) drops in.
//! - [`barrier`]: the AEAD barrier. Every value is encrypted with the active data-key term
//!   before it reaches a backend, with the storage key as associated data, so a ciphertext
//!   cannot be moved to another row. While sealed, every call fails with [`StoreError::Sealed`].
//! - [`seal`]: initialisation, Shamir/key-file unsealing and key rotation. The root key that
//!   wraps the keyring is itself stored only encrypted under the unseal key.

pub mod backend;
pub mod barrier;
pub mod keyring;
pub mod seal;

pub use backend::{Backend, Op, SqliteBackend, SyncMode};
pub use barrier::{Barrier, BarrierOp};
pub use keyring::Keyring;

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
