//! `airlock-bench cluster`: three Airlock nodes against three OpenBao nodes, both on the
//! same local PostgreSQL (OpenBao with `ha_enabled`), clients spread round-robin over the
//! nodes; KV v2 read and write at 16 and 64 connections. Also one Airlock node on
//! PostgreSQL (the cost of cross-node coherence), CPU seconds per 1,000 requests (the
//! nodes, and PostgreSQL), and how long a revocation on one Airlock node takes to be
//! honoured by the others while the load runs (p50/p99).
//!
//! Usage: `airlock-bench cluster [--seconds 10] [--conns 16,64] [--pg-url URL]
//!         [--airlock PATH] [--bao PATH]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

use crate::{arg, drive_many, free_port, request, seed, wait_healthy, MakeRequest, Stats};

struct Node {
    child: Child,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    nodes: Vec<Node>,
    token: String,
    root: String,
}

/// User+system CPU seconds of a process.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of every PostgreSQL server process.
fn postgres_cpu() -> f64 {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_secs)
        .sum()
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

async fn airlock_cluster(
    bin: &Path,
    dir: &Path,
    n: usize,
    pg_url: &str,
    table: &str,
) -> Result<Cluster> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("unseal.key"), "6b".repeat(32))?;
    let mut nodes = Vec::new();
    let mut root = String::new();
    for i in 0..n {
        let port = free_port()?;
        let cfg = dir.join(format!("node{i}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[listener]\naddress = \"127.0.0.1:{port}\"\nmax_connections_per_address = 0\n[storage]\nbackend = \"postgresql\"\nconnection_url = \"{pg_url}\"\ntable = \"{table}\"\n[seal]\nkey_file = \"{}\"\n",
                dir.join("unseal.key").display()
            ),
        )?;
        let child = Command::new(bin)
            .args(["server", "--config"])
            .arg(&cfg)
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let addr = format!("http://127.0.0.1:{port}");
        wait_healthy(&addr, Instant::now(), &[501, 503, 200]).await?;
        if i == 0 {
            let (_, init) = request(&addr, "PUT", "/v1/sys/init", None, Some(json!({}))).await?;
            root = init["root_token"]
                .as_str()
                .ok_or_else(|| anyhow!("init: {init}"))?
                .to_string();
        }
        wait_healthy(&addr, Instant::now(), &[200]).await?;
        nodes.push(Node { child, addr });
    }
    let token = seed(&nodes[0].addr, &root).await?;
    Ok(Cluster { nodes, token, root })
}

