//! X.509 as the PKI engine writes and reads it: certificates (CA and leaf), certificate
//! requests and CRLs are built here from plain values and signed with a
//! [`PrivateKey`](super::keys::PrivateKey); certificates and requests clients send are
//! parsed into the few fields the engine uses, and a request's signature is checked.

use std::net::IpAddr;

use sha1::Digest as _;

use super::der::{self, DerError, DerResult, Reader};
use super::keys::{self, PrivateKey};
use airlock_logical::ApiResult;

const OID_CN: &[u64] = &[2, 5, 4, 3];
const OID_SKI: &[u64] = &[2, 5, 29, 14];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_SAN: &[u64] = &[2, 5, 29, 17];
const OID_BASIC: &[u64] = &[2, 5, 29, 19];
const OID_CRL_NUMBER: &[u64] = &[2, 5, 29, 20];
const OID_AKI: &[u64] = &[2, 5, 29, 35];
const OID_EKU: &[u64] = &[2, 5, 29, 37];
const OID_EXT_REQ: &[u64] = &[1, 2, 840, 113549, 1, 9, 14];

/// Subject alternative names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sans {
    pub dns: Vec<String>,
    pub email: Vec<String>,
    pub ip: Vec<IpAddr>,
    pub uri: Vec<String>,
}

impl Sans {
    fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.email.is_empty() && self.ip.is_empty() && self.uri.is_empty()
    }
    fn encode(&self) -> Vec<u8> {
        let mut names = Vec::new();
        for d in &self.dns {
            names.extend(der::tlv(0x82, d.as_bytes()));
        }
        for e in &self.email {
            names.extend(der::tlv(0x81, e.as_bytes()));
        }
        for u in &self.uri {
            names.extend(der::tlv(0x86, u.as_bytes()));
        }
        for ip in &self.ip {
            let b = match ip {
                IpAddr::V4(v) => v.octets().to_vec(),
                IpAddr::V6(v) => v.octets().to_vec(),
            };
            names.extend(der::tlv(0x87, &b));
        }
        der::tlv(der::SEQUENCE, &names)
    }
    fn decode(ext_value: &[u8]) -> DerResult<Self> {
        let mut out = Sans::default();
        let seq =
            der::parse_one(ext_value)?.expect(der::SEQUENCE, "bad subject alternative names")?;
        let mut r = seq.reader();
        while !r.is_empty() {
            let n = r.next()?;
            let text = || String::from_utf8(n.content.to_vec()).map_err(|_| DerError("bad name"));
            match n.tag {
                0x82 => out.dns.push(text()?),
                0x81 => out.email.push(text()?),
                0x86 => out.uri.push(text()?),
                0x87 => match n.content.len() {
                    4 => {
                        let mut a = [0u8; 4];
                        a.copy_from_slice(n.content);
                        out.ip.push(IpAddr::from(a));
                    }
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(n.content);
                        out.ip.push(IpAddr::from(a));
                    }
                    _ => return Err(DerError("bad IP address")),
                },
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A Name with one common name (empty: an empty Name).
pub fn name_cn(cn: &str) -> Vec<u8> {
    if cn.is_empty() {
        return der::seq(&[]);
    }
    let atv = der::seq(&[&der::oid(OID_CN), &der::dir_string(cn)]);
    der::seq(&[&der::cons(der::SET, &[&atv])])
}

/// The common name in a Name, if any.
pub fn cn_of(name: &[u8]) -> DerResult<Option<String>> {
    let n = der::parse_one(name)?;
    let mut rdns = n.reader();
    while !rdns.is_empty() {
        let set = rdns.next()?;
        let mut atvs = set.reader();
        while !atvs.is_empty() {
            let atv = atvs.next()?;
            let mut r = atv.reader();
            if r.next()?.oid_arcs()? == OID_CN {
                let v = r.next()?;
                return String::from_utf8(v.content.to_vec())
                    .map(Some)
                    .map_err(|_| DerError("bad common name"));
            }
        }
    }
    Ok(None)
}

fn ext(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        der::seq(&[&der::oid(oid), &der::boolean(true), &der::octets(value)])
    } else {
        der::seq(&[&der::oid(oid), &der::octets(value)])
    }
}

/// RFC 5280's key identifier: SHA-1 of the public key bits.
pub fn key_id(spki: &[u8]) -> DerResult<Vec<u8>> {
    let info = der::parse_one(spki)?;
    let mut r = info.reader();
    r.next()?;
    let key = r.next()?.bit_string()?;
    Ok(sha1::Sha1::digest(key).to_vec())
}

/// What a certificate says, beyond its subject and key.
pub struct Template<'a> {
    pub serial: &'a [u8],
    pub subject: Vec<u8>,
    pub spki: &'a [u8],
    pub not_before: i64,
    pub not_after: i64,
    pub sans: Sans,
    /// `Some(max_path_len)` for a CA (-1: no limit).
    pub ca: Option<i64>,
    pub server: bool,
    pub client: bool,
    /// Further extended key usages (OIDs).
    pub eku: Vec<Vec<u64>>,
}

