//! ACL policies (`sys/policies/acl`, the legacy `sys/policy`), password policies
//! (`sys/policies/password`) and `sys/capabilities*`.

use airlock_logical::util::random_index;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::core::{Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{top, Op, Request, Response};
use crate::policies::load_password_policy;

/// GET `sys/policies/acl/<name>` (`legacy`: `sys/policy/<name>`, which names the text `rules`).
pub(super) async fn read(core: &Core, name: &str, legacy: bool) -> ApiResult<Response> {
    let mut r = core.policies.read(name).await?;
    if legacy {
        if let Some(Value::Object(mut d)) = r.data.take() {
            if let Some(text) = d.remove("policy") {
                d.insert("rules".into(), text);
            }
            r = top(Response::data(Value::Object(d)));
        }
    }
    Ok(r)
}

/// POST/PUT/PATCH `sys/policies/acl/<name>`.
pub(super) async fn write(
    core: &Core,
    req: &Request,
    name: &str,
    legacy: bool,
) -> ApiResult<Response> {
    if req.op == Op::Patch
        && !core
            .policies
            .exists(&crate::policies::normalize_name(name)?)
            .await?
    {
        return Err(ApiError::bad_request("policy not found"));
    }
    let mut warnings = Vec::new();
    let text = match req.str_field("policy")? {
        Some(t) => t,
        None if legacy => match req.str_field("rules")? {
            Some(t) => {
                warnings.push("'rules' is deprecated, please use 'policy' instead".to_string());
                t
            }
            None => String::new(),
        },
        None => String::new(),
    };
    // Vault accepts base64-encoded policy text too.
    let text = decode_maybe_base64(&text);
    core.policies.write(name, &text).await?;
    let mut r = Response::empty();
    r.warnings = warnings;
    Ok(r)
}

/// DELETE `sys/policies/acl/<name>`.
pub(super) async fn delete(core: &Core, name: &str) -> ApiResult<Response> {
    core.policies.delete(name).await?;
    Ok(Response::empty())
}

fn decode_maybe_base64(text: &str) -> String {
    use base64::Engine;
    let t = text.trim();
    if t.is_empty() || t.contains('"') || t.contains('{') || t.contains(' ') || t.contains('\n') {
        return text.to_string();
    }
    match base64::engine::general_purpose::STANDARD.decode(t) {
        Ok(b) => String::from_utf8(b).unwrap_or_else(|_| text.to_string()),
        Err(_) => text.to_string(),
    }
}
pub(super) async fn capabilities(
    core: &Core,
    req: &Request,
    caller: &Caller,
    which: &str,
) -> ApiResult<Response> {
    let mut paths = req.str_list_field("paths")?.unwrap_or_default();
    let single = req.data.get("path").is_some_and(Value::is_string);
    if let Some(p) = req.str_list_field("path")? {
        paths.extend(p);
    }
    if paths.is_empty() {
        return Err(ApiError::bad_request("paths must be supplied"));
    }
    let (acl, root) = match which {
        "capabilities-self" => (Arc::clone(&caller.acl), caller.is_root),
        "capabilities" => {
            let t = req
                .str_field("token")?
                .ok_or_else(|| ApiError::bad_request("missing token"))?;
            let e =
                core.tokens.lookup(&t).await?.ok_or_else(|| {
                    ApiError::bad_request(crate::error::multierror("invalid token"))
                })?;
            let root = e.policies.iter().any(|p| p == "root");
            (core.policies.acl_for(&e.policies).await?, root)
        }
        _ => {
            let a = req
                .str_field("accessor")?
                .ok_or_else(|| ApiError::bad_request("missing accessor"))?;
            let e = core.tokens.by_accessor(&a).await?.ok_or_else(|| {
                ApiError::bad_request(crate::error::multierror("invalid accessor"))
            })?;
            let root = e.policies.iter().any(|p| p == "root");
            (core.policies.acl_for(&e.policies).await?, root)
        }
    };
    let mut out = Map::new();
    let mut last = Value::Null;
    for p in &paths {
        let p = p.trim_start_matches('/');
        let caps: Vec<&str> = if root {
            vec!["root"]
        } else {
            let c = acl.capabilities(p);
            let names = c.names();
            if names.is_empty() {
                vec!["deny"]
            } else {
                names
            }
        };
        last = json!(caps);
        out.insert(p.to_string(), last.clone());
    }
    if paths.len() == 1 && single {
        out.insert("capabilities".into(), last);
    }
    Ok(top(Response::data(Value::Object(out))))
}
/// The name of a password policy, checked.
fn password_policy_name(rest: &str) -> ApiResult<&str> {
    let name = rest.trim_end_matches('/');
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return Err(ApiError::bad_request(format!(
            "invalid policy name {name:?}"
        )));
    }
    Ok(name)
}

/// GET `sys/policies/password/<name>/generate`.
pub(super) async fn password_generate(core: &Core, rest: &str) -> ApiResult<Response> {
    let name = password_policy_name(rest)?;
    let p = load_password_policy(&core.barrier, name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("policy \"{name}\" does not exist")))?;
    let pw = p
        .generate(random_index)
        .ok_or_else(|| ApiError::internal(&"the policy could not be satisfied"))?;
    Ok(Response::data(json!({ "password": pw })))
}

/// LIST `sys/policies/password`.
pub(super) async fn password_list(core: &Core) -> ApiResult<Response> {
    let mut keys = core.barrier.list("sys/password-policy/").await?;
    keys.sort();
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::list(keys))
}

/// GET `sys/policies/password/<name>`.
pub(super) async fn password_read(core: &Core, rest: &str) -> ApiResult<Response> {
    let name = password_policy_name(rest)?;
    match core
        .barrier
        .get_json::<Value>(&format!("sys/password-policy/{name}"))
        .await?
    {
        Some(v) => Ok(Response::data(json!({ "policy": v["policy"] }))),
        None => Err(ApiError::not_found()),
    }
}

/// DELETE `sys/policies/password/<name>`.
pub(super) async fn password_delete(core: &Core, rest: &str) -> ApiResult<Response> {
    let name = password_policy_name(rest)?;
    let key = format!("sys/password-policy/{name}");
    core.barrier.delete(&key).await?;
    Ok(Response::empty())
}

/// POST `sys/policies/password/<name>`.
pub(super) async fn password_write(core: &Core, req: &Request, rest: &str) -> ApiResult<Response> {
    let name = password_policy_name(rest)?;
    let key = format!("sys/password-policy/{name}");
    let text = req
        .str_field("policy")?
        .ok_or_else(|| ApiError::bad_request("missing field 'policy'"))?;
    // Vault also accepts the policy base64-encoded.
    let text = if airlock_core::password_policy::PasswordPolicy::parse(&text).is_err() {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or(text)
    } else {
        text
    };
    let p = airlock_core::password_policy::PasswordPolicy::parse(&text)
        .map_err(ApiError::bad_request)?;
    if p.generate(random_index).is_none() {
        return Err(ApiError::bad_request(
            "unable to generate a password that satisfies the policy",
        ));
    }
    core.barrier
        .put_json(&key, &json!({ "policy": text }))
        .await?;
    Ok(Response::empty())
}
