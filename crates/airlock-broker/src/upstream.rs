//! Connections to upstream servers: resolution (with `--resolve` pins), the SSRF guard on
//! the address actually dialled, verified TLS (system roots plus an optional extra CA) with
//! ALPN `h2`/`http/1.1`, and a small per-host pool (one multiplexed HTTP/2 connection, or
//! idle HTTP/1.1 connections).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::guard::Guard;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// An upstream failure: the status to answer and a message without secrets.
#[derive(Debug)]
pub struct UpstreamError {
    pub status: u16,
    pub message: String,
}

impl UpstreamError {
    fn bad_gateway(m: impl Into<String>) -> Self {
        UpstreamError {
            status: 502,
            message: m.into(),
        }
    }
}

/// A `--resolve HOST=ADDR[:PORT]` pin.
#[derive(Clone, Debug)]
pub struct Pin {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

pub fn parse_resolve(s: &str) -> Result<(String, Pin), String> {
    let (host, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("--resolve {s:?}: expected HOST=ADDR or HOST=ADDR:PORT"))?;
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("--resolve {s:?}: empty host"));
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok((host, Pin { ip, port: None }));
    }
    let sa: SocketAddr = addr
        .parse()
        .map_err(|_| format!("--resolve {s:?}: {addr:?} is not an IP address or IP:PORT"))?;
    Ok((
        host,
        Pin {
            ip: sa.ip(),
            port: Some(sa.port()),
        },
    ))
}

#[derive(Default)]
struct PoolEntry {
    h2: Option<http2::SendRequest<Body>>,
    h1: Vec<http1::SendRequest<Body>>,
}

