//! Broker audit events, off the data path: the proxy puts an event on a bounded channel
//! (never waiting), and one task batches them to a sink (Airlock's audit log). If the channel
//! is full the event is counted as dropped rather than stalling traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

/// One event. Holds no credential and no query string.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// When the request arrived; formatted (RFC 3339) only when the batch is written, off
    /// the data path.
    #[serde(serialize_with = "rfc3339")]
    pub time: time::OffsetDateTime,
    /// `inject`, `block`, `scrub`, `tunnel`, `deny`, `forward`, `honeytoken`.
    pub kind: &'static str,
    pub agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    pub method: String,
    pub host: String,
    pub port: u16,
    /// Normalised path, without the query.
    pub path: String,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub scrubbed: u64,
    /// `high` for events someone must look at now (a honeytoken used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<&'static str>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Most events in one sink write (the server accepts up to 2048).
const MAX_BATCH: usize = 2000;

pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait Sink: Send + Sync + 'static {
    fn write<'a>(&'a self, batch: &'a [Event]) -> SinkFuture<'a>;
}

#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Event>,
    /// Events accepted onto the channel.
    recorded: Arc<AtomicU64>,
    /// Events the batcher is finished with (written, or given up on after retries).
    settled: Arc<AtomicU64>,
    /// Cuts the batcher's group-commit wait short (used by [`Auditor::flush`]).
    hurry: Arc<tokio::sync::Notify>,
    pub dropped: Arc<AtomicU64>,
    pub written: Arc<AtomicU64>,
}

impl Auditor {
    /// Starts the batching task.
    pub fn start(sink: Arc<dyn Sink>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Event>(8192);
        let written = Arc::new(AtomicU64::new(0));
        let settled = Arc::new(AtomicU64::new(0));
        let hurry = Arc::new(tokio::sync::Notify::new());
        let (w, done, h) = (written.clone(), settled.clone(), hurry.clone());
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(ev) = rx.recv().await {
                batch.push(ev);
                // Group commit: let events gather for a moment, then send them together
                // (one request per window instead of one per event).
                // Sleeping (rather than waiting on the channel) means senders never wake this
                // task per event: one wake-up per window.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = h.notified() => {}
                }
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let mut tries = 0;
                loop {
                    match sink.write(&batch).await {
                        Ok(()) => {
                            w.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            break;
                        }
                        Err(e) if tries < 5 => {
                            tries += 1;
                            tracing::warn!(error = %e, "broker audit: write failed, retrying");
                            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, events = batch.len(), "broker audit: giving up on a batch");
                            break;
                        }
                    }
                }
                done.fetch_add(batch.len() as u64, Ordering::Release);
                batch.clear();
            }
        });
        Auditor {
            tx,
            recorded: Arc::new(AtomicU64::new(0)),
            settled,
            hurry,
            dropped: Arc::new(AtomicU64::new(0)),
            written,
        }
    }

    pub fn record(&self, ev: Event) {
        // Counted before it is queued, so a flush never sees it settled before it is counted.
        self.recorded.fetch_add(1, Ordering::AcqRel);
        if self.tx.try_send(ev).is_err() {
            self.recorded.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (at most `max`) until every event recorded so far has been written to the sink
    /// (or given up on), so a short `broker run` keeps its last events. Returns whether
    /// everything was settled in time.
    pub async fn flush(&self, max: Duration) -> bool {
        let target = self.recorded.load(Ordering::Acquire);

        let deadline = tokio::time::Instant::now() + max;
        loop {
            if self.settled.load(Ordering::Acquire) >= target {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            self.hurry.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &time::OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}
