//! Roles, and the credentials they issue: IAM users under leases (created step by step,
//! removed entirely on revocation) and STS credentials (leased for as long as AWS lets
//! them live, not revocable).

use std::collections::BTreeMap;

use airlock_logical::{ApiError, ApiResult, Ctx, NewLease, Request, Response};
use serde_json::{json, Value};

use super::client::{self, AwsError};
use super::{
    load_role, load_root, LeaseConfig, Role, RootConfig, ASSUMED_ROLE, CREDENTIAL_TYPES,
    FEDERATION_TOKEN, IAM_USER, SESSION_TOKEN,
};

/// Vault's default lifetime of STS credentials when neither the request nor the role says.
const DEFAULT_STS_TTL: i64 = 3600;

/// GET `roles/<name>`.
pub(super) async fn read_role(ctx: &Ctx, name: &str) -> ApiResult<Response> {
    let r = load_role(ctx, name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Response::data(json!({
        "credential_type": r.credential_type,
        "policy_arns": r.policy_arns,
        "role_arns": r.role_arns,
        "policy_document": r.policy_document,
        "iam_groups": r.iam_groups,
        "iam_tags": r.iam_tags,
        "default_sts_ttl": r.default_sts_ttl,
        "max_sts_ttl": r.max_sts_ttl,
        "user_path": r.user_path,
        "permissions_boundary_arn": r.permissions_boundary_arn,
    })))
}

/// POST `roles/<name>`: fields not sent keep their stored value.
pub(super) async fn write_role(ctx: &Ctx, name: &str, req: &Request) -> ApiResult<Response> {
    let old = load_role(ctx, name).await?.unwrap_or_default();
    let list = |k: &str, old: &[String]| -> ApiResult<Vec<String>> {
        Ok(req.str_list_field(k)?.unwrap_or_else(|| old.to_vec()))
    };
    let dur = |k: &str, old: i64| -> ApiResult<i64> {
        Ok(if req.has(k)? {
            req.duration_field(k)?.unwrap_or(0)
        } else {
            old
        })
    };
    let policy_document = match req.str_field("policy_document")? {
        Some(p) if p.trim().is_empty() => String::new(),
        Some(p) => serde_json::from_str::<Value>(&p)
            .map(|v| v.to_string())
            .map_err(|_| ApiError::bad_request(format!("cannot parse policy document: {p:?}")))?,
        None => old.policy_document.clone(),
    };
    let r = Role {
        credential_type: req
            .str_field("credential_type")?
            .unwrap_or_else(|| old.credential_type.clone()),
        policy_arns: list("policy_arns", &old.policy_arns)?,
        role_arns: list("role_arns", &old.role_arns)?,
        policy_document,
        iam_groups: list("iam_groups", &old.iam_groups)?,
        iam_tags: req
            .kv_pairs_field("iam_tags")?
            .unwrap_or_else(|| old.iam_tags.clone()),
        default_sts_ttl: dur("default_sts_ttl", old.default_sts_ttl)?,
        max_sts_ttl: dur("max_sts_ttl", old.max_sts_ttl)?,
        user_path: req
            .str_field("user_path")?
            .unwrap_or_else(|| old.user_path.clone()),
        permissions_boundary_arn: req
            .str_field("permissions_boundary_arn")?
            .unwrap_or_else(|| old.permissions_boundary_arn.clone()),
    };
    let problems = validate(&r);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "error(s) validating supplied role data: {}",
            problems.join("; ")
        )));
    }
    ctx.storage.put_json(&format!("role/{name}"), &r).await?;
    Ok(Response::empty())
}

