//! The token store (`auth/token/*`): minting, lookup, renewal, revocation of token trees,
//! accessors, roles, and purging of expired tokens.
//!
//! Storage layout (all behind the barrier; ids are HMAC-SHA256 of the token under a key that
//! itself lives behind the barrier, so a stolen database holds no usable token):
//! - `token/id/<hash>`: the [`TokenEntry`]
//! - `token/accessor/<hmac(accessor)>`: `{accessor, id_hash}`
//! - `token/parent/<parent hash>/<child hash>`: the parent/child tree
//! - `token/expiry/<unix secs, 20 digits>/<hash>`: expiry index for purging
//! - `token/roles/<name>`: token roles

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use airlock_core::token_format;
use airlock_store::BarrierOp;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::core::{now_unix, random_base62, random_bytes, rfc3339_nanos, Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{AuthBlock, Op, Request, Response};

#[derive(Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub id_hash: String,
    pub accessor: String,
    pub parent: Option<String>,
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    pub num_uses: i64,
    pub creation_time: i64,
    pub creation_ttl: i64,
    /// Unix seconds; `None` = never expires (root tokens without TTL).
    pub expire_time: Option<i64>,
    pub explicit_max_ttl: i64,
    pub period: i64,
    pub renewable: bool,
    pub orphan: bool,
    pub path: String,
    pub role: Option<String>,
    pub last_renewal: Option<i64>,
    /// Nanosecond issue time for `issue_time`.
    pub issue_nanos: i128,
    /// The period came from a token role (Vault does not show it in lookups then).
    #[serde(default)]
    pub period_from_role: bool,
    /// A cap from the token role's `token_explicit_max_ttl` (enforced, not shown).
    #[serde(default)]
    pub role_max_ttl: i64,
    /// The TTL a renewal without increment grants (the last granted increment).
    #[serde(default)]
    pub renew_ttl: i64,
    /// Client addresses allowed to use the token (`token_bound_cidrs`; empty = any).
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
    /// A stable id per (auth mount, alias) for tokens issued by logins.
    #[serde(default)]
    pub entity_id: String,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl TokenEntry {
    pub fn ttl_remaining(&self, now: i64) -> i64 {
        match self.expire_time {
            Some(e) => (e - now).max(0),
            None => 0,
        }
    }

    pub fn auth_block(&self, token: &str, now: i64) -> AuthBlock {
        let ttl = self.ttl_remaining(now);
        AuthBlock {
            client_token: token.to_string(),
            accessor: self.accessor.clone(),
            policies: self.policies.clone(),
            token_policies: self.policies.clone(),
            metadata: if self.meta.is_empty() {
                None
            } else {
                Some(self.meta.clone())
            },
            lease_duration: ttl,
            renewable: self.renewable && self.expire_time.is_some(),
            entity_id: self.entity_id.clone(),
            token_type: "service".into(),
            orphan: self.orphan,
            mfa_requirement: None,
            num_uses: self.num_uses,
        }
    }

    /// The `data` of lookup responses. `id` is empty for lookups by accessor.
    fn lookup_data(&self, id: &str, now: i64) -> Value {
        let mut m = json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": self.expire_time.map(|e| rfc3339_nanos(e as i128 * 1_000_000_000)),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id,
            "issue_time": rfc3339_nanos(self.issue_nanos),
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.orphan,
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": self.ttl_remaining(now),
            "type": "service",
        });
        if let Value::Object(map) = &mut m {
            if self.period > 0 && !self.period_from_role {
                map.insert("period".into(), json!(self.period));
            }
            if let Some(r) = &self.role {
                map.insert("role".into(), json!(r));
            }
            if !self.bound_cidrs.is_empty() {
                map.insert("bound_cidrs".into(), json!(self.bound_cidrs));
            }
            if let Some(l) = self.last_renewal {
                map.insert("last_renewal_time".into(), json!(l));
                map.insert(
                    "last_renewal".into(),
                    json!(rfc3339_nanos(l as i128 * 1_000_000_000)),
                );
            }
        }
        m
    }
}

#[derive(Clone, Serialize, Deserialize, Default)]
pub struct TokenRole {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub period: i64,
    pub explicit_max_ttl: i64,
    pub path_suffix: String,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
    /// Values set through the deprecated `period` / `explicit_max_ttl` names, shown under
    /// those names as Vault does.
    #[serde(default)]
    pub legacy_period: i64,
    #[serde(default)]
    pub legacy_explicit_max_ttl: i64,
}

