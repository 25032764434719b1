//! The `database` secrets engine (Vault-compatible paths): connection configs, roles, and
//! dynamic credentials with leases. Plugin implemented here: `postgresql-database-plugin`
//! (tokio-postgres, pooled connections).
//!
//! Storage under the mount's prefix: `config/<name>` (the connection password is stored
//! encrypted like everything behind the barrier and never returned), `role/<name>`.
//!
//! Creation runs the role's statements in one transaction; if any fails the transaction is
//! rolled back (PostgreSQL DDL is transactional), the rollback statements run, and the client
//! gets a clear error: no half-created user is left. Revocation first terminates the user's
//! sessions, then runs the revocation statements (default: reassign and drop owned objects,
//! drop the role).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::core::{now_unix, random_base62, Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::leases::{self, LeaseEntry, NewLease};
use crate::logical::{Op, Request, Response};
use crate::mounts::MountEntry;

const PG: &str = "postgresql-database-plugin";
const MYSQL: &str = "mysql-database-plugin";
const REDIS: &str = "redis-database-plugin";
const PLUGINS: [&str; 4] = [PG, MYSQL, "mysql-legacy-database-plugin", REDIS];

#[derive(Clone, Serialize, Deserialize)]
struct DbConfig {
    plugin_name: String,
    connection_url: String,
    username: String,
    password: String,
    allowed_roles: Vec<String>,
    #[serde(default)]
    password_authentication: String,
    #[serde(default)]
    root_rotation_statements: Vec<String>,
    #[serde(default)]
    max_open_connections: u32,
    #[serde(default)]
    max_idle_connections: u32,
    /// Seconds; 0 = connections live until they fail.
    #[serde(default)]
    max_connection_lifetime: i64,
    /// Name of a password policy for generated passwords (`sys/policies/password/<name>`).
    #[serde(default)]
    password_policy: String,
    /// Vault `username_template` (Go template subset); empty = the plugin's default.
    #[serde(default)]
    username_template: String,
    /// Redis: host and port (Redis has no connection URL).
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: u16,
}

impl Drop for DbConfig {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.password.zeroize();
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Role {
    db_name: String,
    creation_statements: Vec<String>,
    revocation_statements: Vec<String>,
    renew_statements: Vec<String>,
    rollback_statements: Vec<String>,
    default_ttl: i64,
    max_ttl: i64,
}

/// Pooled connections per (mount, config). Idle clients wait here; a dropped connection is
/// noticed (`is_closed`) and replaced, and one older than `max_connection_lifetime` is closed.
#[derive(Default)]
pub struct Pools {
    idle: Mutex<HashMap<(String, String), Vec<Pooled>>>,
}

/// A PostgreSQL connection and when it was opened.
pub struct Pooled {
    cl: tokio_postgres::Client,
    born: std::time::Instant,
}

impl std::ops::Deref for Pooled {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.cl
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.cl
    }
}

fn cfg_key(m: &MountEntry, name: &str) -> String {
    format!("{}config/{name}", m.storage_prefix())
}

fn role_key(m: &MountEntry, name: &str) -> String {
    format!("{}role/{name}", m.storage_prefix())
}

