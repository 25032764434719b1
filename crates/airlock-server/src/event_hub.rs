//! Where this node's event readers wait: the newest cursor this node knows of. Kept below
//! the core (the core holds one); `events.rs` writes and reads the log above it.

/// Where the event log's entries are stored (`events/log/<cursor, 20 digits>`).
pub const LOG: &str = "events/log/";

/// Recent events kept decoded, so many subscribers reading the same event cost one read.
const CACHED: usize = 8192;

/// Where this node's readers wait for new cursors.
pub struct EventsHub {
    latest: tokio::sync::watch::Sender<u64>,
    recent: std::sync::Mutex<std::collections::BTreeMap<u64, std::sync::Arc<serde_json::Value>>>,
    /// The oldest cursor the log keeps, as last known here.
    first: std::sync::atomic::AtomicU64,
}

impl Default for EventsHub {
    fn default() -> Self {
        Self {
            latest: tokio::sync::watch::channel(0).0,
            recent: Default::default(),
            first: Default::default(),
        }
    }
}

impl EventsHub {
    /// The newest cursor known here.
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// A log entry, if it is among the recent ones kept here.
    pub fn cached(&self, c: u64) -> Option<std::sync::Arc<serde_json::Value>> {
        self.recent.lock().ok()?.get(&c).cloned()
    }

    /// The log's oldest cursor moved (the retention dropped entries): they leave the cache
    /// too, so a reader behind them gets its `reset`.
    pub fn retained_from(&self, first: u64) {
        if let Ok(mut r) = self.recent.lock() {
            *r = r.split_off(&first);
        }
        self.first
            .fetch_max(first, std::sync::atomic::Ordering::Relaxed);
    }

    /// Keeps a log entry (read from storage or just written) for the next readers.
    pub fn keep(&self, c: u64, e: std::sync::Arc<serde_json::Value>) {
        if c < self.first.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Ok(mut r) = self.recent.lock() {
            r.insert(c, e);
            while r.len() > CACHED {
                r.pop_first();
            }
        }
    }

    /// Follows the newest cursor.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// A cursor became readable (written here, or seen in the change feed).
    pub fn advance(&self, c: u64) {
        self.latest.send_if_modified(|v| {
            if c > *v {
                *v = c;
                true
            } else {
                false
            }
        });
    }

    /// A key another node wrote: wakes readers for a new log entry.
    pub fn saw_key(&self, key: &str) {
        if let Some(c) = key.strip_prefix(LOG).and_then(|n| n.parse::<u64>().ok()) {
            self.advance(c);
        }
    }
}
