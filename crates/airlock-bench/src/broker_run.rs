//! The `broker run` part of `airlock-bench broker`: a load generator running **as the
//! broker's child** (`airlock-bench broker-child`, reading the proxy, CA and placeholders
//! from its environment like any agent), once under `broker run` and once under
//! `broker run --sandbox`, each time with bearer-injected and SigV4-re-signed requests to the
//! same upstream; and `broker run` → child started, with and without `--sandbox`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::json;

use crate::broker_load::{api, load, tls_trusting, Mode, Via, AWS_KEY_ID, CHAT, HOST};

/// `airlock-bench broker-child --seconds N --conns 1,16`: prints one line per cell,
/// `<kind> <conns> <req/s> <p50 ms> <p99 ms> <errors>`.
pub async fn child(args: &[String]) -> Result<()> {
    let (secs, conns) = crate::broker_load::secs_and_conns(args)?;
    let env = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set"));
    let proxy = env("HTTPS_PROXY")?;
    let rest = proxy
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("HTTPS_PROXY is not http://"))?;
    let (cred, hostport) = rest
        .rsplit_once('@')
        .ok_or_else(|| anyhow!("HTTPS_PROXY has no credential"))?;
    let port: u16 = hostport
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .ok_or_else(|| anyhow!("HTTPS_PROXY has no port"))?;
    let auth = base64::engine::general_purpose::STANDARD.encode(cred);
    let tls = tls_trusting(&std::fs::read_to_string(env("SSL_CERT_FILE")?)?)?;
    // SigV4 headers, signed once with the placeholder keys (the broker verifies and
    // re-signs every request; the client's own signing cost stays out of the figures).
    let (id, secret) = (env("AWS_ACCESS_KEY_ID")?, env("AWS_SECRET_ACCESS_KEY")?);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let date = airlock_core::sigv4::amz_date(now).ok_or_else(|| anyhow!("clock"))?;
    use sha2::Digest;
    let body_hash = hex::encode(sha2::Sha256::digest(CHAT));
    let base = [
        ("content-type", "application/json"),
        ("host", HOST),
        ("x-amz-content-sha256", body_hash.as_str()),
    ];
    let signed = airlock_core::sigv4::sign(
        &airlock_core::sigv4::Credentials {
            access_key: &id,
            secret_key: &secret,
            session_token: None,
        },
        "us-east-1",
        "bedrock",
        &date,
        &airlock_core::sigv4::Request {
            method: "POST",
            path: "/v1/chat/completions",
            query: &[],
            headers: &base,
            payload: CHAT,
        },
    );
    let mut aws = vec![("x-amz-content-sha256".to_string(), body_hash.clone())];
    aws.extend(
        signed
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone())),
    );
    let via = Via::Proxy {
        port,
        auth: Some(auth),
        connect_port: 443,
    };
    let modes = [
        Mode {
            name: "bearer",
            via: via.clone(),
            tls: tls.clone(),
            token: env("OPENAI_API_KEY")?,
            aws_headers: None,
        },
        Mode {
            name: "sigv4",
            via,
            tls,
            token: String::new(),
            aws_headers: Some(Arc::new(aws)),
        },
    ];
    for &c in &conns {
        for m in &modes {
            let l = load(m, c, secs).await?;
            println!(
                "{} {c} {:.1} {:.4} {:.4} {}",
                m.name, l.rps, l.p50, l.p99, l.errors
            );
        }
    }
    Ok(())
}

/// One cell of a child's report.
struct Cell {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

/// Where `broker run` runs: the binary, the server, the profile and the upstream.
struct Ctx<'a> {
    airlock: &'a str,
    addr: &'a str,
    profile: &'a Path,
    up_port: u16,
    up_ca: &'a Path,
}

