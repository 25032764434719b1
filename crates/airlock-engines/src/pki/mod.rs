//! The PKI secrets engine (Vault's `pki`): a CA per mount — generated (`root/generate`),
//! signed elsewhere (`intermediate/generate` + `intermediate/set-signed`) or imported
//! (`config/ca`) — that issues certificates under roles (`issue`, `sign`,
//! `sign-verbatim`), signs intermediates, revokes, publishes a CRL and tidies expired
//! certificates. One issuer per mount (Vault's multi-issuer API is not served).
//!
//! - [`der`]: DER writer and reader; [`keys`]: key generation, PEM, signing, checks;
//! - [`x509`]: certificates, CSRs and CRLs; [`roles`]: roles and the name/TTL rules;
//! - [`store`]: what is kept in the storage view; [`issue`]: making certificates.
//!
//! The CA key is read from the mount's storage view (behind the barrier) on each use and
//! held in zeroising buffers. Vault serves `ca`, `crl`, `cert/*` without a token; Airlock's
//! logical framework marks only `auth/` logins unauthenticated, so they need one here.

mod der;
mod issue;
mod keys;
mod roles;
mod store;
#[cfg(test)]
mod tests;
mod x509;

use async_trait::async_trait;
use serde_json::{json, Value};

use airlock_logical::util::rfc3339_nanos;
use airlock_logical::{
    ApiError, ApiResult, BarrierOp, Ctx, Engine, Field, Op, PathSpec, Request, Response,
};
use store::CertRecord;

/// One PKI mount's engine. Its parsed CA is cached by mount (see `store::load_ca`) and
/// forgotten when the instance goes.
pub struct Pki {
    mount_uuid: String,
}

