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
use std::sync::Arc;

use airlock_store::BarrierOp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{check_name, key, list_names, LoginOutcome, TokenSettings};
use crate::core::{new_uuid, now_nanos, rfc3339_nanos, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::mounts::MountEntry;

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

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SecretId {
    pub accessor: String,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
    pub num_uses: i64,
    pub ttl: i64,
    /// Nanoseconds.
    pub creation: i128,
    pub expiration: Option<i128>,
    pub last_updated: i128,
}

impl SecretId {
    fn json(&self) -> Value {
        json!({
            "cidr_list": self.cidr_list,
            "creation_time": rfc3339_nanos(self.creation),
            "expiration_time": self.expiration.map(rfc3339_nanos).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "last_updated_time": rfc3339_nanos(self.last_updated),
            "metadata": self.metadata,
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl,
            "token_bound_cidrs": self.token_bound_cidrs,
        })
    }

    fn expired(&self, now: i128) -> bool {
        self.expiration.map(|e| now >= e).unwrap_or(false)
    }
}

fn role_key(m: &MountEntry, name: &str) -> String {
    key(m, &format!("role/{name}"))
}

async fn load_role(core: &Core, m: &MountEntry, name: &str) -> ApiResult<Option<Role>> {
    core.barrier
        .get_json(&role_key(m, &name.to_lowercase()))
        .await
        .map_err(Into::into)
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

pub async fn handle(
    core: &Arc<Core>,
    m: &MountEntry,
    sub: &str,
    req: &Request,
) -> ApiResult<Response> {
    let parts: Vec<&str> = sub.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["role"] if req.op == Op::List || req.op == Op::Read => list_names(core, m, "role/").await,
        ["role", name] => role_rw(core, m, name, req).await,
        ["role", name, "role-id"] => role_id(core, m, name, req).await,
        ["role", name, "secret-id"] if req.op == Op::List => list_accessors(core, m, name).await,
        ["role", name, "secret-id"] if req.op == Op::Update => {
            generate(core, m, name, req, None).await
        }
        ["role", _, "secret-id"] => Err(ApiError::unsupported_operation()),
        ["role", name, "custom-secret-id"] if req.op == Op::Update => {
            let custom = req
                .str_field("secret_id")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiError::bad_request("missing secret_id"))?;
            generate(core, m, name, req, Some(custom)).await
        }
        ["role", name, "secret-id", "lookup"] if req.op == Op::Update => {
            let sid = req
                .str_field("secret_id")?
                .ok_or_else(|| ApiError::bad_request("missing secret_id"))?;
            let role = need_role(core, m, name).await?;
            match find_secret(core, m, &role.name, &sid).await? {
                Some((_, e)) => Ok(Response::data(e.json())),
                None => Ok(Response::empty()),
            }
        }
        ["role", name, "secret-id", "destroy"] if matches!(req.op, Op::Update | Op::Delete) => {
            let sid = req
                .str_field("secret_id")?
                .ok_or_else(|| ApiError::bad_request("missing secret_id"))?;
            let role = need_role(core, m, name).await?;
            if let Some((h, e)) = find_secret(core, m, &role.name, &sid).await? {
                delete_secret(core, m, &role.name, &h, &e.accessor).await?;
            }
            Ok(Response::empty())
        }
        ["role", name, "secret-id-accessor", op @ ("lookup" | "destroy")]
            if matches!(req.op, Op::Update | Op::Delete) =>
        {
            let acc = req
                .str_field("secret_id_accessor")?
                .ok_or_else(|| ApiError::bad_request("missing secret_id_accessor"))?;
            let role = need_role(core, m, name).await?;
            let Some(h) = accessor_hash(core, m, &role.name, &acc).await? else {
                let msg =
                    format!("failed to find accessor entry for secret_id_accessor: \"{acc}\"");
                if *op == "lookup" {
                    return Err(ApiError::with_body(404, json!({ "error": msg })));
                }
                return Err(ApiError::bad_request(msg));
            };
            let e: Option<SecretId> = core
                .barrier
                .get_json(&key(m, &format!("secret-id/{}/{h}", role.name)))
                .await?;
            if *op == "lookup" {
                return Ok(e.map(|e| Response::data(e.json())).unwrap_or_default());
            }
            delete_secret(core, m, &role.name, &h, &acc).await?;
            Ok(Response::empty())
        }
        ["role", name, field] if ROLE_FIELDS.contains(field) => {
            role_field(core, m, name, field, req).await
        }
        ["tidy", "secret-id"] if req.op == Op::Update => {
            let n = tidy(core, m).await?;
            tracing::info!(mount = %m.path, removed = n, "tidied expired secret ids");
            let mut r = Response::empty();
            r.status = Some(202);
            r.warnings.push(
                "Tidy operation successfully started. Any information from the operation will be printed to Airlock's server logs.".into(),
            );
            Ok(r)
        }
        _ => Err(ApiError::unsupported_path()),
    }
}

