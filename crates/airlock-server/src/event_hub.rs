//! Where this node's event readers wait: the newest cursor this node knows of, the recent
//! events decoded, and an index of the readers that follow given paths. Kept below the core
//! (the core holds one); `events.rs` writes and reads the log above it.
//!
//! A reader that follows given data paths (a stream filtered on `data_path == …`) does not
//! look at every event: it registers an [`Inbox`] under its paths, and the node's
//! dispatcher, which reads each event once, hands it the cursors of its paths' events only.
//! So a thousand streams on their own keys cost nothing while others write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Where the event log's entries are stored (`events/log/<cursor, 20 digits>`).
pub const LOG: &str = "events/log/";

/// Recent events kept decoded, so many subscribers reading the same event cost one read.
const CACHED: usize = 8192;

/// Cursors an inbox holds before its reader must scan the log instead.
const INBOX_MAX: usize = 4096;

/// The cursors of the events on a reader's paths, as the dispatcher finds them.
#[derive(Default)]
pub struct Inbox {
    pub notify: tokio::sync::Notify,
    cursors: Mutex<Vec<u64>>,
    overflow: AtomicBool,
}

impl Inbox {
    /// The cursors handed over since the last call, in order; `None` when some were not
    /// kept (too many): the reader scans the log from its cursor instead.
    pub fn take(&self) -> Option<Vec<u64>> {
        let v = self
            .cursors
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        if self.overflow.swap(false, Ordering::AcqRel) {
            return None;
        }
        Some(v)
    }
}

#[derive(Default)]
struct Index {
    /// Every event up to this cursor has been handed to the inboxes (0: not started).
    dispatched: u64,
    by_path: HashMap<String, Vec<Weak<Inbox>>>,
}

/// Where this node's readers wait for new cursors.
pub struct EventsHub {
    index: Mutex<Index>,
    latest: tokio::sync::watch::Sender<u64>,
    recent: Mutex<std::collections::BTreeMap<u64, Arc<serde_json::Value>>>,
    /// The oldest cursor the log keeps, as last known here.
    first: AtomicU64,
}

impl Default for EventsHub {
    fn default() -> Self {
        Self {
            index: Mutex::default(),
            latest: tokio::sync::watch::channel(0).0,
            recent: Default::default(),
            first: Default::default(),
        }
    }
}

impl EventsHub {
    /// A reader follows `paths`: its inbox gets the cursors of their events after the
    /// returned one (everything up to it is the reader's to scan). `None` until the
    /// dispatcher runs.
    pub fn register(&self, paths: &[String]) -> Option<(Arc<Inbox>, u64)> {
        let mut ix = self.index.lock().ok()?;
        if ix.dispatched == 0 {
            return None;
        }
        let inbox = Arc::new(Inbox::default());
        for p in paths {
            let list = ix.by_path.entry(p.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.push(Arc::downgrade(&inbox));
        }
        Some((inbox, ix.dispatched))
    }

    /// Where the dispatcher is (0: not started).
    pub fn dispatched(&self) -> u64 {
        self.index.lock().map(|ix| ix.dispatched).unwrap_or(0)
    }

    /// The dispatcher starts after cursor `c` (the log's end when it starts).
    pub fn start_dispatch(&self, c: u64) {
        if let Ok(mut ix) = self.index.lock() {
            if ix.dispatched == 0 {
                ix.dispatched = c.max(1);
            }
        }
    }

    /// The dispatcher hands event `c` (about `data_path`) to the inboxes of that path.
    pub fn dispatch(&self, c: u64, data_path: &str) {
        let Ok(mut ix) = self.index.lock() else {
            return;
        };
        if c <= ix.dispatched {
            return;
        }
        ix.dispatched = c;
        let mut emptied = false;
        if let Some(list) = ix.by_path.get_mut(data_path) {
            list.retain(|w| match w.upgrade() {
                Some(inbox) => {
                    if let Ok(mut cur) = inbox.cursors.lock() {
                        if cur.len() >= INBOX_MAX {
                            inbox.overflow.store(true, Ordering::Release);
                            cur.clear();
                        } else {
                            cur.push(c);
                        }
                    }
                    inbox.notify.notify_one();
                    true
                }
                None => false,
            });
            emptied = list.is_empty();
        }
        if emptied {
            ix.by_path.remove(data_path);
        }
    }

    /// Drops the index entries of readers that are gone.
    pub fn sweep(&self) {
        if let Ok(mut ix) = self.index.lock() {
            ix.by_path.retain(|_, list| {
                list.retain(|w| w.strong_count() > 0);
                !list.is_empty()
            });
        }
    }

    /// The newest cursor known here.
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// A log entry, if it is among the recent ones kept here.
    pub fn cached(&self, c: u64) -> Option<Arc<serde_json::Value>> {
        self.recent.lock().ok()?.get(&c).cloned()
    }

    /// The log's oldest cursor moved (the retention dropped entries): they leave the cache
    /// too, so a reader behind them gets its `reset`.
    pub fn retained_from(&self, first: u64) {
        if let Ok(mut r) = self.recent.lock() {
            *r = r.split_off(&first);
        }
        self.first.fetch_max(first, Ordering::Relaxed);
    }

    /// Keeps a log entry (read from storage or just written) for the next readers.
    pub fn keep(&self, c: u64, e: Arc<serde_json::Value>) {
        if c < self.first.load(Ordering::Relaxed) {
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
