//! Kubernetes auth: pods (and External Secrets Operator) log in with their service-account
//! JWT. The token's namespace and name must be bound by the role; the token itself is then
//! proven either by the cluster — a `TokenReview` (`authentication.k8s.io/v1`) sent to the
//! configured API server — or, when configured (`pem_keys`, or a role with
//! `token_review_mode = "jwks"` and a cluster `oidc_discovery_url`/`jwks_url`), by its
//! signature against the cluster's keys, with expiry, issuer and audience checks.
//!
//! Storage in the mount's view: `config` → [`Config`], `role/<name>` → [`Role`].

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_core::jwt as cj;
use airlock_logical::auth::{check_name, LoginOutcome, TokenSettings, TOKEN_FIELDS};
use airlock_logical::{ApiError, ApiResult, Ctx, Engine, Field, Op, PathSpec, Request, Response};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::jwt::{Cache, KeySource};
use super::{list_names, logged_in};

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub kubernetes_host: String,
    pub kubernetes_ca_cert: String,
    /// Never returned by a read.
    pub token_reviewer_jwt: String,
    pub pem_keys: Vec<String>,
    pub issuer: String,
    pub disable_iss_validation: bool,
    pub disable_local_ca_jwt: bool,
    /// The cluster's service-account issuer discovery URL or JWKS URL, for roles that verify
    /// signatures locally.
    pub oidc_discovery_url: String,
    pub jwks_url: String,
    pub jwks_ca_pem: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("kubernetes_host", &self.kubernetes_host)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Role {
    pub bound_service_account_names: Vec<String>,
    pub bound_service_account_namespaces: Vec<String>,
    pub audience: String,
    pub alias_name_source: String,
    /// `token_review` (default) or `jwks`.
    pub token_review_mode: String,
    #[serde(flatten)]
    pub token: TokenSettings,
}

fn role_json(r: &Role) -> Value {
    let mut m = Map::new();
    m.insert("alias_name_source".into(), json!(r.alias_name_source));
    m.insert(
        "bound_service_account_names".into(),
        json!(r.bound_service_account_names),
    );
    m.insert("bound_service_account_namespace_selector".into(), json!(""));
    m.insert(
        "bound_service_account_namespaces".into(),
        json!(r.bound_service_account_namespaces),
    );
    if !r.audience.is_empty() {
        m.insert("audience".into(), json!(r.audience));
    }
    if r.token_review_mode == "jwks" {
        m.insert("token_review_mode".into(), json!("jwks"));
    }
    r.token.write_json(&mut m);
    Value::Object(m)
}

/// `*` alone allows any; otherwise exact, or a glob with `*`.
fn bound(list: &[String], v: &str) -> bool {
    list.iter()
        .any(|p| p == "*" || p == v || (p.contains('*') && cj::glob_match(p, v)))
}

/// The Kubernetes auth method; its key sources (JWKS mode) are cached with it.
#[derive(Default)]
pub struct Kubernetes {
    cache: Cache,
}

#[derive(Clone, Copy)]
pub enum H {
    Login,
    ConfigRead,
    ConfigWrite,
    RoleList,
    RoleRead,
    RoleWrite,
    RoleDelete,
}

const CONFIG_FIELDS: &[Field] = &[
    Field::str("kubernetes_host"),
    Field::str("kubernetes_ca_cert"),
    Field::str("token_reviewer_jwt").sensitive(),
    Field::list("pem_keys"),
    Field::str("issuer"),
    Field::bool("disable_iss_validation"),
    Field::bool("disable_local_ca_jwt"),
    Field::str("oidc_discovery_url"),
    Field::str("jwks_url"),
    Field::str("jwks_ca_pem"),
];
const ROLE_FIELDS: &[Field] = &[
    Field::list("bound_service_account_names"),
    Field::list("bound_service_account_namespaces"),
    Field::str("audience"),
    Field::str("alias_name_source"),
    Field::str("bound_service_account_namespace_selector"),
    Field::str("token_review_mode"),
];
const LOGIN_FIELDS: &[Field] = &[Field::str("role"), Field::str("jwt").sensitive()];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("login", &[(Op::Update, H::Login)])
        .fields(&[LOGIN_FIELDS])
        .login()
        .help("Logs in with a service-account token.", ""),
    PathSpec::new(
        "config/?",
        &[(Op::Read, H::ConfigRead), (Op::Update, H::ConfigWrite)],
    )
    .fields(&[CONFIG_FIELDS])
    .help(
        "The cluster: API server for TokenReview, or keys to verify tokens locally.",
        "",
    ),
    PathSpec::new(
        "role/?",
        &[(Op::List, H::RoleList), (Op::Read, H::RoleList)],
    )
    .help("The roles of this mount.", ""),
    PathSpec::new(
        "role/{name}/?",
        &[
            (Op::Read, H::RoleRead),
            (Op::Update, H::RoleWrite),
            (Op::Delete, H::RoleDelete),
        ],
    )
    .fields(&[ROLE_FIELDS, TOKEN_FIELDS])
    .existence()
    .help("A role: the service accounts and namespaces it admits.", ""),
];

