//! `airlock-bench`: starts Airlock (SQLite) and OpenBao (raft) side by side, creates a
//! non-root token with a policy on each, and drives the same keep-alive load generator at
//! KV v2 read, KV v2 write and `lookup-self` with 1, 16 and 64 connections. Prints req/s,
//! p50, p99, the ratios, idle and loaded RSS and the time from process start to healthy.
//!
//! `airlock-bench broker …` runs the credential-broker benchmark instead (see `broker.rs`),
//! `airlock-bench db …` the database-credentials one (`db.rs`), `airlock-bench auth …` logins
//! per second (`auth.rs`), `airlock-bench soak` a 30-minute soak at half the maximum KV
//! throughput with RSS sampled every 10 s (`soak.rs`), `airlock-bench cluster` three nodes
//! of each on one PostgreSQL (`cluster.rs`), `airlock-bench delivery` change delivery:
//! write → child, and Server-Sent-Events fan-out (`delivery.rs`), `airlock-bench transit`
//! the transit engine (`transit.rs`), `airlock-bench pki` certificate issuing (`pki.rs`).
//!
//! Usage: `cargo run --release -p airlock-bench -- [--seconds 10] [--conns 1,16,64]
//!         [--ops read,write,lookup-self] [--airlock target/release/airlock] [--bao PATH]`

mod audit;
mod auth;
mod broker;
mod broker_load;
mod broker_run;
mod cluster;
mod db;
mod delivery;
mod pki;
mod soak;
mod transit;
mod ui;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

