//! Authenticated `sys/` endpoints, routed by one path table (an operation a path does not
//! declare is answered by the framework, as OpenBao does). The unauthenticated ones
//! (`health`, `seal-status`, `init`, `unseal`, `leader`) are in `http.rs` because they answer
//! with plain objects and work while sealed.
//!
//! This directory holds the system backends, the only handlers that see the core:
//! - `mounts`: `sys/mounts`, `sys/remount`, the mount lifecycle (disable revokes first);
//! - `auth`: `sys/auth`, logins and the token a login gets;
//! - `token`: the token method's API, `auth/token/*`;
//! - `policy`: ACL and password policies, capabilities;
//! - `leases`: `sys/leases/*` and the legacy lease endpoints;
//! - `wrapping`: response wrapping and `sys/wrapping/*`;
//! - `broker`: `sys/broker/*`, the credential broker's bindings, agents, keys, honeytokens
//!   and usage; `broker_usage`: `sys/broker/usage`, budget usage shared between broker
//!   replicas; `approvals`: `sys/broker/approvals`;
//! - `audit_query`: reading the audit log back through its index, verifying its chain;
//! - here: seal, rotation, key status, audit, metrics.

mod approvals;
mod audit_query;
pub mod auth;
pub mod broker;
mod broker_usage;
mod leases;
pub mod mounts;
mod policy;
pub mod storage;
pub mod token;
pub mod wrapping;

use std::sync::Arc;

use airlock_logical::framework::{self, PathSpec};
use serde_json::{json, Map, Value};

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{top, Op, Request, Response};

#[derive(Clone, Copy)]
enum S {
    MountsList,
    AuthTuneRead,
    AuthTuneWrite,
    MountTuneRead,
    MountTuneWrite,
    MountRead,
    MountEnable,
    MountDelete,
    Remount,
    RemountStatus,
    UiMount,
    AclList,
    AclRead,
    AclWrite,
    AclDelete,
    PasswordList,
    PasswordGenerate,
    PasswordRead,
    PasswordWrite,
    PasswordDelete,
    LegacyList,
    LegacyRead,
    LegacyWrite,
    LegacyDelete,
    Capabilities,
    Seal,
    Rotate,
    KeyStatus,
    HaStatus,
    Backup,
    Restore,
    Events,
    EventsSubscribe,
    AuthList,
    AuthListRefused,
    AuthRead,
    AuthEnable,
    AuthDisable,
    Wrap,
    Unwrap,
    Rewrap,
    WrapLookup,
    AuditList,
    AuditRefused,
    AuditHash,
    AuditQuery,
    AuditVerify,
    Metrics,
    BrokerAudit,
    Broker,
    Leases,
}