#[async_trait]
impl Engine for Kubernetes {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    async fn exists(&self, ctx: &Ctx, _h: H, req: &Request) -> ApiResult<Option<bool>> {
        super::item_exists(ctx, "role", req.cap("name")).await
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        let name = req.cap("name");
        match h {
            H::Login => login(self, ctx, req).await,
            H::ConfigRead => config_read(self, ctx).await,
            H::ConfigWrite => config_write(self, ctx, req).await,
            H::RoleList => list_names(ctx, "role/").await,
            H::RoleRead => super::read_role(ctx, name, role_json).await,
            H::RoleWrite => role_write(ctx, name, req).await,
            H::RoleDelete => super::delete_role(ctx, name).await,
        }
    }

    async fn cleanup(&self, ctx: &Ctx) -> ApiResult<()> {
        self.cache.forget(&ctx.mount.uuid);
        Ok(())
    }

    /// The configuration changed on another node: keys and discovery are fetched again.
    async fn invalidate(&self, ctx: &Ctx, rel: &str) {
        if rel.is_empty() || rel == "config" {
            self.cache.forget(&ctx.mount.uuid);
        }
    }
}

async fn load_config(_eng: &Kubernetes, ctx: &Ctx) -> ApiResult<Option<Config>> {
    ctx.storage.get_json("config").await
}

async fn config_read(eng: &Kubernetes, ctx: &Ctx) -> ApiResult<Response> {
    match load_config(eng, ctx).await? {
        Some(c) => {
            let mut d = json!({
                "disable_iss_validation": c.disable_iss_validation,
                "disable_local_ca_jwt": c.disable_local_ca_jwt,
                "issuer": c.issuer,
                "kubernetes_ca_cert": c.kubernetes_ca_cert,
                "kubernetes_host": c.kubernetes_host,
                "pem_keys": c.pem_keys,
                "token_reviewer_jwt_set": !c.token_reviewer_jwt.is_empty(),
            });
            // Airlock's own settings, shown only when used.
            for (k, v) in [
                ("oidc_discovery_url", &c.oidc_discovery_url),
                ("jwks_url", &c.jwks_url),
            ] {
                if !v.is_empty() {
                    d[k] = json!(v);
                }
            }
            Ok(Response::data(d))
        }
        None => Err(ApiError::not_found()),
    }
}

async fn config_write(eng: &Kubernetes, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let g = ctx.storage.lock("config").await?;
    let mut c = load_config(eng, ctx).await?.unwrap_or(Config {
        disable_iss_validation: true,
        ..Default::default()
    });
    let old_host = c.kubernetes_host.clone();
    for (k, t) in [
        ("kubernetes_host", &mut c.kubernetes_host),
        ("kubernetes_ca_cert", &mut c.kubernetes_ca_cert),
        ("token_reviewer_jwt", &mut c.token_reviewer_jwt),
        ("issuer", &mut c.issuer),
        ("oidc_discovery_url", &mut c.oidc_discovery_url),
        ("jwks_url", &mut c.jwks_url),
        ("jwks_ca_pem", &mut c.jwks_ca_pem),
    ] {
        if let Some(v) = req.str_field(k)? {
            // PEM text is kept as given; URLs and tokens are trimmed.
            *t = if k.ends_with("_cert") || k.ends_with("_pem") {
                v
            } else {
                v.trim().to_string()
            };
        }
    }
    if let Some(p) = req.str_list_field_nosplit("pem_keys")? {
        c.pem_keys = p;
    }
    // The reviewer credential belongs to the API server it was given for: pointing
    // the config elsewhere without giving a new one drops it.
    if c.kubernetes_host != old_host
        && !old_host.is_empty()
        && req.str_field("token_reviewer_jwt")?.is_none()
    {
        c.token_reviewer_jwt.clear();
    }
    if let Some(b) = req.bool_field("disable_iss_validation")? {
        c.disable_iss_validation = b;
    }
    if let Some(b) = req.bool_field("disable_local_ca_jwt")? {
        c.disable_local_ca_jwt = b;
    }
    if c.kubernetes_host.is_empty() {
        return Err(ApiError::bad_request("no host provided"));
    }
    crate::http_client::parse_url(&c.kubernetes_host).map_err(ApiError::bad_request)?;
    if !c.kubernetes_ca_cert.is_empty() {
        crate::http_client::tls_config(&c.kubernetes_ca_cert)
            .map_err(|e| ApiError::bad_request(format!("kubernetes_ca_cert: {e}")))?;
    }
    for p in &c.pem_keys {
        super::keys::PublicKey::from_pem(p)
            .map_err(|e| ApiError::bad_request(format!("pem_keys: {e}")))?;
    }
    for u in [&c.oidc_discovery_url, &c.jwks_url] {
        if !u.is_empty() {
            crate::http_client::parse_url(u).map_err(ApiError::bad_request)?;
        }
    }
    g.put_json("config", &c).await?;
    eng.cache.forget_source(&ctx.mount.uuid);
    Ok(Response::empty())
}