impl Pki {
    pub fn new(mount_uuid: &str) -> Self {
        Self {
            mount_uuid: mount_uuid.to_string(),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        store::forget_ca(&self.mount_uuid);
    }
}

#[derive(Clone, Copy)]
pub enum H {
    RootGenerate,
    IntermediateGenerate,
    SetSigned,
    ConfigCa,
    SignIntermediate,
    RoleRead,
    RoleWrite,
    RoleDelete,
    RoleList,
    Issue,
    Sign,
    SignVerbatim,
    Revoke,
    CrlDer,
    CrlPem,
    CrlRotate,
    CertRead,
    CertList,
    RevokedList,
    Tidy,
    CaDer,
    CaPem,
    CaChain,
}

const NAME_FIELDS: &[Field] = &[
    Field::str("common_name"),
    Field::list("alt_names"),
    Field::list("ip_sans"),
    Field::list("uri_sans"),
    Field::list("other_sans"),
    Field::duration("ttl"),
    Field::str("format"),
    Field::str("private_key_format"),
    Field::bool("exclude_cn_from_sans"),
];
const GEN_FIELDS: &[Field] = &[
    Field::str("key_type"),
    Field::int("key_bits"),
    Field::str("issuer_name"),
    Field::str("key_name"),
    Field::int("max_path_length"),
    Field::int("signature_bits"),
];
const CSR_FIELDS: &[Field] = &[
    Field::str("csr"),
    Field::bool("use_csr_values"),
    Field::int("max_path_length"),
    Field::str("issuer_ref"),
];
const ISSUE_FIELDS: &[Field] = &[
    Field::str("key_type"),
    Field::int("key_bits"),
    Field::str("issuer_ref"),
    Field::str("not_after"),
    Field::bool("remove_roots_from_chain"),
];
const REVOKE_FIELDS: &[Field] = &[Field::str("serial_number"), Field::str("certificate")];
const TIDY_FIELDS: &[Field] = &[
    Field::bool("tidy_cert_store"),
    Field::bool("tidy_revoked_certs"),
    Field::bool("tidy_revoked_cert_issuer_associations"),
    Field::duration("safety_buffer"),
];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("root/generate/{exported}", &[(Op::Update, H::RootGenerate)])
        .fields(&[NAME_FIELDS, GEN_FIELDS])
        .help(
            "Generates a self-signed root CA; `exported` returns its private key once.",
            "",
        ),
    PathSpec::new(
        "intermediate/generate/{exported}",
        &[(Op::Update, H::IntermediateGenerate)],
    )
    .fields(&[NAME_FIELDS, GEN_FIELDS])
    .help("Generates a key and a CSR for an intermediate CA.", ""),
    PathSpec::new("intermediate/set-signed", &[(Op::Update, H::SetSigned)])
        .fields(&[&[Field::str("certificate")]])
        .help(
            "Installs the signed certificate of the generated intermediate key.",
            "",
        ),
    PathSpec::new("config/ca", &[(Op::Update, H::ConfigCa)])
        .fields(&[&[Field::str("pem_bundle").sensitive()]])
        .help(
            "Imports a CA: a PEM bundle of its certificate and private key.",
            "",
        ),
    PathSpec::new(
        "root/sign-intermediate",
        &[(Op::Update, H::SignIntermediate)],
    )
    .fields(&[NAME_FIELDS, CSR_FIELDS])
    .help("Signs an intermediate CA's CSR.", ""),
    PathSpec::new("roles/?", &[(Op::List, H::RoleList)]).help("Lists the roles.", ""),
    PathSpec::new(
        "roles/{name}",
        &[
            (Op::Read, H::RoleRead),
            (Op::Update, H::RoleWrite),
            (Op::Delete, H::RoleDelete),
        ],
    )
    .fields(&[roles::ROLE_FIELDS])
    .help(
        "Which certificates a role issues: names, key types, TTLs, usages.",
        "",
    ),
    PathSpec::new("issue/{role}", &[(Op::Update, H::Issue)])
        .fields(&[NAME_FIELDS, ISSUE_FIELDS])
        .help(
            "Issues a certificate and its new private key under a role.",
            "",
        ),
    PathSpec::new("sign/{role}", &[(Op::Update, H::Sign)])
        .fields(&[NAME_FIELDS, ISSUE_FIELDS, CSR_FIELDS])
        .help("Signs a CSR under a role.", ""),
    PathSpec::new("sign-verbatim", &[(Op::Update, H::SignVerbatim)])
        .fields(&[NAME_FIELDS, ISSUE_FIELDS, CSR_FIELDS])
        .help("Signs a CSR as it is.", ""),
    PathSpec::new("sign-verbatim/{role}", &[(Op::Update, H::SignVerbatim)])
        .fields(&[NAME_FIELDS, ISSUE_FIELDS, CSR_FIELDS])
        .help("Signs a CSR as it is, with the role's TTLs.", ""),
    PathSpec::new("revoke", &[(Op::Update, H::Revoke)])
        .fields(&[REVOKE_FIELDS])
        .help("Revokes a certificate by serial number or PEM.", ""),
    PathSpec::new("crl", &[(Op::Read, H::CrlDer)])
        .unauthenticated()
        .help("The CRL, DER.", ""),
    PathSpec::new("crl/pem", &[(Op::Read, H::CrlPem)])
        .unauthenticated()
        .help("The CRL, PEM.", ""),
    PathSpec::new("crl/rotate", &[(Op::Read, H::CrlRotate)]).help("Rebuilds the CRL.", ""),
    PathSpec::new("certs/revoked/?", &[(Op::List, H::RevokedList)])
        .help("Lists revoked serial numbers.", ""),
    PathSpec::new("certs/?", &[(Op::List, H::CertList)]).help("Lists stored serial numbers.", ""),
    PathSpec::new("cert/{serial}", &[(Op::Read, H::CertRead)])
        .unauthenticated()
        .help("A certificate by serial (or `ca`, `ca_chain`, `crl`).", ""),
    PathSpec::new("tidy", &[(Op::Update, H::Tidy)])
        .fields(&[TIDY_FIELDS])
        .help("Removes expired certificates and revocations.", ""),
    PathSpec::new("ca", &[(Op::Read, H::CaDer)])
        .unauthenticated()
        .help("The CA certificate, DER.", ""),
    PathSpec::new("ca/pem", &[(Op::Read, H::CaPem)])
        .unauthenticated()
        .help("The CA certificate, PEM.", ""),
    PathSpec::new("ca_chain", &[(Op::Read, H::CaChain)])
        .unauthenticated()
        .help("The CA chain, PEM.", ""),
];

