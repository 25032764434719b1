//! Storage as an engine sees it: a [`View`] scoped to its mount's prefix, with per-key locks.
//!
//! The server backs views with the encrypting barrier (every value is encrypted before it
//! reaches the physical store); tests back them with [`MemStorage`]. A view cannot reach a key
//! outside its prefix: relative keys are joined under it and keys that try to climb out
//! (`..` segments) are refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use airlock_store::{Barrier, BarrierOp, StoreError};
use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};

type StoreResult<T> = Result<T, StoreError>;

/// A key-value store: plaintext in, plaintext out (encryption is the implementation's job).
#[async_trait]
pub trait Storage: Send + Sync {
    async fn get(&self, key: &str) -> StoreResult<Option<Zeroizing<Vec<u8>>>>;
    /// Direct children below `prefix` (folders end in `/`).
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>>;
    /// Every key below `prefix`, recursively (full keys).
    async fn scan(&self, prefix: &str) -> StoreResult<Vec<String>>;
    /// Applies every operation atomically.
    async fn commit(&self, ops: Vec<BarrierOp>) -> StoreResult<()>;
}

#[async_trait]
impl Storage for Barrier {
    async fn get(&self, key: &str) -> StoreResult<Option<Zeroizing<Vec<u8>>>> {
        Barrier::get(self, key).await
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        Barrier::list(self, prefix).await
    }
    async fn scan(&self, prefix: &str) -> StoreResult<Vec<String>> {
        Barrier::scan(self, prefix).await
    }
    async fn commit(&self, ops: Vec<BarrierOp>) -> StoreResult<()> {
        Barrier::commit(self, ops).await
    }
}

