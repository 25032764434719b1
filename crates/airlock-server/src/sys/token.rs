//! The token method's API (`auth/token/*`): create (with roles and orphans), lookup, renew,
//! revoke in all their forms, accessors and roles, over the [`TokenStore`].

use std::sync::Arc;

use serde_json::{json, Value};

use airlock_logical::framework::{self, PathSpec};

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::token::{
    display_name, sorted_policies, AccessorEntry, CreateParams, TokenEntry, TokenRole,
};
use airlock_logical::util::now_unix;

fn token_param<'a>(req: &'a Request, caller: &'a Caller, key: &str) -> ApiResult<String> {
    match req.str_field(key)? {
        Some(t) if !t.is_empty() => Ok(t),
        _ => {
            let _ = caller;
            Err(ApiError::bad_request(if key == "token" {
                "missing token ID".to_string()
            } else {
                format!("missing {key}")
            }))
        }
    }
}

/// Batch tokens are not stored: they cannot be renewed or revoked.
fn not_batch(e: &TokenEntry, what: &str) -> ApiResult<()> {
    if e.is_batch() {
        return Err(ApiError::bad_request(format!(
            "batch tokens cannot be {what}"
        )));
    }
    Ok(())
}

/// The TTL is the one just granted (as of the creation or renewal), not what is left a
/// moment later: a second boundary crossed meanwhile does not make 900 s read 899.
fn auth_response(e: &TokenEntry, token: &str, warnings: Vec<String>) -> Response {
    let mut r = Response::empty();
    let granted_at = e.last_renewal.unwrap_or(e.creation_time).min(now_unix());
    r.auth = Some(e.auth_block(token, granted_at));
    r.warnings = warnings;
    r
}

