//! Auth methods other than tokens: the auth mount table (`sys/auth`), routing of
//! `auth/<mount>/...`, login requests (unauthenticated, rate-limited, audited without the
//! presented credential) and the token every successful login gets.
//!
//! Each method is a module with `handle` (configuration and roles, behind the ACL) and
//! `login` (returns a [`LoginOutcome`]; this module turns it into a token):
//! [`approle`], [`userpass`], [`jwt`] (also mounted as `oidc`), [`kubernetes`].
//! Method data lives under the mount's storage prefix (`logical/<mount uuid>/`).

pub mod approle;
pub mod jwt;
pub mod keys;
pub mod kubernetes;
pub mod userpass;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use airlock_core::ratelimit::{Bucket, Limit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::core::{now_unix, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::mounts::{MountEntry, MountTable};
use crate::token::CreateParams;

/// Storage key of the auth mount table.
pub const AUTH_TABLE_KEY: &str = "core/auth";

/// Login fields that are credentials: never written to the audit log.
pub const CREDENTIAL_FIELDS: &[&str] = &[
    "secret_id",
    "password",
    "jwt",
    "token",
    "code",
    "state",
    "client_nonce",
    "id_token",
];

/// The existence check of role and user paths (create vs update for the ACL).
pub async fn exists(core: &Core, path: &str) -> ApiResult<Option<bool>> {
    let Some((m, sub)) = route(core, path) else {
        return Ok(None);
    };
    let parts: Vec<&str> = sub.split('/').collect();
    let rel = match (m.kind.as_str(), parts.as_slice()) {
        ("userpass", ["users", name]) => format!("user/{}", name.to_lowercase()),
        (_, ["role", name]) => format!("role/{}", name.to_lowercase()),
        _ => return Ok(None),
    };
    Ok(Some(core.barrier.get(&key(&m, &rel)).await?.is_some()))
}

/// Auth method types that can be enabled.
pub const KINDS: &[&str] = &["approle", "jwt", "oidc", "kubernetes", "userpass"];

/// In-memory state of the auth methods: login rate buckets and per-mount caches.
#[derive(Default)]
pub struct AuthRuntime {
    limiter: Mutex<HashMap<LimitKey, (Bucket, Bucket)>>,
    /// Parsed JWT/OIDC configurations and fetched key sets, by mount uuid.
    pub jwt: jwt::Cache,
}

/// (mount uuid, hash of the role/user, client address group). Fixed size whatever the
/// request carried.
type LimitKey = (String, [u8; 16], Option<IpAddr>);

/// Most buckets kept; beyond it (after dropping idle ones) the table starts over.
const MAX_BUCKETS: usize = 200_000;

/// The address a limit applies to: IPv4 as is, IPv6 by /64 (one host usually owns a /64).
fn addr_group(ip: Option<IpAddr>) -> Option<IpAddr> {
    match ip? {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => {
                let b = u128::from(v6) & (u128::MAX << 64);
                Some(IpAddr::V6(std::net::Ipv6Addr::from(b)))
            }
        },
        v4 => Some(v4),
    }
}

fn who_hash(who: &str) -> [u8; 16] {
    let capped: String = who.trim().to_lowercase().chars().take(512).collect();
    let d = sha2::Sha256::digest(capped.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The keys one login attempt counts against: its (role or user, address) and the address
/// across every role of the mount (so guessing many usernames is limited too).
pub struct Attempt {
    keys: [LimitKey; 2],
}

impl AuthRuntime {
    pub fn clear(&self) {
        if let Ok(mut l) = self.limiter.lock() {
            l.clear();
        }
        self.jwt.clear();
    }

    fn limits(core: &Core) -> (Limit, Limit) {
        let a = &core.config.auth;
        (
            Limit {
                rate: a.login_rate,
                burst: a.login_burst,
            },
            Limit {
                rate: a.failed_login_rate,
                burst: a.failed_login_burst,
            },
        )
    }

    /// Failures from one address across every role/user of a mount: five times the
    /// per-role allowance, so one user's typos do not lock out a whole NAT.
    fn address_limit(failed: Limit) -> Limit {
        Limit {
            rate: failed.rate * 5.0,
            burst: failed.burst * 5.0,
        }
    }

    fn limit_for(k: &LimitKey, failed: Limit) -> Limit {
        if k.1 == [0u8; 16] {
            Self::address_limit(failed)
        } else {
            failed
        }
    }

    pub fn attempt(mount: &MountEntry, who: &str, ip: Option<IpAddr>) -> Attempt {
        let g = addr_group(ip);
        Attempt {
            keys: [
                (mount.uuid.clone(), who_hash(who), g),
                (mount.uuid.clone(), [0u8; 16], g),
            ],
        }
    }

    /// Admits one attempt, taking a token from every bucket it counts against — a failed
    /// token too, given back by [`Self::succeeded`], so parallel guesses cannot all slip
    /// through on one remaining token. False when any bucket is empty.
    pub fn admit(&self, core: &Core, a: &Attempt) -> bool {
        let (all, failed) = Self::limits(core);
        if all.unlimited() && failed.unlimited() {
            return true;
        }
        let now = mono_secs();
        let Ok(mut m) = self.limiter.lock() else {
            return false;
        };
        if m.len() > MAX_BUCKETS {
            m.retain(|k, (a, f)| !(a.idle(all, now) && f.idle(Self::limit_for(k, failed), now)));
            if m.len() > MAX_BUCKETS {
                m.clear();
            }
        }
        // The per-role bucket counts every attempt; the address-wide one only failures.
        let wide = Self::address_limit(failed);
        let ok = {
            let (a0, f0) = m
                .entry(a.keys[0].clone())
                .or_insert_with(|| (Bucket::full(all, now), Bucket::full(failed, now)));
            f0.has(failed, now) && a0.has(all, now)
        } && {
            let (_, f1) = m
                .entry(a.keys[1].clone())
                .or_insert_with(|| (Bucket::full(all, now), Bucket::full(wide, now)));
            f1.has(wide, now)
        };
        if !ok {
            return false;
        }
        if let Some((a0, f0)) = m.get_mut(&a.keys[0]) {
            a0.take(all, now);
            f0.take(failed, now);
        }
        if let Some((_, f1)) = m.get_mut(&a.keys[1]) {
            f1.take(wide, now);
        }
        true
    }

    /// The attempt succeeded: its failed tokens go back.
    pub fn succeeded(&self, core: &Core, a: &Attempt) {
        let (_, failed) = Self::limits(core);
        if failed.unlimited() {
            return;
        }
        if let Ok(mut m) = self.limiter.lock() {
            for k in &a.keys {
                if let Some((_, f)) = m.get_mut(k) {
                    f.give_back(Self::limit_for(k, failed));
                }
            }
        }
    }

    /// Drops buckets that are full again (called by housekeeping).
    pub fn sweep(&self, core: &Core) {
        let (all, failed) = Self::limits(core);
        let now = mono_secs();
        if let Ok(mut m) = self.limiter.lock() {
            m.retain(|k, (a, f)| !(a.idle(all, now) && f.idle(Self::limit_for(k, failed), now)));
        }
    }
}

fn mono_secs() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// Token settings every auth role carries (Vault's `token_*` fields).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TokenSettings {
    pub token_policies: Vec<String>,
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    pub token_explicit_max_ttl: i64,
    pub token_num_uses: i64,
    pub token_period: i64,
    pub token_bound_cidrs: Vec<String>,
    pub token_no_default_policy: bool,
    pub token_type: String,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            token_policies: Vec::new(),
            token_ttl: 0,
            token_max_ttl: 0,
            token_explicit_max_ttl: 0,
            token_num_uses: 0,
            token_period: 0,
            token_bound_cidrs: Vec::new(),
            token_no_default_policy: false,
            token_type: "default".into(),
        }
    }
}

