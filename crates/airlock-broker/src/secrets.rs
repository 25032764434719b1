//! Credential resolution: an in-memory cache of the bound secrets, refreshed in the
//! background from Airlock, so the request path never waits on the store and a rotation in
//! Airlock reaches the next request without restarting the agent.
//!
//! Fail closed: an entry older than `max_age` (the store has been unreachable for that long)
//! is not used; the request gets 503 instead of a possibly revoked credential.
//!
//! Leased paths ([`LEASED_PREFIX`], e.g. `lease:aws/creds/deployer`) hold dynamic credentials
//! (the AWS engine's): they are fetched once, used until their lease ends (not `max_age`),
//! fetched again when two thirds of the lease have passed, and the replaced lease is revoked
//! after a grace period (requests in flight finish with it); [`SecretCache::revoke_leases`]
//! revokes the current ones when the broker stops.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

pub type SecretMap = HashMap<String, Zeroizing<String>>;
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<SecretMap, String>> + Send + 'a>>;

/// Paths with this prefix are leased (dynamic) credentials, read from a secrets engine.
pub const LEASED_PREFIX: &str = "lease:";

/// How long a replaced lease is kept before it is revoked.
pub const LEASE_GRACE: Duration = Duration::from_secs(30);

/// Reads a whole KV entry (key → value). Errors must not contain secret values. For a
/// leased path the map also holds `lease_id` and `lease_duration` (seconds).
pub trait SecretSource: Send + Sync + 'static {
    fn fetch<'a>(&'a self, path: &'a str) -> FetchFuture<'a>;

    /// Replaces `key` in the entry at `path` with `new` if it still holds `expected`
    /// (check-and-set); `false` when someone else changed it first. Used to store a rotated
    /// OAuth2 refresh token. Default: not supported.
    fn replace_if<'a>(
        &'a self,
        _path: &'a str,
        _key: &'a str,
        _expected: &'a str,
        _new: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async { Err("this source cannot write".into()) })
    }

    /// Revokes a lease obtained by [`SecretSource::fetch`] (default: nothing to do).
    fn revoke<'a>(
        &'a self,
        _lease_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async { Ok(()) })
    }
}

struct Entry {
    value: Arc<Zeroizing<String>>,
    fetched: Instant,
    /// For leased paths: when the lease ends.
    until: Option<Instant>,
}

/// The current lease of a leased path.
struct Lease {
    id: String,
    fetched: Instant,
    ttl: Duration,
}

pub struct SecretCache {
    source: Arc<dyn SecretSource>,
    /// (path, key) pairs to keep fresh.
    wanted: Vec<(String, String)>,
    entries: RwLock<HashMap<(String, String), Entry>>,
    leases: std::sync::Mutex<HashMap<String, Lease>>,
    /// Replaced leases waiting out their grace period before revocation.
    retired: Arc<std::sync::Mutex<Vec<String>>>,
    /// Held while a refresh runs, so that [`SecretCache::revoke_leases`] waits for a lease
    /// being fetched instead of missing it.
    refreshing: tokio::sync::Mutex<()>,
    /// Set by [`SecretCache::revoke_leases`]: no lease is fetched any more.
    closed: std::sync::atomic::AtomicBool,
    pub refresh: Duration,
    pub max_age: Duration,
    /// Failed refreshes (for metrics/logs).
    pub failures: std::sync::atomic::AtomicU64,
}

impl SecretCache {
    pub fn new(
        source: Arc<dyn SecretSource>,
        wanted: Vec<(String, String)>,
        refresh: Duration,
        max_age: Duration,
    ) -> Arc<Self> {
        Arc::new(SecretCache {
            source,
            wanted,
            entries: RwLock::new(HashMap::new()),
            leases: Default::default(),
            retired: Default::default(),
            refreshing: Default::default(),
            closed: Default::default(),
            refresh,
            max_age,
            failures: Default::default(),
        })
    }