async fn handle_create(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    orphan_path: bool,
    role_name: Option<&str>,
) -> ApiResult<Response> {
    let parent = caller
        .entry
        .as_ref()
        .ok_or_else(ApiError::permission_denied)?;
    let role = match role_name {
        Some(n) => Some(
            core.barrier
                .get_json::<TokenRole>(&format!("token/roles/{n}"))
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("unknown role {n}")))?,
        ),
        None => None,
    };
    if parent.is_batch() {
        return Err(ApiError::bad_request(
            "batch tokens cannot create more tokens",
        ));
    }
    let asked = req.str_field("type")?.unwrap_or_default();
    if !matches!(asked.as_str(), "" | "service" | "batch") {
        return Err(ApiError::bad_request("invalid 'token_type' value"));
    }
    // A role of type service or batch decides; a default-* role lets the request choose.
    let batch = match role.as_ref().map(TokenRole::token_type) {
        Some("service") => false,
        Some("batch") => true,
        Some("default-batch") => asked != "service",
        _ => asked == "batch",
    };
    let mut id = req.str_field("id")?;
    if id.is_some() && !caller.is_root {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to specify token id",
        ));
    }
    let no_parent = req.bool_field("no_parent")?.unwrap_or(false);
    if no_parent && !orphan_path && !caller.is_root && !caller.acl.has_sudo(&req.path) {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let orphan = orphan_path || no_parent || role.as_ref().map(|r| r.orphan).unwrap_or(false);
    let no_default = req.bool_field("no_default_policy")?.unwrap_or(false)
        || role
            .as_ref()
            .map(|r| r.token_no_default_policy)
            .unwrap_or(false);
    let requested = req.str_list_field_nosplit("policies")?.map(|ps| {
        ps.into_iter()
            .map(|p| p.trim().to_lowercase())
            .collect::<Vec<_>>()
    });
    let parent_is_root = parent.policies.iter().any(|p| p == "root");
    let mut policies = match (&requested, &role) {
        (Some(p), _) if !p.is_empty() => p.clone(),
        (_, Some(r)) if !r.allowed_policies.is_empty() => r.allowed_policies.clone(),
        _ => parent
            .policies
            .iter()
            .filter(|p| *p != "default" || !no_default)
            .cloned()
            .collect(),
    };
    policies = sorted_policies(policies);
    if let Some(r) = &role {
        let mut with_default = policies.clone();
        if !no_default {
            with_default.push("default".into());
        }
        let with_default = sorted_policies(with_default);
        for p in &with_default {
            if r.disallowed_policies.contains(p) {
                return Err(ApiError::bad_request(format!(
                    "token policies ({}) contains disallowed policies ({})",
                    go_quoted_list(&with_default),
                    go_quoted_list(&r.disallowed_policies)
                )));
            }
        }
        let mut allowed = r.allowed_policies.clone();
        allowed.push("default".into());
        let allowed = sorted_policies(allowed);
        if !r.allowed_policies.is_empty() && with_default.iter().any(|p| !allowed.contains(p)) {
            return Err(ApiError::bad_request(format!(
                "token policies ({}) must be subset of the role's allowed policies ({}) or glob policies ([])",
                go_quoted_list(&with_default),
                go_quoted_list(&allowed)
            )));
        }
    } else if !parent_is_root && !caller.acl.has_sudo(&req.path) {
        for p in &policies {
            if p != "default" && !parent.policies.contains(p) {
                return Err(ApiError::bad_request(
                    "child policies must be subset of parent",
                ));
            }
        }
    }
    if policies.iter().any(|p| p == "root") && !parent_is_root {
        return Err(ApiError::bad_request(
            "root tokens may not be created from non-root tokens",
        ));
    }
    if !no_default && !policies.iter().any(|p| p == "root" || p == "default") {
        policies.push("default".into());
        policies = sorted_policies(policies);
    }
    if policies.is_empty() {
        return Err(ApiError::bad_request("token must have at least one policy"));
    }
    let num_uses = req.int_field("num_uses")?.unwrap_or(0);
    if num_uses < 0 {
        return Err(ApiError::bad_request("number of uses cannot be negative"));
    }
    let ttl = match req.duration_field("ttl")? {
        Some(t) => Some(t),
        None => req.duration_field("lease")?,
    };
    let explicit = req.duration_field("explicit_max_ttl")?;
    let mut role_max_ttl = 0;
    let mut period = req.duration_field("period")?.unwrap_or(0);
    let mut renewable = req.bool_field("renewable")?.unwrap_or(true);
    let mut period_from_role = false;
    if let Some(r) = &role {
        if r.period > 0 {
            period = r.period;
            period_from_role = true;
        }
        role_max_ttl = r.explicit_max_ttl;
        if !r.renewable {
            renewable = false;
        }
    }
    if period > 0 && !caller.is_root && role.is_none() && !caller.acl.has_sudo(&req.path) {
        return Err(ApiError::bad_request(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let meta = req.kv_pairs_field("meta")?.unwrap_or_default();
    let path = match (role_name, &role) {
        (Some(n), Some(r)) if !r.path_suffix.is_empty() => {
            format!("auth/token/create/{n}/{}", r.path_suffix)
        }
        (Some(n), _) => format!("auth/token/create/{n}"),
        (None, _) => req.path.clone(),
    };
    // Vault warns about (but accepts) policies that do not exist.
    let mut warnings = Vec::new();
    for p in &policies {
        if p != "default" && p != "root" && !core.policies.exists(p).await? {
            warnings.push(format!("Policy \"{p}\" does not exist"));
        }
    }
    if batch {
        for (k, set) in [
            ("num_uses", num_uses > 0),
            ("period", period > 0),
            ("explicit_max_ttl", explicit.is_some_and(|x| x > 0)),
        ] {
            if set {
                return Err(ApiError::bad_request(format!(
                    "batch tokens cannot have \"{k}\" set"
                )));
            }
        }
        if policies.iter().any(|p| p == "root") {
            return Err(ApiError::bad_request("batch tokens cannot be root tokens"));
        }
        if id.take().is_some() {
            warnings.push("Supplying a custom ID for the token uses the weaker SHA1 hashing instead of the more secure SHA2-256 HMAC for token obfuscation. SHA1 hashed tokens on the wire leads to less secure lookups.".into());
        }
    }
    let params = CreateParams {
        id,
        policies,
        meta,
        display_name: display_name(req.str_field("display_name")?.as_deref(), "token"),
        num_uses: num_uses.max(role.as_ref().map(|r| r.token_num_uses).unwrap_or(0)),
        ttl,
        explicit_max_ttl: explicit,
        period,
        renewable,
        path,
        role: role_name.map(str::to_string),
        period_from_role,
        role_max_ttl,
        ..Default::default()
    };
    let parent = if orphan { None } else { Some(parent) };
    if batch {
        let (token, entry) = core.tokens.create_batch(params, parent)?;
        return Ok(auth_response(&entry, &token, warnings));
    }
    let (token, entry, cap_warnings) = core.tokens.create(params, parent).await?;
    warnings.extend(cap_warnings);
    Ok(auth_response(&entry, &token, warnings))
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", inner.join(" "))
}

fn role_json(r: &TokenRole) -> Value {
    json!({
        "allowed_entity_aliases": null,
        "allowed_policies": r.allowed_policies,
        "allowed_policies_glob": [],
        "disallowed_policies": r.disallowed_policies,
        "disallowed_policies_glob": [],
        "explicit_max_ttl": r.legacy_explicit_max_ttl,
        "name": r.name,
        "orphan": r.orphan,
        "path_suffix": r.path_suffix,
        "period": r.legacy_period,
        "renewable": r.renewable,
        "token_explicit_max_ttl": r.explicit_max_ttl,
        "token_no_default_policy": r.token_no_default_policy,
        "token_period": r.period,
        "token_type": r.token_type(),
    })
}

async fn write_role(core: &Core, req: &Request, name: &str) -> ApiResult<Response> {
    let key = format!("token/roles/{name}");
    let g = core.root.lock(&key).await?;
    let mut r = core
        .barrier
        .get_json::<TokenRole>(&key)
        .await?
        .unwrap_or(TokenRole {
            name: name.to_string(),
            renewable: true,
            ..Default::default()
        });
    if let Some(v) = req.str_list_field("allowed_policies")? {
        r.allowed_policies = sorted_policies(v);
    }
    if let Some(v) = req.str_list_field("disallowed_policies")? {
        r.disallowed_policies = sorted_policies(v);
    }
    if let Some(v) = req.bool_field("orphan")? {
        r.orphan = v;
    }
    if let Some(v) = req.bool_field("renewable")? {
        r.renewable = v;
    }
    if let Some(v) = req.duration_field("token_period")? {
        r.period = v;
    } else if let Some(v) = req.duration_field("period")? {
        r.period = v;
        r.legacy_period = v;
    }
    if let Some(v) = req.duration_field("token_explicit_max_ttl")? {
        r.explicit_max_ttl = v;
    } else if let Some(v) = req.duration_field("explicit_max_ttl")? {
        r.explicit_max_ttl = v;
        r.legacy_explicit_max_ttl = v;
    }
    if let Some(v) = req.str_field("path_suffix")? {
        if v.contains("..") {
            return Err(ApiError::bad_request("path_suffix cannot contain '..'"));
        }
        r.path_suffix = v;
    }
    if let Some(v) = req.bool_field("token_no_default_policy")? {
        r.token_no_default_policy = v;
    }
    if let Some(v) = req.int_field("token_num_uses")? {
        r.token_num_uses = v.max(0);
    }
    if let Some(v) = req.str_field("token_type")? {
        if !matches!(
            v.as_str(),
            "default-service" | "default-batch" | "service" | "batch"
        ) {
            return Err(ApiError::bad_request(format!(
                "invalid 'token_type' value \"{}\"",
                v.chars().take(32).collect::<String>()
            )));
        }
        r.token_type = v;
    }
    if r.token_type() == "batch" {
        let why = if !r.orphan {
            Some("generate non-orphan tokens")
        } else if r.renewable {
            Some("generate renewable tokens")
        } else if r.period > 0 {
            Some("generate periodic tokens")
        } else if r.explicit_max_ttl > 0 {
            Some("generate tokens with an explicit max TTL")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ApiError::bad_request(format!(
                "'token_type' cannot be 'batch' when role is set to {why}"
            )));
        }
    }
    g.put_json(&key, &r).await?;
    Ok(Response::empty())
}

fn valid_role_name(n: &str) -> ApiResult<()> {
    if n.is_empty()
        || n.len() > 128
        || n.contains('/')
        || n.contains("..")
        || n.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request("invalid role name"));
    }
    Ok(())
}