fn valid_name(n: &str) -> ApiResult<&str> {
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

fn statements(req: &Request, k: &str) -> ApiResult<Option<Vec<String>>> {
    match req.data.get(k) {
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

/// `{{username}}`/`{{password}}` filled in; the result is a secret.
fn connection_string(c: &DbConfig) -> Zeroizing<String> {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let url = c.connection_url.trim();
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (u, p) = if is_url {
        (enc(&c.username), enc(&c.password))
    } else {
        (c.username.clone(), c.password.clone())
    };
    Zeroizing::new(url.replace("{{username}}", &u).replace("{{password}}", &p))
}

async fn connect(c: &DbConfig) -> ApiResult<tokio_postgres::Client> {
    let cs = connection_string(c);
    let cfg: tokio_postgres::Config = cs
        .parse()
        .map_err(|_| ApiError::bad_request("invalid connection_url"))?;
    let (client, conn) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        cfg.connect(tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| ApiError::bad_request("error verifying connection: timed out"))?
    .map_err(|e| ApiError::bad_request(format!("error verifying connection: {}", pg_error(&e))))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A PostgreSQL error without anything the statement carried (no passwords).
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => "connection failed".into(),
    }
}

fn too_old(c: &DbConfig, p: &Pooled) -> bool {
    c.max_connection_lifetime > 0 && p.born.elapsed().as_secs() >= c.max_connection_lifetime as u64
}

async fn checkout(core: &Core, m: &MountEntry, name: &str, c: &DbConfig) -> ApiResult<Pooled> {
    let key = (m.uuid.clone(), name.to_string());
    {
        let mut idle = core.db_pools.idle.lock().await;
        if let Some(list) = idle.get_mut(&key) {
            while let Some(p) = list.pop() {
                if !p.is_closed() && !too_old(c, &p) {
                    return Ok(p);
                }
            }
        }
    }
    Ok(Pooled {
        cl: connect(c).await?,
        born: std::time::Instant::now(),
    })
}

async fn checkin(core: &Core, m: &MountEntry, name: &str, c: &DbConfig, cl: Pooled) {
    if cl.is_closed() || too_old(c, &cl) {
        return;
    }
    // Idle connections kept: max_idle_connections, else max_open_connections, else 4.
    let max = match (c.max_idle_connections, c.max_open_connections) {
        (0, 0) => 4,
        (0, open) => open as usize,
        (idle, open) if open > 0 => idle.min(open) as usize,
        (idle, _) => idle as usize,
    };
    let mut idle = core.db_pools.idle.lock().await;
    let list = idle.entry((m.uuid.clone(), name.to_string())).or_default();
    if list.len() < max {
        list.push(cl);
    }
}

async fn drop_pool(core: &Core, m: &MountEntry, name: &str) {
    core.db_pools
        .idle
        .lock()
        .await
        .remove(&(m.uuid.clone(), name.to_string()));
}

/// Splits statements on `;` (as Vault does) and fills the templates.
fn render(stmts: &[String], vars: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for s in stmts {
        for part in s.split(';') {
            let t = part.trim();
            if t.is_empty() {
                continue;
            }
            let mut q = t.to_string();
            for (k, v) in vars {
                q = q.replace(&format!("{{{{{k}}}}}"), v);
            }
            out.push(q);
        }
    }
    out
}

/// Runs statements in one transaction.
async fn run_tx(cl: &mut tokio_postgres::Client, stmts: &[String]) -> Result<(), String> {
    let tx = cl.transaction().await.map_err(|e| pg_error(&e))?;
    for q in stmts {
        tx.batch_execute(q).await.map_err(|e| pg_error(&e))?;
    }
    tx.commit().await.map_err(|e| pg_error(&e))
}

/// Runs the statements as one transaction in a single round trip. `relaxed`: commit without
/// waiting for the WAL flush. Used only for *creating* short-lived users: if PostgreSQL
/// crashed right after, the new user would vanish, which is harmless. Revocations always
/// wait for a durable commit.
async fn run_tx_batched(
    cl: &mut tokio_postgres::Client,
    stmts: &[String],
    relaxed: bool,
) -> Result<(), String> {
    let mut q = String::from("BEGIN;");
    if relaxed {
        q.push_str(" SET LOCAL synchronous_commit TO OFF;");
    }
    for s in stmts {
        q.push(' ');
        q.push_str(s);
        q.push(';');
    }
    q.push_str(" COMMIT;");
    let r = cl.batch_execute(&q).await.map_err(|e| pg_error(&e));
    use zeroize::Zeroize;
    q.zeroize();
    if r.is_err() {
        // The transaction is aborted; end it so the pooled connection is usable again.
        let _ = cl.batch_execute("ROLLBACK").await;
    }
    r
}

/// A PostgreSQL SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`,
/// RFC 5802/7677), which PostgreSQL stores as given instead of hashing the password itself.
pub fn scram_sha256_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    type H = Hmac<Sha256>;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // PBKDF2-HMAC-SHA256, one block (32 bytes), with ring's optimised SHA-256.
    let mut salted = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let hmac = |key: &[u8], msg: &[u8]| -> Vec<u8> {
        match H::new_from_slice(key) {
            Ok(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64(salt),
        b64(&stored_key),
        b64(&server_key)
    )
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A password from the config's password policy, or Vault's default.
async fn password_for(core: &Core, c: &DbConfig) -> ApiResult<Zeroizing<String>> {
    if c.password_policy.is_empty() {
        return Ok(Zeroizing::new(generate_password()));
    }
    let p = crate::sys::load_password_policy(core, &c.password_policy)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "password policy {:?} does not exist",
                c.password_policy
            ))
        })?;
    p.generate(crate::sys::random_index)
        .map(Zeroizing::new)
        .ok_or_else(|| ApiError::internal(&"the password policy could not be satisfied"))
}

/// Vault's default password policy: 20 characters of letters, digits and `-`, with at least
/// one lower-case letter, one upper-case letter, one digit and one dash.
fn generate_password() -> String {
    loop {
        let base = random_base62(19);
        let mut chars: Vec<char> = base.chars().collect();
        let pos = (crate::core::random_bytes::<1>()[0] as usize) % 20;
        chars.insert(pos.min(chars.len()), '-');
        let p: String = chars.into_iter().collect();
        if p.chars().any(|c| c.is_ascii_lowercase())
            && p.chars().any(|c| c.is_ascii_uppercase())
            && p.chars().any(|c| c.is_ascii_digit())
        {
            return p;
        }
    }
}

/// Renders a `username_template` with Airlock's randomness and clock.
fn render_username(t: &str, display: &str, role: &str, now: i64) -> Result<String, String> {
    let random = |n: usize| random_base62(n);
    let uuid = crate::core::new_uuid;
    let ctx = airlock_core::username_template::Context {
        display_name: display,
        role_name: role,
        now_millis: now.saturating_mul(1000),
        random: &random,
        uuid: &uuid,
    };
    let u = airlock_core::username_template::render(t, &ctx)?;
    if u.is_empty() {
        return Err("the template produced an empty username".into());
    }
    Ok(u)
}

/// `v-<display name>-<role>-<20 random>-<unix time>`, at most 63 bytes (PostgreSQL's limit).
fn generate_username(display: &str, role: &str, now: i64) -> String {
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
        random_base62(20)
    )
}

fn ttl_field(req: &Request, k: &str) -> ApiResult<i64> {
    Ok(req.duration_field(k)?.unwrap_or(0))
}

