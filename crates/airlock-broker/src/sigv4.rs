//! AWS SigV4 re-signing for `signing = "aws_sigv4"` bindings. Pure: the proxy passes the
//! request's parts, this module says whether the agent's signature holds and what to send.
//!
//! The agent holds placeholder credentials (an `AKIA…` key id and a secret that exist only in
//! this broker) and signs with them as usual (boto3, the AWS CLI, any SDK). The broker:
//! 1. finds the signature ([`find`]): `Authorization: AWS4-HMAC-SHA256 …`, or a presigned
//!    URL's `X-Amz-*` query parameters;
//! 2. checks it ([`verify`]) with the placeholder secret — the key id must be the binding's
//!    placeholder and the signature must hold over the request as received, so a request
//!    changed after signing, or signed with anything else, is refused. The canonical URI is
//!    tried as sent (S3) and encoded once more (every other service), as SDKs do;
//! 3. signs the same canonical request again with the real credentials ([`resign_header`],
//!    [`resign_query`]), with the real session token when there is one;
//! 4. for S3's signed streaming uploads (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), checks every
//!    chunk's signature and signs it again in the real key's chain ([`ChunkResigner`]); the
//!    encoded length does not change. Unsigned payloads (`UNSIGNED-PAYLOAD`,
//!    `STREAMING-UNSIGNED-PAYLOAD-TRAILER`) pass through unchanged.
//!
//! Not supported, answered with a clear error: signed streaming with a signed trailer
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`) and SigV4A (`AWS4-ECDSA-P256-SHA256`).

use airlock_core::percent::{self, Plus};
use airlock_core::sigv4::{self as v4, ALGORITHM};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The largest chunk of a signed streaming upload the broker holds (to hash it before its
/// signature can be written).
pub const MAX_CHUNK: usize = 16 << 20;

/// Signing keys by (secret, day, region, service): a key changes once a day, and deriving
/// one costs four HMACs, twice per re-signed request. Bounded; keys are zeroised on drop.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Zeroizing<[u8; 32]> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Keys = Mutex<HashMap<[u8; 32], Zeroizing<[u8; 32]>>>;
    static KEYS: OnceLock<Keys> = OnceLock::new();
    let mut h = Sha256::new();
    for part in [secret, date, region, service] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let id: [u8; 32] = h.finalize().into();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(k) = keys.lock().ok().and_then(|m| m.get(&id).cloned()) {
        return k;
    }
    let k = v4::signing_key(secret, date, region, service);
    if let Ok(mut m) = keys.lock() {
        if m.len() >= 256 {
            m.clear();
        }
        m.insert(id, k.clone());
    }
    k
}

/// A SigV4 signature on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case, as listed.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `x-amz-date` (header) or `X-Amz-Date` (presigned).
    pub amz_date: String,
    pub presigned: bool,
}

impl Found {
    pub fn scope(&self) -> String {
        v4::scope(&self.date, &self.region, &self.service)
    }
}

/// What [`verify`] established: the canonical URI and payload hash the agent signed.
#[derive(Clone, Debug)]
pub struct Checked {
    pub canonical_uri: String,
    pub payload_hash: String,
}

/// The real credentials.
pub struct Real<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// Lower-case header name → value, in request order (duplicates kept).
pub type Headers = [(String, String)];

fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The raw query's pairs, as sent (not decoded).
fn raw_pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&percent::decode_lenient(s, Plus::Literal)).into_owned()
}

/// Parses `<key id>/<date>/<region>/<service>/aws4_request`.
fn credential(c: &str) -> Result<(String, String, String, String), String> {
    let parts: Vec<&str> = c.split('/').collect();
    match parts.as_slice() {
        [k, d, r, s, "aws4_request"]
            if !k.is_empty() && d.len() == 8 && !r.is_empty() && !s.is_empty() =>
        {
            Ok((k.to_string(), d.to_string(), r.to_string(), s.to_string()))
        }
        _ => Err("malformed SigV4 credential scope".into()),
    }
}

fn signed_list(s: &str) -> Result<Vec<String>, String> {
    let v: Vec<String> = s
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if v.iter().any(String::is_empty) {
        return Err("malformed SigV4 signed header list".into());
    }
    Ok(v)
}

/// The SigV4 signature on a request, if it has one (`Err`: one that is malformed, or a
/// signing scheme the broker cannot re-sign).
pub fn find(headers: &Headers, raw_query: Option<&str>) -> Result<Option<Found>, String> {
    if let Some(a) = header(headers, "authorization") {
        let a = a.trim();
        if a.starts_with("AWS4-ECDSA-P256-SHA256") {
            return Err("SigV4A (AWS4-ECDSA-P256-SHA256) signatures cannot be re-signed".into());
        }
        let Some(rest) = a.strip_prefix(ALGORITHM) else {
            return Ok(None);
        };
        let (mut cred, mut list, mut sig) = (None, None, None);
        for part in rest.split(',') {
            match part.trim().split_once('=') {
                Some(("Credential", v)) => cred = Some(v.trim()),
                Some(("SignedHeaders", v)) => list = Some(v.trim()),
                Some(("Signature", v)) => sig = Some(v.trim()),
                _ => {}
            }
        }
        let (Some(cred), Some(list), Some(sig)) = (cred, list, sig) else {
            return Err("malformed SigV4 Authorization header".into());
        };
        let (key_id, date, region, service) = credential(cred)?;
        let amz_date = header(headers, "x-amz-date")
            .ok_or("a SigV4-signed request without x-amz-date")?
            .trim()
            .to_string();
        return Ok(Some(Found {
            key_id,
            date,
            region,
            service,
            signed_headers: signed_list(list)?,
            signature: sig.to_ascii_lowercase(),
            amz_date,
            presigned: false,
        }));
    }
    let Some(q) = raw_query else {
        return Ok(None);
    };
    let get = |name: &str| {
        raw_pairs(q)
            .find(|(k, _)| decode(k) == name)
            .map(|(_, v)| decode(v))
    };
    match get("X-Amz-Algorithm").as_deref() {
        None => return Ok(None),
        Some(ALGORITHM) => {}
        Some(other) => return Err(format!("presigned URL with algorithm {other:?}")),
    }
    let (Some(cred), Some(list), Some(sig), Some(amz_date)) = (
        get("X-Amz-Credential"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Signature"),
        get("X-Amz-Date"),
    ) else {
        return Err("malformed presigned URL".into());
    };
    let (key_id, date, region, service) = credential(&cred)?;
    Ok(Some(Found {
        key_id,
        date,
        region,
        service,
        signed_headers: signed_list(&list)?,
        signature: sig.to_ascii_lowercase(),
        amz_date,
        presigned: true,
    }))
}

/// The key id of a legacy Signature Version 2 request (`Authorization: AWS <id>:<sig>`, or
/// a presigned `AWSAccessKeyId=` query), which the broker cannot re-sign.
pub fn sigv2_key_id(headers: &Headers, raw_query: Option<&str>) -> Option<String> {
    if let Some(a) = header(headers, "authorization") {
        if let Some(rest) = a.trim().strip_prefix("AWS ") {
            return rest.split_once(':').map(|(k, _)| k.trim().to_string());
        }
    }
    raw_pairs(raw_query?)
        .find(|(k, _)| *k == "AWSAccessKeyId")
        .map(|(_, v)| decode(v))
}

/// Whether [`verify`] needs the SHA-256 of the body (a header-signed request without
/// `x-amz-content-sha256`, as every service but S3 sends).
pub fn needs_body_hash(found: &Found, headers: &Headers) -> bool {
    !found.presigned && header(headers, "x-amz-content-sha256").is_none()
}

/// The canonical query of a raw query, without `X-Amz-Signature` when `presigned`.
fn canonical_query(raw_query: Option<&str>, presigned: bool) -> String {
    let pairs: Vec<(String, String)> = raw_query
        .map(|q| {
            raw_pairs(q)
                .map(|(k, v)| (decode(k), decode(v)))
                .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
                .collect()
        })
        .unwrap_or_default();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    v4::canonical_query(&refs)
}

/// Canonical headers and signed list over `signed` names taken from `headers`.
fn canonical_headers(headers: &Headers, signed: &[String]) -> Result<(String, String), String> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for name in signed {
        let before = pairs.len();
        pairs.extend(
            headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if pairs.len() == before {
            return Err(format!("signed header {name:?} is not in the request"));
        }
    }
    Ok(v4::canonical_headers(&pairs))
}

/// The URI forms SDKs sign: the path as sent (S3), and encoded once more (other services).
fn canonical_uris(raw_path: &str) -> Vec<String> {
    let raw = if raw_path.is_empty() { "/" } else { raw_path };
    let twice = v4::uri_encode(raw, true);
    if twice == raw {
        vec![raw.to_string()]
    } else {
        vec![raw.to_string(), twice]
    }
}

fn eq_ct(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks the agent's signature with the placeholder `secret`. `body_sha256` is the hex
/// SHA-256 of the body when [`needs_body_hash`] said so.
pub fn verify(
    found: &Found,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &Headers,
    body_sha256: Option<&str>,
    secret: &str,
) -> Result<Checked, String> {
    if !found.amz_date.starts_with(&found.date) {
        return Err("the SigV4 date and credential scope disagree".into());
    }
    let hashes: Vec<String> = match (header(headers, "x-amz-content-sha256"), body_sha256) {
        (Some(h), _) => vec![h.trim().to_string()],
        (None, _) if found.presigned => vec![UNSIGNED_PAYLOAD.into(), EMPTY_SHA256.into()],
        (None, Some(b)) => vec![b.to_string()],
        (None, None) => return Err("the body's hash is needed to check the signature".into()),
    };
    if hashes[0] == STREAMING_SIGNED_TRAILER {
        return Err(
            "signed streaming uploads with a signed trailer cannot be re-signed (use unsigned-payload trailers)".into(),
        );
    }
    let (ch, signed) = canonical_headers(headers, &found.signed_headers)?;
    let cq = canonical_query(raw_query, found.presigned);
    let key = signing_key(secret, &found.date, &found.region, &found.service);
    let scope = found.scope();
    for uri in canonical_uris(raw_path) {
        for h in &hashes {
            let creq = v4::canonical_request_parts(method, &uri, &cq, &ch, &signed, h);
            let sts = v4::string_to_sign(&found.amz_date, &scope, &creq);
            if eq_ct(&v4::signature(&key, &sts), &found.signature) {
                return Ok(Checked {
                    canonical_uri: uri,
                    payload_hash: h.clone(),
                });
            }
        }
    }
    Err("the SigV4 signature does not verify with the placeholder credentials (the request was changed after signing, or signed with other credentials)".into())
}

/// A header-signed request signed again.
pub struct Resigned {
    pub authorization: String,
    /// `x-amz-security-token` to send (`None`: remove it).
    pub session_token: Option<String>,
    /// The new seed signature and signing key (for [`ChunkResigner`]).
    pub signature: String,
    pub key: Zeroizing<[u8; 32]>,
}

/// Signs a header-signed request again with the real credentials. `headers` are the
/// request's as received.
pub fn resign_header(
    found: &Found,
    checked: &Checked,
    method: &str,
    raw_query: Option<&str>,
    headers: &Headers,
    real: &Real<'_>,
) -> Result<Resigned, String> {
    const TOKEN: &str = "x-amz-security-token";
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k != TOKEN)
        .cloned()
        .collect();
    let mut signed: Vec<String> = found
        .signed_headers
        .iter()
        .filter(|h| *h != TOKEN)
        .cloned()
        .collect();
    if let Some(t) = real.session_token {
        hs.push((TOKEN.into(), t.to_string()));
        signed.push(TOKEN.into());
    }
    let (ch, list) = canonical_headers(&hs, &signed)?;
    let cq = canonical_query(raw_query, false);
    let creq = v4::canonical_request_parts(
        method,
        &checked.canonical_uri,
        &cq,
        &ch,
        &list,
        &checked.payload_hash,
    );
    let scope = found.scope();
    let sts = v4::string_to_sign(&found.amz_date, &scope, &creq);
    let key = signing_key(real.secret_key, &found.date, &found.region, &found.service);
    let signature = v4::signature(&key, &sts);
    Ok(Resigned {
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={list}, Signature={signature}",
            real.access_key
        ),
        session_token: real.session_token.map(str::to_string),
        signature,
        key,
    })
}

/// A presigned URL's query signed again with the real credentials: the same parameters in
/// the same order, with the real key id and session token and a new signature last.
pub fn resign_query(
    found: &Found,
    checked: &Checked,
    method: &str,
    raw_query: &str,
    headers: &Headers,
    real: &Real<'_>,
) -> Result<String, String> {
    let enc = |s: &str| v4::uri_encode(s, false);
    let mut out: Vec<String> = Vec::new();
    let mut token_done = false;
    for (k, v) in raw_pairs(raw_query) {
        match decode(k).as_str() {
            "X-Amz-Signature" => {}
            "X-Amz-Credential" => out.push(format!(
                "X-Amz-Credential={}",
                enc(&format!("{}/{}", real.access_key, found.scope()))
            )),
            "X-Amz-Security-Token" => {
                if let Some(t) = real.session_token {
                    out.push(format!("X-Amz-Security-Token={}", enc(t)));
                }
                token_done = true;
            }
            _ => out.push(if v.is_empty() && !k.contains('=') {
                format!("{k}=")
            } else {
                format!("{k}={v}")
            }),
        }
    }
    if let (Some(t), false) = (real.session_token, token_done) {
        out.push(format!("X-Amz-Security-Token={}", enc(t)));
    }
    let unsigned = out.join("&");
    let (ch, list) = canonical_headers(headers, &found.signed_headers)?;
    let cq = canonical_query(Some(&unsigned), true);
    let creq = v4::canonical_request_parts(
        method,
        &checked.canonical_uri,
        &cq,
        &ch,
        &list,
        &checked.payload_hash,
    );
    let sts = v4::string_to_sign(&found.amz_date, &found.scope(), &creq);
    let key = signing_key(real.secret_key, &found.date, &found.region, &found.service);
    Ok(format!(
        "{unsigned}&X-Amz-Signature={}",
        v4::signature(&key, &sts)
    ))
}

/// One chain of chunk signatures (`AWS4-HMAC-SHA256-PAYLOAD`).
pub struct ChunkChain {
    key: Zeroizing<[u8; 32]>,
    amz_date: String,
    scope: String,
    prev: String,
}

impl ChunkChain {
    pub fn new(key: Zeroizing<[u8; 32]>, amz_date: &str, scope: &str, seed: &str) -> Self {
        ChunkChain {
            key,
            amz_date: amz_date.into(),
            scope: scope.into(),
            prev: seed.into(),
        }
    }

    /// The next chunk's signature.
    pub fn sign(&mut self, data: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.prev,
            hex::encode(Sha256::digest(data))
        );
        self.prev = v4::signature(&self.key, &sts);
        self.prev.clone()
    }
}

/// Re-signs an `aws-chunked` body signed with `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: each
/// chunk is held whole (up to [`MAX_CHUNK`]), its signature checked in the placeholder's
/// chain and replaced by the real key's.
pub struct ChunkResigner {
    check: ChunkChain,
    sign: ChunkChain,
    buf: Vec<u8>,
    done: bool,
}