#[derive(Serialize, Deserialize)]
struct AccessorEntry {
    accessor: String,
    id_hash: String,
}

#[derive(Default)]
pub struct TokenStore {
    key: RwLock<Option<Arc<Zeroizing<Vec<u8>>>>>,
}

fn id_key(h: &str) -> String {
    format!("token/id/{h}")
}
fn expiry_key(t: i64, h: &str) -> String {
    format!("token/expiry/{:020}/{h}", t.max(0))
}

/// Vault's display-name rule: `token` or `token-<name>` with odd characters replaced.
fn display_name(raw: Option<&str>, prefix: &str) -> String {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => prefix.to_string(),
        Some(n) => {
            let clean: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .take(128)
                .collect();
            format!("{prefix}-{clean}")
        }
    }
}

/// OpenBao prints TTLs in warnings like Go durations without trailing zero units.
pub fn short_duration(secs: i64) -> String {
    airlock_core::lease::short_duration(secs.max(0) as u64)
}

fn sorted_policies(mut p: Vec<String>) -> Vec<String> {
    p.retain(|x| !x.is_empty());
    p.sort();
    p.dedup();
    p
}

impl TokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_key(&self, k: Zeroizing<Vec<u8>>) {
        if let Ok(mut g) = self.key.write() {
            *g = Some(Arc::new(k));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut g) = self.key.write() {
            *g = None;
        }
    }

    pub fn hmac(&self, s: &str) -> ApiResult<String> {
        let key = self
            .key
            .read()
            .ok()
            .and_then(|k| k.clone())
            .ok_or_else(ApiError::sealed)?;
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|e| ApiError::internal(&e))?;
        mac.update(s.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// The root token: from `sys/init` it is Vault's `root` token at `auth/token/root`; in
    /// dev mode it looks like OpenBao's dev root token (created through `auth/token/create`).
    pub async fn create_root(
        &self,
        core: &Core,
        id: Option<String>,
    ) -> ApiResult<Zeroizing<String>> {
        let dev = core.config.dev.is_some();
        let params = CreateParams {
            id,
            policies: vec!["root".into()],
            path: if dev {
                "auth/token/create"
            } else {
                "auth/token/root"
            }
            .into(),
            display_name: if dev { "token" } else { "root" }.into(),
            ..Default::default()
        };
        let (token, _, _) = self.create(core, params, None).await?;
        Ok(token)
    }

    async fn get_entry(&self, core: &Core, h: &str) -> ApiResult<Option<TokenEntry>> {
        Ok(core.barrier.get_json(&id_key(h)).await?)
    }

    /// Looks a token up without consuming a use. Expired tokens are revoked and not found.
    pub async fn lookup(&self, core: &Core, token: &str) -> ApiResult<Option<TokenEntry>> {
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        if token.starts_with(token_format::TOKEN_PREFIX) && !token_format::is_well_formed(token) {
            return Ok(None);
        }
        let h = self.hmac(token)?;
        let Some(e) = self.get_entry(core, &h).await? else {
            return Ok(None);
        };
        if let Some(exp) = e.expire_time {
            if exp <= now_unix() {
                self.revoke_tree(core, &h).await?;
                return Ok(None);
            }
        }
        if e.num_uses < 0 {
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// Looks a token up for a request, consuming one use if it is use-limited. A token whose
    /// last use this is comes back with `num_uses == -1` and is revoked after the request.
    pub async fn lookup_for_use(
        &self,
        core: &Core,
        token: &str,
        remote: Option<std::net::IpAddr>,
    ) -> ApiResult<Option<TokenEntry>> {
        let Some(mut e) = self.lookup(core, token).await? else {
            return Ok(None);
        };
        // Bound to client addresses: refused from elsewhere (and when the list cannot be
        // read), before a use is counted.
        if !e.bound_cidrs.is_empty() {
            let allowed = airlock_core::cidr::parse_list(&e.bound_cidrs)
                .map(|l| airlock_core::cidr::allows(&l, remote))
                .unwrap_or(false);
            if !allowed {
                return Ok(None);
            }
        }
        if e.num_uses > 0 {
            let key = id_key(&e.id_hash);
            let _g = core.locks.lock(&key).await;
            let Some(mut cur) = self.get_entry(core, &e.id_hash).await? else {
                return Ok(None);
            };
            if cur.num_uses < 0 {
                return Ok(None);
            }
            cur.num_uses = if cur.num_uses == 1 {
                -1
            } else {
                cur.num_uses - 1
            };
            core.barrier.put_json(&key, &cur).await?;
            e = cur;
        }
        Ok(Some(e))
    }

    pub async fn by_accessor(&self, core: &Core, accessor: &str) -> ApiResult<Option<TokenEntry>> {
        if accessor.is_empty() || accessor.len() > 256 {
            return Ok(None);
        }
        let ah = self.hmac(accessor)?;
        let Some(ae) = core
            .barrier
            .get_json::<AccessorEntry>(&format!("token/accessor/{ah}"))
            .await?
        else {
            return Ok(None);
        };
        let e = self.get_entry(core, &ae.id_hash).await?;
        Ok(e.filter(|e| e.expire_time.map(|x| x > now_unix()).unwrap_or(true)))
    }

    pub async fn create(
        &self,
        core: &Core,
        p: CreateParams,
        parent: Option<&TokenEntry>,
    ) -> ApiResult<(Zeroizing<String>, TokenEntry, Vec<String>)> {
        let token = Zeroizing::new(match p.id {
            Some(id) => {
                if id.is_empty()
                    || id.len() > 256
                    || id.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(ApiError::bad_request("invalid token id"));
                }
                id
            }
            None => token_format::mint_token(&random_bytes::<96>()),
        });
        let h = self.hmac(&token)?;
        if self.get_entry(core, &h).await?.is_some() {
            return Err(ApiError::bad_request(
                "cannot create a token with a duplicate ID",
            ));
        }
        let now = now_unix();
        let is_root = p.policies.iter().any(|x| x == "root");
        let max = core.config.max_ttl();
        let (ttl, explicit) = (p.ttl.unwrap_or(0), p.explicit_max_ttl.unwrap_or(0));
        let mut ttl = if p.period > 0 {
            p.period
        } else if ttl > 0 {
            ttl
        } else if is_root && explicit == 0 {
            0
        } else {
            core.config.default_ttl()
        };
        if ttl > 0 && p.period == 0 && !p.ttl_uncapped {
            ttl = ttl.min(max);
        }
        let mut warnings = Vec::new();
        for cap in [explicit, p.role_max_ttl] {
            if cap > 0 && (ttl == 0 || ttl > cap) {
                if ttl > 0 && p.ttl.is_some() {
                    warnings.push(format!(
                        "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                        short_duration(ttl),
                        short_duration(cap)
                    ));
                }
                ttl = cap;
            }
        }
        let entry = TokenEntry {
            id_hash: h.clone(),
            accessor: random_base62(24),
            parent: parent.map(|x| x.id_hash.clone()),
            policies: p.policies,
            meta: p.meta,
            display_name: p.display_name,
            num_uses: p.num_uses,
            creation_time: now,
            creation_ttl: ttl,
            expire_time: if ttl > 0 { Some(now + ttl) } else { None },
            explicit_max_ttl: explicit,
            period: p.period,
            renewable: p.renewable,
            orphan: parent.is_none(),
            path: p.path,
            role: p.role,
            last_renewal: None,
            issue_nanos: crate::core::now_nanos(),
            period_from_role: p.period_from_role,
            role_max_ttl: p.role_max_ttl,
            renew_ttl: ttl,
            bound_cidrs: p.bound_cidrs,
            entity_id: p.entity_id,
        };
        let mut ops = vec![
            BarrierOp::Put(
                id_key(&h),
                serde_json::to_vec(&entry).map_err(|e| ApiError::internal(&e))?,
            ),
            BarrierOp::Put(
                format!("token/accessor/{}", self.hmac(&entry.accessor)?),
                serde_json::to_vec(&AccessorEntry {
                    accessor: entry.accessor.clone(),
                    id_hash: h.clone(),
                })
                .map_err(|e| ApiError::internal(&e))?,
            ),
        ];
        if let Some(par) = parent {
            ops.push(BarrierOp::Put(
                format!("token/parent/{}/{h}", par.id_hash),
                Vec::new(),
            ));
        }
        if let Some(exp) = entry.expire_time {
            ops.push(BarrierOp::Put(expiry_key(exp, &h), Vec::new()));
        }
        core.barrier.commit(ops).await?;
        Ok((token, entry, warnings))
    }

    /// Revokes a token and, recursively, all its children.
    pub async fn revoke_tree(&self, core: &Core, h: &str) -> ApiResult<()> {
        let mut stack = vec![h.to_string()];
        let mut order = Vec::new();
        while let Some(cur) = stack.pop() {
            let children = core.barrier.list(&format!("token/parent/{cur}/")).await?;
            for c in children {
                stack.push(c.trim_end_matches('/').to_string());
            }
            order.push(cur);
            if order.len() > 1_000_000 {
                break;
            }
        }
        // Children first, so a crash mid-way never leaves a child without its parent entry
        // being revocable again.
        for cur in order.iter().rev() {
            self.revoke_one(core, cur).await?;
        }
        Ok(())
    }

    async fn revoke_one(&self, core: &Core, h: &str) -> ApiResult<()> {
        let Some(e) = self.get_entry(core, h).await? else {
            return Ok(());
        };
        // Leases die with their token (failed ones stay queued for the expiry task).
        crate::leases::revoke_for_token(core, h).await?;
        let mut ops = vec![
            BarrierOp::Delete(id_key(h)),
            BarrierOp::Delete(format!("token/accessor/{}", self.hmac(&e.accessor)?)),
        ];
        if let Some(p) = &e.parent {
            ops.push(BarrierOp::Delete(format!("token/parent/{p}/{h}")));
        }
        if let Some(exp) = e.expire_time {
            ops.push(BarrierOp::Delete(expiry_key(exp, h)));
        }
        for c in core.barrier.list(&format!("token/parent/{h}/")).await? {
            ops.push(BarrierOp::Delete(format!("token/parent/{h}/{c}")));
        }
        core.barrier.commit(ops).await?;
        Ok(())
    }

    /// Revokes every token whose creation path starts with `prefix` (an auth mount being
    /// disabled). A full scan: rare, and proportional to the number of live tokens.
    pub async fn revoke_by_path_prefix(&self, core: &Core, prefix: &str) -> ApiResult<usize> {
        let mut n = 0;
        for k in core.barrier.scan("token/id/").await? {
            let Some(e) = core.barrier.get_json::<TokenEntry>(&k).await? else {
                continue;
            };
            if e.path.starts_with(prefix) {
                self.revoke_tree(core, &e.id_hash).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Revokes only this token; its children become orphans.
    async fn revoke_orphan(&self, core: &Core, h: &str) -> ApiResult<()> {
        for c in core.barrier.list(&format!("token/parent/{h}/")).await? {
            let ch = c.trim_end_matches('/').to_string();
            let key = id_key(&ch);
            let _g = core.locks.lock(&key).await;
            if let Some(mut ce) = self.get_entry(core, &ch).await? {
                ce.parent = None;
                ce.orphan = true;
                core.barrier
                    .commit(vec![
                        BarrierOp::Put(
                            key.clone(),
                            serde_json::to_vec(&ce).map_err(|e| ApiError::internal(&e))?,
                        ),
                        BarrierOp::Delete(format!("token/parent/{h}/{ch}")),
                    ])
                    .await?;
            }
        }
        self.revoke_one(core, h).await
    }

    /// Revokes every token whose expiry is at or before `now`. Returns how many.
    pub async fn purge_expired(&self, core: &Core, now: i64) -> ApiResult<usize> {
        let mut n = 0;
        for bucket in core.barrier.list("token/expiry/").await? {
            let t: i64 = bucket.trim_end_matches('/').parse().unwrap_or(i64::MAX);
            if t > now {
                break;
            }
            for h in core.barrier.list(&format!("token/expiry/{bucket}")).await? {
                self.revoke_tree(core, &h).await?;
                // A stale index entry (entry already gone) is removed too.
                core.barrier
                    .delete(&format!("token/expiry/{bucket}{h}"))
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn renew(
        &self,
        core: &Core,
        h: &str,
        increment: Option<i64>,
    ) -> ApiResult<(TokenEntry, Vec<String>)> {
        let key = id_key(h);
        let _g = core.locks.lock(&key).await;
        let mut e = self
            .get_entry(core, h)
            .await?
            .ok_or_else(|| ApiError::bad_request("token not found"))?;
        let now = now_unix();
        let (Some(old_exp), true) = (e.expire_time, e.renewable) else {
            // Tokens without a TTL (root) and non-renewable tokens cannot be renewed.
            return Err(ApiError::bad_request("lease is not renewable"));
        };
        let mut warnings = Vec::new();
        let requested = if e.period > 0 {
            e.period
        } else {
            let last = if e.renew_ttl > 0 {
                e.renew_ttl
            } else {
                e.creation_ttl
            };
            increment.filter(|i| *i > 0).unwrap_or(last)
        };
        let mut max_exp = if e.period > 0 {
            i64::MAX
        } else {
            e.creation_time + core.config.max_ttl()
        };
        for cap in [e.explicit_max_ttl, e.role_max_ttl] {
            if cap > 0 {
                max_exp = max_exp.min(e.creation_time + cap);
            }
        }
        if increment.is_some_and(|i| i > 0) {
            e.renew_ttl = requested;
        }
        let mut new_exp = now + requested;
        if new_exp > max_exp {
            new_exp = max_exp;
            if e.period == 0 {
                warnings.push(format!(
                    "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                    short_duration(requested),
                    short_duration(max_exp - now)
                ));
            }
        }
        e.expire_time = Some(new_exp);
        e.last_renewal = Some(now);
        core.barrier
            .commit(vec![
                BarrierOp::Delete(expiry_key(old_exp, h)),
                BarrierOp::Put(expiry_key(new_exp, h), Vec::new()),
                BarrierOp::Put(
                    key.clone(),
                    serde_json::to_vec(&e).map_err(|x| ApiError::internal(&x))?,
                ),
            ])
            .await?;
        Ok((e, warnings))
    }

    pub async fn role_exists(&self, core: &Core, name: &str) -> ApiResult<bool> {
        Ok(core
            .barrier
            .get(&format!("token/roles/{name}"))
            .await?
            .is_some())
    }
}

#[derive(Default)]
pub struct CreateParams {
    pub id: Option<String>,
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    pub num_uses: i64,
    pub ttl: Option<i64>,
    pub explicit_max_ttl: Option<i64>,
    pub period: i64,
    pub renewable: bool,
    pub path: String,
    pub role: Option<String>,
    pub period_from_role: bool,
    pub role_max_ttl: i64,
    pub bound_cidrs: Vec<String>,
    pub entity_id: String,
    /// Keep the requested TTL even above the system maximum (wrapping tokens, as Vault).
    pub ttl_uncapped: bool,
}

fn token_param<'a>(req: &'a Request, caller: &'a Caller, key: &str) -> ApiResult<String> {
    match req.str_field(key)? {
        Some(t) if !t.is_empty() => Ok(t),
        _ => {
            let _ = caller;
            Err(ApiError::bad_request(if key == "token" {
                "missing token ID".to_string()
            } else {
                format!("missing {key}")
            }))
        }
    }
}

fn auth_response(e: &TokenEntry, token: &str, warnings: Vec<String>) -> Response {
    let mut r = Response::empty();
    r.auth = Some(e.auth_block(token, now_unix()));
    r.warnings = warnings;
    r
}

async fn handle_create(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    orphan_path: bool,
    role_name: Option<&str>,
) -> ApiResult<Response> {
    let parent = caller
        .entry
        .as_ref()
        .ok_or_else(ApiError::permission_denied)?;
    let role = match role_name {
        Some(n) => Some(
            core.barrier
                .get_json::<TokenRole>(&format!("token/roles/{n}"))
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("unknown role {n}")))?,
        ),
        None => None,
    };
    if let Some(t) = req.str_field("type")? {
        if t != "service" && !t.is_empty() && t != "default-service" && t != "default" {
            return Err(ApiError::bad_request(format!(
                "token type \"{t}\" is not supported by Airlock; use \"service\""
            )));
        }
    }
    let id = req.str_field("id")?;
    if id.is_some() && !caller.is_root {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to specify token id",
        ));
    }
    let no_parent = req.bool_field("no_parent")?.unwrap_or(false);
    if no_parent && !orphan_path && !caller.is_root && !caller.acl.has_sudo(&req.path) {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let orphan = orphan_path || no_parent || role.as_ref().map(|r| r.orphan).unwrap_or(false);
    let no_default = req.bool_field("no_default_policy")?.unwrap_or(false)
        || role
            .as_ref()
            .map(|r| r.token_no_default_policy)
            .unwrap_or(false);
    let requested = req.str_list_field_nosplit("policies")?.map(|ps| {
        ps.into_iter()
            .map(|p| p.trim().to_lowercase())
            .collect::<Vec<_>>()
    });
    let parent_is_root = parent.policies.iter().any(|p| p == "root");
    let mut policies = match (&requested, &role) {
        (Some(p), _) if !p.is_empty() => p.clone(),
        (_, Some(r)) if !r.allowed_policies.is_empty() => r.allowed_policies.clone(),
        _ => parent
            .policies
            .iter()
            .filter(|p| *p != "default" || !no_default)
            .cloned()
            .collect(),
    };
    policies = sorted_policies(policies);
    if let Some(r) = &role {
        let mut with_default = policies.clone();
        if !no_default {
            with_default.push("default".into());
        }
        let with_default = sorted_policies(with_default);
        for p in &with_default {
            if r.disallowed_policies.contains(p) {
                return Err(ApiError::bad_request(format!(
                    "token policies ({}) contains disallowed policies ({})",
                    go_quoted_list(&with_default),
                    go_quoted_list(&r.disallowed_policies)
                )));
            }
        }
        let mut allowed = r.allowed_policies.clone();
        allowed.push("default".into());
        let allowed = sorted_policies(allowed);
        if !r.allowed_policies.is_empty() && with_default.iter().any(|p| !allowed.contains(p)) {
            return Err(ApiError::bad_request(format!(
                "token policies ({}) must be subset of the role's allowed policies ({}) or glob policies ([])",
                go_quoted_list(&with_default),
                go_quoted_list(&allowed)
            )));
        }
    } else if !parent_is_root && !caller.acl.has_sudo(&req.path) {
        for p in &policies {
            if p != "default" && !parent.policies.contains(p) {
                return Err(ApiError::bad_request(
                    "child policies must be subset of parent",
                ));
            }
        }
    }
    if policies.iter().any(|p| p == "root") && !parent_is_root {
        return Err(ApiError::bad_request(
            "root tokens may not be created from non-root tokens",
        ));
    }
    if !no_default && !policies.iter().any(|p| p == "root" || p == "default") {
        policies.push("default".into());
        policies = sorted_policies(policies);
    }
    if policies.is_empty() {
        return Err(ApiError::bad_request("token must have at least one policy"));
    }
    let num_uses = req.int_field("num_uses")?.unwrap_or(0);
    if num_uses < 0 {
        return Err(ApiError::bad_request("number of uses cannot be negative"));
    }
    let ttl = match req.duration_field("ttl")? {
        Some(t) => Some(t),
        None => req.duration_field("lease")?,
    };
    let explicit = req.duration_field("explicit_max_ttl")?;
    let mut role_max_ttl = 0;
    let mut period = req.duration_field("period")?.unwrap_or(0);
    let mut renewable = req.bool_field("renewable")?.unwrap_or(true);
    let mut period_from_role = false;
    if let Some(r) = &role {
        if r.period > 0 {
            period = r.period;
            period_from_role = true;
        }
        role_max_ttl = r.explicit_max_ttl;
        if !r.renewable {
            renewable = false;
        }
    }
    if period > 0 && !caller.is_root && role.is_none() && !caller.acl.has_sudo(&req.path) {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let meta = req.kv_pairs_field("meta")?.unwrap_or_default();
    let path = match (role_name, &role) {
        (Some(n), Some(r)) if !r.path_suffix.is_empty() => {
            format!("auth/token/create/{n}/{}", r.path_suffix)
        }
        (Some(n), _) => format!("auth/token/create/{n}"),
        (None, _) => req.path.clone(),
    };
    // Vault warns about (but accepts) policies that do not exist.
    let mut warnings = Vec::new();
    for p in &policies {
        if p != "default" && p != "root" && !core.policies.exists(core, p).await? {
            warnings.push(format!("Policy \"{p}\" does not exist"));
        }
    }
    let params = CreateParams {
        id,
        policies,
        meta,
        display_name: display_name(req.str_field("display_name")?.as_deref(), "token"),
        num_uses: num_uses.max(role.as_ref().map(|r| r.token_num_uses).unwrap_or(0)),
        ttl,
        explicit_max_ttl: explicit,
        period,
        renewable,
        path,
        role: role_name.map(str::to_string),
        period_from_role,
        role_max_ttl,
        ..Default::default()
    };
    let (token, entry, cap_warnings) = core
        .tokens
        .create(core, params, if orphan { None } else { Some(parent) })
        .await?;
    warnings.extend(cap_warnings);
    Ok(auth_response(&entry, &token, warnings))
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", inner.join(" "))
}

fn role_json(r: &TokenRole) -> Value {
    json!({
        "allowed_entity_aliases": null,
        "allowed_policies": r.allowed_policies,
        "allowed_policies_glob": [],
        "disallowed_policies": r.disallowed_policies,
        "disallowed_policies_glob": [],
        "explicit_max_ttl": r.legacy_explicit_max_ttl,
        "name": r.name,
        "orphan": r.orphan,
        "path_suffix": r.path_suffix,
        "period": r.legacy_period,
        "renewable": r.renewable,
        "token_explicit_max_ttl": r.explicit_max_ttl,
        "token_no_default_policy": r.token_no_default_policy,
        "token_period": r.period,
        "token_type": "default-service",
    })
}

async fn write_role(core: &Core, req: &Request, name: &str) -> ApiResult<Response> {
    let key = format!("token/roles/{name}");
    let _g = core.locks.lock(&key).await;
    let mut r = core
        .barrier
        .get_json::<TokenRole>(&key)
        .await?
        .unwrap_or(TokenRole {
            name: name.to_string(),
            renewable: true,
            ..Default::default()
        });
    if let Some(v) = req.str_list_field("allowed_policies")? {
        r.allowed_policies = sorted_policies(v);
    }
    if let Some(v) = req.str_list_field("disallowed_policies")? {
        r.disallowed_policies = sorted_policies(v);
    }
    if let Some(v) = req.bool_field("orphan")? {
        r.orphan = v;
    }
    if let Some(v) = req.bool_field("renewable")? {
        r.renewable = v;
    }
    if let Some(v) = req.duration_field("token_period")? {
        r.period = v;
    } else if let Some(v) = req.duration_field("period")? {
        r.period = v;
        r.legacy_period = v;
    }
    if let Some(v) = req.duration_field("token_explicit_max_ttl")? {
        r.explicit_max_ttl = v;
    } else if let Some(v) = req.duration_field("explicit_max_ttl")? {
        r.explicit_max_ttl = v;
        r.legacy_explicit_max_ttl = v;
    }
    if let Some(v) = req.str_field("path_suffix")? {
        if v.contains("..") {
            return Err(ApiError::bad_request("path_suffix cannot contain '..'"));
        }
        r.path_suffix = v;
    }
    if let Some(v) = req.bool_field("token_no_default_policy")? {
        r.token_no_default_policy = v;
    }
    if let Some(v) = req.int_field("token_num_uses")? {
        r.token_num_uses = v.max(0);
    }
    core.barrier.put_json(&key, &r).await?;
    Ok(Response::empty())
}

fn valid_role_name(n: &str) -> ApiResult<()> {
    if n.is_empty()
        || n.len() > 128
        || n.contains('/')
        || n.contains("..")
        || n.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request("invalid role name"));
    }
    Ok(())
}

/// Routes `auth/token/<rest>`.
pub async fn handle(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    rest: &str,
) -> ApiResult<Response> {
    let store = &core.tokens;
    let now = now_unix();
    let write = matches!(req.op, Op::Create | Op::Update);
    match (rest, req.op) {
        ("create", _) if write => handle_create(core, req, caller, false, None).await,
        ("create-orphan", _) if write => handle_create(core, req, caller, true, None).await,
        (r, _) if write && r.starts_with("create/") => {
            let name = &r["create/".len()..];
            valid_role_name(name)?;
            handle_create(core, req, caller, false, Some(name)).await
        }
        ("lookup-self", Op::Read) | ("lookup-self", Op::Update) => {
            let e = caller
                .entry
                .as_ref()
                .ok_or_else(ApiError::permission_denied)?;
            let tok = req.token.as_ref().map(|t| t.as_str()).unwrap_or_default();
            Ok(Response::data(e.lookup_data(tok, now)))
        }
        ("lookup", Op::Update) | ("lookup", Op::Read) => {
            // Without a token, lookup describes the caller (as lookup-self).
            let t = match req.str_field("token")? {
                Some(t) if !t.is_empty() => t,
                _ => req
                    .token
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            };
            match store.lookup(core, &t).await? {
                Some(e) => Ok(Response::data(e.lookup_data(&t, now))),
                None => Err(ApiError::new(403, "bad token")),
            }
        }
        ("lookup-accessor", Op::Update) => {
            let a = token_param(req, caller, "accessor")?;
            match store.by_accessor(core, &a).await? {
                Some(e) => Ok(Response::data(e.lookup_data("", now))),
                None => Err(ApiError::bad_request(crate::error::multierror(
                    "invalid accessor",
                ))),
            }
        }
        ("renew-self", Op::Update) => {
            let e = caller
                .entry
                .as_ref()
                .ok_or_else(ApiError::permission_denied)?;
            let tok = req
                .token
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default();
            let (e, w) = store
                .renew(core, &e.id_hash, req.duration_field("increment")?)
                .await?;
            Ok(auth_response(&e, &tok, w))
        }
        ("renew", Op::Update) => {
            let t = token_param(req, caller, "token")?;
            let e = store
                .lookup(core, &t)
                .await?
                .ok_or_else(|| ApiError::bad_request("token not found"))?;
            let (e, w) = store
                .renew(core, &e.id_hash, req.duration_field("increment")?)
                .await?;
            Ok(auth_response(&e, &t, w))
        }
        ("renew-accessor", Op::Update) => {
            let a = token_param(req, caller, "accessor")?;
            let e = store
                .by_accessor(core, &a)
                .await?
                .ok_or_else(|| ApiError::bad_request("invalid accessor"))?;
            let (e, w) = store
                .renew(core, &e.id_hash, req.duration_field("increment")?)
                .await?;
            Ok(auth_response(&e, "", w))
        }
        ("revoke-self", Op::Update) => {
            let e = caller
                .entry
                .as_ref()
                .ok_or_else(ApiError::permission_denied)?;
            store.revoke_tree(core, &e.id_hash).await?;
            Ok(Response::empty())
        }
        ("revoke", Op::Update) => {
            let t = token_param(req, caller, "token")?;
            if let Some(e) = store.lookup(core, &t).await? {
                store.revoke_tree(core, &e.id_hash).await?;
            }
            Ok(Response::empty())
        }
        ("revoke-accessor", Op::Update) => {
            let a = token_param(req, caller, "accessor")?;
            match store.by_accessor(core, &a).await? {
                Some(e) => {
                    store.revoke_tree(core, &e.id_hash).await?;
                    Ok(Response::empty())
                }
                None => {
                    let mut r = Response::empty();
                    r.warnings.push("No token found with this accessor".into());
                    Ok(r)
                }
            }
        }
        ("revoke-orphan", Op::Update) => {
            let t = token_param(req, caller, "token")?;
            if let Some(e) = store.lookup(core, &t).await? {
                store.revoke_orphan(core, &e.id_hash).await?;
            }
            Ok(Response::empty())
        }
        ("accessors" | "accessors/", Op::List) => {
            let mut keys = Vec::new();
            for k in core.barrier.list("token/accessor/").await? {
                if let Some(a) = core
                    .barrier
                    .get_json::<AccessorEntry>(&format!("token/accessor/{k}"))
                    .await?
                {
                    keys.push(a.accessor);
                }
            }
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(Response::list(keys))
        }
        ("roles" | "roles/", Op::List) => {
            let keys = core.barrier.list("token/roles/").await?;
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(Response::list(keys))
        }
        (r, op) if r.starts_with("roles/") => {
            let name = &r["roles/".len()..];
            valid_role_name(name)?;
            match op {
                Op::Read => match core
                    .barrier
                    .get_json::<TokenRole>(&format!("token/roles/{name}"))
                    .await?
                {
                    Some(role) => Ok(Response::data(role_json(&role))),
                    None => Err(ApiError::not_found()),
                },
                Op::Create | Op::Update => write_role(core, req, name).await,
                Op::Delete => {
                    core.barrier.delete(&format!("token/roles/{name}")).await?;
                    Ok(Response::empty())
                }
                _ => Err(ApiError::unsupported_operation()),
            }
        }
        ("tidy", Op::Update) => {
            let n = store.purge_expired(core, now).await?;
            let mut r = Response::empty();
            r.warnings.push(format!("tidy removed {n} expired tokens"));
            Ok(r)
        }
        (
            "create" | "create-orphan" | "lookup-self" | "lookup" | "lookup-accessor"
            | "renew-self" | "renew" | "renew-accessor" | "revoke-self" | "revoke"
            | "revoke-accessor" | "revoke-orphan" | "accessors" | "roles" | "tidy",
            _,
        ) => Err(ApiError::unsupported_operation()),
        _ => Err(ApiError::unsupported_path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_drop_zero_units() {
        assert_eq!(short_duration(36000), "10h");
        assert_eq!(short_duration(7198), "1h59m58s");
        assert_eq!(short_duration(300), "5m");
        assert_eq!(short_duration(86399), "23h59m59s");
    }

    #[test]
    fn display_names() {
        assert_eq!(
            display_name(Some("fixture-app"), "token"),
            "token-fixture-app"
        );
        assert_eq!(display_name(None, "token"), "token");
        assert_eq!(display_name(Some("a b/c"), "token"), "token-a-b-c");
    }
}
