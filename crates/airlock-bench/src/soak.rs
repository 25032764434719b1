//! `airlock-bench soak [--minutes 30] [--airlock PATH]`: measures Airlock's maximum KV v2
//! throughput (a read/write mix, 16 connections, 10 s), then holds half of it for the given
//! minutes, paced, sampling the server's RSS every 10 s. Prints every sample, the error
//! count, and the RSS trend (least-squares slope over the second half, KiB per minute).
//! Not part of CI: its figures go into closing notes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::{arg, rss_kib, start_airlock};

const CONNS: usize = 16;

fn mixed(token: &str, host: &str, c: usize, i: u64) -> Result<hyper::Request<Full<Bytes>>> {
    // Three reads for each write, over 1,600 keys.
    let key = format!("bench-soak-{c}-{}", i % 100);
    let (method, body) = if i.is_multiple_of(4) {
        (
            "POST",
            format!("{{\"data\":{{\"n\":{i},\"password\":\"p4ssw0rd-0123456789\"}}}}"),
        )
    } else {
        ("GET", String::new())
    };
    let path = if method == "GET" && i < 4 {
        "/v1/secret/data/bench".to_string()
    } else {
        format!("/v1/secret/data/{key}")
    };
    Ok(hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("x-vault-token", token)
        .body(Full::new(Bytes::from(body)))?)
}

/// Drives the mix on `CONNS` connections until `until`, each connection paced to
/// `per_conn_rps` (0: as fast as it can), counting requests and errors.
async fn run_mix(
    addr: String,
    token: String,
    until: Instant,
    per_conn_rps: f64,
    errors: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
) -> Result<()> {
    let host = addr.trim_start_matches("http://").to_string();
    let mut tasks = Vec::new();
    for c in 0..CONNS {
        let host = host.clone();
        let token = token.clone();
        let errors = Arc::clone(&errors);
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            let start = Instant::now();
            'outer: while Instant::now() < until {
                let stream = tokio::net::TcpStream::connect(&host).await?;
                stream.set_nodelay(true)?;
                let (mut tx, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                while Instant::now() < until {
                    if per_conn_rps > 0.0 {
                        let due = start + Duration::from_secs_f64(i as f64 / per_conn_rps);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let req = mixed(&token, &host, c, i)?;
                    i += 1;
                    // A connection the server closed (idle, keep-alive limits) is reopened.
                    if tx.ready().await.is_err() {
                        continue 'outer;
                    }
                    match tx.send_request(req).await {
                        Ok(resp) => {
                            let ok = resp.status().is_success() || resp.status() == 404;
                            let _ = resp.into_body().collect().await;
                            if !ok {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            continue 'outer;
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Least-squares slope of `ys` over `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let num: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

pub async fn run(args: &[String]) -> Result<()> {
    let minutes: f64 = arg(args, "--minutes")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(30.0);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = arg(args, "--airlock")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let dir = std::env::temp_dir().join(format!("airlock-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let t = start_airlock(&bin, &dir).await?;
    let pid = t.child.id();

    // Maximum: as fast as the connections go, 10 s.
    let (errors, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let t0 = Instant::now();
    run_mix(
        t.addr.clone(),
        t.token.clone(),
        t0 + Duration::from_secs(10),
        0.0,
        errors.clone(),
        done.clone(),
    )
    .await?;
    let max = done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    if errors.load(Ordering::Relaxed) > 0 {
        bail!("errors while measuring the maximum");
    }
    let target = max / 2.0;
    println!(
        "soak: maximum {max:.0} req/s (KV v2, 3 reads : 1 write, {CONNS} connections); holding {target:.0} req/s for {minutes} min"
    );

    let (errors, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(minutes * 60.0);
    let load = tokio::spawn(run_mix(
        t.addr.clone(),
        t.token.clone(),
        until,
        target / CONNS as f64,
        errors.clone(),
        done.clone(),
    ));
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    println!("minute  RSS_MiB  requests  errors");
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let m = start.elapsed().as_secs_f64() / 60.0;
        let rss = rss_kib(pid) as f64;
        xs.push(m);
        ys.push(rss);
        println!(
            "{m:6.2}  {:7.1}  {:8}  {}",
            rss / 1024.0,
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed)
        );
    }
    load.await??;
    let half = xs.len() / 2;
    let trend = slope(&xs[half..], &ys[half..]);
    let n = done.load(Ordering::Relaxed);
    let e = errors.load(Ordering::Relaxed);
    println!(
        "soak: {n} requests in {minutes} min ({:.0} req/s), {e} errors; RSS {:.1} → {:.1} MiB, second-half trend {trend:+.1} KiB/min",
        n as f64 / (minutes * 60.0),
        ys.first().copied().unwrap_or(0.0) / 1024.0,
        ys.last().copied().unwrap_or(0.0) / 1024.0,
    );
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
    if e > 0 {
        bail!("{e} errors during the soak");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_line() {
        let xs = [0.0, 1.0, 2.0, 3.0];
        assert!((super::slope(&xs, &[5.0, 7.0, 9.0, 11.0]) - 2.0).abs() < 1e-9);
        assert_eq!(super::slope(&xs, &[4.0; 4]), 0.0);
    }
}