/// Policy names as a role stores them: trimmed, without duplicates or blanks (case is kept;
/// tokens get them lower-cased).
pub fn clean_policies(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in list {
        let p = p.trim().to_string();
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

impl TokenSettings {
    /// Applies the `token_*` fields present in the request (and the legacy `policies`,
    /// `ttl`, `max_ttl`, `period`, `num_uses` names).
    pub fn update(&mut self, req: &Request) -> ApiResult<()> {
        if let Some(p) = req.str_list_field("token_policies")? {
            self.token_policies = clean_policies(p);
        } else if let Some(p) = req.str_list_field("policies")? {
            self.token_policies = clean_policies(p);
        }
        if self
            .token_policies
            .iter()
            .any(|p| p.eq_ignore_ascii_case("root"))
        {
            return Err(ApiError::bad_request(
                "auth methods cannot create root tokens",
            ));
        }
        for (k, legacy, target) in [
            ("token_ttl", "ttl", &mut self.token_ttl),
            ("token_max_ttl", "max_ttl", &mut self.token_max_ttl),
            (
                "token_explicit_max_ttl",
                "",
                &mut self.token_explicit_max_ttl,
            ),
            ("token_period", "period", &mut self.token_period),
        ] {
            if let Some(v) = req.duration_field(k)? {
                *target = v;
            } else if !legacy.is_empty() {
                if let Some(v) = req.duration_field(legacy)? {
                    *target = v;
                }
            }
        }
        if let Some(n) = req.int_field("token_num_uses")? {
            if n < 0 {
                return Err(ApiError::bad_request("token_num_uses cannot be negative"));
            }
            self.token_num_uses = n;
        }
        if let Some(c) = req.str_list_field("token_bound_cidrs")? {
            self.token_bound_cidrs = normalize_cidrs(&c)?;
        }
        if let Some(b) = req.bool_field("token_no_default_policy")? {
            self.token_no_default_policy = b;
        }
        if let Some(t) = req.str_field("token_type")? {
            match t.as_str() {
                "" | "default" => self.token_type = "default".into(),
                "service" | "default-service" => self.token_type = t,
                "batch" | "default-batch" => {
                    return Err(ApiError::bad_request(
                        "batch tokens are not supported by Airlock; use token_type \"service\"",
                    ))
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid 'token_type' value \"{t}\""
                    )))
                }
            }
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(ApiError::bad_request(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(())
    }

    pub fn write_json(&self, m: &mut Map<String, Value>) {
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        m.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        m.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        m.insert("token_num_uses".into(), json!(self.token_num_uses));
        m.insert("token_period".into(), json!(self.token_period));
        m.insert("token_policies".into(), json!(self.token_policies));
        m.insert("token_strictly_bind_ip".into(), json!(false));
        m.insert("token_ttl".into(), json!(self.token_ttl));
        m.insert("token_type".into(), json!(self.token_type));
    }
}

/// What a successful login establishes; [`issue`] turns it into a token.
pub struct LoginOutcome {
    pub settings: TokenSettings,
    pub meta: BTreeMap<String, String>,
    /// Appended to the mount name for the token's display name (empty: the mount name).
    pub display_name: String,
    /// The identity within the mount (role id, username, subject, service account).
    pub alias: String,
    /// Extra policies (e.g. from groups).
    pub extra_policies: Vec<String>,
}

/// A stable entity id for (mount, alias), so repeated logins show the same `entity_id`.
fn entity_id(mount: &MountEntry, alias: &str) -> String {
    let d = sha2::Sha256::digest(format!("{}\0{alias}", mount.accessor).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    airlock_core::token_format::uuid(&b)
}

/// Issues the token of a successful login.
pub async fn issue(
    core: &Core,
    mount: &MountEntry,
    path: &str,
    out: LoginOutcome,
) -> ApiResult<Response> {
    let s = &out.settings;
    let mut policies = s.token_policies.clone();
    policies.extend(out.extra_policies.iter().cloned());
    if !s.token_no_default_policy {
        policies.push("default".into());
    }
    let mut policies = clean_policies(policies.iter().map(|p| p.to_lowercase()).collect());
    policies.sort();
    if policies.iter().any(|p| p == "root") {
        return Err(ApiError::bad_request(
            "auth methods cannot create root tokens",
        ));
    }
    // A login racing the disable of its mount must not leave a token behind.
    match route(core, path) {
        Some((m, _)) if m.uuid == mount.uuid => {}
        _ => return Err(ApiError::permission_denied()),
    }
    let sys_max = core.config.max_ttl();
    let mount_max = if mount.max_lease_ttl > 0 {
        mount.max_lease_ttl.min(sys_max)
    } else {
        sys_max
    };
    let max = if s.token_max_ttl > 0 {
        s.token_max_ttl.min(mount_max)
    } else {
        mount_max
    };
    let mut ttl = if s.token_ttl > 0 {
        s.token_ttl
    } else if mount.default_lease_ttl > 0 {
        mount.default_lease_ttl
    } else {
        core.config.default_ttl()
    };
    ttl = ttl.min(max);
    if s.token_explicit_max_ttl > 0 {
        ttl = ttl.min(s.token_explicit_max_ttl);
    }
    // A periodic token renews forever, but never by more than the mount allows.
    let period = if s.token_period > 0 {
        s.token_period.min(mount_max)
    } else {
        0
    };
    let mount_name = mount.path.trim_end_matches('/').replace('/', "-");
    let display_name = if out.display_name.is_empty() {
        mount_name
    } else {
        format!("{mount_name}-{}", out.display_name)
    };
    let params = CreateParams {
        policies,
        meta: out.meta,
        display_name: display_name.chars().take(256).collect(),
        num_uses: s.token_num_uses,
        ttl: Some(if period > 0 { period } else { ttl }),
        explicit_max_ttl: Some(s.token_explicit_max_ttl),
        period,
        renewable: true,
        path: path.to_string(),
        role_max_ttl: if period > 0 { 0 } else { max },
        bound_cidrs: s.token_bound_cidrs.clone(),
        entity_id: entity_id(mount, &out.alias),
        ..Default::default()
    };
    let (token, entry, _) = core.tokens.create(core, params, None).await?;
    let mut r = Response::empty();
    r.auth = Some(entry.auth_block(&token, now_unix()));
    Ok(r)
}

/// The auth mount and the path below it, for `auth/<mount>/<rest>` (not the token method).
pub fn route(core: &Core, path: &str) -> Option<(MountEntry, String)> {
    let rest = path.strip_prefix("auth/")?;
    let table = core.auth_mounts.read().ok()?;
    let m = table.route(rest)?.clone();
    let sub = rest.get(m.path.len()..).unwrap_or("").to_string();
    Some((m, sub))
}

/// True for the unauthenticated login endpoints of a method.
pub fn is_login(kind: &str, sub: &str) -> bool {
    match kind {
        "userpass" => sub.starts_with("login/") && sub.len() > "login/".len(),
        "jwt" | "oidc" => matches!(sub, "login" | "oidc/auth_url" | "oidc/callback"),
        "approle" | "kubernetes" => sub == "login",
        _ => false,
    }
}

/// Runs a login: rate limit, method check, token. Failures are recorded for the limiter.
pub async fn login(
    core: &Arc<Core>,
    mount: &MountEntry,
    sub: &str,
    req: &Request,
) -> ApiResult<Response> {
    // The OIDC callback is a GET from the browser's redirect (or a form POST).
    let callback = sub == "oidc/callback";
    if req.op != Op::Update && !(callback && req.op == Op::Read) {
        return Err(ApiError::unsupported_operation());
    }
    let who = match mount.kind.as_str() {
        "approle" => req
            .data
            .get("role_id")
            .and_then(Value::as_str)
            .unwrap_or(""),
        "userpass" => sub.strip_prefix("login/").unwrap_or(""),
        _ => req.data.get("role").and_then(Value::as_str).unwrap_or(""),
    };
    let attempt = AuthRuntime::attempt(mount, who, req.remote.map(|r| r.ip()));
    if !core.auth_rt.admit(core, &attempt) {
        return Err(ApiError::new(
            429,
            format!("request path \"{}\": rate limit quota exceeded", req.path),
        ));
    }
    if sub == "oidc/auth_url" {
        // No credential checked yet: only the address-wide budget applies.
        let r = jwt::auth_url(core, mount, req).await;
        if r.is_ok() {
            core.auth_rt.succeeded(core, &attempt);
        }
        return r;
    }
    let outcome = match mount.kind.as_str() {
        "approle" => approle::login(core, mount, req).await,
        "userpass" => userpass::login(core, mount, sub, req).await,
        "jwt" | "oidc" if callback => jwt::callback(core, mount, req).await,
        "jwt" | "oidc" => jwt::login(core, mount, req).await,
        "kubernetes" => kubernetes::login(core, mount, req).await,
        _ => Err(ApiError::unsupported_path()),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            if e.status >= 500 {
                // Not the client's fault: the attempt does not count as a failure.
                core.auth_rt.succeeded(core, &attempt);
            }
            return Err(e);
        }
    };
    core.auth_rt.succeeded(core, &attempt);
    issue(core, mount, &req.path, outcome).await
}

/// Configuration and role endpoints of an auth mount (behind the ACL).
pub async fn handle(
    core: &Arc<Core>,
    mount: &MountEntry,
    sub: &str,
    req: &Request,
) -> ApiResult<Response> {
    match mount.kind.as_str() {
        "approle" => approle::handle(core, mount, sub, req).await,
        "userpass" => userpass::handle(core, mount, sub, req).await,
        "jwt" | "oidc" => jwt::handle(core, mount, sub, req).await,
        "kubernetes" => kubernetes::handle(core, mount, sub, req).await,
        _ => Err(ApiError::unsupported_path()),
    }
}

// ---- sys/auth ----

fn token_mount_json() -> Value {
    json!({
        "accessor": "auth_token_00000000",
        "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0, "token_type": "default-service"},
        "description": "token based credentials",
        "external_entropy_access": false,
        "local": false,
        "options": null,
        "plugin_version": "",
        "running_plugin_version": concat!("v", env!("CARGO_PKG_VERSION"), "+builtin.airlock"),
        "running_sha256": "",
        "seal_wrap": false,
        "type": "token",
        "uuid": "00000000-0000-0000-0000-00000000a000",
    })
}

fn auth_mount_json(m: &MountEntry) -> Value {
    let mut v = m.to_json();
    if let Some(o) = v.as_object_mut() {
        if let Some(Value::Object(c)) = o.get_mut("config") {
            c.insert("token_type".into(), json!("default-service"));
        }
        o.insert("options".into(), json!(m.options));
    }
    v
}

/// Every auth mount as `sys/auth` lists them (the token method first).
pub fn list_json(core: &Core) -> Value {
    let mut m = Map::new();
    m.insert("token/".into(), token_mount_json());
    if let Ok(t) = core.auth_mounts.read() {
        for e in &t.entries {
            m.insert(e.path.clone(), auth_mount_json(e));
        }
    }
    Value::Object(m)
}

fn top(mut r: Response) -> Response {
    r.top_level = true;
    r
}

/// `sys/auth`, `sys/auth/<path>`, `sys/auth/<path>/tune`.
pub async fn sys_auth(core: &Arc<Core>, req: &Request, rest: &str) -> ApiResult<Response> {
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        return match req.op {
            Op::Read => Ok(top(Response::data(list_json(core)))),
            Op::List => Err(ApiError::unsupported_path()),
            _ => Err(ApiError::unsupported_operation()),
        };
    }
    if let Some(p) = rest
        .strip_suffix("/tune")
        .or_else(|| rest.strip_suffix("/tune/"))
    {
        return tune(core, req, p).await;
    }
    let path = crate::mounts::normalize_mount_path(rest)?;
    if path.starts_with("token/") && path != "token/" {
        return Err(ApiError::bad_request("path is already in use at token/"));
    }
    if path == "token/" {
        return match req.op {
            Op::Read => Ok(top(Response::data(token_mount_json()))),
            Op::Delete => Err(ApiError::bad_request(
                "token credential backend cannot be disabled",
            )),
            _ => Err(ApiError::bad_request("path is already in use at token/")),
        };
    }
    match req.op {
        Op::Read => {
            let t = snapshot(core);
            let m = t
                .get(&path)
                .ok_or_else(|| ApiError::bad_request(format!("No auth engine at {path}")))?;
            Ok(top(Response::data(auth_mount_json(m))))
        }
        Op::Create | Op::Update => {
            let kind = req.str_field("type")?.ok_or_else(|| {
                ApiError::bad_request("backend type must be specified as a string")
            })?;
            if !KINDS.contains(&kind.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "plugin not found in the catalog: {kind}"
                )));
            }
            let options = req.str_map_field("options")?.unwrap_or_default();
            let mut entry = crate::sys::new_mount_entry(
                &path,
                &kind,
                &req.str_field("description")?.unwrap_or_default(),
                options,
            );
            entry.accessor = format!(
                "auth_{kind}_{}",
                hex::encode(crate::core::random_bytes::<4>())
            );
            if let Some(Value::Object(cfg)) = req.data.get("config") {
                apply_ttls(core, &mut entry, cfg)?;
            }
            entry.local = req.bool_field("local")?.unwrap_or(false);
            let _g = core.locks.lock(AUTH_TABLE_KEY).await;
            let mut t = snapshot(core);
            t.check_free(&path)?;
            t.entries.push(entry);
            save(core, t).await?;
            Ok(Response::empty())
        }
        Op::Delete => {
            let Some(existing) = snapshot(core).get(&path).cloned() else {
                return Ok(Response::empty());
            };
            let prefix = format!("auth/{}", existing.path);
            // Tokens issued by the mount die first (a failure leaves the mount in place, so
            // the disable can be retried), then the mount goes, then tokens of logins that
            // were in flight, then its data. No table lock is held while revoking.
            core.tokens.revoke_by_path_prefix(core, &prefix).await?;
            let removed = {
                let _g = core.locks.lock(AUTH_TABLE_KEY).await;
                let mut t = snapshot(core);
                let Some(pos) = t.entries.iter().position(|m| m.uuid == existing.uuid) else {
                    return Ok(Response::empty());
                };
                let removed = t.entries.remove(pos);
                save(core, t).await?;
                removed
            };
            core.tokens.revoke_by_path_prefix(core, &prefix).await?;
            core.auth_rt.jwt.forget(&removed.uuid);
            let keys = core.barrier.scan(&removed.storage_prefix()).await?;
            for chunk in keys.chunks(1000) {
                core.barrier
                    .commit(
                        chunk
                            .iter()
                            .map(|k| airlock_store::BarrierOp::Delete(k.clone()))
                            .collect(),
                    )
                    .await?;
            }
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn apply_ttls(core: &Core, entry: &mut MountEntry, cfg: &Map<String, Value>) -> ApiResult<()> {
    let (mut d, mut x) = (entry.default_lease_ttl, entry.max_lease_ttl);
    for (k, target) in [("default_lease_ttl", &mut d), ("max_lease_ttl", &mut x)] {
        match cfg.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() || s == "system" => *target = 0,
            Some(v) => {
                *target = airlock_core::duration::parse_duration_value(v).map_err(|_| {
                    ApiError::bad_request(match v {
                        Value::String(s) => format!(
                            "time: invalid duration {:?}",
                            s.chars().take(64).collect::<String>()
                        ),
                        _ => format!("invalid {k}"),
                    })
                })? as i64
            }
        }
    }
    let eff_d = if d > 0 { d } else { core.config.default_ttl() };
    let eff_x = if x > 0 { x } else { core.config.max_ttl() };
    if eff_d > eff_x {
        return Err(ApiError::bad_request(format!(
            "backend max lease TTL of {eff_x} would be less than backend default lease TTL of {eff_d}"
        )));
    }
    entry.default_lease_ttl = d;
    entry.max_lease_ttl = x;
    Ok(())
}

