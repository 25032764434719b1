//! TLS for the database plugins' own clients (MySQL/MariaDB, Redis): rustls on the ring
//! provider, the system roots or a configured CA, an optional client certificate, and —
//! only when a config asks for it by name — no verification of the server's certificate.
//! A TLS option that is not implemented is refused, never ignored.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring as provider;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    ServerName,
};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// How to speak TLS to a database.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM CA certificates to trust instead of the system roots.
    pub ca_pem: String,
    /// PEM client certificate chain and private key (one bundle), for mutual TLS.
    pub client_pem: String,
    /// The name to verify the certificate against (default: the host connected to).
    pub server_name: String,
    /// Accept any server certificate (still checks the handshake signature). Only when a
    /// config says so by name (`tls=skip-verify`, `tls_skip_verify`, `insecure_tls`).
    pub skip_verify: bool,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &!self.ca_pem.is_empty())
            .field("client_cert", &!self.client_pem.is_empty())
            .field("server_name", &self.server_name)
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

/// A connection that is plain TCP or TLS over it (a plain one can be upgraded in place).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Between taking the plain stream out and putting the TLS one in.
    Closed,
}

impl Stream {
    /// Upgrades a plain connection to TLS (the MySQL `SSLRequest` flow).
    pub async fn upgrade(&mut self, host: &str, o: &TlsOptions) -> Result<(), String> {
        match std::mem::replace(self, Stream::Closed) {
            Stream::Plain(tcp) => {
                *self = Stream::Tls(Box::new(connect(tcp, host, o).await?));
                Ok(())
            }
            other => {
                *self = other;
                Err("the connection is not a plain TCP connection".into())
            }
        }
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

fn pem_items(pem: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    crate::auth::keys::pem_blocks(pem)
}

/// The rustls client configuration for `o`.
pub fn client_config(o: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    let prov = Arc::new(provider::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&prov))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if o.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(airlock_logical::pg_tls::NoVerify::new(
                prov,
            )))
    } else {
        let mut roots = RootCertStore::empty();
        if o.ca_pem.trim().is_empty() {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        } else {
            for (label, der) in pem_items(&o.ca_pem)? {
                if label == "CERTIFICATE" {
                    roots
                        .add(CertificateDer::from(der))
                        .map_err(|e| format!("CA certificate: {e}"))?;
                }
            }
            if roots.is_empty() {
                return Err("the CA PEM holds no certificate".into());
            }
        }
        builder.with_root_certificates(roots)
    };
    let cfg = if o.client_pem.trim().is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut chain = Vec::new();
        let mut key: Option<PrivateKeyDer<'static>> = None;
        for (label, der) in pem_items(&o.client_pem)? {
            match label.as_str() {
                "CERTIFICATE" => chain.push(CertificateDer::from(der)),
                "PRIVATE KEY" => key = Some(PrivatePkcs8KeyDer::from(der).into()),
                "RSA PRIVATE KEY" => key = Some(PrivatePkcs1KeyDer::from(der).into()),
                "EC PRIVATE KEY" => key = Some(PrivateSec1KeyDer::from(der).into()),
                _ => {}
            }
        }
        let key = key.ok_or("the client certificate PEM holds no private key")?;
        if chain.is_empty() {
            return Err("the client certificate PEM holds no certificate".into());
        }
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?
    };
    Ok(Arc::new(cfg))
}

/// Runs the TLS handshake over `tcp` to `host` (or `o.server_name`).
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    o: &TlsOptions,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let cfg = client_config(o)?;
    let name = if o.server_name.is_empty() {
        host
    } else {
        &o.server_name
    };
    let name = ServerName::try_from(name.to_string())
        .map_err(|_| format!("invalid TLS server name {name:?}"))?;
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS handshake: {e}"))
}
