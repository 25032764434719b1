//! `airlock-bench audit`: the audit query API over a large log. Writes a log of `--entries`
//! entries (default 1,000,000: KV reads and writes by 50 users from 20 addresses over
//! 2,000 paths, one in ten a broker event), in Airlock's own format and hash chain, starts
//! Airlock on it (the index is built from the log at start-up, timed), then times the
//! first page of `sys/airlock/audit/query` for a set of filters. The anchor is what an
//! operator does without an index: read the log and filter it (here in Rust, parsing each
//! line, newest 50 matches kept) — OpenBao has no audit query API.
//!
//! Usage: `airlock-bench audit [--entries 1000000] [--repeat 20] [--airlock PATH]`

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use crate::{arg, request, start_airlock_with, TapMkdir};

fn entry(a: &airlock_audit::Auditor, i: usize, t0: i64) -> Value {
    let secs = t0 + (i / 10) as i64; // ten entries a second
    let time = fmt_time(secs);
    if i % 10 == 9 {
        let kind = if i % 70 == 9 { "block" } else { "inject" };
        return json!({
            "type": "broker", "time": time,
            "auth": {"accessor": a.hash(&format!("acc-broker-{}", i % 5)), "display_name": "broker"},
            "broker": {"kind": kind, "agent": format!("agent-{}", i % 5), "binding": "openai", "method": "POST",
                "host": if kind == "block" { "exfil.example.net" } else { "api.openai.com" }, "port": 443,
                "path": "/v1/chat/completions", "status": if kind == "block" { 403 } else { 200 },
                "reason": if kind == "block" { "placeholder sent to a host its binding does not name" } else { "" }},
        });
    }
    let user = i % 50;
    let path = format!("secret/data/team-{}/app-{}", i % 20, (i / 20) % 100);
    let write = i.is_multiple_of(4);
    let mut data = json!({"password": format!("value-{}", i % 5000)});
    a.hash_value(&mut data);
    let request = json!({
        "id": format!("req-{i}"), "operation": if write { "update" } else { "read" },
        "mount_point": "secret/", "mount_type": "kv", "path": path,
        "remote_address": format!("10.0.0.{}", i % 20), "namespace": {"id": "root"},
    });
    let auth = json!({"accessor": a.hash(&format!("acc-{user}")), "display_name": format!("userpass-user{user}"),
        "policies": ["default", "app"], "token_type": "service"});
    if i.is_multiple_of(2) {
        let mut r = request;
        r["data"] = if write { data } else { Value::Null };
        json!({"type": "request", "time": time, "auth": auth, "request": r, "error": ""})
    } else {
        json!({"type": "response", "time": time, "auth": auth, "request": request,
            "response": {"status": if i.is_multiple_of(97) { 403 } else { 200 }, "data": if write { Value::Null } else { json!({"data": data}) }},
            "error": ""})
    }
}

/// RFC 3339 (UTC, `Z`) of Unix seconds.
fn fmt_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The anchor: read the whole log, parse each line, keep the newest 50 matches.
fn scan(log: &Path, f: &dyn Fn(&Value) -> bool) -> Result<usize> {
    let file = std::fs::File::open(log)?;
    let mut hits = std::collections::VecDeque::with_capacity(51);
    for line in std::io::BufReader::with_capacity(1 << 20, file).lines() {
        let v: Value = serde_json::from_str(&line?)?;
        if f(&v) {
            hits.push_back(v);
            if hits.len() > 50 {
                hits.pop_front();
            }
        }
    }
    Ok(hits.len())
}

