//! Making certificates: `issue/<role>` (key generated here), `sign/<role>` (key from a
//! CSR), `sign-verbatim`, `root/sign-intermediate`, and the CA's own lifecycle —
//! `root/generate/*`, `intermediate/generate/*`, `intermediate/set-signed`, `config/ca`.
//! Every check runs before anything is written; a certificate and its record are stored in
//! one commit, under a lock on its serial so no two certificates share one.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::keys::{self, KeyType, PrivateKey};
use super::roles::{self, Role};
use super::store::{self, Ca, CertRecord, StoredCa, StoredKey};
use super::x509::{self, Issuer, Sans, Template};
use airlock_logical::util::{new_uuid, rfc3339_nanos};
use airlock_logical::{ApiError, ApiResult, BarrierOp, Ctx, Request, Response};

const AIA_WARNING: &str = "This mount hasn't configured any authority information access (AIA) fields; this may make it harder for systems to find missing certificates in the chain or to validate revocation status of certificates. Consider updating /config/urls or the newly generated issuer with this information.";

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// The CSR in a request (PEM), parsed and signature-checked.
fn csr_field(req: &Request) -> ApiResult<x509::Csr> {
    let text = req.str_field("csr")?.unwrap_or_default();
    let blocks = keys::parse_pem(&text)
        .map_err(|e| bad(format!("certificate request could not be parsed: {e}")))?;
    let der_bytes = blocks
        .into_iter()
        .find(|(l, _)| l == "CERTIFICATE REQUEST" || l == "NEW CERTIFICATE REQUEST")
        .map(|(_, d)| d)
        .ok_or_else(|| bad("csr contains no data"))?;
    x509::parse_csr(&der_bytes).map_err(bad)
}

/// `alt_names`: DNS names and e-mail addresses.
fn alt_names(req: &Request, sans: &mut Sans) -> ApiResult<()> {
    for n in req.str_list_field("alt_names")?.unwrap_or_default() {
        if n.contains('@') {
            sans.email.push(n);
        } else {
            sans.dns.push(n);
        }
    }
    Ok(())
}

fn ip_sans(req: &Request) -> ApiResult<Vec<IpAddr>> {
    req.str_list_field("ip_sans")?
        .unwrap_or_default()
        .iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| bad(format!("the value {s:?} is not a valid IP address")))
        })
        .collect()
}

fn uri_sans(req: &Request) -> ApiResult<Vec<String>> {
    Ok(req.str_list_field("uri_sans")?.unwrap_or_default())
}

fn requested_ttl(req: &Request) -> ApiResult<i64> {
    let ttl = req.duration_field("ttl")?.unwrap_or(0);
    if ttl < 0 {
        return Err(bad("ttl must not be negative"));
    }
    Ok(ttl)
}

/// Checks names, IPs and URIs against the role (Vault's wording).
fn check_role_names(role: &Role, cn: &str, sans: &Sans) -> ApiResult<()> {
    if !cn.is_empty() && roles::first_disallowed(role, &[cn.to_string()]).is_some() {
        return Err(bad(format!("common name {cn} not allowed by this role")));
    }
    let names: Vec<String> = sans.dns.iter().chain(sans.email.iter()).cloned().collect();
    if let Some(n) = roles::first_disallowed(role, &names) {
        return Err(bad(format!(
            "subject alternate name {n} not allowed by this role"
        )));
    }
    if let Some(ip) = sans.ip.first() {
        if !role.allow_ip_sans {
            return Err(bad(format!(
                "IP Subject Alternative Names are not allowed in this role, but was provided {ip}"
            )));
        }
    }
    if !sans.uri.is_empty() {
        if role.allowed_uri_sans.is_empty() {
            return Err(bad(
                "URI Subject Alternative Names are not allowed in this role, but were provided via the API",
            ));
        }
        for u in &sans.uri {
            if !role.allowed_uri_sans.iter().any(|p| roles::glob(p, u)) {
                return Err(bad(format!(
                    "URI Subject Alternative Names {u} not allowed by this role"
                )));
            }
        }
    }
    Ok(())
}

