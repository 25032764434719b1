//! A small Vault-API HTTP client for the CLI (HTTP/1.1 over TCP or rustls).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Client {
    pub addr: String,
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    pub token: Option<Zeroizing<String>>,
    /// `X-Vault-Wrap-TTL` for every request (`-wrap-ttl`).
    pub wrap_ttl: Option<String>,
}

/// A non-2xx answer, with Vault's error strings, the server's warnings, and what to do about
/// it when the CLI can tell.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub hint: Option<String>,
    /// After a 403: whether the token itself is valid (`None`: not known).
    pub token_valid: Option<bool>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.errors.is_empty() {
            write!(f, "server answered {}", self.status)?;
        } else {
            write!(
                f,
                "server answered {}: {}",
                self.status,
                self.errors
                    .iter()
                    .map(|e| e.replace("1 error occurred:\n\t* ", "").trim().to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )?;
        }
        for w in &self.warnings {
            write!(f, "\nwarning from the server: {w}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n{h}")?;
        }
        Ok(())
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl std::error::Error for ApiFailure {}

pub fn token_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".airlock-token"))
}

impl Client {
    /// From `AIRLOCK_ADDR`/`VAULT_ADDR`, `AIRLOCK_TOKEN`/`VAULT_TOKEN`/`~/.airlock-token`,
    /// `AIRLOCK_CACERT`/`VAULT_CACERT`.
    pub fn from_env() -> Result<Self> {
        let addr = std::env::var("AIRLOCK_ADDR")
            .or_else(|_| std::env::var("VAULT_ADDR"))
            .unwrap_or_else(|_| "http://127.0.0.1:8200".into());
        let token = std::env::var("AIRLOCK_TOKEN")
            .or_else(|_| std::env::var("VAULT_TOKEN"))
            .ok()
            .or_else(|| {
                token_file()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .map(|s| s.trim().to_string())
            })
            .filter(|t| !t.is_empty())
            .map(Zeroizing::new);
        let cacert =
            std::env::var_os("AIRLOCK_CACERT").or_else(|| std::env::var_os("VAULT_CACERT"));
        Self::new(&addr, token, cacert.map(std::path::PathBuf::from))
    }

