//! Key management: create, read, config, rotate, trim, delete, export, backup, restore, the
//! mount's `config/keys` and hourly auto-rotation. Every change is a read-modify-write of
//! the key's one storage entry under `View::lock`, so concurrent rotations (here or on
//! another node) never lose a version.

use airlock_logical::{ApiError, ApiResult, Ctx, Request, Response};
use serde_json::{json, Map, Value};

use super::asym;
use super::crypto::{self, b64e};
use super::policy::{KeyType, NewKey, OpInfo, Policy, HMAC_MAX, HMAC_MIN};
use super::{internal, policy_key, valid_name, Transit};

fn name(req: &Request) -> ApiResult<&str> {
    valid_name(req.cap("name"))
}

/// A read's parameter: the query string's (GET), else the body's.
fn query_or_field(req: &Request, k: &str) -> ApiResult<Option<String>> {
    match req.query(k) {
        Some(v) => Ok(Some(v.to_string())),
        None => req.str_field(k),
    }
}

fn with_warning(mut r: Response, w: Option<String>) -> Response {
    if let Some(w) = w {
        r.warnings.push(w);
    }
    r
}

fn key_response(p: &Policy) -> ApiResult<Response> {
    Ok(Response::data(p.read_json(&[])?))
}

pub async fn read(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = name(req)?;
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::not_found());
    };
    let context = match query_or_field(req, "context")?.filter(|c| !c.is_empty()) {
        Some(c) => crypto::b64d(&c)
            .map_err(|_| ApiError::bad_request("failed to base64-decode context"))?
            .to_vec(),
        None => Vec::new(),
    };
    Ok(Response::data(p.read_json(&context)?))
}