async fn role_write(ctx: &Ctx, raw: &str, req: &Request) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    let k = format!("role/{name}");
    let g = ctx.storage.lock(&k).await?;
    let mut r: Role = ctx.storage.get_json(&k).await?.unwrap_or_default();
    if let Some(v) = req.str_list_field("bound_service_account_names")? {
        r.bound_service_account_names = v;
    }
    if let Some(v) = req.str_list_field("bound_service_account_namespaces")? {
        r.bound_service_account_namespaces = v;
    }
    if req
        .str_field("bound_service_account_namespace_selector")?
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false)
    {
        return Err(ApiError::bad_request(
            "bound_service_account_namespace_selector is not supported by Airlock; list the namespaces",
        ));
    }
    if let Some(v) = req.str_field("audience")? {
        r.audience = v;
    }
    if let Some(v) = req.str_field("alias_name_source")? {
        if v != "serviceaccount_uid" && v != "serviceaccount_name" {
            return Err(ApiError::bad_request(
                "invalid alias_name_source, must be one of: serviceaccount_uid, serviceaccount_name",
            ));
        }
        r.alias_name_source = v;
    }
    if r.alias_name_source.is_empty() {
        r.alias_name_source = "serviceaccount_uid".into();
    }
    if let Some(v) = req.str_field("token_review_mode")? {
        if v != "token_review" && v != "jwks" {
            return Err(ApiError::bad_request(
                "token_review_mode must be \"token_review\" or \"jwks\"",
            ));
        }
        r.token_review_mode = v;
    }
    r.token.update(req)?;
    if r.bound_service_account_names.is_empty() {
        return Err(ApiError::bad_request(
            "\"bound_service_account_names\" can not be empty",
        ));
    }
    if r.bound_service_account_namespaces.is_empty() {
        return Err(ApiError::bad_request(
            "\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set",
        ));
    }
    if r.bound_service_account_names.iter().any(|n| n == "*")
        && r.bound_service_account_namespaces.iter().any(|n| n == "*")
    {
        return Err(ApiError::bad_request(
            "service_account_names and service_account_namespaces can not both be \"*\"",
        ));
    }
    g.put_json(&k, &r).await?;
    Ok(Response::empty())
}

/// The service account a token claims to be (read before it is verified).
struct Claimed {
    namespace: String,
    name: String,
    uid: String,
    secret_name: String,
}

fn claimed(claims: &Map<String, Value>) -> Option<Claimed> {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    if let Some(k) = claims.get("kubernetes.io") {
        return Some(Claimed {
            namespace: s(k.get("namespace"))?,
            name: s(k.pointer("/serviceaccount/name"))?,
            uid: s(k.pointer("/serviceaccount/uid")).unwrap_or_default(),
            secret_name: String::new(),
        });
    }
    Some(Claimed {
        namespace: s(claims.get("kubernetes.io/serviceaccount/namespace"))?,
        name: s(claims.get("kubernetes.io/serviceaccount/service-account.name"))?,
        uid: s(claims.get("kubernetes.io/serviceaccount/service-account.uid")).unwrap_or_default(),
        secret_name: s(claims.get("kubernetes.io/serviceaccount/secret.name")).unwrap_or_default(),
    })
}

fn denied(msg: &str) -> ApiError {
    ApiError::new(403, msg)
}

