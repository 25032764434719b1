//! Bring your own key: Vault's `wrapping_key`, `keys/<name>/import` and
//! `keys/<name>/import_version`. The mount's wrapping key is an RSA-4096 transit key stored
//! as `policy/import/wrapping-key` (Vault's own place, so `LIST keys` shows `import/` as
//! Vault's does), made once on first use. An import is `CKM_RSA_AES_KEY_WRAP`: the first
//! 512 bytes are RSA-OAEP (hash `hash_function`, empty label) of an ephemeral AES-256 key,
//! the rest that key's RFC 5649 wrap of the target key (raw bytes for symmetric and HMAC
//! keys, PKCS#8 for asymmetric ones). Everything is unwrapped and parsed before the key's
//! entry is locked and written, so a bad blob writes nothing. Errors in the caller's input
//! answer 400 with Vault's text (Vault answers most of them 500).

use airlock_logical::{ApiError, ApiResult, Ctx, Request, Response};
use rsa::pkcs8::der::Decode;
use serde_json::json;
use zeroize::Zeroizing;

use super::asym::{self, Curve};
use super::crypto::{self, b64e};
use super::keys::new_material;
use super::policy::{KeyEntry, KeyType, NewKey, Policy, HMAC_MAX, HMAC_MIN};
use super::rsa::{self as r, OaepHash};
use super::{kwp, policy_key, valid_name, Transit};

/// The wrapping key's name among the mount's keys (not a valid key name, so no request
/// can reach it through `keys/`).
pub const WRAPPING_KEY: &str = "import/wrapping-key";
/// The RSA-OAEP block of an RSA-4096 wrapping key.
const WRAPPED_EPHEMERAL_LEN: usize = 512;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m)
}

/// The mount's wrapping key, generated (on a blocking thread) the first time.
async fn wrapping_key(t: &Transit, ctx: &Ctx) -> ApiResult<std::sync::Arc<Policy>> {
    if let Some(p) = t.load(ctx, WRAPPING_KEY).await? {
        return Ok(p);
    }
    let n = NewKey {
        kind: KeyType::Rsa4096,
        derived: false,
        convergent: false,
        exportable: false,
        allow_plaintext_backup: false,
        auto_rotate_secs: 0,
        key_size: 0,
    };
    let material = new_material(n.kind).await?;
    let g = ctx.storage.lock(&policy_key(WRAPPING_KEY)).await?;
    if t.load_fresh(ctx, WRAPPING_KEY).await?.is_none() {
        let p = Policy::create(WRAPPING_KEY, &n, ctx.now_nanos(), material)?;
        t.store(&g, &p).await?;
    }
    drop(g);
    t.load(ctx, WRAPPING_KEY)
        .await?
        .ok_or_else(|| super::internal("error retrieving wrapping key: returned policy was nil"))
}

pub async fn read_wrapping_key(t: &Transit, ctx: &Ctx) -> ApiResult<Response> {
    let p = wrapping_key(t, ctx).await?;
    let e = p.entry(p.latest_version)?;
    Ok(Response::data(json!({"public_key": e.public_key})))
}

/// The target key from `ciphertext`, unwrapped with the mount's wrapping key.
async fn unwrap_target(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Zeroizing<Vec<u8>>> {
    let hash_name = req.str_field("hash_function")?.unwrap_or_default();
    let hash = OaepHash::parse(&hash_name)
        .ok_or_else(|| bad(format!("unknown hash function: {hash_name}")))?;
    let text = req.str_field("ciphertext")?.unwrap_or_default();
    let blob = crypto::b64d(&text).map_err(|e| bad(format!("invalid ciphertext: {e}")))?;
    if blob.len() <= WRAPPED_EPHEMERAL_LEN {
        return Err(bad("provided ciphertext is too short"));
    }
    let (wrapped_eph, wrapped_key) = blob.split_at(WRAPPED_EPHEMERAL_LEN);
    let wk = wrapping_key(t, ctx).await?;
    let k = r::parse(&wk.entry(wk.latest_version)?.key).map_err(|e| super::internal(&e))?;
    let eph = r::oaep_decrypt(&k, hash, wrapped_eph).map_err(|e| {
        bad(format!(
            "{e}: the ephemeral key was not wrapped for this mount's wrapping key (or with another hash_function)"
        ))
    })?;
    if eph.len() != 32 {
        return Err(bad("expected ephemeral AES key to be 256-bit"));
    }
    kwp::unwrap(&eph, wrapped_key).map_err(bad)
}

/// Which of Go's private key types a PKCS#8 document holds (Vault's error texts name them).
fn pkcs8_kind(der: &[u8]) -> Result<(&'static str, Option<Vec<u8>>), String> {
    let info = rsa::pkcs8::PrivateKeyInfoRef::from_der(der)
        .map_err(|e| format!("error parsing asymmetric key: {e}"))?;
    Ok(match info.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => ("*rsa.PrivateKey", None),
        "1.2.840.10045.2.1" => ("*ecdsa.PrivateKey", None),
        "1.3.101.112" => {
            // CurvePrivateKey: OCTET STRING of the 32-byte seed.
            let inner = info.private_key.as_bytes();
            match (inner.first(), inner.get(1), inner.get(2..)) {
                (Some(0x04), Some(0x20), Some(seed)) if seed.len() == 32 => {
                    ("ed25519.PrivateKey", Some(seed.to_vec()))
                }
                _ => return Err("error parsing asymmetric key: invalid Ed25519 key".into()),
            }
        }
        oid => {
            return Err(format!(
                "error parsing asymmetric key: unknown algorithm {oid}"
            ))
        }
    })
}