/// What is wrong with a role (empty: nothing).
pub(super) fn validate(r: &Role) -> Vec<String> {
    let mut e = Vec::new();
    let t = r.credential_type.as_str();
    if t.is_empty() {
        e.push("did not supply credential_type".to_string());
    } else if !CREDENTIAL_TYPES.contains(&t) {
        e.push(format!(
            "unrecognized credential type: {t:?} (one of {})",
            CREDENTIAL_TYPES.join(", ")
        ));
    }
    let sts = matches!(t, ASSUMED_ROLE | FEDERATION_TOKEN | SESSION_TOKEN);
    if t == IAM_USER
        && r.policy_arns.is_empty()
        && r.policy_document.is_empty()
        && r.iam_groups.is_empty()
    {
        e.push(
            "an iam_user role needs at least one of policy_arns, policy_document or iam_groups"
                .into(),
        );
    }
    if t == FEDERATION_TOKEN && r.policy_arns.is_empty() && r.policy_document.is_empty() {
        e.push("a federation_token role needs policy_arns or policy_document".into());
    }
    if t == SESSION_TOKEN
        && !(r.policy_arns.is_empty() && r.policy_document.is_empty() && r.iam_groups.is_empty())
    {
        e.push("session_token credentials take no policies".into());
    }
    if sts && !r.iam_groups.is_empty() {
        e.push("iam_groups is supported only with credential_type iam_user".into());
    }
    if !sts && (r.default_sts_ttl != 0 || r.max_sts_ttl != 0) {
        e.push("default_sts_ttl and max_sts_ttl are valid only for STS credential types".into());
    }
    if r.default_sts_ttl < 0 || r.max_sts_ttl < 0 {
        e.push("STS TTLs cannot be negative".into());
    }
    if r.max_sts_ttl > 0 && r.default_sts_ttl > r.max_sts_ttl {
        e.push(
            "\"default_sts_ttl\" value must be less than or equal to \"max_sts_ttl\" value".into(),
        );
    }
    if !r.user_path.is_empty() {
        if t != IAM_USER {
            e.push("user_path parameter only valid for iam_user credential type".into());
        }
        let inner = r.user_path.get(1..r.user_path.len().saturating_sub(1));
        let ok = r.user_path == "/"
            || (r.user_path.len() <= 512
                && r.user_path.starts_with('/')
                && r.user_path.ends_with('/')
                && inner.is_some_and(|s| s.bytes().all(|b| (0x21..=0x7f).contains(&b))));
        if !ok {
            e.push("user_path must begin and end with / and hold printable ASCII only".into());
        }
    }
    if !r.permissions_boundary_arn.is_empty() {
        if t != IAM_USER {
            e.push(
                "cannot supply permissions_boundary_arn when credential_type isn't iam_user".into(),
            );
        }
        if !is_policy_arn(&r.permissions_boundary_arn) {
            e.push(format!(
                "invalid permissions_boundary_arn parameter: {:?} is not an IAM policy ARN",
                r.permissions_boundary_arn
            ));
        }
    }
    if !r.role_arns.is_empty() && t != ASSUMED_ROLE {
        e.push("cannot supply role_arns when credential_type isn't assumed_role".into());
    }
    for a in &r.policy_arns {
        if !is_policy_arn(a) {
            e.push(format!("{a:?} is not an IAM policy ARN"));
        }
    }
    e
}

/// `arn:<partition>:iam::<account or aws>:policy/<path and name>`.
fn is_policy_arn(a: &str) -> bool {
    let p: Vec<&str> = a.splitn(6, ':').collect();
    matches!(p.as_slice(), ["arn", part, "iam", "", _, res] if !part.is_empty() && res.starts_with("policy/") && res.len() > 7)
}

/// Replaces what IAM names do not allow with `_` (as Vault does).
fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Vault's default IAM user name: `vault-<display>-<role>` (at most 42) `-<unix>-<random>`,
/// at most 64 characters.
pub(super) fn iam_username(display: &str, role: &str, now: i64) -> String {
    let head = truncate(
        &format!("vault-{}-{}", normalize(display), normalize(role)),
        42,
    );
    truncate(
        &format!("{head}-{now}-{}", airlock_logical::util::random_base62(20)),
        64,
    )
}

/// Vault's default federated user name: `vault-<unix>-<random>`, at most 32 characters.
fn sts_username(now: i64) -> String {
    truncate(
        &format!("vault-{now}-{}", airlock_logical::util::random_base62(20)),
        32,
    )
}

/// An AWS failure as the client sees it: AWS refused (400, its code and message), or AWS
/// was not reached or failed (502).
fn aws_error(what: &str, e: &AwsError) -> ApiError {
    let status = if e.status == 0 || e.status >= 500 {
        502
    } else {
        400
    };
    ApiError::new(status, format!("{what}: {e}"))
}

/// What a credential request asks for: from the body, or — on GET, as Vault reads them
/// (Terraform's `ReadWithData` sends `?ttl=…&role_arn=…`) — from the query string.
struct CredParams {
    role_arn: Option<String>,
    ttl: Option<i64>,
    role_session_name: Option<String>,
}

