//! The event log: every change to a secret (and, through the same call, anything else that
//! emits one) is recorded durably with a cursor that only grows, and read back by
//! subscribers that resume from a cursor.
//!
//! An engine commits an event in the same batch as the change (`Ctx::event`,
//! `events/pending/<time>-<random>`), so a change and its event exist together or not at
//! all. The sequencer — one node, the leader — moves pending events into the log in the
//! order it finds them, giving each the next cursor (`events/log/<cursor>`, `events/meta`,
//! a conditional write), and drops what is past the retention (`[events]`: 100,000 events,
//! 24 h). Since one sequencer appends and the log only grows at its end, a reader that
//! resumes after cursor N misses nothing; one that fell behind the retention gets a
//! `reset`. Readers learn of new cursors through the change feed (other nodes) or the
//! sequencer (this node) and wake their long polls.
//!
//! `GET sys/airlock/events?since=N&wait=S` answers with the events after N the caller may
//! read (`read` on the event's data path), at most `limit`, waiting up to `wait` seconds
//! for one. Events carry paths, versions and operations, never a value.

use std::sync::Arc;
use std::time::Duration;

use airlock_store::{BarrierOp, EVENTS_PENDING};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Request, Response};

pub use crate::event_hub::{EventsHub, LOG};

pub const META: &str = "events/meta";

#[derive(Clone, Copy, Serialize, Deserialize)]
struct Meta {
    /// The cursor the next event gets.
    next: u64,
    /// The oldest cursor kept.
    first: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta { next: 1, first: 1 }
    }
}

fn log_key(c: u64) -> String {
    format!("{LOG}{c:020}")
}