/// In-memory storage for tests.
#[derive(Default)]
pub struct MemStorage {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key (for assertions).
    pub fn keys(&self) -> Vec<String> {
        self.map
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Storage for MemStorage {
    async fn get(&self, key: &str) -> StoreResult<Option<Zeroizing<Vec<u8>>>> {
        let m = self
            .map
            .lock()
            .map_err(|_| StoreError::Backend("poisoned".into()))?;
        Ok(m.get(key).cloned().map(Zeroizing::new))
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let m = self
            .map
            .lock()
            .map_err(|_| StoreError::Backend("poisoned".into()))?;
        let mut out: Vec<String> = Vec::new();
        for k in m.range(prefix.to_string()..).map(|(k, _)| k) {
            let Some(rest) = k.strip_prefix(prefix) else {
                break;
            };
            let child = match rest.find('/') {
                Some(i) => &rest[..=i],
                None => rest,
            };
            if out.last().map(String::as_str) != Some(child) {
                out.push(child.to_string());
            }
        }
        Ok(out)
    }
    async fn scan(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let m = self
            .map
            .lock()
            .map_err(|_| StoreError::Backend("poisoned".into()))?;
        Ok(m.range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn commit(&self, ops: Vec<BarrierOp>) -> StoreResult<()> {
        let mut m = self
            .map
            .lock()
            .map_err(|_| StoreError::Backend("poisoned".into()))?;
        for op in ops {
            match op {
                BarrierOp::Put(k, v) => {
                    m.insert(k, v);
                }
                BarrierOp::Delete(k) => {
                    m.remove(&k);
                }
            }
        }
        Ok(())
    }
}

/// Striped async locks serialising read-modify-write sequences per storage key.
pub struct KeyLocks {
    shards: Vec<tokio::sync::Mutex<()>>,
}

impl KeyLocks {
    pub fn new(n: usize) -> Self {
        Self {
            shards: (0..n.max(1)).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
    pub async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % self.shards.len();
        self.shards[i].lock().await
    }
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self::new(256)
    }
}

/// An engine's window on storage: every key is relative to the mount's prefix.
#[derive(Clone)]
pub struct View {
    storage: Arc<dyn Storage>,
    prefix: Arc<str>,
    locks: Arc<KeyLocks>,
}

impl View {
    pub fn new(
        storage: Arc<dyn Storage>,
        prefix: impl Into<Arc<str>>,
        locks: Arc<KeyLocks>,
    ) -> Self {
        View {
            storage,
            prefix: prefix.into(),
            locks,
        }
    }

    /// A fresh in-memory view (tests).
    pub fn memory() -> Self {
        Self::new(Arc::new(MemStorage::new()), "", Arc::new(KeyLocks::new(16)))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A narrower view below `sub` (which ends in `/`).
    pub fn sub(&self, sub: &str) -> View {
        View {
            storage: Arc::clone(&self.storage),
            prefix: format!("{}{sub}", self.prefix).into(),
            locks: Arc::clone(&self.locks),
        }
    }

    fn full(&self, rel: &str) -> ApiResult<String> {
        if rel.split('/').any(|s| s == "..") {
            return Err(ApiError::bad_request("invalid path"));
        }
        Ok(format!("{}{rel}", self.prefix))
    }

    pub async fn get(&self, rel: &str) -> ApiResult<Option<Zeroizing<Vec<u8>>>> {
        Ok(self.storage.get(&self.full(rel)?).await?)
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        rel: &str,
    ) -> ApiResult<Option<T>> {
        match self.get(rel).await? {
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ApiError::from(StoreError::Corrupt(format!("{rel}: {e}")))),
            None => Ok(None),
        }
    }

    pub async fn exists(&self, rel: &str) -> ApiResult<bool> {
        Ok(self.get(rel).await?.is_some())
    }

    pub async fn put(&self, rel: &str, value: &[u8]) -> ApiResult<()> {
        self.commit(vec![BarrierOp::Put(rel.to_string(), value.to_vec())])
            .await
    }

    pub async fn put_json<T: serde::Serialize>(&self, rel: &str, value: &T) -> ApiResult<()> {
        let b = serde_json::to_vec(value).map_err(|e| ApiError::internal(&e))?;
        self.put(rel, &b).await
    }

    pub async fn delete(&self, rel: &str) -> ApiResult<()> {
        self.commit(vec![BarrierOp::Delete(rel.to_string())]).await
    }

    pub async fn list(&self, rel: &str) -> ApiResult<Vec<String>> {
        Ok(self.storage.list(&self.full(rel)?).await?)
    }

    /// Every key below `rel`, recursively, relative to the view.
    pub async fn scan(&self, rel: &str) -> ApiResult<Vec<String>> {
        let keys = self.storage.scan(&self.full(rel)?).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&*self.prefix).map(str::to_string))
            .collect())
    }

    /// Applies operations on relative keys atomically.
    pub async fn commit(&self, ops: Vec<BarrierOp>) -> ApiResult<()> {
        let mut full = Vec::with_capacity(ops.len());
        for op in ops {
            full.push(match op {
                BarrierOp::Put(k, v) => BarrierOp::Put(self.full(&k)?, v),
                BarrierOp::Delete(k) => BarrierOp::Delete(self.full(&k)?),
            });
        }
        Ok(self.storage.commit(full).await?)
    }

    /// Serialises read-modify-write sequences on one relative key.
    pub async fn lock(&self, rel: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.locks.lock(&format!("{}{rel}", self.prefix)).await
    }

    /// The `LIST` answer for `rel` (a folder): its children, or a 404 when there are none.
    pub async fn list_response(&self, rel: &str) -> ApiResult<crate::request::Response> {
        let keys = self.list(rel).await?;
        if keys.is_empty() {
            return Err(ApiError::not_found());
        }
        Ok(crate::request::Response::list(keys))
    }

    /// Deletes everything below the view, in batches.
    pub async fn clear(&self) -> ApiResult<()> {
        let keys = self.scan("").await?;
        for chunk in keys.chunks(1000) {
            self.commit(chunk.iter().map(|k| BarrierOp::Delete(k.clone())).collect())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn view_is_scoped() {
        let mem = Arc::new(MemStorage::new());
        let v = View::new(mem.clone(), "logical/u/", Arc::new(KeyLocks::new(4)));
        v.put("a/b", b"1").await.unwrap();
        v.put("c", b"2").await.unwrap();
        assert_eq!(mem.keys(), vec!["logical/u/a/b", "logical/u/c"]);
        assert_eq!(v.list("").await.unwrap(), vec!["a/", "c"]);
        assert_eq!(v.scan("").await.unwrap(), vec!["a/b", "c"]);
        assert!(v.get("../x").await.is_err());
        v.clear().await.unwrap();
        assert!(mem.keys().is_empty());
        assert_eq!(v.list_response("").await.unwrap_err().status, 404);
    }
}