pub async fn handle(
    core: &Arc<Core>,
    m: &MountEntry,
    req: &Request,
    caller: &Caller,
) -> ApiResult<Response> {
    let rel = req.path.strip_prefix(m.path.as_str()).unwrap_or("");
    let write = matches!(req.op, Op::Create | Op::Update);
    if let Some(r) = rel.strip_prefix("config") {
        let name = match entry_or_list(core, m, req, r, "config/").await? {
            Ok(n) => n,
            Err(listing) => return Ok(listing),
        };
        return match req.op {
            Op::Read => {
                let c: DbConfig = core
                    .barrier
                    .get_json(&cfg_key(m, name))
                    .await?
                    .ok_or_else(ApiError::not_found)?;
                let mut v = json!({
                    "allowed_roles": c.allowed_roles,
                    "connection_details": {
                        "connection_url": c.connection_url,
                        "password_authentication": c.password_authentication,
                        "username": c.username,
                    },
                    "password_policy": c.password_policy,
                    "plugin_name": c.plugin_name,
                    "plugin_version": "",
                    "root_credentials_rotate_statements": c.root_rotation_statements,
                });
                if !c.username_template.is_empty() {
                    v["connection_details"]["username_template"] = json!(c.username_template);
                }
                Ok(Response::data(v))
            }
            Op::Delete => {
                core.barrier.delete(&cfg_key(m, name)).await?;
                drop_pool(core, m, name).await;
                Ok(Response::empty())
            }
            _ if write => write_config(core, m, name, req).await,
            _ => Err(ApiError::unsupported_operation()),
        };
    }
    if let Some(r) = rel.strip_prefix("roles") {
        let name = match entry_or_list(core, m, req, r, "role/").await? {
            Ok(n) => n,
            Err(listing) => return Ok(listing),
        };
        return match req.op {
            Op::Read => {
                let r: Role = core
                    .barrier
                    .get_json(&role_key(m, name))
                    .await?
                    .ok_or_else(ApiError::not_found)?;
                Ok(Response::data(json!({
                    "creation_statements": r.creation_statements,
                    "credential_type": "password",
                    "db_name": r.db_name,
                    "default_ttl": r.default_ttl,
                    "max_ttl": r.max_ttl,
                    "renew_statements": r.renew_statements,
                    "revocation_statements": r.revocation_statements,
                    "rollback_statements": r.rollback_statements,
                })))
            }
            Op::Delete => {
                core.barrier.delete(&role_key(m, name)).await?;
                Ok(Response::empty())
            }
            _ if write => write_role(core, m, name, req).await,
            _ => Err(ApiError::unsupported_operation()),
        };
    }
    if let Some(name) = rel.strip_prefix("creds/") {
        if req.op != Op::Read {
            return Err(ApiError::unsupported_operation());
        }
        return creds(core, m, valid_name(name)?, caller).await;
    }
    if let Some(name) = rel.strip_prefix("reset/") {
        if !write {
            return Err(ApiError::unsupported_operation());
        }
        drop_pool(core, m, valid_name(name)?).await;
        return Ok(Response::empty());
    }
    if let Some(name) = rel.strip_prefix("rotate-root/") {
        if !write {
            return Err(ApiError::unsupported_operation());
        }
        return rotate_root(core, m, valid_name(name)?).await;
    }
    if let Some(r) = rel.strip_prefix("static-roles") {
        let name = match entry_or_list(core, m, req, r, "static-role/").await? {
            Ok(n) => n,
            Err(listing) => return Ok(listing),
        };
        return match req.op {
            Op::Read => {
                let r = load_static(core, m, name)
                    .await?
                    .ok_or_else(ApiError::not_found)?;
                let mut v = json!({
                    "db_name": r.db_name,
                    "username": r.username,
                    "rotation_statements": r.rotation_statements,
                    "last_vault_rotation": crate::core::rfc3339_nanos(r.last_rotation_nanos),
                    "credential_type": "password",
                });
                schedule_fields(&mut v, &r);
                Ok(Response::data(v))
            }
            Op::Delete => {
                core.barrier.delete(&static_key(m, name)).await?;
                Ok(Response::empty())
            }
            _ if write => write_static(core, m, name, req).await,
            _ => Err(ApiError::unsupported_operation()),
        };
    }
    if let Some(name) = rel.strip_prefix("static-creds/") {
        if req.op != Op::Read {
            return Err(ApiError::unsupported_operation());
        }
        let r = load_static(core, m, valid_name(name)?)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("unknown role: {name}")))?;
        let now = now_unix();
        let mut v = json!({
            "username": r.username,
            "password": r.password,
            "last_vault_rotation": crate::core::rfc3339_nanos(r.last_rotation_nanos),
            "ttl": (r.next_rotation - now).max(0),
        });
        schedule_fields(&mut v, &r);
        return Ok(Response::data(v));
    }
    if let Some(name) = rel.strip_prefix("rotate-role/") {
        if !write {
            return Err(ApiError::unsupported_operation());
        }
        let name = valid_name(name)?;
        let _g = core.locks.lock(&static_key(m, name)).await;
        let r = load_static(core, m, name)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("unknown role: {name}")))?;
        rotate_static(core, m, name, r).await?;
        return Ok(Response::empty());
    }
    Err(ApiError::unsupported_path())
}

#[derive(Clone, Serialize, Deserialize)]
struct StaticRole {
    db_name: String,
    username: String,
    rotation_period: i64,
    /// Cron schedule (UTC) instead of a period.
    #[serde(default)]
    rotation_schedule: String,
    #[serde(default)]
    rotation_window: i64,
    rotation_statements: Vec<String>,
    password: String,
    last_rotation_nanos: i128,
    next_rotation: i64,
}

impl Drop for StaticRole {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.password.zeroize();
    }
}

/// `rotation_period`, or `rotation_schedule` + `rotation_window`, as Vault shows them.
fn schedule_fields(v: &mut Value, r: &StaticRole) {
    if r.rotation_schedule.is_empty() {
        v["rotation_period"] = json!(r.rotation_period);
    } else {
        v["rotation_schedule"] = json!(r.rotation_schedule);
        v["rotation_window"] = json!(r.rotation_window);
    }
}

fn static_key(m: &MountEntry, name: &str) -> String {
    format!("{}static-role/{name}", m.storage_prefix())
}

async fn load_static(core: &Core, m: &MountEntry, name: &str) -> ApiResult<Option<StaticRole>> {
    Ok(core.barrier.get_json(&static_key(m, name)).await?)
}