async fn need_role(core: &Core, m: &MountEntry, name: &str) -> ApiResult<Role> {
    load_role(core, m, name)
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

async fn role_rw(
    core: &Arc<Core>,
    m: &MountEntry,
    raw: &str,
    req: &Request,
) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    match req.op {
        Op::Read => match load_role(core, m, &name).await? {
            Some(r) => Ok(Response::data(role_json(&r))),
            None => Err(super::not_found()),
        },
        Op::Create | Op::Update => {
            let _g = core.locks.lock(&role_key(m, &name)).await;
            let existing = load_role(core, m, &name).await?;
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
                    ops.extend(set_role_id_ops(core, m, &r, &new_id).await?);
                    r.role_id = new_id;
                }
            }
            ops.push(BarrierOp::Put(
                role_key(m, &name),
                serde_json::to_vec(&r).map_err(|e| ApiError::internal(&e))?,
            ));
            core.barrier.commit(ops).await?;
            Ok(Response::empty())
        }
        Op::Delete => {
            let _g = core.locks.lock(&role_key(m, &name)).await;
            let Some(r) = load_role(core, m, &name).await? else {
                return Ok(Response::empty());
            };
            let mut ops = vec![
                BarrierOp::Delete(role_key(m, &name)),
                BarrierOp::Delete(key(
                    m,
                    &format!("role-id/{}", core.tokens.hmac(&r.role_id)?),
                )),
            ];
            for k in core
                .barrier
                .scan(&key(m, &format!("secret-id/{name}/")))
                .await?
            {
                ops.push(BarrierOp::Delete(k));
            }
            for k in core
                .barrier
                .scan(&key(m, &format!("accessor/{name}/")))
                .await?
            {
                ops.push(BarrierOp::Delete(k));
            }
            core.barrier.commit(ops).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

/// Ops that point a new role id at the role (and drop the old one). A role id already used
/// by another role is refused.
async fn set_role_id_ops(
    core: &Core,
    m: &MountEntry,
    r: &Role,
    new_id: &str,
) -> ApiResult<Vec<BarrierOp>> {
    if new_id.len() > 4096 {
        return Err(ApiError::bad_request("role_id is too long"));
    }
    let nk = key(m, &format!("role-id/{}", core.tokens.hmac(new_id)?));
    if let Some(owner) = core.barrier.get_json::<String>(&nk).await? {
        if owner != r.name {
            return Err(ApiError::bad_request("role_id already in use"));
        }
    }
    let mut ops = Vec::new();
    if !r.role_id.is_empty() {
        ops.push(BarrierOp::Delete(key(
            m,
            &format!("role-id/{}", core.tokens.hmac(&r.role_id)?),
        )));
    }
    ops.push(BarrierOp::Put(
        nk,
        serde_json::to_vec(&r.name).map_err(|e| ApiError::internal(&e))?,
    ));
    Ok(ops)
}

async fn role_id(
    core: &Arc<Core>,
    m: &MountEntry,
    name: &str,
    req: &Request,
) -> ApiResult<Response> {
    let name = name.to_lowercase();
    match req.op {
        Op::Read => {
            let r = load_role(core, m, &name)
                .await?
                .ok_or_else(super::not_found)?;
            Ok(Response::data(json!({ "role_id": r.role_id })))
        }
        Op::Create | Op::Update => {
            let new_id = req
                .str_field("role_id")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ApiError::bad_request("missing role_id"))?;
            let _g = core.locks.lock(&role_key(m, &name)).await;
            let mut r = need_role(core, m, &name).await?;
            let mut ops = set_role_id_ops(core, m, &r, &new_id).await?;
            r.role_id = new_id;
            ops.push(BarrierOp::Put(
                role_key(m, &name),
                serde_json::to_vec(&r).map_err(|e| ApiError::internal(&e))?,
            ));
            core.barrier.commit(ops).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

async fn role_field(
    core: &Arc<Core>,
    m: &MountEntry,
    name: &str,
    field: &str,
    req: &Request,
) -> ApiResult<Response> {
    let name = name.to_lowercase();
    let json_name = match field {
        "policies" | "token-policies" => "token_policies",
        "period" | "token-period" => "token_period",
        other => return field_generic(core, m, &name, &other.replace('-', "_"), req).await,
    };
    field_generic(core, m, &name, json_name, req).await
}

async fn field_generic(
    core: &Arc<Core>,
    m: &MountEntry,
    name: &str,
    field: &str,
    req: &Request,
) -> ApiResult<Response> {
    match req.op {
        Op::Read => {
            let r = load_role(core, m, name)
                .await?
                .ok_or_else(super::not_found)?;
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
        Op::Create | Op::Update | Op::Delete => {
            let _g = core.locks.lock(&role_key(m, name)).await;
            let mut r = need_role(core, m, name).await?;
            // Apply as if the field were sent to the role endpoint (delete resets it).
            let mut data = Map::new();
            let value = if req.op == Op::Delete {
                match field {
                    "bind_secret_id" => json!(true),
                    "token_policies" | "secret_id_bound_cidrs" | "token_bound_cidrs" => json!([]),
                    _ => json!(0),
                }
            } else {
                req.data
                    .get(field)
                    .or_else(|| {
                        if field == "token_policies" {
                            req.data.get("policies")
                        } else {
                            None
                        }
                    })
                    .cloned()
                    .ok_or_else(|| ApiError::bad_request(format!("missing {field}")))?
            };
            data.insert(field.to_string(), value);
            let sub = Request {
                id: req.id.clone(),
                op: Op::Update,
                path: req.path.clone(),
                data,
                query: Vec::new(),
                token: None,
                remote: req.remote,
                content_type: None,
                wrap_ttl: None,
            };
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
            core.barrier.put_json(&role_key(m, name), &r).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

async fn generate(
    core: &Arc<Core>,
    m: &MountEntry,
    name: &str,
    req: &Request,
    custom: Option<String>,
) -> ApiResult<Response> {
    let role = load_role(core, m, name)
        .await?
        .ok_or_else(|| ApiError::new(404, format!("role \"{name}\" does not exist")))?;
    if !role.bind_secret_id {
        return Err(ApiError::bad_request(
            "bind_secret_id is not set on the role; secret ids are not used",
        ));
    }
    let metadata: BTreeMap<String, String> = match req.data.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::String(s)) if s.trim().is_empty() => BTreeMap::new(),
        Some(Value::String(s)) => serde_json::from_str::<BTreeMap<String, String>>(s).map_err(|_| {
            ApiError::bad_request(
                "failed to parse metadata: failed to parse the input: invalid <key,value> format",
            )
        })?,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "Field validation failed: error converting input for field \"metadata\": '' expected type 'string', got unconvertible type '{}'",
                if v.is_object() { "map[string]interface {}" } else { "[]interface {}" }
            )))
        }
    };
    let cidr_list = req.str_list_field("cidr_list")?.unwrap_or_default();
    let parsed = airlock_core::cidr::parse_list(&cidr_list).map_err(ApiError::bad_request)?;
    let token_bound_cidrs = req.str_list_field("token_bound_cidrs")?.unwrap_or_default();
    let parsed_tok =
        airlock_core::cidr::parse_list(&token_bound_cidrs).map_err(ApiError::bad_request)?;
    // A secret id may narrow the role's address bindings, never widen them.
    let role_sid = airlock_core::cidr::parse_list(&role.secret_id_bound_cidrs)
        .map_err(|e| ApiError::internal(&e))?;
    if !airlock_core::cidr::subset(&parsed, &role_sid) {
        return Err(ApiError::bad_request(
            "failed to verify the CIDR restrictions set on the secret ID: cidr_list must lie within the role's secret_id_bound_cidrs",
        ));
    }
    let role_tok = airlock_core::cidr::parse_list(&role.token.token_bound_cidrs)
        .map_err(|e| ApiError::internal(&e))?;
    if !airlock_core::cidr::subset(&parsed_tok, &role_tok) {
        return Err(ApiError::bad_request(
            "failed to verify the CIDR restrictions set on the secret ID: token_bound_cidrs must lie within the role's token_bound_cidrs",
        ));
    }
    // A secret id may narrow the role's limits, never widen them.
    let mut num_uses = role.secret_id_num_uses;
    if let Some(n) = req.int_field("num_uses")? {
        if n < 0 {
            return Err(ApiError::bad_request("num_uses cannot be negative"));
        }
        if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) {
            return Err(ApiError::bad_request(
                "num_uses cannot be higher than the role's secret_id_num_uses",
            ));
        }
        num_uses = n;
    }
    let mut ttl = role.secret_id_ttl;
    if let Some(t) = req.duration_field("ttl")? {
        if role.secret_id_ttl > 0 && (t == 0 || t > role.secret_id_ttl) {
            return Err(ApiError::bad_request(
                "ttl cannot be longer than the role's secret_id_ttl",
            ));
        }
        ttl = t;
    }
    let secret = zeroize::Zeroizing::new(custom.unwrap_or_else(new_uuid));
    if secret.len() > 4096 {
        return Err(ApiError::bad_request("secret_id is too long"));
    }
    let h = core.tokens.hmac(&secret)?;
    let sk = key(m, &format!("secret-id/{}/{h}", role.name));
    if core.barrier.get(&sk).await?.is_some() {
        return Err(ApiError::bad_request("secret_id is already registered"));
    }
    let now = now_nanos();
    let e = SecretId {
        accessor: new_uuid(),
        metadata,
        cidr_list,
        token_bound_cidrs,
        num_uses,
        ttl,
        creation: now,
        expiration: (ttl > 0).then(|| now + ttl as i128 * 1_000_000_000),
        last_updated: now,
    };
    core.barrier
        .commit(vec![
            BarrierOp::Put(
                sk,
                serde_json::to_vec(&e).map_err(|e| ApiError::internal(&e))?,
            ),
            BarrierOp::Put(
                key(m, &format!("accessor/{}/{}", role.name, e.accessor)),
                serde_json::to_vec(&h).map_err(|e| ApiError::internal(&e))?,
            ),
        ])
        .await?;
    let mut r = Response::data(json!({
        "secret_id": secret.as_str(),
        "secret_id_accessor": e.accessor,
        "secret_id_num_uses": e.num_uses,
        "secret_id_ttl": e.ttl,
    }));
    r.wrapped_accessor = Some(e.accessor.clone());
    Ok(r)
}

