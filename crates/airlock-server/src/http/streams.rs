//! Opening event streams at the HTTP edge, once the pipeline has authenticated, authorised,
//! audited and checked the request: an SSE response whose body a task feeds, or a WebSocket
//! upgrade whose connection a task serves (see `event_stream`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use super::respond::{base_response, HttpResponse};
use super::ws;
use super::{header_str, Body};
use crate::core::Core;
use crate::error::{ApiError, ApiResult};
use crate::event_stream::{cloud_event, parse_filter, parse_heartbeat, sse, Item, Spec};

/// Which stream a request opens.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sse,
    Vault,
}

/// The stream a request asks for, if any; `Accept: text/event-stream` and `Last-Event-ID`
/// are turned into `stream=true` and `since`.
pub fn kind_of(path: &str, headers: &HeaderMap, query: &mut Vec<(String, String)>) -> Option<Kind> {
    if path == "sys/airlock/events" {
        let accept = header_str(headers, "accept").unwrap_or("");
        if accept.contains("text/event-stream") && !query.iter().any(|(k, _)| k == "stream") {
            query.push(("stream".into(), "true".into()));
        }
        let streaming = query
            .iter()
            .any(|(k, v)| k == "stream" && matches!(v.as_str(), "true" | "1"));
        if !streaming {
            return None;
        }
        if let Some(id) = header_str(headers, "last-event-id") {
            if !query.iter().any(|(k, _)| k == "since") {
                query.push(("since".into(), id.trim().to_string()));
            }
        }
        return Some(Kind::Sse);
    }
    path.starts_with("sys/events/subscribe/")
        .then_some(Kind::Vault)
}

fn q<'a>(query: &'a [(String, String)], k: &str) -> Option<&'a str> {
    query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn spec(query: &[(String, String)], vault_pattern: Option<String>) -> ApiResult<Spec> {
    Ok(Spec {
        since: crate::event_stream::parse_since(q(query, "since"))?,
        filter: parse_filter(q(query, "filter"))?,
        vault_pattern,
        heartbeat: parse_heartbeat(q(query, "heartbeat"))?,
    })
}

/// Server-Sent Events.
pub fn open_sse(
    core: &Arc<Core>,
    token: Zeroizing<String>,
    query: &[(String, String)],
) -> ApiResult<HttpResponse> {
    let mut spec = spec(query, None)?;
    // The heartbeat keeps the connection under the idle timeout.
    let idle = Duration::from_secs(core.config.listener.http_idle_timeout);
    spec.heartbeat = spec.heartbeat.min(idle / 2).max(Duration::from_secs(1));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let _ = tx.try_send(Bytes::from_static(b"retry: 2000\n\n"));
    tokio::spawn(Arc::clone(core).follow(token, spec, tx, sse));
    let mut r = base_response(200, Bytes::new(), "text/event-stream");
    *r.body_mut() = Body::stream(rx);
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

/// Vault's WebSocket subscription.
pub fn open_ws(
    core: &Arc<Core>,
    token: Zeroizing<String>,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> ApiResult<HttpResponse> {
    let is_ws = header_str(headers, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let key = header_str(headers, "sec-websocket-key");
    let (Some(upgrade), true, Some(key)) = (upgrade, is_ws, key) else {
        return Err(ApiError::bad_request(
            "this endpoint is a WebSocket: connect with an Upgrade: websocket request",
        ));
    };
    let pattern = path
        .trim_start_matches("sys/events/subscribe/")
        .trim()
        .to_string();
    let spec = spec(query, Some(pattern))?;
    let mut r = base_response(101, Bytes::new(), "application/json");
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.remove(CONTENT_TYPE);
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&ws::accept_key(key)) {
        h.insert("sec-websocket-accept", v);
    }
    let core = Arc::clone(core);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        serve_ws(core, token, spec, TokioIo::new(upgraded)).await;
    });
    Ok(r)
}

async fn serve_ws<S>(core: Arc<Core>, token: Zeroizing<String>, spec: Spec, io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (itx, mut irx) = tokio::sync::mpsc::channel::<Item>(16);
    // Control frames the reader needs sent (pong, close echo).
    let (ctx, mut crx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(8);
    let follower = tokio::spawn(Arc::clone(&core).follow(token, spec, itx, |i| i));
    let reader = tokio::spawn(async move {
        loop {
            match ws::read_frame(&mut rd).await {
                Ok(f) if f.op == ws::OP_PING => {
                    if ctx.send((ws::OP_PONG, f.payload)).await.is_err() {
                        return;
                    }
                }
                Ok(f) if f.op == ws::OP_CLOSE => {
                    let _ = ctx.send((ws::OP_CLOSE, ws::close_payload(1000, ""))).await;
                    return;
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = ctx
                        .send((ws::OP_CLOSE, ws::close_payload(1002, "protocol error")))
                        .await;
                    return;
                }
            }
        }
    });
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    loop {
        tokio::select! {
            item = irx.recv() => match item {
                Some(Item::Event(e)) => {
                    let mut msg = serde_json::to_vec(&cloud_event(&e)).unwrap_or_default();
                    msg.push(b'\n');
                    if ws::write_frame(&mut wr, ws::OP_TEXT, &msg).await.is_err() {
                        break;
                    }
                }
                Some(Item::Heartbeat) => {}
                Some(Item::End(why)) => {
                    let _ = ws::write_frame(&mut wr, ws::OP_CLOSE, &ws::close_payload(1008, why)).await;
                    break;
                }
                None => break,
            },
            ctl = crx.recv() => match ctl {
                Some((op, payload)) => {
                    let close = op == ws::OP_CLOSE;
                    if ws::write_frame(&mut wr, op, &payload).await.is_err() || close {
                        break;
                    }
                }
                None => break,
            },
            _ = ping.tick() => {
                if ws::write_frame(&mut wr, ws::OP_PING, b"").await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
    follower.abort();
    reader.abort();
}