/// A version's entry from imported material (Vault's `ImportPublicOrPrivate` rules).
fn entry_from(kind: KeyType, key: &[u8], now_nanos: i128) -> Result<KeyEntry, String> {
    let mut e = KeyEntry::default();
    e.time = airlock_logical::util::rfc3339_nanos(now_nanos);
    e.creation_time = (now_nanos / 1_000_000_000) as i64;
    if kind != KeyType::Hmac {
        let mut h = Zeroizing::new(vec![0u8; 32]);
        rand::fill(&mut h[..]);
        e.hmac_key = h.to_vec();
    }
    let wrong_size = match kind {
        KeyType::Aes128Gcm96 => key.len() != 16,
        KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => key.len() != 32,
        KeyType::Hmac => !(HMAC_MIN..=HMAC_MAX).contains(&key.len()),
        _ => false,
    };
    if wrong_size {
        return Err(format!(
            "invalid key size {} bytes for key type {}",
            key.len(),
            kind.name()
        ));
    }
    if kind.aead().is_some() || kind == KeyType::Hmac {
        e.key = key.to_vec();
        if kind == KeyType::Hmac {
            e.hmac_key = key.to_vec();
        }
        return Ok(e);
    }
    let (found, seed) = pkcs8_kind(key)?;
    let mismatch = || format!("invalid key type: expected {}, got {found}", kind.name());
    match kind {
        KeyType::Ed25519 => {
            let seed = Zeroizing::new(seed.ok_or_else(mismatch)?);
            let full = asym::ed25519_from_seed(&seed)?;
            e.public_key = b64e(full.get(32..).unwrap_or_default());
            e.key = full.to_vec();
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
            use p256::pkcs8::DecodePrivateKey;
            if found != "*ecdsa.PrivateKey" {
                return Err(mismatch());
            }
            let c = kind.curve().unwrap_or(Curve::P256);
            let d = match c {
                Curve::P256 => p256::SecretKey::from_pkcs8_der(key).map(|k| k.to_bytes().to_vec()),
                Curve::P384 => p384::SecretKey::from_pkcs8_der(key).map(|k| k.to_bytes().to_vec()),
            }
            .map(Zeroizing::new)
            .map_err(|e| {
                format!(
                    "error parsing asymmetric key: {e} (not a {} key?)",
                    c.name()
                )
            })?;
            e.public_key = asym::ec_public_pem(c, &d)?;
            e.key = d.to_vec();
        }
        _ => {
            let bits = kind.rsa_bits().ok_or_else(mismatch)?;
            if found != "*rsa.PrivateKey" {
                return Err(mismatch());
            }
            let k = r::parse(key).map_err(|e| format!("error parsing asymmetric key: {e}"))?;
            if r::size(&k) != bits / 8 {
                return Err(format!(
                    "invalid key size: expected {} bytes, got {} bytes",
                    bits / 8,
                    r::size(&k)
                ));
            }
            e.public_key = r::public_pem(&k)?;
            e.key = r::to_pkcs8(&k)?.to_vec();
        }
    }
    Ok(e)
}

