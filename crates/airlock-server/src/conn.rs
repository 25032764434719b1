//! Connection admission and liveness: what an unauthenticated client can hold.
//!
//! - [`Admission`] caps open connections, overall and per client address; a connection over
//!   a cap is refused at once (plain HTTP gets a `503` with `Connection: close`, TLS is
//!   closed) and holds nothing.
//! - [`ActivityIo`] wraps a connection's stream and records when bytes last moved; [`watch`]
//!   ends a connection that has no request in flight and moved no byte for the idle timeout.
//!   Before the first request the shorter header timeout applies, counted from accept, so a
//!   client that connects and sends nothing is gone within it.
//! - Header reads are bounded by hyper's header timeout; request bodies by the minimum rate
//!   in `http::collect_body`.
//!
//! The clock is `tokio::time`, so tests can drive it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Caps on open connections. A cap of 0 is no cap.
pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    Address,
}

/// Held for as long as the connection is open; gives its place back when dropped.
pub struct Permit {
    admission: Arc<Admission>,
    addr: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            total: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
        })
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub fn try_admit(self: &Arc<Self>, addr: IpAddr) -> Result<Permit, Refused> {
        let mut per = self
            .per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.max_total != 0 && self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(Refused::Total);
        }
        let n = per.entry(addr).or_insert(0);
        if self.max_per_address != 0 && *n >= self.max_per_address {
            return Err(Refused::Address);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            admission: Arc::clone(self),
            addr,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per = self
            .admission
            .per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.addr);
            }
        }
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer to a plain-HTTP connection over a cap.
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 40\r\n\r\n{\"errors\":[\"too many open connections\"]}";

/// What a connection has been doing.
pub struct Activity {
    start: Instant,
    /// Milliseconds since `start` when a byte last moved.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// When the connection becomes idle if nothing happens, or `None` while a request is in
    /// flight.
    fn idle_deadline(&self, idle: Duration, first: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let limit = if self.served.load(Ordering::Relaxed) {
            idle
        } else {
            first
        };
        Some(self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + limit)
    }
}

/// A request in flight on a connection.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records its activity.
pub struct ActivityIo<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> ActivityIo<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ActivityIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ActivityIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How a watched connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended<T> {
    Done(T),
    Idle,
}

/// When a connection is idle: no request in flight and no byte moved for `idle`, or for
/// `first` before the first request (counted from accept).
pub struct Limits {
    pub idle: Duration,
    pub first: Duration,
}

/// Runs `conn` until it ends or goes idle (then the caller drops it, which closes it). When
/// `stop` turns true, `graceful` asks the connection to finish what is in flight and end.
/// The connection is borrowed pinned: it stays in its caller's state, not copied into this
/// future's too (it is most of an open connection's memory).
pub async fn watch<F: Future>(
    mut conn: Pin<&mut F>,
    activity: &Activity,
    limits: &Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    graceful: impl FnOnce(Pin<&mut F>),
) -> Ended<F::Output> {
    let (idle, first) = (limits.idle, limits.first);
    let mut graceful = Some(graceful);
    if *stop.borrow_and_update() {
        if let Some(g) = graceful.take() {
            g(conn.as_mut());
        }
    }
    loop {
        let deadline = activity
            .idle_deadline(idle, first)
            .unwrap_or_else(|| Instant::now() + idle.min(first).max(Duration::from_millis(100)));
        tokio::select! {
            out = conn.as_mut() => return Ended::Done(out),
            _ = tokio::time::sleep_until(deadline) => {
                if let Some(d) = activity.idle_deadline(idle, first) {
                    if d <= Instant::now() {
                        return Ended::Idle;
                    }
                }
            }
            changed = stop.changed(), if graceful.is_some() => {
                if changed.is_err() || *stop.borrow_and_update() {
                    if let Some(g) = graceful.take() {
                        g(conn.as_mut());
                    }
                }
            }
        }
    }
}

/// The open-file limit of this process, read from `/proc/self/limits` (Linux), if known.
pub fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The overall cap actually used: the configured one, kept below the open-file limit so
/// `accept` never runs out of descriptors (room is left for storage, audit and outbound
/// connections).
pub fn effective_max(configured: usize, file_limit: Option<usize>) -> usize {
    match file_limit {
        Some(l) => {
            let room = l.saturating_sub(128).max(16);
            if configured == 0 {
                room
            } else {
                configured.min(room)
            }
        }
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_overall_and_per_address_and_places_come_back() {
        let a = Admission::new(3, 2);
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = a.try_admit(x).unwrap();
        let _p2 = a.try_admit(x).unwrap();
        assert_eq!(a.try_admit(x).err(), Some(Refused::Address));
        let _p3 = a.try_admit(y).unwrap();
        assert_eq!(a.try_admit(y).err(), Some(Refused::Total));
        assert_eq!(a.open(), 3);
        drop(p1);
        assert_eq!(a.open(), 2);
        let _p4 = a.try_admit(x).unwrap();
        let unlimited = Admission::new(0, 0);
        let all: Vec<_> = (0..1000).map(|_| unlimited.try_admit(x).unwrap()).collect();
        assert_eq!(unlimited.open(), 1000);
        drop(all);
        assert_eq!(unlimited.open(), 0);
        assert!(unlimited.per_address.lock().unwrap().is_empty());
    }

    #[test]
    fn the_cap_stays_below_the_file_limit() {
        assert_eq!(effective_max(4096, Some(1024)), 896);
        assert_eq!(effective_max(100, Some(1024)), 100);
        assert_eq!(effective_max(0, Some(1024)), 896);
        assert_eq!(effective_max(4096, None), 4096);
        assert_eq!(effective_max(4096, Some(10)), 16);
    }

    #[test]
    fn the_refusal_is_a_complete_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_end_and_busy_ones_do_not() {
        let idle = Duration::from_secs(30);
        let first = Duration::from_secs(10);
        let limits = Limits { idle, first };
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        // Nothing ever sent: gone after `first`, counted from accept.
        let a = Activity::new();
        let t0 = Instant::now();
        let r = watch(
            std::pin::pin!(std::future::pending::<()>()),
            &a,
            &limits,
            stop.clone(),
            |_| {},
        )
        .await;
        assert_eq!(r, Ended::Idle);
        assert_eq!(t0.elapsed(), first);
        // After a request, the idle timeout counts from the last byte.
        let a = Activity::new();
        drop(a.request());
        let t0 = Instant::now();
        assert_eq!(
            watch(
                std::pin::pin!(std::future::pending::<()>()),
                &a,
                &limits,
                stop.clone(),
                |_| {}
            )
            .await,
            Ended::Idle
        );
        assert_eq!(t0.elapsed(), idle);
        // A request in flight for longer than both is never cut.
        let a = Activity::new();
        let guard = a.request();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(120)).await;
            drop(guard);
            7
        };
        assert_eq!(
            watch(std::pin::pin!(slow), &a, &limits, stop.clone(), |_| {}).await,
            Ended::Done(7)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_asks_the_connection_to_end_gracefully() {
        let a = Activity::new();
        let _guard = a.request();
        let limits = Limits {
            idle: Duration::from_secs(30),
            first: Duration::from_secs(10),
        };
        let (tx, stop) = tokio::sync::watch::channel(false);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u8>();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(true);
        });
        let t0 = Instant::now();
        let conn = async move { done_rx.await.unwrap_or(0) };
        let r = watch(std::pin::pin!(conn), &a, &limits, stop, move |_| {
            let _ = done_tx.send(9);
        })
        .await;
        assert_eq!(r, Ended::Done(9));
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
    }
}
