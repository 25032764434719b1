//! The AEAD barrier between logical data and a physical backend.
//!
//! Every `put` encrypts with the active keyring term and the storage key as associated data;
//! every `get` authenticates before returning. Keys are not secret (they name mounts, hashed
//! token ids and user paths) and stay in the clear so that ranges can be listed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::backend::{Backend, Op};
use crate::keyring::Keyring;
use crate::{Result, StoreError};

/// A write in a barrier batch (plaintext; encrypted on commit).
pub enum BarrierOp {
    Put(String, Vec<u8>),
    Delete(String),
}

impl std::fmt::Debug for BarrierOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BarrierOp::Put(k, _) => write!(f, "Put({k:?}, ***)"),
            BarrierOp::Delete(k) => write!(f, "Delete({k:?})"),
        }
    }
}

pub struct Barrier {
    backend: Arc<dyn Backend>,
    keyring: RwLock<Option<Arc<Keyring>>>,
    encryptions: AtomicU64,
}

impl Barrier {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            keyring: RwLock::new(None),
            encryptions: AtomicU64::new(0),
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn is_sealed(&self) -> bool {
        self.keyring.read().map(|k| k.is_none()).unwrap_or(true)
    }

    pub fn install(&self, keyring: Keyring) {
        if let Ok(mut k) = self.keyring.write() {
            *k = Some(Arc::new(keyring));
        }
    }

    pub fn seal(&self) {
        if let Ok(mut k) = self.keyring.write() {
            *k = None;
        }
    }

    pub fn keyring(&self) -> Result<Arc<Keyring>> {
        self.keyring
            .read()
            .map_err(|_| StoreError::Sealed)?
            .clone()
            .ok_or(StoreError::Sealed)
    }

    pub fn encryptions(&self) -> u64 {
        self.encryptions.load(Ordering::Relaxed)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let kr = self.keyring()?;
        match self.backend.get(key).await? {
            None => Ok(None),
            Some(blob) => kr.decrypt(key.as_bytes(), &blob).map(Some),
        }
    }

    /// Reads and decodes a JSON record.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("record {key} is malformed: {e}"))),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.keyring()?;
        self.backend.list(prefix).await
    }

    pub async fn scan(&self, prefix: &str) -> Result<Vec<String>> {
        self.keyring()?;
        self.backend.scan(prefix).await
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.commit(vec![BarrierOp::Put(key.to_string(), value.to_vec())])
            .await
    }

    pub async fn put_json<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let b = Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?,
        );
        self.put(key, &b).await
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.commit(vec![BarrierOp::Delete(key.to_string())]).await
    }

    /// Encrypts and applies all ops atomically.
    pub async fn commit(&self, ops: Vec<BarrierOp>) -> Result<()> {
        let kr = self.keyring()?;
        let mut phys = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                BarrierOp::Put(k, v) => {
                    let v = Zeroizing::new(v);
                    let blob = kr.encrypt(k.as_bytes(), &v)?;
                    self.encryptions.fetch_add(1, Ordering::Relaxed);
                    phys.push(Op::Put(k, blob));
                }
                BarrierOp::Delete(k) => phys.push(Op::Delete(k)),
            }
        }
        self.backend.commit(phys).await
    }
}
