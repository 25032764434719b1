//! `sys/mounts` (list, enable, read, tune, disable), `sys/remount`, the UI's preflight
//! `sys/internal/ui/mounts/<path>`, and the mount lifecycle both tables share: disabling a
//! mount revokes what it issued before its data goes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{top, Request, Response};
use crate::mounts::{
    is_builtin, mount_path_syntax, new_mount_entry, normalize_mount_path, system_mount_json,
    MountEntry,
};
use crate::router::Which;

/// GET `sys/mounts`.
pub(super) fn list(core: &Core) -> Response {
    let mut m = Map::new();
    for e in core.mounts_snapshot().entries {
        m.insert(e.path.clone(), crate::router::mount_json(&e));
    }
    m.insert("sys/".into(), system_mount_json());
    top(Response::data(Value::Object(m)))
}

/// GET `sys/mounts/<path>`.
pub(super) fn read(core: &Core, raw: &str) -> ApiResult<Response> {
    let path = mount_path_syntax(raw)?;
    let t = core.mounts_snapshot();
    let m = t
        .get(&path)
        .ok_or_else(|| ApiError::bad_request(format!("No secret engine mount at {path}")))?;
    Ok(top(Response::data(crate::router::mount_json(m))))
}

/// POST `sys/mounts/<path>`: enables an engine.
pub(super) async fn enable(core: &Core, req: &Request, raw: &str) -> ApiResult<Response> {
    let path = normalize_mount_path(raw)?;
    let kind_raw = req
        .str_field("type")?
        .ok_or_else(|| ApiError::bad_request("backend type must be specified as a string"))?;
    let mut options: BTreeMap<String, String> = req.kv_pairs_field("options")?.unwrap_or_default();
    let config = req.object_field("config")?;
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
    if let Some(cfg) = &config {
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
    let g = core.lock_table(Which::Secrets).await?;
    let mut t = core.mounts_snapshot();
    t.check_free(&path)?;
    t.entries.push(entry);
    core.save_table(&g, Which::Secrets, t).await?;
    Ok(Response::empty())
}

/// DELETE `sys/mounts/<path>`.
pub(super) async fn delete(core: &Core, raw: &str) -> ApiResult<Response> {
    let path = mount_path_syntax(raw)?;
    if is_builtin(&path) {
        return Err(ApiError::bad_request(format!("cannot unmount \"{path}\"")));
    }
    let Some(existing) = core.mounts_snapshot().get(&path).cloned() else {
        return Ok(Response::empty());
    };
    disable(core, Which::Secrets, existing).await?;
    Ok(Response::empty())
}

/// GET `sys/mounts/<path>/tune`.
pub(super) fn tune_read(core: &Core, raw: &str) -> ApiResult<Response> {
    let path = mount_path_syntax(raw)?;
    let t = core.mounts_snapshot();
    let Some(m) = t.entries.iter().find(|m| m.path == path) else {
        return Err(ApiError::bad_request(format!(
            "cannot fetch sysview for path \"{path}\""
        )));
    };
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

/// POST `sys/mounts/<path>/tune`.
pub(super) async fn tune_write(core: &Core, req: &Request, raw: &str) -> ApiResult<Response> {
    let path = mount_path_syntax(raw)?;
    if is_builtin(&path) {
        // As OpenBao: an empty tune is fine; any parameter is refused.
        for k in [
            "default_lease_ttl",
            "max_lease_ttl",
            "description",
            "options",
            "listing_visibility",
            "passthrough_request_headers",
            "allowed_response_headers",
            "plugin_version",
            "user_lockout_config",
        ] {
            if req.data.contains_key(k) {
                return Err(ApiError::bad_request(format!(
                    "cannot tune parameter {k} of {path}"
                )));
            }
        }
        return Ok(Response::empty());
    }
    let g = core.lock_table(Which::Secrets).await?;
    let mut t = core.mounts_snapshot();
    let Some(m) = t.entries.iter_mut().find(|m| m.path == path) else {
        return Err(ApiError::bad_request(format!(
            "cannot fetch sysview for path \"{path}\""
        )));
    };
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
    core.save_table(&g, Which::Secrets, t).await?;
    Ok(Response::empty())
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
    // The engine and its storage view, for cleanup once the mount has left its table.
    let mounted = core.router.by_uuid(&existing.uuid);
    {
        let g = core.lock_table(which).await?;
        let mut t = core.router.snapshot(which);
        let Some(pos) = t.entries.iter().position(|m| m.uuid == existing.uuid) else {
            return Ok(());
        };
        t.entries.remove(pos);
        core.save_table(&g, which, t).await?;
    }
    revoke_issued(core, which, &prefix).await?;
    let Some(m) = mounted else {
        return Ok(());
    };
    let ctx = core.leases.ctx(&m, None);
    if let Err(e) = m.backend.cleanup(&ctx).await {
        tracing::warn!(mount = %existing.path, error = ?e.errors, "engine cleanup failed");
    }
    ctx.storage.clear().await
}

/// `sys/remount`: moves a mount (secrets engine or auth method, within its own table) to a
/// new path. Its data stays (storage is keyed by the mount's uuid); the leases issued under
/// the old path are revoked first (their ids name the old path), and for an auth method the
/// tokens of logins through the old path too. Done at once; the migration id reports success.
pub(super) async fn remount(core: &Core, req: &Request) -> ApiResult<Response> {
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
    let src = mount_path_syntax(&from_rel)?;
    if wf == Which::Secrets && is_builtin(&src) {
        return Err(ApiError::bad_request(format!("cannot remount \"{src}\"")));
    }
    let dst = mount_path_syntax(&to_rel)?;
    if wf == Which::Secrets && crate::mounts::RESERVED.iter().any(|r| dst.starts_with(r)) {
        return Err(ApiError::bad_request(format!(
            "cannot remount to destination {dst}"
        )));
    }
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
        let g = core.lock_table(wf).await?;
        let mut t = core.router.snapshot(wf);
        t.check_free_except(&dst, &existing.uuid)?;
        let Some(m) = t.entries.iter_mut().find(|m| m.uuid == existing.uuid) else {
            return Err(ApiError::bad_request("the mount was disabled meanwhile"));
        };
        m.path = dst.clone();
        core.save_table(&g, wf, t).await?;
    }
    let id = crate::core::new_uuid();
    core.router
        .record_remount(&id, &table_path(&src), &table_path(&dst));
    tracing::info!(from = %table_path(&src), to = %table_path(&dst), "remounted");
    Ok(Response::data(json!({ "migration_id": id })))
}

pub(super) fn remount_status(core: &Core, id: &str) -> ApiResult<Response> {
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

pub(super) fn internal_ui_mount(core: &Core, caller: &Caller, path: &str) -> ApiResult<Response> {
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
