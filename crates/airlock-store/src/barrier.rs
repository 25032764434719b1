//! The AEAD barrier between logical data and a physical backend.
//!
//! Every `put` encrypts with the active keyring term and the storage key as associated data;
//! every `get` authenticates before returning. Keys are not secret (they name mounts, hashed
//! token ids and user paths) and stay in the clear so that ranges can be listed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use zeroize::Zeroizing;

use crate::backend::{Backend, Op};
use crate::keyring::Keyring;
use crate::{Result, StoreError};

/// A write in a barrier batch (plaintext; encrypted on commit).
pub enum BarrierOp {
    Put(String, Vec<u8>),
    Delete(String),
    /// Writes only if the key still holds the version that was read.
    PutIf(String, Vec<u8>, Version),
    /// Deletes only if the key still holds the version that was read.
    DeleteIf(String, Version),
    /// Writes nothing; the batch applies only if the key still holds this version.
    Check(String, Version),
    /// Appends an event (JSON, no secret value) to the event log's inbox, in the same
    /// batch as the change it describes: `events/pending/<time>-<random>`. The sequencer
    /// gives it its cursor.
    Event(Vec<u8>),
}

/// Where events wait for their cursor.
pub const EVENTS_PENDING: &str = "events/pending/";

impl BarrierOp {
    pub fn key(&self) -> &str {
        match self {
            BarrierOp::Put(k, _) | BarrierOp::Delete(k) | BarrierOp::PutIf(k, _, _) => k,
            BarrierOp::DeleteIf(k, _) | BarrierOp::Check(k, _) => k,
            BarrierOp::Event(_) => "",
        }
    }

    /// The same op on another key (a storage view maps relative keys to full ones).
    pub fn with_key(self, key: String) -> BarrierOp {
        match self {
            BarrierOp::Put(_, v) => BarrierOp::Put(key, v),
            BarrierOp::Delete(_) => BarrierOp::Delete(key),
            BarrierOp::PutIf(_, v, ver) => BarrierOp::PutIf(key, v, ver),
            BarrierOp::DeleteIf(_, ver) => BarrierOp::DeleteIf(key, ver),
            BarrierOp::Check(_, ver) => BarrierOp::Check(key, ver),
            e @ BarrierOp::Event(_) => e,
        }
    }
}

impl std::fmt::Debug for BarrierOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BarrierOp::Put(k, _) => write!(f, "Put({k:?}, ***)"),
            BarrierOp::Delete(k) => write!(f, "Delete({k:?})"),
            BarrierOp::PutIf(k, _, _) => write!(f, "PutIf({k:?}, ***)"),
            BarrierOp::DeleteIf(k, _) => write!(f, "DeleteIf({k:?})"),
            BarrierOp::Check(k, _) => write!(f, "Check({k:?})"),
            BarrierOp::Event(_) => write!(f, "Event(..)"),
        }
    }
}

/// The version of a key as it was read: its stored ciphertext (every write has a fresh
/// nonce, so two writes never share one), or absent. Compared at commit time by conditional
/// ops; opaque otherwise.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Version(Option<Arc<Vec<u8>>>);

impl Version {
    /// A version made from raw stored bytes (in-memory test storage).
    pub fn from_stored(v: Option<Vec<u8>>) -> Self {
        Version(v.map(Arc::new))
    }

    pub fn is_absent(&self) -> bool {
        self.0.is_none()
    }

    fn expected(&self) -> Option<Vec<u8>> {
        self.0.as_ref().map(|b| b.to_vec())
    }
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Version(..)"
        } else {
            "Version(absent)"
        })
    }
}

/// A cache of *ciphertexts* (and of absent keys) in front of the backend: reads that hit it
/// skip the backend but still authenticate and decrypt, so no plaintext is retained. It is
/// coherent because every write of this process goes through [`Barrier::commit`]; with
/// several replicas on a shared database it must be disabled or invalidated by the backend.
struct CacheShard {
    generation: u64,
    bytes: usize,
    map: HashMap<String, Option<Arc<Vec<u8>>>>,
}

