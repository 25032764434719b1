//! The server side of a WebSocket (RFC 6455), as much as an event stream needs: text frames
//! out, pings to keep the connection alive, and from the client only control frames
//! (close, ping, pong); data frames from the client are read and dropped, as Vault does.
//! Client frames must be masked and at most [`MAX_FRAME`] bytes, or the connection closes.

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest client frame read; anything larger ends the connection.
const MAX_FRAME: u64 = 64 << 10;

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Writes one unmasked, final frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    op: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(10);
    head.push(0x80 | op);
    let n = payload.len();
    if n < 126 {
        head.push(n as u8);
    } else if n <= u16::MAX as usize {
        head.push(126);
        head.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        head.push(127);
        head.extend_from_slice(&(n as u64).to_be_bytes());
    }
    w.write_all(&head).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// A close frame's payload: status code and a reason (cut to fit a control frame).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    let mut r = reason;
    while r.len() > 123 {
        let mut cut = 123;
        while !r.is_char_boundary(cut) {
            cut -= 1;
        }
        r = &r[..cut];
    }
    p.extend_from_slice(r.as_bytes());
    p
}

/// One frame from the client.
pub struct Frame {
    pub op: u8,
    pub payload: Vec<u8>,
}

/// Reads one client frame; an error for an unmasked, oversized or reserved-bit frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await?;
    if h[0] & 0x70 != 0 {
        return Err(bad("reserved bits set"));
    }
    let op = h[0] & 0x0f;
    if h[1] & 0x80 == 0 {
        return Err(bad("client frames must be masked"));
    }
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            u16::from_be_bytes(b) as u64
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => n as u64,
    };
    if len > MAX_FRAME || (op >= 0x8 && len > 125) {
        return Err(bad("frame too large"));
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Frame { op, payload })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn frames_round_trip_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        write_frame(&mut out, OP_TEXT, &vec![b'x'; 300])
            .await
            .unwrap();
        assert_eq!(&out[..4], &[0x81, 126, 1, 44]);
        // A masked client ping.
        let mask = [1u8, 2, 3, 4];
        let body: Vec<u8> = b"hi"
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        let mut f = vec![0x89, 0x82];
        f.extend_from_slice(&mask);
        f.extend_from_slice(&body);
        let got = read_frame(&mut f.as_slice()).await.unwrap();
        assert_eq!((got.op, got.payload.as_slice()), (OP_PING, &b"hi"[..]));
        // Unmasked, oversized, reserved bits.
        assert!(read_frame(&mut [0x89u8, 0x00].as_slice()).await.is_err());
        assert!(
            read_frame(&mut [0x82u8, 0xff, 0, 0, 0, 0, 0, 1, 0, 0].as_slice())
                .await
                .is_err()
        );
        assert!(read_frame(&mut [0xc1u8, 0x80, 0, 0, 0, 0].as_slice())
            .await
            .is_err());
        assert!(close_payload(1000, &"é".repeat(100)).len() <= 125);
    }
}