#[async_trait]
impl Engine for Pki {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        match h {
            H::RootGenerate => issue::root_generate(ctx, req).await,
            H::IntermediateGenerate => issue::intermediate_generate(ctx, req).await,
            H::SetSigned => issue::set_signed(ctx, req).await,
            H::ConfigCa => issue::config_ca(ctx, req).await,
            H::SignIntermediate => issue::sign_intermediate(ctx, req).await,
            H::RoleList => ctx.storage.list_response("roles/").await,
            H::RoleRead => match ctx.storage.get_json::<roles::Role>(&role_key(req)).await? {
                Some(r) => Ok(Response::data(r.to_json())),
                None => Err(ApiError::not_found()),
            },
            H::RoleWrite => {
                let role = roles::Role::from_request(req)?;
                ctx.storage.put_json(&role_key(req), &role).await?;
                let mut r = Response::data(role.to_json());
                if role.generate_lease {
                    r.warnings.push(
                        "generate_lease is not supported: certificates are issued without a lease"
                            .into(),
                    );
                }
                Ok(r)
            }
            H::RoleDelete => {
                ctx.storage.delete(&role_key(req)).await?;
                Ok(Response::empty())
            }
            H::Issue => issue::issue_or_sign(ctx, req, false).await,
            H::Sign => issue::issue_or_sign(ctx, req, true).await,
            H::SignVerbatim => issue::sign_verbatim(ctx, req).await,
            H::Revoke => revoke(ctx, req).await,
            H::CrlDer => Ok(bytes(
                store::current_crl(ctx).await?,
                "application/pkix-crl",
            )),
            H::CrlPem => Ok(text(
                keys::pem("X509 CRL", &store::current_crl(ctx).await?).to_string(),
                "application/x-pem-file",
            )),
            H::CrlRotate => {
                let ca = store::require_ca(ctx).await?;
                let lock = ctx.storage.lock(store::CRL_KEY).await?;
                let (_, op) = store::crl_ops(ctx, &ca, None, &[]).await?;
                lock.commit(vec![op]).await?;
                Ok(Response::data(json!({ "success": true })))
            }
            H::CertList => serial_list(ctx, "certs/").await,
            H::RevokedList => serial_list(ctx, "revoked/").await,
            H::CertRead => cert_read(ctx, req).await,
            H::Tidy => tidy(ctx, req).await,
            H::CaDer => Ok(bytes(
                store::require_ca(ctx).await?.der.clone(),
                "application/pkix-cert",
            )),
            H::CaPem => Ok(text(
                store::require_ca(ctx).await?.pem.clone(),
                "application/pem-certificate-chain",
            )),
            H::CaChain => Ok(text(
                store::require_ca(ctx).await?.full_chain().join("\n"),
                "application/pem-certificate-chain",
            )),
        }
    }
}

fn role_key(req: &Request) -> String {
    format!("roles/{}", req.cap("name"))
}

fn bytes(b: Vec<u8>, content_type: &'static str) -> Response {
    Response {
        bytes: Some(b),
        content_type: Some(content_type),
        ..Default::default()
    }
}

fn text(t: String, content_type: &'static str) -> Response {
    Response {
        text: Some(t),
        content_type: Some(content_type),
        ..Default::default()
    }
}

fn time_pair(t: i64) -> (Value, Value) {
    if t == 0 {
        (json!(0), json!(""))
    } else {
        (
            json!(t),
            json!(rfc3339_nanos(i128::from(t) * 1_000_000_000)),
        )
    }
}

async fn serial_list(ctx: &Ctx, prefix: &str) -> ApiResult<Response> {
    let keys: Vec<String> = ctx
        .storage
        .list(prefix)
        .await?
        .iter()
        .map(|k| k.replace('-', ":"))
        .collect();
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::list(keys))
}

async fn cert_read(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let serial = req.cap("serial");
    let certificate = match serial {
        "ca" => store::require_ca(ctx).await?.pem.clone(),
        "ca_chain" => store::require_ca(ctx).await?.full_chain().join("\n"),
        "crl" => keys::pem("X509 CRL", &store::current_crl(ctx).await?).to_string(),
        s => {
            let Some(norm) = x509::parse_serial(s).map(|b| x509::serial_string(&b)) else {
                return Err(ApiError::not_found());
            };
            let rec = store::load_record(ctx, &norm)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let (t, t3339) = time_pair(rec.revoked_at);
            let mut data = json!({
                "certificate": rec.certificate, "revocation_time": t, "revocation_time_rfc3339": t3339,
            });
            if rec.revoked_at != 0 {
                data["issuer_id"] = rec.issuer_id.into();
            }
            return Ok(Response::data(data));
        }
    };
    Ok(Response::data(json!({
        "certificate": certificate, "revocation_time": 0, "revocation_time_rfc3339": "",
    })))
}