/// The issuing side: its subject and key identifier, and its key.
pub struct Issuer<'a> {
    pub subject: &'a [u8],
    pub key_id: &'a [u8],
    pub key: &'a PrivateKey,
}

/// Builds and signs a certificate; returns its DER.
pub fn build_cert(t: &Template<'_>, issuer: &Issuer<'_>) -> ApiResult<Vec<u8>> {
    let ski = key_id(t.spki).map_err(|e| airlock_logical::ApiError::bad_request(e.0))?;
    let mut exts = Vec::new();
    match t.ca {
        Some(path) => {
            let mut bc = vec![der::boolean(true)];
            if path >= 0 {
                bc.push(der::small_uint(path as u64));
            }
            let bc_refs: Vec<&[u8]> = bc.iter().map(Vec::as_slice).collect();
            exts.push(ext(OID_BASIC, true, &der::seq(&bc_refs)));
            // keyCertSign, cRLSign, digitalSignature.
            exts.push(ext(
                OID_KEY_USAGE,
                true,
                &der::tlv(der::BIT_STRING, &[1, 0x86]),
            ));
        }
        None => {
            exts.push(ext(OID_BASIC, true, &der::seq(&[])));
            // digitalSignature, keyEncipherment, keyAgreement.
            exts.push(ext(
                OID_KEY_USAGE,
                true,
                &der::tlv(der::BIT_STRING, &[3, 0xa8]),
            ));
            let mut ekus: Vec<Vec<u8>> = Vec::new();
            if t.server {
                ekus.push(der::oid(&[1, 3, 6, 1, 5, 5, 7, 3, 1]));
            }
            if t.client {
                ekus.push(der::oid(&[1, 3, 6, 1, 5, 5, 7, 3, 2]));
            }
            for o in &t.eku {
                ekus.push(der::oid(o));
            }
            if !ekus.is_empty() {
                let refs: Vec<&[u8]> = ekus.iter().map(Vec::as_slice).collect();
                exts.push(ext(OID_EKU, false, &der::seq(&refs)));
            }
        }
    }
    exts.push(ext(OID_SKI, false, &der::octets(&ski)));
    exts.push(ext(
        OID_AKI,
        false,
        &der::seq(&[&der::tlv(0x80, issuer.key_id)]),
    ));
    if !t.sans.is_empty() {
        exts.push(ext(OID_SAN, false, &t.sans.encode()));
    }
    let ext_refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
    let alg = issuer.key.sig_alg();
    let tbs = der::seq(&[
        &der::explicit(0, &der::small_uint(2)),
        &der::uint(t.serial),
        &alg,
        issuer.subject,
        &der::seq(&[&der::time(t.not_before), &der::time(t.not_after)]),
        &t.subject,
        t.spki,
        &der::explicit(3, &der::seq(&ext_refs)),
    ]);
    let signature = issuer.key.sign(&tbs)?;
    Ok(der::seq(&[&tbs, &alg, &der::bits(&signature)]))
}

/// A PKCS#10 request for a CA, signed by `key`.
pub fn build_csr(cn: &str, sans: &Sans, key: &PrivateKey) -> ApiResult<Vec<u8>> {
    let spki = key.spki()?;
    let mut exts = vec![ext(OID_BASIC, true, &der::seq(&[&der::boolean(true)]))];
    if !sans.is_empty() {
        exts.push(ext(OID_SAN, false, &sans.encode()));
    }
    let refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
    let attr = der::seq(&[
        &der::oid(OID_EXT_REQ),
        &der::cons(der::SET, &[&der::seq(&refs)]),
    ]);
    let cri = der::seq(&[
        &der::small_uint(0),
        &name_cn(cn),
        &spki,
        &der::tlv(0xa0, &attr),
    ]);
    let alg = key.sig_alg();
    let signature = key.sign(&cri)?;
    Ok(der::seq(&[&cri, &alg, &der::bits(&signature)]))
}

