//! Open event streams: Server-Sent Events on `sys/airlock/events?stream=true` (or
//! `Accept: text/event-stream`) and Vault's WebSocket API on
//! `sys/events/subscribe/<event type pattern>?json=true`.
//!
//! A stream follows the event log from a cursor (`since`, `Last-Event-ID`, or now). Every
//! event is authorised for the subscriber as it goes out: `read` on the event's data path
//! (and, for Vault's API, the `subscribe` capability there for that event type), so a
//! policy change applies at once. The token is looked up again every
//! [`REVALIDATE`] (without counting a use): revoked or expired, the stream ends with a
//! final `end` (SSE) or a close frame (WebSocket). A quiet stream gets a heartbeat.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::event_filter::Filter;
use airlock_core::policy::{event_glob, Operation};
use bytes::Bytes;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::Request;

/// How often a stream checks that its token is still valid.
pub const REVALIDATE: Duration = Duration::from_secs(2);

/// What a stream sends and to whom.
pub struct Spec {
    pub since: Option<u64>,
    pub filter: Option<Filter>,
    /// Vault's API: the event type pattern subscribed to (`kv-v2/*`, `*`).
    pub vault_pattern: Option<String>,
    pub heartbeat: Duration,
}

/// One thing to send.
pub enum Item {
    Event(Value),
    Heartbeat,
    /// The stream ends, and why.
    End(&'static str),
}

/// A field of an event, as filters see it.
pub fn field<'a>(e: &'a Value, name: &str) -> Option<Cow<'a, str>> {
    let s = |v: &'a Value| match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Null => None,
        other => Some(Cow::Owned(other.to_string())),
    };
    match name {
        "event_type" | "path" | "data_path" | "mount_path" | "mount_type" | "mount_accessor" => {
            e.get(name).and_then(s)
        }
        "source_plugin_mount" => e.get("mount_path").and_then(s),
        "plugin" | "source_plugin_type" => e.get("mount_type").and_then(s),
        other => e
            .get("metadata")
            .and_then(|m| m.get(other.strip_prefix("metadata.").unwrap_or(other)))
            .and_then(s),
    }
}

impl Spec {
    /// Whether `caller` gets event `e` on this stream.
    pub fn admits(&self, caller: &Caller, e: &Value) -> bool {
        let kind = e["event_type"].as_str().unwrap_or("");
        if kind == "reset" {
            return true;
        }
        if let Some(p) = &self.vault_pattern {
            if !event_glob(p, kind) {
                return false;
            }
        }
        if let Some(f) = &self.filter {
            if !f.matches(&|n| field(e, n)) {
                return false;
            }
        }
        if caller.is_root {
            return true;
        }
        let path = e["data_path"].as_str().unwrap_or("");
        if path.is_empty() || caller.acl.allowed(path, Operation::Read, None).is_err() {
            return false;
        }
        self.vault_pattern.is_none() || caller.acl.may_subscribe(path, kind)
    }
}

/// A cursor from `since` (or `Last-Event-ID`).
pub fn parse_since(v: Option<&str>) -> ApiResult<Option<u64>> {
    v.filter(|v| !v.is_empty())
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request("since must be a cursor (a non-negative integer)")
            })
        })
        .transpose()
}

pub fn parse_filter(v: Option<&str>) -> ApiResult<Option<Filter>> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(f) => Filter::parse(f)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}"))),
    }
}

/// The heartbeat interval: `heartbeat=15s` (1 s to 60 s; 15 s by default).
pub fn parse_heartbeat(v: Option<&str>) -> ApiResult<Duration> {
    match v.map(str::trim) {
        None | Some("") => Ok(Duration::from_secs(15)),
        Some(h) => match airlock_core::duration::parse_duration(h) {
            Ok(s) if (1..=60).contains(&s) => Ok(Duration::from_secs(s)),
            _ => Err(ApiError::bad_request(
                "heartbeat must be a duration from 1s to 60s",
            )),
        },
    }
}

/// Whether an events request asks for a stream (`stream=true`; the HTTP edge turns
/// `Accept: text/event-stream` into it).
pub fn wants_stream(req: &Request) -> bool {
    req.query
        .iter()
        .any(|(k, v)| k == "stream" && matches!(v.as_str(), "true" | "1"))
}

/// `json` on Vault's subscribe endpoint: only JSON is spoken (Vault's default is protobuf).
pub fn check_vault_params(req: &Request) -> ApiResult<()> {
    for (k, v) in &req.query {
        match k.as_str() {
            "json" => match v.as_str() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => {}
                "false" | "0" | "f" | "F" | "FALSE" | "False" => {
                    return Err(ApiError::bad_request(
                        "only JSON events are served: subscribe with json=true",
                    ))
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid parameter for JSON: {v}"
                    )))
                }
            },
            "filter" => {
                parse_filter(Some(v))?;
            }
            "since" => {
                parse_since(Some(v))?;
            }
            _ => {}
        }
    }
    if req
        .path
        .trim_start_matches("sys/events/subscribe/")
        .trim()
        .is_empty()
    {
        return Err(ApiError::bad_request(
            "did not specify eventType to subscribe to",
        ));
    }
    Ok(())
}

impl Core {
    /// The caller a token stands for now, without counting a use; `None` once it is revoked
    /// or expired.
    pub async fn caller_now(&self, token: &str) -> ApiResult<Option<Caller>> {
        let Some(entry) = self.tokens.lookup(token).await? else {
            return Ok(None);
        };
        let is_root = entry.policies.iter().any(|p| p == "root");
        let acl = if is_root {
            Arc::new(airlock_core::policy::Acl::root())
        } else {
            self.policies.acl_for(&entry.policies).await?
        };
        Ok(Some(Caller {
            entry: Some(entry),
            acl,
            is_root,
        }))
    }