struct Target {
    child: Child,
    addr: String,
    token: String,
    root: String,
    start_to_healthy: Duration,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let host = addr.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&host).await?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if let Some(t) = token {
        b = b.header("x-vault-token", t);
    }
    let payload = body.map(|v| v.to_string()).unwrap_or_default();
    let resp = tx
        .send_request(b.body(Full::new(Bytes::from(payload)))?)
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn wait_healthy(addr: &str, started: Instant, allow: &[u16]) -> Result<Duration> {
    loop {
        if let Ok((s, _)) = request(addr, "GET", "/v1/sys/health", None, None).await {
            if allow.contains(&s) {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{addr} did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Initialises and unseals a server; returns a policy-bound token, the unseal-to-active time
/// and the root token.
async fn setup(addr: &str) -> Result<(String, Duration, String)> {
    let (_, init) = request(
        addr,
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
    let t = Instant::now();
    request(
        addr,
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(json!({"key": key})),
    )
    .await?;
    loop {
        let (s, _) = request(addr, "GET", "/v1/sys/health", None, None).await?;
        if s == 200 {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("{addr} did not become active");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = seed(addr, &root).await?;
    Ok((token, t.elapsed(), root))
}

/// A KV v2 mount `secret/`, a `bench` policy, a token with it, and one secret to read.
async fn seed(addr: &str, root: &str) -> Result<String> {
    let r = Some(root);
    request(
        addr,
        "POST",
        "/v1/sys/mounts/secret",
        r,
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await?;
    let policy =
        "path \"secret/data/bench*\" { capabilities = [\"create\", \"read\", \"update\"] }\n";
    request(
        addr,
        "PUT",
        "/v1/sys/policies/acl/bench",
        r,
        Some(json!({"policy": policy})),
    )
    .await?;
    let (_, tok) = request(
        addr,
        "POST",
        "/v1/auth/token/create",
        r,
        Some(json!({"policies": ["bench"], "ttl": "4h"})),
    )
    .await?;
    let token = tok["auth"]["client_token"]
        .as_str()
        .ok_or_else(|| anyhow!("token create failed: {tok}"))?
        .to_string();
    let (s, _) = request(
        addr,
        "POST",
        "/v1/secret/data/bench",
        Some(&token),
        Some(json!({"data": {"username": "svc", "password": "p4ssw0rd-0123456789"}})),
    )
    .await?;
    if s != 200 {
        bail!("seed write failed with {s}");
    }
    Ok(token)
}

async fn start_airlock(bin: &Path, dir: &Path) -> Result<Target> {
    start_airlock_with(bin, dir, "").await
}

/// Starts Airlock with extra TOML appended to the generated config.
async fn start_airlock_with(bin: &Path, dir: &Path, extra: &str) -> Result<Target> {
    start_airlock_listener(bin, dir, "", extra).await
}

/// Starts Airlock with extra `[listener]` lines and extra TOML after the generated config.
async fn start_airlock_listener(
    bin: &Path,
    dir: &Path,
    listener: &str,
    extra: &str,
) -> Result<Target> {
    let port = free_port()?;
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:{port}\"\n{listener}[storage]\npath = \"{}\"\n{extra}",
            dir.join("airlock.db").display()
        ),
    )?;
    let started = Instant::now();
    let child = Command::new(bin)
        .args(["server", "--config"])
        .arg(&cfg)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr = format!("http://127.0.0.1:{port}");
    let start_to_healthy = wait_healthy(&addr, started, &[501, 503, 200]).await?;
    let (token, _, root) = setup(&addr).await?;
    Ok(Target {
        child,
        addr,
        token,
        root,
        start_to_healthy,
    })
}

async fn start_openbao(bin: &Path, dir: &Path) -> Result<Target> {
    start_openbao_with(bin, dir, false).await
}

/// OpenBao, with its web UI served (`ui = true`) when asked.
async fn start_openbao_with(bin: &Path, dir: &Path, ui: bool) -> Result<Target> {
    let port = free_port()?;
    let cport = free_port()?;
    let cfg = dir.join("bao.hcl");
    let data = dir.join("raft");
    std::fs::create_dir_all(&data)?;
    std::fs::write(
        &cfg,
        format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"bench\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cport}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cport}\"\ndisable_mlock = true\nui = {ui}\n",
            data.display()
        ),
    )?;
    let started = Instant::now();
    let child = Command::new(bin)
        .args(["server", "-config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr = format!("http://127.0.0.1:{port}");
    let start_to_healthy = wait_healthy(&addr, started, &[501, 503, 200]).await?;
    let (token, _, root) = setup(&addr).await?;
    Ok(Target {
        child,
        addr,
        token,
        root,
        start_to_healthy,
    })
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
    LookupSelf,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read => "kv2-read",
            Op::Write => "kv2-write",
            Op::LookupSelf => "lookup-self",
        }
    }
}

struct Stats {
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

/// A request for connection `c`, iteration `i`, to `host`.
type MakeRequest = dyn Fn(&str, usize, u64) -> Result<hyper::Request<Full<Bytes>>> + Send + Sync;

/// Drives `conns` keep-alive HTTP/1.1 connections to `addr` for `secs` seconds with the
/// requests `make` builds; every non-2xx answer counts as an error.
async fn drive(
    addr: &str,
    conns: usize,
    secs: u64,
    make: std::sync::Arc<MakeRequest>,
) -> Result<Stats> {
    drive_many(&[addr.to_string()], conns, secs, make).await
}

/// [`drive`] over several servers: connection `c` goes to `addrs[c % addrs.len()]`.
async fn drive_many(
    addrs: &[String],
    conns: usize,
    secs: u64,
    make: std::sync::Arc<MakeRequest>,
) -> Result<Stats> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let host = addrs[c % addrs.len()]
            .trim_start_matches("http://")
            .to_string();
        let make = std::sync::Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let stream = tokio::net::TcpStream::connect(&host).await?;
            stream.set_nodelay(true)?;
            let (mut tx, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut i = 0u64;
            while Instant::now() < deadline {
                let req = make(&host, c, i)?;
                let t0 = Instant::now();
                // The connection takes a request only once it has finished the last one.
                tx.ready().await?;
                let resp = tx.send_request(req).await?;
                let ok = resp.status().is_success();
                resp.into_body().collect().await?;
                lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if !ok {
                    errors += 1;
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>((lat, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all.get(i).copied().unwrap_or(0) as u64
    };
    Ok(Stats {
        rps: all.len() as f64 / secs as f64,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        errors,
    })
}

async fn load(t: &Target, op: Op, conns: usize, secs: u64) -> Result<Stats> {
    let token = t.token.clone();
    let make = move |host: &str, c: usize, i: u64| -> Result<hyper::Request<Full<Bytes>>> {
        let (method, path, body) = match op {
            Op::Read => ("GET", "/v1/secret/data/bench".to_string(), String::new()),
            Op::Write => (
                "POST",
                format!("/v1/secret/data/bench-{c}-{}", i % 100),
                format!("{{\"data\":{{\"n\":{i},\"password\":\"p4ssw0rd-0123456789\"}}}}"),
            ),
            Op::LookupSelf => (
                "GET",
                "/v1/auth/token/lookup-self".to_string(),
                String::new(),
            ),
        };
        Ok(hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("x-vault-token", &token)
            .body(Full::new(Bytes::from(body)))?)
    };
    drive(&t.addr, conns, secs, std::sync::Arc::new(make)).await
}

/// A policy `name` with `policy` on the server at `addr`, and a 4-hour token holding only it.
async fn token_with_policy(addr: &str, root: &str, name: &str, policy: &str) -> Result<String> {
    request(
        addr,
        "PUT",
        &format!("/v1/sys/policies/acl/{name}"),
        Some(root),
        Some(json!({ "policy": policy })),
    )
    .await?;
    let (_, created) = request(
        addr,
        "POST",
        "/v1/auth/token/create",
        Some(root),
        Some(json!({"policies": [name], "ttl": "4h"})),
    )
    .await?;
    Ok(created["auth"]["client_token"]
        .as_str()
        .ok_or_else(|| anyhow!("token create failed: {created}"))?
        .to_string())
}

/// What every side-by-side benchmark takes: `--seconds`, `--conns`, `--airlock`, `--bao`.
struct Common {
    secs: u64,
    conns: Vec<usize>,
    airlock: PathBuf,
    bao: PathBuf,
}

fn common_args(args: &[String], secs: u64, conns: &str) -> Result<Common> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Ok(Common {
        secs: arg(args, "--seconds")
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(secs),
        conns: arg(args, "--conns")
            .unwrap_or_else(|| conns.into())
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()?,
        airlock: arg(args, "--airlock")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/airlock")),
        bao: bao_path(args, &root)?,
    })
}

/// The header of [`print_row`]'s table.
fn print_header(op_width: usize) {
    println!(
        "{:<op_width$} {:>5} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>8} {:>12} {:>9}",
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
}

/// One cell: Airlock's and OpenBao's figures, the ratio, and whether Airlock's p99 is below
/// OpenBao's p50.
fn print_row(op_width: usize, op: &str, conns: usize, a: &Stats, b: &Stats) {
    println!(
        "{:<op_width$} {:>5} | {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>7.1}x {:>12} {:>4}/{:<4}",
        op,
        conns,
        a.rps,
        a.p50_us as f64 / 1e3,
        a.p99_us as f64 / 1e3,
        b.rps,
        b.p50_us as f64 / 1e3,
        b.p99_us as f64 / 1e3,
        if b.rps > 0.0 { a.rps / b.rps } else { 0.0 },
        if a.p99_us < b.p50_us { "yes" } else { "no" },
        a.errors,
        b.errors
    );
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("broker") {
        return broker::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("broker-child") {
        return broker_run::child(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("relay") {
        return broker::relay(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("db") {
        return db::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("auth") {
        return auth::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("soak") {
        return soak::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("cluster") {
        return cluster::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("delivery") {
        return delivery::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("transit") {
        return transit::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("pki") {
        return pki::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("ui") {
        return ui::run(&args).await;
    }
    if args.get(1).map(String::as_str) == Some("audit") {
        return audit::run(&args).await;
    }
    let secs: u64 = arg(&args, "--seconds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let conns: Vec<usize> = arg(&args, "--conns")
        .unwrap_or_else(|| "1,16,64".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let airlock = arg(&args, "--airlock")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let bao = bao_path(&args, &root)?;
    let ops: Vec<Op> = arg(&args, "--ops")
        .unwrap_or_else(|| "read,write,lookup-self".into())
        .split(',')
        .map(|s| match s.trim() {
            "read" => Ok(Op::Read),
            "write" => Ok(Op::Write),
            "lookup-self" => Ok(Op::LookupSelf),
            o => Err(anyhow!("unknown op {o:?} (read, write, lookup-self)")),
        })
        .collect::<Result<_>>()?;
    let dir = std::env::temp_dir().join(format!("airlock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = start_airlock(&airlock, &dir.join("a").tap_mkdir()?).await?;
    let b = start_openbao(&bao, &dir.join("b").tap_mkdir()?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = (rss_kib(a.child.id()), rss_kib(b.child.id()));
    println!(
        "start to healthy: airlock {:.1} ms, openbao {:.1} ms",
        a.start_to_healthy.as_secs_f64() * 1e3,
        b.start_to_healthy.as_secs_f64() * 1e3
    );
    println!(
        "idle RSS: airlock {:.1} MiB, openbao {:.1} MiB",
        idle.0 as f64 / 1024.0,
        idle.1 as f64 / 1024.0
    );
    println!();
    println!(
        "{:<12} {:>5} | {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>8} {:>9}",
        "op",
        "conns",
        "airlock/s",
        "p50 ms",
        "p99 ms",
        "openbao/s",
        "p50 ms",
        "p99 ms",
        "ratio",
        "errors"
    );
    let mut peak = (0u64, 0u64);
    for &op in &ops {
        for &c in &conns {
            let sa = load(&a, op, c, secs).await?;
            peak.0 = peak.0.max(rss_kib(a.child.id()));
            let sb = load(&b, op, c, secs).await?;
            peak.1 = peak.1.max(rss_kib(b.child.id()));
            println!(
                "{:<12} {:>5} | {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>7.1}x {:>4}/{:<4}",
                op.name(),
                c,
                sa.rps,
                sa.p50_us as f64 / 1e3,
                sa.p99_us as f64 / 1e3,
                sb.rps,
                sb.p50_us as f64 / 1e3,
                sb.p99_us as f64 / 1e3,
                if sb.rps > 0.0 { sa.rps / sb.rps } else { 0.0 },
                sa.errors,
                sb.errors
            );
        }
    }
    println!();
    println!(
        "loaded RSS (peak after each run): airlock {:.1} MiB, openbao {:.1} MiB",
        peak.0 as f64 / 1024.0,
        peak.1 as f64 / 1024.0
    );
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// OpenBao: `--bao`, `$BAO`, or the shared installer's answer.
fn bao_path(args: &[String], root: &Path) -> Result<PathBuf> {
    Ok(
        match arg(args, "--bao").or_else(|| std::env::var("BAO").ok()) {
            Some(b) => PathBuf::from(b),
            None => {
                let out = Command::new("bash")
                    .arg(root.join("../shared/tools/openbao"))
                    .output()?;
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
            }
        },
    )
}

trait TapMkdir {
    fn tap_mkdir(self) -> Result<PathBuf>;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Result<PathBuf> {
        std::fs::create_dir_all(&self)?;
        Ok(self)
    }
}