const CACHE_SHARDS: usize = 64;
/// Per shard: 64 shards × 256 KiB bound the cache at 16 MiB of keys and ciphertexts.
const CACHE_BYTES_PER_SHARD: usize = 256 * 1024;
/// Larger entries are never cached: the bound holds whatever the values' sizes, and one big
/// value cannot push out a shard of small ones.
const CACHE_MAX_ENTRY: usize = CACHE_BYTES_PER_SHARD / 4;

impl CacheShard {
    fn insert(&mut self, key: &str, v: Option<Arc<Vec<u8>>>) {
        let size = key.len() + v.as_ref().map(|b| b.len()).unwrap_or(0) + 64;
        if size > CACHE_MAX_ENTRY {
            // Not cached; an older value of the key must not stay either.
            self.remove(key);
            return;
        }
        if self.bytes + size > CACHE_BYTES_PER_SHARD {
            self.map.clear();
            self.bytes = 0;
        }
        if let Some(old) = self.map.insert(key.to_string(), v) {
            let old_size = key.len() + old.map(|b| b.len()).unwrap_or(0) + 64;
            self.bytes = self.bytes.saturating_sub(old_size);
        }
        self.bytes += size;
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            let old_size = key.len() + old.map(|b| b.len()).unwrap_or(0) + 64;
            self.bytes = self.bytes.saturating_sub(old_size);
        }
    }
}

struct Cache {
    shards: Vec<Mutex<CacheShard>>,
}

impl Cache {
    fn new() -> Self {
        Self {
            shards: (0..CACHE_SHARDS)
                .map(|_| {
                    Mutex::new(CacheShard {
                        generation: 0,
                        bytes: 0,
                        map: HashMap::new(),
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, key: &str) -> Option<&Mutex<CacheShard>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        self.shards.get((h.finish() as usize) % CACHE_SHARDS)
    }

    /// `Ok(entry)` on a hit; `Err(generation)` on a miss, to pass back to `fill`.
    fn lookup(&self, key: &str) -> std::result::Result<Option<Arc<Vec<u8>>>, u64> {
        match self.shard(key).and_then(|s| s.lock().ok()) {
            Some(s) => match s.map.get(key) {
                Some(v) => Ok(v.clone()),
                None => Err(s.generation),
            },
            None => Err(u64::MAX),
        }
    }

    /// Inserts a value read from the backend unless a write touched the shard meanwhile.
    fn fill(&self, key: &str, generation: u64, v: Option<Arc<Vec<u8>>>) {
        if let Some(mut s) = self.shard(key).and_then(|s| s.lock().ok()) {
            if s.generation == generation {
                s.insert(key, v);
            }
        }
    }

    fn set(&self, key: &str, v: Option<Arc<Vec<u8>>>) {
        if let Some(mut s) = self.shard(key).and_then(|s| s.lock().ok()) {
            s.generation = s.generation.wrapping_add(1);
            s.insert(key, v);
        }
    }

    fn invalidate(&self, key: &str) {
        if let Some(mut s) = self.shard(key).and_then(|s| s.lock().ok()) {
            s.generation = s.generation.wrapping_add(1);
            s.remove(key);
        }
    }

    fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut s) = s.lock() {
                s.generation = s.generation.wrapping_add(1);
                s.map.clear();
                s.bytes = 0;
            }
        }
    }
}

pub struct Barrier {
    backend: Arc<dyn Backend>,
    keyring: RwLock<Option<Arc<Keyring>>>,
    /// The root key while unsealed, to reload a keyring another node rotated.
    root: RwLock<Option<Zeroizing<[u8; 32]>>>,
    encryptions: AtomicU64,
    cache: Cache,
    events_written: tokio::sync::Notify,
}

impl Barrier {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            keyring: RwLock::new(None),
            root: RwLock::new(None),
            encryptions: AtomicU64::new(0),
            cache: Cache::new(),
            events_written: tokio::sync::Notify::new(),
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

    /// Keeps the root key (while unsealed) so the barrier can reload a keyring another node
    /// rotated.
    pub fn set_root_key(&self, root: Zeroizing<[u8; 32]>) {
        if let Ok(mut r) = self.root.write() {
            *r = Some(root);
        }
    }

