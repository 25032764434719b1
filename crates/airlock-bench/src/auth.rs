//! `airlock-bench auth`: AppRole and JWT logins per second, Airlock and OpenBao side by side
//! (both with persistent storage: SQLite and raft), 1 and 16 keep-alive connections. Every
//! login creates a token (a durable write on both servers). The JWT is RS256, verified
//! against a configured public key (`jwt_validation_pubkeys`).
//!
//! Airlock limits logins per (mount, role, client address); the benchmark's one client
//! address would hit the default (2000/s), so its config sets `[auth] login_rate = 0`.
//!
//! Usage: `cargo run --release -p airlock-bench -- auth [--seconds 5] [--conns 1,16]
//!         [--airlock target/release/airlock] [--bao PATH]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::{arg, drive, request, start_airlock_with, start_openbao, Stats, TapMkdir, Target};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn pem_der(path: &Path) -> Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

/// An RS256 JWT with GitHub-Actions-shaped claims, valid for an hour.
fn sign_jwt(key: &Path) -> Result<String> {
    let kp = ring::signature::RsaKeyPair::from_pkcs8(&pem_der(key)?)
        .map_err(|e| anyhow!("test key: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = json!({
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "https://github.com/my-org",
        "sub": "repo:my-org/my-repo:ref:refs/heads/main",
        "repository": "my-org/my-repo", "repository_owner": "my-org", "ref": "refs/heads/main",
        "iat": now, "nbf": now - 5, "exp": now + 3600,
    });
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; kp.public().modulus_len()];
    kp.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|e| anyhow!("signing: {e}"))?;
    Ok(format!("{input}.{}", b64(&sig)))
}

/// Enables AppRole and JWT on a server; returns the two login bodies.
async fn configure(t: &Target, pub_pem: &str, jwt: &str) -> Result<(Value, Value)> {
    let r = Some(t.root.as_str());
    let steps = [
        ("/v1/sys/auth/approle", json!({"type": "approle"})),
        (
            "/v1/auth/approle/role/bench",
            json!({"token_policies": "default", "token_ttl": "1h"}),
        ),
        ("/v1/sys/auth/jwt", json!({"type": "jwt"})),
        (
            "/v1/auth/jwt/config",
            json!({"jwt_validation_pubkeys": [pub_pem], "bound_issuer": "https://token.actions.githubusercontent.com"}),
        ),
        (
            "/v1/auth/jwt/role/bench",
            json!({"role_type": "jwt", "user_claim": "repository", "bound_audiences": "https://github.com/my-org",
                   "bound_claims": {"repository": "my-org/my-repo", "ref": "refs/heads/main"},
                   "token_policies": "default", "token_ttl": "1h"}),
        ),
    ];
    for (path, body) in steps {
        let (s, v) = request(&t.addr, "POST", path, r, Some(body)).await?;
        if !(200..300).contains(&s) {
            bail!("{} {path}: {s} {v}", t.addr);
        }
    }
    let (_, v) = request(
        &t.addr,
        "GET",
        "/v1/auth/approle/role/bench/role-id",
        r,
        None,
    )
    .await?;
    let role_id = v["data"]["role_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no role_id: {v}"))?
        .to_string();
    let (_, v) = request(
        &t.addr,
        "POST",
        "/v1/auth/approle/role/bench/secret-id",
        r,
        Some(json!({})),
    )
    .await?;
    let secret_id = v["data"]["secret_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no secret_id: {v}"))?
        .to_string();
    let approle = json!({"role_id": role_id, "secret_id": secret_id});
    let jwt_body = json!({"role": "bench", "jwt": jwt});
    for (path, body) in [
        ("/v1/auth/approle/login", &approle),
        ("/v1/auth/jwt/login", &jwt_body),
    ] {
        let (s, v) = request(&t.addr, "POST", path, None, Some(body.clone())).await?;
        if s != 200 || v["auth"]["client_token"].as_str().is_none() {
            bail!("{} {path}: {s} {v}", t.addr);
        }
    }
    Ok((approle, jwt_body))
}

async fn load(
    addr: &str,
    path: &'static str,
    body: &Value,
    conns: usize,
    secs: u64,
) -> Result<Stats> {
    let payload = Bytes::from(body.to_string());
    let make = move |host: &str, _c: usize, _i: u64| -> Result<hyper::Request<Full<Bytes>>> {
        Ok(hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json")
            .body(Full::new(payload.clone()))?)
    };
    drive(addr, conns, secs, std::sync::Arc::new(make)).await
}

pub async fn run(args: &[String]) -> Result<()> {
    let secs: u64 = arg(args, "--seconds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let conns: Vec<usize> = arg(args, "--conns")
        .unwrap_or_else(|| "1,16".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let airlock = arg(args, "--airlock")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let bao = match arg(args, "--bao").or_else(|| std::env::var("BAO").ok()) {
        Some(b) => PathBuf::from(b),
        None => {
            let out = Command::new("bash")
                .arg(root.join("../shared/tools/openbao"))
                .output()?;
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
    };
    let keys = root.join("tests/compat/keys");
    let jwt = sign_jwt(&keys.join("test-only-rsa.key.pem"))?;
    let pub_pem = std::fs::read_to_string(keys.join("test-only-rsa.pub.pem"))?;
    let dir = std::env::temp_dir().join(format!("airlock-bench-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = start_airlock_with(
        &airlock,
        &dir.join("a").tap_mkdir()?,
        "[auth]\nlogin_rate = 0\n",
    )
    .await?;
    let b = start_openbao(&bao, &dir.join("b").tap_mkdir()?).await?;
    let (a_approle, a_jwt) = configure(&a, &pub_pem, &jwt).await?;
    let (b_approle, b_jwt) = configure(&b, &pub_pem, &jwt).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "logins per second, {secs} s per cell, persistent storage (airlock: SQLite, openbao: raft)"
    );
    println!(
        "{:<8} {:>5} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>7} {:>12} {:>9}",
        "method",
        "conns",
        "airlock/s",
        "p50 ms",
        "p99 ms",
        "openbao/s",
        "p50 ms",
        "p99 ms",
        "ratio",
        "a.p99<b.p50",
        "errors"
    );
    for (name, path, ab, bb) in [
        ("approle", "/v1/auth/approle/login", &a_approle, &b_approle),
        ("jwt", "/v1/auth/jwt/login", &a_jwt, &b_jwt),
    ] {
        for &c in &conns {
            let sa = load(&a.addr, path, ab, c, secs).await?;
            let sb = load(&b.addr, path, bb, c, secs).await?;
            println!(
                "{:<8} {:>5} | {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>6.1}x {:>12} {:>4}/{:<4}",
                name,
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
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
