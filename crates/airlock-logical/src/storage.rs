//! Storage as an engine sees it: a [`View`] scoped to its mount's prefix, with per-key locks.
//!
//! The server backs views with the encrypting barrier (every value is encrypted before it
//! reaches the physical store); tests back them with [`MemStorage`]. A view cannot reach a key
//! outside its prefix: relative keys are joined under it and keys that try to climb out
//! (`..` segments) are refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use airlock_store::{Barrier, BarrierOp, StoreError, Version};
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
    async fn commit(&self, ops: Vec<BarrierOp>) -> StoreResult<()> {
        self.commit_tracked(ops).await.map(|_| ())
    }
    /// A read with the version a conditional op can expect (possibly from a cache).
    async fn get_versioned(&self, key: &str) -> StoreResult<(Option<Zeroizing<Vec<u8>>>, Version)>;
    /// A read that bypasses every cache: the start of a read-modify-write sequence.
    async fn get_fresh(&self, key: &str) -> StoreResult<(Option<Zeroizing<Vec<u8>>>, Version)>;
    /// [`Storage::commit`], returning the new version of each key written or deleted.
    async fn commit_tracked(&self, ops: Vec<BarrierOp>) -> StoreResult<Vec<(String, Version)>>;
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
    async fn get_versioned(&self, key: &str) -> StoreResult<(Option<Zeroizing<Vec<u8>>>, Version)> {
        Barrier::get_versioned(self, key).await
    }
    async fn get_fresh(&self, key: &str) -> StoreResult<(Option<Zeroizing<Vec<u8>>>, Version)> {
        Barrier::get_fresh(self, key).await
    }
    async fn commit_tracked(&self, ops: Vec<BarrierOp>) -> StoreResult<Vec<(String, Version)>> {
        Barrier::commit_tracked(self, ops).await
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
    async fn get_versioned(&self, key: &str) -> StoreResult<(Option<Zeroizing<Vec<u8>>>, Version)> {
        let v = self.get(key).await?;
        let ver = Version::from_stored(v.as_ref().map(|b| b.to_vec()));
        Ok((v, ver))
    }
    async fn get_fresh(&self, key: &str) -> StoreResult<(Option<Zeroizing<Vec<u8>>>, Version)> {
        self.get_versioned(key).await
    }
    async fn commit_tracked(&self, ops: Vec<BarrierOp>) -> StoreResult<Vec<(String, Version)>> {
        let mut m = self
            .map
            .lock()
            .map_err(|_| StoreError::Backend("poisoned".into()))?;
        let version =
            |m: &BTreeMap<String, Vec<u8>>, k: &str| Version::from_stored(m.get(k).cloned());
        for op in &ops {
            let holds = match op {
                BarrierOp::PutIf(k, _, want)
                | BarrierOp::DeleteIf(k, want)
                | BarrierOp::Check(k, want) => version(&m, k) == *want,
                BarrierOp::Put(..) | BarrierOp::Delete(_) | BarrierOp::Event(_) => true,
            };
            if !holds {
                return Err(StoreError::Conflict(op.key().to_string()));
            }
        }
        let mut out = Vec::new();
        for op in ops {
            match op {
                BarrierOp::Put(k, v) | BarrierOp::PutIf(k, v, _) => {
                    m.insert(k.clone(), v);
                    out.push((k.clone(), version(&m, &k)));
                }
                BarrierOp::Delete(k) | BarrierOp::DeleteIf(k, _) => {
                    m.remove(&k);
                    out.push((k, Version::default()));
                }
                BarrierOp::Check(..) => {}
                BarrierOp::Event(v) => {
                    let n = m
                        .range(airlock_store::EVENTS_PENDING.to_string()..)
                        .take_while(|(k, _)| k.starts_with(airlock_store::EVENTS_PENDING))
                        .count();
                    m.insert(format!("{}{n:030}", airlock_store::EVENTS_PENDING), v);
                }
            }
        }
        Ok(out)
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

    fn full_ops(&self, ops: Vec<BarrierOp>) -> ApiResult<Vec<BarrierOp>> {
        let mut full = Vec::with_capacity(ops.len());
        for op in ops {
            if matches!(op, BarrierOp::Event(_)) {
                full.push(op);
                continue;
            }
            let k = self.full(op.key())?;
            full.push(op.with_key(k));
        }
        Ok(full)
    }

    /// Applies operations on relative keys atomically.
    pub async fn commit(&self, ops: Vec<BarrierOp>) -> ApiResult<()> {
        Ok(self.storage.commit(self.full_ops(ops)?).await?)
    }

    /// Starts a read-modify-write sequence on one relative key: serialises it with the
    /// others in this process, and reads the key's current version from the database so
    /// that [`Locked`]'s writes apply only if no other node changed the key meanwhile (else
    /// they fail with a conflict, and the request is run again).
    pub async fn lock(&self, rel: &str) -> ApiResult<Locked<'_>> {
        let key = self.full(rel)?;
        let guard = self.locks.lock(&key).await;
        let (_, version) = self.storage.get_fresh(&key).await?;
        Ok(Locked {
            view: self,
            key,
            version: Mutex::new(version),
            _guard: guard,
        })
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

/// A held read-modify-write lock on one key of a [`View`] (see [`View::lock`]). Writes made
/// through it are conditional on the locked key: an op on that key expects the version read
/// when the lock was taken (and the version its own last write left); a batch that does not
/// touch it checks it. Reads go through the view as usual.
pub struct Locked<'a> {
    view: &'a View,
    key: String,
    version: Mutex<Version>,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Locked<'_> {
    /// Applies operations on relative keys atomically, if the locked key is unchanged.
    pub async fn commit(&self, ops: Vec<BarrierOp>) -> ApiResult<()> {
        let mut full = self.view.full_ops(ops)?;
        let held = self.version.lock().map(|v| v.clone()).unwrap_or_default();
        let mut touched = false;
        for op in &mut full {
            if matches!(op, BarrierOp::Event(_)) || op.key() != self.key {
                continue;
            }
            touched = true;
            let plain = std::mem::replace(op, BarrierOp::Delete(String::new()));
            *op = match plain {
                BarrierOp::Put(k, v) => BarrierOp::PutIf(k, v, held.clone()),
                BarrierOp::Delete(k) => BarrierOp::DeleteIf(k, held.clone()),
                other => other,
            };
        }
        if !touched {
            full.push(BarrierOp::Check(self.key.clone(), held));
        }
        let versions = self.view.storage.commit_tracked(full).await?;
        if let Some((_, v)) = versions.into_iter().rev().find(|(k, _)| *k == self.key) {
            if let Ok(mut g) = self.version.lock() {
                *g = v;
            }
        }
        Ok(())
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
