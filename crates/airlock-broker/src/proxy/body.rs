//! The streaming bodies: [`ScanBody`] carries a request body upstream and stops it at the
//! first placeholder; [`RespBody`] carries a response body back, scrubbing echoed credentials
//! from its data and trailers, and records the exchange's audit event when it ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::HeaderMap;

use super::log::{elapsed_ms, record_with_scrub};
use crate::audit::{Auditor, Event};
use crate::rewrite::{PrefixDetector, Scrubber};
use crate::upstream::BoxError;
use crate::Broker;

/// Request body that streams through, counting bytes, and fails the request the moment a
/// placeholder shows up in it (the bytes holding the placeholder are never released).
pub(super) struct ScanBody {
    inner: Incoming,
    detector: PrefixDetector,
    leaked: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
}

impl ScanBody {
    /// Scans `inner`; `leaked` is set when a placeholder shows up, `bytes` counts what passed.
    pub(super) fn new(inner: Incoming, leaked: Arc<AtomicBool>, bytes: Arc<AtomicU64>) -> Self {
        ScanBody {
            inner,
            detector: PrefixDetector::default(),
            leaked,
            bytes,
        }
    }
}

/// Why a request body stopped on its way upstream (a placeholder in it, a chunk that does
/// not verify).
#[derive(Debug)]
pub(super) struct BodyError(pub(super) String);
impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BodyError {}

impl hyper::body::Body for ScanBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                    if this.detector.feed(d) {
                        this.leaked.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyError(
                            "placeholder in request body".into(),
                        )))));
                    }
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Response body: scrubs echoed credentials (if any were injected), counts bytes, and
/// records the audit event when the exchange ends.
pub(super) struct RespBody {
    inner: Incoming,
    scrub: Option<Scrubber>,
    bytes: u64,
    done: bool,
    trailers: Option<Frame<Bytes>>,
    event: Option<Event>,
    bytes_in: Arc<AtomicU64>,
    start: Instant,
    audit: Auditor,
    scrub_counter: Arc<AtomicU64>,
    /// Budgets to charge when the body ends, and the token usage read from it.
    meters: Vec<Arc<crate::budget::Meter>>,
    usage: Option<crate::budget::UsageMeter>,
}

impl Broker {
    /// The response body of an exchange whose audit event `ev` is recorded when it ends.
    pub(super) fn resp_body(
        &self,
        inner: Incoming,
        scrub: Option<Scrubber>,
        ev: Event,
        bytes_in: Arc<AtomicU64>,
        start: Instant,
        meters: Vec<Arc<crate::budget::Meter>>,
    ) -> RespBody {
        RespBody {
            inner,
            scrub,
            bytes: 0,
            done: false,
            trailers: None,
            event: Some(ev),
            bytes_in,
            start,
            audit: self.audit.clone(),
            scrub_counter: self.stats.scrubbed.clone(),
            usage: (!meters.is_empty()).then(crate::budget::UsageMeter::default),
            meters,
        }
    }
}

impl hyper::body::Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(Ok));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(s) = &mut this.scrub {
                        let t = s.finish();
                        if !t.is_empty() {
                            this.bytes += t.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(t)))));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if let Some(u) = &mut this.usage {
                            u.feed(&data);
                        }
                        let out = match &mut this.scrub {
                            Some(s) => s.feed_bytes(data),
                            None => data,
                        };
                        if out.is_empty() {
                            continue;
                        }
                        this.bytes += out.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(this.end_with(frame)))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }
}

impl RespBody {
    /// A non-data frame (trailers) ends the body: trailers are scrubbed, and any bytes the
    /// scrubber held back are released first (the trailers then follow on the next poll).
    fn end_with(&mut self, frame: Frame<Bytes>) -> Frame<Bytes> {
        self.done = true;
        let frame = match (frame.into_trailers(), &mut self.scrub) {
            (Ok(mut t), Some(s)) => {
                scrub_trailers(&mut t, s);
                Frame::trailers(t)
            }
            (Ok(t), None) => Frame::trailers(t),
            (Err(f), _) => f,
        };
        let tail = self.scrub.as_mut().map(|s| s.finish()).unwrap_or_default();
        if tail.is_empty() {
            return frame;
        }
        self.trailers = Some(frame);
        self.bytes += tail.len() as u64;
        Frame::data(Bytes::from(tail))
    }
}

impl Drop for RespBody {
    fn drop(&mut self) {
        if let Some(mut ev) = self.event.take() {
            ev.bytes_out = self.bytes;
            ev.bytes_in = self.bytes_in.load(Ordering::Relaxed);
            ev.latency_ms = elapsed_ms(self.start);
            ev.scrubbed += self.scrub.as_ref().map_or(0, |s| s.hits);
            let tokens = self.usage.as_mut().map_or(0, |u| u.finish());
            super::log::charge(&self.meters, ev.bytes_in + ev.bytes_out, tokens);
            record_with_scrub(&self.audit, &self.scrub_counter, ev);
        }
    }
}

/// Replaces an echoed credential in trailers (gRPC and others send values there).
fn scrub_trailers(t: &mut HeaderMap, s: &mut Scrubber) {
    for v in t.values_mut() {
        if let Some(nv) = s.scrub_whole(v.as_bytes()) {
            if let Ok(h) = HeaderValue::from_bytes(&nv) {
                *v = h;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn echoed_credentials_in_trailers_are_scrubbed() {
        let mut t = HeaderMap::new();
        t.insert(
            "grpc-message",
            HeaderValue::from_static("bad key sk-live-123"),
        );
        t.insert("grpc-status", HeaderValue::from_static("16"));
        let mut s = Scrubber::new(vec![(b"sk-live-123".to_vec(), b"airlock-ph-x".to_vec())]);
        scrub_trailers(&mut t, &mut s);
        assert_eq!(t["grpc-message"], "bad key airlock-ph-x");
        assert_eq!(t["grpc-status"], "16");
        assert_eq!(s.hits, 1);
    }
}