/// Sets a new password for a user that already exists (static roles, rotate-root).
async fn set_password(
    core: &Core,
    m: &MountEntry,
    db_name: &str,
    c: &DbConfig,
    username: &str,
    password: &str,
    custom: &[String],
) -> Result<(), String> {
    let vars = [
        ("name", username),
        ("username", username),
        ("password", password),
    ];
    match c.plugin_name.as_str() {
        PG => {
            let stmts = if custom.is_empty() {
                vec![format!(
                    "ALTER ROLE {} WITH PASSWORD '{}'",
                    quote_ident(username),
                    password.replace('\'', "''")
                )]
            } else {
                render(custom, &vars)
            };
            let mut cl = checkout(core, m, db_name, c)
                .await
                .map_err(|e| e.errors.join("; "))?;
            let r = run_tx(&mut cl, &stmts).await;
            checkin(core, m, db_name, c, cl).await;
            r
        }
        REDIS => {
            let mut r = redis_conn(c).await?;
            let pw = Zeroizing::new(format!(">{password}"));
            r.cmd(&["ACL", "SETUSER", username, "resetpass", pw.as_str()])
                .await
                .map(|_| ())
        }
        _ => {
            let stmts = if custom.is_empty() {
                vec![format!(
                    "ALTER USER '{}'@'%' IDENTIFIED BY '{}'",
                    username.replace('\'', "''"),
                    password.replace('\'', "''")
                )]
            } else {
                render(custom, &vars)
            };
            let mut my = mysql_conn(c).await?;
            for q in stmts {
                my.query(&q).await?;
            }
            Ok(())
        }
    }
}

async fn rotate_static(
    core: &Core,
    m: &MountEntry,
    name: &str,
    mut r: StaticRole,
) -> ApiResult<()> {
    let c: DbConfig = core
        .barrier
        .get_json(&cfg_key(m, &r.db_name))
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown database \"{}\"", r.db_name)))?;
    let password = password_for(core, &c).await?;
    set_password(
        core,
        m,
        &r.db_name,
        &c,
        &r.username,
        &password,
        &r.rotation_statements,
    )
    .await
    .map_err(|e| ApiError::new(500, format!("failed to rotate the password: {e}")))?;
    r.password = password.to_string();
    r.last_rotation_nanos = crate::core::now_nanos();
    let now = now_unix();
    r.next_rotation = if r.rotation_schedule.is_empty() {
        now + r.rotation_period.max(1)
    } else {
        airlock_core::cron::Schedule::parse(&r.rotation_schedule)
            .ok()
            .and_then(|s| s.next_after(now))
            .unwrap_or(i64::MAX)
    };
    core.barrier.put_json(&static_key(m, name), &r).await?;
    Ok(())
}

async fn write_static(
    core: &Core,
    m: &MountEntry,
    name: &str,
    req: &Request,
) -> ApiResult<Response> {
    let _g = core.locks.lock(&static_key(m, name)).await;
    let old = load_static(core, m, name).await?;
    let db_name = req
        .str_field("db_name")?
        .or(old.as_ref().map(|o| o.db_name.clone()))
        .ok_or_else(|| ApiError::bad_request("empty database name attribute"))?;
    let username = req
        .str_field("username")?
        .or(old.as_ref().map(|o| o.username.clone()))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("username is a required field to create a static account")
        })?;
    let schedule = req
        .str_field("rotation_schedule")?
        .filter(|s| !s.is_empty());
    let period = req.duration_field("rotation_period")?;
    if schedule.is_some() && period.is_some() {
        return Err(ApiError::bad_request(
            "mutually exclusive fields rotation_period and rotation_schedule were both specified; only one of them can be provided",
        ));
    }
    let (rotation_period, rotation_schedule) = match (period, schedule) {
        (Some(p), None) => (p, String::new()),
        (None, Some(s)) => {
            airlock_core::cron::Schedule::parse(&s).map_err(ApiError::bad_request)?;
            (0, s)
        }
        _ => match &old {
            Some(o) => (o.rotation_period, o.rotation_schedule.clone()),
            None => {
                return Err(ApiError::bad_request(
                    "one of rotation_schedule or rotation_period must be provided to create a static account",
                ))
            }
        },
    };
    if rotation_schedule.is_empty() && rotation_period < 5 {
        return Err(ApiError::bad_request(
            "rotation_period must be 5 seconds or more",
        ));
    }
    let rotation_window = match req.duration_field("rotation_window")? {
        Some(w) if rotation_schedule.is_empty() => {
            let _ = w;
            return Err(ApiError::bad_request(
                "rotation_window is invalid with use of rotation_period",
            ));
        }
        Some(w) if w != 0 && w < 3600 => {
            return Err(ApiError::bad_request(
                "rotation_window must be 3600 seconds (1 hour) or more",
            ))
        }
        Some(w) => w,
        None => old.as_ref().map(|o| o.rotation_window).unwrap_or(0),
    };
    let c: DbConfig = core
        .barrier
        .get_json(&cfg_key(m, &db_name))
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown database \"{db_name}\"")))?;
    if !c.allowed_roles.iter().any(|a| a == "*" || a == name) {
        return Err(ApiError::bad_request(format!(
            "\"{name}\" is not an allowed role"
        )));
    }
    let r = StaticRole {
        db_name,
        username,
        rotation_period,
        rotation_schedule,
        rotation_window,
        rotation_statements: statements(req, "rotation_statements")?
            .or(old.as_ref().map(|o| o.rotation_statements.clone()))
            .unwrap_or_default(),
        password: String::new(),
        last_rotation_nanos: 0,
        next_rotation: 0,
    };
    // A new static role gets its password rotated at once, as in Vault.
    rotate_static(core, m, name, r).await?;
    Ok(Response::empty())
}