/// A v2 CRL listing `revoked` (serial bytes, revocation time).
pub fn build_crl(
    issuer: &Issuer<'_>,
    revoked: &[(Vec<u8>, i64)],
    this_update: i64,
    next_update: i64,
    number: u64,
) -> ApiResult<Vec<u8>> {
    let alg = issuer.key.sig_alg();
    let entries: Vec<Vec<u8>> = revoked
        .iter()
        .map(|(s, t)| der::seq(&[&der::uint(s), &der::time(*t)]))
        .collect();
    let entry_refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    let exts = der::seq(&[
        &ext(OID_AKI, false, &der::seq(&[&der::tlv(0x80, issuer.key_id)])),
        &ext(OID_CRL_NUMBER, false, &der::small_uint(number)),
    ]);
    let version = der::small_uint(1);
    let times = [der::time(this_update), der::time(next_update)];
    let list = der::seq(&entry_refs);
    let ext0 = der::explicit(0, &exts);
    let mut parts: Vec<&[u8]> = vec![&version, &alg, issuer.subject, &times[0], &times[1]];
    if !entries.is_empty() {
        parts.push(&list);
    }
    parts.push(&ext0);
    let tbs = der::seq(&parts);
    let signature = issuer.key.sign(&tbs)?;
    Ok(der::seq(&[&tbs, &alg, &der::bits(&signature)]))
}

/// The fields of a certificate the engine uses.
#[derive(Clone, Debug)]
pub struct CertInfo {
    pub serial: Vec<u8>,
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    pub spki: Vec<u8>,
    pub not_after: i64,
    pub ski: Option<Vec<u8>>,
    pub is_ca: bool,
    tbs: Vec<u8>,
    sig_alg: Vec<u8>,
    signature: Vec<u8>,
}

impl CertInfo {
    /// Whether `issuer` (a parsed CA certificate) signed this certificate.
    pub fn signed_by(&self, issuer: &CertInfo) -> bool {
        self.issuer == issuer.subject
            && keys::verify(&issuer.spki, &self.sig_alg, &self.tbs, &self.signature).is_ok()
    }
    /// This certificate's key identifier (its extension, else computed).
    pub fn key_id(&self) -> Vec<u8> {
        self.ski
            .clone()
            .or_else(|| key_id(&self.spki).ok())
            .unwrap_or_default()
    }
}

fn extensions(list: &[u8], mut f: impl FnMut(&[u64], &[u8]) -> DerResult<()>) -> DerResult<()> {
    let seq = der::parse_one(list)?.expect(der::SEQUENCE, "bad extensions")?;
    let mut r = seq.reader();
    while !r.is_empty() {
        let e = r.expect(der::SEQUENCE, "bad extension")?;
        let mut er = e.reader();
        let id = er.next()?.oid_arcs()?;
        er.optional(der::BOOLEAN)?;
        let value = er.expect(der::OCTET_STRING, "bad extension value")?;
        f(&id, value.content)?;
    }
    Ok(())
}

pub fn parse_cert(der_bytes: &[u8]) -> DerResult<CertInfo> {
    let cert = der::parse_one(der_bytes)?.expect(der::SEQUENCE, "not a certificate")?;
    let mut c = cert.reader();
    let tbs = c.expect(der::SEQUENCE, "not a certificate")?;
    let sig_alg = c.expect(der::SEQUENCE, "bad signature algorithm")?;
    let signature = c.next()?.bit_string()?;
    let mut t = tbs.reader();
    t.optional(0xa0)?;
    let serial = t.next()?.uint_bytes()?.to_vec();
    t.expect(der::SEQUENCE, "bad signature algorithm")?;
    let issuer = t.expect(der::SEQUENCE, "bad issuer")?.raw.to_vec();
    let validity = t.expect(der::SEQUENCE, "bad validity")?;
    let mut v = validity.reader();
    v.next()?.time()?;
    let not_after = v.next()?.time()?;
    let subject = t.expect(der::SEQUENCE, "bad subject")?.raw.to_vec();
    let spki = t.expect(der::SEQUENCE, "bad public key")?.raw.to_vec();
    let mut ski = None;
    let mut is_ca = false;
    while !t.is_empty() {
        let x = t.next()?;
        if x.tag == 0xa3 {
            extensions(x.content, |id, value| {
                if id == OID_SKI {
                    ski = Some(der::parse_one(value)?.content.to_vec());
                } else if id == OID_BASIC {
                    let bc = der::parse_one(value)?;
                    let mut r = bc.reader();
                    is_ca = r.optional(der::BOOLEAN)?.is_some_and(|b| b.content != [0]);
                }
                Ok(())
            })?;
        }
    }
    Ok(CertInfo {
        serial,
        issuer,
        subject,
        spki,
        not_after,
        ski,
        is_ca,
        tbs: tbs.raw.to_vec(),
        sig_alg: sig_alg.raw.to_vec(),
        signature: signature.to_vec(),
    })
}