async fn find_secret(
    core: &Core,
    m: &MountEntry,
    role: &str,
    secret: &str,
) -> ApiResult<Option<(String, SecretId)>> {
    let h = core.tokens.hmac(secret)?;
    let e: Option<SecretId> = core
        .barrier
        .get_json(&key(m, &format!("secret-id/{role}/{h}")))
        .await?;
    Ok(e.map(|e| (h, e)))
}

async fn accessor_hash(
    core: &Core,
    m: &MountEntry,
    role: &str,
    acc: &str,
) -> ApiResult<Option<String>> {
    if acc.is_empty() || acc.contains('/') || acc.len() > 128 {
        return Ok(None);
    }
    Ok(core
        .barrier
        .get_json::<String>(&key(m, &format!("accessor/{role}/{acc}")))
        .await?)
}

async fn delete_secret(
    core: &Core,
    m: &MountEntry,
    role: &str,
    h: &str,
    acc: &str,
) -> ApiResult<()> {
    core.barrier
        .commit(vec![
            BarrierOp::Delete(key(m, &format!("secret-id/{role}/{h}"))),
            BarrierOp::Delete(key(m, &format!("accessor/{role}/{acc}"))),
        ])
        .await?;
    Ok(())
}

async fn list_accessors(core: &Core, m: &MountEntry, name: &str) -> ApiResult<Response> {
    let role = need_role(core, m, name).await?;
    let mut keys = core
        .barrier
        .list(&key(m, &format!("accessor/{}/", role.name)))
        .await?;
    keys.retain(|k| !k.ends_with('/'));
    if keys.is_empty() {
        return Err(super::not_found());
    }
    Ok(Response::list(keys))
}