/// Runs the child under `broker run` (with `--sandbox` or not); its cells by (kind, conns).
fn run_child(
    x: &Ctx<'_>,
    sandbox: bool,
    secs: u64,
    conns: &str,
) -> Result<std::collections::HashMap<(String, usize), Cell>> {
    let Ctx {
        airlock,
        addr,
        profile,
        up_port,
        up_ca,
    } = *x;
    let mut c = Command::new(airlock);
    c.args(["broker", "run", "--profile"])
        .arg(profile)
        .arg("--resolve")
        .arg(format!("{HOST}=127.0.0.1:{up_port}"))
        .arg("--extra-ca")
        .arg(up_ca);
    if sandbox {
        c.arg("--sandbox");
    }
    let out = c
        .arg("--")
        .arg(std::env::current_exe()?)
        .args([
            "broker-child",
            "--seconds",
            &secs.to_string(),
            "--conns",
            conns,
        ])
        .env("AIRLOCK_ADDR", addr)
        .env("AIRLOCK_TOKEN", "root")
        .output()?;
    if !out.status.success() {
        bail!(
            "broker run{} child failed: {}",
            if sandbox { " --sandbox" } else { "" },
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut cells = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [kind, c, rps, p50, p99, errors] = f.as_slice() {
            cells.insert(
                (kind.to_string(), c.parse()?),
                Cell {
                    rps: rps.parse()?,
                    p50: p50.parse()?,
                    p99: p99.parse()?,
                    errors: errors.parse()?,
                },
            );
        }
    }
    Ok(cells)
}

/// `broker run [--sandbox] -- date +%s%N`: ms from the command to the child running.
fn start_ms(airlock: &str, addr: &str, profile: &Path, sandbox: bool) -> Result<f64> {
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let mut c = Command::new(airlock);
    c.args(["broker", "run", "--profile"]).arg(profile);
    if sandbox {
        c.arg("--sandbox");
    }
    let out = c
        .args(["--", "date", "+%s%N"])
        .env("AIRLOCK_ADDR", addr)
        .env("AIRLOCK_TOKEN", "root")
        .output()?;
    let child: u128 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(child.saturating_sub(t0) as f64 / 1e6)
}

/// The `broker run` measurements (see the module doc).
pub async fn measure(
    airlock: &str,
    addr: &str,
    dir: &Path,
    up_port: u16,
    up_ca: &Path,
    secs: u64,
    conns: &[usize],
) -> Result<()> {
    api(
        addr,
        "POST",
        "/v1/secret/data/bench-aws",
        Some(json!({"data": {"access_key": AWS_KEY_ID, "secret_key": "bench-real-secret"}})),
    )
    .await?;
    let profile = dir.join("airlock-run.toml");
    std::fs::write(
        &profile,
        format!(
            "[[binding]]\nname = \"openai\"\nprovider = \"openai\"\nsecret = \"secret/bench#KEY\"\n\n[[binding]]\nname = \"aws\"\nsigning = \"aws_sigv4\"\nsecret = \"secret/bench-aws\"\nhosts = [\"{HOST}\"]\n"
        ),
    )?;
    let conns_arg = conns
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let ctx = Ctx {
        airlock,
        addr,
        profile: &profile,
        up_port,
        up_ca,
    };
    let plain = run_child(&ctx, false, secs, &conns_arg)?;
    let boxed = run_child(&ctx, true, secs, &conns_arg)?;
    println!();
    println!("broker run (the load generator is the broker's child), {secs}s per cell:");
    println!(
        "{:<20} {:>6} {:>10} {:>9} {:>9} {:>7}",
        "run / request", "conns", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for &c in conns {
        for (label, cells) in [("run", &plain), ("run --sandbox", &boxed)] {
            for kind in ["bearer", "sigv4"] {
                let x = cells
                    .get(&(kind.to_string(), c))
                    .ok_or_else(|| anyhow!("missing cell {label} {kind} {c}"))?;
                println!(
                    "{:<20} {:>6} {:>10.0} {:>9.3} {:>9.3} {:>7}",
                    format!("{label} / {kind}"),
                    c,
                    x.rps,
                    x.p50,
                    x.p99,
                    x.errors
                );
            }
        }
    }
    let mut start = Vec::new();
    let mut start_sb = Vec::new();
    for _ in 0..9 {
        start.push(start_ms(airlock, addr, &profile, false)?);
        start_sb.push(start_ms(airlock, addr, &profile, true)?);
    }
    start.sort_by(|a, b| a.total_cmp(b));
    start_sb.sort_by(|a, b| a.total_cmp(b));
    println!("ratios (broker run):");
    for &c in conns {
        let g = |m: &std::collections::HashMap<(String, usize), Cell>, k: &str| {
            m.get(&(k.to_string(), c)).map(|x| (x.rps, x.p50))
        };
        if let (Some(b), Some(s), Some(bb)) =
            (g(&plain, "bearer"), g(&plain, "sigv4"), g(&boxed, "bearer"))
        {
            println!(
                "  {c:>2} conns: SigV4 re-signing adds {:+.3} ms p50 over header injection (req/s ratio {:.2}); --sandbox/plain req/s {:.2}, p50 {:+.3} ms",
                s.1 - b.1,
                s.0 / b.0,
                bb.0 / b.0,
                bb.1 - b.1
            );
        }
    }
    println!(
        "  child started: broker run {:.1} ms, broker run --sandbox {:.1} ms (median of 9)",
        start[start.len() / 2],
        start_sb[start_sb.len() / 2]
    );
    Ok(())
}