#[rustfmt::skip]
static PATHS: &[PathSpec<S>] = &[
    PathSpec::new("mounts/?", &[(Op::Read, S::MountsList)]),
    // `sys/mounts/auth/<path>/tune` is how the vault/bao CLIs tune auth methods.
    PathSpec::new("mounts/auth/{path+}/tune/?", &[(Op::Read, S::AuthTuneRead), (Op::Update, S::AuthTuneWrite)]),
    PathSpec::new("mounts/{path+}/tune/?", &[(Op::Read, S::MountTuneRead), (Op::Update, S::MountTuneWrite)]),
    PathSpec::new("mounts/{path+}", &[(Op::Read, S::MountRead), (Op::Update, S::MountEnable), (Op::Delete, S::MountDelete)]),
    PathSpec::new("remount", &[(Op::Update, S::Remount)]),
    PathSpec::new("remount/status/{id+}", &[(Op::Read, S::RemountStatus)]),
    PathSpec::new("internal/ui/mounts/{path*}", &[(Op::Read, S::UiMount)]),
    PathSpec::new("policies/acl/?", &[(Op::List, S::AclList)]),
    PathSpec::new("policies/acl/{name+}", &[(Op::Read, S::AclRead), (Op::Update, S::AclWrite), (Op::Patch, S::AclWrite), (Op::Delete, S::AclDelete)]),
    PathSpec::new("policies/password/?", &[(Op::List, S::PasswordList)]),
    PathSpec::new("policies/password/{name+}/generate", &[(Op::Read, S::PasswordGenerate)]),
    PathSpec::new("policies/password/{name+}", &[(Op::Read, S::PasswordRead), (Op::Update, S::PasswordWrite), (Op::Delete, S::PasswordDelete)]),
    PathSpec::new("policy/?", &[(Op::Read, S::LegacyList), (Op::List, S::LegacyList)]),
    PathSpec::new("policy/{name+}", &[(Op::Read, S::LegacyRead), (Op::Update, S::LegacyWrite), (Op::Patch, S::LegacyWrite), (Op::Delete, S::LegacyDelete)]),
    PathSpec::new("capabilities", &[(Op::Update, S::Capabilities)]),
    PathSpec::new("capabilities-self", &[(Op::Update, S::Capabilities)]),
    PathSpec::new("capabilities-accessor", &[(Op::Update, S::Capabilities)]),
    PathSpec::new("seal", &[(Op::Update, S::Seal)]),
    PathSpec::new("rotate", &[(Op::Update, S::Rotate)]),
    PathSpec::new("rotate/keyring", &[(Op::Update, S::Rotate), (Op::Read, S::KeyStatus)]),
    PathSpec::new("key-status", &[(Op::Read, S::KeyStatus)]),
    PathSpec::new("ha-status", &[(Op::Read, S::HaStatus)]),
    PathSpec::new("storage/backup", &[(Op::Read, S::Backup)]),
    PathSpec::new("airlock/events", &[(Op::Read, S::Events)]),
    PathSpec::new("events/subscribe/{rest+}", &[(Op::Read, S::EventsSubscribe)]),
    PathSpec::new("storage/restore", &[(Op::Update, S::Restore)]),
    PathSpec::new("auth/?", &[(Op::Read, S::AuthList), (Op::List, S::AuthListRefused)]),
    PathSpec::new("auth/{path+}/tune/?", &[(Op::Read, S::AuthTuneRead), (Op::Update, S::AuthTuneWrite)]),
    PathSpec::new("auth/{path+}", &[(Op::Read, S::AuthRead), (Op::Update, S::AuthEnable), (Op::Delete, S::AuthDisable)]),
    PathSpec::new("wrapping/wrap", &[(Op::Update, S::Wrap)]),
    PathSpec::new("wrapping/unwrap", &[(Op::Update, S::Unwrap)]),
    PathSpec::new("wrapping/rewrap", &[(Op::Update, S::Rewrap)]),
    PathSpec::new("wrapping/lookup", &[(Op::Update, S::WrapLookup)]),
    PathSpec::new("audit/?", &[(Op::Read, S::AuditList)]),
    PathSpec::new("audit/{name+}", &[(Op::Read, S::AuditRefused), (Op::Update, S::AuditRefused), (Op::Delete, S::AuditRefused)]),
    PathSpec::new("audit-hash/{name+}", &[(Op::Update, S::AuditHash)]),
    PathSpec::new("airlock/audit/query", &[(Op::Read, S::AuditQuery)]),
    PathSpec::new("airlock/audit/verify", &[(Op::Update, S::AuditVerify)]),
    PathSpec::new("metrics", &[(Op::Read, S::Metrics)]),
    PathSpec::new("broker/audit", &[(Op::Update, S::BrokerAudit)]),
    PathSpec::new("broker/{rest+}", &[(Op::Read, S::Broker), (Op::Update, S::Broker), (Op::Delete, S::Broker), (Op::List, S::Broker)]),
    PathSpec::new("leases/{rest*}", LEASE_OPS),
    PathSpec::new("renew", LEASE_OPS),
    PathSpec::new("renew/{rest+}", LEASE_OPS),
    PathSpec::new("revoke", LEASE_OPS),
    PathSpec::new("revoke/{rest+}", LEASE_OPS),
    PathSpec::new("revoke-prefix/{rest*}", LEASE_OPS),
    PathSpec::new("revoke-force/{rest*}", LEASE_OPS),
];

/// The lease endpoints route their own operations (`leases`).
const LEASE_OPS: &[(Op, S)] = &[
    (Op::Read, S::Leases),
    (Op::Update, S::Leases),
    (Op::List, S::Leases),
];