/// Rotates static roles whose period has passed (called every second by the lease task).
pub async fn rotate_due_static(core: &Core, now: i64) -> ApiResult<usize> {
    let mut n = 0;
    for m in core
        .mounts_snapshot()
        .entries
        .into_iter()
        .filter(|m| m.kind == "database")
    {
        for name in core
            .barrier
            .list(&format!("{}static-role/", m.storage_prefix()))
            .await?
        {
            let _g = core.locks.lock(&static_key(&m, &name)).await;
            let Some(r) = load_static(core, &m, &name).await? else {
                continue;
            };
            if r.next_rotation > now {
                continue;
            }
            match rotate_static(core, &m, &name, r).await {
                Ok(()) => n += 1,
                Err(e) => {
                    tracing::warn!(role = %name, error = ?e.errors, "static role rotation failed; will retry")
                }
            }
        }
    }
    Ok(n)
}

/// Replaces the configured connection user's password with one only Airlock knows.
async fn rotate_root(core: &Core, m: &MountEntry, name: &str) -> ApiResult<Response> {
    let key = cfg_key(m, name);
    let _g = core.locks.lock(&key).await;
    let mut c: DbConfig = core
        .barrier
        .get_json(&key)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown database \"{name}\"")))?;
    if c.username.is_empty() {
        return Err(ApiError::bad_request(
            "the connection has no username to rotate",
        ));
    }
    let password = password_for(core, &c).await?;
    let username = c.username.clone();
    let custom = c.root_rotation_statements.clone();
    set_password(core, m, name, &c, &username, &password, &custom)
        .await
        .map_err(|e| ApiError::new(500, format!("failed to rotate the root credentials: {e}")))?;
    c.password = password.to_string();
    core.barrier.put_json(&key, &c).await?;
    // Pooled connections were opened with the old password.
    drop_pool(core, m, name).await;
    Ok(Response::empty())
}

/// `<section>` (LIST of the collection, answered here as `Err(response)`) or
/// `<section>/<name>` (`Ok(name)`, validated).
async fn entry_or_list<'a>(
    core: &Core,
    m: &MountEntry,
    req: &Request,
    rest: &'a str,
    storage: &str,
) -> ApiResult<Result<&'a str, Response>> {
    let name = rest.trim_start_matches('/');
    if name.is_empty() {
        if req.op != Op::List {
            return Err(ApiError::unsupported_operation());
        }
        return list(core, &format!("{}{storage}", m.storage_prefix()))
            .await
            .map(Err);
    }
    valid_name(name).map(Ok)
}

async fn list(core: &Core, prefix: &str) -> ApiResult<Response> {
    let keys = core.barrier.list(prefix).await?;
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::list(keys))
}

async fn write_config(
    core: &Core,
    m: &MountEntry,
    name: &str,
    req: &Request,
) -> ApiResult<Response> {
    let old: Option<DbConfig> = core.barrier.get_json(&cfg_key(m, name)).await?;
    let plugin = match req.str_field("plugin_name")? {
        Some(p) => p,
        None => old
            .as_ref()
            .map(|o| o.plugin_name.clone())
            .ok_or_else(|| ApiError::bad_request("plugin_name must be specified"))?,
    };
    if !PLUGINS.contains(&plugin.as_str()) {
        return Err(ApiError::bad_request(format!(
            "plugin not supported: {plugin:?} (available: {})",
            PLUGINS.join(", ")
        )));
    }
    let pick = |k: &str, old: Option<String>| -> ApiResult<String> {
        Ok(req.str_field(k)?.or(old).unwrap_or_default())
    };
    let c = DbConfig {
        plugin_name: plugin,
        connection_url: pick(
            "connection_url",
            old.as_ref().map(|o| o.connection_url.clone()),
        )?,
        username: pick("username", old.as_ref().map(|o| o.username.clone()))?,
        password: pick("password", old.as_ref().map(|o| o.password.clone()))?,
        allowed_roles: match req.str_list_field("allowed_roles")? {
            Some(l) => l,
            None => old
                .as_ref()
                .map(|o| o.allowed_roles.clone())
                .unwrap_or_default(),
        },
        password_authentication: pick(
            "password_authentication",
            old.as_ref().map(|o| o.password_authentication.clone()),
        )?,
        root_rotation_statements: statements(req, "root_rotation_statements")?
            .or_else(|| old.as_ref().map(|o| o.root_rotation_statements.clone()))
            .unwrap_or_default(),
        max_open_connections: req
            .int_field("max_open_connections")?
            .map(|v| v.clamp(0, 1000) as u32)
            .or(old.as_ref().map(|o| o.max_open_connections))
            .unwrap_or(4),
        password_policy: pick(
            "password_policy",
            old.as_ref().map(|o| o.password_policy.clone()),
        )?,
        max_idle_connections: req
            .int_field("max_idle_connections")?
            .map(|v| v.clamp(0, 1000) as u32)
            .or(old.as_ref().map(|o| o.max_idle_connections))
            .unwrap_or(0),
        max_connection_lifetime: match req.duration_field("max_connection_lifetime")? {
            Some(v) => v.max(0),
            None => old.as_ref().map(|o| o.max_connection_lifetime).unwrap_or(0),
        },
        username_template: pick(
            "username_template",
            old.as_ref().map(|o| o.username_template.clone()),
        )?,
        host: pick("host", old.as_ref().map(|o| o.host.clone()))?,
        port: req
            .int_field("port")?
            .map(|p| p.clamp(0, 65535) as u16)
            .or(old.as_ref().map(|o| o.port))
            .unwrap_or(0),
    };
    if c.plugin_name == REDIS {
        if c.host.is_empty() || c.port == 0 {
            return Err(ApiError::bad_request("host and port must be specified"));
        }
    } else if c.connection_url.is_empty() {
        return Err(ApiError::bad_request("connection_url must be specified"));
    }
    if !c.username_template.is_empty() {
        render_username(&c.username_template, "token", "role", 0).map_err(|e| {
            ApiError::bad_request(format!("unable to initialize username template: {e}"))
        })?;
    }
    if !c.password_policy.is_empty()
        && crate::sys::load_password_policy(core, &c.password_policy)
            .await?
            .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "password policy {:?} does not exist",
            c.password_policy
        )));
    }
    if req.bool_field("verify_connection")?.unwrap_or(true) {
        verify(&c)
            .await
            .map_err(|e| ApiError::bad_request(format!("error verifying connection: {e}")))?;
    }
    drop_pool(core, m, name).await;
    core.barrier.put_json(&cfg_key(m, name), &c).await?;
    Ok(Response::empty())
}