impl CredParams {
    fn from(req: &Request) -> ApiResult<Self> {
        let text = |k: &str| -> ApiResult<Option<String>> {
            let v = match req.str_field(k)? {
                Some(v) => Some(v),
                None if req.op == airlock_logical::Op::Read => req.query(k).map(str::to_string),
                None => None,
            };
            Ok(v.filter(|s| !s.trim().is_empty()))
        };
        let ttl = match req.duration_field("ttl")? {
            Some(t) => Some(t),
            None if req.op == airlock_logical::Op::Read => match req.query("ttl") {
                Some(q) if !q.trim().is_empty() => Some(
                    airlock_core::duration::parse_duration_value(&Value::String(q.to_string()))
                        .map_err(|e| ApiError::bad_request(format!("invalid ttl: {e}")))?
                        as i64,
                ),
                _ => None,
            },
            None => None,
        };
        Ok(CredParams {
            role_arn: text("role_arn")?,
            ttl,
            role_session_name: text("role_session_name")?,
        })
    }
}

/// GET/POST `creds/<role>` and `sts/<role>`.
pub(super) async fn issue(
    ctx: &Ctx,
    role_name: &str,
    req: &Request,
    sts_path: bool,
    lease: LeaseConfig,
) -> ApiResult<Response> {
    let asked = CredParams::from(req)?;
    let role = load_role(ctx, role_name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("Role {role_name:?} not found")))?;
    let root = load_root(ctx).await?;
    if role.credential_type == IAM_USER {
        if sts_path {
            return Err(ApiError::bad_request(
                "iam_user credentials are issued at creds/, not sts/",
            ));
        }
        return iam_user(ctx, &root, role_name, &role, req, lease).await;
    }
    let max = if role.max_sts_ttl > 0 {
        role.max_sts_ttl
    } else {
        ctx.max_lease_ttl()
    };
    let ttl = match asked.ttl {
        Some(t) if t > max => {
            return Err(ApiError::bad_request(format!(
                "requested ttl of {t}s exceeds the maximum of {max}s"
            )))
        }
        Some(t) if t <= 0 => return Err(ApiError::bad_request("ttl must be positive")),
        Some(t) => t,
        None if role.default_sts_ttl > 0 => role.default_sts_ttl.min(max),
        None => DEFAULT_STS_TTL.min(max),
    };
    let duration = ttl.to_string();
    let mut params: Vec<(&str, String)> = vec![("DurationSeconds", duration)];
    let now = ctx.now_unix();
    let (action, what) = match role.credential_type.as_str() {
        ASSUMED_ROLE => {
            let arn = match asked.role_arn {
                Some(a) if role.role_arns.contains(&a) => a,
                Some(a) => {
                    return Err(ApiError::bad_request(format!(
                        "role_arn {a:?} not in allowed role arns for Vault role {role_name:?}"
                    )))
                }
                None => match role.role_arns.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        return Err(ApiError::bad_request(
                            "did not supply a role_arn parameter and unable to determine one",
                        ))
                    }
                },
            };
            let session = match asked.role_session_name {
                Some(s) => truncate(&normalize(&s), 64),
                None => iam_username(ctx.display_name(), role_name, now),
            };
            params.push(("RoleArn", arn));
            params.push(("RoleSessionName", session));
            ("AssumeRole", "Error assuming role")
        }
        FEDERATION_TOKEN => {
            params.push(("Name", sts_username(now)));
            ("GetFederationToken", "Error generating STS keys")
        }
        SESSION_TOKEN => ("GetSessionToken", "Error generating STS keys"),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown credential_type: {other:?}"
            )))
        }
    };
    if role.credential_type != SESSION_TOKEN {
        if !role.policy_document.is_empty() {
            params.push(("Policy", role.policy_document.clone()));
        }
        for (i, a) in role.policy_arns.iter().enumerate() {
            params.push((policy_arn_key(i), a.clone()));
        }
    }
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let xml = client::call(&root.keys(), &root.sts(), action, &borrowed, now)
        .await
        .map_err(|e| aws_error(what, &e))?;
    let field = |tag: &str| client::within(&xml, "Credentials", tag).unwrap_or_default();
    let (access_key, secret_key, token, expiration) = (
        field("AccessKeyId"),
        zeroize::Zeroizing::new(field("SecretAccessKey")),
        zeroize::Zeroizing::new(field("SessionToken")),
        field("Expiration"),
    );
    if access_key.is_empty() || secret_key.is_empty() {
        return Err(ApiError::new(
            502,
            format!("{what}: AWS answered no credentials"),
        ));
    }
    let left = airlock_logical::util::parse_rfc3339_nanos(&expiration)
        .map(|n| (n / 1_000_000_000) as i64 - now)
        .unwrap_or(ttl)
        .max(1);
    let arn = client::within(&xml, "AssumedRoleUser", "Arn")
        .or_else(|| client::within(&xml, "FederatedUser", "Arn"));
    let grant = ctx
        .create_lease(NewLease {
            lease_id: format!(
                "{}/{}",
                req.path.trim_end_matches('/'),
                airlock_logical::util::random_base62(24)
            ),
            path: req.path.trim_end_matches('/').to_string(),
            default_ttl: left as u64,
            max_ttl: left as u64,
            internal: json!({ "is_sts": true, "role": role_name }),
        })
        .await?;
    let mut data = json!({
        "access_key": access_key,
        "secret_key": secret_key.as_str(),
        "security_token": token.as_str(),
        "ttl": grant.ttl,
    });
    if let (Some(a), Some(m)) = (arn, data.as_object_mut()) {
        m.insert("arn".into(), Value::String(a));
    }
    let mut resp = Response::data(data);
    resp.lease_id = grant.lease_id;
    resp.lease_duration = grant.ttl as i64;
    resp.renewable = false;
    Ok(resp)
}

