//! MCP's older HTTP+SSE transport: the client holds an event stream open (`GET`), whose
//! first `endpoint` event names the URL it POSTs its JSON-RPC messages to; the server
//! answers those POSTs `202 Accepted` and sends each JSON-RPC response as a `message` event
//! on the stream. A tool call the MCP policy denies must therefore be answered on the
//! stream, not in the POST's body (a client of this transport would wait for it there until
//! its own timeout).
//!
//! [`SseTap`] wraps the event stream of an MCP host: it reads the `endpoint` event, registers
//! the stream in [`Sessions`] under the agent, host and endpoint path, and lets
//! [`Sessions::answer`] put an event between two of the server's events (never inside one).
//! The registration ends with the stream.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::upstream::Body;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much of a stream's start is searched for the `endpoint` event.
const MAX_SEARCHED: usize = 16 << 10;
/// At most this many open MCP event streams are registered.
const MAX_SESSIONS: usize = 4096;
/// Answers waiting for a stream's client to read on; beyond this, denials are answered in
/// the POST's body (a client that does not read its stream cannot make the broker hoard).
const MAX_QUEUED: usize = 64;

/// The open event streams of MCP sessions, by agent, host and endpoint path with query.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, mpsc::Sender<Bytes>>>);

fn key(agent: &str, host: &str, endpoint: &str) -> String {
    format!("{agent}\n{host}\n{endpoint}")
}

impl Sessions {
    /// Sends a JSON-RPC message (`json`, one line) as a `message` event on the session whose
    /// endpoint is `path_query`; false when no such stream is open (or its queue is full).
    pub(super) fn answer(&self, agent: &str, host: &str, path_query: &str, json: &[u8]) -> bool {
        let Ok(m) = self.0.lock() else {
            return false;
        };
        let Some(tx) = m.get(&key(agent, host, path_query)) else {
            return false;
        };
        let mut ev = Vec::with_capacity(json.len() + 24);
        ev.extend_from_slice(b"event: message\ndata: ");
        ev.extend_from_slice(json);
        ev.extend_from_slice(b"\n\n");
        tx.try_send(Bytes::from(ev)).is_ok()
    }
}

/// The `data` of a complete `endpoint` event at the start of `text`, if there is one.
fn endpoint_event(text: &str) -> Option<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let events: Vec<&str> = text.split("\n\n").collect();
    // The last piece has no blank line after it yet: not a complete event.
    for event in &events[..events.len() - 1] {
        let mut is_endpoint = false;
        let mut data = Vec::new();
        for line in event.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                is_endpoint = v.trim() == "endpoint";
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if is_endpoint && !data.is_empty() {
            return Some(data.join("\n"));
        }
    }
    None
}

/// The path and query a client POSTs to for `endpoint`, resolved against the stream's path.
fn resolve(stream_path: &str, endpoint: &str) -> Option<String> {
    let e = endpoint.trim();
    if let Some(rest) = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
    {
        return Some(rest.find('/').map_or("/".into(), |i| rest[i..].to_string()));
    }
    if e.starts_with('/') {
        return Some(e.to_string());
    }
    if e.is_empty() || e.contains("://") {
        return None;
    }
    let dir = stream_path.rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{dir}/{e}"))
}

/// An MCP event stream on its way to the client (see the module docs).
pub(super) struct SseTap {
    inner: Body,
    sessions: Arc<Sessions>,
    agent: String,
    host: String,
    stream_path: String,
    /// The stream's start, until its `endpoint` event is found (then `None`).
    searching: Option<Vec<u8>>,
    /// The key and sender this stream registered (to unregister only its own entry).
    registered: Option<(String, mpsc::Sender<Bytes>)>,
    rx: Option<mpsc::Receiver<Bytes>>,
    /// The last bytes sent, to tell whether the client is between two events (starts as
    /// an event's end: nothing sent yet is between events too).
    tail: [u8; 4],
    inner_done: bool,
}

impl SseTap {
    pub(super) fn new(
        inner: Body,
        sessions: Arc<Sessions>,
        agent: &str,
        host: &str,
        stream_path: &str,
    ) -> Self {
        SseTap {
            inner,
            sessions,
            agent: agent.into(),
            host: host.into(),
            stream_path: stream_path.into(),
            searching: Some(Vec::new()),
            registered: None,
            rx: None,
            tail: *b"\r\n\r\n",
            inner_done: false,
        }
    }

    fn between_events(&self) -> bool {
        self.tail[2..] == *b"\n\n" || self.tail == *b"\r\n\r\n" || self.tail[2..] == *b"\r\r"
    }

