//! Where this node's event readers wait: the newest cursor this node knows of. Kept below
//! the core (the core holds one); `events.rs` writes and reads the log above it.

/// Where the event log's entries are stored (`events/log/<cursor, 20 digits>`).
pub const LOG: &str = "events/log/";

/// Where this node's readers wait for new cursors.
pub struct EventsHub {
    latest: tokio::sync::watch::Sender<u64>,
}

impl Default for EventsHub {
    fn default() -> Self {
        Self {
            latest: tokio::sync::watch::channel(0).0,
        }
    }
}

impl EventsHub {
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