impl Core {
    /// Sequences pending events while this node leads (woken by its own commits, by other
    /// nodes' through the feed, and every second).
    pub fn spawn_event_sequencer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = core.barrier.events_written().notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if core.is_sealed() || !core.ha.is_leader() || !core.ha.is_coherent() {
                    continue;
                }
                loop {
                    match core.sequence_events().await {
                        Ok(n) if n >= SEQUENCE_BATCH => continue,
                        Ok(_) => break,
                        Err(e) => {
                            if !e.is_conflict() {
                                tracing::warn!(error = ?e.errors, "sequencing events failed; will retry");
                            }
                            break;
                        }
                    }
                }
            }
        })
    }

    /// Hands every new event, once, to the readers following its path (see
    /// `event_hub`), on every node; starts at the log's end.
    pub fn spawn_event_dispatcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let mut rx = core.events.subscribe();
            let mut swept = std::time::Instant::now();
            loop {
                if core.is_sealed() || !core.ha.is_coherent() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                if core.events.dispatched() == 0 {
                    match core.barrier.get_json::<Meta>(META).await {
                        Ok(m) => {
                            let m = m.unwrap_or_default();
                            core.events.advance(m.next - 1);
                            core.events.start_dispatch(m.next - 1);
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    }
                }
                let from = core.events.dispatched();
                let to = *rx.borrow_and_update();
                for c in from + 1..=to {
                    match core.event_at(c).await {
                        Ok(e) => {
                            let path = e.as_ref().and_then(|e| e["data_path"].as_str());
                            core.events.dispatch(c, path.unwrap_or(""));
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            break;
                        }
                    }
                }
                if swept.elapsed() > Duration::from_secs(60) {
                    core.events.sweep();
                    swept = std::time::Instant::now();
                }
                if core.events.dispatched() >= *rx.borrow() {
                    tokio::select! {
                        _ = rx.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        })
    }

    /// One log entry: from the recent ones kept in memory, or from storage (then kept).
    pub async fn event_at(&self, c: u64) -> ApiResult<Option<Arc<Value>>> {
        if let Some(e) = self.events.cached(c) {
            return Ok(Some(e));
        }
        Ok(match self.barrier.get_json::<Value>(&log_key(c)).await? {
            Some(e) => {
                let e = Arc::new(e);
                self.events.keep(c, Arc::clone(&e));
                Some(e)
            }
            None => None,
        })
    }

    /// Moves up to `SEQUENCE_BATCH` pending events into the log and applies the
    /// retention, in one conditional batch. Returns how many were moved.
    async fn sequence_events(&self) -> ApiResult<usize> {
        let g = self.root.lock(META).await?;
        let mut meta: Meta = self.barrier.get_json(META).await?.unwrap_or_default();
        let pending = self.barrier.list(EVENTS_PENDING).await?;
        let mut ops = Vec::new();
        let mut written = Vec::new();
        let mut moved = 0;
        // Entries before this pass's first cursor are in storage; later ones are in `ops`.
        let stored_before = meta.next;
        let now = crate::core::now_unix();
        for name in pending
            .iter()
            .filter(|n| !n.ends_with('/'))
            .take(SEQUENCE_BATCH)
        {
            let key = format!("{EVENTS_PENDING}{name}");
            let Some(raw) = self.barrier.get(&key).await? else {
                continue;
            };
            ops.push(BarrierOp::Delete(key));
            let Ok(Value::Object(mut e)) = serde_json::from_slice::<Value>(&raw) else {
                tracing::warn!("a malformed pending event was dropped");
                continue;
            };
            e.insert("cursor".into(), json!(meta.next));
            e.insert("id".into(), json!(meta.next.to_string()));
            let b = serde_json::to_vec(&e).map_err(|x| ApiError::internal(&x))?;
            ops.push(BarrierOp::Put(log_key(meta.next), b));
            written.push((meta.next, Value::Object(e)));
            meta.next += 1;
            moved += 1;
        }
        // Retention: at most `max_events`, none older than `max_age` (bounded per pass).
        let cfg = &self.config.events;
        let mut dropped = 0;
        while meta.first < meta.next && dropped < 1000 {
            let too_many = meta.next - meta.first > cfg.max_events.max(1);
            let too_old = !too_many
                && meta.first < stored_before
                && match self.barrier.get_json::<Value>(&log_key(meta.first)).await? {
                    Some(e) => e["time"]
                        .as_str()
                        .and_then(crate::core::parse_rfc3339_nanos)
                        .is_some_and(|ns| (ns / 1_000_000_000) as i64 + cfg.max_age < now),
                    None => true,
                };
            if !too_many && !too_old {
                break;
            }
            ops.push(BarrierOp::Delete(log_key(meta.first)));
            meta.first += 1;
            dropped += 1;
        }
        if ops.is_empty() {
            return Ok(0);
        }
        let b = serde_json::to_vec(&meta).map_err(|x| ApiError::internal(&x))?;
        ops.push(BarrierOp::Put(META.into(), b));
        g.commit(ops).await?;
        self.events.retained_from(meta.first);
        for (c, e) in written {
            self.events.keep(c, Arc::new(e));
        }
        self.events.advance(meta.next - 1);
        Ok(moved)
    }

    /// The events after `since` that `admit` lets through, waiting up to `wait` for one;
    /// and the cursor to resume after. A `reset` event (always admitted) says that events
    /// were dropped by the retention before they could be read.
    pub async fn events_after(
        &self,
        since: Option<u64>,
        wait: Duration,
        limit: usize,
        admit: &(dyn Fn(&Value) -> bool + Send + Sync),
    ) -> ApiResult<(Vec<Value>, u64)> {
        let mut rx = self.events.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let mut since = since;
        let mut out = Vec::new();
        let next = loop {
            let pass = std::time::Instant::now();
            let latest = self.events.latest();
            // From the recent events kept in memory when they cover what is asked (no
            // storage read at all); otherwise from the log's meta and entries.
            let from_cache =
                since.is_some_and(|c| c >= latest || self.events.cached(c + 1).is_some());
            let (first, last_known) = if from_cache {
                (0, latest)
            } else {
                let meta: Meta = self.barrier.get_json(META).await?.unwrap_or_default();
                self.events.advance(meta.next - 1);
                self.events.retained_from(meta.first);
                (meta.first, meta.next - 1)
            };
            // Without a cursor: from now on.
            let mut cur = since.unwrap_or(last_known);
            if cur + 1 < first {
                // Fell behind the retention: say so, never skip silently.
                out.push(json!({
                    "event_type": "reset",
                    "cursor": first - 1,
                    "id": (first - 1).to_string(),
                    "metadata": {"missed_from": cur + 1, "missed_to": first - 1},
                }));
                cur = first - 1;
            }
            let last = last_known.min(cur + SCAN_MAX);
            for c in cur + 1..=last {
                cur = c;
                let Some(e) = self.event_at(c).await? else {
                    continue;
                };
                if admit(&e) {
                    out.push(Value::clone(&e));
                }
                if out.len() >= limit {
                    break;
                }
            }
            since = Some(cur);
            if !out.is_empty() || tokio::time::Instant::now() >= deadline {
                break cur;
            }
            // Nothing admitted yet: wait for a newer cursor, or the deadline — but look
            // at most every MIN_PASS, so a reader takes a burst of others' writes in one
            // pass instead of waking for each.
            let pause = tokio::time::Instant::from_std(pass + MIN_PASS).min(deadline);
            tokio::time::sleep_until(pause).await;
            let woke = tokio::time::timeout_at(deadline, async {
                while *rx.borrow_and_update() <= cur {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
            if woke.is_err() {
                break cur;
            }
        };
        Ok((out, next))
    }
}

/// Entries one pass of `events_after` looks at, at most.
const SCAN_MAX: u64 = 10_000;

/// A reader looks at the log at most this often (see `events_after`).
const MIN_PASS: Duration = Duration::from_millis(50);

/// Pending events moved per batch.
const SEQUENCE_BATCH: usize = 500;

/// `GET sys/airlock/events?since=N&wait=30s&limit=100&filter=EXPR`.
pub async fn handle(core: &Core, req: &Request, caller: &Caller) -> ApiResult<Response> {
    let q = |k: &str| {
        req.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let since = crate::event_stream::parse_since(q("since"))?;
    let filter = crate::event_stream::parse_filter(q("filter"))?;
    let wait = match q("wait") {
        None | Some("") => 0,
        Some(v) => airlock_core::duration::parse_duration(v)
            .map_err(|_| ApiError::bad_request("wait must be a duration (e.g. 30s)"))?,
    };
    let limit = q("limit")
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| ApiError::bad_request("limit must be a number"))
        })
        .transpose()?
        .unwrap_or(100)
        .clamp(1, 1000);
    if crate::event_stream::wants_stream(req) {
        // Server-Sent Events: checked here, opened by the HTTP edge.
        crate::event_stream::parse_heartbeat(q("heartbeat"))?;
        return Ok(Response::empty());
    }
    let spec = crate::event_stream::Spec {
        since,
        filter,
        vault_pattern: None,
        heartbeat: Duration::from_secs(15),
    };
    let (events, next) = core
        .events_after(since, Duration::from_secs(wait.min(60)), limit, &|e| {
            spec.admits(caller, e)
        })
        .await?;
    Ok(Response::data(json!({ "events": events, "next": next })))
}
