//! JWT/OIDC auth (`jwt`, also mounted as `oidc`): machines log in with a JWT from an issuer
//! they already trust — GitHub Actions' OIDC token, a cloud workload identity, any OIDC
//! provider — so CI needs no stored credential.
//!
//! Keys come from exactly one of `jwt_validation_pubkeys` (PEM), `jwks_url`, or
//! `oidc_discovery_url` (discovery document → `jwks_uri`). Fetched key sets are cached in
//! memory per mount, refreshed after ten minutes and when a token names an unknown `kid`
//! (at most once a second). Claim checks are the pure ones in `airlock_core::jwt`.
//!
//! Storage in the mount's view: `config` → [`Config`], `role/<name>` → [`Role`].
//! Files: this one (config, roles, the engine), `runtime` (key sources and their cache),
//! `login` (JWT login and the claim checks), `oidc` (the browser flow).

mod login;
mod oidc;
mod runtime;

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_core::jwt as cj;
use airlock_logical::auth::{check_name, TokenSettings, TOKEN_FIELDS};
use airlock_logical::{ApiError, ApiResult, Ctx, Engine, Field, Op, PathSpec, Request, Response};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use runtime::{fetch_keys, Runtime};
pub use runtime::{Cache, KeySource};

use super::list_names;

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub oidc_discovery_url: String,
    pub oidc_discovery_ca_pem: String,
    pub oidc_client_id: String,
    /// Stored for compatibility; never returned.
    pub oidc_client_secret: String,
    pub oidc_response_mode: String,
    pub oidc_response_types: Vec<String>,
    pub jwks_url: String,
    pub jwks_ca_pem: String,
    pub jwt_validation_pubkeys: Vec<String>,
    pub jwt_supported_algs: Vec<String>,
    pub bound_issuer: String,
    pub default_role: String,
    pub namespace_in_state: Option<bool>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("oidc_discovery_url", &self.oidc_discovery_url)
            .field("jwks_url", &self.jwks_url)
            .field("bound_issuer", &self.bound_issuer)
            .finish_non_exhaustive()
    }
}