/// `PolicyArns.member.<n>.arn` for the first few n (STS accepts at most 10).
fn policy_arn_key(i: usize) -> &'static str {
    const KEYS: [&str; 10] = [
        "PolicyArns.member.1.arn",
        "PolicyArns.member.2.arn",
        "PolicyArns.member.3.arn",
        "PolicyArns.member.4.arn",
        "PolicyArns.member.5.arn",
        "PolicyArns.member.6.arn",
        "PolicyArns.member.7.arn",
        "PolicyArns.member.8.arn",
        "PolicyArns.member.9.arn",
        "PolicyArns.member.10.arn",
    ];
    KEYS.get(i).copied().unwrap_or("PolicyArns.member.11.arn")
}

/// An IAM user for the role, under a lease registered first: a crash midway leaves a lease
/// whose revocation removes what was made, never a user nobody will remove.
async fn iam_user(
    ctx: &Ctx,
    root: &RootConfig,
    role_name: &str,
    role: &Role,
    req: &Request,
    lease: LeaseConfig,
) -> ApiResult<Response> {
    let now = ctx.now_unix();
    let username = iam_username(ctx.display_name(), role_name, now);
    let ttls = ctx.clamp_ttls(lease.lease, lease.lease_max);
    let path = req.path.trim_end_matches('/').to_string();
    let grant = ctx
        .create_lease(NewLease {
            lease_id: format!("{path}/{}", airlock_logical::util::random_base62(24)),
            path,
            default_ttl: ttls.default.max(1) as u64,
            max_ttl: ttls.max.max(1) as u64,
            internal: json!({ "username": username, "is_sts": false, "role": role_name }),
        })
        .await?;
    let (access_key, secret_key) = match create_user(root, role_name, role, &username, now).await {
        Ok(k) => k,
        Err(e) => {
            // Whatever was made goes with the lease; if that fails too, the lease stays and
            // its expiry tries again.
            if let Err(r) = ctx.revoke_lease(&grant.lease_id, false).await {
                tracing::warn!(lease = %grant.lease_id, error = ?r.errors, "cleaning up a half-made IAM user failed; the lease will retry");
            }
            return Err(e);
        }
    };
    let mut resp = Response::data(json!({
        "access_key": access_key,
        "secret_key": secret_key.as_str(),
        "security_token": Value::Null,
    }));
    resp.lease_id = grant.lease_id;
    resp.lease_duration = grant.ttl as i64;
    resp.renewable = true;
    if let Some(w) = grant.warning {
        resp.warnings.push(w);
    }
    Ok(resp)
}

