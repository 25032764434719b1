//! What an engine may ask of the system, and the context every call carries.
//!
//! [`SystemView`] is the engine's only window on the server: the clock, TTL limits, password
//! policies, the HMAC key, and the lease manager (register a lease before creating what it
//! stands for; revoke it when creation fails). [`Ctx`] bundles the system view with the
//! storage view scoped to the mount, the mount entry and who is calling — never the ACL, the
//! token store or the core.

use std::sync::Arc;

use airlock_core::password_policy::PasswordPolicy;
use async_trait::async_trait;
use serde_json::Value;

use crate::error::ApiResult;
use crate::mount::MountEntry;
use crate::storage::View;

/// The token behind a request, as much of it as an engine may know.
#[derive(Clone, Debug, Default)]
pub struct CallerInfo {
    pub display_name: String,
    /// HMAC of the token (the lease owner).
    pub token_hash: Option<String>,
    /// Unix seconds when the token expires (leases never outlive it).
    pub token_expiry: Option<i64>,
    /// A batch token (not persisted: no cubbyhole, no children).
    pub batch: bool,
}

/// A lease an engine registers before it creates the secret behind it.
pub struct NewLease {
    /// `database/creds/app/<random>`.
    pub lease_id: String,
    /// The request path that creates it (`database/creds/app`).
    pub path: String,
    pub default_ttl: u64,
    pub max_ttl: u64,
    /// What the engine needs to revoke it (encrypted at rest).
    pub internal: Value,
}

/// What the lease manager granted.
#[derive(Clone, Debug)]
pub struct LeaseGrant {
    pub lease_id: String,
    pub ttl: u64,
    /// Unix seconds.
    pub expires_at: i64,
    pub warning: Option<String>,
}

/// A lease as the engine that issued it sees it on renew and revoke.
pub struct LeaseInfo<'a> {
    pub lease_id: &'a str,
    pub internal: &'a Value,
    /// Unix seconds.
    pub expire_time: i64,
}

#[async_trait]
pub trait SystemView: Send + Sync {
    fn now_unix(&self) -> i64;
    fn now_nanos(&self) -> i128;
    /// The server-wide default lease TTL (seconds).
    fn default_lease_ttl(&self) -> i64;
    /// The server-wide maximum lease TTL (seconds); nothing an engine grants exceeds it.
    fn max_lease_ttl(&self) -> i64;
    /// A named password policy (`None`: no such policy).
    async fn password_policy(&self, name: &str) -> ApiResult<Option<PasswordPolicy>>;
    /// HMAC-SHA256 under the server's token key, hex (for ids stored only as HMACs).
    fn hmac(&self, s: &str) -> ApiResult<String>;
    /// Registers (durably) a lease owned by `caller`'s token, for the mount `mount_uuid`.
    async fn create_lease(
        &self,
        mount_uuid: &str,
        caller: Option<&CallerInfo>,
        lease: NewLease,
    ) -> ApiResult<LeaseGrant>;
    /// Revokes a lease through its engine (`force`: the records go even if the engine fails).
    async fn revoke_lease(&self, lease_id: &str, force: bool) -> ApiResult<bool>;
}

/// Everything a call into an engine carries.
#[derive(Clone)]
pub struct Ctx {
    pub storage: View,
    pub sys: Arc<dyn SystemView>,
    pub mount: Arc<MountEntry>,
    pub caller: Option<CallerInfo>,
}

/// The TTLs a role may grant once the mount's and the system's limits are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttls {
    pub default: i64,
    pub max: i64,
}

impl Ctx {
    pub fn now_unix(&self) -> i64 {
        self.sys.now_unix()
    }
    pub fn now_nanos(&self) -> i128 {
        self.sys.now_nanos()
    }

