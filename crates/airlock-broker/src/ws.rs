//! WebSocket splice with response scrubbing: after an upgrade that carried a credential, the
//! client's frames go upstream untouched, and the upstream's frames are parsed so that an
//! echoed credential (in any data message, even split across frames, or in a control frame)
//! reaches the agent as its placeholder.
//!
//! Scrubbing changes payload lengths, so data frames are re-framed: each upstream frame is
//! read in chunks and sent on as one or more fragments of the same message (RFC 6455 §5.4 lets
//! an intermediary change fragmentation when no extension is in use; the broker removes
//! `Sec-WebSocket-Extensions` from upgrades that carry a credential). Nothing is buffered
//! beyond one chunk. A compressed or otherwise extended frame (RSV bits set), a reserved
//! opcode or a stray continuation cannot be checked, so it ends the connection. A credential
//! split across two *messages* is not recognised (each message is checked on its own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::rewrite::{scrub_value, Scrubber};

/// Largest piece of a payload handled at once.
const CHUNK: usize = 64 << 10;

/// What the splice saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Spliced {
    /// Bytes from the client to the upstream.
    pub bytes_in: u64,
    /// Payload bytes from the upstream to the client (after scrubbing).
    pub bytes_out: u64,
    /// Credentials replaced by placeholders.
    pub scrubbed: u64,
}

/// Running totals, shared by the two directions.
#[derive(Default)]
struct Counters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    scrubbed: AtomicU64,
}

/// How long the other direction may finish (a close handshake) after one has ended.
const DRAIN: Duration = Duration::from_secs(2);

/// Splices `client` and `upstream` until both sides end (or one has ended and the other
/// has had [`DRAIN`] to finish).
pub async fn splice<C, U>(client: C, upstream: U, needles: Vec<(Vec<u8>, Vec<u8>)>) -> Spliced
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);
    let c = Counters::default();
    let up = async {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if uw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    c.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        let _ = uw.shutdown().await;
    };
    let down = async {
        let _ = scrub_frames(&mut ur, &mut cw, needles, &c).await;
        let _ = cw.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        _ = &mut up => { let _ = tokio::time::timeout(DRAIN, &mut down).await; }
        _ = &mut down => { let _ = tokio::time::timeout(DRAIN, &mut up).await; }
    }
    Spliced {
        bytes_in: c.bytes_in.load(Ordering::Relaxed),
        bytes_out: c.bytes_out.load(Ordering::Relaxed),
        scrubbed: c.scrubbed.load(Ordering::Relaxed),
    }
}

fn header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(10);
    h.push(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        h.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        h.push(126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    fin: bool,
    opcode: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut f = header(fin, opcode, payload.len());
    f.extend_from_slice(payload);
    w.write_all(&f).await?;
    w.flush().await
}

/// Runs the upstream-to-client frame scrubber over `input` (a server's byte stream) and
/// returns what the client would get, and whether the stream was accepted to its end. For
/// fuzzing the frame reader; `input` and the output live in memory.
#[doc(hidden)]
pub async fn scrub_stream(input: &[u8], needles: Vec<(Vec<u8>, Vec<u8>)>) -> (Vec<u8>, bool) {
    let mut r = input;
    let mut w = Vec::new();
    let ok = scrub_frames(&mut r, &mut w, needles, &Counters::default())
        .await
        .is_ok();
    (w, ok)
}

fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string())
}