async fn write_role(core: &Core, m: &MountEntry, name: &str, req: &Request) -> ApiResult<Response> {
    let old: Option<Role> = core.barrier.get_json(&role_key(m, name)).await?;
    let r = Role {
        db_name: req
            .str_field("db_name")?
            .or(old.as_ref().map(|o| o.db_name.clone()))
            .ok_or_else(|| ApiError::bad_request("empty database name attribute"))?,
        creation_statements: statements(req, "creation_statements")?
            .or(old.as_ref().map(|o| o.creation_statements.clone()))
            .unwrap_or_default(),
        revocation_statements: statements(req, "revocation_statements")?
            .or(old.as_ref().map(|o| o.revocation_statements.clone()))
            .unwrap_or_default(),
        renew_statements: statements(req, "renew_statements")?
            .or(old.as_ref().map(|o| o.renew_statements.clone()))
            .unwrap_or_default(),
        rollback_statements: statements(req, "rollback_statements")?
            .or(old.as_ref().map(|o| o.rollback_statements.clone()))
            .unwrap_or_default(),
        default_ttl: if req.data.contains_key("default_ttl") {
            ttl_field(req, "default_ttl")?
        } else {
            old.as_ref().map(|o| o.default_ttl).unwrap_or(0)
        },
        max_ttl: if req.data.contains_key("max_ttl") {
            ttl_field(req, "max_ttl")?
        } else {
            old.as_ref().map(|o| o.max_ttl).unwrap_or(0)
        },
    };
    if r.creation_statements.is_empty() {
        return Err(ApiError::bad_request("creation statements are required"));
    }
    if r.max_ttl > 0 && r.default_ttl > r.max_ttl {
        return Err(ApiError::bad_request("ttl cannot be greater than max_ttl"));
    }
    core.barrier.put_json(&role_key(m, name), &r).await?;
    Ok(Response::empty())
}

async fn creds(
    core: &Arc<Core>,
    m: &MountEntry,
    role_name: &str,
    caller: &Caller,
) -> ApiResult<Response> {
    let role: Role = core
        .barrier
        .get_json(&role_key(m, role_name))
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown role: {role_name}")))?;
    let c: DbConfig = core
        .barrier
        .get_json(&cfg_key(m, &role.db_name))
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown database \"{}\"", role.db_name)))?;
    if !c.allowed_roles.iter().any(|a| a == "*" || a == role_name) {
        return Err(ApiError::bad_request(format!(
            "\"{role_name}\" is not an allowed role"
        )));
    }
    let sys_max = core.config.max_ttl();
    let mount_max = if m.max_lease_ttl > 0 {
        m.max_lease_ttl
    } else {
        sys_max
    };
    let mount_default = if m.default_lease_ttl > 0 {
        m.default_lease_ttl
    } else {
        core.config.default_ttl()
    };
    let max_ttl = if role.max_ttl > 0 {
        role.max_ttl.min(mount_max)
    } else {
        mount_max
    };
    let default_ttl = if role.default_ttl > 0 {
        role.default_ttl
    } else {
        mount_default
    }
    .min(max_ttl);
    let now = now_unix();
    let display = caller
        .entry
        .as_ref()
        .map(|e| e.display_name.as_str())
        .unwrap_or("token");
    let username = if !c.username_template.is_empty() {
        render_username(&c.username_template, display, role_name, now)
            .map_err(|e| ApiError::new(500, format!("unable to generate username: {e}")))?
    } else if c.plugin_name == PG || c.plugin_name == REDIS {
        generate_username(display, role_name, now)
    } else {
        // MySQL user names are limited to 32 characters.
        let short = |x: &str, n: usize| -> String {
            x.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(n)
                .collect()
        };
        format!(
            "v-{}-{}-{}",
            short(display, 4),
            short(role_name, 4),
            random_base62(20)
        )
    };
    let password = password_for(core, &c).await?;
    // The SCRAM verifier (4096 PBKDF2 rounds) is computed on the blocking pool while the
    // lease is written.
    let scram = (c.plugin_name == PG && c.password_authentication == "scram-sha-256").then(|| {
        let pw = password.clone();
        tokio::task::spawn_blocking(move || {
            Zeroizing::new(scram_sha256_verifier(
                &pw,
                &crate::core::random_bytes::<16>(),
                4096,
            ))
        })
    });
    let lease_id = format!("{}creds/{role_name}/{}", m.path, random_base62(24));
    // The lease is recorded first: if Airlock crashes right after creating the user, expiry
    // still finds and drops it.
    let (entry, grant) = leases::create(
        core,
        caller,
        lease_id,
        NewLease {
            path: format!("{}creds/{role_name}", m.path),
            mount_uuid: m.uuid.clone(),
            default_ttl: default_ttl.max(1) as u64,
            max_ttl: max_ttl.max(1) as u64,
            internal: json!({
                "username": username,
                "db_name": role.db_name,
                "role": role_name,
            }),
        },
        now,
    )
    .await?;
    // VALID UNTIL a little after the lease end, as Vault does (clock skew).
    let valid_until = time::OffsetDateTime::from_unix_timestamp(grant.expires_at + 5)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]+0000"
            ))
            .ok()
        })
        .unwrap_or_default();
    // `password_authentication = "scram-sha-256"` (as in Vault): PostgreSQL gets a SCRAM
    // verifier computed here instead of the password, and stores it as is.
    let in_statement = match scram {
        Some(h) => h.await.map_err(|e| ApiError::internal(&e))?,
        None => password.clone(),
    };
    let vars = [
        ("name", username.as_str()),
        ("username", username.as_str()),
        ("password", in_statement.as_str()),
        ("expiration", valid_until.as_str()),
    ];
    if let Err(e) = plugin_create(core, m, &role, &c, &vars).await {
        // Nothing half-created stays: the plugin rolled back (PostgreSQL) or ran the
        // rollback statements / dropped the user (MySQL, Redis); the lease goes too.
        let _ = leases::revoke(core, &entry.lease_id, true).await;
        return Err(ApiError::new(
            500,
            format!("failed to create the database user: {e}"),
        ));
    }
    let mut resp = Response::data(json!({ "username": username, "password": password.as_str() }));
    resp.lease_id = entry.lease_id.clone();
    resp.lease_duration = grant.ttl as i64;
    resp.renewable = true;
    if let Some(w) = grant.warning {
        resp.warnings.push(w);
    }
    Ok(resp)
}

