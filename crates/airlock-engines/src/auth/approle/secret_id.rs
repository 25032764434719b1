//! AppRole secret ids: issuing (random or custom, never wider than the role), lookup and
//! destruction by value or accessor, listing, and tidying expired ones. A secret id is stored
//! only as its HMAC: `secret-id/<role>/<hmac>` → [`SecretId`], `accessor/<role>/<accessor>`
//! → the HMAC.

use std::collections::BTreeMap;

use airlock_logical::util::{new_uuid, rfc3339_nanos};
use airlock_logical::{ApiError, ApiResult, BarrierOp, Ctx, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{load_role, need_role};

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
    pub(super) fn json(&self) -> Value {
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

    pub(super) fn expired(&self, now: i128) -> bool {
        self.expiration.map(|e| now >= e).unwrap_or(false)
    }
}

/// `secret-id-accessor/lookup` and `.../destroy`.
pub(super) async fn by_accessor(
    ctx: &Ctx,
    name: &str,
    req: &Request,
    lookup: bool,
) -> ApiResult<Response> {
    let acc = req
        .str_field("secret_id_accessor")?
        .ok_or_else(|| ApiError::bad_request("missing secret_id_accessor"))?;
    let role = need_role(ctx, name).await?;
    let Some(h) = accessor_hash(ctx, &role.name, &acc).await? else {
        let msg = format!("failed to find accessor entry for secret_id_accessor: \"{acc}\"");
        if lookup {
            return Err(ApiError::with_body(404, json!({ "error": msg })));
        }
        return Err(ApiError::bad_request(msg));
    };
    let e: Option<SecretId> = ctx
        .storage
        .get_json(&format!("secret-id/{}/{h}", role.name))
        .await?;
    if lookup {
        return Ok(e.map(|e| Response::data(e.json())).unwrap_or_default());
    }
    delete_secret(ctx, &role.name, &h, &acc).await?;
    Ok(Response::empty())
}

pub(super) async fn generate(
    ctx: &Ctx,
    name: &str,
    req: &Request,
    custom: Option<String>,
) -> ApiResult<Response> {
    let role = load_role(ctx, name)
        .await?
        .ok_or_else(|| ApiError::new(404, format!("role \"{name}\" does not exist")))?;
    if !role.bind_secret_id {
        return Err(ApiError::bad_request(
            "bind_secret_id is not set on the role; secret ids are not used",
        ));
    }
    let metadata: BTreeMap<String, String> = match req.value("metadata")?.as_deref() {
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
    let h = ctx.sys.hmac(&secret)?;
    let sk = format!("secret-id/{}/{h}", role.name);
    if ctx.storage.get(&sk).await?.is_some() {
        return Err(ApiError::bad_request("secret_id is already registered"));
    }
    let now = ctx.now_nanos();
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
    ctx.storage
        .commit(vec![
            BarrierOp::Put(
                sk,
                serde_json::to_vec(&e).map_err(|e| ApiError::internal(&e))?,
            ),
            BarrierOp::Put(
                format!("accessor/{}/{}", role.name, e.accessor),
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

pub(super) async fn find_secret(
    ctx: &Ctx,
    role: &str,
    secret: &str,
) -> ApiResult<Option<(String, SecretId)>> {
    let h = ctx.sys.hmac(secret)?;
    let e: Option<SecretId> = ctx
        .storage
        .get_json(&format!("secret-id/{role}/{h}"))
        .await?;
    Ok(e.map(|e| (h, e)))
}

pub(super) async fn accessor_hash(ctx: &Ctx, role: &str, acc: &str) -> ApiResult<Option<String>> {
    if acc.is_empty() || acc.contains('/') || acc.len() > 128 {
        return Ok(None);
    }
    ctx.storage
        .get_json::<String>(&format!("accessor/{role}/{acc}"))
        .await
}

pub(super) async fn delete_secret(ctx: &Ctx, role: &str, h: &str, acc: &str) -> ApiResult<()> {
    ctx.storage.commit(delete_secret_ops(role, h, acc)).await
}

pub(super) fn delete_secret_ops(role: &str, h: &str, acc: &str) -> Vec<BarrierOp> {
    vec![
        BarrierOp::Delete(format!("secret-id/{role}/{h}")),
        BarrierOp::Delete(format!("accessor/{role}/{acc}")),
    ]
}

pub(super) async fn list_accessors(ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let role = need_role(ctx, name).await?;
    let mut keys = ctx
        .storage
        .list(&format!("accessor/{}/", role.name))
        .await?;
    keys.retain(|k| !k.ends_with('/'));
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::list(keys))
}

/// Removes expired secret ids (and accessors whose secret id is gone). Returns how many.
pub(super) async fn tidy(ctx: &Ctx) -> ApiResult<usize> {
    let now = ctx.now_nanos();
    let mut removed = 0;
    for k in ctx.storage.scan("secret-id/").await? {
        let Some(e) = ctx.storage.get_json::<SecretId>(&k).await? else {
            continue;
        };
        if e.expired(now) {
            let rel = k.clone();
            let parts: Vec<&str> = rel.split('/').collect();
            if let [_, role, h] = parts.as_slice() {
                delete_secret(ctx, role, h, &e.accessor).await?;
                removed += 1;
            }
        }
    }
    for k in ctx.storage.scan("accessor/").await? {
        let rel = k.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        if let ([_, role, _], Some(h)) =
            (parts.as_slice(), ctx.storage.get_json::<String>(&k).await?)
        {
            if ctx
                .storage
                .get(&format!("secret-id/{role}/{h}"))
                .await?
                .is_none()
            {
                ctx.storage
                    .commit(vec![BarrierOp::Delete(k.clone())])
                    .await?;
            }
        }
    }
    Ok(removed)
}
