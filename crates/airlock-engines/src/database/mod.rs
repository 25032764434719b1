//! The `database` secrets engine (Vault-compatible paths): connection configs, roles with
//! dynamic credentials under leases, static roles whose password rotates on a schedule, and
//! root rotation. Each database is a [`plugin::Plugin`] (PostgreSQL, MySQL/MariaDB, Redis),
//! looked up by the config's `plugin_name`.
//!
//! Storage in the mount's view: `config/<name>` (the connection password is encrypted like
//! every value and never returned), `role/<name>`, `static-role/<name>` (with its current
//! password).
//!
//! A credential's lease is registered (durably) before the user is created, so a crash in
//! between leaves a lease whose revocation finds nothing, never a user without a lease; if
//! creation fails, the lease is revoked at once.

mod config;
mod creds;
mod mysql;
mod mysql_client;
pub mod plugin;
mod postgres;
mod redis;
mod redis_client;
mod static_roles;
mod tls;

use std::sync::Arc;

use airlock_logical::{
    ApiError, ApiResult, Ctx, Engine, Field, LeaseInfo, Op, PathSpec, Request, Response,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use postgres::scram_sha256_verifier;

use plugin::Plugin;

/// A connection config (`config/<name>`).
#[derive(Clone, Serialize, Deserialize)]
pub struct DbConfig {
    pub plugin_name: String,
    pub connection_url: String,
    pub username: String,
    pub password: String,
    pub allowed_roles: Vec<String>,
    #[serde(default)]
    pub password_authentication: String,
    #[serde(default)]
    pub root_rotation_statements: Vec<String>,
    #[serde(default)]
    pub max_open_connections: u32,
    #[serde(default)]
    pub max_idle_connections: u32,
    /// Seconds; 0 = connections live until they fail.
    #[serde(default)]
    pub max_connection_lifetime: i64,
    /// Name of a password policy for generated passwords (`sys/policies/password/<name>`).
    #[serde(default)]
    pub password_policy: String,
    /// Vault `username_template` (Go template subset); empty = the plugin's default.
    #[serde(default)]
    pub username_template: String,
    /// Redis: host and port (Redis has no connection URL).
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    /// Redis (Vault's fields): TLS on, its CA (PEM), and no certificate verification.
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub ca_cert: String,
    #[serde(default)]
    pub insecure_tls: bool,
    /// MySQL (Vault's fields): a CA (PEM), a client certificate and key (PEM), the name to
    /// verify, and no verification; setting a CA or client certificate turns TLS on.
    #[serde(default)]
    pub tls_ca: String,
    #[serde(default)]
    pub tls_certificate_key: String,
    #[serde(default)]
    pub tls_server_name: String,
    #[serde(default)]
    pub tls_skip_verify: bool,
}

impl Drop for DbConfig {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.password.zeroize();
        self.tls_certificate_key.zeroize();
    }
}

/// A dynamic role (`role/<name>`).
#[derive(Clone, Serialize, Deserialize)]
pub struct Role {
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    pub rollback_statements: Vec<String>,
    pub default_ttl: i64,
    pub max_ttl: i64,
}

/// The database engine, with its plugins (each holding its own connection pools).
pub struct Database {
    plugins: Vec<Arc<dyn Plugin>>,
}

impl Database {
    /// The engine with the built-in plugins.
    pub fn new() -> Self {
        Self::with_plugins(vec![
            Arc::new(postgres::PostgresPlugin::default()),
            Arc::new(mysql::MySqlPlugin),
            Arc::new(redis::RedisPlugin),
        ])
    }

    /// The engine with the given plugins (tests use a fake one).
    pub fn with_plugins(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Database { plugins }
    }

    fn plugin(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.plugins.iter().find(|p| p.names().contains(&name))
    }

    fn plugin_for(&self, c: &DbConfig) -> ApiResult<&Arc<dyn Plugin>> {
        self.plugin(&c.plugin_name).ok_or_else(|| {
            ApiError::bad_request(format!("plugin not supported: {:?}", c.plugin_name))
        })
    }

    fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins
            .iter()
            .flat_map(|p| p.names().iter().copied())
            .collect()
    }

    /// Forgets every plugin's pooled connections of `conn`.
    async fn reset(&self, conn: &str) {
        for p in &self.plugins {
            p.reset(conn).await;
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy)]
pub enum H {
    ConfigList,
    ConfigRead,
    ConfigWrite,
    ConfigDelete,
    RoleList,
    RoleRead,
    RoleWrite,
    RoleDelete,
    Creds,
    Reset,
    RotateRoot,
    StaticList,
    StaticRead,
    StaticWrite,
    StaticDelete,
    StaticCreds,
    RotateRole,
}

const CONFIG_FIELDS: &[Field] = &[
    Field::str("plugin_name")
        .help("The database plugin (postgresql-, mysql-, redis-database-plugin)."),
    Field::str("connection_url")
        .help("Where to connect; {{username}} and {{password}} are filled in."),
    Field::str("username"),
    Field::str("password").sensitive(),
    Field::list("allowed_roles").help("Roles that may use this connection (* for any)."),
    Field::str("password_authentication").help("scram-sha-256: send PostgreSQL a SCRAM verifier."),
    Field::json("root_rotation_statements"),
    Field::int("max_open_connections"),
    Field::int("max_idle_connections"),
    Field::duration("max_connection_lifetime"),
    Field::str("password_policy"),
    Field::str("username_template"),
    Field::str("host"),
    Field::int("port"),
    Field::bool("tls").help("Redis: connect over TLS."),
    Field::str("ca_cert").help("Redis: the CA (PEM) to verify the server with."),
    Field::bool("insecure_tls").help("Redis: do not verify the server's certificate."),
    Field::str("tls_ca").help("MySQL: the CA (PEM) to verify the server with (turns TLS on)."),
    Field::str("tls_certificate_key")
        .sensitive()
        .help("MySQL: a client certificate and its key (PEM), for mutual TLS."),
    Field::str("tls_server_name").help("MySQL: the name the server's certificate must have."),
    Field::bool("tls_skip_verify").help("MySQL: do not verify the server's certificate."),
    Field::bool("verify_connection").default("true"),
];
const ROLE_FIELDS: &[Field] = &[
    Field::str("db_name"),
    Field::json("creation_statements"),
    Field::json("revocation_statements"),
    Field::json("renew_statements"),
    Field::json("rollback_statements"),
    Field::duration("default_ttl"),
    Field::duration("max_ttl"),
];
const STATIC_FIELDS: &[Field] = &[
    Field::str("db_name"),
    Field::str("username"),
    Field::duration("rotation_period"),
    Field::str("rotation_schedule"),
    Field::duration("rotation_window"),
    Field::json("rotation_statements"),
];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("config/?", &[(Op::List, H::ConfigList)]).help("Connection configs.", ""),
    PathSpec::new(
        "config/{name+}",
        &[
            (Op::Read, H::ConfigRead),
            (Op::Update, H::ConfigWrite),
            (Op::Delete, H::ConfigDelete),
        ],
    )
    .fields(&[CONFIG_FIELDS])
    .existence()
    .help(
        "A connection to a database; the password is never returned.",
        "",
    ),
    PathSpec::new("roles/?", &[(Op::List, H::RoleList)]).help("Dynamic roles.", ""),
    PathSpec::new(
        "roles/{name+}",
        &[
            (Op::Read, H::RoleRead),
            (Op::Update, H::RoleWrite),
            (Op::Delete, H::RoleDelete),
        ],
    )
    .fields(&[ROLE_FIELDS])
    .existence()
    .help(
        "A role: the statements that create a user and its lease TTLs.",
        "",
    ),
    PathSpec::new("creds/{name*}", &[(Op::Read, H::Creds)])
        .help("Creates a user for the role, under a lease.", ""),
    PathSpec::new("reset/{name*}", &[(Op::Update, H::Reset)])
        .help("Drops the pooled connections of a connection config.", ""),
    PathSpec::new("rotate-root/{name*}", &[(Op::Update, H::RotateRoot)]).help(
        "Replaces the connection user's password with one only Airlock knows.",
        "",
    ),
    PathSpec::new("static-roles/?", &[(Op::List, H::StaticList)]).help("Static roles.", ""),
    PathSpec::new(
        "static-roles/{name+}",
        &[
            (Op::Read, H::StaticRead),
            (Op::Update, H::StaticWrite),
            (Op::Delete, H::StaticDelete),
        ],
    )
    .fields(&[STATIC_FIELDS])
    .existence()
    .help("An existing user whose password Airlock rotates.", ""),
    PathSpec::new("static-creds/{name*}", &[(Op::Read, H::StaticCreds)])
        .help("The current password of a static role.", ""),
    PathSpec::new("rotate-role/{name*}", &[(Op::Update, H::RotateRole)])
        .help("Rotates a static role's password now.", ""),
];