/// The CN joins the DNS (or e-mail) SANs unless excluded.
fn add_cn(req: &Request, cn: &str, sans: &mut Sans) -> ApiResult<()> {
    if cn.is_empty() || req.bool_field("exclude_cn_from_sans")?.unwrap_or(false) {
        return Ok(());
    }
    if cn.contains('@') {
        if !sans.email.iter().any(|e| e == cn) {
            sans.email.insert(0, cn.to_string());
        }
    } else if let Ok(ip) = cn.parse::<IpAddr>() {
        if !sans.ip.contains(&ip) {
            sans.ip.insert(0, ip);
        }
    } else if !sans.dns.iter().any(|d| d == cn) {
        sans.dns.insert(0, cn.to_string());
    }
    Ok(())
}

/// notBefore/notAfter for `ttl`, refused past the CA's own expiry.
fn validity(ctx: &Ctx, ca: Option<&Ca>, ttl: i64, backdate: i64) -> ApiResult<(i64, i64)> {
    let now = ctx.now_unix();
    let not_after = now.saturating_add(ttl);
    if let Some(ca) = ca {
        if not_after > ca.info.not_after {
            return Err(bad(format!(
                "cannot satisfy request, as TTL would result in notAfter of {} that is beyond the expiration of the CA certificate at {}",
                rfc3339_nanos(i128::from(not_after) * 1_000_000_000),
                rfc3339_nanos(i128::from(ca.info.not_after) * 1_000_000_000)
            )));
        }
    }
    Ok((now - backdate.max(0), not_after))
}

/// Formats a certificate response (`format`: pem, pem_bundle or der).
fn cert_output(
    req: &Request,
    cert_der: &[u8],
    ca: &Ca,
    data: &mut Map<String, Value>,
) -> ApiResult<()> {
    let format = req.str_field("format")?.unwrap_or_else(|| "pem".into());
    let chain = ca.full_chain();
    let (cert, issuing, chain_out) = match format.as_str() {
        "pem" => (store::cert_pem(cert_der), ca.pem.clone(), chain),
        "pem_bundle" => (
            format!("{}\n{}", store::cert_pem(cert_der), ca.pem),
            ca.pem.clone(),
            chain,
        ),
        "der" => {
            let ders: Vec<String> = chain
                .iter()
                .filter_map(|p| store::first_cert_der(p).ok())
                .map(|d| store::b64(&d))
                .collect();
            (store::b64(cert_der), store::b64(&ca.der), ders)
        }
        other => return Err(bad(format!("unsupported format argument: {other}"))),
    };
    data.insert("certificate".into(), cert.into());
    data.insert("issuing_ca".into(), issuing.into());
    data.insert("ca_chain".into(), json!(chain_out));
    Ok(())
}

/// Signs `t` with the CA and stores it (unless `no_store`); the serial is locked so that
/// no other certificate takes it.
async fn sign_and_store(
    ctx: &Ctx,
    ca: &Ca,
    t: &Template<'_>,
    no_store: bool,
) -> ApiResult<(Vec<u8>, String)> {
    let serial = x509::serial_string(t.serial);
    let cert = x509::build_cert(t, &ca.issuer())?;
    if !no_store {
        let key = format!("certs/{}", store::storage_serial(&serial));
        let lock = ctx.storage.lock(&key).await?;
        if ctx.storage.exists(&key).await? {
            return Err(ApiError::conflict());
        }
        let rec = CertRecord {
            certificate: store::cert_pem(&cert),
            issuer_id: ca.issuer_id.clone(),
            not_after: t.not_after,
            revoked_at: 0,
        };
        lock.commit(vec![store::record_op(&serial, &rec)?]).await?;
    }
    Ok((cert, serial))
}

