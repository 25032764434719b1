//! The broker's WebSocket frame reader (upstream to agent): any byte stream is scrubbed or
//! refused without a panic, and no data message nor control frame the agent gets holds the
//! credential.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// Data messages (reassembled) and control payloads of a server-to-client stream.
fn payloads(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    while b.len() >= 2 {
        let fin = b[0] & 0x80 != 0;
        let op = b[0] & 0x0f;
        let (len, hl): (usize, usize) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap_or([0; 8])) as usize,
                10,
            ),
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        let Some(p) = b.get(hl..hl.saturating_add(len)) else {
            break;
        };
        b = &b[hl + len..];
        if op >= 8 {
            out.push(p.to_vec());
            continue;
        }
        cur.extend_from_slice(p);
        if fin {
            out.push(std::mem::take(&mut cur));
        }
    }
    out.push(cur);
    out
}

fuzz_target!(|input: &[u8]| {
    let secret = b"sk-SECRET-1234".to_vec();
    let placeholder = b"airlock-ph-x-AAAAAAAAAAAAAAAAAAAAAAAA".to_vec();
    let (out, _ok) = rt().block_on(airlock_broker::ws::scrub_stream(
        input,
        vec![(secret.clone(), placeholder)],
    ));
    for p in payloads(&out) {
        assert!(
            !p.windows(secret.len()).any(|w| w == secret.as_slice()),
            "a credential reached the agent"
        );
    }
});
