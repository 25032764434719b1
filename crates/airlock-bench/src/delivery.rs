//! `airlock-bench delivery`: how fast a change reaches the programs that use it.
//!
//! 1. Write → the child sees the new value, over `--rotations` rotations of one KV v2 key:
//!    `airlock run --watch` (push over the event log; `--debounce 0`) against the same
//!    command polling every 10 s (Infisical's default: `run --watch` with a token that may
//!    not read the event log, `--poll-interval 10s`) and `bao agent` re-rendering a template
//!    at its default `static_secret_render_interval` (5 min; `--bao-interval`), both against
//!    the same Airlock server. The child writes the value it was started with to a file;
//!    the time runs from the write request to the file showing the value.
//! 2. Fan-out: `--subscribers` (1,000) Server-Sent-Event subscribers on one node, each
//!    following one key: write → every subscriber notified (p50/p99/max over all), the
//!    server's RSS growth for the subscribers, and KV write throughput (16 connections)
//!    with them attached against none.
//!
//! Not part of CI: its figures go into closing notes.
//!
//! Usage: `airlock-bench delivery [--rotations 50] [--poll-rotations 12] [--bao-rotations 3]
//!         [--bao-interval 5m] [--subscribers 1000] [--airlock PATH] [--bao PATH]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::{arg, request, rss_kib, token_with_policy, Op, Target};

/// When each write (its `current_version`) reached one subscriber.
type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(bin: &Path, dir: &Path) -> Result<Target> {
    // A thousand subscribers come from one address.
    crate::start_airlock_listener(bin, dir, "max_connections_per_address = 4096\n", "").await
}

/// A token with one policy of its own, made with the root token.
async fn put(t: &Target, path: &str, v: &str) -> Result<()> {
    let (s, b) = request(
        &t.addr,
        "POST",
        &format!("/v1/secret/data/{path}"),
        Some(&t.root),
        Some(json!({"data": {"V": v}})),
    )
    .await?;
    if s != 200 {
        bail!("write failed: {s} {b}");
    }
    Ok(())
}

