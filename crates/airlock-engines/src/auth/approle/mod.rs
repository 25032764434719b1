//! AppRole: a role id (not secret, identifies the role) plus a secret id (secret, short-lived,
//! limited uses, optionally bound to client addresses) log a machine in.
//!
//! Storage below the mount prefix:
//! - `role/<name>`: [`Role`]
//! - `role-id/<hmac(role id)>`: the role name
//! - `secret-id/<role name>/<hmac(secret id)>`: [`SecretId`] (the secret itself is never stored)
//! - `accessor/<role name>/<accessor>`: hmac(secret id)
//!
//! Secret ids are looked up by their HMAC, so comparing never touches the secret byte by byte.

use std::collections::BTreeMap;

use airlock_logical::auth::{check_name, LoginOutcome, TokenSettings, TOKEN_FIELDS};
use airlock_logical::util::new_uuid;
use airlock_logical::{
    ApiError, ApiResult, BarrierOp, Ctx, Engine, Field, Op, PathSpec, Request, Response,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{item_exists, list_names, logged_in};

mod secret_id;

use secret_id::{
    by_accessor, delete_secret, find_secret, generate, list_accessors, tidy, SecretId,
};

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub name: String,
    pub role_id: String,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: i64,
    pub local_secret_ids: bool,
    #[serde(flatten)]
    pub token: TokenSettings,
}

/// The role id is half of a login credential: not in `Debug`.
impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role")
            .field("name", &self.name)
            .field("bind_secret_id", &self.bind_secret_id)
            .finish_non_exhaustive()
    }
}