pub async fn run(args: &[String]) -> Result<()> {
    let n: usize = arg(args, "--entries")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let repeat: usize = arg(args, "--repeat")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let airlock = arg(args, "--airlock")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let dir = std::env::temp_dir().join(format!("airlock-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("audit.log");

    // The log, written through the audit crate (its format and chain), without an index.
    let t = Instant::now();
    let a = airlock_audit::Auditor::open(&[airlock_audit::FileDeviceConfig {
        name: "file".into(),
        path: log.clone(),
        fsync: false,
        index: false,
    }])
    .map_err(|e| anyhow!("{e}"))?;
    a.set_key(zeroize::Zeroizing::new(
        b"bench-audit-key-0123456789abcdef".to_vec(),
    ));
    let t0 = 1_796_000_000; // 2026-11-30
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(entry(&a, i, t0));
        if batch.len() == 1000 {
            a.log_many(&batch).await.map_err(|e| anyhow!("{e}"))?;
            batch.clear();
        }
    }
    a.log_many(&batch).await.map_err(|e| anyhow!("{e}"))?;
    let probe_hmac = a.hash("value-1235").unwrap_or_default();
    let probe_accessor = a.hash("acc-7").unwrap_or_default();
    drop(a);
    let size = std::fs::metadata(&log)?.len();
    println!(
        "log: {n} entries, {:.0} MiB, written in {:.1} s",
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    // Airlock on that log: the index is built from it at start-up.
    let extra = format!("[[audit]]\nname = \"file\"\npath = \"{}\"\n", log.display());
    let started = Instant::now();
    let srv = start_airlock_with(&airlock, &dir.join("a").tap_mkdir()?, &extra).await?;
    let q = |query: String| {
        let addr = srv.addr.clone();
        let root = srv.root.clone();
        async move {
            let (s, v) = request(
                &addr,
                "GET",
                &format!("/v1/sys/airlock/audit/query?{query}"),
                Some(&root),
                None,
            )
            .await?;
            if s != 200 {
                bail!("query {query}: {s} {v}");
            }
            Ok::<Value, anyhow::Error>(v)
        }
    };
    loop {
        let v = q("limit=1".into()).await?;
        if v["data"]["chain"]["indexed_through"].as_u64().unwrap_or(0) >= n as u64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the index did not catch up in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let index_secs = started.elapsed().as_secs_f64();
    let index_size = std::fs::metadata(dir.join("audit.log.index"))?.len();
    println!(
        "index built from the log at start-up: {index_secs:.1} s ({:.0} entries/s), {:.0} MiB",
        n as f64 / index_secs,
        index_size as f64 / 1048576.0
    );

    let mid = fmt_time(t0 + (n / 20) as i64);
    let mid_end = fmt_time(t0 + (n / 20) as i64 + 3600);
    type Filter = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, String, Filter)> = vec![
        ("newest 50, no filter", String::new(), Box::new(|_| true)),
        (
            "path (exact)",
            "path=secret/data/team-3/app-42".into(),
            Box::new(|v| v["request"]["path"] == "secret/data/team-3/app-42"),
        ),
        (
            "path prefix",
            "path_prefix=secret/data/team-3/".into(),
            Box::new(|v| {
                v["request"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("secret/data/team-3/"))
            }),
        ),
        (
            "display name",
            "display_name=userpass-user7".into(),
            Box::new(|v| v["auth"]["display_name"] == "userpass-user7"),
        ),
        (
            "token accessor",
            format!("accessor={probe_accessor}"),
            Box::new(move |v| v["auth"]["accessor"] == probe_accessor.as_str()),
        ),
        (
            "status 403",
            "status=403".into(),
            // A broker event's status counts as its response's.
            Box::new(|v| v["response"]["status"] == 403 || v["broker"]["status"] == 403),
        ),
        (
            "broker blocks",
            "type=broker&kind=block".into(),
            Box::new(|v| v["type"] == "broker" && v["broker"]["kind"] == "block"),
        ),
        (
            "value HMAC",
            format!("hmac={probe_hmac}"),
            Box::new(move |v| v.to_string().contains(probe_hmac.as_str())),
        ),
        ("one hour, mid-log", format!("from={mid}&to={mid_end}"), {
            let lo = airlock_audit::parse_time(&mid).unwrap_or(0);
            let hi = airlock_audit::parse_time(&mid_end).unwrap_or(0);
            Box::new(move |v| {
                airlock_audit::parse_time(v["time"].as_str().unwrap_or_default())
                    .is_some_and(|t| (lo..=hi).contains(&t))
            })
        }),
    ];
    println!(
        "{:<22} | {:>9} {:>9} | {:>10} | {:>7} | hits",
        "query (first page)", "p50 ms", "p99 ms", "scan ms", "ratio"
    );
    for (name, query, filter) in &cases {
        let mut lat = Vec::with_capacity(repeat);
        let mut hits = 0;
        for _ in 0..repeat {
            let t = Instant::now();
            let v = q(format!("limit=50&{query}")).await?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
            hits = v["data"]["entries"].as_array().map_or(0, Vec::len);
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
        let t = Instant::now();
        let scanned = scan(&log, filter.as_ref())?;
        let scan_ms = t.elapsed().as_secs_f64() * 1e3;
        if scanned != hits {
            bail!("{name}: the index found {hits} entries, the scan {scanned}");
        }
        println!(
            "{name:<22} | {:>9.1} {:>9.1} | {:>10.0} | {:>6.0}x | {hits}",
            p(0.5),
            p(0.99),
            scan_ms,
            scan_ms / p(0.5)
        );
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