pub(crate) fn valid_name(n: &str) -> ApiResult<&str> {
    if n.is_empty()
        || n.len() > 128
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(ApiError::bad_request(format!("invalid name {n:?}")));
    }
    Ok(n)
}

/// A list-of-statements field: a JSON list of strings, or one string.
pub(crate) fn statements(req: &Request, k: &str) -> ApiResult<Option<Vec<String>>> {
    let list = statement_list(req, k)?;
    for (i, s) in list.iter().flatten().enumerate() {
        plugin::check_statement(s).map_err(|e| ApiError::bad_request(format!("{k}[{i}]: {e}")))?;
    }
    Ok(list)
}

fn statement_list(req: &Request, k: &str) -> ApiResult<Option<Vec<String>>> {
    match req.value(k)?.as_deref() {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(if s.is_empty() {
            vec![]
        } else {
            vec![s.clone()]
        })),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{k} must be a list of strings"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{k} must be a list of strings"
        ))),
    }
}

/// `v-<display name>-<role>-<20 random>-<unix time>`, at most 63 bytes (PostgreSQL's limit).
pub(crate) fn generate_username(display: &str, role: &str, now: i64) -> String {
    let clean = |s: &str, n: usize| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(n)
            .collect()
    };
    format!(
        "v-{}-{}-{}-{now}",
        clean(display, 8),
        clean(role, 8),
        airlock_logical::util::random_base62(20)
    )
}

/// A unix time as PostgreSQL's `VALID UNTIL` wants it, a little after the lease end (clock
/// skew), as Vault does.
pub(crate) fn valid_until(expires_at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(expires_at + 5)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]+0000"
            ))
            .ok()
        })
        .unwrap_or_default()
}

async fn load_config(ctx: &Ctx, name: &str) -> ApiResult<Option<DbConfig>> {
    ctx.storage.get_json(&format!("config/{name}")).await
}

async fn load_role(ctx: &Ctx, name: &str) -> ApiResult<Option<Role>> {
    ctx.storage.get_json(&format!("role/{name}")).await
}

/// The engine data of a lease: who to drop, on which connection, for which role.
struct LeaseData {
    username: String,
    db_name: String,
    role: String,
}

impl LeaseData {
    fn from(v: &Value) -> Self {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        LeaseData {
            username: s("username"),
            db_name: s("db_name"),
            role: s("role"),
        }
    }
}