    /// Reads the stored keyring again and installs it (another node rotated it).
    pub async fn reload_keyring(&self) -> Result<()> {
        let root = self
            .root
            .read()
            .map_err(|_| StoreError::Sealed)?
            .clone()
            .ok_or(StoreError::Sealed)?;
        let kr = crate::seal::load_keyring(self.backend.as_ref(), &root).await?;
        self.install(kr);
        Ok(())
    }

    pub fn seal(&self) {
        if let Ok(mut k) = self.keyring.write() {
            *k = None;
        }
        if let Ok(mut r) = self.root.write() {
            *r = None;
        }
        self.cache.clear();
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
        Ok(self.get_versioned(key).await?.0)
    }

    /// Reads a value with the version a conditional op can expect.
    pub async fn get_versioned(&self, key: &str) -> Result<(Option<Zeroizing<Vec<u8>>>, Version)> {
        let kr = self.keyring()?;
        let blob = match self.cache.lookup(key) {
            Ok(hit) => hit,
            Err(generation) => {
                let v = self.backend.get(key).await?.map(Arc::new);
                self.cache.fill(key, generation, v.clone());
                v
            }
        };
        self.open_checked(kr, key, blob).await
    }

    /// Reads a value from the backend, never from the cache, and leaves it cached: the start
    /// of a read-modify-write sequence that must see other nodes' writes.
    /// A backend no other process writes keeps the cache coherent by itself: the cached
    /// version is the current one.
    pub async fn get_fresh(&self, key: &str) -> Result<(Option<Zeroizing<Vec<u8>>>, Version)> {
        if !self.backend.shared() {
            return self.get_versioned(key).await;
        }
        let kr = self.keyring()?;
        self.cache.invalidate(key);
        let generation = self.cache.lookup(key).err().unwrap_or(u64::MAX);
        let blob = self.backend.get(key).await?.map(Arc::new);
        self.cache.fill(key, generation, blob.clone());
        self.open_checked(kr, key, blob).await
    }

    /// Opens a blob; one written under a term newer than this node knows (another node
    /// rotated the keyring a moment ago) reloads the keyring first.
    async fn open_checked(
        &self,
        kr: Arc<Keyring>,
        key: &str,
        blob: Option<Arc<Vec<u8>>>,
    ) -> Result<(Option<Zeroizing<Vec<u8>>>, Version)> {
        if let Some(b) = &blob {
            let newer = crate::keyring::blob_term(b).is_ok_and(|t| t > kr.active_term());
            if newer && self.backend.shared() && self.reload_keyring().await.is_ok() {
                let fresh = self.keyring()?;
                return self.open(&fresh, key, blob);
            }
        }
        self.open(&kr, key, blob)
    }

    fn open(
        &self,
        kr: &Keyring,
        key: &str,
        blob: Option<Arc<Vec<u8>>>,
    ) -> Result<(Option<Zeroizing<Vec<u8>>>, Version)> {
        match blob {
            None => Ok((None, Version(None))),
            Some(blob) => {
                let plain = kr.decrypt(key.as_bytes(), &blob)?;
                Ok((Some(plain), Version(Some(blob))))
            }
        }
    }

    /// Forgets any cached ciphertext of `key` (another node wrote it).
    pub fn invalidate(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Forgets every cached ciphertext.
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// Reads and decodes a JSON record.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                // serde's message can quote the (secret) content: report only the position.
                .map_err(|e| {
                    StoreError::Corrupt(format!(
                        "record {key} is malformed at line {} column {}",
                        e.line(),
                        e.column()
                    ))
                }),
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
        self.commit_tracked(ops).await.map(|_| ())
    }

