//! `airlock-bench db`: dynamic PostgreSQL credentials, Airlock and OpenBao side by side
//! against the same local PostgreSQL (both with persistent storage: SQLite and raft).
//! Issues `database/creds/<role>` sequentially (200) and with 8 concurrent clients, then
//! issues 1,000 credentials with a 10 s TTL on each and measures how long after the last
//! expiry every one of those users is gone from `pg_roles`.
//!
//! Usage: `cargo run --release -p airlock-bench -- db [--seq 200] [--conc 8] [--mass 1000]
//!         [--airlock target/release/airlock] [--bao PATH]`

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::json;

use crate::{arg, request, start_airlock, start_openbao, TapMkdir, Target};

fn psql_count(like: &str) -> Result<i64> {
    let o = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ])
        .arg(format!(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE '{like}'"
        ))
        .output()?;
    if !o.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
}

async fn configure(t: &Target, tag: &str) -> Result<()> {
    let r = Some(t.root.as_str());
    let steps = [
        ("/v1/sys/mounts/database", json!({"type": "database"})),
        (
            "/v1/database/config/pg",
            json!({"plugin_name": "postgresql-database-plugin",
                   "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
                   "username": "postgres", "password": "x", "allowed_roles": "*",
                   "password_authentication": "scram-sha-256"}),
        ),
        (
            &format!("/v1/database/roles/b{tag}"),
            json!({"db_name": "pg", "default_ttl": "1h", "max_ttl": "2h", "creation_statements":
                ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]}),
        ),
        (
            &format!("/v1/database/roles/s{tag}"),
            json!({"db_name": "pg", "default_ttl": "10s", "max_ttl": "10s", "creation_statements":
                ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]}),
        ),
    ];
    for (path, body) in steps {
        let (s, v) = request(&t.addr, "POST", path, r, Some(body)).await?;
        if s >= 300 {
            bail!("{path}: {s} {v}");
        }
    }
    Ok(())
}

async fn issue(addr: &str, root: &str, role: &str) -> Result<Duration> {
    let start = Instant::now();
    let (s, v) = request(
        addr,
        "GET",
        &format!("/v1/database/creds/{role}"),
        Some(root),
        None,
    )
    .await?;
    if s != 200 {
        bail!("creds/{role}: {s} {v}");
    }
    Ok(start.elapsed())
}

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn issue_many(t: &Target, role: &str, clients: usize, per_client: usize) -> Result<Run> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let addr = t.addr.clone();
        let root = t.root.clone();
        let role = role.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for _ in 0..per_client {
                lat.push(issue(&addr, &root, &role).await?.as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Ok(Run {
        rps: all.len() as f64 / secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}

/// Issues `n` short-lived credentials (8 clients) and returns how long after the last
/// lease's end every user matching `like` was gone.
async fn mass_expiry(t: &Target, role: &str, n: usize, like: &str) -> Result<(f64, f64)> {
    let issue_start = Instant::now();
    issue_many(t, role, 8, n / 8).await?;
    let issued_in = issue_start.elapsed();
    // The last lease ends 10 s after the last issue (lease TTL 10 s).
    let last_end = Instant::now() + Duration::from_secs(10);
    let present = psql_count(like)?;
    if present < (n / 8 * 8) as i64 {
        bail!("only {present} of {n} users exist after issuing");
    }
    loop {
        if psql_count(like)? == 0 {
            let now = Instant::now();
            let after = if now > last_end {
                (now - last_end).as_secs_f64()
            } else {
                -(last_end - now).as_secs_f64()
            };
            return Ok((issued_in.as_secs_f64(), after));
        }
        if Instant::now() > last_end + Duration::from_secs(120) {
            bail!(
                "{} users still present 120 s after expiry",
                psql_count(like)?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: &[String]) -> Result<()> {
    let seq: usize = arg(args, "--seq")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let conc: usize = arg(args, "--conc")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(8);
    let mass: usize = arg(args, "--mass")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
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
    psql_count("x").map_err(|e| anyhow!("PostgreSQL with psql is needed: {e}"))?;
    let dir = std::env::temp_dir().join(format!("airlock-bench-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = start_airlock(&airlock, &dir.join("a").tap_mkdir()?).await?;
    let b = start_openbao(&bao, &dir.join("b").tap_mkdir()?).await?;
    configure(&a, "a").await?;
    configure(&b, "o").await?;
    for t in [&a, &b] {
        // Warm-up (connection pools).
        for role in ["ba", "bo"] {
            let _ = issue(&t.addr, &t.root, role).await;
        }
    }
    println!("dynamic PostgreSQL credentials (GET database/creds/<role>), same PostgreSQL");
    println!(
        "{:<22} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>6} {:>7}",
        "run", "airlock/s", "p50 ms", "p99 ms", "openbao/s", "p50 ms", "p99 ms", "ratio", "p50 %"
    );
    for (name, clients, per) in [
        (format!("sequential ({seq})"), 1usize, seq),
        (
            format!("{conc} clients ({})", conc * (seq / conc).max(1)),
            conc,
            (seq / conc).max(1),
        ),
    ] {
        let ra = issue_many(&a, "ba", clients, per).await?;
        let rb = issue_many(&b, "bo", clients, per).await?;
        println!(
            "{:<22} | {:>9.0} {:>8.2} {:>8.2} | {:>9.0} {:>8.2} {:>8.2} | {:>5.1}x {:>6.0}%",
            name,
            ra.rps,
            ra.p50_ms,
            ra.p99_ms,
            rb.rps,
            rb.p50_ms,
            rb.p99_ms,
            ra.rps / rb.rps,
            100.0 * ra.p50_ms / rb.p50_ms
        );
    }
    let (ia, ea) = mass_expiry(&a, "sa", mass, "v-%-sa-%").await?;
    println!(
        "mass expiry, airlock: {mass} users (10 s TTL) issued in {ia:.1} s; all gone {ea:+.1} s after the last lease ended"
    );
    let (ib, eb) = mass_expiry(&b, "so", mass, "v-%-so-%").await?;
    println!(
        "mass expiry, openbao: {mass} users (10 s TTL) issued in {ib:.1} s; all gone {eb:+.1} s after the last lease ended"
    );
    for t in [&a, &b] {
        let _ = request(
            &t.addr,
            "PUT",
            "/v1/sys/leases/revoke-prefix/database/",
            Some(&t.root),
            None,
        )
        .await;
    }
    // Leave no users behind in the shared PostgreSQL.
    for t in [&a, &b] {
        let _ = request(
            &t.addr,
            "PUT",
            "/v1/sys/leases/revoke-prefix/database/creds",
            Some(t.root.as_str()),
            None,
        )
        .await;
    }
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
