//! `airlock-bench broker`: the credential broker against a direct connection and mitmproxy
//! (plus a plain TCP relay in its own process, as a reference for the cost of one hop)
//! with an equivalent placeholder-swap addon (the engine of mitmproxy-based brokers), all
//! three in front of the same local HTTPS upstream, driven by the same keep-alive load
//! generator (HTTP/1.1 over CONNECT + TLS) at 1 and 16 connections. Also measures the time
//! to the first event of an SSE stream on an established connection, the broker's RSS under
//! load, and `broker run` → child started.
//!
//! Other brokers already running on loopback join as more columns with
//! `--peer NAME,PORT,CA_PEM_FILE,USER:TOKEN` (repeatable): the load generator sends them
//! `CONNECT api.openai.com:<upstream port>` with that proxy credential and the placeholder
//! as the bearer token, so the peer must resolve `api.openai.com` to 127.0.0.1 itself (a
//! hosts file in its own mount namespace) and put the real key on requests to that host.
//!
//! Usage: `cargo run --release -p airlock-bench -- broker [--seconds 5] [--conns 1,16]
//!         [--airlock target/release/airlock] [--mitmdump PATH|none]
//!         [--upstream-port N] [--peer NAME,PORT,CA,USER:TOKEN]...`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

struct Sse(tokio::sync::mpsc::Receiver<Bytes>);
impl hyper::body::Body for Sse {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

async fn upstream_handle(req: Request<Incoming>) -> Response<Body> {
    let ok = req.headers().get("authorization").is_some_and(|v| {
        v.as_bytes() == format!("Bearer {KEY}").as_bytes()
            || v.as_bytes()
                .starts_with(format!("AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/").as_bytes())
    });
    let path = req.uri().path().to_string();
    let _ = req.into_body().collect().await;
    if !ok {
        return Response::builder()
            .status(401)
            .body(full("{\"error\":\"bad key\"}"))
            .unwrap_or_default();
    }
    if path == "/v1/sse" {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"data: {\"n\":1}\n\n")).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
        });
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(http_body_util::BodyExt::boxed(Sse(rx)))
            .unwrap_or_default();
    }
    Response::builder()
        .header("content-type", "application/json")
        .body(full(
            "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}",
        ))
        .unwrap_or_default()
}

/// A runtime that may be dropped from async code (shuts down in the background).
struct BgRuntime(Option<tokio::runtime::Runtime>);
impl Drop for BgRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Starts the upstream on its own runtime; returns (port, CA PEM, runtime).
fn start_upstream(port: u16) -> Result<(u16, String, BgRuntime)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ca = airlock_broker::ca::Ca::generate_named(None, "bench upstream CA")
        .map_err(|e| anyhow!(e))?;
    let cfg = ca
        .leaf_config(&[HOST.to_string(), "127.0.0.1".to_string()])
        .map_err(|e| anyhow!(e))?;
    let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    std_listener.set_nonblocking(true)?;
    let port = std_listener.local_addr()?.port();
    rt.spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
            return;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(
                        TokioIo::new(tls),
                        hyper::service::service_fn(|r| async move {
                            Ok::<_, std::convert::Infallible>(upstream_handle(r).await)
                        }),
                    )
                    .await;
            });
        }
    });
    Ok((port, ca.cert_pem().to_string(), BgRuntime(Some(rt))))
}