impl ChunkResigner {
    pub fn new(check: ChunkChain, sign: ChunkChain) -> Self {
        ChunkResigner {
            check,
            sign,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Takes body bytes; gives the re-signed bytes that are complete so far.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        self.buf.extend_from_slice(input);
        let mut out = Vec::new();
        while !self.done {
            let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                if self.buf.len() > 4096 {
                    return Err("aws-chunked: chunk header too long".into());
                }
                break;
            };
            let line = std::str::from_utf8(&self.buf[..eol])
                .map_err(|_| "aws-chunked: chunk header is not text")?;
            let (size_hex, sig) = line
                .split_once(";chunk-signature=")
                .ok_or("aws-chunked: chunk without a signature")?;
            let size = usize::from_str_radix(size_hex, 16)
                .ok()
                .filter(|n| *n <= MAX_CHUNK)
                .ok_or("aws-chunked: bad or too large chunk size")?;
            let need = eol + 2 + size + 2;
            if self.buf.len() < need {
                break;
            }
            let data = &self.buf[eol + 2..eol + 2 + size];
            if &self.buf[need - 2..need] != b"\r\n" {
                return Err("aws-chunked: chunk not followed by CRLF".into());
            }
            if !eq_ct(&self.check.sign(data), &sig.to_ascii_lowercase()) {
                return Err("aws-chunked: a chunk signature does not verify with the placeholder credentials".into());
            }
            let new = self.sign.sign(data);
            out.extend_from_slice(size_hex.as_bytes());
            out.extend_from_slice(b";chunk-signature=");
            out.extend_from_slice(new.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
            self.buf.drain(..need);
            if size == 0 {
                self.done = true;
            }
        }
        if self.done && !self.buf.is_empty() {
            return Err("aws-chunked: data after the final chunk".into());
        }
        Ok(out)
    }

    /// The body ended: it must have ended with the final (empty) chunk.
    pub fn finish(&self) -> Result<(), String> {
        if self.done {
            Ok(())
        } else {
            Err("aws-chunked: body ended before the final chunk".into())
        }
    }
}

/// Placeholder AWS credentials from at least 56 random (or derived) bytes: a key id shaped
/// like an AWS one (`AKIA` + 16 base32 characters) and a 40-character secret.
pub fn placeholder_credentials(bytes: &[u8]) -> (String, Zeroizing<String>) {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut id = String::from("AKIA");
    id.extend(
        bytes
            .iter()
            .take(16)
            .map(|b| B32[(*b % 32) as usize] as char),
    );
    let secret: String = bytes
        .iter()
        .skip(16)
        .take(40)
        .map(|b| B64[(*b % 64) as usize] as char)
        .collect();
    (id, Zeroizing::new(secret))
}

#[cfg(test)]
mod tests;