#[async_trait]
impl Engine for Database {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    async fn exists(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Option<bool>> {
        let prefix = match h {
            H::ConfigWrite => "config",
            H::RoleWrite => "role",
            H::StaticWrite => "static-role",
            _ => return Ok(None),
        };
        let Ok(name) = valid_name(req.cap("name")) else {
            return Ok(None);
        };
        Ok(Some(ctx.storage.exists(&format!("{prefix}/{name}")).await?))
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        let name = req.cap("name");
        match h {
            H::ConfigList => ctx.storage.list_response("config/").await,
            H::ConfigRead => config::read(ctx, valid_name(name)?).await,
            H::ConfigWrite => config::write(self, ctx, valid_name(name)?, req).await,
            H::ConfigDelete => {
                let name = valid_name(name)?;
                ctx.storage.delete(&format!("config/{name}")).await?;
                self.reset(name).await;
                Ok(Response::empty())
            }
            H::RoleList => ctx.storage.list_response("role/").await,
            H::RoleRead => creds::read_role(ctx, valid_name(name)?).await,
            H::RoleWrite => creds::write_role(ctx, valid_name(name)?, req).await,
            H::RoleDelete => {
                ctx.storage
                    .delete(&format!("role/{}", valid_name(name)?))
                    .await?;
                Ok(Response::empty())
            }
            H::Creds => creds::creds(self, ctx, valid_name(name)?).await,
            H::Reset => {
                self.reset(valid_name(name)?).await;
                Ok(Response::empty())
            }
            H::RotateRoot => config::rotate_root(self, ctx, valid_name(name)?).await,
            H::StaticList => ctx.storage.list_response("static-role/").await,
            H::StaticRead => static_roles::read(ctx, valid_name(name)?).await,
            H::StaticWrite => static_roles::write(self, ctx, valid_name(name)?, req).await,
            H::StaticDelete => {
                ctx.storage
                    .delete(&format!("static-role/{}", valid_name(name)?))
                    .await?;
                Ok(Response::empty())
            }
            H::StaticCreds => static_roles::creds(ctx, valid_name(name)?).await,
            H::RotateRole => static_roles::rotate_now(self, ctx, valid_name(name)?).await,
        }
    }

    /// Drops the database user behind a lease.
    async fn revoke(&self, ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()> {
        let d = LeaseData::from(lease.internal);
        if d.username.is_empty() {
            return Ok(());
        }
        let Some(c) = load_config(ctx, &d.db_name).await? else {
            // The connection is gone; nothing can be dropped.
            return Ok(());
        };
        let custom = load_role(ctx, &d.role)
            .await?
            .map(|r| r.revocation_statements.clone())
            .unwrap_or_default();
        self.plugin_for(&c)?
            .revoke_user(&d.db_name, &c, &d.username, &custom)
            .await
            .map_err(|e| ApiError::new(500, format!("failed to revoke the database user: {e}")))
    }

    /// After a renewal: the plugin extends the user (PostgreSQL: `VALID UNTIL`).
    async fn renew(&self, ctx: &Ctx, lease: &LeaseInfo<'_>) -> ApiResult<()> {
        let d = LeaseData::from(lease.internal);
        let (Some(c), Some(role)) = (
            load_config(ctx, &d.db_name).await?,
            load_role(ctx, &d.role).await?,
        ) else {
            return Ok(());
        };
        self.plugin_for(&c)?
            .renew_user(
                &d.db_name,
                &c,
                &role,
                &d.username,
                &valid_until(lease.expire_time),
            )
            .await
            .map_err(|e| ApiError::new(500, format!("renew statements failed: {e}")))
    }

    /// Rotates static roles whose time has come.
    async fn periodic(&self, ctx: &Ctx) -> ApiResult<()> {
        static_roles::rotate_due(self, ctx).await
    }

    async fn cleanup(&self, ctx: &Ctx) -> ApiResult<()> {
        for name in ctx.storage.list("config/").await? {
            self.reset(&name).await;
        }
        Ok(())
    }

    /// A connection's configuration changed on another node (new URL, rotated root
    /// password): its pooled connections go.
    async fn invalidate(&self, ctx: &Ctx, rel: &str) {
        if let Some(name) = rel.strip_prefix("config/") {
            self.reset(name).await;
        } else if rel.is_empty() {
            let _ = Engine::cleanup(self, ctx).await;
        }
    }
}

#[cfg(test)]
mod tests;
