//! A small outbound HTTP(S) client for what the server itself fetches: OIDC discovery
//! documents and JWKS, and Kubernetes TokenReview. HTTP/1.1, bounded in time and size.
//! TLS is verified against the system roots, or against only the CA given (`*_ca_pem`,
//! `kubernetes_ca_cert`). Plain `http://` is accepted only for loopback addresses (local test
//! issuers); anywhere else a key document could be forged on the wire.
//!
//! Connections are kept and reused (a few idle ones per destination and CA, for a minute),
//! so a TokenReview per login does not cost a TLS handshake each. `HTTPS_PROXY` /
//! `NO_PROXY` are honoured (`airlock_core::proxy`): through a proxy, TLS runs end to end
//! inside a `CONNECT` tunnel.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Largest response body accepted.
const MAX_BODY: usize = 2 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

pub fn parse_url(u: &str) -> Result<Url, String> {
    let (https, rest) = if let Some(r) = u.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = u.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("URL {u:?} must start with https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("URL {u:?} has no valid host"));
    }
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, tail) = r
            .split_once(']')
            .ok_or_else(|| format!("URL {u:?} has a bad host"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("URL {u:?} has a bad port"))?,
            None if tail.is_empty() => {
                if https {
                    443
                } else {
                    80
                }
            }
            None => return Err(format!("URL {u:?} has a bad host")),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("URL {u:?} has a bad port"))?,
            ),
            None => (authority.to_string(), if https { 443 } else { 80 }),
        }
    };
    if !https && !is_loopback(&host) {
        return Err(format!(
            "URL {u:?}: plain http is accepted only for loopback addresses; use https"
        ));
    }
    Ok(Url {
        https,
        host,
        port,
        path,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|a| a.is_loopback())
            .unwrap_or(false)
}

fn system_config() -> Result<Arc<ClientConfig>, String> {
    static CFG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CFG.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        build(roots)
    })
    .clone()
}

fn build(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TLS configuration trusting only the certificates in `ca_pem` (or the system roots when
/// it is empty). Built once per distinct CA and kept (a TokenReview per login reuses it).
pub fn tls_config(ca_pem: &str) -> Result<Arc<ClientConfig>, String> {
    use sha2::Digest;
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BY_CA: OnceLock<Mutex<HashMap<[u8; 32], Arc<ClientConfig>>>> = OnceLock::new();
    if ca_pem.trim().is_empty() {
        return system_config();
    }
    let id: [u8; 32] = sha2::Sha256::digest(ca_pem.as_bytes()).into();
    let cache = BY_CA.get_or_init(Default::default);
    if let Some(c) = cache.lock().ok().and_then(|m| m.get(&id).cloned()) {
        return Ok(c);
    }
    let cfg = build_with_ca(ca_pem)?;
    if let Ok(mut m) = cache.lock() {
        if m.len() >= 64 {
            m.clear();
        }
        m.insert(id, Arc::clone(&cfg));
    }
    Ok(cfg)
}

fn build_with_ca(ca_pem: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let blocks = crate::auth::keys::pem_blocks(ca_pem)?;
    let mut n = 0;
    for (label, der) in blocks {
        if label == "CERTIFICATE" {
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| format!("CA certificate: {e}"))?;
            n += 1;
        }
    }
    if n == 0 {
        return Err("the CA PEM holds no certificate".into());
    }
    build(roots)
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// One request. `body` is sent as JSON when present.
pub async fn request(
    method: &str,
    url: &str,
    ca_pem: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<Reply, String> {
    let body = body.map(|b| (b, "application/json"));
    tokio::time::timeout(
        TIMEOUT,
        request_inner(method, url, ca_pem, bearer, None, body),
    )
    .await
    .map_err(|_| format!("request to {} timed out", redact(url)))?
}

/// POSTs an `application/x-www-form-urlencoded` form, optionally with HTTP Basic client
/// credentials (`basic`: user, password; form-encoded first, as OAuth 2.0 §2.3.1 says).
pub async fn post_form(
    url: &str,
    ca_pem: &str,
    basic: Option<(&str, &str)>,
    fields: &[(&str, &str)],
) -> Result<Reply, String> {
    use base64::Engine;
    let body = form_encode(fields).into_bytes();
    let auth = basic.map(|(u, p)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                form_escape(u),
                form_escape(p)
            ))
        )
    });
    let body = Some((body, "application/x-www-form-urlencoded"));
    tokio::time::timeout(
        TIMEOUT,
        request_inner("POST", url, ca_pem, None, auth.as_deref(), body),
    )
    .await
    .map_err(|_| format!("request to {} timed out", redact(url)))?
}