/// A certificate request whose signature has been checked.
#[derive(Clone, Debug)]
pub struct Csr {
    pub subject: Vec<u8>,
    pub cn: Option<String>,
    pub spki: Vec<u8>,
    pub sans: Sans,
}

/// Parses a PKCS#10 request and checks its self-signature.
pub fn parse_csr(der_bytes: &[u8]) -> Result<Csr, String> {
    let fmt = |e: DerError| format!("certificate request could not be parsed: {}", e.0);
    let req = der::parse_one(der_bytes)
        .and_then(|t| t.expect(der::SEQUENCE, "not a certificate request"))
        .map_err(fmt)?;
    let mut r = req.reader();
    let cri = r
        .expect(der::SEQUENCE, "not a certificate request")
        .map_err(fmt)?;
    let alg = r
        .expect(der::SEQUENCE, "bad signature algorithm")
        .map_err(fmt)?;
    let signature = r.next().and_then(|t| t.bit_string()).map_err(fmt)?;
    let mut c = cri.reader();
    c.next().and_then(|t| t.uint_bytes()).map_err(fmt)?;
    let subject = c.expect(der::SEQUENCE, "bad subject").map_err(fmt)?;
    let spki = c.expect(der::SEQUENCE, "bad public key").map_err(fmt)?;
    let mut sans = Sans::default();
    if let Some(attrs) = c.optional(0xa0).map_err(fmt)? {
        let mut a = attrs.reader();
        while !a.is_empty() {
            let attr = a.expect(der::SEQUENCE, "bad attribute").map_err(fmt)?;
            let mut ar = attr.reader();
            let id = ar.next().and_then(|t| t.oid_arcs()).map_err(fmt)?;
            if id != OID_EXT_REQ {
                continue;
            }
            let set = ar.expect(der::SET, "bad attribute").map_err(fmt)?;
            let exts = Reader::new(set.content).next().map_err(fmt)?;
            extensions(exts.raw, |id, value| {
                if id == OID_SAN {
                    sans = Sans::decode(value)?;
                }
                Ok(())
            })
            .map_err(fmt)?;
        }
    }
    keys::verify(spki.raw, alg.raw, cri.raw, signature)
        .map_err(|e| format!("certificate request signature is invalid: {e}"))?;
    Ok(Csr {
        subject: subject.raw.to_vec(),
        cn: cn_of(subject.raw).map_err(fmt)?,
        spki: spki.raw.to_vec(),
        sans,
    })
}

/// Serial bytes as Vault prints them: lowercase hex pairs joined by `:`.
pub fn serial_string(serial: &[u8]) -> String {
    let skip = serial.iter().take_while(|b| **b == 0).count();
    let s = serial.get(skip..).unwrap_or_default();
    if s.is_empty() {
        return "00".into();
    }
    s.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:…` or `aa-bb-…` into bytes (`None`: not a serial).
pub fn parse_serial(s: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.is_empty() || parts.len() > 64 {
        return None;
    }
    parts
        .iter()
        .map(|p| match p.len() {
            1 | 2 => u8::from_str_radix(p, 16).ok(),
            _ => None,
        })
        .collect()
}

/// A fresh positive 159-bit serial.
pub fn new_serial() -> Vec<u8> {
    let mut b = airlock_logical::util::random_bytes::<20>();
    b[0] &= 0x7f;
    b.to_vec()
}