    /// Fetches every wanted secret once. Errors name the path and key, never a value.
    pub async fn refresh_all(&self) -> Result<(), String> {
        let _running = self.refreshing.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let mut paths: Vec<&str> = self.wanted.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort_unstable();
        paths.dedup();
        let mut first_err = None;
        for p in paths {
            if !self.lease_due(p) {
                continue;
            }
            match self.source.fetch(p).await {
                Ok(map) => {
                    let until = self.note_lease(p, &map, Instant::now());
                    if let Some(m) = self.store(p, &map, until) {
                        first_err.get_or_insert(m);
                    }
                }
                Err(e) => {
                    self.failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    first_err.get_or_insert(format!("{p}: {e}"));
                }
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Caches the wanted keys of `path` from a fetched entry (an absent optional key is
    /// dropped); the error naming a missing required key, if any.
    fn store(&self, path: &str, map: &SecretMap, until: Option<Instant>) -> Option<String> {
        let now = Instant::now();
        let mut missing = None;
        let Ok(mut e) = self.entries.write() else {
            return None;
        };
        for (wp, wk) in self.wanted.iter().filter(|(wp, _)| wp == path) {
            // `?key`: optional (absent now: dropped from the cache).
            let (key, optional) = match wk.strip_prefix('?') {
                Some(k) => (k, true),
                None => (wk.as_str(), false),
            };
            match map.get(key) {
                Some(v) => {
                    e.insert(
                        (wp.clone(), wk.clone()),
                        Entry {
                            value: Arc::new(v.clone()),
                            fetched: now,
                            until,
                        },
                    );
                }
                None if optional => {
                    e.remove(&(wp.clone(), wk.clone()));
                }
                None => missing = Some(format!("{path}: no key {wk:?}")),
            }
        }
        missing
    }

    /// The current value, if fresh enough (an optional key is named with its `?`; a leased
    /// one until its lease ends). Never blocks on I/O.
    pub fn get(&self, path: &str, key: &str) -> Option<Arc<Zeroizing<String>>> {
        let e = self.entries.read().ok()?;
        let en = e.get(&(path.to_string(), key.to_string()))?;
        let fresh = match en.until {
            Some(u) => Instant::now() < u,
            None => en.fetched.elapsed() <= self.max_age,
        };
        fresh.then(|| en.value.clone())
    }

    /// Sets a cached value (a rotated refresh token, before the next refresh reads it back).
    pub fn set(&self, path: &str, key: &str, value: Zeroizing<String>) {
        if let Ok(mut e) = self.entries.write() {
            e.insert(
                (path.to_string(), key.to_string()),
                Entry {
                    value: Arc::new(value),
                    fetched: Instant::now(),
                    until: None,
                },
            );
        }
    }

    /// Reads one entry again now (e.g. another broker rotated a refresh token).
    pub async fn refresh_path(&self, path: &str) -> Result<(), String> {
        let map = self.source.fetch(path).await?;
        self.store(path, &map, None);
        Ok(())
    }

    /// See [`SecretSource::replace_if`].
    pub async fn replace_if(
        &self,
        path: &str,
        key: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, String> {
        self.source.replace_if(path, key, expected, new).await
    }

    /// Whether `path` is to be fetched now: always for KV, and for a leased path when it has
    /// no lease yet or two thirds of it have passed.
    fn lease_due(&self, path: &str) -> bool {
        if !path.starts_with(LEASED_PREFIX) {
            return true;
        }
        let Ok(l) = self.leases.lock() else {
            return true;
        };
        l.get(path)
            .is_none_or(|l| l.fetched.elapsed() >= l.ttl.mul_f64(2.0 / 3.0))
    }

    /// Records the lease a leased path's answer carries (revoking the one it replaces after
    /// [`LEASE_GRACE`]); when it ends.
    fn note_lease(&self, path: &str, map: &SecretMap, now: Instant) -> Option<Instant> {
        if !path.starts_with(LEASED_PREFIX) {
            return None;
        }
        let ttl = map
            .get("lease_duration")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(self.max_age);
        let id = map
            .get("lease_id")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let old = self.leases.lock().ok().and_then(|mut l| {
            l.insert(
                path.to_string(),
                Lease {
                    id,
                    fetched: now,
                    ttl,
                },
            )
        });
        if let Some(old) = old.filter(|o| !o.id.is_empty()) {
            let source = self.source.clone();
            let retired = self.retired.clone();
            if let Ok(mut r) = retired.lock() {
                r.push(old.id.clone());
            }
            tokio::spawn(async move {
                tokio::time::sleep(LEASE_GRACE).await;
                // Still retired (not revoked by `revoke_leases` meanwhile)?
                let mine = retired.lock().is_ok_and(|mut r| {
                    let before = r.len();
                    r.retain(|i| *i != old.id);
                    r.len() < before
                });
                if !mine {
                    return;
                }
                if let Err(e) = source.revoke(&old.id).await {
                    tracing::warn!(error = %e, "broker: revoking a replaced lease failed (it ends with its TTL)");
                }
            });
        }
        Some(now + ttl)
    }

    /// Revokes the current leases and the replaced ones still in their grace period (when
    /// the broker stops); errors are logged.
    pub async fn revoke_leases(&self) {
        // No new lease from here on; a refresh under way finishes (and records its lease)
        // before the leases are read.
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        let _quiet = self.refreshing.lock().await;
        let mut ids: Vec<String> = self
            .leases
            .lock()
            .map(|mut l| l.drain().map(|(_, v)| v.id).collect())
            .unwrap_or_default();
        if let Ok(mut r) = self.retired.lock() {
            ids.append(&mut r);
        }
        for id in ids.iter().filter(|i| !i.is_empty()) {
            if let Err(e) = self.source.revoke(id).await {
                tracing::warn!(error = %e, "broker: revoking a lease failed (it ends with its TTL)");
            }
        }
    }

    /// Refreshes in the background for as long as the cache is in use (the task holds only a
    /// weak reference, and ends once the cache is dropped).
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let period = self.refresh;
        tokio::spawn(async move {
            let mut t = tokio::time::interval(period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t.tick().await;
            loop {
                t.tick().await;
                let Some(me) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = me.refresh_all().await {
                    tracing::warn!(error = %e, "broker: refreshing credentials failed; keeping the cached ones until they are too old");
                }
            }
        })
    }
}