/// `application/x-www-form-urlencoded` escaping of one value.
pub fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The URL without its query (which could carry a credential) for error texts.
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Where a pooled connection goes: scheme, host, port, and the CA it was verified with.
type PoolKey = (bool, String, u16, [u8; 32]);

/// Idle connections kept per destination, and how long.
const POOL_PER_KEY: usize = 4;
const POOL_IDLE: Duration = Duration::from_secs(60);

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle connections by destination, each with when it became idle.
type Pool = std::sync::Mutex<std::collections::HashMap<PoolKey, Vec<(std::time::Instant, Sender)>>>;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Default::default)
}

/// An idle, still open connection to `key`, if one is kept.
fn take_idle(key: &PoolKey) -> Option<Sender> {
    let mut p = pool().lock().ok()?;
    let list = p.get_mut(key)?;
    while let Some((at, s)) = list.pop() {
        if at.elapsed() < POOL_IDLE && !s.is_closed() && s.is_ready() {
            return Some(s);
        }
    }
    None
}

fn put_idle(key: PoolKey, s: Sender) {
    if let Ok(mut p) = pool().lock() {
        p.retain(|_, l| {
            l.retain(|(at, s)| at.elapsed() < POOL_IDLE && !s.is_closed());
            !l.is_empty()
        });
        let list = p.entry(key).or_default();
        if list.len() < POOL_PER_KEY {
            list.push((std::time::Instant::now(), s));
        }
    }
}

/// Opens a TCP connection to `host:port`, through the `HTTPS_PROXY` proxy (a `CONNECT`
/// tunnel) when `https` and `NO_PROXY` does not exempt the destination. Loopback
/// destinations are always direct. The CLI uses this too.
pub async fn dial(host: &str, port: u16, https: bool) -> Result<TcpStream, String> {
    let env = |a: &str, b: &str| std::env::var(a).or_else(|_| std::env::var(b)).ok();
    let proxy = if https {
        airlock_core::proxy::for_https(
            env("HTTPS_PROXY", "https_proxy").as_deref(),
            env("NO_PROXY", "no_proxy").as_deref(),
            host,
            port,
        )?
    } else {
        None
    };
    let Some(px) = proxy else {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        return Ok(tcp);
    };
    let mut tcp = TcpStream::connect((px.host.as_str(), px.port))
        .await
        .map_err(|e| format!("cannot connect to the proxy {}:{}: {e}", px.host, px.port))?;
    let _ = tcp.set_nodelay(true);
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = &px.credentials {
        use base64::Engine;
        head.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(c.as_bytes())
        ));
    }
    head.push_str("\r\n");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    // The proxy's answer, byte by byte so nothing of the tunnel is read past it.
    let mut answer = Vec::with_capacity(256);
    let mut b = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 8192 {
            return Err("proxy: answer to CONNECT too long".into());
        }
        let n = tcp.read(&mut b).await.map_err(|e| format!("proxy: {e}"))?;
        if n == 0 {
            return Err("proxy closed the connection before answering CONNECT".into());
        }
        answer.push(b[0]);
    }
    let status = String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    if status != "200" {
        return Err(format!(
            "proxy refused to connect to {target}: status {status}"
        ));
    }
    Ok(tcp)
}