    pub fn new(
        addr: &str,
        token: Option<Zeroizing<String>>,
        cacert: Option<std::path::PathBuf>,
    ) -> Result<Self> {
        let addr = addr.trim_end_matches('/').to_string();
        let (tls, rest) = if let Some(r) = addr.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = addr.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("address {addr:?} must start with http:// or https://");
        };
        let hostport = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h.trim_matches(|c| c == '[' || c == ']').to_string(),
                p.parse().context("invalid port in address")?,
            ),
            _ => (hostport.to_string(), if tls { 443 } else { 80 }),
        };
        let tls = if tls {
            let mut roots = RootCertStore::empty();
            if let Some(ca) = &cacert {
                for c in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("reading CA file {}", ca.display()))?
                {
                    roots.add(c.with_context(|| format!("parsing CA file {}", ca.display()))?)?;
                }
            } else {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(TlsConnector::from(Arc::new(cfg)))
        } else {
            None
        };
        Ok(Self {
            addr,
            host,
            port,
            tls,
            token,
            wrap_ttl: None,
        })
    }

    pub fn require_token(&self) -> Result<()> {
        if self.token.is_none() {
            bail!("no token: set AIRLOCK_TOKEN or run `airlock login`");
        }
        Ok(())
    }

    /// Sends one request; returns (status, parsed JSON body or Null).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: Option<&str>,
    ) -> Result<(u16, Value)> {
        let bytes = match body {
            Some(b) => Zeroizing::new(serde_json::to_vec(b)?),
            None => Zeroizing::new(Vec::new()),
        };
        let (status, body) = self
            .raw_bytes(method, path, bytes.to_vec(), content_type)
            .await?;
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok((status, v))
    }

    /// Sends one request with a body as given; returns (status, body bytes).
    pub async fn raw_bytes(
        &self,
        method: &str,
        path: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<(u16, Bytes)> {
        let uri = format!("/v1/{}", path.trim_start_matches('/'));
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", format!("{}:{}", self.host, self.port))
            .header("x-vault-request", "true")
            .header("content-type", content_type.unwrap_or("application/json"));
        if let Some(t) = &self.token {
            req = req.header("x-vault-token", t.as_str());
        }
        if let Some(w) = &self.wrap_ttl {
            req = req.header("x-vault-wrap-ttl", w.as_str());
        }

        let req = req.body(Full::new(Bytes::from(bytes)))?;
        // Through HTTPS_PROXY (a CONNECT tunnel) for an https address NO_PROXY does not
        // exempt; loopback addresses are always direct.
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            airlock_server::http_client::dial(&self.host, self.port, self.tls.is_some()),
        )
        .await
        .map_err(|_| anyhow!("timed out connecting to {}", self.addr))?
        .map_err(|e| anyhow!("connecting to {}: {e}", self.addr))?;
        let resp = match &self.tls {
            None => send(TokioIo::new(stream), req).await?,
            Some(c) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|_| anyhow!("invalid host name {}", self.host))?;
                let s = c
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS handshake with {}", self.addr))?;
                send(TokioIo::new(s), req).await?
            }
        };
        Ok(resp)
    }

    /// Like [`raw`] but turns non-2xx into an error (404 with empty errors → `Ok(None)`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        self.call_ct(method, path, body, None).await
    }

    pub async fn call_ct(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        ct: Option<&str>,
    ) -> Result<Option<Value>> {
        let (status, v) = self.raw(method, path, body, ct).await?;
        if (200..300).contains(&status) {
            return Ok(Some(v));
        }
        let errors = strings(&v, "errors");
        let warnings = strings(&v, "warnings");
        if status == 404 && errors.is_empty() && warnings.is_empty() {
            return Ok(None);
        }
        let mut token_valid = None;
        let hint = match status {
            403 => {
                let (valid, why) = self.why_denied(path).await;
                token_valid = valid;
                Some(why)
            }
            503 if errors.iter().any(|e| e.contains("sealed")) => Some(
                "The server is sealed: unseal it with `airlock operator unseal` (once per key \
                 share, until the threshold is reached), or give it an unseal key file \
                 ([seal] key_file) to unseal at start."
                    .to_string(),
            ),
            _ => None,
        };
        Err(ApiFailure {
            status,
            errors,
            warnings,
            hint,
            token_valid,
        }
        .into())
    }

    /// After a 403: tells a token the server does not know (expired, revoked, mistyped)
    /// from a valid token whose policies do not allow the request, by looking itself up.
    async fn why_denied(&self, path: &str) -> (Option<bool>, String) {
        if self.token.is_none() {
            return (
                Some(false),
                "No token was sent: set AIRLOCK_TOKEN or run `airlock login`.".into(),
            );
        }
        match self.raw("GET", "auth/token/lookup-self", None, None).await {
            Ok((200, v)) => {
                let policies = v
                    .pointer("/data/policies")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                (
                    Some(true),
                    format!(
                        "The token is valid, but its policies ({policies}) do not allow this on \
                         {p}: `airlock token capabilities {p}` shows what they allow.",
                        p = path.trim_start_matches('/')
                    ),
                )
            }
            Ok((403, _)) => (
                Some(false),
                "The token is not valid (expired, revoked or mistyped): log in again \
                 (`airlock login`) or set AIRLOCK_TOKEN to a current token."
                    .into(),
            ),
            _ => (None, "Permission denied.".into()),
        }
    }
}

async fn send<T>(io: TokioIo<T>, req: Request<Full<Bytes>>) -> Result<(u16, Bytes)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = tokio::time::timeout(std::time::Duration::from_secs(60), sender.send_request(req))
        .await
        .map_err(|_| anyhow!("timed out waiting for the server"))??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok((status, body))
}