/// Vault's `import`: a new key whose first version is the caller's.
pub async fn import(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    if req.has("convergent_encryption")? {
        return Err(bad(
            "import cannot be used on keys with convergent encryption enabled",
        ));
    }
    let allow_rotation = req.bool_field("allow_rotation")?.unwrap_or(false);
    let auto = req.duration_field("auto_rotate_period")?.unwrap_or(0);
    if auto > 0 && !allow_rotation {
        return Err(bad(
            "allow_rotation must be set to true if auto-rotation is enabled",
        ));
    }
    if auto != 0 && auto < 3600 {
        return Err(bad(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    let type_name = req.str_field("type")?.unwrap_or_default();
    let kind = KeyType::parse(&type_name.to_ascii_lowercase())
        .ok_or_else(|| bad(format!("unknown key type: {type_name}")))?;
    let derived = req.bool_field("derived")?.unwrap_or(false);
    if derived && !kind.derivation() {
        return Err(bad(format!(
            "key derivation not supported for keys of type {}",
            kind.name()
        )));
    }
    if t.load(ctx, name).await?.is_some() {
        return Err(bad("the import path cannot be used with an existing key; use import-version to rotate an existing imported key"));
    }
    require_ciphertext(req, kind)?;
    let key = unwrap_target(t, ctx, req).await?;
    let entry = entry_from(kind, &key, ctx.now_nanos())
        .map_err(|e| bad(format!("error importing key: {e}")))?;
    let n = NewKey {
        kind,
        derived,
        convergent: false,
        exportable: req.bool_field("exportable")?.unwrap_or(false),
        allow_plaintext_backup: req.bool_field("allow_plaintext_backup")?.unwrap_or(false),
        auto_rotate_secs: auto,
        key_size: if kind == KeyType::Hmac { key.len() } else { 0 },
    };
    let mut p = Policy::empty(name, &n)?;
    p.imported = true;
    p.allow_imported_key_rotation = allow_rotation;
    p.latest_version = 1;
    p.archive_version = 1;
    p.keys.insert("1".into(), entry);
    let g = ctx.storage.lock(&policy_key(name)).await?;
    if t.load_fresh(ctx, name).await?.is_some() {
        return Err(bad("the import path cannot be used with an existing key; use import-version to rotate an existing imported key"));
    }
    t.store(&g, &p).await?;
    Ok(Response::empty())
}

/// Only wrapped private material is accepted; a bare public key is refused clearly.
fn require_ciphertext(req: &Request, kind: KeyType) -> ApiResult<()> {
    if req.has("ciphertext")? {
        return Ok(());
    }
    if !kind.signing() {
        return Err(bad("provided type does not support public_key import"));
    }
    Err(bad(
        "importing a public key alone (public_key) is not supported; send the wrapped private key as ciphertext",
    ))
}

/// Vault's `import_version`: the caller's material as a new version of an imported key.
pub async fn import_version(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = valid_name(req.cap("name"))?;
    let Some(p) = t.load(ctx, name).await? else {
        return Err(bad(format!(
            "no key found with name {name}; to import a new key, use the import/ endpoint"
        )));
    };
    check_importable(&p)?;
    require_ciphertext(req, p.kind)?;
    if let Some(v) = req.int_field("version")? {
        // Every stored version holds its private key (public-only imports are refused).
        if !p.kind.signing() {
            return Err(bad("provided type does not support importing key versions"));
        }
        p.entry(u64::try_from(v).unwrap_or(0))?;
        return Err(bad("private key imported, key version cannot be updated"));
    }
    let key = unwrap_target(t, ctx, req).await?;
    let entry = entry_from(p.kind, &key, ctx.now_nanos()).map_err(bad)?;
    let g = ctx.storage.lock(&policy_key(name)).await?;
    let Some(mut p) = t.load_fresh(ctx, name).await? else {
        return Err(bad(format!(
            "no key found with name {name}; to import a new key, use the import/ endpoint"
        )));
    };
    check_importable(&p)?;
    if p.kind == KeyType::Hmac && p.key_size != key.len() {
        p.key_size = key.len();
    }
    p.latest_version += 1;
    p.archive_version = p.latest_version;
    p.keys.insert(p.latest_version.to_string(), entry);
    if p.min_decryption_version == 0 {
        p.min_decryption_version = 1;
    }
    t.store(&g, &p).await?;
    Ok(Response::empty())
}

fn check_importable(p: &Policy) -> ApiResult<()> {
    if !p.imported {
        return Err(bad(
            "the import_version endpoint can only be used with an imported key",
        ));
    }
    if p.convergent_encryption {
        return Err(bad(
            "import_version cannot be used on keys with convergent encryption enabled",
        ));
    }
    Ok(())
}