async fn tune(core: &Arc<Core>, req: &Request, raw: &str) -> ApiResult<Response> {
    let path = crate::mounts::normalize_mount_path(raw)?;
    if path == "token/" && req.op == Op::Read {
        return Ok(top(Response::data(json!({
            "default_lease_ttl": core.config.default_ttl(),
            "description": "token based credentials",
            "force_no_cache": false,
            "max_lease_ttl": core.config.max_ttl(),
            "token_type": "default-service",
        }))));
    }
    let _g = core.locks.lock(AUTH_TABLE_KEY).await;
    let mut t = snapshot(core);
    let Some(m) = t.entries.iter_mut().find(|m| m.path == path) else {
        return Err(ApiError::bad_request(if req.op == Op::Read {
            format!("cannot fetch sysview for path \"auth/{path}\"")
        } else {
            format!("tune of path \"auth/{path}\" failed: no mount entry found")
        }));
    };
    match req.op {
        Op::Read => {
            let eff = |v: i64, d: i64| if v > 0 { v } else { d };
            Ok(top(Response::data(json!({
                "default_lease_ttl": eff(m.default_lease_ttl, core.config.default_ttl()),
                "description": m.description,
                "force_no_cache": false,
                "max_lease_ttl": eff(m.max_lease_ttl, core.config.max_ttl()),
                "token_type": "default-service",
            }))))
        }
        Op::Create | Op::Update => {
            apply_ttls(core, m, &req.data)?;
            if let Some(d) = req.str_field("description")? {
                m.description = d;
            }
            save(core, t).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn snapshot(core: &Core) -> MountTable {
    core.auth_mounts
        .read()
        .map(|m| m.clone())
        .unwrap_or_default()
}

async fn save(core: &Core, t: MountTable) -> ApiResult<()> {
    core.barrier.put_json(AUTH_TABLE_KEY, &t).await?;
    if let Ok(mut m) = core.auth_mounts.write() {
        *m = t;
    }
    Ok(())
}

/// Loads the auth mount table after unseal.
pub async fn load(core: &Core) -> ApiResult<()> {
    let t: MountTable = core
        .barrier
        .get_json(AUTH_TABLE_KEY)
        .await?
        .unwrap_or_default();
    if let Ok(mut m) = core.auth_mounts.write() {
        *m = t;
    }
    Ok(())
}

// ---- helpers shared by the methods ----

/// Storage key of a method's item: `logical/<mount uuid>/<rel>`.
pub fn key(mount: &MountEntry, rel: &str) -> String {
    format!("{}{rel}", mount.storage_prefix())
}

/// Names of roles/users: what Vault accepts in a path segment.
pub fn check_name(name: &str, what: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty()
        || n.len() > 512
        || n.contains('/')
        || n == "."
        || n == ".."
        || n.chars().any(|c| c.is_control())
    {
        return Err(ApiError::bad_request(format!("invalid {what} name")));
    }
    Ok(n.to_string())
}

/// Validates CIDR blocks and renders them as Vault shows them (a single host bare).
pub fn normalize_cidrs(list: &[String]) -> ApiResult<Vec<String>> {
    list.iter()
        .map(|s| {
            airlock_core::cidr::Cidr::parse(s)
                .map(|c| c.to_string())
                .map_err(ApiError::bad_request)
        })
        .collect()
}

/// A 404 with `{"errors":[]}`, as auth methods answer for missing items.
pub fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// GET of a stored role/user: its JSON view, or a 404.
pub async fn read_item<T: serde::de::DeserializeOwned>(
    core: &Core,
    storage_key: &str,
    view: impl Fn(&T) -> Value,
) -> ApiResult<Response> {
    match core.barrier.get_json::<T>(storage_key).await? {
        Some(item) => Ok(Response::data(view(&item))),
        None => Err(not_found()),
    }
}

/// DELETE of a stored role/user (absent is fine).
pub async fn delete_item(core: &Core, storage_key: String) -> ApiResult<Response> {
    core.barrier
        .commit(vec![airlock_store::BarrierOp::Delete(storage_key)])
        .await?;
    Ok(Response::empty())
}

/// The role a login names (`role/<name>` below the mount), if the name is valid and stored.
pub async fn login_role<T: serde::de::DeserializeOwned>(
    core: &Core,
    mount: &MountEntry,
    name: &str,
) -> ApiResult<Option<T>> {
    match check_name(name, "role") {
        Ok(n) => Ok(core
            .barrier
            .get_json(&key(mount, &format!("role/{n}")))
            .await?),
        Err(_) => Ok(None),
    }
}

/// A role/user listing under `rel_prefix`.
pub async fn list_names(core: &Core, mount: &MountEntry, rel_prefix: &str) -> ApiResult<Response> {
    let mut keys = core.barrier.list(&key(mount, rel_prefix)).await?;
    keys.retain(|k| !k.ends_with('/'));
    if keys.is_empty() {
        return Err(not_found());
    }
    Ok(Response::list(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_paths() {
        assert!(is_login("approle", "login"));
        assert!(!is_login("approle", "login/x"));
        assert!(is_login("userpass", "login/alice"));
        assert!(!is_login("userpass", "login/"));
        assert!(!is_login("userpass", "users/alice"));
        assert!(
            is_login("jwt", "login")
                && is_login("oidc", "login")
                && is_login("oidc", "oidc/auth_url")
                && is_login("jwt", "oidc/callback")
                && !is_login("kubernetes", "oidc/callback")
                && is_login("kubernetes", "login")
        );
        assert!(!is_login("jwt", "role/x"));
    }

    #[test]
    fn constant_time_compare_and_policy_cleaning() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert_eq!(
            clean_policies(vec![
                " A ".into(),
                "a".into(),
                "".into(),
                "b".into(),
                "b ".into()
            ]),
            vec!["A".to_string(), "a".to_string(), "b".to_string()]
        );
    }
}
