//! Authenticated `sys/` endpoints (the only handlers besides the pipeline that see the core): mounts, policies, capabilities, seal, rotation, key
//! status, audit (declarative, read-only over the API) and metrics.
//! The unauthenticated ones (`health`, `seal-status`, `init`, `unseal`, `leader`) are in
//! `http.rs` because they answer with plain objects and work while sealed.

mod leases;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::mounts::{new_mount_entry, normalize_mount_path, system_mount_json, MountEntry};
use crate::router::Which;

fn top(mut r: Response) -> Response {
    r.top_level = true;
    r
}

pub async fn handle(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    rest: &str,
) -> ApiResult<Response> {
    let write = matches!(req.op, Op::Create | Op::Update);
    match rest {
        "mounts" | "mounts/" => {
            if req.op != Op::Read {
                return Err(ApiError::unsupported_operation());
            }
            let mut m = Map::new();
            for e in core.mounts_snapshot().entries {
                m.insert(e.path.clone(), crate::router::mount_json(&e));
            }
            m.insert("sys/".into(), system_mount_json());
            Ok(top(Response::data(Value::Object(m))))
        }
        // `sys/mounts/auth/<path>/tune` is how the vault/bao CLIs tune auth methods.
        r if r.starts_with("mounts/auth/")
            && (r.ends_with("/tune") || r.ends_with("/tune/")) =>
        {
            crate::auth::sys_auth(core, req, &r["mounts/auth".len()..]).await
        }
        r if r.starts_with("mounts/") => mounts(core, req, &r["mounts/".len()..]).await,
        "remount" if write => remount(core, req).await,
        r if r.starts_with("remount/status/") && req.op == Op::Read => {
            remount_status(core, &r["remount/status/".len()..])
        }
        r if r.starts_with("internal/ui/mounts/") || r == "internal/ui/mounts" => {
            let path = r.strip_prefix("internal/ui/mounts").unwrap_or("").trim_start_matches('/');
            internal_ui_mount(core, caller, path)
        }
        "policies/acl" | "policies/acl/" => match req.op {
            Op::List => Ok(Response::list(core.policies.list().await?)),
            _ => Err(ApiError::unsupported_operation()),
        },
        "policies/password" | "policies/password/" if req.op == Op::List => {
            let mut keys = core.barrier.list("sys/password-policy/").await?;
            keys.sort();
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(Response::list(keys))
        }
        r if r.starts_with("policies/password/") => {
            password_policy(core, req, &r["policies/password/".len()..]).await
        }
        r if r.starts_with("policies/acl/") => {
            let name = &r["policies/acl/".len()..];
            policy_rw(core, req, name, false).await
        }
        "policy" | "policy/" => match req.op {
            Op::Read | Op::List => {
                let keys = core.policies.list().await?;
                Ok(top(Response::data(json!({"keys": keys, "policies": keys}))))
            }
            _ => Err(ApiError::unsupported_operation()),
        },
        r if r.starts_with("policy/") => {
            let name = &r["policy/".len()..];
            policy_rw(core, req, name, true).await
        }
        "capabilities" | "capabilities-self" | "capabilities-accessor" if write => {
            capabilities(core, req, caller, rest).await
        }
        "seal" if write => {
            core.seal().await;
            Ok(Response::empty())
        }
        "rotate" | "rotate/keyring" if write => {
            core.rotate().await?;
            Ok(Response::empty())
        }
        "key-status" | "rotate/keyring" if req.op == Op::Read => {
            let kr = core.barrier.keyring()?;
            Ok(top(Response::data(json!({
                "term": kr.active_term(),
                "install_time": crate::core::rfc3339_nanos(kr.active_installed() as i128 * 1_000_000_000),
                "encryptions": core.barrier.encryptions(),
            }))))
        }
        r if r == "auth" || r.starts_with("auth/") => {
            crate::auth::sys_auth(core, req, &r["auth".len()..]).await
        }
        "wrapping/wrap" if write => {
            if req.wrap_ttl.is_none() {
                return Err(ApiError::bad_request(
                    "endpoint requires response wrapping to be used",
                ));
            }
            Ok(Response::data(Value::Object(req.data.clone())))
        }
        "wrapping/unwrap" | "wrapping/rewrap" | "wrapping/lookup" if write => {
            let t = req
                .str_field("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ApiError::new(403, "error validating wrapping token: token is empty"))?;
            match rest {
                "wrapping/unwrap" => crate::wrapping::unwrap(core, &t).await,
                "wrapping/rewrap" => crate::wrapping::rewrap(core, &t, req.wrap_ttl).await,
                _ => crate::wrapping::lookup(core, &t).await,
            }
        }
        "audit" | "audit/" if req.op == Op::Read => {
            let mut m = Map::new();
            for a in &core.config.audit {
                m.insert(
                    format!("{}/", a.name),
                    json!({"description": "", "local": false, "options": {"file_path": a.path.display().to_string()}, "path": format!("{}/", a.name), "type": a.kind}),
                );
            }
            Ok(top(Response::data(Value::Object(m))))
        }
        r if r.starts_with("audit/") => Err(ApiError::bad_request(
            "cannot enable audit device via API; use declarative, config-based audit device management instead",
        )),
        r if r.starts_with("audit-hash/") && write => {
            let input = req
                .str_field("input")?
                .ok_or_else(|| ApiError::bad_request("the \"input\" parameter is required"))?;
            let name = &r["audit-hash/".len()..];
            if !core.config.audit.iter().any(|a| a.name == name.trim_end_matches('/')) {
                return Err(ApiError::bad_request(format!("unknown audit device \"{name}\"")));
            }
            let hash = core.audit.hash(&input).ok_or_else(ApiError::sealed)?;
            Ok(Response::data(json!({ "hash": hash })))
        }
        "metrics" if req.op == Op::Read => Ok(crate::metrics::response(&core.metrics, core.is_sealed(), req)),
        "broker/audit" if write => broker_audit(core, req, caller).await,
        r if r.starts_with("leases/")
            || r == "renew"
            || r.starts_with("renew/")
            || r == "revoke"
            || r.starts_with("revoke/")
            || r.starts_with("revoke-prefix/")
            || r.starts_with("revoke-force/") =>
        {
            leases::handle(core, req, caller, r).await
        }
        r if r.starts_with("broker/") => {
            crate::broker::handle(core, req, caller, &r["broker/".len()..]).await
        }
        _ => Err(ApiError::unsupported_path()),
    }
}

fn internal_ui_mount(core: &Core, caller: &Caller, path: &str) -> ApiResult<Response> {
    if path.is_empty() {
        return Err(ApiError::bad_request("path is required"));
    }
    let table = core.mounts_snapshot();
    // A token that can reach nothing under the mount learns nothing about it.
    let route = table
        .route(path)
        .filter(|m| caller.is_root || caller.acl.may_reach_prefix(&m.path));
    let Some(m) = route else {
        return Err(ApiError::new(403, format!(
            "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}/\""
        )));
    };
    let mut v = crate::router::mount_json(m);
    if let Value::Object(o) = &mut v {
        o.insert("path".into(), json!(m.path));
    }
    Ok(Response::data(v))
}

async fn mounts(core: &Arc<Core>, req: &Request, raw: &str) -> ApiResult<Response> {
    if let Some(p) = raw
        .strip_suffix("/tune")
        .or_else(|| raw.strip_suffix("/tune/"))
    {
        return tune(core, req, p).await;
    }
    let path = normalize_mount_path(raw)?;
    match req.op {
        Op::Read => {
            let t = core.mounts_snapshot();
            let m = t.get(&path).ok_or_else(|| {
                ApiError::bad_request(format!("No secret engine mount at {path}"))
            })?;
            Ok(top(Response::data(crate::router::mount_json(m))))
        }
        Op::Create | Op::Update => {
            let kind_raw = req.str_field("type")?.ok_or_else(|| {
                ApiError::bad_request("backend type must be specified as a string")
            })?;
            let mut options: BTreeMap<String, String> =
                req.str_map_field("options")?.unwrap_or_default();
            let resolved = crate::router::resolve_type(Which::Secrets, &kind_raw)?;
            for (k, v) in resolved.options {
                options.insert(k.to_string(), v.to_string());
            }
            let kind = resolved.kind;
            let mut entry = new_mount_entry(
                &path,
                kind,
                &req.str_field("description")?.unwrap_or_default(),
                options,
            );
            if let Some(Value::Object(cfg)) = req.data.get("config") {
                for (k, target) in [
                    ("default_lease_ttl", &mut entry.default_lease_ttl),
                    ("max_lease_ttl", &mut entry.max_lease_ttl),
                ] {
                    if let Some(v) = cfg.get(k) {
                        *target = airlock_core::duration::parse_duration_value(v)
                            .map_err(|_| ApiError::bad_request(format!("invalid {k}")))?
                            as i64;
                    }
                }
            }
            entry.local = req.bool_field("local")?.unwrap_or(false);
            let _g = core.locks.lock(crate::mounts::MOUNTS_KEY).await;
            let mut t = core.mounts_snapshot();
            t.check_free(&path)?;
            t.entries.push(entry);
            core.save_mounts(t).await?;
            Ok(Response::empty())
        }
        Op::Delete => {
            let Some(existing) = core.mounts_snapshot().get(&path).cloned() else {
                return Ok(Response::empty());
            };
            disable(core, Which::Secrets, existing).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

/// Disables a mount, secrets engine or auth method alike: the secrets it issued are
/// revoked first (leases under its path; for auth methods, the tokens its logins created),
/// and a failure leaves the mount in place so the disable can be retried. Then the mount
/// leaves its table, secrets issued by requests that were in flight are revoked too, the
/// engine cleans up (connections, caches) and its storage view is cleared.
pub async fn disable(core: &Core, which: Which, existing: MountEntry) -> ApiResult<()> {
    let prefix = match which {
        Which::Secrets => existing.path.clone(),
        Which::Auth => format!("auth/{}", existing.path),
    };
    revoke_issued(core, which, &prefix).await?;
    let backend = core.router.by_uuid(&existing.uuid).map(|(_, b)| b);
    {
        let _g = core.locks.lock(table_key(which)).await;
        let mut t = core.router.snapshot(which);
        let Some(pos) = t.entries.iter().position(|m| m.uuid == existing.uuid) else {
            return Ok(());
        };
        t.entries.remove(pos);
        save_table(core, which, t).await?;
    }
    revoke_issued(core, which, &prefix).await?;
    let ctx = core.leases.ctx(&existing, None);
    if let Some(b) = backend {
        if let Err(e) = b.cleanup(&ctx).await {
            tracing::warn!(mount = %existing.path, error = ?e.errors, "engine cleanup failed");
        }
    }
    ctx.storage.clear().await
}

/// `sys/remount`: moves a mount (secrets engine or auth method, within its own table) to a
/// new path. Its data stays (storage is keyed by the mount's uuid); the leases issued under
/// the old path are revoked first (their ids name the old path), and for an auth method the
/// tokens of logins through the old path too. Done at once; the migration id reports success.
async fn remount(core: &Core, req: &Request) -> ApiResult<Response> {
    let from = req.str_field("from")?.unwrap_or_default();
    let to = req.str_field("to")?.unwrap_or_default();
    if from.trim_matches('/').is_empty() || to.trim_matches('/').is_empty() {
        return Err(ApiError::bad_request(
            "both 'from' and 'to' must be specified",
        ));
    }
    let split = |p: &str| -> (Which, String) {
        match p.trim_start_matches('/').strip_prefix("auth/") {
            Some(rest) => (Which::Auth, rest.to_string()),
            None => (Which::Secrets, p.to_string()),
        }
    };
    let (wf, from_rel) = split(&from);
    let (wt, to_rel) = split(&to);
    if wf != wt {
        return Err(ApiError::bad_request(
            "cannot remount between a secrets engine and an auth method",
        ));
    }
    let src = normalize_mount_path(&from_rel)?;
    let dst = normalize_mount_path(&to_rel)?;
    if wf == Which::Auth && (src == "token/" || dst.starts_with("token/")) {
        return Err(ApiError::bad_request(
            "the token auth method cannot be remounted",
        ));
    }
    let table_path = |p: &str| match wf {
        Which::Secrets => p.to_string(),
        Which::Auth => format!("auth/{p}"),
    };
    let Some(existing) = core.router.snapshot(wf).get(&src).cloned() else {
        return Err(ApiError::bad_request(format!(
            "no matching mount at \"{}\"",
            table_path(&src)
        )));
    };
    core.router
        .snapshot(wf)
        .check_free_except(&dst, &existing.uuid)?;
    revoke_issued(core, wf, &table_path(&src)).await?;
    {
        let _g = core.locks.lock(table_key(wf)).await;
        let mut t = core.router.snapshot(wf);
        t.check_free_except(&dst, &existing.uuid)?;
        let Some(m) = t.entries.iter_mut().find(|m| m.uuid == existing.uuid) else {
            return Err(ApiError::bad_request("the mount was disabled meanwhile"));
        };
        m.path = dst.clone();
        save_table(core, wf, t).await?;
    }
    let id = crate::core::new_uuid();
    core.router
        .record_remount(&id, &table_path(&src), &table_path(&dst));
    tracing::info!(from = %table_path(&src), to = %table_path(&dst), "remounted");
    Ok(Response::data(json!({ "migration_id": id })))
}

fn remount_status(core: &Core, id: &str) -> ApiResult<Response> {
    let (from, to) = core.router.remount_record(id).ok_or_else(|| {
        ApiError::bad_request(format!("no remount found with migration id {id:?}"))
    })?;
    Ok(Response::data(json!({
        "migration_id": id,
        "migration_info": {
            "source_mount": from,
            "target_mount": to,
            "status": "success",
        },
    })))
}

/// Revokes what a mount issued: its leases, and for an auth method the tokens of its logins.
async fn revoke_issued(core: &Core, which: Which, prefix: &str) -> ApiResult<()> {
    core.leases.revoke_prefix(prefix, false).await?;
    if which == Which::Auth {
        core.tokens.revoke_by_path_prefix(prefix).await?;
    }
    Ok(())
}

fn table_key(which: Which) -> &'static str {
    match which {
        Which::Secrets => crate::mounts::MOUNTS_KEY,
        Which::Auth => crate::core::AUTH_TABLE_KEY,
    }
}

async fn save_table(core: &Core, which: Which, t: crate::mounts::MountTable) -> ApiResult<()> {
    match which {
        Which::Secrets => core.save_mounts(t).await,
        Which::Auth => crate::auth::save(core, t).await,
    }
}

async fn tune(core: &Core, req: &Request, raw: &str) -> ApiResult<Response> {
    let path = normalize_mount_path(raw)?;
    let _g = core.locks.lock(crate::mounts::MOUNTS_KEY).await;
    let mut t = core.mounts_snapshot();
    let Some(m) = t.entries.iter_mut().find(|m| m.path == path) else {
        return Err(ApiError::bad_request(format!(
            "cannot fetch sysview for path \"{path}\""
        )));
    };
    match req.op {
        Op::Read => {
            let eff = |v: i64| if v > 0 { v } else { core.config.max_ttl() };
            let mut data = json!({
                "default_lease_ttl": if m.default_lease_ttl > 0 { m.default_lease_ttl } else { core.config.default_ttl() },
                "description": m.description,
                "force_no_cache": false,
                "max_lease_ttl": eff(m.max_lease_ttl),
            });
            if let Value::Object(o) = &mut data {
                if !m.options.is_empty() {
                    o.insert("options".into(), json!(m.options));
                }
            }
            Ok(top(Response::data(data)))
        }
        Op::Create | Op::Update => {
            if let Some(v) = req.duration_field("default_lease_ttl")? {
                m.default_lease_ttl = v;
            }
            if let Some(v) = req.duration_field("max_lease_ttl")? {
                m.max_lease_ttl = v;
            }
            if m.max_lease_ttl > 0 && m.default_lease_ttl > m.max_lease_ttl {
                return Err(ApiError::bad_request(format!(
                    "backend max lease TTL of {} would be less than backend default lease TTL of {}",
                    m.max_lease_ttl, m.default_lease_ttl
                )));
            }
            if let Some(d) = req.str_field("description")? {
                m.description = d;
            }
            if let Some(opts) = req.str_map_field("options")? {
                if let Some(v) = opts.get("version") {
                    if m.options.get("version").map(String::as_str).unwrap_or("1") != v {
                        return Err(ApiError::bad_request(
                            "changing the KV version of an existing mount is not supported",
                        ));
                    }
                }
                for (k, v) in opts {
                    m.options.insert(k, v);
                }
            }
            core.save_mounts(t).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

async fn policy_rw(core: &Core, req: &Request, name: &str, legacy: bool) -> ApiResult<Response> {
    match req.op {
        Op::Read => {
            let mut r = core.policies.read(name).await?;
            if legacy {
                if let Some(Value::Object(mut d)) = r.data.take() {
                    if let Some(text) = d.remove("policy") {
                        d.insert("rules".into(), text);
                    }
                    r = top(Response::data(Value::Object(d)));
                }
            }
            Ok(r)
        }
        Op::Patch
            if !core
                .policies
                .exists(&crate::policies::normalize_name(name)?)
                .await? =>
        {
            Err(ApiError::bad_request("policy not found"))
        }
        Op::Create | Op::Update | Op::Patch => {
            let mut warnings = Vec::new();
            let text = match req.str_field("policy")? {
                Some(t) => t,
                None if legacy => match req.str_field("rules")? {
                    Some(t) => {
                        warnings
                            .push("'rules' is deprecated, please use 'policy' instead".to_string());
                        t
                    }
                    None => String::new(),
                },
                None => String::new(),
            };
            // Vault accepts base64-encoded policy text too.
            let text = decode_maybe_base64(&text);
            core.policies.write(name, &text).await?;
            let mut r = Response::empty();
            r.warnings = warnings;
            Ok(r)
        }
        Op::Delete => {
            core.policies.delete(name).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn decode_maybe_base64(text: &str) -> String {
    use base64::Engine;
    let t = text.trim();
    if t.is_empty() || t.contains('"') || t.contains('{') || t.contains(' ') || t.contains('\n') {
        return text.to_string();
    }
    match base64::engine::general_purpose::STANDARD.decode(t) {
        Ok(b) => String::from_utf8(b).unwrap_or_else(|_| text.to_string()),
        Err(_) => text.to_string(),
    }
}

async fn capabilities(
    core: &Core,
    req: &Request,
    caller: &Caller,
    which: &str,
) -> ApiResult<Response> {
    let mut paths = req.str_list_field("paths")?.unwrap_or_default();
    let single = req.data.get("path").is_some_and(Value::is_string);
    if let Some(p) = req.str_list_field("path")? {
        paths.extend(p);
    }
    if paths.is_empty() {
        return Err(ApiError::bad_request("paths must be supplied"));
    }
    let (acl, root) = match which {
        "capabilities-self" => (Arc::clone(&caller.acl), caller.is_root),
        "capabilities" => {
            let t = req
                .str_field("token")?
                .ok_or_else(|| ApiError::bad_request("missing token"))?;
            let e =
                core.tokens.lookup(&t).await?.ok_or_else(|| {
                    ApiError::bad_request(crate::error::multierror("invalid token"))
                })?;
            let root = e.policies.iter().any(|p| p == "root");
            (core.policies.acl_for(&e.policies).await?, root)
        }
        _ => {
            let a = req
                .str_field("accessor")?
                .ok_or_else(|| ApiError::bad_request("missing accessor"))?;
            let e = core.tokens.by_accessor(&a).await?.ok_or_else(|| {
                ApiError::bad_request(crate::error::multierror("invalid accessor"))
            })?;
            let root = e.policies.iter().any(|p| p == "root");
            (core.policies.acl_for(&e.policies).await?, root)
        }
    };
    let mut out = Map::new();
    let mut last = Value::Null;
    for p in &paths {
        let p = p.trim_start_matches('/');
        let caps: Vec<&str> = if root {
            vec!["root"]
        } else {
            let c = acl.capabilities(p);
            let names = c.names();
            if names.is_empty() {
                vec!["deny"]
            } else {
                names
            }
        };
        last = json!(caps);
        out.insert(p.to_string(), last.clone());
    }
    if paths.len() == 1 && single {
        out.insert("capabilities".into(), last);
    }
    Ok(top(Response::data(Value::Object(out))))
}

/// `sys/broker/audit`: a credential broker hands over a batch of its events (inject, block,
/// scrub, tunnel, deny), which go into the audit log as `broker` entries. Events carry no
/// credential (the broker never puts one in them), so their fields are kept readable; the
/// caller's accessor is HMAC'd like every other audit entry's.
async fn broker_audit(core: &Arc<Core>, req: &Request, caller: &Caller) -> ApiResult<Response> {
    const MAX_EVENTS: usize = 2048;
    const FIELDS: &[&str] = &[
        "time",
        "kind",
        "agent",
        "binding",
        "method",
        "host",
        "port",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "latency_ms",
        "reason",
        "scrubbed",
    ];
    let events = match req.data.get("events") {
        Some(Value::Array(a)) => a,
        _ => {
            return Err(ApiError::bad_request(
                "\"events\" must be a list of objects",
            ))
        }
    };
    if events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_EVENTS} events per request"
        )));
    }
    if !core.audit.enabled() {
        // Validate anyway, so a broker learns about a bad event before an audit device exists.
        for ev in events {
            if !ev.is_object() {
                return Err(ApiError::bad_request(
                    "\"events\" must be a list of objects",
                ));
            }
        }
        return Ok(Response::data(json!({ "accepted": events.len() })));
    }
    let mut entries = Vec::with_capacity(events.len());
    for ev in events {
        let o = ev
            .as_object()
            .ok_or_else(|| ApiError::bad_request("\"events\" must be a list of objects"))?;
        let mut clean = Map::new();
        for (k, v) in o {
            if !FIELDS.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("unknown event field {k:?}")));
            }
            if matches!(v, Value::Object(_) | Value::Array(_)) {
                return Err(ApiError::bad_request(format!(
                    "event field {k:?} must be a scalar"
                )));
            }
            if let Value::String(s) = v {
                if s.len() > 4096 {
                    return Err(ApiError::bad_request(format!(
                        "event field {k:?} is too long"
                    )));
                }
            }
            clean.insert(k.clone(), v.clone());
        }
        entries.push(json!({
            "type": "broker",
            "time": crate::core::rfc3339_nanos(crate::core::now_nanos()),
            "auth": {
                "accessor": caller.entry.as_ref().and_then(|e| core.audit.hash(&e.accessor)),
                "display_name": caller.entry.as_ref().map(|e| e.display_name.clone()),
            },
            "broker": Value::Object(clean),
        }));
    }
    core.audit
        .log_many(&entries)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Response::data(json!({ "accepted": entries.len() })))
}

