//! The load generator shared by `airlock-bench broker` and its `broker run` part: modes
//! (direct, through a proxy with CONNECT), keep-alive HTTP/1.1 over TLS, POST
//! /v1/chat/completions with a bearer token or pre-signed SigV4 headers, latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

pub(crate) const HOST: &str = "api.openai.com";
pub(crate) const KEY: &str = "sk-bench-0123456789abcdefghijklmnopqrstuvwxyz";
/// The real AWS key id the upstream accepts SigV4-signed requests from.
pub(crate) const AWS_KEY_ID: &str = "AKIABENCHREAL0000000";
#[derive(Clone)]
pub(crate) enum Via {
    Direct {
        port: u16,
    },
    /// `connect_port`: the port named in CONNECT (443, or the upstream's own port for a
    /// peer proxy that dials the name it is given, resolved through its own hosts file).
    Proxy {
        port: u16,
        auth: Option<String>,
        connect_port: u16,
    },
}

#[derive(Clone)]
pub(crate) struct Mode {
    pub(crate) name: &'static str,
    pub(crate) via: Via,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) token: String,
    /// SigV4 headers (signed once, with the placeholder) sent instead of the bearer token.
    pub(crate) aws_headers: Option<Arc<Vec<(String, String)>>>,
}

pub(crate) fn tls_trusting(pem: &str) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in airlock_broker::ca::parse_pem_certs(pem).map_err(|e| anyhow!(e))? {
        roots.add(c)?;
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

pub(crate) async fn open(
    mode: &Mode,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let mut tcp = match &mode.via {
        Via::Direct { port } => tokio::net::TcpStream::connect(("127.0.0.1", *port)).await?,
        Via::Proxy {
            port,
            auth,
            connect_port,
        } => {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", *port)).await?;
            let mut head = format!(
                "CONNECT {HOST}:{connect_port} HTTP/1.1\r\nHost: {HOST}:{connect_port}\r\n"
            );
            if let Some(a) = auth {
                head.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
            }
            head.push_str("\r\n");
            s.write_all(head.as_bytes()).await?;
            let mut buf = Vec::new();
            let mut b = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") {
                if s.read(&mut b).await? == 0 || buf.len() > 8192 {
                    bail!("{}: proxy closed during CONNECT", mode.name);
                }
                buf.push(b[0]);
            }
            if !buf.starts_with(b"HTTP/1.1 200") && !buf.starts_with(b"HTTP/1.0 200") {
                bail!(
                    "{}: CONNECT refused: {}",
                    mode.name,
                    String::from_utf8_lossy(&buf).lines().next().unwrap_or("")
                );
            }
            s
        }
    };
    tcp.set_nodelay(true)?;
    let _ = &mut tcp;
    let tls = tokio_rustls::TlsConnector::from(mode.tls.clone())
        .connect(ServerName::try_from(HOST)?, tcp)
        .await?;
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(tx)
}

/// The body of every load request.
pub(crate) const CHAT: &[u8] =
    b"{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

fn chat(mode: &Mode) -> Result<Request<Full<Bytes>>> {
    let mut b = Request::post("/v1/chat/completions")
        .header("host", HOST)
        .header("content-type", "application/json");
    match &mode.aws_headers {
        Some(h) => {
            for (k, v) in h.iter() {
                b = b.header(k.as_str(), v.as_str());
            }
        }
        None => b = b.header("authorization", format!("Bearer {}", mode.token)),
    }
    Ok(b.body(Full::new(Bytes::from_static(CHAT)))?)
}

pub(crate) struct Load {
    pub(crate) rps: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) errors: u64,
}

pub(crate) async fn load(mode: &Mode, conns: usize, secs: u64) -> Result<Load> {
    let mut senders = Vec::new();
    for _ in 0..conns {
        senders.push(open(mode).await?);
    }
    // Warm-up: one request per connection.
    for s in &mut senders {
        s.ready().await?;
        let r = s.send_request(chat(mode)?).await?;
        let _ = r.into_body().collect().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for mut s in senders {
        let mode = mode.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let Ok(req) = chat(&mode) else { break };
                // An HTTP/1.1 connection takes the next request only once it has finished
                // the last one; sending earlier fails with "operation was canceled".
                if s.ready().await.is_err() {
                    errors += 1;
                    break;
                }
                match s.send_request(req).await {
                    Ok(r) => {
                        let ok = r.status() == 200;
                        if r.into_body().collect().await.is_err() || !ok {
                            errors += 1;
                        }
                    }
                    Err(e) => {
                        eprintln!("{}: request failed: {e}", mode.name);
                        errors += 1;
                        break;
                    }
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(Load {
        rps: all.len() as f64 / secs as f64,
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    })
}

pub(crate) async fn api(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let (status, v) = crate::request(addr, method, path, Some("root"), body).await?;
    if status >= 300 {
        bail!("{method} {path}: {status} {v}");
    }
    Ok(v)
}

/// `--seconds N` (default 5) and `--conns 1,16` (the default).
pub(crate) fn secs_and_conns(args: &[String]) -> Result<(u64, Vec<usize>)> {
    let secs: u64 = crate::arg(args, "--seconds")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let conns: Vec<usize> = crate::arg(args, "--conns")
        .unwrap_or_else(|| "1,16".into())
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    Ok((secs, conns))
}