async fn login(eng: &Kubernetes, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let role_name = req
        .str_field("role")?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing role"))?
        .to_lowercase();
    let jwt = zeroize::Zeroizing::new(
        req.str_field("jwt")?
            .filter(|j| !j.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing jwt"))?,
    );
    let role: Role = super::login_role(ctx, &role_name)
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("invalid role name \"{role_name}\"")))?;
    let config = load_config(eng, ctx)
        .await?
        .ok_or_else(|| ApiError::bad_request("could not load backend configuration"))?;
    let unverified = cj::Jws::parse(&jwt).map_err(|_| denied("permission denied"))?;
    let sa = claimed(&unverified.claims).ok_or_else(|| denied("permission denied"))?;
    if !bound(&role.bound_service_account_names, &sa.name) {
        return Err(denied("service account name not authorized"));
    }
    if !bound(&role.bound_service_account_namespaces, &sa.namespace) {
        return Err(denied("namespace not authorized"));
    }
    let local = !config.pem_keys.is_empty() || role.token_review_mode == "jwks";
    let uid = if local {
        verify_locally(eng, ctx, &config, &role, &jwt).await?;
        sa.uid.clone()
    } else {
        token_review(&config, &role, &jwt, &unverified.claims, &sa).await?
    };
    let cidrs = airlock_core::cidr::parse_list(&role.token.token_bound_cidrs)
        .map_err(|e| ApiError::internal(&e))?;
    if !airlock_core::cidr::allows(&cidrs, req.remote.map(|r| r.ip())) {
        return Err(ApiError::permission_denied());
    }
    let alias = if role.alias_name_source == "serviceaccount_name" {
        format!("{}/{}", sa.namespace, sa.name)
    } else {
        uid.clone()
    };
    let meta = BTreeMap::from([
        ("role".to_string(), role_name),
        ("service_account_name".to_string(), sa.name.clone()),
        (
            "service_account_namespace".to_string(),
            sa.namespace.clone(),
        ),
        (
            "service_account_secret_name".to_string(),
            sa.secret_name.clone(),
        ),
        ("service_account_uid".to_string(), uid),
    ]);
    Ok(logged_in(LoginOutcome {
        settings: role.token.clone(),
        meta,
        display_name: format!("{}-{}", sa.namespace, sa.name),
        alias,
        extra_policies: Vec::new(),
    }))
}

async fn verify_locally(
    eng: &Kubernetes,
    ctx: &Ctx,
    c: &Config,
    role: &Role,
    jwt: &str,
) -> ApiResult<()> {
    if c.pem_keys.is_empty() && c.oidc_discovery_url.is_empty() && c.jwks_url.is_empty() {
        return Err(ApiError::bad_request(
            "the role verifies tokens with the cluster's keys, but the config sets neither pem_keys, oidc_discovery_url nor jwks_url",
        ));
    }
    let gen = eng.cache.source_generation();
    let src = match eng.cache.source(&ctx.mount.uuid) {
        Some(s) => s,
        None => {
            let (disc, jwks) = if c.pem_keys.is_empty() {
                (c.oidc_discovery_url.as_str(), c.jwks_url.as_str())
            } else {
                ("", "")
            };
            let s = Arc::new(
                KeySource::new(disc, jwks, &c.jwks_ca_pem, &c.pem_keys)
                    .map_err(ApiError::bad_request)?,
            );
            eng.cache.put_source(&ctx.mount.uuid, Arc::clone(&s), gen);
            s
        }
    };
    let jws = src
        .verify(jwt)
        .await
        .map_err(|_| denied("permission denied"))?;
    let auds = if role.audience.is_empty() {
        Vec::new()
    } else {
        vec![role.audience.clone()]
    };
    let issuer = (!c.disable_iss_validation && !c.issuer.is_empty()).then_some(c.issuer.as_str());
    cj::validate_standard(
        &jws.claims,
        &cj::Expected {
            now: ctx.now_unix(),
            issuer,
            audiences: &auds,
            subject: None,
            clock_skew_leeway: 60,
            expiration_leeway: 0,
            not_before_leeway: 0,
            // Legacy secret-based tokens never expire.
            require_exp: false,
        },
    )
    .map_err(|e| denied(&format!("permission denied: {e}")))?;
    Ok(())
}

/// The pod's own service-account token and the cluster CA, when Airlock runs in a pod.
async fn local_sa_files() -> Option<(String, String)> {
    const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let token = tokio::fs::read_to_string(format!("{DIR}/token"))
        .await
        .ok()?;
    let ca = tokio::fs::read_to_string(format!("{DIR}/ca.crt"))
        .await
        .unwrap_or_default();
    Some((token.trim().to_string(), ca))
}