/// The settings of a new key, checked as Vault checks them.
pub fn new_key_settings(req: &Request) -> ApiResult<NewKey> {
    let derived = req.bool_field("derived")?.unwrap_or(false);
    let convergent = req.bool_field("convergent_encryption")?.unwrap_or(false);
    let auto = req.duration_field("auto_rotate_period")?.unwrap_or(0);
    if auto != 0 && auto < 3600 {
        return Err(ApiError::bad_request(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    if !derived && convergent {
        return Err(ApiError::bad_request(
            "convergent encryption requires derivation to be enabled",
        ));
    }
    let type_name = req.str_field("type")?.unwrap_or_default();
    let Some(kind) = KeyType::parse(&type_name) else {
        return Err(ApiError::bad_request(format!(
            "unknown key type {type_name}"
        )));
    };
    let key_size = req.int_field("key_size")?.unwrap_or(0);
    if key_size != 0 {
        if kind != KeyType::Hmac {
            return Err(ApiError::bad_request(format!(
                "key_size is not valid for algorithm {}",
                kind.name()
            )));
        }
        if key_size < HMAC_MIN as i64 || key_size > HMAC_MAX as i64 {
            return Err(ApiError::bad_request(format!(
                "invalid key_size {key_size}"
            )));
        }
    }
    Ok(NewKey {
        kind,
        derived,
        convergent,
        exportable: req.bool_field("exportable")?.unwrap_or(false),
        allow_plaintext_backup: req.bool_field("allow_plaintext_backup")?.unwrap_or(false),
        auto_rotate_secs: auto,
        key_size: key_size.max(0) as usize,
    })
}

/// The RSA key a new version of a `kind` key needs (PKCS#8 DER), generated on a blocking
/// thread: a 4096-bit key takes seconds, which must not stall an async worker.
pub async fn new_material(kind: KeyType) -> ApiResult<Option<zeroize::Zeroizing<Vec<u8>>>> {
    let Some(bits) = kind.rsa_bits() else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || super::rsa::generate(bits))
        .await
        .map_err(|e| internal(&format!("error generating key: {e}")))?
        .map(Some)
        .map_err(|e| internal(&format!("error generating key: {e}")))
}

/// Creates `name` unless it exists (then the existing key is returned unchanged, as Vault's
/// upsert does). `None`: it did not exist and `create` was false.
pub async fn upsert(
    t: &Transit,
    ctx: &Ctx,
    name: &str,
    n: Option<&NewKey>,
) -> ApiResult<Option<std::sync::Arc<Policy>>> {
    if let Some(p) = t.load(ctx, name).await? {
        return Ok(Some(p));
    }
    let Some(n) = n else {
        return Ok(None);
    };
    let material = new_material(n.kind).await?;
    let g = ctx.storage.lock(&policy_key(name)).await?;
    if t.load_fresh(ctx, name).await?.is_none() {
        let p = Policy::create(name, n, ctx.now_nanos(), material)?;
        t.store(&g, &p).await?;
    }
    drop(g);
    t.load(ctx, name).await
}

pub async fn write(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = name(req)?;
    let n = new_key_settings(req)?;
    match upsert(t, ctx, name, Some(&n)).await? {
        Some(p) => key_response(&p),
        None => Err(internal("error generating key: returned policy was nil")),
    }
}

pub async fn delete(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = name(req)?;
    let g = ctx.storage.lock(&policy_key(name)).await?;
    let Some(p) = t.load_fresh(ctx, name).await? else {
        return Err(ApiError::bad_request(format!(
            "error deleting policy {name}: could not delete key; not found"
        )));
    };
    if !p.deletion_allowed {
        return Err(ApiError::bad_request(format!(
            "error deleting policy {name}: deletion is not allowed for this key"
        )));
    }
    let r = g.delete(&policy_key(name)).await;
    t.forget(Some(name));
    r?;
    Ok(Response::empty())
}

pub async fn config(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = name(req)?;
    let g = ctx.storage.lock(&policy_key(name)).await?;
    let Some(mut p) = t.load_fresh(ctx, name).await? else {
        return Err(ApiError::bad_request(format!(
            "no existing key named {name} could be found"
        )));
    };
    let mut warning = None;
    let mut changed = false;
    if let Some(v) = req.int_field("min_decryption_version")? {
        if v < 0 {
            return Err(ApiError::bad_request(
                "min decryption version cannot be negative",
            ));
        }
        let v = if v == 0 {
            warning = Some("since Vault 0.3 (prior to the OpenBao fork), transit key numbering starts at 1; forcing minimum to 1".to_string());
            1
        } else {
            v as u64
        };
        if v != p.min_decryption_version {
            if v > p.latest_version {
                return Err(ApiError::bad_request(format!(
                    "cannot set min decryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            p.min_decryption_version = v;
            changed = true;
        }
    }
    if let Some(v) = req.int_field("min_encryption_version")? {
        if v < 0 {
            return Err(ApiError::bad_request(
                "min encryption version cannot be negative",
            ));
        }
        let v = v as u64;
        if v != p.min_encryption_version {
            if v > p.latest_version {
                return Err(ApiError::bad_request(format!(
                    "cannot set min encryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            p.min_encryption_version = v;
            changed = true;
        }
    }
    if p.min_encryption_version > 0 && p.min_encryption_version < p.min_decryption_version {
        return Err(ApiError::bad_request(format!(
            "cannot set min encryption/decryption values; min encryption version of {} must be greater than or equal to min decryption version of {}",
            p.min_encryption_version, p.min_decryption_version
        )));
    }
    if let Some(v) = req.bool_field("deletion_allowed")? {
        changed |= v != p.deletion_allowed;
        p.deletion_allowed = v;
    }
    // Exportable and plaintext backup can be turned on, never off.
    if req.bool_field("exportable")? == Some(true) && !p.exportable {
        p.exportable = true;
        changed = true;
    }
    if req.bool_field("allow_plaintext_backup")? == Some(true) && !p.allow_plaintext_backup {
        p.allow_plaintext_backup = true;
        changed = true;
    }
    if let Some(secs) = req.duration_field("auto_rotate_period")? {
        if secs != 0 && secs < 3600 {
            return Err(ApiError::bad_request(
                "auto rotate period must be 0 to disable or at least an hour",
            ));
        }
        let ns = secs.saturating_mul(1_000_000_000);
        changed |= ns != p.auto_rotate_period;
        p.auto_rotate_period = ns;
    }
    if !changed {
        return Ok(with_warning(key_response(&p)?, warning));
    }
    if p.min_available_version > p.min_encryption_version {
        return Err(ApiError::bad_request(
            "min encryption version should not be less than min available version",
        ));
    }
    if p.min_available_version > p.min_decryption_version {
        return Err(ApiError::bad_request(
            "min decryption version should not be less then min available version",
        ));
    }
    t.store(&g, &p).await?;
    Ok(with_warning(key_response(&p)?, warning))
}

pub async fn rotate(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = name(req)?;
    let material = match t.load(ctx, name).await? {
        Some(p) if !p.imported || p.allow_imported_key_rotation => new_material(p.kind).await?,
        _ => None,
    };
    let g = ctx.storage.lock(&policy_key(name)).await?;
    let Some(mut p) = t.load_fresh(ctx, name).await? else {
        return Err(ApiError::bad_request("key not found"));
    };
    if p.imported && !p.allow_imported_key_rotation {
        return Err(internal(&format!(
            "imported key {name} does not allow rotation within Vault"
        )));
    }
    p.rotate(ctx.now_nanos(), material)?;
    p.imported = false;
    t.store(&g, &p).await?;
    key_response(&p)
}

pub async fn trim(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = name(req)?;
    let g = ctx.storage.lock(&policy_key(name)).await?;
    let Some(mut p) = t.load_fresh(ctx, name).await? else {
        return Err(ApiError::bad_request("invalid key name"));
    };
    let Some(min) = req.int_field("min_available_version")? else {
        return Err(ApiError::bad_request("missing min_available_version"));
    };
    let bad = |m: &str| Err(ApiError::bad_request(m));
    if min < p.min_available_version as i64 {
        return bad("minimum available version cannot be decremented");
    }
    if p.min_encryption_version == 0 {
        return bad(
            "minimum available version cannot be set when minimum encryption version is not set",
        );
    }
    if p.min_decryption_version == 0 {
        return bad(
            "minimum available version cannot be set when minimum decryption version is not set",
        );
    }
    if min > p.min_encryption_version as i64 {
        return bad("minimum available version cannot be greater than minmum encryption version");
    }
    if min > p.min_decryption_version as i64 {
        return bad("minimum available version cannot be greater than minimum decryption version");
    }
    if min <= 0 {
        return bad("minimum available version should be positive");
    }
    let min = min as u64;
    p.min_available_version = min;
    p.archive_min_version = min;
    p.keys
        .retain(|k, _| k.parse::<u64>().is_ok_and(|v| v >= min));
    t.store(&g, &p).await?;
    key_response(&p)
}

const EXPORT_TYPES: &[&str] = &[
    "encryption-key",
    "signing-key",
    "hmac-key",
    "public-key",
    "certificate-chain",
];

pub async fn export(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let kind = req.cap("type");
    let name = name(req)?;
    let version = req.cap("version");
    let format = query_or_field(req, "format")?.unwrap_or_default();
    if !EXPORT_TYPES.contains(&kind) {
        return Err(ApiError::bad_request(format!(
            "invalid export type: {kind}"
        )));
    }
    if !["", "raw", "der", "pem"].contains(&format.as_str()) {
        return Err(ApiError::bad_request(format!("invalid format: {format}")));
    }
    let Some(p) = t.load(ctx, name).await? else {
        return Err(ApiError::not_found());
    };
    let k = p.kind;
    if !p.exportable && kind != "public-key" && kind != "certificate-chain" {
        return Err(ApiError::bad_request(
            "private key material is not exportable",
        ));
    }
    match kind {
        "encryption-key" if !k.encryption() => {
            return Err(ApiError::bad_request(
                "encryption not supported for the key",
            ))
        }
        "signing-key" if !k.signing() => {
            return Err(ApiError::bad_request("signing not supported for the key"))
        }
        "certificate-chain" if !k.signing() => {
            return Err(ApiError::bad_request(
                "certificate chain not supported for keys that do not support signing",
            ))
        }
        _ => {}
    }
    let mut out = Map::new();
    let versions: Vec<u64> = if version.is_empty() {
        p.visible().map(|(v, _)| v).collect()
    } else {
        let v = if version == "latest" {
            p.latest_version
        } else {
            version
                .strip_prefix('v')
                .unwrap_or(version)
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("invalid key version"))?
        };
        if v < p.min_decryption_version {
            return Err(ApiError::bad_request(
                "version for export is below minimum decryption version",
            ));
        }
        if p.entry(v).is_err() {
            return Err(ApiError::bad_request(
                "version does not exist or cannot be found",
            ));
        }
        vec![v]
    };
    for v in versions {
        out.insert(
            v.to_string(),
            Value::String(export_one(&p, v, kind, &format)?),
        );
    }
    Ok(Response::data(
        json!({"name": p.name, "type": k.name(), "keys": out}),
    ))
}

fn export_one(p: &Policy, v: u64, kind: &str, format: &str) -> ApiResult<String> {
    let e = p.entry(v)?;
    let k = p.kind;
    let symmetric_format = || {
        if format == "der" || format == "pem" {
            Err(internal(
                "unknown format for HMAC key; supported values are `` or `raw`",
            ))
        } else {
            Ok(())
        }
    };
    let ec_format = || {
        if format == "raw" {
            Err(internal(
                "unknown key format for ec key; supported values are ``, `der`, or `pem`",
            ))
        } else {
            Ok(())
        }
    };
    let unknown = || {
        internal(&format!(
            "unknown key type {} for export type {kind}",
            k.name()
        ))
    };
    if k.rsa_bits().is_some() && kind != "hmac-key" && kind != "certificate-chain" {
        return export_rsa(e, kind, format);
    }
    match kind {
        "hmac-key" => {
            symmetric_format()?;
            Ok(b64e(if k == KeyType::Hmac {
                &e.key
            } else {
                &e.hmac_key
            }))
        }
        "encryption-key" => {
            symmetric_format()?;
            Ok(b64e(&e.key))
        }
        "signing-key" => match k.curve() {
            Some(c) => {
                ec_format()?;
                let (der, label) = if format.is_empty() {
                    (asym::ec_sec1_der(c, &e.key), "EC PRIVATE KEY")
                } else {
                    (asym::ec_pkcs8_der(c, &e.key), "PRIVATE KEY")
                };
                let der = der.map_err(|m| internal(&m))?;
                Ok(asym::der_or_pem(&der, label, format))
            }
            None if k == KeyType::Ed25519 => {
                asym::ed25519_private_export(&e.key, format).map_err(|m| internal(&m))
            }
            None => Err(unknown()),
        },
        "public-key" => match k.curve() {
            Some(c) => {
                ec_format()?;
                let der = asym::ec_public_der(c, &e.key).map_err(|m| internal(&m))?;
                Ok(asym::der_or_pem(&der, "PUBLIC KEY", format))
            }
            None if k == KeyType::Ed25519 => {
                let public = crypto::b64d(e.public_key.trim()).map_err(|m| internal(&m))?;
                Ok(asym::ed25519_public_export(&public, format))
            }
            None => Err(unknown()),
        },
        _ => Err(internal(
            "selected key version does not have a certificate chain imported",
        )),
    }
}

/// Vault's RSA forms: private keys as PKCS#1 PEM by default, PKCS#8 for `der`/`pem`; public
/// keys as `SubjectPublicKeyInfo`; PEM with its final newline, as Vault leaves it.
fn export_rsa(e: &super::policy::KeyEntry, kind: &str, format: &str) -> ApiResult<String> {
    use super::rsa as r;
    if format == "raw" {
        return Err(internal(
            "unknown key format for rsa key; supported values are ``, `der`, or `pem`",
        ));
    }
    let k = r::parse(&e.key).map_err(|m| internal(&m))?;
    let (der, label) = match (kind, format) {
        ("public-key", _) => (
            zeroize::Zeroizing::new(r::public_der(&k).map_err(|m| internal(&m))?),
            "PUBLIC KEY",
        ),
        (_, "") => (
            r::to_pkcs1(&k).map_err(|m| internal(&m))?,
            "RSA PRIVATE KEY",
        ),
        _ => (r::to_pkcs8(&k).map_err(|m| internal(&m))?, "PRIVATE KEY"),
    };
    Ok(if format == "der" {
        b64e(&der)
    } else {
        crypto::pem(label, &der)
    })
}

pub async fn backup(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let name = name(req)?;
    let g = ctx.storage.lock(&policy_key(name)).await?;
    let Some(mut p) = t.load_fresh(ctx, name).await? else {
        return Err(internal(&format!("key \"{name}\" not found")));
    };
    if !p.exportable {
        return Err(internal("exporting is disallowed on the policy"));
    }
    if !p.allow_plaintext_backup {
        return Err(internal("plaintext backup is disallowed on the policy"));
    }
    p.backup_info = Some(OpInfo {
        time: airlock_logical::util::rfc3339_nanos(ctx.now_nanos()),
        version: p.latest_version,
    });
    t.store(&g, &p).await?;
    Ok(Response::data(json!({"backup": p.backup_blob()?})))
}

pub async fn restore(t: &Transit, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let blob = req.str_field("backup")?.unwrap_or_default();
    let force = req.bool_field("force")?.unwrap_or(false);
    if blob.is_empty() {
        return Err(ApiError::bad_request("'backup' must be supplied"));
    }
    let mut p = Policy::from_backup(&blob)?;
    let target = req.cap("name");
    if !target.is_empty() {
        p.name = valid_name(target)?.to_string();
    }
    let name = valid_name(&p.name)
        .map_err(|_| ApiError::bad_request("invalid backup: invalid key name"))?
        .to_string();
    let g = ctx.storage.lock(&policy_key(&name)).await?;
    if !force && t.load_fresh(ctx, &name).await?.is_some() {
        return Err(internal(&format!("key \"{name}\" already exists")));
    }
    p.restore_info = Some(OpInfo {
        time: airlock_logical::util::rfc3339_nanos(ctx.now_nanos()),
        version: p.latest_version,
    });
    t.store(&g, &p).await?;
    Ok(Response::empty())
}

const CONFIG_KEYS: &str = "config/keys";

/// Whether `encrypt` may create missing keys (`config/keys` `disable_upsert`).
pub async fn upsert_disabled(ctx: &Ctx) -> ApiResult<bool> {
    let v: Option<Value> = ctx.storage.get_json(CONFIG_KEYS).await?;
    Ok(v.and_then(|v| v["disable_upsert"].as_bool())
        .unwrap_or(false))
}

pub async fn config_keys_read(ctx: &Ctx) -> ApiResult<Response> {
    Ok(Response::data(
        json!({"disable_upsert": upsert_disabled(ctx).await?}),
    ))
}

pub async fn config_keys_write(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let g = ctx.storage.lock(CONFIG_KEYS).await?;
    let mut cur = upsert_disabled(ctx).await?;
    if let Some(v) = req.bool_field("disable_upsert")? {
        cur = v;
    }
    g.put_json(CONFIG_KEYS, &json!({"disable_upsert": cur}))
        .await?;
    Ok(Response::data(json!({"disable_upsert": cur})))
}

/// Rotates the keys whose `auto_rotate_period` has passed since their latest version
/// (looked at once an hour, as Vault does).
pub async fn auto_rotate(t: &Transit, ctx: &Ctx) -> ApiResult<()> {
    use std::sync::atomic::Ordering;
    let now = ctx.now_unix();
    if now < t.rotate_after.load(Ordering::SeqCst) {
        return Ok(());
    }
    t.rotate_after.store(now + 3600, Ordering::SeqCst);
    for name in ctx.storage.list("policy/").await? {
        if name.ends_with('/') {
            continue; // `import/`: the mount's wrapping key, never rotated.
        }
        // Generated before the lock (an RSA key takes seconds); unused if not due.
        let material = match t.load(ctx, &name).await? {
            Some(p) if p.auto_rotate_period > 0 => new_material(p.kind).await?,
            _ => continue,
        };
        let g = ctx.storage.lock(&policy_key(&name)).await?;
        let Some(mut p) = t.load_fresh(ctx, &name).await? else {
            continue;
        };
        if p.auto_rotate_period <= 0 || (p.imported && !p.allow_imported_key_rotation) {
            continue;
        }
        let created = p
            .entry(p.latest_version)
            .ok()
            .and_then(|e| airlock_logical::util::parse_rfc3339_nanos(&e.time))
            .unwrap_or(0);
        if ctx.now_nanos() > created + i128::from(p.auto_rotate_period) {
            p.rotate(ctx.now_nanos(), material)?;
            t.store(&g, &p).await?;
        }
    }
    Ok(())
}