/// CreateUser (path, permissions boundary, tags), managed and inline policies, groups, and
/// an access key.
async fn create_user(
    root: &RootConfig,
    role_name: &str,
    role: &Role,
    username: &str,
    now: i64,
) -> ApiResult<(String, zeroize::Zeroizing<String>)> {
    let keys = root.keys();
    let iam = root.iam();
    let path = if role.user_path.is_empty() {
        "/"
    } else {
        role.user_path.as_str()
    };
    let mut params: Vec<(String, String)> = vec![
        ("UserName".into(), username.to_string()),
        ("Path".into(), path.to_string()),
    ];
    if !role.permissions_boundary_arn.is_empty() {
        params.push((
            "PermissionsBoundary".into(),
            role.permissions_boundary_arn.clone(),
        ));
    }
    params.extend(tag_params(&role.iam_tags));
    let p: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    client::call(&keys, &iam, "CreateUser", &p, now)
        .await
        .map_err(|e| aws_error("Error creating IAM user", &e))?;
    for arn in &role.policy_arns {
        client::call(
            &keys,
            &iam,
            "AttachUserPolicy",
            &[("UserName", username), ("PolicyArn", arn)],
            now,
        )
        .await
        .map_err(|e| aws_error("Error attaching user policy", &e))?;
    }
    if !role.policy_document.is_empty() {
        client::call(
            &keys,
            &iam,
            "PutUserPolicy",
            &[
                ("UserName", username),
                ("PolicyName", role_name),
                ("PolicyDocument", &role.policy_document),
            ],
            now,
        )
        .await
        .map_err(|e| aws_error("Error putting user policy", &e))?;
    }
    for group in &role.iam_groups {
        client::call(
            &keys,
            &iam,
            "AddUserToGroup",
            &[("UserName", username), ("GroupName", group)],
            now,
        )
        .await
        .map_err(|e| aws_error("Error adding user to group", &e))?;
    }
    let xml = client::call(
        &keys,
        &iam,
        "CreateAccessKey",
        &[("UserName", username)],
        now,
    )
    .await
    .map_err(|e| aws_error("Error creating access keys", &e))?;
    let id = client::need(&xml, "AccessKeyId").map_err(|e| aws_error("CreateAccessKey", &e))?;
    let secret = zeroize::Zeroizing::new(
        client::need(&xml, "SecretAccessKey").map_err(|e| aws_error("CreateAccessKey", &e))?,
    );
    Ok((id, secret))
}

/// Removes the IAM user of a lease entirely: access keys, managed and inline policies,
/// group memberships, the user. A user already gone is success; any other failure is an
/// error, so the lease manager keeps the lease and tries again.
pub(super) async fn revoke(ctx: &Ctx, internal: &Value) -> ApiResult<()> {
    if internal["is_sts"].as_bool().unwrap_or(false) {
        return Ok(());
    }
    let Some(username) = internal["username"].as_str().filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    let root = load_root(ctx).await?;
    remove_user(&root, username, ctx.now_unix())
        .await
        .map_err(|e| ApiError::new(502, format!("failed to remove IAM user {username}: {e}")))
}

async fn remove_user(root: &RootConfig, username: &str, now: i64) -> Result<(), AwsError> {
    let keys = root.keys();
    let iam = root.iam();
    let user = [("UserName", username), ("MaxItems", "1000")];
    let groups = match client::call(&keys, &iam, "ListGroupsForUser", &user, now).await {
        Ok(x) => client::all(&x, "GroupName"),
        Err(e) if e.is("NoSuchEntity") => return Ok(()),
        Err(e) => return Err(e),
    };
    let inline = client::call(&keys, &iam, "ListUserPolicies", &user, now).await?;
    let inline = client::all(&inline, "member");
    let managed = client::call(&keys, &iam, "ListAttachedUserPolicies", &user, now).await?;
    let managed = client::all(&managed, "PolicyArn");
    let access = client::call(&keys, &iam, "ListAccessKeys", &user, now).await?;
    let access = client::all(&access, "AccessKeyId");
    let ok_if_gone = |r: Result<String, AwsError>| match r {
        Err(e) if e.is("NoSuchEntity") => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    };
    for k in &access {
        let p = [("UserName", username), ("AccessKeyId", k.as_str())];
        ok_if_gone(client::call(&keys, &iam, "DeleteAccessKey", &p, now).await)?;
    }
    for arn in &managed {
        let p = [("UserName", username), ("PolicyArn", arn.as_str())];
        ok_if_gone(client::call(&keys, &iam, "DetachUserPolicy", &p, now).await)?;
    }
    for name in &inline {
        let p = [("UserName", username), ("PolicyName", name.as_str())];
        ok_if_gone(client::call(&keys, &iam, "DeleteUserPolicy", &p, now).await)?;
    }
    for g in &groups {
        let p = [("UserName", username), ("GroupName", g.as_str())];
        ok_if_gone(client::call(&keys, &iam, "RemoveUserFromGroup", &p, now).await)?;
    }
    ok_if_gone(client::call(&keys, &iam, "DeleteUser", &[("UserName", username)], now).await)
}

/// Tags as IAM's `Tags.member.N` form expects them, in a stable order.
pub(super) fn tag_params(tags: &BTreeMap<String, String>) -> Vec<(String, String)> {
    tags.iter()
        .enumerate()
        .flat_map(|(i, (k, v))| {
            [
                (format!("Tags.member.{}.Key", i + 1), k.clone()),
                (format!("Tags.member.{}.Value", i + 1), v.clone()),
            ]
        })
        .collect()
}