    /// The admitted events among `cursors` (those after `since`), and the last cursor.
    async fn events_at(
        &self,
        since: Option<u64>,
        cursors: Vec<u64>,
        admit: &(dyn Fn(&Value) -> bool + Send + Sync),
    ) -> ApiResult<(Vec<Value>, u64)> {
        let mut next = since.unwrap_or(0);
        let mut out = Vec::new();
        for c in cursors {
            if c <= next {
                continue;
            }
            if let Some(e) = self.event_at(c).await? {
                if admit(&e) {
                    out.push(Value::clone(&e));
                }
            }
            next = c;
        }
        Ok((out, next))
    }

    /// Follows the event log for a stream until the receiver goes away or the token does;
    /// `out` turns each item into what the receiver takes (SSE text, or the item itself).
    pub async fn follow<T: Send + 'static>(
        self: Arc<Self>,
        token: Zeroizing<String>,
        spec: Spec,
        tx: tokio::sync::mpsc::Sender<T>,
        out: fn(Item) -> T,
    ) {
        let send = |i: Item| tx.send(out(i));
        let mut since = spec.since;
        let mut quiet_since = Instant::now();
        let mut caller: Option<(Caller, Instant)> = None;
        // A stream on given data paths gets their cursors from the dispatcher (see
        // `event_hub`) once it has scanned up to where the dispatcher was.
        let mut catch_up_to = 0;
        let inbox = match spec.filter.as_ref().and_then(|f| f.pinned("data_path")) {
            Some(paths) => match self.events.register(&paths) {
                Some((inbox, d)) => {
                    match since {
                        None => since = Some(d),
                        Some(s) if s < d => catch_up_to = d,
                        Some(_) => {}
                    }
                    Some(inbox)
                }
                None => None,
            },
            None => None,
        };
        loop {
            if tx.is_closed() {
                return;
            }
            if self.is_sealed() {
                let _ = send(Item::End("sealed")).await;
                return;
            }
            // The token, looked up again every REVALIDATE (not on every event).
            let fresh = caller
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() < REVALIDATE);
            if !fresh {
                match Box::pin(self.caller_now(&token)).await {
                    Ok(Some(c)) => caller = Some((c, Instant::now())),
                    Ok(None) => {
                        let _ = send(Item::End("token revoked or expired")).await;
                        return;
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let Some((c, checked)) = caller.as_ref() else {
                continue;
            };
            let wait = REVALIDATE
                .saturating_sub(checked.elapsed())
                .min(spec.heartbeat.saturating_sub(quiet_since.elapsed()))
                .max(Duration::from_millis(50));
            let admit = |e: &Value| spec.admits(c, e);
            let got = match &inbox {
                None => Box::pin(self.events_after(since, wait, 100, &admit)).await,
                Some(_) if since.is_some_and(|s| s < catch_up_to) => {
                    Box::pin(self.events_after(since, Duration::ZERO, 100, &admit)).await
                }
                Some(inbox) => {
                    tokio::select! {
                        _ = inbox.notify.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    match inbox.take() {
                        Some(cursors) => Box::pin(self.events_at(since, cursors, &admit)).await,
                        None => {
                            // Too many to hold: scan the log instead.
                            catch_up_to = self.events.dispatched();
                            Box::pin(self.events_after(since, Duration::ZERO, 100, &admit)).await
                        }
                    }
                }
            };
            match got {
                Ok((events, next)) => {
                    since = Some(next);
                    for e in events {
                        if send(Item::Event(e)).await.is_err() {
                            return;
                        }
                        quiet_since = Instant::now();
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
            if quiet_since.elapsed() >= spec.heartbeat {
                if send(Item::Heartbeat).await.is_err() {
                    return;
                }
                quiet_since = Instant::now();
            }
        }
    }
}

/// An item as Server-Sent Events text.
pub fn sse(item: Item) -> Bytes {
    match &item {
        Item::Event(e) => {
            let data = serde_json::to_string(e).unwrap_or_default();
            let kind = e["event_type"].as_str().unwrap_or("message");
            let id = e["cursor"].as_u64().unwrap_or(0);
            Bytes::from(format!("id: {id}\nevent: {kind}\ndata: {data}\n\n"))
        }
        Item::Heartbeat => Bytes::from_static(b": heartbeat\n\n"),
        Item::End(why) => Bytes::from(format!(
            "event: end\ndata: {}\n\n",
            json!({ "reason": why })
        )),
    }
}

/// An event in Vault's envelope (a CloudEvent whose data is Vault's `EventReceived`).
pub fn cloud_event(e: &Value) -> Value {
    let id = e["id"].clone();
    let mount_path = e["mount_path"].as_str().unwrap_or("");
    let mount_type = e["mount_type"].as_str().unwrap_or("");
    let class = if mount_path.starts_with("auth/") {
        "auth"
    } else if mount_type == "system" {
        "system"
    } else {
        "secret"
    };
    let plugin = match mount_type {
        "kv-v2" | "kv-v1" | "generic" => "kv",
        other => other,
    };
    json!({
        "id": id,
        "source": "airlock",
        "specversion": "1.0",
        "type": "*",
        "data": {
            "event": { "id": id, "metadata": e["metadata"] },
            "event_type": e["event_type"],
            "plugin_info": {
                "mount_class": class,
                "mount_accessor": e["mount_accessor"],
                "mount_path": mount_path,
                "plugin": plugin,
            },
        },
        "datacontentype": "application/cloudevents",
        "time": e["time"],
    })
}
