//! Connections to PostgreSQL, with TLS as libpq configures it: `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey`, in a `postgresql://` URL's query or a `key=value` string. Used by
//! the storage backend and by the database engine's PostgreSQL plugin. rustls on the ring
//! provider does the TLS.
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default, as in libpq) | if the server offers it, else plaintext | not checked, unless `sslrootcert` is set (then as `verify-ca`) |
//! | `require` | always | not checked, unless `sslrootcert` is set (then as `verify-ca`) |
//! | `verify-ca` | always | signed by `sslrootcert` |
//! | `verify-full` | always | signed by `sslrootcert` and issued to the host name |
//!
//! `sslrootcert` is a PEM file, or `system` for the system's roots (which, as in libpq,
//! makes `verify-full` the default and refuses weaker modes); without it `verify-ca` and
//! `verify-full` use `~/.postgresql/root.crt` as libpq does. `sslcert`/`sslkey` are a PEM
//! client certificate and key, both or neither. Every other TLS option (`sslpassword`,
//! `sslcrl`, `sslsni=0`, protocol bounds, ...) is refused, never ignored, and so is any
//! option the driver does not know.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, Config, Connection, Socket};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{
    ring as provider, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore,
    SignatureScheme,
};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<Self, String> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` (plaintext first, TLS only if refused) is not offered: it
            // would mostly mean plaintext.
            other => return Err(format!("sslmode {other:?} is not supported (use disable, prefer, require, verify-ca or verify-full)")),
        })
    }
}

/// A parsed connection string: the driver's configuration and how to do TLS.
#[derive(Clone)]
pub struct PgTarget {
    pub config: Config,
    pub mode: SslMode,
    tls: PgTls,
    /// The first host, for messages (never the password).
    host: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("sslmode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The TLS options found in a connection string.
#[derive(Default)]
struct TlsOpts {
    mode: Option<String>,
    rootcert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

impl TlsOpts {
    /// Takes `k=v` if it is a TLS option; `Ok(false)` for any other option.
    fn take(&mut self, k: &str, v: &str) -> Result<bool, String> {
        let slot = match k {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.rootcert,
            "sslcert" => &mut self.cert,
            "sslkey" => &mut self.key,
            "sslsni" if v == "1" => return Ok(true),
            "gssencmode" if v == "disable" || v == "prefer" => return Ok(true),
            "requiressl" | "gssencmode" | "sslsni" => {
                return Err(format!("TLS option {k}={v} is not supported"))
            }
            k if k.starts_with("ssl") && k != "sslnegotiation" => {
                return Err(format!("TLS option {k} is not supported"))
            }
            _ => return Ok(false),
        };
        *slot = Some(v.to_string());
        Ok(true)
    }
}

/// Parses a connection string (URL or `key=value`), taking the TLS options out.
pub fn parse(conn: &str) -> Result<PgTarget, String> {
    let mut opts = TlsOpts::default();
    let rest = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        strip_url(conn, &mut opts)?
    } else {
        strip_keyvalue(conn, &mut opts)?
    };
    let mut config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        // The driver's message names the option, never a value.
        format!("invalid connection string: {e}")
    })?;
    let system = opts.rootcert.as_deref() == Some("system");
    let mode = match opts.mode.as_deref() {
        Some(m) => SslMode::parse(m)?,
        None if system => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if system && mode != SslMode::VerifyFull {
        return Err(format!(
            "weak sslmode {:?} may not be used with sslrootcert=system (use verify-full)",
            opts.mode.unwrap_or_default()
        ));
    }
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let tls = PgTls::new(mode, &opts)?;
    Ok(PgTarget {
        config,
        mode,
        tls,
        host,
    })
}

fn strip_url(conn: &str, opts: &mut TlsOpts) -> Result<String, String> {
    let Some((base, query)) = conn.split_once('?') else {
        return Ok(conn.to_string());
    };
    let mut kept = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(k)?;
        let value = decode(v)?;
        if !opts.take(&key, &value)? {
            kept.push(part);
        }
    }
    Ok(if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

fn decode(s: &str) -> Result<String, String> {
    airlock_core::percent::decode_utf8(s, airlock_core::percent::Plus::Literal)
        .ok_or_else(|| "invalid percent-encoding in the connection URL".to_string())
}

/// Splits a libpq `key=value` string (values may be single-quoted, with `\\` escapes).
fn keyvalues(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            it.next();
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.next() != Some('=') {
            // The word is not quoted back: it may be part of a password.
            return Err(
                "invalid connection string: a word without \"=\" (quote values \
                 that hold spaces with single quotes)"
                    .into(),
            );
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let mut value = String::new();
        if it.peek() == Some(&'\'') {
            it.next();
            loop {
                match it.next() {
                    Some('\\') => value.push(
                        it.next()
                            .ok_or("invalid connection string: unterminated quote")?,
                    ),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err("invalid connection string: unterminated quote".into()),
                }
            }
        } else {
            while let Some(&c) = it.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    it.next();
                    if let Some(n) = it.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                it.next();
            }
        }
        out.push((key, value));
    }
}

fn strip_keyvalue(conn: &str, opts: &mut TlsOpts) -> Result<String, String> {
    let mut kept = Vec::new();
    for (k, v) in keyvalues(conn)? {
        if !opts.take(&k, &v)? {
            let quoted = v.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{k}='{quoted}'"));
        }
    }
    Ok(kept.join(" "))
}

fn read_pem(what: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {path}: {e}"))
}

/// The TLS side of a connection: a rustls configuration, and whether TLS was used.
#[derive(Clone)]
pub struct PgTls {
    cfg: Arc<ClientConfig>,
    used: Arc<AtomicBool>,
}

impl PgTls {
    fn new(mode: SslMode, o: &TlsOpts) -> Result<Self, String> {
        let prov = Arc::new(provider::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&prov))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let rootcert = match (&o.rootcert, mode) {
            (Some(r), _) => Some(r.clone()),
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
                let home = std::env::var("HOME").unwrap_or_default();
                let default = format!("{home}/.postgresql/root.crt");
                if !std::path::Path::new(&default).exists() {
                    return Err(format!(
                        "sslmode verify-ca and verify-full need sslrootcert (a CA file, or \"system\"); {default} does not exist either"
                    ));
                }
                Some(default)
            }
            (None, _) => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match rootcert {
            None => Arc::new(NoVerify(Arc::clone(&prov))),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                if path == "system" {
                    for c in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(c);
                    }
                } else {
                    let pem = read_pem("sslrootcert", &path)?;
                    for c in CertificateDer::pem_slice_iter(&pem) {
                        let c = c.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                        roots
                            .add(c)
                            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    }
                }
                if roots.is_empty() {
                    return Err(format!("sslrootcert {path} holds no certificate"));
                }
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&prov))
                        .build()
                        .map_err(|e| e.to_string())?;
                Arc::new(ChainVerifier {
                    inner,
                    check_name: mode == SslMode::VerifyFull,
                })
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let cfg = match (&o.cert, &o.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let pem = read_pem("sslcert", cert)?;
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("sslcert {cert}: {e}"))?;
                if chain.is_empty() {
                    return Err(format!("sslcert {cert} holds no certificate"));
                }
                let kpem = zeroize::Zeroizing::new(read_pem("sslkey", key)?);
                let k = PrivateKeyDer::from_pem_slice(&kpem)
                    .map_err(|e| format!("sslkey {key}: {e}"))?;
                builder
                    .with_client_auth_cert(chain, k)
                    .map_err(|e| format!("sslcert/sslkey: {e}"))?
            }
            _ => return Err("sslcert and sslkey go together".into()),
        };
        Ok(Self {
            cfg: Arc::new(cfg),
            used: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A client and its connection over plain TCP or TLS.
pub type PgConnection = Connection<Socket, PgTlsStream>;

impl PgTarget {
    /// Connects (within 10 s). With `prefer`, a server that offers no TLS to a host other
    /// than this machine is logged as a warning: the connection is plaintext.
    pub async fn connect(&self) -> Result<(Client, PgConnection), String> {
        let tls = PgTls {
            cfg: Arc::clone(&self.tls.cfg),
            used: Arc::new(AtomicBool::new(false)),
        };
        let used = Arc::clone(&tls.used);
        let (client, conn) =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.config.connect(tls))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| describe(&e))?;
        if self.mode == SslMode::Prefer && !used.load(Ordering::SeqCst) && !is_local(&self.host) {
            tracing::warn!(host = %self.host, "PostgreSQL connection is not encrypted: the server offers no TLS (set sslmode=require or verify-full to insist)");
        }
        Ok((client, conn))
    }
}

fn is_local(host: &str) -> bool {
    host.is_empty()
        || host.starts_with('/')
        || host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The driver's error with its TLS cause spelled out (a certificate problem reads as one).
fn describe(e: &tokio_postgres::Error) -> String {
    use std::error::Error;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

impl MakeTlsConnect<Socket> for PgTls {
    type Stream = PgTlsStream;
    type TlsConnect = PgTlsConnect;
    type Error = std::io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, std::io::Error> {
        let name = ServerName::try_from(domain.to_string()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid TLS server name {domain:?}"),
            )
        })?;
        Ok(PgTlsConnect {
            cfg: Arc::clone(&self.cfg),
            name,
            used: Arc::clone(&self.used),
        })
    }
}

pub struct PgTlsConnect {
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
    used: Arc<AtomicBool>,
}

impl TlsConnect<Socket> for PgTlsConnect {
    type Stream = PgTlsStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<PgTlsStream, std::io::Error>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            self.used.store(true, Ordering::SeqCst);
            let s = tokio_rustls::TlsConnector::from(self.cfg)
                .connect(self.name, stream)
                .await?;
            Ok(PgTlsStream(Box::new(s)))
        })
    }
}

/// A TLS session to PostgreSQL.
pub struct PgTlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.0.as_mut()).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_shutdown(cx)
    }
}

impl TlsStream for PgTlsStream {
    /// No channel binding: SCRAM runs without it (`channel_binding=require` is refused by
    /// the driver).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// `verify-ca` / `verify-full`: the chain must lead to `sslrootcert`; the name is checked
/// only for `verify-full`.
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate; the handshake signature is still checked, so the peer
/// holds the key of the certificate it sent. `prefer`/`require` without `sslrootcert` (as
/// libpq), and the database plugins' named no-verify options.
#[derive(Debug)]
pub struct NoVerify(Arc<CryptoProvider>);

impl NoVerify {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        NoVerify(provider)
    }
}

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_come_out_of_urls_and_keyvalue_strings() {
        let t =
            parse("postgresql://u:p%40ss@db.example:5433/app?sslmode=require&application_name=x")
                .unwrap();
        assert_eq!(t.mode, SslMode::Require);
        assert_eq!(t.host, "db.example");
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(t.config.get_password(), Some(&b"p@ss"[..]));
        let t = parse("host=127.0.0.1 user=postgres password='it''s' dbname=postgres").err();
        assert!(
            t.is_some(),
            "libpq does not double quotes: a stray quote is an error"
        );
        let t = parse("host=127.0.0.1 user=postgres password='a b\\'c' sslmode=disable").unwrap();
        assert_eq!(t.mode, SslMode::Disable);
        assert_eq!(t.config.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(
            parse("host=h user=u").unwrap().mode,
            SslMode::Prefer,
            "libpq's default"
        );
    }

    #[test]
    fn unsupported_tls_options_are_refused() {
        for bad in [
            "host=h sslmode=allow",
            "host=h sslpassword=x",
            "host=h sslcrl=/x",
            "host=h sslsni=0",
            "host=h ssl_min_protocol_version=TLSv1.3",
            "host=h gssencmode=require",
            "postgresql://h/db?sslcompression=1",
            "host=h sslcert=/a",
            "host=h sslrootcert=system sslmode=require",
            "host=h sslmode=verify-full sslrootcert=/does/not/exist",
            "host=h frobnicate=1",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            parse("host=h sslrootcert=system").unwrap().mode,
            SslMode::VerifyFull
        );
    }
}