/// Asks the API server whether the token is valid; returns the service account's uid.
async fn token_review(
    c: &Config,
    role: &Role,
    jwt: &str,
    claims: &Map<String, Value>,
    sa: &Claimed,
) -> ApiResult<String> {
    let audiences: Vec<String> = if !role.audience.is_empty() {
        vec![role.audience.clone()]
    } else {
        match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut spec = json!({ "token": jwt });
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "metadata": {},
        "spec": spec,
        "status": {"user": {}},
    });
    let url = format!(
        "{}/apis/authentication.k8s.io/v1/tokenreviews",
        c.kubernetes_host.trim_end_matches('/')
    );
    // Running inside a cluster (and not told otherwise), Airlock's own service account
    // reviews tokens and the cluster CA is the mounted one, as Vault does.
    // The pod's own token is only ever sent to a server verified with the pod's cluster CA.
    let local = if !c.disable_local_ca_jwt && c.kubernetes_ca_cert.is_empty() {
        local_sa_files().await.filter(|(_, ca)| !ca.is_empty())
    } else {
        None
    };
    let bearer = if !c.token_reviewer_jwt.is_empty() {
        c.token_reviewer_jwt.clone()
    } else if let Some((tok, _)) = local.as_ref().filter(|(t, _)| !t.is_empty()) {
        tok.clone()
    } else {
        jwt.to_string()
    };
    let ca = match (&local, c.kubernetes_ca_cert.is_empty()) {
        (Some((_, ca)), true) => ca.clone(),
        _ => c.kubernetes_ca_cert.clone(),
    };
    let reply = crate::http_client::request(
        "POST",
        &url,
        &ca,
        Some(&bearer),
        Some(serde_json::to_vec(&body).map_err(|e| ApiError::internal(&e))?),
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "kubernetes TokenReview request failed");
        ApiError::internal(&"the Kubernetes API server could not be reached")
    })?;
    if reply.status == 401 || reply.status == 403 {
        tracing::warn!(
            status = reply.status,
            "kubernetes TokenReview refused the reviewer credential"
        );
        return Err(denied("permission denied"));
    }
    if !(200..300).contains(&reply.status) {
        return Err(ApiError::internal(&format!(
            "the Kubernetes API server answered {} to the TokenReview",
            reply.status
        )));
    }
    let v: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::internal(&"the TokenReview answer is not JSON"))?;
    let status = v.get("status").cloned().unwrap_or(Value::Null);
    if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return Err(denied("permission denied"));
    }
    let username = status
        .pointer("/user/username")
        .and_then(Value::as_str)
        .unwrap_or("");
    if username != format!("system:serviceaccount:{}:{}", sa.namespace, sa.name) {
        return Err(denied("JWT names did not match"));
    }
    if !audiences.is_empty() {
        let got: Vec<&str> = status
            .get("audiences")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !role.audience.is_empty() && !got.contains(&role.audience.as_str()) {
            return Err(denied("invalid audience"));
        }
    }
    let uid = status
        .pointer("/user/uid")
        .and_then(Value::as_str)
        .unwrap_or(&sa.uid)
        .to_string();
    if !sa.uid.is_empty() && uid != sa.uid {
        return Err(denied("JWT UID did not match"));
    }
    Ok(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_and_claims() {
        let l = vec!["eso".to_string(), "app-*".to_string()];
        assert!(bound(&l, "eso") && bound(&l, "app-web") && !bound(&l, "other"));
        assert!(bound(&["*".to_string()], "anything"));
        let projected = json!({"kubernetes.io": {"namespace": "ns", "serviceaccount": {"name": "sa", "uid": "u1"}}});
        let c = claimed(projected.as_object().unwrap()).unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.name.as_str(), c.uid.as_str()),
            ("ns", "sa", "u1")
        );
        let legacy = json!({
            "kubernetes.io/serviceaccount/namespace": "n2",
            "kubernetes.io/serviceaccount/service-account.name": "s2",
            "kubernetes.io/serviceaccount/secret.name": "s2-token",
        });
        let c = claimed(legacy.as_object().unwrap()).unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.secret_name.as_str()),
            ("n2", "s2-token")
        );
        assert!(claimed(json!({"sub": "x"}).as_object().unwrap()).is_none());
    }

    #[test]
    fn reviewer_jwt_is_not_in_debug() {
        let c = Config {
            token_reviewer_jwt: "eyJsecret".into(),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("eyJsecret"));
        let r = role_json(&Role::default());
        assert!(r.get("bound_service_account_names").is_some());
    }
}