/// Removes expired secret ids (and accessors whose secret id is gone). Returns how many.
pub async fn tidy(core: &Core, m: &MountEntry) -> ApiResult<usize> {
    let now = now_nanos();
    let mut removed = 0;
    for k in core.barrier.scan(&key(m, "secret-id/")).await? {
        let Some(e) = core.barrier.get_json::<SecretId>(&k).await? else {
            continue;
        };
        if e.expired(now) {
            let rel = k.trim_start_matches(&m.storage_prefix()).to_string();
            let parts: Vec<&str> = rel.split('/').collect();
            if let [_, role, h] = parts.as_slice() {
                delete_secret(core, m, role, h, &e.accessor).await?;
                removed += 1;
            }
        }
    }
    for k in core.barrier.scan(&key(m, "accessor/")).await? {
        let rel = k.trim_start_matches(&m.storage_prefix()).to_string();
        let parts: Vec<&str> = rel.split('/').collect();
        if let ([_, role, _], Some(h)) =
            (parts.as_slice(), core.barrier.get_json::<String>(&k).await?)
        {
            if core
                .barrier
                .get(&key(m, &format!("secret-id/{role}/{h}")))
                .await?
                .is_none()
            {
                core.barrier
                    .commit(vec![BarrierOp::Delete(k.clone())])
                    .await?;
            }
        }
    }
    Ok(removed)
}

