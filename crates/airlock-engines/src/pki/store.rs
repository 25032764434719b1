//! What the PKI engine keeps in its mount's storage view (behind the encrypted barrier):
//! the CA (`config/ca_bundle`: certificate, parents and PKCS#8 key), a generated
//! intermediate key awaiting its certificate (`config/pending_key`), issued certificates
//! (`certs/<serial>`), revocations (`revoked/<serial>`) and the current CRL (`crl`).
//! Serials are stored with `-` between bytes and shown with `:`.

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::keys::{self, PrivateKey};
use super::x509::{self, CertInfo, Issuer};
use airlock_logical::{ApiError, ApiResult, BarrierOp, Ctx};

pub const CA_KEY: &str = "config/ca_bundle";
pub const PENDING_KEY: &str = "config/pending_key";
pub const CRL_KEY: &str = "crl";
/// How long a CRL is valid (Vault's default `expiry`).
const CRL_LIFETIME: i64 = 72 * 3600;

/// The stored CA. The key is PKCS#8 in base64, wiped from memory on drop.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct StoredCa {
    pub certificate: String,
    pub chain: Vec<String>,
    pub key: String,
    pub issuer_id: String,
    pub key_id: String,
    pub issuer_name: String,
}

/// A stored key without a certificate yet.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct StoredKey {
    pub key: String,
    pub key_id: String,
}

/// The loaded CA.
pub struct Ca {
    pub pem: String,
    pub der: Vec<u8>,
    pub info: CertInfo,
    /// Parent certificates (PEM), nearest first.
    pub chain: Vec<String>,
    pub key: PrivateKey,
    pub issuer_id: String,
    /// The CA's key identifier (its extension, else computed).
    pub kid: Vec<u8>,
}

impl Ca {
    pub fn issuer(&self) -> Issuer<'_> {
        Issuer {
            subject: &self.info.subject,
            key_id: &self.kid,
            key: &self.key,
        }
    }
    /// The CA and its parents, PEM (`ca_chain`).
    pub fn full_chain(&self) -> Vec<String> {
        let mut v = vec![self.pem.clone()];
        v.extend(self.chain.iter().cloned());
        v
    }
}

/// A certificate as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct CertRecord {
    pub certificate: String,
    pub issuer_id: String,
    pub not_after: i64,
    #[serde(default)]
    pub revoked_at: i64,
}

#[derive(Serialize, Deserialize, Default)]
pub struct CrlState {
    pub der: String,
    pub number: u64,
}

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str) -> ApiResult<Zeroizing<Vec<u8>>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|e| ApiError::internal(&e))
}

/// The DER of the first certificate in a PEM text.
pub fn first_cert_der(pem: &str) -> ApiResult<Vec<u8>> {
    keys::parse_pem(pem)
        .ok()
        .and_then(|blocks| blocks.into_iter().find(|(l, _)| l == "CERTIFICATE"))
        .map(|(_, d)| d.to_vec())
        .ok_or_else(|| ApiError::internal(&"stored certificate is not PEM"))
}

pub fn cert_pem(der_bytes: &[u8]) -> String {
    keys::pem("CERTIFICATE", der_bytes).to_string()
}

pub fn storage_serial(serial: &str) -> String {
    serial.replace(':', "-")
}

pub fn key_to_stored(key: &PrivateKey) -> String {
    b64(key.pkcs8())
}

/// The parsed CA of each mount, with the stored bytes it was parsed from: a request reads
/// the stored CA as always (so a change by this or another node is seen at once) and parses
/// it only when those bytes changed. An engine instance forgets its mount's entry when it is
/// dropped (sealing drops them all), so no CA key outlives the seal in memory.
type CaCache = std::sync::Mutex<std::collections::HashMap<String, (Zeroizing<Vec<u8>>, Arc<Ca>)>>;

fn ca_cache() -> &'static CaCache {
    static C: std::sync::OnceLock<CaCache> = std::sync::OnceLock::new();
    C.get_or_init(Default::default)
}

/// Forgets a mount's parsed CA (its engine instance is going).
pub fn forget_ca(mount_uuid: &str) {
    if let Ok(mut m) = ca_cache().lock() {
        m.remove(mount_uuid);
    }
}