impl Config {
    fn json(&self) -> Value {
        json!({
            "bound_issuer": self.bound_issuer,
            "default_role": self.default_role,
            "jwks_ca_pem": self.jwks_ca_pem,
            "jwks_url": self.jwks_url,
            "jwt_supported_algs": self.jwt_supported_algs,
            "jwt_validation_pubkeys": self.jwt_validation_pubkeys,
            "namespace_in_state": self.namespace_in_state.unwrap_or(true),
            "oidc_client_id": self.oidc_client_id,
            "oidc_discovery_ca_pem": self.oidc_discovery_ca_pem,
            "oidc_discovery_url": self.oidc_discovery_url,
            "oidc_response_mode": self.oidc_response_mode,
            "oidc_response_types": self.oidc_response_types,
            "override_allowed_server_names": [],
            "provider_config": {},
            "status": "valid",
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub role_type: String,
    pub bound_audiences: Vec<String>,
    pub bound_subject: String,
    pub bound_claims: Map<String, Value>,
    pub bound_claims_type: String,
    pub claim_mappings: BTreeMap<String, String>,
    pub user_claim: String,
    pub user_claim_json_pointer: bool,
    pub groups_claim: String,
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    pub allowed_redirect_uris: Vec<String>,
    pub oidc_scopes: Vec<String>,
    pub verbose_oidc_logging: bool,
    pub max_age: i64,
    #[serde(flatten)]
    pub token: TokenSettings,
}

impl Default for Role {
    fn default() -> Self {
        Role {
            role_type: "oidc".into(),
            bound_audiences: Vec::new(),
            bound_subject: String::new(),
            bound_claims: Map::new(),
            bound_claims_type: "string".into(),
            claim_mappings: BTreeMap::new(),
            user_claim: String::new(),
            user_claim_json_pointer: false,
            groups_claim: String::new(),
            clock_skew_leeway: 0,
            expiration_leeway: 0,
            not_before_leeway: 0,
            allowed_redirect_uris: Vec::new(),
            oidc_scopes: Vec::new(),
            verbose_oidc_logging: false,
            max_age: 0,
            token: TokenSettings::default(),
        }
    }
}

fn opt_list(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

impl Role {
    fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "allowed_redirect_uris".into(),
            opt_list(&self.allowed_redirect_uris),
        );
        m.insert("bound_audiences".into(), json!(self.bound_audiences));
        m.insert(
            "bound_claims".into(),
            if self.bound_claims.is_empty() {
                Value::Null
            } else {
                Value::Object(self.bound_claims.clone())
            },
        );
        m.insert("bound_claims_type".into(), json!(self.bound_claims_type));
        m.insert("bound_subject".into(), json!(self.bound_subject));
        m.insert("callback_mode".into(), json!("client"));
        m.insert(
            "claim_mappings".into(),
            if self.claim_mappings.is_empty() {
                Value::Null
            } else {
                json!(self.claim_mappings)
            },
        );
        m.insert("clock_skew_leeway".into(), json!(self.clock_skew_leeway));
        m.insert("expiration_leeway".into(), json!(self.expiration_leeway));
        m.insert("groups_claim".into(), json!(self.groups_claim));
        m.insert("max_age".into(), json!(self.max_age));
        m.insert("not_before_leeway".into(), json!(self.not_before_leeway));
        m.insert("oauth2_metadata".into(), Value::Null);
        m.insert("oidc_disable_confirmation".into(), json!(false));
        m.insert("oidc_scopes".into(), opt_list(&self.oidc_scopes));
        m.insert("role_type".into(), json!(self.role_type));
        m.insert("token_policies_template_claims".into(), json!(false));
        m.insert("user_claim".into(), json!(self.user_claim));
        m.insert(
            "user_claim_json_pointer".into(),
            json!(self.user_claim_json_pointer),
        );
        m.insert(
            "verbose_oidc_logging".into(),
            json!(self.verbose_oidc_logging),
        );
        self.token.write_json(&mut m);
        Value::Object(m)
    }

    /// Vault's leeway fields: 0 means the default, negative means none.
    fn leeway(v: i64, default: i64) -> i64 {
        match v {
            0 => default,
            v if v < 0 => 0,
            v => v,
        }
    }
}

/// The JWT/OIDC auth method; its key cache and pending browser logins live with it.
#[derive(Default)]
pub struct Jwt {
    pub(crate) cache: Cache,
}

#[derive(Clone, Copy)]
pub enum H {
    Login,
    AuthUrl,
    Callback,
    ConfigRead,
    ConfigWrite,
    RoleList,
    RoleRead,
    RoleWrite,
    RoleDelete,
}

const CONFIG_FIELDS: &[Field] = &[
    Field::str("oidc_discovery_url"),
    Field::str("oidc_discovery_ca_pem"),
    Field::str("oidc_client_id"),
    Field::str("oidc_client_secret").sensitive(),
    Field::str("oidc_response_mode"),
    Field::list("oidc_response_types"),
    Field::str("jwks_url"),
    Field::str("jwks_ca_pem"),
    Field::list("jwt_validation_pubkeys"),
    Field::list("jwt_supported_algs"),
    Field::str("bound_issuer"),
    Field::str("default_role"),
    Field::bool("namespace_in_state"),
];
const ROLE_FIELDS: &[Field] = &[
    Field::str("role_type"),
    Field::list("bound_audiences"),
    Field::str("bound_subject"),
    Field::json("bound_claims"),
    Field::str("bound_claims_type"),
    Field::json("claim_mappings"),
    Field::str("user_claim"),
    Field::bool("user_claim_json_pointer"),
    Field::str("groups_claim"),
    Field::list("allowed_redirect_uris"),
    Field::list("oidc_scopes"),
    Field::duration("clock_skew_leeway"),
    Field::duration("expiration_leeway"),
    Field::duration("not_before_leeway"),
    Field::bool("verbose_oidc_logging"),
    Field::int("max_age"),
];
const LOGIN_FIELDS: &[Field] = &[Field::str("role"), Field::str("jwt").sensitive()];
const AUTH_URL_FIELDS: &[Field] = &[
    Field::str("role"),
    Field::str("redirect_uri"),
    Field::str("client_nonce").sensitive(),
];
const CALLBACK_FIELDS: &[Field] = &[
    Field::str("state").sensitive(),
    Field::str("code").sensitive(),
    Field::str("id_token").sensitive(),
    Field::str("client_nonce").sensitive(),
    Field::str("error"),
    Field::str("error_description"),
];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("login", &[(Op::Update, H::Login)])
        .fields(&[LOGIN_FIELDS])
        .login()
        .help("Logs in with a JWT signed by the configured issuer.", ""),
    PathSpec::new("oidc/auth_url", &[(Op::Update, H::AuthUrl)])
        .fields(&[AUTH_URL_FIELDS])
        .login()
        .help("Starts a browser login: where to send the user.", ""),
    PathSpec::new(
        "oidc/callback",
        &[(Op::Read, H::Callback), (Op::Update, H::Callback)],
    )
    .fields(&[CALLBACK_FIELDS])
    .login()
    .help("Ends a browser login: the provider's code for a token.", ""),
    PathSpec::new(
        "config/?",
        &[(Op::Read, H::ConfigRead), (Op::Update, H::ConfigWrite)],
    )
    .fields(&[CONFIG_FIELDS])
    .help("Where the mount's keys come from, and the OIDC client.", ""),
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
    .help(
        "A role: the claims a token must carry and the tokens its logins get.",
        "",
    ),
];

#[async_trait]
impl Engine for Jwt {
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
            H::Login => login::login(self, ctx, req).await,
            H::AuthUrl => oidc::auth_url(self, ctx, req).await,
            H::Callback => oidc::callback(self, ctx, req).await,
            H::ConfigRead => config_read(self, ctx).await,
            H::ConfigWrite => config_write(self, ctx, req).await,
            H::RoleList => list_names(ctx, "role/").await,
            H::RoleRead => super::read_role(ctx, name, |r: &Role| r.json()).await,
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

async fn load_config(_eng: &Jwt, ctx: &Ctx) -> ApiResult<Option<Config>> {
    ctx.storage.get_json("config").await
}

/// The mount's runtime (built from storage on first use).
pub(crate) async fn runtime(eng: &Jwt, ctx: &Ctx) -> ApiResult<Arc<Runtime>> {
    if let Some(rt) = eng.cache.get(&ctx.mount.uuid) {
        return Ok(rt);
    }
    let gen = eng.cache.generation();
    let cfg = load_config(eng, ctx)
        .await?
        .ok_or_else(|| ApiError::bad_request("could not load configuration"))?;
    let rt = Arc::new(Runtime::new(cfg).map_err(ApiError::bad_request)?);
    eng.cache.put(&ctx.mount.uuid, Arc::clone(&rt), gen);
    Ok(rt)
}

async fn config_read(eng: &Jwt, ctx: &Ctx) -> ApiResult<Response> {
    match load_config(eng, ctx).await? {
        Some(c) => Ok(Response::data(c.json())),
        None => Err(ApiError::not_found()),
    }
}

async fn config_write(eng: &Jwt, ctx: &Ctx, req: &Request) -> ApiResult<Response> {
    let mut c = Config::default();
    for (k, t) in [
        ("oidc_discovery_url", &mut c.oidc_discovery_url),
        ("oidc_discovery_ca_pem", &mut c.oidc_discovery_ca_pem),
        ("oidc_client_id", &mut c.oidc_client_id),
        ("oidc_client_secret", &mut c.oidc_client_secret),
        ("oidc_response_mode", &mut c.oidc_response_mode),
        ("jwks_url", &mut c.jwks_url),
        ("jwks_ca_pem", &mut c.jwks_ca_pem),
        ("bound_issuer", &mut c.bound_issuer),
        ("default_role", &mut c.default_role),
    ] {
        if let Some(v) = req.str_field(k)? {
            *t = v.trim().to_string();
        }
    }
    c.oidc_response_types = req
        .str_list_field("oidc_response_types")?
        .unwrap_or_default();
    c.jwt_validation_pubkeys = req
        .str_list_field_nosplit("jwt_validation_pubkeys")?
        .unwrap_or_default();
    c.jwt_supported_algs = req
        .str_list_field("jwt_supported_algs")?
        .unwrap_or_default();
    c.namespace_in_state = req.bool_field("namespace_in_state")?;
    for a in &c.jwt_supported_algs {
        cj::check_alg(a, &[])
            .map_err(|_| ApiError::bad_request(format!("invalid jwt_supported_algs: {a}")))?;
    }
    let sources = [
        !c.jwt_validation_pubkeys.is_empty(),
        !c.jwks_url.is_empty(),
        !c.oidc_discovery_url.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(ApiError::bad_request(
            "exactly one of 'jwt_validation_pubkeys', 'jwks_url', 'jwks_pairs', 'oidc_discovery_url', or 'provider_config' must be set",
        ));
    }
    let rt = Runtime::new(c.clone()).map_err(ApiError::bad_request)?;
    // Check the issuer's documents now, so a typo fails here and not at login.
    if !c.oidc_discovery_url.is_empty() {
        crate::http_client::parse_url(&c.oidc_discovery_url).map_err(ApiError::bad_request)?;
        fetch_keys(&rt).await.map_err(|e| {
            ApiError::bad_request(format!("error checking oidc discovery URL: {e}"))
        })?;
    } else if !c.jwks_url.is_empty() {
        crate::http_client::parse_url(&c.jwks_url).map_err(ApiError::bad_request)?;
        fetch_keys(&rt)
            .await
            .map_err(|e| ApiError::bad_request(format!("error checking jwks URL: {e}")))?;
    }
    ctx.storage.put_json("config", &c).await?;
    eng.cache.forget(&ctx.mount.uuid);
    Ok(Response::empty())
}

async fn role_write(ctx: &Ctx, raw: &str, req: &Request) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    let k = format!("role/{name}");
    let g = ctx.storage.lock(&k).await?;
    let mut r: Role = ctx.storage.get_json(&k).await?.unwrap_or_default();
    if let Some(t) = req.str_field("role_type")? {
        if t != "jwt" && t != "oidc" {
            return Err(ApiError::bad_request(format!("invalid 'role_type': {t}")));
        }
        r.role_type = t;
    }
    if let Some(v) = req.str_list_field("bound_audiences")? {
        r.bound_audiences = v;
    }
    if let Some(v) = req.str_field("bound_subject")? {
        r.bound_subject = v;
    }
    match req.value("bound_claims")?.as_deref() {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (ck, cv) in o {
                let ok = match cv {
                    Value::Array(a) => a.iter().all(|x| cj::scalar_text(x).is_some()),
                    v => cj::scalar_text(v).is_some(),
                };
                if !ok {
                    return Err(ApiError::bad_request(format!(
                        "bound claim {ck:?} must be a string or a list of strings"
                    )));
                }
            }
            r.bound_claims = o.clone();
        }
        Some(_) => return Err(ApiError::bad_request("bound_claims must be a map")),
    }
    if let Some(t) = req.str_field("bound_claims_type")? {
        if t != "string" && t != "glob" {
            return Err(ApiError::bad_request(format!(
                "invalid 'bound_claims_type': {t}"
            )));
        }
        r.bound_claims_type = t;
    }
    if let Some(cm) = req.str_map_field("claim_mappings")? {
        let mut seen = std::collections::HashSet::new();
        for v in cm.values() {
            if !seen.insert(v.clone()) {
                return Err(ApiError::bad_request(format!(
                    "multiple keys are mapped to metadata key {v:?}"
                )));
            }
        }
        r.claim_mappings = cm;
    }
    for (f, t) in [
        ("user_claim", &mut r.user_claim),
        ("groups_claim", &mut r.groups_claim),
    ] {
        if let Some(v) = req.str_field(f)? {
            *t = v;
        }
    }
    if let Some(b) = req.bool_field("user_claim_json_pointer")? {
        r.user_claim_json_pointer = b;
    }
    if let Some(b) = req.bool_field("verbose_oidc_logging")? {
        r.verbose_oidc_logging = b;
    }
    for (f, t) in [
        ("clock_skew_leeway", &mut r.clock_skew_leeway),
        ("expiration_leeway", &mut r.expiration_leeway),
        ("not_before_leeway", &mut r.not_before_leeway),
        ("max_age", &mut r.max_age),
    ] {
        if let Some(v) = req.duration_field(f).or_else(|_| req.int_field(f))? {
            *t = v;
        }
    }
    if let Some(v) = req.str_list_field("allowed_redirect_uris")? {
        r.allowed_redirect_uris = v;
    }
    if let Some(v) = req.str_list_field("oidc_scopes")? {
        r.oidc_scopes = v;
    }
    r.token.update(req)?;
    if r.user_claim.is_empty() {
        return Err(ApiError::bad_request(
            "a user claim must be defined on the role",
        ));
    }
    if r.role_type == "jwt"
        && r.bound_audiences.is_empty()
        && r.bound_subject.is_empty()
        && r.bound_claims.is_empty()
        && r.token.token_bound_cidrs.is_empty()
    {
        return Err(ApiError::bad_request(
            "must have at least one bound constraint when creating/updating a role",
        ));
    }
    if r.role_type == "oidc" && r.allowed_redirect_uris.is_empty() {
        return Err(ApiError::bad_request(
            "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.",
        ));
    }
    g.put_json(&k, &r).await?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::runtime::discovery_doc_url;
    use super::*;

    #[test]
    fn leeway_defaults() {
        assert_eq!(Role::leeway(0, 150), 150);
        assert_eq!(Role::leeway(-1, 150), 0);
        assert_eq!(Role::leeway(30, 150), 30);
    }

    #[test]
    fn config_json_hides_client_secret() {
        let c = Config {
            oidc_client_secret: "s3cret".into(),
            ..Default::default()
        };
        assert!(!c.json().to_string().contains("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            discovery_doc_url("https://i.example/"),
            "https://i.example/.well-known/openid-configuration"
        );
    }

    #[test]
    fn role_json_shape() {
        let r = Role {
            role_type: "jwt".into(),
            user_claim: "sub".into(),
            ..Default::default()
        };
        let v = r.json();
        for k in [
            "bound_audiences",
            "bound_claims",
            "bound_claims_type",
            "claim_mappings",
            "user_claim",
            "token_policies",
            "token_ttl",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["bound_claims"].is_null() && v["claim_mappings"].is_null());
    }
}
