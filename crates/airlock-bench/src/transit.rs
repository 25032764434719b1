//! `airlock-bench transit`: the transit engine against OpenBao's. Both servers get a
//! `transit/` mount, an `aes256-gcm96` and an `ed25519` key and a token whose policy allows
//! only `transit/*`; then encrypt and decrypt of 1 KiB and ed25519 signatures run at each
//! connection count on each server in turn. Every answer must be a 2xx, and a sample is
//! checked (decrypt returns the plaintext, the signature verifies).
//!
//! Usage: `airlock-bench transit [--seconds 10] [--conns 1,16] [--airlock PATH] [--bao PATH]`

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::{
    common_args, drive, print_header, print_row, request, rss_kib, start_airlock, start_openbao,
    token_with_policy, Common, TapMkdir,
};

#[derive(Clone, Copy)]
enum TOp {
    Encrypt,
    Decrypt,
    Sign,
}

impl TOp {
    fn name(self) -> &'static str {
        match self {
            TOp::Encrypt => "encrypt-1k",
            TOp::Decrypt => "decrypt-1k",
            TOp::Sign => "sign-ed25519",
        }
    }
}

/// A server ready for the load: its token and one ciphertext of the payload.
struct Ready {
    token: String,
    ciphertext: String,
}

async fn prepare(addr: &str, root: &str, plaintext: &str) -> Result<Ready> {
    let r = Some(root);
    let (s, v) = request(
        addr,
        "POST",
        "/v1/sys/mounts/transit",
        r,
        Some(json!({"type": "transit"})),
    )
    .await?;
    if s >= 300 {
        bail!("enabling transit at {addr}: {s} {v}");
    }
    for (k, t) in [("bench-aes", "aes256-gcm96"), ("bench-ed", "ed25519")] {
        let (s, v) = request(
            addr,
            "POST",
            &format!("/v1/transit/keys/{k}"),
            r,
            Some(json!({"type": t})),
        )
        .await?;
        if s >= 300 {
            bail!("creating {k} at {addr}: {s} {v}");
        }
    }
    let policy = "path \"transit/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n";
    let token = token_with_policy(addr, root, "transit-bench", policy).await?;
    let t = Some(token.as_str());
    let (_, v) = request(
        addr,
        "POST",
        "/v1/transit/encrypt/bench-aes",
        t,
        Some(json!({"plaintext": plaintext})),
    )
    .await?;
    let ciphertext = v["data"]["ciphertext"]
        .as_str()
        .ok_or_else(|| anyhow!("encrypt at {addr} failed: {v}"))?
        .to_string();
    // The sample checks: decrypt gives the payload back, a signature verifies.
    let (_, d) = request(
        addr,
        "POST",
        "/v1/transit/decrypt/bench-aes",
        t,
        Some(json!({"ciphertext": ciphertext})),
    )
    .await?;
    if d["data"]["plaintext"].as_str() != Some(plaintext) {
        bail!("decrypt at {addr} did not return the plaintext");
    }
    let (_, sg) = request(
        addr,
        "POST",
        "/v1/transit/sign/bench-ed",
        t,
        Some(json!({"input": plaintext})),
    )
    .await?;
    let sig = sg["data"]["signature"].as_str().unwrap_or("").to_string();
    let (_, vf) = request(
        addr,
        "POST",
        "/v1/transit/verify/bench-ed",
        t,
        Some(json!({"input": plaintext, "signature": sig})),
    )
    .await?;
    if vf["data"]["valid"] != Value::Bool(true) {
        bail!("a signature from {addr} does not verify: {vf}");
    }
    Ok(Ready { token, ciphertext })
}

async fn load(
    addr: &str,
    ready: &Ready,
    op: TOp,
    plaintext: &str,
    conns: usize,
    secs: u64,
) -> Result<crate::Stats> {
    let token = ready.token.clone();
    let body = match op {
        TOp::Encrypt => json!({"plaintext": plaintext}),
        TOp::Decrypt => json!({"ciphertext": ready.ciphertext}),
        TOp::Sign => json!({"input": plaintext}),
    }
    .to_string();
    let path = match op {
        TOp::Encrypt => "/v1/transit/encrypt/bench-aes",
        TOp::Decrypt => "/v1/transit/decrypt/bench-aes",
        TOp::Sign => "/v1/transit/sign/bench-ed",
    };
    let make = move |host: &str, _c: usize, _i: u64| -> Result<hyper::Request<Full<Bytes>>> {
        Ok(hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", host)
            .header("x-vault-token", &token)
            .body(Full::new(Bytes::from(body.clone())))?)
    };
    drive(addr, conns, secs, Arc::new(make)).await
}

pub async fn run(args: &[String]) -> Result<()> {
    let Common {
        secs,
        conns,
        airlock,
        bao,
    } = common_args(args, 10, "1,16")?;
    let dir = std::env::temp_dir().join(format!("airlock-bench-transit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = start_airlock(&airlock, &dir.join("a").tap_mkdir()?).await?;
    let b = start_openbao(&bao, &dir.join("b").tap_mkdir()?).await?;
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let plaintext = base64::engine::general_purpose::STANDARD.encode(payload);
    let ra = prepare(&a.addr, &a.root, &plaintext).await?;
    let rb = prepare(&b.addr, &b.root, &plaintext).await?;
    print_header(13);
    for op in [TOp::Encrypt, TOp::Decrypt, TOp::Sign] {
        for &c in &conns {
            let sa = load(&a.addr, &ra, op, &plaintext, c, secs).await?;
            let sb = load(&b.addr, &rb, op, &plaintext, c, secs).await?;
            print_row(13, op.name(), c, &sa, &sb);
        }
    }
    println!(
        "RSS after the runs: airlock {:.1} MiB, openbao {:.1} MiB",
        rss_kib(a.child.id()) as f64 / 1024.0,
        rss_kib(b.child.id()) as f64 / 1024.0
    );
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