    /// [`Barrier::commit`], returning the new version of every key written or deleted (in
    /// the order of the ops; `Check` ops have none).
    pub async fn commit_tracked(&self, ops: Vec<BarrierOp>) -> Result<Vec<(String, Version)>> {
        let kr = self.keyring()?;
        let mut phys = Vec::with_capacity(ops.len());
        let mut updates = Vec::with_capacity(ops.len());
        let mut checked = Vec::new();
        let mut events = false;
        for op in ops {
            let seal = |k: &str, v: Vec<u8>| -> Result<Arc<Vec<u8>>> {
                let v = Zeroizing::new(v);
                let blob = Arc::new(kr.encrypt(k.as_bytes(), &v)?);
                self.encryptions.fetch_add(1, Ordering::Relaxed);
                Ok(blob)
            };
            match op {
                BarrierOp::Put(k, v) => {
                    let blob = seal(&k, v)?;
                    updates.push((k.clone(), Some(Arc::clone(&blob))));
                    phys.push(Op::Put(k, blob.to_vec()));
                }
                BarrierOp::Delete(k) => {
                    updates.push((k.clone(), None));
                    phys.push(Op::Delete(k));
                }
                BarrierOp::PutIf(k, v, ver) => {
                    let blob = seal(&k, v)?;
                    updates.push((k.clone(), Some(Arc::clone(&blob))));
                    phys.push(Op::PutIf(k, blob.to_vec(), ver.expected()));
                }
                BarrierOp::DeleteIf(k, ver) => {
                    updates.push((k.clone(), None));
                    phys.push(Op::DeleteIf(k, ver.expected()));
                }
                BarrierOp::Check(k, ver) => {
                    checked.push(k.clone());
                    phys.push(Op::Check(k, ver.expected()));
                }
                BarrierOp::Event(v) => {
                    let mut r = [0u8; 6];
                    rand::fill(&mut r);
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    let k = format!("{EVENTS_PENDING}{nanos:030}-{}", hex::encode(r));
                    let blob = seal(&k, v)?;
                    events = true;
                    updates.push((k.clone(), Some(Arc::clone(&blob))));
                    phys.push(Op::Put(k, blob.to_vec()));
                }
            }
        }
        // Invalidate first so no reader caches the old value while the write is in flight.
        for (k, _) in &updates {
            self.cache.invalidate(k);
        }
        let res = self.backend.commit(phys).await;
        if res.is_err() {
            // A conflict means some cached version is stale: forget every key involved.
            for k in &checked {
                self.cache.invalidate(k);
            }
        }
        let mut versions = Vec::with_capacity(updates.len());
        for (k, v) in updates {
            match &res {
                Ok(()) => {
                    self.cache.set(&k, v.clone());
                    versions.push((k, Version(v)));
                }
                Err(_) => self.cache.invalidate(&k),
            }
        }
        if events && res.is_ok() {
            self.events_written.notify_one();
        }
        res.map(|()| versions)
    }

    /// Woken when this node committed an event (the sequencer waits on it).
    pub fn events_written(&self) -> &tokio::sync::Notify {
        &self.events_written
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// Regression: a shard was cleared and then any entry inserted whatever its size, so big
    /// values took the cache far past its bound.
    #[test]
    fn cache_stays_bounded_whatever_the_value_sizes() {
        let c = Cache::new();
        let held = |c: &Cache| -> usize {
            c.shards
                .iter()
                .map(|s| {
                    s.lock()
                        .unwrap()
                        .map
                        .iter()
                        .map(|(k, v)| k.len() + v.as_ref().map_or(0, |b| b.len()))
                        .sum::<usize>()
                })
                .sum()
        };
        let bound = CACHE_SHARDS * CACHE_BYTES_PER_SHARD;
        for i in 0..200 {
            c.set(&format!("big/{i}"), Some(Arc::new(vec![0u8; 8 << 20])));
            assert!(held(&c) <= bound, "{} bytes cached", held(&c));
        }
        for i in 0..20_000 {
            c.set(&format!("small/{i}"), Some(Arc::new(vec![0u8; 1000])));
        }
        assert!(held(&c) <= bound, "{} bytes cached", held(&c));
        assert!(c.lookup("big/0").is_err(), "an 8 MiB value is never cached");
        // A big write replaces a cached small value of the same key: the old one goes.
        c.set("k", Some(Arc::new(vec![1u8; 10])));
        c.set("k", Some(Arc::new(vec![2u8; 1 << 20])));
        assert!(c.lookup("k").is_err());
    }
}
