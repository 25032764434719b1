//! Dynamic roles and the credentials they issue.

use airlock_logical::{ApiError, ApiResult, Ctx, NewLease, Request, Response};
use serde_json::json;

use super::config::{password_for, render_username};
use super::{load_config, load_role, statements, Database, Role};

/// GET `roles/<name>`.
pub(super) async fn read_role(ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let r = load_role(ctx, name)
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

/// POST `roles/<name>`.
pub(super) async fn write_role(ctx: &Ctx, name: &str, req: &Request) -> ApiResult<Response> {
    let old = load_role(ctx, name).await?;
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
        default_ttl: if req.has("default_ttl")? {
            req.duration_field("default_ttl")?.unwrap_or(0)
        } else {
            old.as_ref().map(|o| o.default_ttl).unwrap_or(0)
        },
        max_ttl: if req.has("max_ttl")? {
            req.duration_field("max_ttl")?.unwrap_or(0)
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
    ctx.storage.put_json(&format!("role/{name}"), &r).await?;
    Ok(Response::empty())
}

/// GET `creds/<role>`: a new user under a new lease. The lease is recorded first: if Airlock
/// crashes right after creating the user, expiry still finds and drops it.
pub(super) async fn creds(db: &Database, ctx: &Ctx, role_name: &str) -> ApiResult<Response> {
    let role = load_role(ctx, role_name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown role: {role_name}")))?;
    let c = load_config(ctx, &role.db_name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown database \"{}\"", role.db_name)))?;
    if !c.allowed_roles.iter().any(|a| a == "*" || a == role_name) {
        return Err(ApiError::bad_request(format!(
            "\"{role_name}\" is not an allowed role"
        )));
    }
    let plugin = db.plugin_for(&c)?;
    let ttls = ctx.clamp_ttls(role.default_ttl, role.max_ttl);
    let now = ctx.now_unix();
    let display = ctx.display_name();
    let username = if !c.username_template.is_empty() {
        render_username(&c.username_template, display, role_name, now)
            .map_err(|e| ApiError::new(500, format!("unable to generate username: {e}")))?
    } else {
        plugin.default_username(display, role_name, now)
    };
    let password = password_for(ctx, &c).await?;
    // The SCRAM verifier (4096 PBKDF2 rounds) is computed while the lease is written.
    let (grant, in_statement) = tokio::join!(
        ctx.create_lease(NewLease {
            lease_id: format!(
                "{}creds/{role_name}/{}",
                ctx.mount.path,
                airlock_logical::util::random_base62(24)
            ),
            path: format!("{}creds/{role_name}", ctx.mount.path),
            default_ttl: ttls.default.max(1) as u64,
            max_ttl: ttls.max.max(1) as u64,
            internal: json!({
                "username": username,
                "db_name": role.db_name,
                "role": role_name,
            }),
        }),
        plugin.password_in_statement(&c, &password)
    );
    let grant = grant?;
    let valid_until = super::valid_until(grant.expires_at);
    let created = match in_statement {
        Ok(in_statement) => {
            let vars = [
                ("name", username.as_str()),
                ("username", username.as_str()),
                ("password", in_statement.as_str()),
                ("expiration", valid_until.as_str()),
            ];
            plugin.create_user(&role.db_name, &c, &role, &vars).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = created {
        // Nothing half-created stays: the plugin rolled back; the lease goes too.
        let _ = ctx.revoke_lease(&grant.lease_id, true).await;
        return Err(ApiError::new(
            500,
            format!("failed to create the database user: {e}"),
        ));
    }
    let mut resp = Response::data(json!({ "username": username, "password": password.as_str() }));
    resp.lease_id = grant.lease_id;
    resp.lease_duration = grant.ttl as i64;
    resp.renewable = true;
    if let Some(w) = grant.warning {
        resp.warnings.push(w);
    }
    Ok(resp)
}