async fn connect_sender(u: &Url, ca_pem: &str) -> Result<Sender, String> {
    let tcp = dial(&u.host, u.port, u.https).await?;
    if u.https {
        // Loading the system roots reads files: off the async workers.
        let ca = ca_pem.to_string();
        let cfg = tokio::task::spawn_blocking(move || tls_config(&ca))
            .await
            .map_err(|e| e.to_string())??;
        let name = ServerName::try_from(u.host.clone())
            .map_err(|_| format!("invalid server name {}", u.host))?;
        let tls = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {} failed: {e}", u.host))?;
        handshake(TokioIo::new(tls)).await
    } else {
        handshake(TokioIo::new(tcp)).await
    }
}

async fn handshake<T>(io: T) -> Result<Sender, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // Runs until the connection closes (the sender dropped, or the server closed it).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn request_inner(
    method: &str,
    url: &str,
    ca_pem: &str,
    bearer: Option<&str>,
    authorization: Option<&str>,
    body: Option<(Vec<u8>, &str)>,
) -> Result<Reply, String> {
    use sha2::Digest;
    let u = parse_url(url)?;
    let host_header = if u.host.contains(':') {
        format!("[{}]:{}", u.host, u.port)
    } else {
        format!("{}:{}", u.host, u.port)
    };
    let (body, content_type) = match body {
        Some((b, ct)) => (Bytes::from(b), Some(ct)),
        None => (Bytes::new(), None),
    };
    let make = || {
        let mut builder = Request::builder()
            .method(method)
            .uri(u.path.as_str())
            .header("host", host_header.as_str())
            .header("accept", "application/json")
            .header("user-agent", concat!("airlock/", env!("CARGO_PKG_VERSION")));
        if let Some(b) = bearer {
            builder = builder.header("authorization", format!("Bearer {b}"));
        } else if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder
            .body(Full::new(body.clone()))
            .map_err(|e| format!("building request: {e}"))
    };
    let key: PoolKey = (
        u.https,
        u.host.to_ascii_lowercase(),
        u.port,
        sha2::Sha256::digest(ca_pem.as_bytes()).into(),
    );
    // A kept connection the server closed meanwhile fails before any answer: then once
    // more on a new one.
    let (sender, resp) = match take_idle(&key) {
        Some(mut s) => match s.send_request(make()?).await {
            Ok(r) => (s, r),
            Err(_) => {
                let mut s = connect_sender(&u, ca_pem).await?;
                let r = s
                    .send_request(make()?)
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                (s, r)
            }
        },
        None => {
            let mut s = connect_sender(&u, ca_pem).await?;
            let r = s
                .send_request(make()?)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            (s, r)
        }
    };
    let status = resp.status().as_u16();
    let reusable = !resp
        .headers()
        .get("connection")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| "response body too large or cut off".to_string())?
        .to_bytes();
    if reusable {
        put_idle(key, sender);
    }
    Ok(Reply { status, body })
}

/// GET a JSON document; non-2xx and non-JSON answers are errors.
pub async fn get_json(url: &str, ca_pem: &str) -> Result<serde_json::Value, String> {
    let r = request("GET", url, ca_pem, None, None).await?;
    if !(200..300).contains(&r.status) {
        return Err(format!("{} answered {}", redact(url), r.status));
    }
    serde_json::from_slice(&r.body).map_err(|_| format!("{} did not answer JSON", redact(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://issuer.example:8443/a/b?x=1").unwrap();
        assert!(u.https && u.host == "issuer.example" && u.port == 8443 && u.path == "/a/b?x=1");
        let u = parse_url("https://example.com").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        let u = parse_url("http://[::1]:9000/jwks").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        assert!(parse_url("http://127.0.0.1:1/x").is_ok());
        assert!(parse_url("http://example.com/jwks").is_err());
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("https://user@host/").is_err());
        assert!(parse_url("https://host:port/").is_err());
    }
}