pub async fn handle(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    rest: &str,
) -> ApiResult<Response> {
    let Some((_, h, caps)) = framework::route(PATHS, rest, req.op)? else {
        return Err(ApiError::unsupported_path());
    };
    let cap = |k: &str| framework::cap(&caps, k);
    match h {
        S::MountsList => Ok(mounts::list(core)),
        S::AuthTuneRead => crate::sys::auth::tune_read(core, cap("path")),
        S::AuthTuneWrite => crate::sys::auth::tune_write(core, req, cap("path")).await,
        S::MountTuneRead => mounts::tune_read(core, cap("path")),
        S::MountTuneWrite => mounts::tune_write(core, req, cap("path")).await,
        S::MountRead => mounts::read(core, cap("path")),
        S::MountEnable => mounts::enable(core, req, cap("path")).await,
        S::MountDelete => mounts::delete(core, cap("path")).await,
        S::Remount => mounts::remount(core, req).await,
        S::RemountStatus => mounts::remount_status(core, cap("id")),
        S::UiMount if cap("path").is_empty() => Ok(ui_mount_list(core, caller)),
        S::UiMount => mounts::internal_ui_mount(core, caller, cap("path")),
        S::AclList => Ok(Response::list(core.policies.list().await?)),
        S::AclRead => policy::read(core, cap("name"), false).await,
        S::AclWrite => policy::write(core, req, cap("name"), false).await,
        S::AclDelete | S::LegacyDelete => policy::delete(core, cap("name")).await,
        S::PasswordList => policy::password_list(core).await,
        S::PasswordGenerate => policy::password_generate(core, cap("name")).await,
        S::PasswordRead => policy::password_read(core, cap("name")).await,
        S::PasswordWrite => policy::password_write(core, req, cap("name")).await,
        S::PasswordDelete => policy::password_delete(core, cap("name")).await,
        S::LegacyList => {
            let keys = core.policies.list().await?;
            Ok(top(Response::data(json!({"keys": keys, "policies": keys}))))
        }
        S::LegacyRead => policy::read(core, cap("name"), true).await,
        S::LegacyWrite => policy::write(core, req, cap("name"), true).await,
        S::Capabilities => policy::capabilities(core, req, caller, rest).await,
        S::Seal => {
            core.seal().await;
            Ok(Response::empty())
        }
        S::Rotate => {
            core.rotate().await?;
            Ok(Response::empty())
        }
        S::Backup => storage::backup_response(core).await,
        S::Events => crate::events::handle(core, req, caller).await,
        // Checked here; the HTTP edge then upgrades the connection to a WebSocket.
        S::EventsSubscribe => {
            crate::event_stream::check_vault_params(req)?;
            Ok(Response::empty())
        }
        S::Restore => storage::restore(core, req).await,
        S::HaStatus => Ok(top(Response::data(core.ha_status().await?))),
        S::KeyStatus => {
            let kr = core.barrier.keyring()?;
            Ok(top(Response::data(json!({
                "term": kr.active_term(),
                "install_time": crate::core::rfc3339_nanos(kr.active_installed() as i128 * 1_000_000_000),
                "encryptions": core.barrier.encryptions(),
            }))))
        }
        S::AuthList => Ok(crate::sys::auth::list(core)),
        S::AuthListRefused => Err(ApiError::unsupported_path()),
        S::AuthRead => crate::sys::auth::read(core, cap("path")),
        S::AuthEnable => crate::sys::auth::enable(core, req, cap("path")).await,
        S::AuthDisable => crate::sys::auth::disable(core, cap("path")).await,
        S::Wrap => {
            if req.wrap_ttl.is_none() {
                return Err(ApiError::bad_request(
                    "endpoint requires response wrapping to be used",
                ));
            }
            Ok(Response::data(Value::Object(req.data.clone())))
        }
        S::Unwrap | S::Rewrap | S::WrapLookup => {
            let t = req
                .str_field("token")?
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ApiError::new(403, "error validating wrapping token: token is empty"))?;
            match h {
                S::Unwrap => crate::sys::wrapping::unwrap(core, &t).await,
                S::Rewrap => crate::sys::wrapping::rewrap(core, &t, req.wrap_ttl).await,
                _ => crate::sys::wrapping::lookup(core, &t).await,
            }
        }
        S::AuditList => {
            let mut m = Map::new();
            for a in &core.config.audit {
                m.insert(
                    format!("{}/", a.name),
                    json!({"description": "", "local": false, "options": {"file_path": a.path.display().to_string()}, "path": format!("{}/", a.name), "type": a.kind}),
                );
            }
            Ok(top(Response::data(Value::Object(m))))
        }
        S::AuditRefused => Err(ApiError::bad_request(
            "cannot enable audit device via API; use declarative, config-based audit device management instead",
        )),
        S::AuditQuery => audit_query::query(core, req).await,
        S::AuditVerify => audit_query::verify(core, req).await,
        S::AuditHash => {
            let input = req
                .str_field("input")?
                .ok_or_else(|| ApiError::bad_request("the \"input\" parameter is required"))?;
            let name = cap("name");
            if !core.config.audit.iter().any(|a| a.name == name.trim_end_matches('/')) {
                return Err(ApiError::bad_request(format!("unknown audit device \"{name}\"")));
            }
            let hash = core.audit.hash(&input).ok_or_else(ApiError::sealed)?;
            Ok(Response::data(json!({ "hash": hash })))
        }
        S::Metrics => Ok(crate::metrics::response(&core.metrics, core.is_sealed(), req)),
        S::BrokerAudit => broker_audit(core, req, caller).await,
        S::Broker => crate::sys::broker::handle(core, req, caller, cap("rest")).await,
        S::Leases => leases::handle(core, req, caller, rest).await,
    }
}

/// GET `sys/internal/ui/mounts`: the secret and auth mounts this token may reach
/// something under (every one for root), as Vault's UI lists them.
fn ui_mount_list(core: &Core, caller: &Caller) -> Response {
    let may = |p: &str| caller.is_root || caller.acl.may_reach_prefix(p);
    let mut secret = Map::new();
    for m in core
        .mounts_snapshot()
        .entries
        .iter()
        .filter(|m| may(&m.path))
    {
        secret.insert(m.path.clone(), crate::router::mount_json(m));
    }
    let mut auth = Map::new();
    if let Value::Object(all) = auth::list_json(core) {
        for (k, v) in all {
            if may(&format!("auth/{k}")) {
                auth.insert(k, v);
            }
        }
    }
    Response::data(json!({"secret": secret, "auth": auth}))
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
        "severity",
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
        if clean.get("kind").and_then(Value::as_str) == Some("honeytoken") {
            core.metrics
                .honeytoken_broker_uses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