/// Revokes the database user behind a lease (called by the lease manager).
pub async fn revoke(core: &Core, m: &MountEntry, internal: &Value) -> ApiResult<()> {
    let username = internal["username"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let db_name = internal["db_name"].as_str().unwrap_or_default().to_string();
    let role_name = internal["role"].as_str().unwrap_or_default().to_string();
    if username.is_empty() {
        return Ok(());
    }
    let Some(c) = core
        .barrier
        .get_json::<DbConfig>(&cfg_key(m, &db_name))
        .await?
    else {
        // The connection is gone; nothing can be dropped.
        return Ok(());
    };
    let role: Option<Role> = core.barrier.get_json(&role_key(m, &role_name)).await?;
    let custom = role
        .as_ref()
        .map(|r| r.revocation_statements.clone())
        .unwrap_or_default();
    plugin_revoke(core, m, &db_name, &c, &username, &custom)
        .await
        .map_err(|e| ApiError::new(500, format!("failed to revoke the database user: {e}")))
}

/// Where a MySQL DSN (`user:pass@tcp(host:port)/db`) points, after templating.
fn mysql_target(c: &DbConfig) -> Result<(String, u16, String, Zeroizing<String>), String> {
    let dsn = Zeroizing::new(
        c.connection_url
            .replace("{{username}}", &c.username)
            .replace("{{password}}", &c.password),
    );
    let (userinfo, rest) = match dsn.rfind("@tcp(") {
        Some(i) => (dsn.get(..i).unwrap_or(""), dsn.get(i + 1..).unwrap_or("")),
        None => ("", dsn.as_str()),
    };
    let inner = rest
        .strip_prefix("tcp(")
        .and_then(|r| r.split_once(')'))
        .map(|(a, _)| a)
        .ok_or("connection_url must look like {{username}}:{{password}}@tcp(host:port)/")?;
    let (host, port) = match inner.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse().map_err(|_| "invalid port in connection_url")?,
        ),
        None => (inner.to_string(), 3306),
    };
    let (user, pass) = match userinfo.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (userinfo.to_string(), String::new()),
    };
    let user = if user.is_empty() {
        c.username.clone()
    } else {
        user
    };
    Ok((host, port, user, Zeroizing::new(pass)))
}

async fn mysql_conn(c: &DbConfig) -> Result<crate::mysql_client::MySql, String> {
    let (host, port, user, pass) = mysql_target(c)?;
    crate::mysql_client::MySql::connect(&host, port, &user, &pass).await
}

async fn redis_conn(c: &DbConfig) -> Result<crate::redis_client::Redis, String> {
    let mut r = crate::redis_client::Redis::connect(&c.host, c.port).await?;
    r.auth(&c.username, &c.password).await?;
    Ok(r)
}

/// Redis creation statements are Vault's: a JSON list of ACL rules, e.g. `["~*", "+@read"]`.
fn redis_rules(stmts: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in stmts {
        let v: Vec<String> = serde_json::from_str(s).map_err(|_| {
            "Redis creation statements must be a JSON list of ACL rules, e.g. [\"~*\", \"+@read\"]"
                .to_string()
        })?;
        for r in v {
            if r.starts_with('>')
                || r.starts_with('<')
                || r.starts_with('#')
                || r.starts_with('!')
                || r.eq_ignore_ascii_case("nopass")
                || r.eq_ignore_ascii_case("resetpass")
            {
                return Err("ACL rules may not set passwords; Airlock sets the password".into());
            }
            out.push(r);
        }
    }
    Ok(out)
}

async fn verify(c: &DbConfig) -> Result<(), String> {
    match c.plugin_name.as_str() {
        PG => {
            let cl = connect(c).await.map_err(|e| e.errors.join("; "))?;
            cl.simple_query("SELECT 1")
                .await
                .map_err(|e| pg_error(&e))?;
            Ok(())
        }
        REDIS => {
            let mut r = redis_conn(c).await?;
            r.cmd(&["PING"]).await.map(|_| ())
        }
        _ => {
            let mut m = mysql_conn(c).await?;
            m.query("SELECT 1").await.map(|_| ())
        }
    }
}

fn var<'a>(vars: &[(&str, &'a str)], k: &str) -> &'a str {
    vars.iter()
        .find(|(x, _)| *x == k)
        .map(|(_, v)| *v)
        .unwrap_or("")
}

