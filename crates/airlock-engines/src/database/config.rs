//! Connection configs: read (the password never leaves), write with verification, and root
//! rotation; passwords and usernames the engine generates.

use airlock_logical::util::{new_uuid, random_base62, random_bytes, random_index};
use airlock_logical::{ApiError, ApiResult, Ctx, Request, Response};
use serde_json::json;
use zeroize::Zeroizing;

use super::{load_config, statements, Database, DbConfig};

/// GET `config/<name>`.
pub(super) async fn read(ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let c = load_config(ctx, name)
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
    let d = &mut v["connection_details"];
    for (k, set, val) in [
        ("tls", c.tls, json!(c.tls)),
        ("insecure_tls", c.insecure_tls, json!(c.insecure_tls)),
        (
            "tls_skip_verify",
            c.tls_skip_verify,
            json!(c.tls_skip_verify),
        ),
        ("ca_cert", !c.ca_cert.is_empty(), json!(c.ca_cert)),
        ("tls_ca", !c.tls_ca.is_empty(), json!(c.tls_ca)),
        (
            "tls_server_name",
            !c.tls_server_name.is_empty(),
            json!(c.tls_server_name),
        ),
    ] {
        if set {
            d[k] = val;
        }
    }
    if !c.host.is_empty() {
        d["host"] = json!(c.host);
        d["port"] = json!(c.port);
    }
    Ok(Response::data(v))
}

/// POST `config/<name>`: validated, verified (unless `verify_connection=false`), stored.
pub(super) async fn write(
    db: &Database,
    ctx: &Ctx,
    name: &str,
    req: &Request,
) -> ApiResult<Response> {
    let old = load_config(ctx, name).await?;
    let plugin = match req.str_field("plugin_name")? {
        Some(p) => p,
        None => old
            .as_ref()
            .map(|o| o.plugin_name.clone())
            .ok_or_else(|| ApiError::bad_request("plugin_name must be specified"))?,
    };
    let Some(p) = db.plugin(&plugin).cloned() else {
        return Err(ApiError::bad_request(format!(
            "plugin not supported: {plugin:?} (available: {})",
            db.plugin_names().join(", ")
        )));
    };
    let pick = |k: &str, old: Option<String>| -> ApiResult<String> {
        Ok(req.str_field(k)?.or(old).unwrap_or_default())
    };
    let flag = |k: &str, old: Option<bool>| -> ApiResult<bool> {
        Ok(req.bool_field(k)?.or(old).unwrap_or(false))
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
        tls: flag("tls", old.as_ref().map(|o| o.tls))?,
        ca_cert: pick("ca_cert", old.as_ref().map(|o| o.ca_cert.clone()))?,
        insecure_tls: flag("insecure_tls", old.as_ref().map(|o| o.insecure_tls))?,
        tls_ca: pick("tls_ca", old.as_ref().map(|o| o.tls_ca.clone()))?,
        tls_certificate_key: pick(
            "tls_certificate_key",
            old.as_ref().map(|o| o.tls_certificate_key.clone()),
        )?,
        tls_server_name: pick(
            "tls_server_name",
            old.as_ref().map(|o| o.tls_server_name.clone()),
        )?,
        tls_skip_verify: flag("tls_skip_verify", old.as_ref().map(|o| o.tls_skip_verify))?,
    };
    // TLS options a plugin does not implement are refused, never ignored.
    p.check_config(&c).map_err(ApiError::bad_request)?;
    if p.uses_host_port() {
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
    if !c.password_policy.is_empty() && ctx.sys.password_policy(&c.password_policy).await?.is_none()
    {
        return Err(ApiError::bad_request(format!(
            "password policy {:?} does not exist",
            c.password_policy
        )));
    }
    if req.bool_field("verify_connection")?.unwrap_or(true) {
        p.verify(&c)
            .await
            .map_err(|e| ApiError::bad_request(format!("error verifying connection: {e}")))?;
    }
    db.reset(name).await;
    ctx.storage.put_json(&format!("config/{name}"), &c).await?;
    Ok(Response::empty())
}

/// Replaces the configured connection user's password with one only Airlock knows.
pub(super) async fn rotate_root(db: &Database, ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let key = format!("config/{name}");
    let g = ctx.storage.lock(&key).await?;
    let mut c: DbConfig = ctx
        .storage
        .get_json(&key)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown database \"{name}\"")))?;
    if c.username.is_empty() {
        return Err(ApiError::bad_request(
            "the connection has no username to rotate",
        ));
    }
    let password = password_for(ctx, &c).await?;
    let username = c.username.clone();
    let custom = c.root_rotation_statements.clone();
    db.plugin_for(&c)?
        .set_password(name, &c, &username, &password, &custom)
        .await
        .map_err(|e| ApiError::new(500, format!("failed to rotate the root credentials: {e}")))?;
    c.password = password.to_string();
    g.put_json(&key, &c).await?;
    // Pooled connections were opened with the old password.
    db.reset(name).await;
    Ok(Response::empty())
}

/// A password from the config's password policy, or Vault's default.
pub(super) async fn password_for(ctx: &Ctx, c: &DbConfig) -> ApiResult<Zeroizing<String>> {
    if c.password_policy.is_empty() {
        return Ok(Zeroizing::new(generate_password()));
    }
    let p = ctx
        .sys
        .password_policy(&c.password_policy)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "password policy {:?} does not exist",
                c.password_policy
            ))
        })?;
    p.generate(random_index)
        .map(Zeroizing::new)
        .ok_or_else(|| ApiError::internal(&"the password policy could not be satisfied"))
}

/// Vault's default password policy: 20 characters of letters, digits and `-`, with at least
/// one lower-case letter, one upper-case letter, one digit and one dash.
fn generate_password() -> String {
    loop {
        let base = random_base62(19);
        let mut chars: Vec<char> = base.chars().collect();
        let pos = (random_bytes::<1>()[0] as usize) % 20;
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
pub(super) fn render_username(
    t: &str,
    display: &str,
    role: &str,
    now: i64,
) -> Result<String, String> {
    let random = |n: usize| random_base62(n);
    let uuid = new_uuid;
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