/// A random index in `0..n`, without modulo bias.
pub fn random_index(n: usize) -> usize {
    use rand::Rng;
    rand::thread_rng().gen_range(0..n.max(1))
}

/// Loads a password policy by name.
pub async fn load_password_policy(
    core: &Core,
    name: &str,
) -> ApiResult<Option<airlock_core::password_policy::PasswordPolicy>> {
    let Some(v) = core
        .barrier
        .get_json::<Value>(&format!("sys/password-policy/{name}"))
        .await?
    else {
        return Ok(None);
    };
    let text = v["policy"].as_str().unwrap_or_default();
    airlock_core::password_policy::PasswordPolicy::parse(text)
        .map(Some)
        .map_err(ApiError::bad_request)
}

/// `sys/policies/password/<name>` and `…/<name>/generate`.
async fn password_policy(core: &Arc<Core>, req: &Request, rest: &str) -> ApiResult<Response> {
    let (name, generate) = match rest.strip_suffix("/generate") {
        Some(n) => (n, true),
        None => (rest.trim_end_matches('/'), false),
    };
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(ApiError::bad_request(format!(
            "invalid policy name {name:?}"
        )));
    }
    let key = format!("sys/password-policy/{name}");
    if generate {
        if req.op != Op::Read {
            return Err(ApiError::unsupported_operation());
        }
        let p = load_password_policy(core, name)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("policy \"{name}\" does not exist")))?;
        let pw = p
            .generate(random_index)
            .ok_or_else(|| ApiError::internal(&"the policy could not be satisfied"))?;
        return Ok(Response::data(json!({ "password": pw })));
    }
    match req.op {
        Op::Read => match core.barrier.get_json::<Value>(&key).await? {
            Some(v) => Ok(Response::data(json!({ "policy": v["policy"] }))),
            None => Err(ApiError::not_found()),
        },
        Op::Delete => {
            core.barrier.delete(&key).await?;
            Ok(Response::empty())
        }
        Op::Create | Op::Update => {
            let text = req
                .str_field("policy")?
                .ok_or_else(|| ApiError::bad_request("missing field 'policy'"))?;
            // Vault also accepts the policy base64-encoded.
            let text = if airlock_core::password_policy::PasswordPolicy::parse(&text).is_err() {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or(text)
            } else {
                text
            };
            let p = airlock_core::password_policy::PasswordPolicy::parse(&text)
                .map_err(ApiError::bad_request)?;
            if p.generate(random_index).is_none() {
                return Err(ApiError::bad_request(
                    "unable to generate a password that satisfies the policy",
                ));
            }
            core.barrier
                .put_json(&key, &json!({ "policy": text }))
                .await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}