impl Default for Role {
    fn default() -> Self {
        Role {
            name: String::new(),
            role_id: String::new(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenSettings::default(),
        }
    }
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

pub(super) async fn load_role(ctx: &Ctx, name: &str) -> ApiResult<Option<Role>> {
    ctx.storage.get_json(&role_key(&name.to_lowercase())).await
}

fn role_json(r: &Role) -> Value {
    let mut m = Map::new();
    m.insert("bind_secret_id".into(), json!(r.bind_secret_id));
    m.insert("local_secret_ids".into(), json!(r.local_secret_ids));
    m.insert(
        "secret_id_bound_cidrs".into(),
        if r.secret_id_bound_cidrs.is_empty() {
            Value::Null
        } else {
            json!(r.secret_id_bound_cidrs)
        },
    );
    m.insert("secret_id_num_uses".into(), json!(r.secret_id_num_uses));
    m.insert("secret_id_ttl".into(), json!(r.secret_id_ttl));
    r.token.write_json(&mut m);
    Value::Object(m)
}

/// Role sub-resources readable and writable on their own (`role/<name>/<field>`).
const ROLE_FIELDS: &[&str] = &[
    "policies",
    "token-policies",
    "secret-id-num-uses",
    "secret-id-ttl",
    "token-ttl",
    "token-max-ttl",
    "token-num-uses",
    "bind-secret-id",
    "secret-id-bound-cidrs",
    "token-bound-cidrs",
    "period",
    "token-period",
];

/// The AppRole auth method.
pub struct AppRole;

#[derive(Clone, Copy)]
pub enum H {
    Login,
    RoleList,
    RoleRead,
    RoleWrite,
    RoleDelete,
    RoleIdRead,
    RoleIdWrite,
    SecretIdList,
    SecretIdGenerate,
    CustomSecretId,
    SecretIdLookup,
    SecretIdDestroy,
    AccessorLookup,
    AccessorDestroy,
    FieldRead,
    FieldWrite,
    Tidy,
}

const LOGIN_FIELDS: &[Field] = &[
    Field::str("role_id").help("The role's id (not secret)."),
    Field::str("secret_id")
        .sensitive()
        .help("A secret id issued for the role."),
];
const ROLE_FIELDS_DECL: &[Field] = &[
    Field::bool("bind_secret_id"),
    Field::list("secret_id_bound_cidrs"),
    Field::list("bound_cidr_list"),
    Field::int("secret_id_num_uses"),
    Field::duration("secret_id_ttl"),
    Field::bool("local_secret_ids"),
    Field::str("role_id"),
];
const SECRET_ID_FIELDS: &[Field] = &[
    Field::json("metadata"),
    Field::list("cidr_list"),
    Field::list("token_bound_cidrs"),
    Field::int("num_uses"),
    Field::duration("ttl"),
];
const CUSTOM_SECRET_ID: &[Field] = &[Field::str("secret_id").sensitive()];
const ACCESSOR_FIELDS: &[Field] = &[Field::str("secret_id_accessor")];
const ONE_FIELD: &[Field] = &[
    Field::bool("bind_secret_id"),
    Field::int("secret_id_num_uses"),
    Field::duration("secret_id_ttl"),
    Field::list("secret_id_bound_cidrs"),
];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("login", &[(Op::Update, H::Login)])
        .fields(&[LOGIN_FIELDS])
        .login()
        .help("Logs in with a role id and a secret id.", ""),
    PathSpec::new(
        "role/?",
        &[(Op::List, H::RoleList), (Op::Read, H::RoleList)],
    )
    .help("The roles of this mount.", ""),
    PathSpec::new(
        "role/{name}/?",
        &[
            (Op::Read, H::RoleRead),
            (Op::Update, H::RoleWrite),
            (Op::Delete, H::RoleDelete),
        ],
    )
    .fields(&[ROLE_FIELDS_DECL, TOKEN_FIELDS])
    .existence()
    .help(
        "A role: what its secret ids may do and the tokens its logins get.",
        "",
    ),
    PathSpec::new(
        "role/{name}/role-id",
        &[(Op::Read, H::RoleIdRead), (Op::Update, H::RoleIdWrite)],
    )
    .fields(&[&[Field::str("role_id")]])
    .help("The role's id.", ""),
    PathSpec::new(
        "role/{name}/secret-id/?",
        &[
            (Op::List, H::SecretIdList),
            (Op::Update, H::SecretIdGenerate),
        ],
    )
    .fields(&[SECRET_ID_FIELDS])
    .help(
        "Issues a secret id (POST) or lists their accessors (LIST).",
        "",
    ),
    PathSpec::new(
        "role/{name}/custom-secret-id",
        &[(Op::Update, H::CustomSecretId)],
    )
    .fields(&[SECRET_ID_FIELDS, CUSTOM_SECRET_ID])
    .help("Registers a secret id chosen by the caller.", ""),
    PathSpec::new(
        "role/{name}/secret-id/lookup",
        &[(Op::Update, H::SecretIdLookup)],
    )
    .fields(&[CUSTOM_SECRET_ID])
    .help("What is known of a secret id.", ""),
    PathSpec::new(
        "role/{name}/secret-id/destroy",
        &[
            (Op::Update, H::SecretIdDestroy),
            (Op::Delete, H::SecretIdDestroy),
        ],
    )
    .fields(&[CUSTOM_SECRET_ID])
    .help("Destroys a secret id.", ""),
    PathSpec::new(
        "role/{name}/secret-id-accessor/lookup",
        &[
            (Op::Update, H::AccessorLookup),
            (Op::Delete, H::AccessorLookup),
        ],
    )
    .fields(&[ACCESSOR_FIELDS])
    .help("What is known of a secret id, by its accessor.", ""),
    PathSpec::new(
        "role/{name}/secret-id-accessor/destroy",
        &[
            (Op::Update, H::AccessorDestroy),
            (Op::Delete, H::AccessorDestroy),
        ],
    )
    .fields(&[ACCESSOR_FIELDS])
    .help("Destroys a secret id, by its accessor.", ""),
    PathSpec::new(
        "role/{name}/{field}",
        &[
            (Op::Read, H::FieldRead),
            (Op::Update, H::FieldWrite),
            (Op::Delete, H::FieldWrite),
        ],
    )
    .fields(&[ONE_FIELD, TOKEN_FIELDS])
    .help(
        "One setting of a role (policies, secret-id-ttl, token-ttl, ...).",
        "",
    ),
    PathSpec::new("tidy/secret-id", &[(Op::Update, H::Tidy)])
        .help("Removes expired secret ids.", ""),
];

#[async_trait]
impl Engine for AppRole {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    fn login_subject(&self, req: &Request, _rel: &str) -> String {
        req.data
            .get("role_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    async fn exists(&self, ctx: &Ctx, _h: H, req: &Request) -> ApiResult<Option<bool>> {
        item_exists(ctx, "role", req.cap("name")).await
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        let name = req.cap("name");
        match h {
            H::Login => login(ctx, req).await,
            H::RoleList => list_names(ctx, "role/").await,
            H::RoleRead => role_read(ctx, name).await,
            H::RoleWrite => role_write(ctx, name, req).await,
            H::RoleDelete => role_delete(ctx, name).await,
            H::RoleIdRead => role_id_read(ctx, name).await,
            H::RoleIdWrite => role_id_write(ctx, name, req).await,
            H::SecretIdList => list_accessors(ctx, name).await,
            H::SecretIdGenerate => generate(ctx, name, req, None).await,
            H::CustomSecretId => {
                let custom = req
                    .str_field("secret_id")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ApiError::bad_request("missing secret_id"))?;
                generate(ctx, name, req, Some(custom)).await
            }
            H::SecretIdLookup => {
                let sid = req
                    .str_field("secret_id")?
                    .ok_or_else(|| ApiError::bad_request("missing secret_id"))?;
                let role = need_role(ctx, name).await?;
                match find_secret(ctx, &role.name, &sid).await? {
                    Some((_, e)) => Ok(Response::data(e.json())),
                    None => Ok(Response::empty()),
                }
            }
            H::SecretIdDestroy => {
                let sid = req
                    .str_field("secret_id")?
                    .ok_or_else(|| ApiError::bad_request("missing secret_id"))?;
                let role = need_role(ctx, name).await?;
                if let Some((h, e)) = find_secret(ctx, &role.name, &sid).await? {
                    delete_secret(ctx, &role.name, &h, &e.accessor).await?;
                }
                Ok(Response::empty())
            }
            H::AccessorLookup => by_accessor(ctx, name, req, true).await,
            H::AccessorDestroy => by_accessor(ctx, name, req, false).await,
            H::FieldRead | H::FieldWrite => {
                let field = req.cap("field");
                if !ROLE_FIELDS.contains(&field) {
                    return Err(ApiError::unsupported_path());
                }
                let name = name.to_lowercase();
                match h {
                    H::FieldRead => field_read(ctx, &name, &field_name(field)).await,
                    _ => field_write(ctx, &name, &field_name(field), req).await,
                }
            }
            H::Tidy => {
                let n = tidy(ctx).await?;
                tracing::info!(mount = %ctx.mount.path, removed = n, "tidied expired secret ids");
                let mut r = Response::empty();
                r.status = Some(202);
                r.warnings.push(
                    "Tidy operation successfully started. Any information from the operation will be printed to Airlock's server logs.".into(),
                );
                Ok(r)
            }
        }
    }
}

pub(super) async fn need_role(ctx: &Ctx, name: &str) -> ApiResult<Role> {
    load_role(ctx, name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("role \"{name}\" does not exist")))
}

