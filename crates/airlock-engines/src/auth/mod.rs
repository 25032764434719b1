//! Auth methods: each an engine whose login paths are marked `.login()` in its table. A
//! login answers with [`Response::login`](airlock_logical::Response) set to a
//! [`LoginOutcome`]; the server checks rate limits before it, and turns the outcome into a
//! token after it. Method data lives in the mount's storage view.
//!
//! - [`approle`]: role id + secret id.
//! - [`userpass`]: username + password (stored as PBKDF2 hashes).
//! - [`jwt`]: JWT/OIDC (also mounted as `oidc`), with the OIDC browser flow.
//! - [`kubernetes`]: service-account tokens, checked by TokenReview or JWKS.

pub mod approle;
pub mod jwt;
pub mod keys;
pub mod kubernetes;
pub mod userpass;

use airlock_logical::auth::{check_name, LoginOutcome};
use airlock_logical::{ApiError, ApiResult, Ctx, Response};
use serde_json::Value;

/// A successful login, as the server expects it.
pub fn logged_in(out: LoginOutcome) -> Response {
    Response {
        login: Some(Box::new(out)),
        ..Default::default()
    }
}

/// GET of a stored role/user: its JSON view, or a 404.
pub async fn read_item<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    rel: &str,
    view: impl Fn(&T) -> Value,
) -> ApiResult<Response> {
    match ctx.storage.get_json::<T>(rel).await? {
        Some(item) => Ok(Response::data(view(&item))),
        None => Err(ApiError::not_found()),
    }
}

/// GET `role/<name>` (the name is checked and lower-cased).
pub async fn read_role<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    raw: &str,
    view: impl Fn(&T) -> Value,
) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    read_item(ctx, &format!("role/{name}"), view).await
}

/// DELETE `role/<name>`.
pub async fn delete_role(ctx: &Ctx, raw: &str) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    delete_item(ctx, &format!("role/{name}")).await
}

/// DELETE of a stored role/user (absent is fine).
pub async fn delete_item(ctx: &Ctx, rel: &str) -> ApiResult<Response> {
    ctx.storage.delete(rel).await?;
    Ok(Response::empty())
}

/// The role a login names (`role/<name>`), if the name is valid and stored.
pub async fn login_role<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    name: &str,
) -> ApiResult<Option<T>> {
    match check_name(name, "role") {
        Ok(n) => ctx.storage.get_json(&format!("role/{n}")).await,
        Err(_) => Ok(None),
    }
}

/// A role/user listing under `rel_prefix` (folders left out).
pub async fn list_names(ctx: &Ctx, rel_prefix: &str) -> ApiResult<Response> {
    let mut keys = ctx.storage.list(rel_prefix).await?;
    keys.retain(|k| !k.ends_with('/'));
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::list(keys))
}

/// Whether `role/<lower-cased name>` (or another collection) holds `name`: the existence
/// check of role and user paths.
pub async fn item_exists(ctx: &Ctx, collection: &str, name: &str) -> ApiResult<Option<bool>> {
    if name.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        ctx.storage
            .exists(&format!("{collection}/{}", name.to_lowercase()))
            .await?,
    ))
}

#[cfg(test)]
mod tests;