    /// The mount's maximum lease TTL: its own setting, never above the system maximum.
    pub fn max_lease_ttl(&self) -> i64 {
        let sys = self.sys.max_lease_ttl();
        if self.mount.max_lease_ttl > 0 {
            self.mount.max_lease_ttl.min(sys)
        } else {
            sys
        }
    }

    /// The longest validity of something that is not a lease (a certificate): the mount's
    /// own maximum when it has one — a CA is meant to outlive every lease — else the
    /// system's, as Vault's PKI reads it.
    pub fn max_validity(&self) -> i64 {
        if self.mount.max_lease_ttl > 0 {
            self.mount.max_lease_ttl
        } else {
            self.sys.max_lease_ttl()
        }
    }

    /// The mount's default lease TTL: its own setting or the system default.
    pub fn default_lease_ttl(&self) -> i64 {
        if self.mount.default_lease_ttl > 0 {
            self.mount.default_lease_ttl
        } else {
            self.sys.default_lease_ttl()
        }
    }

    /// Clamps a role's TTLs (0 = unset) once, for every engine: the max never exceeds the
    /// mount's (itself capped by the system's), the default never exceeds the max.
    pub fn clamp_ttls(&self, role_default: i64, role_max: i64) -> Ttls {
        let mount_max = self.max_lease_ttl();
        let max = if role_max > 0 {
            role_max.min(mount_max)
        } else {
            mount_max
        };
        let default = if role_default > 0 {
            role_default
        } else {
            self.default_lease_ttl()
        };
        Ttls {
            default: default.min(max),
            max,
        }
    }

    /// Registers a lease for this mount, owned by the caller's token.
    pub async fn create_lease(&self, lease: NewLease) -> ApiResult<LeaseGrant> {
        self.sys
            .create_lease(&self.mount.uuid, self.caller.as_ref(), lease)
            .await
    }

    pub async fn revoke_lease(&self, lease_id: &str, force: bool) -> ApiResult<bool> {
        self.sys.revoke_lease(lease_id, force).await
    }

    /// An event about `rel` (below the mount) to commit with the change it describes: Vault's
    /// event type (`kv-v2/data-write`), and metadata that names paths and versions, never a
    /// value. `data_rel` is the path a subscriber must be able to read to receive it.
    pub fn event(
        &self,
        event_type: &str,
        rel: &str,
        data_rel: &str,
        metadata: &[(&str, String)],
    ) -> crate::BarrierOp {
        event_op(
            event_type,
            &format!("{}{rel}", self.mount.path),
            &format!("{}{data_rel}", self.mount.path),
            &self.mount,
            metadata,
            self.now_nanos(),
        )
    }

    /// The caller's display name (`token` when there is none).
    pub fn display_name(&self) -> &str {
        self.caller
            .as_ref()
            .map(|c| c.display_name.as_str())
            .unwrap_or("token")
    }
}

/// An event op (see [`Ctx::event`]) for `path` in `mount`; the server uses it for its own
/// changes (policies, mount tables) with a `sys/` mount entry.
pub fn event_op(
    event_type: &str,
    path: &str,
    data_path: &str,
    mount: &crate::MountEntry,
    metadata: &[(&str, String)],
    now_nanos: i128,
) -> crate::BarrierOp {
    let mut meta = serde_json::Map::new();
    for (k, v) in metadata {
        meta.insert((*k).to_string(), serde_json::Value::String(v.clone()));
    }
    let operation = event_type.rsplit('/').next().unwrap_or(event_type);
    meta.insert("operation".into(), operation.into());
    meta.insert("path".into(), path.into());
    meta.insert("data_path".into(), data_path.into());
    let e = serde_json::json!({
        "event_type": event_type,
        "path": path,
        "data_path": data_path,
        "mount_path": mount.path,
        "mount_type": mount.kind,
        "mount_accessor": mount.accessor,
        "metadata": meta,
        "time": crate::util::rfc3339_nanos(now_nanos),
    });
    crate::BarrierOp::Event(serde_json::to_vec(&e).unwrap_or_default())
}
