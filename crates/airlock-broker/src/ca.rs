//! The broker's certificate authority and per-host leaf certificates.
//!
//! `broker run` mints a CA per run, kept in memory only. When every intercepted host is bound
//! (egress `tunnel` or `allowlist`), the CA carries a name constraint that permits only the
//! bound host names, so even a stolen CA key could not vouch for any other site. `inspect`
//! needs a CA that can vouch for every host, so it has no constraint. Leaf certificates are
//! minted per host on first use and cached with their rustls server configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use airlock_core::binding::HostPattern;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
    SanType,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pem: String,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca { key: <redacted> }")
    }
}

fn ca_params(
    constrain_to: Option<&[HostPattern]>,
    name: &str,
) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "Airlock");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(397);
    if let Some(hosts) = constrain_to {
        let permitted = hosts
            .iter()
            .map(|h| {
                GeneralSubtree::DnsName(match h {
                    HostPattern::Exact(e) => e.clone(),
                    HostPattern::OneLabel(s) => s.clone(),
                })
            })
            .collect();
        // IP addresses: only bound hosts written as addresses; with none, no IP at all (a DNS
        // constraint alone leaves IP-address names unconstrained).
        let mut permitted: Vec<GeneralSubtree> = permitted;
        let mut excluded = Vec::new();
        let ips: Vec<std::net::IpAddr> = hosts
            .iter()
            .filter_map(|h| match h {
                HostPattern::Exact(e) => e.parse().ok(),
                HostPattern::OneLabel(_) => None,
            })
            .collect();
        if ips.is_empty() {
            excluded.push(GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])));
            excluded.push(GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])));
        }
        for ip in ips {
            permitted.push(GeneralSubtree::IpAddress(match ip {
                std::net::IpAddr::V4(a) => CidrSubnet::V4(a.octets(), [255; 4]),
                std::net::IpAddr::V6(a) => CidrSubnet::V6(a.octets(), [255; 16]),
            }));
        }
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: excluded,
        });
    }
    Ok(p)
}

impl Ca {
    /// A fresh CA. `constrain_to`: the bound host patterns, or `None` for an unconstrained CA.
    pub fn generate(constrain_to: Option<&[HostPattern]>) -> Result<Self, String> {
        Self::generate_named(constrain_to, "Airlock broker CA")
    }

    /// A fresh CA with its own common name (tests use this for stand-in upstreams).
    pub fn generate_named(
        constrain_to: Option<&[HostPattern]>,
        name: &str,
    ) -> Result<Self, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = ca_params(constrain_to, name)?
            .self_signed(&key)
            .map_err(|e| e.to_string())?;
        let pem = cert.pem();
        Ok(Ca {
            cert,
            key,
            pem,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// A CA from a stored PKCS#8 key (PEM) and certificate (PEM). The certificate is re-made
    /// from the same key and name so leaves chain to the stored one.
    pub fn from_stored(
        key_pem: &str,
        cert_pem: &str,
        constrain_to: Option<&[HostPattern]>,
    ) -> Result<Self, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("CA key: {e}"))?;
        let cert = ca_params(constrain_to, "Airlock broker CA")?
            .self_signed(&key)
            .map_err(|e| e.to_string())?;
        Ok(Ca {
            cert,
            key,
            pem: cert_pem.to_string(),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate (PEM) that clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The CA key as PKCS#8 PEM, for storing encrypted in Airlock.
    pub fn key_pem(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(self.key.serialize_pem())
    }

    /// A rustls server config presenting a leaf for `host` (cached).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(m) = self.leaves.lock() {
            if let Some(c) = m.get(&host) {
                return Ok(c.clone());
            }
        }
        let cfg = self.leaf_config(std::slice::from_ref(&host))?;
        if let Ok(mut m) = self.leaves.lock() {
            if m.len() > 4096 {
                m.clear();
            }
            m.insert(host, cfg.clone());
        }
        Ok(cfg)
    }

    /// A server config with one leaf for all `names` (DNS names or IP addresses).
    pub fn leaf_config(&self, names: &[String]) -> Result<Arc<ServerConfig>, String> {
        let leaf_key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        let mut sans = Vec::new();
        for n in names {
            sans.push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    n.clone()
                        .try_into()
                        .map_err(|_| format!("{n:?} is not a valid DNS name"))?,
                ),
            });
        }
        p.subject_alt_names = sans;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        p.distinguished_name = dn;
        // No Basic Constraints at all: an explicit `cA=FALSE` writes out a DEFAULT value,
        // which is not valid DER (strict parsers such as `cryptography` ≥ 50 refuse it).
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::days(30);
        let leaf = p
            .signed_by(&leaf_key, &self.cert, &self.key)
            .map_err(|e| e.to_string())?;
        let chain = vec![leaf.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// PEM of every certificate in the system trust store, then `extra` PEM blocks: the bundle the
/// child trusts (system roots plus the broker CA, so other hosts keep working).
pub fn bundle_pem(extra: &[&str]) -> String {
    let mut out = String::new();
    for c in rustls_native_certs::load_native_certs().certs {
        out.push_str(&pem_block("CERTIFICATE", c.as_ref()));
    }
    for e in extra {
        out.push_str(e.trim_end());
        out.push('\n');
    }
    out
}

pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Parses PEM certificates (for `--extra-ca`).
pub fn parse_pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM file".into());
    }
    Ok(certs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mints_and_caches_leaves() {
        let hosts = vec![HostPattern::parse("api.openai.com").unwrap()];
        let ca = Ca::generate(Some(&hosts)).unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let a = ca.server_config("api.openai.com").unwrap();
        let b = ca.server_config("API.openai.com.").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(format!("{ca:?}").contains("redacted"));
        let stored = Ca::from_stored(&ca.key_pem(), ca.cert_pem(), None).unwrap();
        assert!(stored.server_config("x.example").is_ok());
    }
}