fn last_line(f: &Path) -> String {
    std::fs::read_to_string(f)
        .unwrap_or_default()
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Rotates `secret/<key>` `n` times; each time waits until `seen` shows the value. Before
/// each write it waits a spread-out share of `spread` (a poller's interval), so writes land
/// at every phase of a poll, not just after one.
async fn rotations(
    t: &Target,
    key: &str,
    n: usize,
    seen: &Path,
    limit: Duration,
    spread: Duration,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for i in 0..n {
        let share = ((i as u64 * 7919) % 1000) as f64 / 1000.0;
        let jitter = Duration::from_millis(200) + spread.mul_f64(share);
        tokio::time::sleep(jitter).await;
        let v = format!("rotation-{key}-{i}");
        let t0 = Instant::now();
        put(t, key, &v).await?;
        loop {
            if last_line(seen) == v {
                break;
            }
            if t0.elapsed() > limit {
                bail!("{seen:?} did not show {v} within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return 0.0;
    }
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn watch_child(
    bin: &Path,
    t: &Target,
    token: &str,
    key: &str,
    out: &Path,
    extra: &[&str],
) -> Result<Killed> {
    let script = format!("echo \"$V\" >> '{}'; exec sleep 3600", out.display());
    let c = Command::new(bin)
        .args(["run", "--watch", "--debounce", "0", "--grace", "2s"])
        .args(extra)
        .args([
            "--path",
            &format!("secret/{key}"),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("AIRLOCK_ADDR", &t.addr)
        .env("AIRLOCK_TOKEN", token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Killed(c))
}

async fn wait_for(f: &Path, v: &str) -> Result<()> {
    let t0 = Instant::now();
    while last_line(f) != v {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("{f:?} never showed {v}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// One SSE subscriber: records when each `current_version` arrives.
async fn subscriber(
    host: String,
    token: String,
    arrivals: Arrivals,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Result<()> {
    let mut s = tokio::net::TcpStream::connect(&host).await?;
    let filter = "data_path%20%3D%3D%20secret%2Fdata%2Ffan";
    let head = format!(
        "GET /v1/sys/airlock/events?filter={filter} HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut lines = BufReader::new(s).lines();
    let mut said_ready = false;
    while let Some(line) = lines.next_line().await? {
        if !said_ready && line.starts_with("retry:") {
            said_ready = true;
            let _ = ready.send(()).await;
        }
        if let Some(d) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(d)?;
            if let Some(n) = v["metadata"]["current_version"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
            {
                if let Ok(mut a) = arrivals.lock() {
                    a.push((n, Instant::now()));
                }
            }
        }
    }
    Ok(())
}

pub async fn run(args: &[String]) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = arg(args, "--airlock")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let n: usize = arg(args, "--rotations")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    let n_poll: usize = arg(args, "--poll-rotations")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(12);
    let n_bao: usize = arg(args, "--bao-rotations")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let bao_interval = arg(args, "--bao-interval").unwrap_or_else(|| "5m".into());
    let subs: usize = arg(args, "--subscribers")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = tempdir()?;
    let t = start(&bin, &dir).await?;
    println!("Airlock {} (SQLite), {}", bin.display(), t.addr);

    // Fan-out first (it needs the machine to itself), then the latencies (the longest part
    // waits for bao agent's render interval).
    fanout(&t, subs).await?;
    let dir2 = dir.join("idle");
    std::fs::create_dir_all(&dir2)?;
    let t2 = start(&bin, &dir2).await?;
    println!(
        "for scale, a fresh server with {subs} idle keep-alive HTTP connections: +{:.1} MiB",
        idle_cost(&t2, subs).await? as f64 / 1024.0
    );
    drop(t2);
    if !args.iter().any(|a| a == "--fanout-only") {
        latency(
            args,
            &root,
            &bin,
            &t,
            &dir,
            (n, n_poll, n_bao),
            &bao_interval,
        )
        .await?;
    }
    Ok(())
}

/// RSS growth (KiB) for `n` idle keep-alive HTTP connections, each after one request.
async fn idle_cost(t: &Target, n: usize) -> Result<u64> {
    let host = t.addr.trim_start_matches("http://").to_string();
    let pid = t.child.id();
    let before = rss_kib(pid);
    let mut idle = Vec::new();
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(&host).await?;
        s.write_all(format!("GET /v1/sys/health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        idle.push(s);
    }
    for s in &mut idle {
        let mut buf = [0u8; 4096];
        let _ = tokio::io::AsyncReadExt::read(s, &mut buf).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(rss_kib(pid).saturating_sub(before))
}

async fn latency(
    args: &[String],
    root: &Path,
    bin: &Path,
    t: &Target,
    dir: &Path,
    (n, n_poll, n_bao): (usize, usize, usize),
    bao_interval: &str,
) -> Result<()> {
    let (bin, t) = (bin.to_path_buf(), t);
    // 1. Write → child.
    let push_out = dir.join("push.out");
    put(t, "push", "start").await?;
    let _push = watch_child(&bin, t, &t.root, "push", &push_out, &[])?;
    wait_for(&push_out, "start").await?;
    let push = rotations(
        t,
        "push",
        n,
        &push_out,
        Duration::from_secs(10),
        Duration::from_millis(600),
    )
    .await?;
    println!(
        "run --watch (push)     {n:>3} rotations  p50 {:>9.1} ms  p99 {:>9.1} ms  max {:>9.1} ms",
        pct(&push, 0.5),
        pct(&push, 0.99),
        pct(&push, 1.0)
    );
    let poll_out = dir.join("poll.out");
    // A token that may read the key but not the event log: `run --watch` polls.
    let poll_token = token_with_policy(
        &t.addr,
        &t.root,
        "pollonly",
        "path \"secret/data/poll\" { capabilities = [\"read\"] }\npath \"sys/internal/ui/mounts/*\" { capabilities = [\"read\"] }",
    )
    .await?;
    put(t, "poll", "start").await?;
    let _poll = watch_child(
        &bin,
        t,
        &poll_token,
        "poll",
        &poll_out,
        &["--poll-interval", "10s"],
    )?;
    wait_for(&poll_out, "start").await?;
    let poll = rotations(
        t,
        "poll",
        n_poll,
        &poll_out,
        Duration::from_secs(25),
        Duration::from_secs(10),
    )
    .await?;
    println!(
        "10 s poll loop         {n_poll:>3} rotations  p50 {:>9.1} ms  p99 {:>9.1} ms  max {:>9.1} ms",
        pct(&poll, 0.5),
        pct(&poll, 0.99),
        pct(&poll, 1.0)
    );
    let bao_line = match crate::bao_path(args, root) {
        Ok(bao) => {
            let out = dir.join("bao.out");
            put(t, "bao", "start").await?;
            let tokfile = dir.join("bao-token");
            std::fs::write(&tokfile, &t.root)?;
            let tpl = dir.join("bao.tpl");
            std::fs::write(
                &tpl,
                "{{ with secret \"secret/data/bao\" }}{{ .Data.data.V }}{{ end }}\n",
            )?;
            let cfg = dir.join("agent.hcl");
            std::fs::write(
                &cfg,
                format!(
                    "vault {{ address = \"{}\" }}\nauto_auth {{\n  method \"token_file\" {{\n    config {{ token_file_path = \"{}\" }}\n  }}\n}}\ntemplate_config {{ static_secret_render_interval = \"{bao_interval}\" }}\ntemplate {{\n  source = \"{}\"\n  destination = \"{}\"\n}}\n",
                    t.addr,
                    tokfile.display(),
                    tpl.display(),
                    out.display()
                ),
            )?;
            let _agent = Killed(
                Command::new(&bao)
                    .args(["agent", "-config"])
                    .arg(&cfg)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
            wait_for(&out, "start").await?;
            let limit = parse_secs(bao_interval)? + Duration::from_secs(30);
            let r = rotations(t, "bao", n_bao, &out, limit, parse_secs(bao_interval)?).await?;
            format!(
                "bao agent ({bao_interval} render) {n_bao:>3} rotations  p50 {:>9.1} ms  p99 {:>9.1} ms  max {:>9.1} ms",
                pct(&r, 0.5),
                pct(&r, 0.99),
                pct(&r, 1.0)
            )
        }
        Err(e) => format!("bao agent: not measured ({e:#})"),
    };
    println!("{bao_line}");
    println!(
        "ratio p50: 10 s poll / push {:.0}x",
        pct(&poll, 0.5) / pct(&push, 0.5).max(0.001)
    );
    Ok(())
}

async fn fanout(t: &Target, subs: usize) -> Result<()> {
    // 2. Fan-out.
    let host = t.addr.trim_start_matches("http://").to_string();
    let none = crate::load(t, Op::Write, 16, 10).await?;
    let pid = t.child.id();
    let rss0 = rss_kib(pid);
    let fan_token = token_with_policy(
        &t.addr,
        &t.root,
        "fan",
        "path \"secret/data/fan\" { capabilities = [\"read\"] }\npath \"sys/airlock/events\" { capabilities = [\"read\"] }",
    )
    .await?;
    let arrivals: Vec<Arrivals> = (0..subs)
        .map(|_| Arc::new(Mutex::new(Vec::new())))
        .collect();
    let (rtx, mut rrx) = tokio::sync::mpsc::channel(subs.max(1));
    let mut tasks = Vec::new();
    for a in &arrivals {
        tasks.push(tokio::spawn(subscriber(
            host.clone(),
            fan_token.clone(),
            Arc::clone(a),
            rtx.clone(),
        )));
    }
    for _ in 0..subs {
        tokio::time::timeout(Duration::from_secs(60), rrx.recv())
            .await
            .map_err(|_| anyhow!("subscribers did not all connect within 60 s"))?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib(pid);
    let mut lat = Vec::new();
    let mut worst_round: f64 = 0.0;
    for round in 1..=10u64 {
        let t0 = Instant::now();
        put(t, "fan", &format!("fan-{round}")).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let done = arrivals.iter().all(|a| {
                a.lock()
                    .map(|v| v.iter().any(|(n, _)| *n == round))
                    .unwrap_or(false)
            });
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut missing = 0;
        let mut this_round: f64 = 0.0;
        for a in &arrivals {
            match a
                .lock()
                .ok()
                .and_then(|v| v.iter().find(|(n, _)| *n == round).map(|x| x.1))
            {
                Some(at) => {
                    let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
                    this_round = this_round.max(ms);
                    lat.push(ms);
                }
                None => missing += 1,
            }
        }
        if missing > 0 {
            bail!("round {round}: {missing} subscribers were not notified within 10 s");
        }
        worst_round = worst_round.max(this_round);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let with = crate::load(t, Op::Write, 16, 10).await?;
    println!(
        "fan-out: {subs} SSE subscribers, 10 writes: notified p50 {:.1} ms  p99 {:.1} ms  all-notified max {:.1} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        worst_round
    );
    println!(
        "server RSS: {} KiB before, {} KiB with {subs} subscribers: +{:.1} MiB",
        rss0,
        rss1,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0
    );
    for t in tasks {
        t.abort();
    }
    // Without them again: the store has grown meanwhile, so "none" is the mean of before
    // and after.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = crate::load(t, Op::Write, 16, 10).await?;
    let base = (none.rps + after.rps) / 2.0;
    println!(
        "KV v2 write, 16 conns: {:.0} req/s with none (before {:.0}, after {:.0}), {:.0} req/s with {subs} subscribers ({:+.1}%); errors {} / {} / {}",
        base,
        none.rps,
        after.rps,
        with.rps,
        (with.rps / base.max(1.0) - 1.0) * 100.0,
        none.errors,
        with.errors,
        after.errors
    );
    Ok(())
}

/// `5m`, `30s`, `300`.
fn parse_secs(s: &str) -> Result<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().with_context(|| format!("bad duration {s:?}"))?;
    Ok(Duration::from_secs(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("bad duration {s:?}"),
    }))
}

fn tempdir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("airlock-bench-delivery-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
