//! The OIDC browser flow: `oidc/auth_url` (where to send the browser, with a state and a
//! nonce remembered for five minutes) and `oidc/callback` (the code exchanged for an ID token
//! at the provider, checked like a JWT login).

use std::time::Instant;

use airlock_logical::{ApiError, ApiResult, Ctx, Request, Response};
use serde_json::{json, Value};

use super::login::outcome;
use super::runtime::{token_err, verify_signature};
use super::runtime::{Pending, Runtime, PENDING_MAX, PENDING_TTL};
use super::{runtime, Config, Jwt, Role};
use crate::auth::logged_in;

/// The provider's authorization and token endpoints, from the discovery document the mount's
/// key cache fetched (fetched now if the cache is empty).
async fn provider_endpoints(rt: &Runtime) -> Result<(String, String), String> {
    let cached = || {
        rt.discovered
            .read()
            .ok()
            .and_then(|d| d.as_ref().map(|d| d.endpoints.clone()))
    };
    if let Some(e) = cached() {
        return e;
    }
    rt.keys(None).await?;
    cached().unwrap_or_else(|| Err("no discovery document".into()))
}

/// A parameter of the callback: the query string (GET, as browsers and CLIs send it) or the
/// body (`form_post`).
fn param(req: &Request, k: &str) -> Option<String> {
    req.value(k)
        .ok()
        .flatten()
        .and_then(|v| v.as_str().map(str::to_string))
        .or_else(|| {
            req.query
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
        })
        .filter(|v| !v.is_empty())
}

fn random_hex() -> String {
    hex::encode(airlock_logical::util::random_bytes::<20>())
}

fn oidc_ready(c: &Config) -> ApiResult<()> {
    if c.oidc_discovery_url.is_empty() || c.oidc_client_id.is_empty() {
        return Err(ApiError::bad_request(
            "this mount is not configured for OIDC browser logins: set oidc_discovery_url, oidc_client_id and oidc_client_secret",
        ));
    }
    Ok(())
}

async fn oidc_role(ctx: &Ctx, rt: &Runtime, name: Option<String>) -> ApiResult<(String, Role)> {
    let name = name
        .or_else(|| Some(rt.config.default_role.clone()).filter(|r| !r.is_empty()))
        .ok_or_else(|| ApiError::bad_request("missing role"))?
        .to_lowercase();
    let role: Role = crate::auth::login_role(ctx, &name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("role \"{name}\" could not be found")))?;
    if role.role_type != "oidc" {
        return Err(ApiError::bad_request(format!(
            "role \"{name}\" has role_type \"{}\": browser logins need an oidc role",
            role.role_type
        )));
    }
    Ok((name, role))
}

/// `oidc/auth_url`: where to send the user's browser.
pub(super) async fn auth_url(eng: &Jwt, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let rt = runtime(eng, ctx).await?;
    oidc_ready(&rt.config)?;
    let (role_name, role) =
        oidc_role(ctx, &rt, req.str_field("role")?.filter(|r| !r.is_empty())).await?;
    let redirect_uri = req
        .str_field("redirect_uri")?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing redirect_uri"))?;
    if !role.allowed_redirect_uris.contains(&redirect_uri) {
        return Err(ApiError::bad_request(format!(
            "unauthorized redirect_uri: {redirect_uri}"
        )));
    }
    let (auth_ep, _) = provider_endpoints(&rt).await.map_err(|e| {
        tracing::warn!(error = %e, "OIDC discovery failed");
        ApiError::bad_request("the OIDC provider's discovery document could not be fetched")
    })?;
    let (state, nonce) = (random_hex(), random_hex());
    let mut scopes = vec!["openid".to_string()];
    for sc in &role.oidc_scopes {
        if !scopes.contains(sc) {
            scopes.push(sc.clone());
        }
    }
    let url = format!(
        "{auth_ep}{}{}",
        if auth_ep.contains('?') { '&' } else { '?' },
        crate::http_client::form_encode(&[
            ("client_id", &rt.config.oidc_client_id),
            ("nonce", &nonce),
            ("redirect_uri", &redirect_uri),
            ("response_type", "code"),
            ("scope", &scopes.join(" ")),
            ("state", &state),
        ])
    );
    {
        let mut p = eng
            .cache
            .pending
            .lock()
            .map_err(|_| ApiError::internal(&"pending OIDC logins lock poisoned"))?;
        p.retain(|_, v| v.at.elapsed() < PENDING_TTL);
        if p.len() >= PENDING_MAX {
            return Err(ApiError::new(
                429,
                "too many OIDC logins in progress; try again in a few minutes",
            ));
        }
        p.insert(
            state,
            Pending {
                mount: ctx.mount.uuid.clone(),
                role: role_name,
                redirect_uri,
                nonce,
                client_nonce: req.str_field("client_nonce")?.filter(|c| !c.is_empty()),
                at: Instant::now(),
            },
        );
    }
    Ok(Response::data(json!({ "auth_url": url })))
}