/// Routes `auth/token/<rest>`.
/// The token method's paths.
#[derive(Clone, Copy)]
enum T {
    Create,
    CreateOrphan,
    CreateWithRole,
    LookupSelf,
    Lookup,
    LookupAccessor,
    RenewSelf,
    Renew,
    RenewAccessor,
    RevokeSelf,
    Revoke,
    RevokeAccessor,
    RevokeOrphan,
    Accessors,
    Roles,
    RoleRead,
    RoleWrite,
    RoleDelete,
    Tidy,
}

static PATHS: &[PathSpec<T>] = &[
    PathSpec::new("create", &[(Op::Update, T::Create)]),
    PathSpec::new("create-orphan", &[(Op::Update, T::CreateOrphan)]),
    PathSpec::new("create/{role+}", &[(Op::Update, T::CreateWithRole)]),
    PathSpec::new(
        "lookup-self",
        &[(Op::Read, T::LookupSelf), (Op::Update, T::LookupSelf)],
    ),
    PathSpec::new("lookup", &[(Op::Read, T::Lookup), (Op::Update, T::Lookup)]),
    PathSpec::new("lookup-accessor", &[(Op::Update, T::LookupAccessor)]),
    PathSpec::new("renew-self", &[(Op::Update, T::RenewSelf)]),
    PathSpec::new("renew", &[(Op::Update, T::Renew)]),
    PathSpec::new("renew-accessor", &[(Op::Update, T::RenewAccessor)]),
    PathSpec::new("revoke-self", &[(Op::Update, T::RevokeSelf)]),
    PathSpec::new("revoke", &[(Op::Update, T::Revoke)]),
    PathSpec::new("revoke-accessor", &[(Op::Update, T::RevokeAccessor)]),
    PathSpec::new("revoke-orphan", &[(Op::Update, T::RevokeOrphan)]),
    PathSpec::new("accessors/?", &[(Op::List, T::Accessors)]),
    PathSpec::new("roles/?", &[(Op::List, T::Roles)]),
    PathSpec::new(
        "roles/{name+}",
        &[
            (Op::Read, T::RoleRead),
            (Op::Update, T::RoleWrite),
            (Op::Delete, T::RoleDelete),
        ],
    ),
    PathSpec::new("tidy", &[(Op::Update, T::Tidy)]),
];