/// `issue/<role>` and `sign/<role>`.
pub async fn issue_or_sign(ctx: &Ctx, req: &Request, sign: bool) -> ApiResult<Response> {
    let name = req.cap("role");
    let role: Role = ctx
        .storage
        .get_json(&format!("roles/{name}"))
        .await?
        .ok_or_else(|| bad(format!("unknown role: {name}")))?;
    let mut warnings = Vec::new();
    let (csr, new_key) = if sign {
        let csr = csr_field(req)?;
        check_csr_key(&role, &csr.spki)?;
        (Some(csr), None)
    } else {
        let asked = req.has("key_type")? || req.has("key_bits")?;
        let (kind, bits) = if role.key_type == "any" {
            let kt = req.str_field("key_type")?.unwrap_or_default();
            let kb = req.int_field("key_bits")?.unwrap_or(0);
            let wrap = |e: ApiError| {
                bad(airlock_logical::error::multierror(&format!(
                    "failed to validate role: {}",
                    e.errors.first().cloned().unwrap_or_default()
                )))
            };
            if kt.is_empty() || kt == "any" {
                return Err(bad("role key type \"any\" not allowed for issuing certificates without providing key_type and/or key_bits request parameters"));
            }
            let kind = KeyType::parse(&kt).map_err(wrap)?;
            (kind, keys::validate_bits(kind, kb).map_err(wrap)?)
        } else {
            if asked {
                warnings.push(
                    "parameters key_type and key_bits ignored as role had specific values"
                        .to_string(),
                );
            }
            let kind = KeyType::parse(&role.key_type)?;
            (kind, keys::validate_bits(kind, role.key_bits)?)
        };
        (None, Some((kind, bits)))
    };
    // Names.
    let mut sans = Sans::default();
    let cn = match (&csr, role.use_csr_common_name) {
        (Some(c), true) => c.cn.clone().unwrap_or_default(),
        _ => req.str_field("common_name")?.unwrap_or_default(),
    };
    match (&csr, role.use_csr_sans) {
        (Some(c), true) => sans = c.sans.clone(),
        _ => {
            alt_names(req, &mut sans)?;
            sans.ip = ip_sans(req)?;
            sans.uri = uri_sans(req)?;
        }
    }
    if cn.is_empty() && role.require_cn {
        return Err(bad("the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false"));
    }
    add_cn(req, &cn, &mut sans)?;
    check_role_names(&role, &cn, &sans)?;
    let (ttl, w) = roles::effective_ttl(
        requested_ttl(req)?,
        role.ttl,
        role.max_ttl,
        ctx.default_lease_ttl(),
        ctx.max_validity(),
    );
    warnings.extend(w);
    let ca = store::require_ca(ctx).await?;
    let (not_before, not_after) = validity(ctx, Some(&ca), ttl, role.not_before_duration)?;
    // Only now, with every check passed, is a key generated.
    let key = match new_key {
        Some((kind, bits)) => Some(PrivateKey::generate(kind, bits)?),
        None => None,
    };
    let spki = match (&key, &csr) {
        (Some(k), _) => k.spki()?,
        (None, Some(c)) => c.spki.clone(),
        (None, None) => return Err(ApiError::internal(&"no key")),
    };
    let serial = x509::new_serial();
    let t = Template {
        serial: &serial,
        subject: x509::name_cn(&cn),
        spki: &spki,
        not_before,
        not_after,
        sans,
        ca: None,
        server: role.server_flag,
        client: role.client_flag,
        eku: role.extra_ekus()?,
    };
    let (cert, serial) = sign_and_store(ctx, &ca, &t, role.no_store).await?;
    let mut data = Map::new();
    cert_output(req, &cert, &ca, &mut data)?;
    data.insert("serial_number".into(), serial.into());
    data.insert("expiration".into(), not_after.into());
    data.insert("not_before".into(), not_before.into());
    if let Some(k) = key {
        data.insert("private_key".into(), k.to_pem()?.as_str().into());
        data.insert("private_key_type".into(), k.kind.as_str().into());
    }
    let mut r = Response::data(Value::Object(data));
    r.warnings = warnings;
    Ok(r)
}

/// A CSR's key must be of the role's type and size.
fn check_csr_key(role: &Role, spki: &[u8]) -> ApiResult<()> {
    let (kind, bits) = keys::spki_kind(spki)
        .map_err(|e| bad(format!("certificate request has an unusable key: {e}")))?;
    if role.key_type == "any" {
        return Ok(());
    }
    if role.key_type != kind.as_str() {
        return Err(bad(format!("role requires keys of type {}", role.key_type)));
    }
    let want = role.key_bits;
    match kind {
        KeyType::Rsa if i64::from(bits) < want => Err(bad(format!(
            "role requires a minimum of {want} bits for RSA keys, but CSR's key has {bits} bits"
        ))),
        KeyType::Ec if want != 0 && i64::from(bits) != want => Err(bad(format!(
            "role requires a key of {want} bits for EC keys, but CSR's key has {bits} bits"
        ))),
        _ => Ok(()),
    }
}

