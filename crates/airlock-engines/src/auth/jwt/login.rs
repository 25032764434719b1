//! JWT login: the signature against the mount's keys, then the claim checks (pure, in
//! `airlock_core::jwt`), then the login's alias, metadata and token settings.

use airlock_core::jwt as cj;
use airlock_logical::auth::LoginOutcome;
use airlock_logical::{ApiError, ApiResult, Ctx, Request, Response};
use serde_json::{Map, Value};

use super::runtime::{token_err, verify_signature, Runtime};
use super::{runtime, Jwt, Role};
use crate::auth::logged_in;

pub(super) async fn login(eng: &Jwt, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let rt = runtime(eng, ctx).await?;
    let role_name = req
        .str_field("role")?
        .filter(|r| !r.is_empty())
        .or_else(|| Some(rt.config.default_role.clone()).filter(|r| !r.is_empty()))
        .ok_or_else(|| ApiError::bad_request("missing role"))?
        .to_lowercase();
    let role: Role = crate::auth::login_role(ctx, &role_name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("role \"{role_name}\" could not be found")))?;
    if role.role_type == "oidc" {
        return Err(ApiError::bad_request(
            "role with oidc role_type is not allowed",
        ));
    }
    let jwt = zeroize::Zeroizing::new(
        req.str_field("jwt")?
            .filter(|j| !j.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing token"))?,
    );
    let jws = verify_signature(&rt, &jwt).await?;
    outcome(&rt, &role, role_name, &jws.claims, req, None).map(logged_in)
}

/// The checks after the signature: issuer, audience, times, bound claims; then the login's
/// alias, metadata and token settings. `oidc_client`: the mount's client id when `claims`
/// come from an ID token of the browser flow (its audience must name the client).
pub(super) fn outcome(
    rt: &Runtime,
    role: &Role,
    role_name: String,
    claims: &Map<String, Value>,
    req: &Request,
    oidc_client: Option<&str>,
) -> ApiResult<LoginOutcome> {
    let discovered = rt
        .discovered
        .read()
        .ok()
        .and_then(|d| d.as_ref().map(|d| d.issuer.clone()));
    if let Some(iss) = &discovered {
        if claims.get("iss").and_then(Value::as_str) != Some(iss.as_str()) {
            return Err(token_err("invalid issuer (iss) claim"));
        }
    }
    let client_aud: Vec<String>;
    let audiences = match oidc_client {
        Some(client) => {
            let names_client = match claims.get("aud") {
                Some(Value::String(a)) => a == client,
                Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client)),
                _ => false,
            };
            if !names_client {
                return Err(token_err(
                    "ID token audience does not include the client id",
                ));
            }
            if role.bound_audiences.is_empty() {
                client_aud = vec![client.to_string()];
                &client_aud
            } else {
                &role.bound_audiences
            }
        }
        None => {
            if role.bound_audiences.is_empty() && claims.contains_key("aud") {
                return Err(token_err(
                    "audience claim found in JWT but no audiences bound to the role",
                ));
            }
            &role.bound_audiences
        }
    };
    let expected = cj::Expected {
        now: airlock_logical::util::now_unix(),
        issuer: Some(rt.config.bound_issuer.as_str()),
        audiences,
        subject: Some(role.bound_subject.as_str()),
        clock_skew_leeway: Role::leeway(role.clock_skew_leeway, 60),
        expiration_leeway: Role::leeway(role.expiration_leeway, 150),
        not_before_leeway: Role::leeway(role.not_before_leeway, 150),
        require_exp: true,
    };
    cj::validate_standard(claims, &expected).map_err(token_err)?;
    let claims_err = |e: String| ApiError::bad_request(format!("error validating claims: {e}"));
    cj::validate_bound_claims(claims, &role.bound_claims, role.bound_claims_type == "glob")
        .map_err(claims_err)?;
    let user_claim = if role.user_claim_json_pointer && !role.user_claim.starts_with('/') {
        format!("/{}", role.user_claim)
    } else {
        role.user_claim.clone()
    };
    let alias = cj::user_claim(claims, &user_claim).map_err(ApiError::bad_request)?;
    if !role.groups_claim.is_empty() {
        cj::groups(claims, &role.groups_claim).map_err(ApiError::bad_request)?;
    }
    let mut meta = cj::map_claims(claims, &role.claim_mappings).map_err(ApiError::bad_request)?;
    meta.insert("role".into(), role_name);
    let cidrs = airlock_core::cidr::parse_list(&role.token.token_bound_cidrs)
        .map_err(|e| ApiError::internal(&e))?;
    if !airlock_core::cidr::allows(&cidrs, req.remote.map(|r| r.ip())) {
        return Err(ApiError::permission_denied());
    }
    Ok(LoginOutcome {
        settings: role.token.clone(),
        meta,
        display_name: alias.clone(),
        alias,
        extra_policies: Vec::new(),
    })
}

// ---- the browser flow: oidc/auth_url, then oidc/callback ----