/// `oidc/callback`: the provider sent the browser back with a code; exchange it for an ID
/// token, check that, and log in.
pub(super) async fn callback(eng: &Jwt, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let state = param(req, "state").ok_or_else(|| ApiError::bad_request("missing state"))?;
    // Single use: taken out whatever happens next.
    let pending = eng
        .cache
        .pending
        .lock()
        .map_err(|_| ApiError::internal(&"pending OIDC logins lock poisoned"))?
        .remove(&state)
        .filter(|p| p.mount == ctx.mount.uuid && p.at.elapsed() < PENDING_TTL)
        .ok_or_else(|| ApiError::bad_request("expired or unknown OIDC state"))?;
    if let Some(e) = param(req, "error") {
        let d = param(req, "error_description").unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "the OIDC provider refused the login: {e} {d}"
        )));
    }
    if let Some(cn) = &pending.client_nonce {
        if param(req, "client_nonce").as_deref() != Some(cn.as_str()) {
            return Err(ApiError::bad_request("invalid client_nonce"));
        }
    }
    let code = zeroize::Zeroizing::new(
        param(req, "code").ok_or_else(|| ApiError::bad_request("missing code"))?,
    );
    let rt = runtime(eng, ctx).await?;
    oidc_ready(&rt.config)?;
    let (role_name, role) = oidc_role(ctx, &rt, Some(pending.role.clone())).await?;
    let c = &rt.config;
    let (_, token_ep) = provider_endpoints(&rt).await.map_err(|e| {
        tracing::warn!(error = %e, "OIDC discovery failed");
        ApiError::bad_request("the OIDC provider's discovery document could not be fetched")
    })?;
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", pending.redirect_uri.as_str()),
    ];
    // client_secret_basic first; providers that only take client_secret_post get that.
    let exchange = async {
        let r = crate::http_client::post_form(
            &token_ep,
            &c.oidc_discovery_ca_pem,
            Some((&c.oidc_client_id, &c.oidc_client_secret)),
            &grant,
        )
        .await?;
        if r.status != 400 && r.status != 401 {
            return Ok(r);
        }
        let mut fields = grant.to_vec();
        fields.push(("client_id", &c.oidc_client_id));
        fields.push(("client_secret", &c.oidc_client_secret));
        crate::http_client::post_form(&token_ep, &c.oidc_discovery_ca_pem, None, &fields).await
    };
    let reply = exchange.await.map_err(|e: String| {
        tracing::warn!(error = %e, "OIDC code exchange failed");
        ApiError::bad_request("the OIDC provider could not be reached to exchange the code")
    })?;
    if !(200..300).contains(&reply.status) {
        tracing::warn!(status = reply.status, "OIDC code exchange refused");
        return Err(ApiError::bad_request(format!(
            "the OIDC provider refused the code (HTTP {})",
            reply.status
        )));
    }
    let id_token = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| {
            v.get("id_token")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .map(zeroize::Zeroizing::new)
        .ok_or_else(|| ApiError::bad_request("the OIDC provider's answer has no id_token"))?;
    let jws = verify_signature(&rt, &id_token).await?;
    if jws.claims.get("nonce").and_then(Value::as_str) != Some(pending.nonce.as_str()) {
        return Err(token_err("invalid ID token nonce"));
    }
    outcome(
        &rt,
        &role,
        role_name,
        &jws.claims,
        req,
        Some(&c.oidc_client_id),
    )
    .map(logged_in)
}