/// `sign-verbatim` (and `sign-verbatim/<role>`): the CSR's subject and SANs as they are.
pub async fn sign_verbatim(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let csr = csr_field(req)?;
    let name = req.cap("role");
    let role = if name.is_empty() {
        Role::default()
    } else {
        ctx.storage
            .get_json(&format!("roles/{name}"))
            .await?
            .ok_or_else(|| bad(format!("unknown role: {name}")))?
    };
    let (ttl, w) = roles::effective_ttl(
        requested_ttl(req)?,
        role.ttl,
        role.max_ttl,
        ctx.default_lease_ttl(),
        ctx.max_validity(),
    );
    let ca = store::require_ca(ctx).await?;
    let (not_before, not_after) = validity(ctx, Some(&ca), ttl, role.not_before_duration)?;
    let serial = x509::new_serial();
    let t = Template {
        serial: &serial,
        subject: csr.subject.clone(),
        spki: &csr.spki,
        not_before,
        not_after,
        sans: csr.sans.clone(),
        ca: None,
        server: true,
        client: true,
        eku: role.extra_ekus()?,
    };
    let (cert, serial) = sign_and_store(ctx, &ca, &t, role.no_store).await?;
    let mut data = Map::new();
    cert_output(req, &cert, &ca, &mut data)?;
    data.insert("serial_number".into(), serial.into());
    data.insert("expiration".into(), not_after.into());
    data.insert("not_before".into(), not_before.into());
    let mut r = Response::data(Value::Object(data));
    r.warnings.extend(w);
    Ok(r)
}

/// `root/sign-intermediate`: a CA certificate for a CSR.
pub async fn sign_intermediate(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let csr = csr_field(req)?;
    let use_csr = req.bool_field("use_csr_values")?.unwrap_or(false);
    let mut sans = Sans::default();
    let cn = if use_csr {
        sans = csr.sans.clone();
        csr.cn.clone().unwrap_or_default()
    } else {
        alt_names(req, &mut sans)?;
        sans.ip = ip_sans(req)?;
        sans.uri = uri_sans(req)?;
        req.str_field("common_name")?.unwrap_or_default()
    };
    if cn.is_empty() {
        return Err(bad("the common_name field is required"));
    }
    add_cn(req, &cn, &mut sans)?;
    let (ttl, w) = roles::effective_ttl(
        requested_ttl(req)?,
        0,
        0,
        ctx.default_lease_ttl(),
        ctx.max_validity(),
    );
    let ca = store::require_ca(ctx).await?;
    let (not_before, not_after) = validity(ctx, Some(&ca), ttl, 30)?;
    let serial = x509::new_serial();
    let t = Template {
        serial: &serial,
        subject: if use_csr {
            csr.subject.clone()
        } else {
            x509::name_cn(&cn)
        },
        spki: &csr.spki,
        not_before,
        not_after,
        sans,
        ca: Some(req.int_field("max_path_length")?.unwrap_or(-1)),
        server: false,
        client: false,
        eku: Vec::new(),
    };
    let (cert, serial) = sign_and_store(ctx, &ca, &t, false).await?;
    let mut data = Map::new();
    cert_output(req, &cert, &ca, &mut data)?;
    data.insert("serial_number".into(), serial.into());
    data.insert("expiration".into(), not_after.into());
    let mut r = Response::data(Value::Object(data));
    r.warnings.extend(w);
    r.warnings.push(AIA_WARNING.into());
    Ok(r)
}

fn key_request(req: &Request) -> ApiResult<(KeyType, u32)> {
    let kind = KeyType::parse(&req.str_field("key_type")?.unwrap_or_else(|| "rsa".into()))?;
    let bits = keys::validate_bits(kind, req.int_field("key_bits")?.unwrap_or(0))?;
    Ok((kind, bits))
}

fn exported(req: &Request) -> ApiResult<bool> {
    match req.cap("exported") {
        "exported" => Ok(true),
        "internal" => Ok(false),
        other => Err(bad(format!(
            "invalid type {other:?}: expected \"exported\" or \"internal\""
        ))),
    }
}