pub struct Upstream {
    tls_any: TlsConnector,
    tls_h1: TlsConnector,
    pins: HashMap<String, Pin>,
    pub guard: Guard,
    pool: Mutex<HashMap<(String, u16, bool), PoolEntry>>,
    pub connect_timeout: Duration,
}

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Upstream {
    pub fn new(
        extra_ca: &[CertificateDer<'static>],
        pins: HashMap<String, Pin>,
        guard: Guard,
    ) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        for c in extra_ca {
            roots
                .add(c.clone())
                .map_err(|e| format!("extra CA certificate: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let make = |alpn: Vec<Vec<u8>>| -> Result<TlsConnector, String> {
            let mut cfg = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            cfg.alpn_protocols = alpn;
            Ok(TlsConnector::from(Arc::new(cfg)))
        };
        Ok(Upstream {
            tls_any: make(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?,
            tls_h1: make(vec![b"http/1.1".to_vec()])?,
            pins,
            guard,
            pool: Mutex::new(HashMap::new()),
            connect_timeout: Duration::from_secs(10),
        })
    }

    /// Resolves and dials `host:port`, refusing addresses the guard forbids.
    pub async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, UpstreamError> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = if let Some(p) = self.pins.get(&key) {
            // Pinned by the operator: allowed whatever the address.
            vec![SocketAddr::new(p.ip, p.port.unwrap_or(port))]
        } else {
            let resolved: Vec<SocketAddr> = tokio::time::timeout(
                self.connect_timeout,
                tokio::net::lookup_host((key.as_str(), port)),
            )
            .await
            .map_err(|_| UpstreamError::bad_gateway(format!("resolving {host} timed out")))?
            .map_err(|_| UpstreamError::bad_gateway(format!("cannot resolve {host}")))?
            .collect();
            let mut ok = Vec::new();
            let mut refusal = None;
            for a in resolved {
                match self.guard.check(&key, a.ip()) {
                    Ok(()) => ok.push(a),
                    Err(e) => refusal = Some(e),
                }
            }
            if ok.is_empty() {
                return Err(match refusal {
                    Some(e) => UpstreamError {
                        status: 403,
                        message: e,
                    },
                    None => UpstreamError::bad_gateway(format!("{host} has no address")),
                });
            }
            ok
        };
        let mut last = None;
        for a in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(a)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some("timed out".into()),
            }
        }
        Err(UpstreamError::bad_gateway(format!(
            "cannot connect to {host}:{port}: {}",
            last.unwrap_or_default()
        )))
    }

    async fn tls(
        &self,
        host: &str,
        port: u16,
        h1_only: bool,
    ) -> Result<(TlsStream<TcpStream>, bool), UpstreamError> {
        let tcp = self.dial(host, port).await?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| UpstreamError::bad_gateway(format!("invalid server name {host}")))?;
        let c = if h1_only { &self.tls_h1 } else { &self.tls_any };
        let s = tokio::time::timeout(self.connect_timeout, c.connect(name, tcp))
            .await
            .map_err(|_| {
                UpstreamError::bad_gateway(format!("TLS handshake with {host} timed out"))
            })?
            .map_err(|e| {
                UpstreamError::bad_gateway(format!(
                    "TLS handshake with {host} failed: {}",
                    explain_tls(&e.to_string(), host)
                ))
            })?;
        let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok((s, h2))
    }

    async fn connect(
        &self,
        host: &str,
        port: u16,
        allow_h2: bool,
    ) -> Result<Sender, UpstreamError> {
        let (s, h2) = self.tls(host, port, !allow_h2).await?;
        let io = TokioIo::new(s);
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake::<_, Body>(io)
                .await
                .map_err(|e| UpstreamError::bad_gateway(format!("HTTP/2 with {host}: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::Builder::new()
                .handshake::<_, Body>(io)
                .await
                .map_err(|e| UpstreamError::bad_gateway(format!("HTTP/1.1 with {host}: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Sender::H1(sender))
        }
    }

    fn take(&self, host: &str, port: u16, allow_h2: bool) -> Option<Sender> {
        let mut pool = self.pool.lock().ok()?;
        let e = pool.get_mut(&(host.to_string(), port, allow_h2))?;
        if let Some(h2) = &e.h2 {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
            e.h2 = None;
        }
        e.h1.retain(|s| !s.is_closed());
        let i = e.h1.iter().position(|s| s.is_ready())?;
        Some(Sender::H1(e.h1.swap_remove(i)))
    }

    fn put(&self, host: &str, port: u16, allow_h2: bool, s: Sender) {
        if let Ok(mut pool) = self.pool.lock() {
            let e = pool.entry((host.to_string(), port, allow_h2)).or_default();
            match s {
                Sender::H2(h) => e.h2 = Some(h),
                Sender::H1(h) => {
                    if e.h1.len() < 64 {
                        e.h1.push(h)
                    }
                }
            }
        }
    }

    /// Sends a request whose URI is origin-form (`/path?query`) to `https://host:port`.
    /// `allow_h2`: the client spoke HTTP/2, so the upstream may too (ALPN decides); an
    /// HTTP/1.1 client gets HTTP/1.1 upstream connections, one per concurrent request, so
    /// load spreads over connections as it would without the broker.
    pub async fn send(
        &self,
        host: &str,
        port: u16,
        allow_h2: bool,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let sender = match self.take(host, port, allow_h2) {
            Some(s) => s,
            None => self.connect(host, port, allow_h2).await?,
        };
        let authority = if port == 443 {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        match sender {
            Sender::H2(mut s) => {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                *req.uri_mut() = format!("https://{authority}{pq}")
                    .parse()
                    .map_err(|_| UpstreamError::bad_gateway("invalid request target"))?;
                req.headers_mut().remove(hyper::header::HOST);
                *req.version_mut() = hyper::Version::HTTP_2;
                self.put(host, port, allow_h2, Sender::H2(s.clone()));
                s.send_request(req)
                    .await
                    .map_err(|e| UpstreamError::bad_gateway(format!("upstream {host}: {e}")))
            }
            Sender::H1(mut s) => {
                set_host(&mut req, &authority)?;
                *req.version_mut() = hyper::Version::HTTP_11;
                s.ready()
                    .await
                    .map_err(|e| UpstreamError::bad_gateway(format!("upstream {host}: {e}")))?;
                let r = s
                    .send_request(req)
                    .await
                    .map_err(|e| UpstreamError::bad_gateway(format!("upstream {host}: {e}")));
                if r.is_ok() {
                    self.put(host, port, allow_h2, Sender::H1(s));
                }
                r
            }
        }
    }

    /// Sends an HTTP/1.1 upgrade request (WebSocket) on a fresh connection.
    pub async fn send_upgrade(
        &self,
        host: &str,
        port: u16,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let (s, _) = self.tls(host, port, true).await?;
        one_shot_h1(TokioIo::new(s), host, port, 443, req).await
    }

    /// Sends a plain-HTTP request (no credential ever rides on it) on a fresh connection.
    pub async fn send_plain(
        &self,
        host: &str,
        port: u16,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let tcp = self.dial(host, port).await?;
        one_shot_h1(TokioIo::new(tcp), host, port, 80, req).await
    }
}

/// One HTTP/1.1 request on a fresh connection (upgrades allowed).
async fn one_shot_h1<T>(
    io: TokioIo<T>,
    host: &str,
    port: u16,
    default_port: u16,
    mut req: Request<Body>,
) -> Result<Response<Incoming>, UpstreamError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::Builder::new()
        .handshake::<_, Body>(io)
        .await
        .map_err(|e| UpstreamError::bad_gateway(format!("HTTP/1.1 with {host}: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let authority = if port == default_port {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    set_host(&mut req, &authority)?;
    *req.version_mut() = hyper::Version::HTTP_11;
    sender
        .send_request(req)
        .await
        .map_err(|e| UpstreamError::bad_gateway(format!("upstream {host}: {e}")))
}

fn set_host(req: &mut Request<Body>, authority: &str) -> Result<(), UpstreamError> {
    let v = hyper::header::HeaderValue::from_str(authority)
        .map_err(|_| UpstreamError::bad_gateway("invalid host"))?;
    req.headers_mut().insert(hyper::header::HOST, v);
    Ok(())
}

/// A rustls verification error in words (rustls prints its enum names).
fn explain_tls(e: &str, host: &str) -> String {
    let why = if e.contains("UnknownIssuer") {
        "its certificate is not signed by a trusted CA (for a private CA, pass it with --extra-ca)"
    } else if e.contains("NotValidForName") {
        return format!("its certificate is not valid for {host}");
    } else if e.contains("Expired") {
        "its certificate has expired"
    } else if e.contains("NotValidYet") {
        "its certificate is not valid yet (check the clocks)"
    } else if e.contains("CaUsedAsEndEntity") {
        "it presented a CA certificate as its own certificate"
    } else if e.contains("Revoked") {
        "its certificate has been revoked"
    } else {
        return e.to_string();
    };
    why.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_explained() {
        let e = "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))";
        assert_eq!(
            explain_tls(e, "api.example.com"),
            "it presented a CA certificate as its own certificate"
        );
        assert!(explain_tls("invalid peer certificate: UnknownIssuer", "h").contains("--extra-ca"));
        assert_eq!(
            explain_tls("invalid peer certificate: NotValidForName", "h.example"),
            "its certificate is not valid for h.example"
        );
        assert_eq!(
            explain_tls("received fatal alert: HandshakeFailure", "h"),
            "received fatal alert: HandshakeFailure"
        );
    }
}