fn validate_role(r: &Role) -> ApiResult<()> {
    airlock_core::cidr::parse_list(&r.secret_id_bound_cidrs).map_err(ApiError::bad_request)?;
    if !r.bind_secret_id
        && r.secret_id_bound_cidrs.is_empty()
        && r.token.token_bound_cidrs.is_empty()
    {
        return Err(ApiError::bad_request(
            "at least one constraint should be enabled on the role",
        ));
    }
    if r.secret_id_num_uses < 0 {
        return Err(ApiError::bad_request(
            "secret_id_num_uses cannot be negative",
        ));
    }
    Ok(())
}

async fn role_read(ctx: &Ctx, raw: &str) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    match load_role(ctx, &name).await? {
        Some(r) => Ok(Response::data(role_json(&r))),
        None => Err(ApiError::not_found()),
    }
}

async fn role_write(ctx: &Ctx, raw: &str, req: &Request) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    let g = ctx.storage.lock(&role_key(&name)).await?;
    let existing = load_role(ctx, &name).await?;
    let mut r = existing.clone().unwrap_or_default();
    r.name = name.clone();
    if let Some(b) = req.bool_field("bind_secret_id")? {
        r.bind_secret_id = b;
    }
    if let Some(c) = req
        .str_list_field("secret_id_bound_cidrs")?
        .or(req.str_list_field("bound_cidr_list")?)
    {
        airlock_core::cidr::parse_list(&c).map_err(ApiError::bad_request)?;
        r.secret_id_bound_cidrs = c;
    }
    if let Some(n) = req.int_field("secret_id_num_uses")? {
        r.secret_id_num_uses = n;
    }
    if let Some(t) = req.duration_field("secret_id_ttl")? {
        r.secret_id_ttl = t;
    }
    if let Some(l) = req.bool_field("local_secret_ids")? {
        if existing.is_some() && l != r.local_secret_ids {
            return Err(ApiError::bad_request(
                "local_secret_ids can only be modified during role creation",
            ));
        }
        r.local_secret_ids = l;
    }
    r.token.update(req)?;
    validate_role(&r)?;
    let mut ops = Vec::new();
    let custom = req.str_field("role_id")?.filter(|s| !s.is_empty());
    if r.role_id.is_empty() || custom.is_some() {
        let new_id = custom.unwrap_or_else(new_uuid);
        if new_id != r.role_id {
            ops.extend(set_role_id_ops(ctx, &r, &new_id).await?);
            r.role_id = new_id;
        }
    }
    ops.push(BarrierOp::Put(
        role_key(&name),
        serde_json::to_vec(&r).map_err(|e| ApiError::internal(&e))?,
    ));
    g.commit(ops).await?;
    Ok(Response::empty())
}