/// `root/generate/<internal|exported>`: a self-signed CA, which becomes the mount's CA.
pub async fn root_generate(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let export = exported(req)?;
    let (kind, bits) = key_request(req)?;
    let cn = req.str_field("common_name")?.unwrap_or_default();
    if cn.is_empty() {
        return Err(bad("the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false"));
    }
    let mut sans = Sans::default();
    alt_names(req, &mut sans)?;
    sans.ip = ip_sans(req)?;
    sans.uri = uri_sans(req)?;
    add_cn(req, &cn, &mut sans)?;
    let (ttl, w) = roles::effective_ttl(
        requested_ttl(req)?,
        0,
        0,
        ctx.default_lease_ttl(),
        ctx.max_validity(),
    );
    let mut warnings: Vec<String> = w.into_iter().collect();
    let (not_before, not_after) = validity(ctx, None, ttl, 30)?;
    let key = PrivateKey::generate(kind, bits)?;
    let spki = key.spki()?;
    let ski = x509::key_id(&spki).map_err(|e| ApiError::internal(&e.0))?;
    let subject = x509::name_cn(&cn);
    let serial = x509::new_serial();
    let t = Template {
        serial: &serial,
        subject: subject.clone(),
        spki: &spki,
        not_before,
        not_after,
        sans,
        ca: Some(req.int_field("max_path_length")?.unwrap_or(-1)),
        server: false,
        client: false,
        eku: Vec::new(),
    };
    let cert = x509::build_cert(
        &t,
        &Issuer {
            subject: &subject,
            key_id: &ski,
            key: &key,
        },
    )?;
    let pem = store::cert_pem(&cert);
    let issuer_name = req.str_field("issuer_name")?.unwrap_or_default();
    let stored = StoredCa {
        certificate: pem.clone(),
        chain: Vec::new(),
        key: store::key_to_stored(&key),
        issuer_id: new_uuid(),
        key_id: new_uuid(),
        issuer_name: issuer_name.clone(),
    };
    let serial_s = x509::serial_string(&serial);
    let (issuer_id, key_id) = (stored.issuer_id.clone(), stored.key_id.clone());
    install_ca(ctx, &stored, &serial_s, not_after).await?;
    let mut data = json!({
        "certificate": pem, "issuing_ca": pem, "serial_number": serial_s,
        "expiration": not_after, "issuer_id": issuer_id, "issuer_name": issuer_name,
        "key_id": key_id, "key_name": "",
    });
    if export {
        data["private_key"] = key.to_pem()?.as_str().into();
        data["private_key_type"] = kind.as_str().into();
    }
    warnings.push(AIA_WARNING.into());
    let mut r = Response::data(data);
    r.warnings = warnings;
    Ok(r)
}

/// Stores a CA (replacing any), its own certificate record and a fresh CRL, in one commit.
async fn install_ca(ctx: &Ctx, stored: &StoredCa, serial: &str, not_after: i64) -> ApiResult<()> {
    let lock = ctx.storage.lock(store::CA_KEY).await?;
    let b =
        zeroize::Zeroizing::new(serde_json::to_vec(stored).map_err(|e| ApiError::internal(&e))?);
    let der = store::first_cert_der(&stored.certificate)?;
    let info = x509::parse_cert(&der).map_err(|e| ApiError::internal(&e.0))?;
    let key = PrivateKey::from_pkcs8(&base64_decode(&stored.key)?)?;
    let ca = Ca {
        pem: stored.certificate.clone(),
        der,
        kid: info.key_id(),
        info,
        chain: stored.chain.clone(),
        key,
        issuer_id: stored.issuer_id.clone(),
    };
    let (_, crl_op) = store::crl_ops(ctx, &ca, None, &[]).await?;
    let rec = CertRecord {
        certificate: stored.certificate.clone(),
        issuer_id: stored.issuer_id.clone(),
        not_after,
        revoked_at: 0,
    };
    lock.commit(vec![
        BarrierOp::Put(store::CA_KEY.into(), b.to_vec()),
        store::record_op(serial, &rec)?,
        crl_op,
    ])
    .await
}

fn base64_decode(s: &str) -> ApiResult<zeroize::Zeroizing<Vec<u8>>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| ApiError::internal(&e))
}

/// `intermediate/generate/<internal|exported>`: a key and a CSR for it; the key waits
/// for `intermediate/set-signed`.
pub async fn intermediate_generate(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let export = exported(req)?;
    let (kind, bits) = key_request(req)?;
    let cn = req.str_field("common_name")?.unwrap_or_default();
    let mut sans = Sans::default();
    alt_names(req, &mut sans)?;
    sans.ip = ip_sans(req)?;
    sans.uri = uri_sans(req)?;
    add_cn(req, &cn, &mut sans)?;
    let key = PrivateKey::generate(kind, bits)?;
    let csr = x509::build_csr(&cn, &sans, &key)?;
    let stored = StoredKey {
        key: store::key_to_stored(&key),
        key_id: new_uuid(),
    };
    ctx.storage.put_json(store::PENDING_KEY, &stored).await?;
    let mut data = json!({
        "csr": keys::pem("CERTIFICATE REQUEST", &csr).as_str(),
        "key_id": stored.key_id,
    });
    if export {
        data["private_key"] = key.to_pem()?.as_str().into();
        data["private_key_type"] = kind.as_str().into();
    }
    let mut r = Response::data(data);
    r.warnings.push(format!("{AIA_WARNING} Since this certificate is an intermediate, it might be useful to regenerate this certificate after fixing this problem for the root mount."));
    Ok(r)
}

