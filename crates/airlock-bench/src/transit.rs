//! `airlock-bench transit`: the transit engine against OpenBao's. Both servers get a
//! `transit/` mount, an `aes256-gcm96` and an `ed25519` key and a token whose policy allows
//! only `transit/*`; then encrypt and decrypt of 1 KiB and ed25519 signatures run at each
//! connection count on each server in turn. Every answer must be a 2xx, and a sample is
//! checked (decrypt returns the plaintext, the signature verifies).
//!
//! Usage: `airlock-bench transit [--seconds 10] [--conns 1,16] [--airlock PATH] [--bao PATH]`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::{arg, bao_path, drive, request, rss_kib, start_airlock, start_openbao, TapMkdir};

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
    request(
        addr,
        "PUT",
        "/v1/sys/policies/acl/transit-bench",
        r,
        Some(json!({"policy": policy})),
    )
    .await?;
    let (_, tok) = request(
        addr,
        "POST",
        "/v1/auth/token/create",
        r,
        Some(json!({"policies": ["transit-bench"], "ttl": "4h"})),
    )
    .await?;
    let token = tok["auth"]["client_token"]
        .as_str()
        .ok_or_else(|| anyhow!("token create failed: {tok}"))?
        .to_string();
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
    let secs: u64 = arg(args, "--seconds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let conns: Vec<usize> = arg(args, "--conns")
        .unwrap_or_else(|| "1,16".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let airlock = arg(args, "--airlock")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let bao = bao_path(args, &root)?;
    let dir = std::env::temp_dir().join(format!("airlock-bench-transit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = start_airlock(&airlock, &dir.join("a").tap_mkdir()?).await?;
    let b = start_openbao(&bao, &dir.join("b").tap_mkdir()?).await?;
    let payload: Vec<u8> = (0..1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let plaintext = base64::engine::general_purpose::STANDARD.encode(payload);
    let ra = prepare(&a.addr, &a.root, &plaintext).await?;
    let rb = prepare(&b.addr, &b.root, &plaintext).await?;
    println!(
        "{:<13} {:>5} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>8} {:>12} {:>9}",
        "op",
        "conns",
        "airlock/s",
        "p50 ms",
        "p99 ms",
        "openbao/s",
        "p50 ms",
        "p99 ms",
        "ratio",
        "p99<bao p50",
        "errors"
    );
    for op in [TOp::Encrypt, TOp::Decrypt, TOp::Sign] {
        for &c in &conns {
            let sa = load(&a.addr, &ra, op, &plaintext, c, secs).await?;
            let sb = load(&b.addr, &rb, op, &plaintext, c, secs).await?;
            println!(
                "{:<13} {:>5} | {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>7.1}x {:>12} {:>4}/{:<4}",
                op.name(),
                c,
                sa.rps,
                sa.p50_us as f64 / 1e3,
                sa.p99_us as f64 / 1e3,
                sb.rps,
                sb.p50_us as f64 / 1e3,
                sb.p99_us as f64 / 1e3,
                if sb.rps > 0.0 { sa.rps / sb.rps } else { 0.0 },
                if sa.p99_us < sb.p50_us { "yes" } else { "no" },
                sa.errors,
                sb.errors
            );
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