async fn role_delete(ctx: &Ctx, raw: &str) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    let g = ctx.storage.lock(&role_key(&name)).await?;
    let Some(r) = load_role(ctx, &name).await? else {
        return Ok(Response::empty());
    };
    let mut ops = vec![
        BarrierOp::Delete(role_key(&name)),
        BarrierOp::Delete(format!("role-id/{}", ctx.sys.hmac(&r.role_id)?)),
    ];
    for k in ctx.storage.scan(&format!("secret-id/{name}/")).await? {
        ops.push(BarrierOp::Delete(k));
    }
    for k in ctx.storage.scan(&format!("accessor/{name}/")).await? {
        ops.push(BarrierOp::Delete(k));
    }
    g.commit(ops).await?;
    Ok(Response::empty())
}

/// Ops that point a new role id at the role (and drop the old one). A role id already used
/// by another role is refused.
async fn set_role_id_ops(ctx: &Ctx, r: &Role, new_id: &str) -> ApiResult<Vec<BarrierOp>> {
    if new_id.len() > 4096 {
        return Err(ApiError::bad_request("role_id is too long"));
    }
    let nk = format!("role-id/{}", ctx.sys.hmac(new_id)?);
    if let Some(owner) = ctx.storage.get_json::<String>(&nk).await? {
        if owner != r.name {
            return Err(ApiError::bad_request("role_id already in use"));
        }
    }
    let mut ops = Vec::new();
    if !r.role_id.is_empty() {
        ops.push(BarrierOp::Delete(format!(
            "role-id/{}",
            ctx.sys.hmac(&r.role_id)?
        )));
    }
    ops.push(BarrierOp::Put(
        nk,
        serde_json::to_vec(&r.name).map_err(|e| ApiError::internal(&e))?,
    ));
    Ok(ops)
}

