//! The server's side of auth methods (the methods themselves are engines in
//! `airlock-engines`): the auth mount table (`sys/auth`), login requests (unauthenticated,
//! rate-limited, audited without the presented credential) and the token every successful
//! login gets.

use std::sync::Arc;

use airlock_logical::auth::{clean_policies, LoginOutcome};
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::core::{now_unix, Core};
use crate::error::{ApiError, ApiResult};
use crate::limiter::LoginLimiter;
use crate::logical::{top, Request, Response};
use crate::mounts::{MountEntry, MountTable};
use crate::router::{Route, Which};
use crate::token::CreateParams;

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
    match core.router.route(path) {
        Some(r) if r.auth && r.entry.uuid == mount.uuid => {}
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
    // `batch`/`default-batch`: a batch token (orphan, not renewable, no uses limit, not
    // periodic: the settings that batch tokens cannot carry are dropped, as in Vault).
    let (token, entry) = if matches!(s.token_type.as_str(), "batch" | "default-batch") {
        core.tokens.create_batch(params, None)?
    } else {
        let (token, entry, _) = core.tokens.create(params, None).await?;
        (token, entry)
    };
    let mut r = Response::empty();
    // The TTL just granted (not a second less when a second boundary passed meanwhile).
    r.auth = Some(entry.auth_block(&token, entry.creation_time.min(now_unix())));
    Ok(r)
}

/// Runs a login on an auth method's unauthenticated path: rate limit, the method, then the
/// token. Failures count against the limiter; a server-side failure (5xx) does not.
pub async fn login(core: &Arc<Core>, route: &Route, req: &mut Request) -> ApiResult<Response> {
    let who = route.backend.login_subject(req, &route.rel);
    let attempt = LoginLimiter::attempt(&route.entry, &who, req.remote.map(|r| r.ip()));
    if !core.limiter.admit(&core.config.auth, &attempt) {
        return Err(ApiError::new(
            429,
            format!("request path \"{}\": rate limit quota exceeded", req.path),
        ));
    }
    let ctx = core.leases.ctx(route, None);
    let mut tries = 0;
    let handled = loop {
        match route.backend.handle(&ctx, req, &route.rel).await {
            Err(e) if e.is_conflict() && tries < airlock_logical::error::CONFLICT_RETRIES => {
                tries += 1;
                airlock_logical::error::conflict_backoff(tries).await;
            }
            other => break other,
        }
    };
    let resp = match handled {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                // Not the client's fault: the attempt does not count as a failure.
                core.limiter.succeeded(&core.config.auth, &attempt);
            }
            return Err(e);
        }
    };
    core.limiter.succeeded(&core.config.auth, &attempt);
    match resp.login {
        Some(out) => issue(core, &route.entry, &req.path, *out).await,
        None => Ok(resp),
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
    let mut v = crate::router::mount_json(m);
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
    for e in snapshot(core).entries {
        m.insert(e.path.clone(), auth_mount_json(&e));
    }
    Value::Object(m)
}

/// `sys/auth`: every auth mount (the token method first).
pub fn list(core: &Core) -> Response {
    top(Response::data(list_json(core)))
}

/// The mount path of `sys/auth/<path>`; `token/` is the token method (its sub-paths are
/// taken).
fn auth_path(raw: &str) -> ApiResult<String> {
    let path = crate::mounts::normalize_mount_path(raw)?;
    if path.starts_with("token/") && path != "token/" {
        return Err(ApiError::bad_request("path is already in use at token/"));
    }
    Ok(path)
}

/// GET `sys/auth/<path>`.
pub fn read(core: &Core, raw: &str) -> ApiResult<Response> {
    let path = auth_path(raw)?;
    if path == "token/" {
        return Ok(top(Response::data(token_mount_json())));
    }
    let t = snapshot(core);
    let m = t
        .get(&path)
        .ok_or_else(|| ApiError::bad_request(format!("No auth engine at {path}")))?;
    Ok(top(Response::data(auth_mount_json(m))))
}

/// POST `sys/auth/<path>`: enables a method.
pub async fn enable(core: &Core, req: &Request, raw: &str) -> ApiResult<Response> {
    let path = auth_path(raw)?;
    if path == "token/" {
        return Err(ApiError::bad_request("path is already in use at token/"));
    }
    let kind = req
        .str_field("type")?
        .ok_or_else(|| ApiError::bad_request("backend type must be specified as a string"))?;
    let kind = crate::router::resolve_type(Which::Auth, &kind)?.kind;
    let options = req.str_map_field("options")?.unwrap_or_default();
    let mut entry = crate::mounts::new_mount_entry(
        &path,
        kind,
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
    let g = core.lock_table(Which::Auth).await?;
    let mut t = snapshot(core);
    t.check_free(&path)?;
    t.entries.push(entry);
    core.save_table(&g, Which::Auth, t).await?;
    Ok(Response::empty())
}

/// DELETE `sys/auth/<path>`: the mount lifecycle's disable (its tokens are revoked first).
pub async fn disable(core: &Core, raw: &str) -> ApiResult<Response> {
    let path = auth_path(raw)?;
    if path == "token/" {
        return Err(ApiError::bad_request(
            "token credential backend cannot be disabled",
        ));
    }
    let Some(existing) = snapshot(core).get(&path).cloned() else {
        return Ok(Response::empty());
    };
    crate::sys::mounts::disable(core, Which::Auth, existing).await?;
    Ok(Response::empty())
}

/// GET `sys/auth/<path>/tune`.
pub fn tune_read(core: &Core, raw: &str) -> ApiResult<Response> {
    let path = crate::mounts::normalize_mount_path(raw)?;
    if path == "token/" {
        return Ok(top(Response::data(json!({
            "default_lease_ttl": core.config.default_ttl(),
            "description": "token based credentials",
            "force_no_cache": false,
            "max_lease_ttl": core.config.max_ttl(),
            "token_type": "default-service",
        }))));
    }
    let t = snapshot(core);
    let Some(m) = t.entries.iter().find(|m| m.path == path) else {
        return Err(ApiError::bad_request(format!(
            "cannot fetch sysview for path \"auth/{path}\""
        )));
    };
    let eff = |v: i64, d: i64| if v > 0 { v } else { d };
    Ok(top(Response::data(json!({
        "default_lease_ttl": eff(m.default_lease_ttl, core.config.default_ttl()),
        "description": m.description,
        "force_no_cache": false,
        "max_lease_ttl": eff(m.max_lease_ttl, core.config.max_ttl()),
        "token_type": "default-service",
    }))))
}

/// POST `sys/auth/<path>/tune`.
pub async fn tune_write(core: &Core, req: &Request, raw: &str) -> ApiResult<Response> {
    let path = crate::mounts::normalize_mount_path(raw)?;
    let g = core.lock_table(Which::Auth).await?;
    let mut t = snapshot(core);
    let Some(m) = t.entries.iter_mut().find(|m| m.path == path) else {
        return Err(ApiError::bad_request(format!(
            "tune of path \"auth/{path}\" failed: no mount entry found"
        )));
    };
    apply_ttls(core, m, &req.data)?;
    if let Some(d) = req.str_field("description")? {
        m.description = d;
    }
    core.save_table(&g, Which::Auth, t).await?;
    Ok(Response::empty())
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
                        Value::String(_) => "time: invalid duration".to_string(),
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

fn snapshot(core: &Core) -> MountTable {
    core.router.snapshot(Which::Auth)
}
