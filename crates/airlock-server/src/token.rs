//! The token store: minting, lookup, renewal, revocation of token trees (with their leases),
//! accessors, roles, and purging of expired tokens. Its API (`auth/token/*`) is `token_api`.
//!
//! Storage layout (all behind the barrier; ids are HMAC-SHA256 of the token under a key that
//! itself lives behind the barrier, so a stolen database holds no usable token):
//! - `token/id/<hash>`: the [`TokenEntry`]
//! - `token/accessor/<hmac(accessor)>`: `{accessor, id_hash}`
//! - `token/parent/<parent hash>/<child hash>`: the parent/child tree
//! - `token/expiry/<unix secs, 20 digits>/<hash>`: expiry index for purging
//! - `token/roles/<name>`: token roles

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_core::token_format;
use airlock_logical::util::{now_nanos, now_unix, random_base62, random_bytes, rfc3339_nanos};
use airlock_logical::{KeyLocks, View};
use airlock_store::{Barrier, BarrierOp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::hmac::HmacKey;
use crate::leases::LeaseManager;
use crate::logical::AuthBlock;

pub mod batch;

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
    /// A batch token: never stored, carried encrypted in the token itself.
    #[serde(default)]
    pub batch: bool,
}

impl TokenEntry {
    pub fn is_batch(&self) -> bool {
        self.batch
    }
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
            renewable: self.renewable && self.expire_time.is_some() && !self.batch,
            entity_id: self.entity_id.clone(),
            token_type: if self.batch { "batch" } else { "service" }.into(),
            orphan: self.orphan,
            mfa_requirement: None,
            num_uses: self.num_uses,
        }
    }

    /// The `data` of lookup responses. `id` is empty for lookups by accessor.
    pub(crate) fn lookup_data(&self, id: &str, now: i64) -> Value {
        let mut m = json!({
            "accessor": self.accessor,
            "creation_time": self.creation_time,
            "creation_ttl": self.creation_ttl,
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "expire_time": self.expire_time.map(|e| time_text(e, self.batch)),
            "explicit_max_ttl": self.explicit_max_ttl,
            "id": id,
            "issue_time": if self.batch { time_text(self.creation_time, true) } else { rfc3339_nanos(self.issue_nanos) },
            "meta": if self.meta.is_empty() { Value::Null } else { json!(self.meta) },
            "num_uses": self.num_uses,
            "orphan": self.orphan,
            "path": self.path,
            "policies": self.policies,
            "renewable": self.renewable,
            "ttl": self.ttl_remaining(now),
            "type": if self.batch { "batch" } else { "service" },
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

/// A time in lookups: RFC 3339 with nanoseconds, or whole seconds for batch tokens (which
/// carry only seconds), as OpenBao shows them.
fn time_text(unix: i64, whole_seconds: bool) -> String {
    let s = rfc3339_nanos(unix as i128 * 1_000_000_000);
    if whole_seconds {
        match s.split_once('.') {
            Some((head, _)) => format!("{head}Z"),
            None => s,
        }
    } else {
        s
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
    /// `default-service` (the default), `default-batch`, `service` or `batch`.
    #[serde(default)]
    pub token_type: String,
}

impl TokenRole {
    pub fn token_type(&self) -> &str {
        if self.token_type.is_empty() {
            "default-service"
        } else {
            &self.token_type
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct AccessorEntry {
    pub(crate) accessor: String,
    pub(crate) id_hash: String,
}

/// The token store; it owns its handles (storage, locks, config, the HMAC key, the lease
/// manager that revokes a token's leases with it).
pub struct TokenStore {
    barrier: Arc<Barrier>,
    /// The whole barrier as a view: read-modify-write sequences lock through it.
    root: View,
    config: Arc<Config>,
    key: Arc<HmacKey>,
    leases: Arc<LeaseManager>,
    /// To find the `cubbyhole/` mount, whose entries die with their token.
    router: Arc<crate::router::Router>,
}

fn id_key(h: &str) -> String {
    format!("token/id/{h}")
}
fn expiry_key(t: i64, h: &str) -> String {
    format!("token/expiry/{:020}/{h}", t.max(0))
}

/// Vault's display-name rule: `token` or `token-<name>` with odd characters replaced.
pub fn display_name(raw: Option<&str>, prefix: &str) -> String {
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

pub(crate) fn sorted_policies(mut p: Vec<String>) -> Vec<String> {
    p.retain(|x| !x.is_empty());
    p.sort();
    p.dedup();
    p
}

impl TokenStore {
    pub fn new(
        barrier: Arc<Barrier>,
        locks: Arc<KeyLocks>,
        config: Arc<Config>,
        key: Arc<HmacKey>,
        leases: Arc<LeaseManager>,
        router: Arc<crate::router::Router>,
    ) -> Self {
        TokenStore {
            root: View::new(barrier.clone(), "", locks),
            barrier,
            config,
            key,
            leases,
            router,
        }
    }

    /// HMAC-SHA256 under the token key (hex): how tokens and other ids are stored.
    pub fn hmac(&self, s: &str) -> ApiResult<String> {
        self.key.hmac(s)
    }

    /// The root token: from `sys/init` it is Vault's `root` token at `auth/token/root`; in
    /// dev mode it looks like OpenBao's dev root token (created through `auth/token/create`).
    pub async fn create_root(&self, id: Option<String>) -> ApiResult<Zeroizing<String>> {
        let dev = self.config.dev.is_some();
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
        let (token, _, _) = self.create(params, None).await?;
        Ok(token)
    }

    pub(crate) async fn get_entry(&self, h: &str) -> ApiResult<Option<TokenEntry>> {
        Ok(self.barrier.get_json(&id_key(h)).await?)
    }

    /// Looks a token up without consuming a use. Expired tokens are revoked and not found.
    pub async fn lookup(&self, token: &str) -> ApiResult<Option<TokenEntry>> {
        if token.starts_with(batch::PREFIX) {
            return self.lookup_batch(token).await;
        }
        if token.is_empty() || token.len() > 512 {
            return Ok(None);
        }
        if token.starts_with(token_format::TOKEN_PREFIX) && !token_format::is_well_formed(token) {
            return Ok(None);
        }
        let h = self.hmac(token)?;
        let Some(e) = self.get_entry(&h).await? else {
            return Ok(None);
        };
        if let Some(exp) = e.expire_time {
            if exp <= now_unix() {
                self.revoke_tree(&h).await?;
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
        token: &str,
        remote: Option<std::net::IpAddr>,
    ) -> ApiResult<Option<TokenEntry>> {
        let Some(mut e) = self.lookup(token).await? else {
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
            // A use counted on another node at the same time fails the conditional write:
            // read again and count once more, so every use is counted exactly once.
            let mut tries = 0;
            e = loop {
                let g = self.root.lock(&key).await?;
                let Some(mut cur) = self.get_entry(&e.id_hash).await? else {
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
                match g.put_json(&key, &cur).await {
                    Err(err) if err.is_conflict() && tries < 16 => tries += 1,
                    Err(err) => return Err(err),
                    Ok(()) => break cur,
                }
            };
        }
        Ok(Some(e))
    }

    /// Mints a batch token: nothing is stored. `p` was checked by the caller (no uses, no
    /// period, no explicit max TTL, not root).
    pub fn create_batch(
        &self,
        p: CreateParams,
        parent: Option<&TokenEntry>,
    ) -> ApiResult<(Zeroizing<String>, TokenEntry)> {
        let now = now_unix();
        let ttl = match p.ttl.unwrap_or(0) {
            t if t > 0 => t.min(self.config.max_ttl()),
            _ => self.config.default_ttl(),
        };
        let ttl = match parent.and_then(|x| x.expire_time) {
            Some(pe) => ttl.min((pe - now).max(1)),
            None => ttl,
        };
        let mut entry = TokenEntry {
            id_hash: String::new(),
            accessor: String::new(),
            parent: parent.map(|x| x.id_hash.clone()),
            policies: p.policies,
            meta: p.meta,
            display_name: p.display_name,
            num_uses: 0,
            creation_time: now,
            creation_ttl: ttl,
            expire_time: Some(now + ttl),
            explicit_max_ttl: 0,
            period: 0,
            renewable: false,
            orphan: parent.is_none(),
            path: p.path,
            role: p.role,
            last_renewal: None,
            issue_nanos: now as i128 * 1_000_000_000,
            period_from_role: false,
            role_max_ttl: 0,
            renew_ttl: 0,
            bound_cidrs: p.bound_cidrs,
            entity_id: p.entity_id,
            batch: true,
        };
        let token = batch::seal(&*self.batch_key()?, &entry)?;
        entry.id_hash = self.hmac(&token)?;
        Ok((token, entry))
    }

    pub async fn by_accessor(&self, accessor: &str) -> ApiResult<Option<TokenEntry>> {
        if accessor.is_empty() || accessor.len() > 256 {
            return Ok(None);
        }
        let ah = self.hmac(accessor)?;
        let Some(ae) = self
            .barrier
            .get_json::<AccessorEntry>(&format!("token/accessor/{ah}"))
            .await?
        else {
            return Ok(None);
        };
        let e = self.get_entry(&ae.id_hash).await?;
        Ok(e.filter(|e| e.expire_time.map(|x| x > now_unix()).unwrap_or(true)))
    }

    pub async fn create(
        &self,
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
        if self.get_entry(&h).await?.is_some() {
            return Err(ApiError::bad_request(
                "cannot create a token with a duplicate ID",
            ));
        }
        let now = now_unix();
        let is_root = p.policies.iter().any(|x| x == "root");
        let max = self.config.max_ttl();
        let (ttl, explicit) = (p.ttl.unwrap_or(0), p.explicit_max_ttl.unwrap_or(0));
        let mut ttl = if p.period > 0 {
            p.period
        } else if ttl > 0 {
            ttl
        } else if is_root && explicit == 0 {
            0
        } else {
            self.config.default_ttl()
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
            issue_nanos: now_nanos(),
            period_from_role: p.period_from_role,
            role_max_ttl: p.role_max_ttl,
            renew_ttl: ttl,
            bound_cidrs: p.bound_cidrs,
            entity_id: p.entity_id,
            batch: false,
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
        self.barrier.commit(ops).await?;
        Ok((token, entry, warnings))
    }

    /// Revokes a token and, recursively, all its children.
    pub async fn revoke_tree(&self, h: &str) -> ApiResult<()> {
        let mut stack = vec![h.to_string()];
        let mut order = Vec::new();
        while let Some(cur) = stack.pop() {
            let children = self.barrier.list(&format!("token/parent/{cur}/")).await?;
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
            self.revoke_one(cur).await?;
        }
        Ok(())
    }

    pub(crate) async fn revoke_one(&self, h: &str) -> ApiResult<()> {
        let Some(e) = self.get_entry(h).await? else {
            return Ok(());
        };
        // Leases die with their token (failed ones stay queued for the expiry task).
        self.leases.revoke_for_token(h).await?;
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
        for c in self.barrier.list(&format!("token/parent/{h}/")).await? {
            ops.push(BarrierOp::Delete(format!("token/parent/{h}/{c}")));
        }
        // Its cubbyhole goes with it, in the same batch.
        if let Some(cubby) = self
            .router
            .snapshot(crate::router::Which::Secrets)
            .get("cubbyhole/")
        {
            let prefix = format!(
                "{}{}",
                cubby.storage_prefix(),
                airlock_engines::cubbyhole::token_prefix(h)
            );
            for k in self.barrier.scan(&prefix).await? {
                ops.push(BarrierOp::Delete(k));
            }
        }
        self.barrier.commit(ops).await?;
        Ok(())
    }

    /// Revokes every token whose creation path starts with `prefix` (an auth mount being
    /// disabled). A full scan: rare, and proportional to the number of live tokens.
    pub async fn revoke_by_path_prefix(&self, prefix: &str) -> ApiResult<usize> {
        let mut n = 0;
        for k in self.barrier.scan("token/id/").await? {
            let Some(e) = self.barrier.get_json::<TokenEntry>(&k).await? else {
                continue;
            };
            if e.path.starts_with(prefix) {
                self.revoke_tree(&e.id_hash).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Revokes only this token; its children become orphans.
    pub(crate) async fn revoke_orphan(&self, h: &str) -> ApiResult<()> {
        for c in self.barrier.list(&format!("token/parent/{h}/")).await? {
            let ch = c.trim_end_matches('/').to_string();
            let key = id_key(&ch);
            let g = self.root.lock(&key).await?;
            if let Some(mut ce) = self.get_entry(&ch).await? {
                ce.parent = None;
                ce.orphan = true;
                g.commit(vec![
                    BarrierOp::Put(
                        key.clone(),
                        serde_json::to_vec(&ce).map_err(|e| ApiError::internal(&e))?,
                    ),
                    BarrierOp::Delete(format!("token/parent/{h}/{ch}")),
                ])
                .await?;
            }
        }
        self.revoke_one(h).await
    }

    /// Revokes every token whose expiry is at or before `now`. Returns how many.
    pub async fn purge_expired(&self, now: i64) -> ApiResult<usize> {
        let mut n = 0;
        for bucket in self.barrier.list("token/expiry/").await? {
            let t: i64 = bucket.trim_end_matches('/').parse().unwrap_or(i64::MAX);
            if t > now {
                break;
            }
            for h in self.barrier.list(&format!("token/expiry/{bucket}")).await? {
                self.revoke_tree(&h).await?;
                // A stale index entry (entry already gone) is removed too.
                self.barrier
                    .delete(&format!("token/expiry/{bucket}{h}"))
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub(crate) async fn renew(
        &self,
        h: &str,
        increment: Option<i64>,
    ) -> ApiResult<(TokenEntry, Vec<String>)> {
        let key = id_key(h);
        let g = self.root.lock(&key).await?;
        let mut e = self
            .get_entry(h)
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
            e.creation_time + self.config.max_ttl()
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
        g.commit(vec![
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

    pub async fn role_exists(&self, name: &str) -> ApiResult<bool> {
        Ok(self
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

#[cfg(test)]
mod tests;