async fn role_id_read(ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let name = name.to_lowercase();
    let r = load_role(ctx, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Response::data(json!({ "role_id": r.role_id })))
}

async fn role_id_write(ctx: &Ctx, name: &str, req: &Request) -> ApiResult<Response> {
    let name = name.to_lowercase();
    let new_id = req
        .str_field("role_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing role_id"))?;
    let g = ctx.storage.lock(&role_key(&name)).await?;
    let mut r = need_role(ctx, &name).await?;
    let mut ops = set_role_id_ops(ctx, &r, &new_id).await?;
    r.role_id = new_id;
    ops.push(BarrierOp::Put(
        role_key(&name),
        serde_json::to_vec(&r).map_err(|e| ApiError::internal(&e))?,
    ));
    g.commit(ops).await?;
    Ok(Response::empty())
}

/// The JSON field behind a `role/<name>/<field>` sub-resource.
fn field_name(field: &str) -> String {
    match field {
        "policies" | "token-policies" => "token_policies".into(),
        "period" | "token-period" => "token_period".into(),
        other => other.replace('-', "_"),
    }
}

async fn field_read(ctx: &Ctx, name: &str, field: &str) -> ApiResult<Response> {
    let r = load_role(ctx, name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let all = role_json(&r);
    let mut d = Map::new();
    d.insert(field.into(), all.get(field).cloned().unwrap_or(Value::Null));
    if field == "token_policies" {
        d.insert(
            "policies".into(),
            all.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    Ok(Response::data(Value::Object(d)))
}

/// Writes (or, on DELETE, resets) one field as if it were sent to the role endpoint.
async fn field_write(ctx: &Ctx, name: &str, field: &str, req: &Request) -> ApiResult<Response> {
    let g = ctx.storage.lock(&role_key(name)).await?;
    let mut r = need_role(ctx, name).await?;
    // Apply as if the field were sent to the role endpoint (delete resets it).
    let mut data = Map::new();
    let value = if req.op == Op::Delete {
        match field {
            "bind_secret_id" => json!(true),
            "token_policies" | "secret_id_bound_cidrs" | "token_bound_cidrs" => json!([]),
            _ => json!(0),
        }
    } else {
        let v = match req.value(field)? {
            Some(v) => Some(v.into_owned()),
            None if field == "token_policies" => req.value("policies")?.map(|v| v.into_owned()),
            None => None,
        };
        v.ok_or_else(|| ApiError::bad_request(format!("missing {field}")))?
    };
    data.insert(field.to_string(), value);
    let mut sub = Request::new(Op::Update, req.path.clone());
    sub.data = data;
    match field {
        "bind_secret_id" => r.bind_secret_id = sub.bool_field(field)?.unwrap_or(true),
        "secret_id_num_uses" => r.secret_id_num_uses = sub.int_field(field)?.unwrap_or(0),
        "secret_id_ttl" => r.secret_id_ttl = sub.duration_field(field)?.unwrap_or(0),
        "secret_id_bound_cidrs" => {
            r.secret_id_bound_cidrs = sub.str_list_field(field)?.unwrap_or_default()
        }
        _ => r.token.update(&sub)?,
    }
    validate_role(&r)?;
    g.put_json(&role_key(name), &r).await?;
    Ok(Response::empty())
}

const INVALID: &str = "invalid role or secret ID";

fn cidr_refusal(ip: Option<std::net::IpAddr>, what: &str) -> ApiError {
    let ip = ip.map(|i| i.to_string()).unwrap_or_default();
    ApiError::bad_request(format!(
        "source address \"{ip}\" unauthorized by CIDR restrictions on {what}"
    ))
}

async fn login(ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let role_id = req
        .str_field("role_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing role_id"))?;
    let name: Option<String> = ctx
        .storage
        .get_json(&format!("role-id/{}", ctx.sys.hmac(&role_id)?))
        .await?;
    let role = match name {
        Some(n) => load_role(ctx, &n).await?,
        None => None,
    };
    let secret = req.str_field("secret_id")?.filter(|s| !s.is_empty());
    let Some(role) = role else {
        if secret.is_none() {
            return Err(ApiError::bad_request("missing secret_id"));
        }
        return Err(ApiError::bad_request(INVALID));
    };
    let ip = req.remote.map(|r| r.ip());
    // The role's address binding first: a refused login consumes nothing.
    let role_cidrs = airlock_core::cidr::parse_list(&role.secret_id_bound_cidrs)
        .map_err(|e| ApiError::internal(&e))?;
    if !airlock_core::cidr::allows(&role_cidrs, ip) {
        return Err(cidr_refusal(ip, "the role"));
    }
    let mut meta = BTreeMap::new();
    let mut token_cidrs = Vec::new();
    if role.bind_secret_id {
        let secret = secret.ok_or_else(|| ApiError::bad_request("missing secret_id"))?;
        let h = ctx.sys.hmac(&secret)?;
        let sk = format!("secret-id/{}/{h}", role.name);
        let g = ctx.storage.lock(&sk).await?;
        let Some(mut e) = ctx.storage.get_json::<SecretId>(&sk).await? else {
            return Err(ApiError::bad_request(INVALID));
        };
        let now = ctx.now_nanos();
        if e.expired(now) {
            g.commit(secret_id::delete_secret_ops(&role.name, &h, &e.accessor))
                .await?;
            return Err(ApiError::bad_request(INVALID));
        }
        let cidrs =
            airlock_core::cidr::parse_list(&e.cidr_list).map_err(|e| ApiError::internal(&e))?;
        if !airlock_core::cidr::allows(&cidrs, ip) {
            return Err(cidr_refusal(ip, "the secret ID"));
        }
        if e.num_uses > 0 {
            if e.num_uses == 1 {
                g.commit(secret_id::delete_secret_ops(&role.name, &h, &e.accessor))
                    .await?;
            } else {
                e.num_uses -= 1;
                e.last_updated = now;
                g.put_json(&sk, &e).await?;
            }
        }
        meta = e.metadata.clone();
        token_cidrs = e.token_bound_cidrs.clone();
    }
    let mut settings = role.token.clone();
    if !token_cidrs.is_empty() {
        settings.token_bound_cidrs = token_cidrs;
    }
    meta.insert("role_name".into(), role.name.clone());
    Ok(logged_in(LoginOutcome {
        settings,
        meta,
        display_name: String::new(),
        alias: role.role_id.clone(),
        extra_policies: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_defaults_and_json_shape() {
        let r = Role::default();
        assert!(r.bind_secret_id);
        assert!(validate_role(&r).is_ok());
        let v = role_json(&r);
        for k in [
            "bind_secret_id",
            "secret_id_num_uses",
            "secret_id_ttl",
            "token_policies",
            "token_ttl",
            "token_type",
            "token_bound_cidrs",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["secret_id_bound_cidrs"].is_null());
        let unbound = Role {
            bind_secret_id: false,
            ..Role::default()
        };
        assert!(validate_role(&unbound).is_err());
        let bad = Role {
            secret_id_bound_cidrs: vec!["nope".into()],
            ..Role::default()
        };
        assert!(validate_role(&bad).is_err());
    }

    #[test]
    fn secret_id_expiry() {
        let e = SecretId {
            expiration: Some(100),
            ..Default::default()
        };
        assert!(!e.expired(99) && e.expired(100));
        assert!(!SecretId::default().expired(i128::MAX));
        assert_eq!(
            SecretId::default().json()["expiration_time"],
            "0001-01-01T00:00:00Z"
        );
    }
}