async fn plugin_create(
    core: &Core,
    m: &MountEntry,
    role: &Role,
    c: &DbConfig,
    vars: &[(&str, &str)],
) -> Result<(), String> {
    let username = var(vars, "name");
    let password = var(vars, "password");
    match c.plugin_name.as_str() {
        PG => {
            let stmts = render(&role.creation_statements, vars);
            let mut cl = checkout(core, m, &role.db_name, c)
                .await
                .map_err(|e| e.errors.join("; "))?;
            let r = run_tx_batched(&mut cl, &stmts, true).await;
            if r.is_err() {
                let rb = render(&role.rollback_statements, vars);
                if !rb.is_empty() {
                    let _ = run_tx(&mut cl, &rb).await;
                }
            }
            checkin(core, m, &role.db_name, c, cl).await;
            r
        }
        REDIS => {
            let rules = redis_rules(&role.creation_statements)?;
            let mut r = redis_conn(c).await?;
            let pw = Zeroizing::new(format!(">{password}"));
            let mut args: Vec<&str> = vec!["ACL", "SETUSER", username, "reset", "on", pw.as_str()];
            args.extend(rules.iter().map(String::as_str));
            match r.cmd(&args).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = r.cmd(&["ACL", "DELUSER", username]).await;
                    Err(e)
                }
            }
        }
        _ => {
            let stmts = render(&role.creation_statements, vars);
            let mut my = mysql_conn(c).await?;
            for q in &stmts {
                if let Err(e) = my.query(q).await {
                    // MySQL DDL commits as it goes: undo explicitly.
                    let rb = render(&role.rollback_statements, vars);
                    let rb = if rb.is_empty() {
                        vec![format!(
                            "DROP USER IF EXISTS '{}'@'%'",
                            username.replace('\'', "''")
                        )]
                    } else {
                        rb
                    };
                    for q in rb {
                        let _ = my.query(&q).await;
                    }
                    return Err(e);
                }
            }
            Ok(())
        }
    }
}

async fn plugin_revoke(
    core: &Core,
    m: &MountEntry,
    db_name: &str,
    c: &DbConfig,
    username: &str,
    custom: &[String],
) -> Result<(), String> {
    match c.plugin_name.as_str() {
        PG => {
            let q = quote_ident(username);
            let stmts = if custom.is_empty() {
                vec![
                    format!("REASSIGN OWNED BY {q} TO CURRENT_USER"),
                    format!("DROP OWNED BY {q}"),
                    format!("DROP ROLE IF EXISTS {q}"),
                ]
            } else {
                render(custom, &[("name", username), ("username", username)])
            };
            let mut cl = checkout(core, m, db_name, c)
                .await
                .map_err(|e| e.errors.join("; "))?;
            // End the user's sessions first, so it cannot keep working on an open connection.
            let _ = cl
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    &[&username],
                )
                .await;
            let exists = cl
                .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&username])
                .await
                .map_err(|e| pg_error(&e))?
                .is_some();
            let r = if exists {
                run_tx(&mut cl, &stmts).await
            } else {
                Ok(())
            };
            checkin(core, m, db_name, c, cl).await;
            r
        }
        REDIS => {
            let mut r = redis_conn(c).await?;
            r.cmd(&["ACL", "DELUSER", username]).await.map(|_| ())
        }
        _ => {
            let stmts = if custom.is_empty() {
                vec![format!(
                    "DROP USER IF EXISTS '{}'@'%'",
                    username.replace('\'', "''")
                )]
            } else {
                render(custom, &[("name", username), ("username", username)])
            };
            let mut my = mysql_conn(c).await?;
            // End the user's open sessions too: dropping a MySQL user does not.
            let lit = username.replace('\\', "\\\\").replace('\'', "''");
            if let Ok(crate::mysql_client::Outcome::Rows(rows)) = my
                .query(&format!(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{lit}'"
                ))
                .await
            {
                for id in rows
                    .into_iter()
                    .filter_map(|r| r.into_iter().next().flatten())
                {
                    if id.bytes().all(|b| b.is_ascii_digit()) {
                        let _ = my.query(&format!("KILL CONNECTION {id}")).await;
                    }
                }
            }
            for q in stmts {
                my.query(&q).await?;
            }
            Ok(())
        }
    }
}

/// After a renewal: runs the role's renew statements (e.g. extending `VALID UNTIL`).
pub async fn renew_hook(core: &Arc<Core>, e: &LeaseEntry) {
    let Some(m) = core
        .mounts_snapshot()
        .entries
        .into_iter()
        .find(|m| m.uuid == e.mount_uuid && m.kind == "database")
    else {
        return;
    };
    let username = e.internal["username"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let db_name = e.internal["db_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let role_name = e.internal["role"].as_str().unwrap_or_default().to_string();
    let Ok(Some(c)) = core
        .barrier
        .get_json::<DbConfig>(&cfg_key(&m, &db_name))
        .await
    else {
        return;
    };
    let Ok(Some(role)) = core
        .barrier
        .get_json::<Role>(&role_key(&m, &role_name))
        .await
    else {
        return;
    };
    let valid_until = time::OffsetDateTime::from_unix_timestamp(e.expire_time + 5)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]+0000"
            ))
            .ok()
        })
        .unwrap_or_default();
    if c.plugin_name != PG {
        return;
    }
    let stmts = if role.renew_statements.is_empty() {
        // Keep VALID UNTIL in step with the lease, as Vault's default renewal does.
        vec![format!(
            "ALTER ROLE {} VALID UNTIL '{valid_until}'",
            quote_ident(&username)
        )]
    } else {
        render(
            &role.renew_statements,
            &[
                ("name", &username),
                ("username", &username),
                ("expiration", &valid_until),
            ],
        )
    };
    if let Ok(mut cl) = checkout(core, &m, &db_name, &c).await {
        if let Err(err) = run_tx(&mut cl, &stmts).await {
            tracing::warn!(lease = %e.lease_id, error = %err, "renew statements failed");
        }
        checkin(core, &m, &db_name, &c, cl).await;
    }
}