/// `revoke`: marks the certificate revoked and publishes a new CRL, in one commit under the
/// CRL's lock (revocations racing each other all end up listed).
async fn revoke(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let serial = match (
        req.str_field("serial_number")?,
        req.str_field("certificate")?,
    ) {
        (Some(s), _) if !s.is_empty() => x509::parse_serial(s.trim())
            .map(|b| x509::serial_string(&b))
            .ok_or_else(|| {
                ApiError::bad_request(format!("certificate with serial {s} not found."))
            })?,
        (_, Some(pem)) if !pem.is_empty() => {
            let der_bytes = store::first_cert_der(&pem)
                .map_err(|_| ApiError::bad_request("certificate could not be parsed"))?;
            let info = x509::parse_cert(&der_bytes).map_err(|e| {
                ApiError::bad_request(format!("certificate could not be parsed: {}", e.0))
            })?;
            let ca = store::require_ca(ctx).await?;
            if !info.signed_by(&ca.info) {
                return Err(ApiError::bad_request(
                    "the certificate was not issued by this mount's CA",
                ));
            }
            x509::serial_string(&info.serial)
        }
        _ => {
            return Err(ApiError::bad_request(
                "The serial number or certificate to revoke must be provided.",
            ))
        }
    };
    let ca = store::require_ca(ctx).await?;
    let lock = ctx.storage.lock(store::CRL_KEY).await?;
    let mut rec: CertRecord = store::load_record(ctx, &serial).await?.ok_or_else(|| {
        ApiError::bad_request(format!("certificate with serial {serial} not found."))
    })?;
    if serial == x509::serial_string(&ca.info.serial) {
        return Err(ApiError::bad_request(format!(
            "adding issuer (id: {}) to its own CRL is not allowed",
            ca.issuer_id
        )));
    }
    if rec.revoked_at == 0 {
        rec.revoked_at = ctx.now_unix();
        let (_, crl_op) = store::crl_ops(ctx, &ca, Some((&serial, rec.revoked_at)), &[]).await?;
        lock.commit(vec![
            store::record_op(&serial, &rec)?,
            BarrierOp::Put(
                format!("revoked/{}", store::storage_serial(&serial)),
                b"{}".to_vec(),
            ),
            crl_op,
        ])
        .await?;
    }
    let (t, t3339) = time_pair(rec.revoked_at);
    Ok(Response::data(json!({
        "revocation_time": t, "revocation_time_rfc3339": t3339, "state": "revoked",
    })))
}

/// `tidy`: drops certificates (and revocations) expired longer than `safety_buffer` ago.
async fn tidy(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let certs = req.bool_field("tidy_cert_store")?.unwrap_or(false);
    let revoked = req.bool_field("tidy_revoked_certs")?.unwrap_or(false);
    let buffer = req.duration_field("safety_buffer")?.unwrap_or(72 * 3600);
    if buffer < 1 {
        return Err(ApiError::bad_request(
            "safety_buffer must be greater than zero",
        ));
    }
    let now = ctx.now_unix();
    let lock = ctx.storage.lock(store::CRL_KEY).await?;
    let mut ops = Vec::new();
    let mut dropped = Vec::new();
    for k in ctx.storage.list("certs/").await? {
        let Some(rec) = ctx
            .storage
            .get_json::<CertRecord>(&format!("certs/{k}"))
            .await?
        else {
            continue;
        };
        if now <= rec.not_after.saturating_add(buffer) {
            continue;
        }
        let is_revoked = rec.revoked_at != 0;
        if is_revoked && revoked {
            ops.push(BarrierOp::Delete(format!("revoked/{k}")));
            ops.push(BarrierOp::Delete(format!("certs/{k}")));
            dropped.push(k);
        } else if !is_revoked && certs {
            ops.push(BarrierOp::Delete(format!("certs/{k}")));
        }
    }
    if !dropped.is_empty() {
        if let Some(ca) = store::load_ca(ctx).await? {
            ops.push(store::crl_ops(ctx, &ca, None, &dropped).await?.1);
        }
    }
    while !ops.is_empty() {
        let chunk: Vec<BarrierOp> = ops.drain(..ops.len().min(500)).collect();
        lock.commit(chunk).await?;
    }
    let mut r = Response::empty();
    r.status = Some(202);
    r.warnings.push("Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs.".into());
    Ok(r)
}