pub async fn handle(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    rest: &str,
) -> ApiResult<Response> {
    let store = &core.tokens;
    let now = now_unix();
    let Some((_, h, caps)) = framework::route(PATHS, rest, req.op)? else {
        return Err(ApiError::unsupported_path());
    };
    let cap = |k: &str| framework::cap(&caps, k);
    match h {
        T::Create => handle_create(core, req, caller, false, None).await,
        T::CreateOrphan => handle_create(core, req, caller, true, None).await,
        T::CreateWithRole => {
            let name = cap("role");
            valid_role_name(name)?;
            handle_create(core, req, caller, false, Some(name)).await
        }
        T::LookupSelf => {
            let e = caller
                .entry
                .as_ref()
                .ok_or_else(ApiError::permission_denied)?;
            let tok = req.token.as_ref().map(|t| t.as_str()).unwrap_or_default();
            Ok(Response::data(e.lookup_data(tok, now)))
        }
        T::Lookup => {
            // Without a token, lookup describes the caller (as lookup-self).
            let t = match req.str_field("token")? {
                Some(t) if !t.is_empty() => t,
                _ => req
                    .token
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            };
            match store.lookup(&t).await? {
                Some(e) => Ok(Response::data(e.lookup_data(&t, now))),
                None => Err(ApiError::new(403, "bad token")),
            }
        }
        T::LookupAccessor => {
            let a = token_param(req, caller, "accessor")?;
            match store.by_accessor(&a).await? {
                Some(e) => Ok(Response::data(e.lookup_data("", now))),
                None => Err(ApiError::bad_request(crate::error::multierror(
                    "invalid accessor",
                ))),
            }
        }
        T::RenewSelf => {
            let e = caller
                .entry
                .as_ref()
                .ok_or_else(ApiError::permission_denied)?;
            not_batch(e, "renewed")?;
            let tok = req
                .token
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default();
            let (e, w) = store
                .renew(&e.id_hash, req.duration_field("increment")?)
                .await?;
            Ok(auth_response(&e, &tok, w))
        }
        T::Renew => {
            let t = token_param(req, caller, "token")?;
            let e = store
                .lookup(&t)
                .await?
                .ok_or_else(|| ApiError::bad_request("token not found"))?;
            not_batch(&e, "renewed")?;
            let (e, w) = store
                .renew(&e.id_hash, req.duration_field("increment")?)
                .await?;
            Ok(auth_response(&e, &t, w))
        }
        T::RenewAccessor => {
            let a = token_param(req, caller, "accessor")?;
            let e = store
                .by_accessor(&a)
                .await?
                .ok_or_else(|| ApiError::bad_request("invalid accessor"))?;
            let (e, w) = store
                .renew(&e.id_hash, req.duration_field("increment")?)
                .await?;
            Ok(auth_response(&e, "", w))
        }
        T::RevokeSelf => {
            let e = caller
                .entry
                .as_ref()
                .ok_or_else(ApiError::permission_denied)?;
            not_batch(e, "revoked")?;
            store.revoke_tree(&e.id_hash).await?;
            Ok(Response::empty())
        }
        T::Revoke => {
            let t = token_param(req, caller, "token")?;
            if let Some(e) = store.lookup(&t).await? {
                not_batch(&e, "revoked")?;
                store.revoke_tree(&e.id_hash).await?;
            }
            Ok(Response::empty())
        }
        T::RevokeAccessor => {
            let a = token_param(req, caller, "accessor")?;
            match store.by_accessor(&a).await? {
                Some(e) => {
                    store.revoke_tree(&e.id_hash).await?;
                    Ok(Response::empty())
                }
                None => {
                    let mut r = Response::empty();
                    r.warnings.push("No token found with this accessor".into());
                    Ok(r)
                }
            }
        }
        T::RevokeOrphan => {
            let t = token_param(req, caller, "token")?;
            if let Some(e) = store.lookup(&t).await? {
                not_batch(&e, "revoked")?;
                store.revoke_orphan(&e.id_hash).await?;
            }
            Ok(Response::empty())
        }
        T::Accessors => {
            let mut keys = Vec::new();
            for k in core.barrier.list("token/accessor/").await? {
                if let Some(a) = core
                    .barrier
                    .get_json::<AccessorEntry>(&format!("token/accessor/{k}"))
                    .await?
                {
                    keys.push(a.accessor);
                }
            }
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(Response::list(keys))
        }
        T::Roles => {
            let keys = core.barrier.list("token/roles/").await?;
            if keys.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(Response::list(keys))
        }
        T::Tidy => {
            let n = store.purge_expired(now).await?;
            let mut r = Response::empty();
            r.warnings.push(format!("tidy removed {n} expired tokens"));
            Ok(r)
        }
        T::RoleRead => {
            let name = cap("name");
            valid_role_name(name)?;
            match core
                .barrier
                .get_json::<TokenRole>(&format!("token/roles/{name}"))
                .await?
            {
                Some(role) => Ok(Response::data(role_json(&role))),
                None => Err(ApiError::not_found()),
            }
        }
        T::RoleWrite => {
            let name = cap("name");
            valid_role_name(name)?;
            write_role(core, req, name).await
        }
        T::RoleDelete => {
            let name = cap("name");
            valid_role_name(name)?;
            core.barrier.delete(&format!("token/roles/{name}")).await?;
            Ok(Response::empty())
        }
    }
}