/// Splits a PEM bundle into certificates (DER) and at most one key.
fn bundle(text: &str) -> ApiResult<(Vec<Vec<u8>>, Option<PrivateKey>)> {
    if text.trim().len() < 10 {
        return Err(bad("provided data for import was too short; perhaps a path was passed to the API rather than the contents of a PEM file"));
    }
    let blocks =
        keys::parse_pem(text).map_err(|e| bad(format!("error parsing PEM bundle: {e}")))?;
    let mut certs = Vec::new();
    let mut key = None;
    for (label, d) in blocks {
        if label == "CERTIFICATE" {
            x509::parse_cert(&d).map_err(|e| bad(format!("error parsing certificate: {}", e.0)))?;
            certs.push(d.to_vec());
        } else if label.ends_with("PRIVATE KEY") {
            if key.is_some() {
                return Err(bad("the PEM bundle holds more than one private key"));
            }
            key = Some(PrivateKey::from_pem_block(&label, &d)?);
        }
    }
    if certs.is_empty() && key.is_none() {
        return Err(bad("no data found in PEM block"));
    }
    Ok((certs, key))
}

/// Installs `certs[0]` with `key` as the CA, after checking they belong together.
async fn import(
    ctx: &Ctx,
    certs: Vec<Vec<u8>>,
    key: PrivateKey,
    key_id: Option<String>,
) -> ApiResult<Response> {
    let first = certs
        .first()
        .ok_or_else(|| bad("no certificate found in the PEM bundle"))?;
    let info =
        x509::parse_cert(first).map_err(|e| bad(format!("error parsing certificate: {}", e.0)))?;
    if info.spki != key.spki()? {
        return Err(bad(
            "the certificate's public key does not match the private key",
        ));
    }
    if !info.is_ca {
        return Err(bad(
            "the certificate is not a CA certificate (basic constraints CA:true)",
        ));
    }
    let stored = StoredCa {
        certificate: store::cert_pem(first),
        chain: certs.iter().skip(1).map(|c| store::cert_pem(c)).collect(),
        key: store::key_to_stored(&key),
        issuer_id: new_uuid(),
        key_id: key_id.unwrap_or_else(new_uuid),
        issuer_name: String::new(),
    };
    install_ca(
        ctx,
        &stored,
        &x509::serial_string(&info.serial),
        info.not_after,
    )
    .await?;
    Ok(Response::data(json!({
        "imported_issuers": [stored.issuer_id],
        "imported_keys": [stored.key_id],
        "mapping": { stored.issuer_id.clone(): stored.key_id },
        "existing_issuers": null,
        "existing_keys": null,
    })))
}

/// `config/ca`: a PEM bundle of the CA certificate (then its parents) and its key.
pub async fn config_ca(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let text = zeroize::Zeroizing::new(req.str_field("pem_bundle")?.unwrap_or_default());
    let (certs, key) = bundle(&text)?;
    let key = key.ok_or_else(|| bad("the PEM bundle must hold the CA's private key; importing certificates alone is not supported"))?;
    import(ctx, certs, key, None).await
}

/// `intermediate/set-signed`: the certificate for the pending key (then its parents).
pub async fn set_signed(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let text = req.str_field("certificate")?.unwrap_or_default();
    let (certs, key) = bundle(&text)?;
    if key.is_some() {
        return Err(bad(
            "a private key must not be sent to intermediate/set-signed",
        ));
    }
    let (pending, key_id) = store::load_pending(ctx).await?.ok_or_else(|| {
        bad("no pending intermediate key: generate one with intermediate/generate first")
    })?;
    let r = import(ctx, certs, pending, Some(key_id)).await?;
    ctx.storage.delete(store::PENDING_KEY).await?;
    Ok(r)
}
