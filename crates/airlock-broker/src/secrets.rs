//! Credential resolution: an in-memory cache of the bound secrets, refreshed in the
//! background from Airlock, so the request path never waits on the store and a rotation in
//! Airlock reaches the next request without restarting the agent.
//!
//! Fail closed: an entry older than `max_age` (the store has been unreachable for that long)
//! is not used; the request gets 503 instead of a possibly revoked credential.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

pub type SecretMap = HashMap<String, Zeroizing<String>>;
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<SecretMap, String>> + Send + 'a>>;

/// Reads a whole KV entry (key → value). Errors must not contain secret values.
pub trait SecretSource: Send + Sync + 'static {
    fn fetch<'a>(&'a self, path: &'a str) -> FetchFuture<'a>;
}

struct Entry {
    value: Arc<Zeroizing<String>>,
    fetched: Instant,
}

pub struct SecretCache {
    source: Arc<dyn SecretSource>,
    /// (path, key) pairs to keep fresh.
    wanted: Vec<(String, String)>,
    entries: RwLock<HashMap<(String, String), Entry>>,
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
            refresh,
            max_age,
            failures: Default::default(),
        })
    }

    /// Fetches every wanted secret once. Errors name the path and key, never a value.
    pub async fn refresh_all(&self) -> Result<(), String> {
        let mut paths: Vec<&str> = self.wanted.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort_unstable();
        paths.dedup();
        let mut first_err = None;
        for p in paths {
            match self.source.fetch(p).await {
                Ok(map) => {
                    let now = Instant::now();
                    let mut missing = None;
                    let mut fresh = Vec::new();
                    let mut gone = Vec::new();
                    for (wp, wk) in self.wanted.iter().filter(|(wp, _)| wp == p) {
                        // `?key`: optional (absent now: dropped from the cache).
                        let (key, optional) = match wk.strip_prefix('?') {
                            Some(k) => (k, true),
                            None => (wk.as_str(), false),
                        };
                        match map.get(key) {
                            Some(v) => fresh.push((
                                (wp.clone(), wk.clone()),
                                Entry {
                                    value: Arc::new(v.clone()),
                                    fetched: now,
                                },
                            )),
                            None if optional => gone.push((wp.clone(), wk.clone())),
                            None => missing = Some(format!("{p}: no key {wk:?}")),
                        }
                    }
                    if let Ok(mut e) = self.entries.write() {
                        for (k, v) in fresh {
                            e.insert(k, v);
                        }
                        for k in gone {
                            e.remove(&k);
                        }
                    }
                    if let Some(m) = missing {
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

    /// The current value, if fresh enough (an optional key is named with its `?`). Never
    /// blocks on I/O.
    pub fn get(&self, path: &str, key: &str) -> Option<Arc<Zeroizing<String>>> {
        let e = self.entries.read().ok()?;
        let en = e.get(&(path.to_string(), key.to_string()))?;
        (en.fetched.elapsed() <= self.max_age).then(|| en.value.clone())
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
