//! Static roles: an existing database user whose password Airlock rotates, on a period or a
//! cron schedule, and hands out on `static-creds/<name>`.

use airlock_logical::util::rfc3339_nanos;
use airlock_logical::{ApiError, ApiResult, Ctx, Locked, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::password_for;
use super::{load_config, statements, Database};

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StaticRole {
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

fn key(name: &str) -> String {
    format!("static-role/{name}")
}

async fn load(ctx: &Ctx, name: &str) -> ApiResult<Option<StaticRole>> {
    ctx.storage.get_json(&key(name)).await
}

/// GET `static-roles/<name>`.
pub(super) async fn read(ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let r = load(ctx, name).await?.ok_or_else(ApiError::not_found)?;
    let mut v = json!({
        "db_name": r.db_name,
        "username": r.username,
        "rotation_statements": r.rotation_statements,
        "last_vault_rotation": rfc3339_nanos(r.last_rotation_nanos),
        "credential_type": "password",
    });
    schedule_fields(&mut v, &r);
    Ok(Response::data(v))
}

/// GET `static-creds/<name>`.
pub(super) async fn creds(ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let r = load(ctx, name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown role: {name}")))?;
    let now = ctx.now_unix();
    let mut v = json!({
        "username": r.username,
        "password": r.password,
        "last_vault_rotation": rfc3339_nanos(r.last_rotation_nanos),
        "ttl": (r.next_rotation - now).max(0),
    });
    schedule_fields(&mut v, &r);
    Ok(Response::data(v))
}

/// POST `rotate-role/<name>`.
pub(super) async fn rotate_now(db: &Database, ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let g = ctx.storage.lock(&key(name)).await?;
    let r = load(ctx, name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown role: {name}")))?;
    rotate_static(db, ctx, &g, name, r).await?;
    Ok(Response::empty())
}

/// Rotates the mount's static roles whose time has come (called about once a second).
pub(super) async fn rotate_due(db: &Database, ctx: &Ctx) -> ApiResult<()> {
    let now = ctx.now_unix();
    for name in ctx.storage.list("static-role/").await? {
        // A conflict means another node wrote the role while the password changed: rotate
        // again from its record, so the stored password is the one the database has.
        for _ in 0..3 {
            let g = ctx.storage.lock(&key(&name)).await?;
            let Some(r) = load(ctx, &name).await? else {
                break;
            };
            if r.next_rotation > now {
                break;
            }
            match rotate_static(db, ctx, &g, &name, r).await {
                Err(e) if e.is_conflict() => continue,
                Err(e) => {
                    tracing::warn!(role = %name, error = ?e.errors, "static role rotation failed; will retry");
                }
                Ok(()) => {}
            }
            break;
        }
    }
    Ok(())
}

/// Sets a new password for a static role's user and records it.
async fn rotate_static(
    db: &Database,
    ctx: &Ctx,
    g: &Locked<'_>,
    name: &str,
    mut r: StaticRole,
) -> ApiResult<()> {
    let c = load_config(ctx, &r.db_name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("unknown database \"{}\"", r.db_name)))?;
    let password = password_for(ctx, &c).await?;
    db.plugin_for(&c)?
        .set_password(
            &r.db_name,
            &c,
            &r.username,
            &password,
            &r.rotation_statements,
        )
        .await
        .map_err(|e| ApiError::new(500, format!("failed to rotate the password: {e}")))?;
    r.password = password.to_string();
    r.last_rotation_nanos = ctx.now_nanos();
    let now = ctx.now_unix();
    r.next_rotation = if r.rotation_schedule.is_empty() {
        now + r.rotation_period.max(1)
    } else {
        airlock_core::cron::Schedule::parse(&r.rotation_schedule)
            .ok()
            .and_then(|s| s.next_after(now))
            .unwrap_or(i64::MAX)
    };
    g.put_json(&key(name), &r).await?;
    Ok(())
}

/// POST `static-roles/<name>`: the password is rotated at once, as in Vault.
pub(super) async fn write(
    db: &Database,
    ctx: &Ctx,
    name: &str,
    req: &Request,
) -> ApiResult<Response> {
    let g = ctx.storage.lock(&key(name)).await?;
    let old = load(ctx, name).await?;
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
    let c = load_config(ctx, &db_name)
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
    rotate_static(db, ctx, &g, name, r).await?;
    Ok(Response::empty())
}