async fn openbao_cluster(
    bin: &Path,
    dir: &Path,
    n: usize,
    pg_url: &str,
    table: &str,
) -> Result<Cluster> {
    std::fs::create_dir_all(dir)?;
    psql(pg_url, &format!(
        "CREATE TABLE {table} (parent_path TEXT COLLATE \"C\" NOT NULL, path TEXT COLLATE \"C\", key TEXT COLLATE \"C\", value BYTEA, CONSTRAINT {table}_pkey PRIMARY KEY (path, key)); \
         CREATE INDEX {table}_parent ON {table} (parent_path); \
         CREATE TABLE {table}_ha (ha_key TEXT COLLATE \"C\" NOT NULL, ha_identity TEXT COLLATE \"C\" NOT NULL, ha_value TEXT COLLATE \"C\", valid_until TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT {table}_ha_key PRIMARY KEY (ha_key));"
    ))?;
    let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
    let mut nodes = Vec::new();
    for i in 0..n {
        let (port, cport) = (free_port()?, free_port()?);
        let cfg = dir.join(format!("bao{i}.hcl"));
        std::fs::write(
            &cfg,
            format!(
                "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n  table = \"{table}\"\n  ha_enabled = \"true\"\n  ha_table = \"{table}_ha\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cport}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{cport}\"\ndisable_mlock = true\nui = false\n"
            ),
        )?;
        let log = std::fs::File::create(dir.join(format!("bao{i}.log")))?;
        let child = Command::new(bin)
            .args(["server", "-config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let addr = format!("http://127.0.0.1:{port}");
        wait_healthy(&addr, Instant::now(), &[501, 503, 200, 429, 473]).await?;
        nodes.push(Node { child, addr });
    }
    let (_, init) = request(
        &nodes[0].addr,
        "PUT",
        "/v1/sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await?;
    let key = init["keys"][0]
        .as_str()
        .ok_or_else(|| anyhow!("init failed: {init}"))?
        .to_string();
    let root = init["root_token"]
        .as_str()
        .ok_or_else(|| anyhow!("no root token"))?
        .to_string();
    request(
        &nodes[0].addr,
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(json!({"key": key})),
    )
    .await?;
    wait_healthy(&nodes[0].addr, Instant::now(), &[200]).await?;
    for n in &nodes[1..] {
        request(
            &n.addr,
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(json!({"key": key})),
        )
        .await?;
        // A standby answers 429 (or 473 as a performance standby) once unsealed.
        wait_healthy(&n.addr, Instant::now(), &[429, 473, 200]).await?;
    }
    let token = seed(&nodes[0].addr, &root).await?;
    Ok(Cluster { nodes, token, root })
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
}

fn make(op: Op, token: String) -> Arc<MakeRequest> {
    Arc::new(move |host: &str, c: usize, i: u64| {
        let (method, path, body) = match op {
            Op::Read => ("GET", "/v1/secret/data/bench".to_string(), String::new()),
            Op::Write => (
                "POST",
                format!("/v1/secret/data/bench-{c}-{}", i % 100),
                format!("{{\"data\":{{\"n\":{i},\"password\":\"p4ssw0rd-0123456789\"}}}}"),
            ),
        };
        Ok(hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("x-vault-token", &token)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?)
    })
}

/// One load run: throughput, and CPU seconds per 1,000 requests (nodes, PostgreSQL).
async fn run_load(c: &Cluster, op: Op, conns: usize, secs: u64) -> Result<(Stats, f64, f64)> {
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr.clone()).collect();
    let cpu0: f64 = c.nodes.iter().map(|n| cpu_secs(n.child.id())).sum();
    let pg0 = postgres_cpu();
    let s = drive_many(&addrs, conns, secs, make(op, c.token.clone())).await?;
    let cpu1: f64 = c.nodes.iter().map(|n| cpu_secs(n.child.id())).sum();
    let pg1 = postgres_cpu();
    let reqs = (s.rps * secs as f64).max(1.0);
    Ok((
        s,
        (cpu1 - cpu0) / reqs * 1000.0,
        (pg1 - pg0) / reqs * 1000.0,
    ))
}

/// While `busy` holds, revokes tokens on node 0 and measures how long until nodes 1 and
/// 2 refuse them. Returns the delays in milliseconds.
async fn revocation_delays(c: &Cluster, rounds: usize) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..rounds {
        let (_, t) = request(
            &c.nodes[0].addr,
            "POST",
            "/v1/auth/token/create",
            Some(&c.root),
            Some(json!({"policies": ["bench"]})),
        )
        .await?;
        let tok = t["auth"]["client_token"]
            .as_str()
            .ok_or_else(|| anyhow!("create: {t}"))?
            .to_string();
        for n in &c.nodes[1..] {
            let (s, _) = request(
                &n.addr,
                "GET",
                "/v1/auth/token/lookup-self",
                Some(&tok),
                None,
            )
            .await?;
            if s != 200 {
                bail!("a new token is refused on another node ({s})");
            }
        }
        let (s, _) = request(
            &c.nodes[0].addr,
            "POST",
            "/v1/auth/token/revoke-self",
            Some(&tok),
            None,
        )
        .await?;
        if s != 204 {
            bail!("revoke-self answered {s}");
        }
        let t0 = Instant::now();
        for n in &c.nodes[1..] {
            loop {
                let (s, _) = request(
                    &n.addr,
                    "GET",
                    "/v1/auth/token/lookup-self",
                    Some(&tok),
                    None,
                )
                .await?;
                if s == 403 {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    bail!("a revoked token still works on another node after 10 s");
                }
            }
        }
        out.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    Ok(out)
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(args: &[String]) -> Result<()> {
    let secs: u64 = arg(args, "--seconds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let conns: Vec<usize> = arg(args, "--conns")
        .unwrap_or_else(|| "16,64".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let pg_url = arg(args, "--pg-url")
        .unwrap_or_else(|| "host=127.0.0.1 user=postgres dbname=postgres".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let airlock = arg(args, "--airlock")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let bao = crate::bao_path(args, &root)?;
    let dir = std::env::temp_dir().join(format!("airlock-bench-cluster-{}", std::process::id()));
    let pid = std::process::id();
    let tables = [
        format!("bench_a3_{pid}"),
        format!("bench_a1_{pid}"),
        format!("bench_bao_{pid}"),
    ];
    let result = async {
        let a3 = airlock_cluster(&airlock, &dir.join("a3"), 3, &pg_url, &tables[0]).await?;
        let a1 = airlock_cluster(&airlock, &dir.join("a1"), 1, &pg_url, &tables[1]).await?;
        let b3 = openbao_cluster(&bao, &dir.join("b3"), 3, &pg_url, &tables[2]).await?;
        println!("three nodes each on one PostgreSQL; {secs} s per run; clients round-robin over the nodes");
        println!();
        println!(
            "{:<10} {:>5} | {:>11} {:>8} {:>8} {:>7} | {:>11} {:>8} {:>8} {:>7} | {:>6} | {:>11} {:>6} | {:>6}",
            "op", "conns", "airlock×3/s", "p99 ms", "cpu/1k", "pg/1k", "openbao×3/s", "p99 ms", "cpu/1k", "pg/1k", "ratio", "airlock×1/s", "×3/×1", "errors"
        );
        for (op, name) in [(Op::Read, "kv2-read"), (Op::Write, "kv2-write")] {
            for &c in &conns {
                let (sa, ca, pa) = run_load(&a3, op, c, secs).await?;
                let (sb, cb, pb) = run_load(&b3, op, c, secs).await?;
                let (s1, _, _) = run_load(&a1, op, c, secs).await?;
                println!(
                    "{:<10} {:>5} | {:>11.0} {:>8.2} {:>8.3} {:>7.3} | {:>11.0} {:>8.2} {:>8.3} {:>7.3} | {:>5.1}x | {:>11.0} {:>6.2} | {}/{}/{}",
                    name, c, sa.rps, sa.p99_us as f64 / 1e3, ca, pa, sb.rps, sb.p99_us as f64 / 1e3, cb, pb,
                    if sb.rps > 0.0 { sa.rps / sb.rps } else { 0.0 },
                    s1.rps, if s1.rps > 0.0 { sa.rps / s1.rps } else { 0.0 },
                    sa.errors, sb.errors, s1.errors
                );
            }
        }
        // Revocation seen everywhere, measured under read load on all three nodes.
        let addrs: Vec<String> = a3.nodes.iter().map(|n| n.addr.clone()).collect();
        let load = tokio::spawn({
            let token = a3.token.clone();
            async move { drive_many(&addrs, 16, 8, make(Op::Read, token)).await }
        });
        let delays = revocation_delays(&a3, 200).await?;
        let bg = load.await??;
        println!();
        println!(
            "revocation on one node honoured by the other two, under {:.0} reads/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} revocations)",
            bg.rps, pct(&delays, 0.5), pct(&delays, 0.99), pct(&delays, 1.0), delays.len()
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    for t in &tables {
        let _ = psql(&pg_url, &format!("DROP TABLE IF EXISTS {t}; DROP TABLE IF EXISTS {t}_nodes; DROP TABLE IF EXISTS {t}_ha"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}