/// Upstream → client, frame by frame.
async fn scrub_frames<R, W>(
    r: &mut R,
    w: &mut W,
    needles: Vec<(Vec<u8>, Vec<u8>)>,
    stats: &Counters,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scrub = Scrubber::new(needles.clone());
    let mut control_hits = 0;
    // Whether a fragment of the current data message has been sent already (the next one
    // then goes out as a continuation).
    let mut in_message = false;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut h = [0u8; 2];
        r.read_exact(&mut h).await?;
        let fin = h[0] & 0x80 != 0;
        if h[0] & 0x70 != 0 {
            return Err(refused(
                "extended (e.g. compressed) frame cannot be checked",
            ));
        }
        if h[1] & 0x80 != 0 {
            return Err(refused("masked frame from the server"));
        }
        let opcode = h[0] & 0x0f;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            len = u64::from_be_bytes(b);
        }
        if matches!(opcode, 3..=7 | 0xb..=0xf) {
            return Err(refused("reserved opcode"));
        }
        if opcode >= 8 {
            // Control frame: at most 125 bytes, never fragmented.
            if len > 125 || !fin {
                return Err(refused("invalid control frame"));
            }
            let mut p = vec![0u8; len as usize];
            r.read_exact(&mut p).await?;
            if let Some((clean, hits)) = scrub_value(&needles, &p) {
                control_hits += hits;
                stats
                    .scrubbed
                    .store(control_hits + scrub.hits, Ordering::Relaxed);
                p = clean;
                if p.len() > 125 {
                    // A close keeps its status code; a ping/pong its (now empty) payload.
                    p.truncate(if opcode == 8 { 2 } else { 0 });
                }
            }
            stats.bytes_out.fetch_add(p.len() as u64, Ordering::Relaxed);
            write_frame(w, true, opcode, &p).await?;
            if opcode == 8 {
                return Ok(());
            }
            continue;
        }
        if opcode != 0 && in_message {
            return Err(refused("new data message inside a fragmented one"));
        }
        if opcode == 0 && !in_message {
            return Err(refused("continuation frame outside a message"));
        }
        let mut left = len;
        loop {
            let n = left.min(CHUNK as u64) as usize;
            let piece = buf.get_mut(..n).ok_or_else(|| refused("chunk"))?;
            r.read_exact(piece).await?;
            left -= n as u64;
            let last = left == 0;
            let mut out = scrub.feed(piece);
            if last && fin {
                out.extend(scrub.finish());
            }
            let op = if in_message { 0 } else { opcode };
            let frame_fin = last && fin;
            stats
                .bytes_out
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            stats
                .scrubbed
                .store(control_hits + scrub.hits, Ordering::Relaxed);
            write_frame(w, frame_fin, op, &out).await?;
            in_message = !frame_fin;
            if last {
                break;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Reassembles the data messages (and control frames) of a server-to-client stream.
    fn messages(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut cur: Option<(u8, Vec<u8>)> = None;
        while b.len() >= 2 {
            let fin = b[0] & 0x80 != 0;
            let op = b[0] & 0x0f;
            let (len, hl) = match b[1] & 0x7f {
                126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            let p = b[hl..hl + len].to_vec();
            b = &b[hl + len..];
            if op >= 8 {
                out.push((op, p));
                continue;
            }
            let c = cur.get_or_insert((op, Vec::new()));
            c.1.extend(p);
            if fin {
                out.push(cur.take().unwrap());
            }
        }
        out
    }

    fn frame(fin: bool, op: u8, p: &[u8]) -> Vec<u8> {
        let mut f = header(fin, op, p.len());
        f.extend_from_slice(p);
        f
    }

    #[tokio::test]
    async fn echoed_credentials_are_scrubbed_across_fragments() {
        let secret = b"sk-live-0123456789abcdef".to_vec();
        let ph = b"airlock-ph-openai-ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".to_vec();
        let big = {
            let mut v = vec![b'x'; CHUNK - 5];
            v.extend_from_slice(&secret);
            v.extend_from_slice(b"tail");
            v
        };
        let mut input = Vec::new();
        input.extend(frame(true, 1, b"hello"));
        // The secret split over two fragments of one text message.
        input.extend(frame(false, 1, b"key=sk-live-0123"));
        input.extend(frame(true, 9, b"ping sk-live-0123456789abcdef"));
        input.extend(frame(true, 0, b"456789abcdef!"));
        // ... and over the broker's own chunk boundary inside one large binary frame.
        input.extend(frame(true, 2, &big));
        input.extend(frame(true, 8, &[3, 232]));
        let mut out = Vec::new();
        let stats = Counters::default();
        let r = scrub_frames(
            &mut input.as_slice(),
            &mut out,
            vec![(secret.clone(), ph.clone())],
            &stats,
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
        let m = messages(&out);
        assert_eq!(m[0], (1, b"hello".to_vec()));
        assert_eq!(m[1].0, 9);
        assert_eq!(m[1].1, [b"ping ".as_slice(), &ph].concat());
        assert_eq!(m[2], (1, [b"key=".as_slice(), &ph, b"!"].concat()));
        let mut want = vec![b'x'; CHUNK - 5];
        want.extend_from_slice(&ph);
        want.extend_from_slice(b"tail");
        assert_eq!(m[3], (2, want));
        assert_eq!(m[4], (8, vec![3, 232]));
        assert_eq!(stats.scrubbed.load(Ordering::Relaxed), 3);
        assert!(!out.windows(secret.len()).any(|w| w == secret.as_slice()));
    }

    #[tokio::test]
    async fn frames_that_cannot_be_checked_are_refused() {
        // Compressed (RSV1), a reserved opcode, a continuation with no message.
        for input in [[0xc1u8, 1, b'x'], [0x83, 1, b'x'], [0x80, 1, b'x']] {
            let mut out = Vec::new();
            let r = scrub_frames(
                &mut input.as_slice(),
                &mut out,
                vec![(b"s".to_vec(), b"p".to_vec())],
                &Counters::default(),
            )
            .await;
            assert!(r.is_err(), "{input:?}");
            assert!(out.is_empty());
        }
    }
}