    fn passed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let n = data.len().min(4);
        self.tail.rotate_left(n);
        self.tail[4 - n..].copy_from_slice(&data[data.len() - n..]);
        let Some(buf) = self.searching.as_mut() else {
            return;
        };
        buf.extend_from_slice(&data[..data.len().min(MAX_SEARCHED.saturating_sub(buf.len()))]);
        let found = endpoint_event(&String::from_utf8_lossy(buf))
            .and_then(|e| resolve(&self.stream_path, &e));
        if found.is_none() && buf.len() < MAX_SEARCHED {
            return;
        }
        self.searching = None;
        let Some(path) = found else {
            return;
        };
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        let k = key(&self.agent, &self.host, &path);
        if let Ok(mut m) = self.sessions.0.lock() {
            if m.len() < MAX_SESSIONS {
                m.insert(k.clone(), tx.clone());
                self.registered = Some((k, tx));
                self.rx = Some(rx);
            }
        }
    }
}

impl Drop for SseTap {
    fn drop(&mut self) {
        if let Some((k, tx)) = self.registered.take() {
            if let Ok(mut m) = self.sessions.0.lock() {
                // A later stream with the same endpoint may have taken the key over.
                if m.get(&k).is_some_and(|t| t.same_channel(&tx)) {
                    m.remove(&k);
                }
            }
        }
    }
}

impl hyper::body::Body for SseTap {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.between_events() {
            if let Some(rx) = this.rx.as_mut() {
                if let Poll::Ready(Some(ev)) = rx.poll_recv(cx) {
                    return Poll::Ready(Some(Ok(Frame::data(ev))));
                }
            }
        }
        if this.inner_done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    let d = d.clone();
                    this.passed(&d);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(None) => {
                this.inner_done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn the_endpoint_event_is_found_and_resolved() {
        let s = "event: endpoint\r\ndata: /messages/?session_id=ab12\r\n\r\n";
        assert_eq!(endpoint_event(s).unwrap(), "/messages/?session_id=ab12");
        assert_eq!(
            endpoint_event("event: endpoint\ndata: /m"),
            None,
            "incomplete"
        );
        assert_eq!(
            endpoint_event(": ping\n\nevent: message\ndata: {}\n\n"),
            None
        );
        assert_eq!(resolve("/sse", "/messages/?s=1").unwrap(), "/messages/?s=1");
        assert_eq!(
            resolve("/mcp/sse", "message?s=1").unwrap(),
            "/mcp/message?s=1"
        );
        assert_eq!(
            resolve("/sse", "https://h.example/x?s=1").unwrap(),
            "/x?s=1"
        );
        assert_eq!(resolve("/sse", "ftp://h/x"), None);
    }

    #[tokio::test]
    async fn answers_go_between_the_servers_events() {
        let (tx, rx) = mpsc::unbounded_channel::<Result<Frame<Bytes>, BoxError>>();
        let inner = ChanBody(rx).boxed();
        let sessions = Arc::new(Sessions::default());
        let mut tap = SseTap::new(inner, sessions.clone(), "coder", "mcp.test", "/sse");
        let send = |b: &'static [u8]| tx.send(Ok(Frame::data(Bytes::from_static(b)))).unwrap();
        send(b"event: endpoint\ndata: /messages/?session_id=7\n\n");
        let first = tap.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.starts_with(b"event: endpoint"));
        // Half of a server event has passed: an answer waits for its end.
        send(b"event: message\ndata: {\"id\":1");
        let _ = tap.frame().await.unwrap().unwrap();
        assert!(sessions.answer(
            "coder",
            "mcp.test",
            "/messages/?session_id=7",
            b"{\"id\":2}"
        ));
        assert!(!sessions.answer("other", "mcp.test", "/messages/?session_id=7", b"{}"));
        send(b"}\n\n");
        let rest = tap.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&rest[..], b"}\n\n");
        let injected = tap.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&injected[..], b"event: message\ndata: {\"id\":2}\n\n");
        // A client that does not read its stream: answers stop queueing at the bound.
        let queued = (0..MAX_QUEUED + 5)
            .filter(|_| sessions.answer("coder", "mcp.test", "/messages/?session_id=7", b"{}"))
            .count();
        assert_eq!(queued, MAX_QUEUED);
        drop(tap);
        assert!(
            !sessions.answer("coder", "mcp.test", "/messages/?session_id=7", b"{}"),
            "unregistered when the stream ends"
        );
    }

    /// An `mpsc` receiver as a body.
    struct ChanBody(mpsc::UnboundedReceiver<Result<Frame<Bytes>, BoxError>>);
    impl hyper::body::Body for ChanBody {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx)
        }
    }
}