/// Median time from sending an SSE request on an established connection to its first event.
async fn sse_first_event(mode: &Mode, n: usize) -> Result<f64> {
    let mut s = open(mode).await?;
    let mut times = Vec::new();
    for _ in 0..n {
        let req = Request::get("/v1/sse")
            .header("host", HOST)
            .header("authorization", format!("Bearer {}", mode.token))
            .body(Full::new(Bytes::new()))?;
        s.ready().await?;
        let t = Instant::now();
        let r = s.send_request(req).await?;
        if r.status() != 200 {
            bail!("{}: SSE status {}", mode.name, r.status());
        }
        let mut body = r.into_body();
        let mut first = None;
        while let Some(f) = body.frame().await {
            let f = f?;
            if f.data_ref().is_some_and(|d| !d.is_empty()) && first.is_none() {
                first = Some(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times.push(first.ok_or_else(|| anyhow!("{}: SSE had no event", mode.name))?);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

fn wait_line(child: &mut Child, prefix: &str) -> Result<String> {
    use std::io::BufRead;
    let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let want = prefix.to_string();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(r) = line.strip_prefix(&want) {
                let _ = tx.send(r.trim().to_string());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| anyhow!("no {prefix:?} line within 30 s"))
}

fn wait_file(p: &Path) -> Result<()> {
    let t = Instant::now();
    while !p.exists() {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("{} did not appear", p.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}

use crate::broker_load::{api, load, open, tls_trusting, Mode, Via, AWS_KEY_ID, HOST, KEY};

const ADDON: &str = r#"
import os
from mitmproxy import http

PH = os.environ["BENCH_PLACEHOLDER"]
KEY = os.environ["BENCH_KEY"]
UP = int(os.environ["BENCH_UPSTREAM_PORT"])


class Swap:
    """Placeholder swap as mitmproxy-based brokers do it: rewrite the header on the way out."""

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.pretty_host == "api.openai.com":
            flow.request.host = "127.0.0.1"
            flow.request.port = UP
            flow.request.headers["host"] = "api.openai.com"
            h = flow.request.headers.get("authorization", "")
            if PH in h:
                flow.request.headers["authorization"] = h.replace(PH, KEY)


addons = [Swap()]
"#;

pub async fn run(args: &[String]) -> Result<()> {
    let (secs, conns) = crate::broker_load::secs_and_conns(args)?;
    let airlock = crate::arg(args, "--airlock").unwrap_or_else(|| "target/release/airlock".into());
    // `--mitmdump none` leaves the mitmproxy column out (e.g. while profiling the broker).
    let mitmdump = match crate::arg(args, "--mitmdump") {
        Some(m) if m == "none" => None,
        Some(m) => Some(m),
        None => which("mitmdump"),
    };
    let dir = std::env::temp_dir().join(format!("airlock-bench-broker-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let peers = parse_peers(args)?;
    let up_port_arg = crate::arg(args, "--upstream-port")
        .map(|p| p.parse::<u16>())
        .transpose()?;
    let (up_port, up_ca, up_rt) = start_upstream(up_port_arg.unwrap_or(0))?;
    let up_ca_file = dir.join("upstream-ca.pem");
    std::fs::write(&up_ca_file, &up_ca)?;

    // Airlock server + broker serve.
    let port = crate::free_port()?;
    let addr = format!("http://127.0.0.1:{port}");
    let _server = Kill(
        Command::new(&airlock)
            .args([
                "server",
                "--dev",
                "--dev-root-token-id",
                "root",
                "--log-level",
                "warn",
            ])
            .args(["--dev-listen-address", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {airlock}"))?,
    );
    let t = Instant::now();
    while crate::request(&addr, "GET", "/v1/sys/health", None, None)
        .await
        .is_err()
    {
        if t.elapsed() > Duration::from_secs(20) {
            bail!("airlock did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api(
        &addr,
        "POST",
        "/v1/secret/data/bench",
        Some(json!({"data": {"KEY": KEY}})),
    )
    .await?;
    api(
        &addr,
        "POST",
        "/v1/sys/broker/bindings/openai",
        Some(json!({"provider": "openai", "secret": "secret/bench#KEY"})),
    )
    .await?;
    api(
        &addr,
        "POST",
        "/v1/sys/broker/agents/bench",
        Some(json!({"bindings": ["openai"]})),
    )
    .await?;
    let broker_ca = dir.join("broker-ca.pem");
    let mut serve = Command::new(&airlock);
    serve
        .args(["broker", "serve", "--listen", "127.0.0.1:0", "--resolve"])
        .arg(format!("{HOST}=127.0.0.1:{up_port}"))
        .arg("--extra-ca")
        .arg(&up_ca_file)
        .arg("--ca-out")
        .arg(&broker_ca)
        .env("AIRLOCK_ADDR", &addr)
        .env("AIRLOCK_TOKEN", "root")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    if let Ok(n) = std::env::var("BENCH_BROKER_THREADS") {
        serve.env("TOKIO_WORKER_THREADS", n);
    }
    let mut serve = Kill(serve.spawn()?);
    let broker_addr = wait_line(&mut serve.0, "Broker listening on ")?;
    let broker_port: u16 = broker_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow!("bad broker address"))?;
    let cred = api(
        &addr,
        "POST",
        "/v1/sys/broker/agents/bench/credential",
        Some(json!({"ttl": "1h"})),
    )
    .await?;
    let placeholder = cred
        .pointer("/data/env/OPENAI_API_KEY")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no placeholder"))?
        .to_string();
    let credential = cred
        .pointer("/data/credential")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no credential"))?;
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("bench:{credential}"));

    let mut modes = vec![
        Mode {
            name: "direct",
            via: Via::Direct { port: up_port },
            tls: tls_trusting(&up_ca)?,
            token: KEY.into(),
            aws_headers: None,
        },
        Mode {
            name: "airlock",
            via: Via::Proxy {
                port: broker_port,
                auth: Some(auth),
                connect_port: 443,
            },
            tls: tls_trusting(&std::fs::read_to_string(&broker_ca)?)?,
            token: placeholder.clone(),
            aws_headers: None,
        },
    ];
    let mut _mitm = None;
    match &mitmdump {
        Some(m) => {
            let conf = dir.join("mitm");
            std::fs::create_dir_all(&conf)?;
            let addon = dir.join("swap.py");
            std::fs::write(&addon, ADDON)?;
            let mport = crate::free_port()?;
            let child = Command::new(m)
                .args([
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    &mport.to_string(),
                    "-q",
                ])
                .arg("--set")
                .arg(format!("confdir={}", conf.display()))
                .arg("--set")
                .arg(format!(
                    "ssl_verify_upstream_trusted_ca={}",
                    up_ca_file.display()
                ))
                .args(["--set", "connection_strategy=lazy", "-s"])
                .arg(&addon)
                .env("BENCH_PLACEHOLDER", &placeholder)
                .env("BENCH_KEY", KEY)
                .env("BENCH_UPSTREAM_PORT", up_port.to_string())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {m}"))?;
            _mitm = Some(Kill(child));
            let ca = conf.join("mitmproxy-ca-cert.pem");
            wait_file(&ca)?;
            let t = Instant::now();
            while tokio::net::TcpStream::connect(("127.0.0.1", mport))
                .await
                .is_err()
            {
                if t.elapsed() > Duration::from_secs(30) {
                    bail!("mitmdump did not listen");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            modes.push(Mode {
                name: "mitmproxy",
                via: Via::Proxy {
                    port: mport,
                    auth: None,
                    connect_port: 443,
                },
                tls: tls_trusting(&std::fs::read_to_string(&ca)?)?,
                token: placeholder.clone(),
                aws_headers: None,
            });
        }
        None => println!(
            "mitmdump not found (install mitmproxy 11 in a virtualenv and pass --mitmdump PATH): mitmproxy column skipped"
        ),
    }

    for p in &peers {
        let t = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", p.port))
            .await
            .is_err()
        {
            if t.elapsed() > Duration::from_secs(30) {
                bail!("peer {} does not listen on 127.0.0.1:{}", p.name, p.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        modes.push(Mode {
            name: p.name,
            via: Via::Proxy {
                port: p.port,
                auth: Some(base64::engine::general_purpose::STANDARD.encode(&p.auth)),
                connect_port: up_port,
            },
            tls: tls_trusting(
                &std::fs::read_to_string(&p.ca)
                    .with_context(|| format!("reading the CA of peer {} from {}", p.name, p.ca))?,
            )?,
            token: placeholder.clone(),
            aws_headers: None,
        });
    }

    // A reference, not a contender: a plain TCP relay in front of the upstream (one extra
    // hop, no TLS termination, nothing parsed): what any proxy costs on this machine at least.
    let rport = crate::free_port()?;
    let _tokio_relay = Kill(
        Command::new(std::env::current_exe()?)
            .args([
                "relay",
                &format!("127.0.0.1:{rport}"),
                &format!("127.0.0.1:{up_port}"),
            ])
            .stdout(Stdio::null())
            .spawn()
            .context("starting the relay")?,
    );
    let t = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", rport))
        .await
        .is_err()
    {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("the relay did not listen");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    modes.push(Mode {
        name: "tcp-relay",
        via: Via::Direct { port: rport },
        tls: tls_trusting(&up_ca)?,
        token: KEY.into(),
        aws_headers: None,
    });

    println!("broker benchmark: {secs}s per cell, keep-alive HTTP/1.1 over TLS, POST /v1/chat/completions");
    println!(
        "{:<10} {:>6} {:>10} {:>9} {:>9} {:>7}",
        "path", "conns", "req/s", "p50 ms", "p99 ms", "errors"
    );
    let mut results = std::collections::HashMap::new();
    for &c in &conns {
        for m in &modes {
            let l = load(m, c, secs).await?;
            println!(
                "{:<10} {:>6} {:>10.0} {:>9.3} {:>9.3} {:>7}",
                m.name, c, l.rps, l.p50, l.p99, l.errors
            );
            results.insert((m.name, c), l);
        }
    }
    let rss = crate::rss_kib(serve.0.id()) as f64 / 1024.0;
    let mut sse = std::collections::HashMap::new();
    for m in modes.iter().filter(|m| m.name != "tcp-relay") {
        match sse_first_event(m, 20).await {
            Ok(v) => {
                sse.insert(m.name, v);
            }
            // A peer that cannot stream is a finding to print, not a reason to stop.
            Err(e) if peers.iter().any(|p| p.name == m.name) => {
                println!("{}: SSE failed: {e:#}", m.name)
            }
            Err(e) => return Err(e),
        }
    }
    // `broker run` → child started.
    let profile = dir.join("airlock.toml");
    std::fs::write(
        &profile,
        "[[binding]]\nname = \"openai\"\nprovider = \"openai\"\nsecret = \"secret/bench#KEY\"\n",
    )?;
    let spawn_ns = |cmd: &mut Command| -> Result<f64> {
        let t0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let out = cmd.output()?;
        let child: u128 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        Ok((child.saturating_sub(t0)) as f64 / 1e6)
    };
    let mut run_ms = Vec::new();
    let mut base_ms = Vec::new();
    for _ in 0..9 {
        run_ms.push(spawn_ns(
            Command::new(&airlock)
                .args(["broker", "run", "--profile"])
                .arg(&profile)
                .args(["--", "date", "+%s%N"])
                .env("AIRLOCK_ADDR", &addr)
                .env("AIRLOCK_TOKEN", "root"),
        )?);
        base_ms.push(spawn_ns(Command::new("date").arg("+%s%N"))?);
    }
    run_ms.sort_by(|a, b| a.total_cmp(b));
    base_ms.sort_by(|a, b| a.total_cmp(b));

    println!();
    println!("SSE first event (median of 20, established connection):");
    for m in &modes {
        if let Some(v) = sse.get(m.name) {
            println!("  {:<10} {:>8.3} ms", m.name, v);
        }
    }
    println!("broker RSS after load: {rss:.1} MiB");
    println!(
        "broker run → child started: {:.1} ms median (spawning the same child directly: {:.1} ms)",
        run_ms[run_ms.len() / 2],
        base_ms[base_ms.len() / 2]
    );
    println!();
    println!("ratios:");
    for &c in &conns {
        let a = &results[&("airlock", c)];
        let d = &results[&("direct", c)];
        print!(
            "  {c:>2} conns: airlock/direct req/s {:.2}; added p50 {:+.3} ms",
            a.rps / d.rps,
            a.p50 - d.p50
        );
        if let Some(m) = results.get(&("mitmproxy", c)) {
            print!(
                "; airlock/mitmproxy req/s {:.1}x; mitmproxy added p50 {:+.3} ms",
                a.rps / m.rps,
                m.p50 - d.p50
            );
        }
        for p in &peers {
            if let Some(r) = results.get(&(p.name, c)) {
                print!(
                    "; airlock/{0} req/s {1:.2}x; {0} added p50 {2:+.3} ms",
                    p.name,
                    a.rps / r.rps,
                    r.p50 - d.p50
                );
            }
        }
        if let Some(r) = results.get(&("tcp-relay", c)) {
            print!(
                "; tcp-relay/direct req/s {:.2}; airlock/tcp-relay req/s {:.2}",
                r.rps / d.rps,
                a.rps / r.rps
            );
        }
        println!();
    }
    print!(
        "  SSE first event: airlock {:+.3} ms vs direct",
        sse["airlock"] - sse["direct"]
    );
    for m in &modes[2..] {
        if let Some(v) = sse.get(m.name) {
            print!(", {} {:+.3} ms", m.name, v - sse["direct"]);
        }
    }
    println!();
    crate::broker_run::measure(&airlock, &addr, &dir, up_port, &up_ca_file, secs, &conns).await?;
    let _ = std::fs::remove_dir_all(&dir);
    drop(up_rt);
    Ok(())
}

/// A broker run outside the benchmark (see the module docs).
struct Peer {
    name: &'static str,
    port: u16,
    ca: String,
    auth: String,
}

/// Every `--peer NAME,PORT,CA_PEM_FILE,USER:TOKEN`.
fn parse_peers(args: &[String]) -> Result<Vec<Peer>> {
    let mut peers = Vec::new();
    for w in args.windows(2).filter(|w| w[0] == "--peer") {
        let parts: Vec<&str> = w[1].splitn(4, ',').collect();
        let [name, port, ca, auth] = parts[..] else {
            bail!("--peer NAME,PORT,CA_PEM_FILE,USER:TOKEN, got {:?}", w[1]);
        };
        if ["direct", "airlock", "mitmproxy", "tcp-relay"].contains(&name) {
            bail!("--peer: the name {name:?} is taken");
        }
        peers.push(Peer {
            // Leaked once per peer: the result tables are keyed by the static mode names.
            name: Box::leak(name.to_string().into_boxed_str()),
            port: port.parse().context("--peer PORT")?,
            ca: ca.to_string(),
            auth: auth.to_string(),
        });
    }
    Ok(peers)
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
            .map(|f: PathBuf| f.display().to_string())
    })
}

/// `airlock-bench relay LISTEN UPSTREAM`: a minimal TCP relay (tokio's `copy_bidirectional`,
/// nothing parsed, no TLS termination), run as its own process by the broker benchmark as
/// the reference cost of one extra hop on this machine.
pub async fn relay(args: &[String]) -> Result<()> {
    let listen = args
        .get(2)
        .ok_or_else(|| anyhow!("relay LISTEN UPSTREAM"))?;
    let upstream = args
        .get(3)
        .ok_or_else(|| anyhow!("relay LISTEN UPSTREAM"))?
        .clone();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (mut a, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(mut b) = tokio::net::TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = a.set_nodelay(true);
            let _ = b.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
    }
}