pub async fn load_ca(ctx: &Ctx) -> ApiResult<Option<Arc<Ca>>> {
    let Some(raw) = ctx.storage.get(CA_KEY).await? else {
        return Ok(None);
    };
    let uuid = &ctx.mount.uuid;
    if let Some((stored, ca)) = ca_cache().lock().ok().as_ref().and_then(|m| m.get(uuid)) {
        if stored.as_slice() == raw.as_slice() {
            return Ok(Some(Arc::clone(ca)));
        }
    }
    let s: StoredCa = serde_json::from_slice(&raw)
        .map_err(|_| ApiError::internal(&"the stored CA is malformed"))?;
    let ca = Arc::new(parse_ca(&s)?);
    if let Ok(mut m) = ca_cache().lock() {
        m.insert(uuid.clone(), (raw, Arc::clone(&ca)));
    }
    Ok(Some(ca))
}

fn parse_ca(s: &StoredCa) -> ApiResult<Ca> {
    let der = first_cert_der(&s.certificate)?;
    let info = x509::parse_cert(&der).map_err(|e| ApiError::internal(&e.0))?;
    let key = PrivateKey::from_pkcs8(&unb64(&s.key)?)?;
    Ok(Ca {
        pem: s.certificate.clone(),
        der,
        kid: info.key_id(),
        info,
        chain: s.chain.clone(),
        key,
        issuer_id: s.issuer_id.clone(),
    })
}

/// The CA, or Vault's error when none is configured.
pub async fn require_ca(ctx: &Ctx) -> ApiResult<Arc<Ca>> {
    load_ca(ctx).await?.ok_or_else(|| {
        ApiError::bad_request(
            "could not fetch the CA certificate (was one set?): no default issuer currently configured",
        )
    })
}

pub async fn load_pending(ctx: &Ctx) -> ApiResult<Option<(PrivateKey, String)>> {
    let Some(s) = ctx.storage.get_json::<StoredKey>(PENDING_KEY).await? else {
        return Ok(None);
    };
    Ok(Some((
        PrivateKey::from_pkcs8(&unb64(&s.key)?)?,
        s.key_id.clone(),
    )))
}

pub fn record_op(serial: &str, rec: &CertRecord) -> ApiResult<BarrierOp> {
    let b = serde_json::to_vec(rec).map_err(|e| ApiError::internal(&e))?;
    Ok(BarrierOp::Put(
        format!("certs/{}", storage_serial(serial)),
        b,
    ))
}

pub async fn load_record(ctx: &Ctx, serial: &str) -> ApiResult<Option<CertRecord>> {
    ctx.storage
        .get_json(&format!("certs/{}", storage_serial(serial)))
        .await
}

/// A fresh CRL for `ca` over every revoked certificate it issued, plus the ops that store
/// it (`extra` revocations not yet committed are included).
pub async fn crl_ops(
    ctx: &Ctx,
    ca: &Ca,
    extra: Option<(&str, i64)>,
    dropped: &[String],
) -> ApiResult<(Vec<u8>, BarrierOp)> {
    let mut revoked = Vec::new();
    for k in ctx.storage.list("revoked/").await? {
        if dropped.contains(&k) || extra.is_some_and(|(s, _)| storage_serial(s) == k) {
            continue;
        }
        let Some(rec) = ctx
            .storage
            .get_json::<CertRecord>(&format!("certs/{k}"))
            .await?
        else {
            continue;
        };
        if rec.issuer_id != ca.issuer_id || rec.revoked_at == 0 {
            continue;
        }
        if let Some(s) = x509::parse_serial(&k) {
            revoked.push((s, rec.revoked_at));
        }
    }
    if let Some((s, t)) = extra {
        if let Some(b) = x509::parse_serial(s) {
            revoked.push((b, t));
        }
    }
    let prev: CrlState = ctx.storage.get_json(CRL_KEY).await?.unwrap_or_default();
    let now = ctx.now_unix();
    let der_bytes = x509::build_crl(
        &ca.issuer(),
        &revoked,
        now,
        now + CRL_LIFETIME,
        prev.number + 1,
    )?;
    let state = CrlState {
        der: b64(&der_bytes),
        number: prev.number + 1,
    };
    let b = serde_json::to_vec(&state).map_err(|e| ApiError::internal(&e))?;
    Ok((der_bytes, BarrierOp::Put(CRL_KEY.into(), b)))
}

/// The current CRL's DER (built when there is none yet).
pub async fn current_crl(ctx: &Ctx) -> ApiResult<Vec<u8>> {
    if let Some(s) = ctx.storage.get_json::<CrlState>(CRL_KEY).await? {
        return Ok(unb64(&s.der)?.to_vec());
    }
    let ca = require_ca(ctx).await?;
    let lock = ctx.storage.lock(CRL_KEY).await?;
    let (der_bytes, op) = crl_ops(ctx, &ca, None, &[]).await?;
    lock.commit(vec![op]).await?;
    Ok(der_bytes)
}