const INVALID: &str = "invalid role or secret ID";

fn cidr_refusal(ip: Option<std::net::IpAddr>, what: &str) -> ApiError {
    let ip = ip.map(|i| i.to_string()).unwrap_or_default();
    ApiError::bad_request(format!(
        "source address \"{ip}\" unauthorized by CIDR restrictions on {what}"
    ))
}

pub async fn login(core: &Arc<Core>, m: &MountEntry, req: &Request) -> ApiResult<LoginOutcome> {
    let role_id = req
        .str_field("role_id")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing role_id"))?;
    let name: Option<String> = core
        .barrier
        .get_json(&key(m, &format!("role-id/{}", core.tokens.hmac(&role_id)?)))
        .await?;
    let role = match name {
        Some(n) => load_role(core, m, &n).await?,
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
        let h = core.tokens.hmac(&secret)?;
        let sk = key(m, &format!("secret-id/{}/{h}", role.name));
        let _g = core.locks.lock(&sk).await;
        let Some(mut e) = core.barrier.get_json::<SecretId>(&sk).await? else {
            return Err(ApiError::bad_request(INVALID));
        };
        let now = now_nanos();
        if e.expired(now) {
            delete_secret(core, m, &role.name, &h, &e.accessor).await?;
            return Err(ApiError::bad_request(INVALID));
        }
        let cidrs =
            airlock_core::cidr::parse_list(&e.cidr_list).map_err(|e| ApiError::internal(&e))?;
        if !airlock_core::cidr::allows(&cidrs, ip) {
            return Err(cidr_refusal(ip, "the secret ID"));
        }
        if e.num_uses > 0 {
            if e.num_uses == 1 {
                delete_secret(core, m, &role.name, &h, &e.accessor).await?;
            } else {
                e.num_uses -= 1;
                e.last_updated = now;
                core.barrier.put_json(&sk, &e).await?;
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
    Ok(LoginOutcome {
        settings,
        meta,
        display_name: String::new(),
        alias: role.role_id.clone(),
        extra_policies: Vec::new(),
    })
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
