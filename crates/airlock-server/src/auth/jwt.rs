//! JWT/OIDC auth (`jwt`, also mounted as `oidc`): machines log in with a JWT from an issuer
//! they already trust — GitHub Actions' OIDC token, a cloud workload identity, any OIDC
//! provider — so CI needs no stored credential.
//!
//! Keys come from exactly one of `jwt_validation_pubkeys` (PEM), `jwks_url`, or
//! `oidc_discovery_url` (discovery document → `jwks_uri`). Fetched key sets are cached in
//! memory per mount, refreshed after ten minutes and when a token names an unknown `kid`
//! (at most once a second). Claim checks are the pure ones in `airlock_core::jwt`.
//!
//! Storage below the mount prefix: `config` → [`Config`], `role/<name>` → [`Role`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use airlock_core::jwt as cj;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::keys::PublicKey;
use super::{check_name, key, list_names, LoginOutcome, TokenSettings};
use crate::core::{now_unix, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::mounts::MountEntry;

const KEYS_TTL: Duration = Duration::from_secs(600);
const MIN_REFRESH: Duration = Duration::from_secs(1);

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

/// Where a mount's keys come from, and the keys last seen.
struct Runtime {
    config: Config,
    static_keys: Arc<Vec<PublicKey>>,
    /// What the discovery document said, when keys come from one.
    discovered: RwLock<Option<Discovery>>,
    fetched: RwLock<Option<(Instant, Arc<Vec<PublicKey>>)>>,
    last_attempt: Mutex<Option<Instant>>,
    /// One fetch at a time; the others wait for its result.
    fetch_lock: tokio::sync::Mutex<()>,
}

/// Per-mount runtimes, by mount uuid.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<HashMap<String, Arc<Runtime>>>,
    sources: Mutex<HashMap<String, Arc<KeySource>>>,
    /// Bumped by every config change, so a runtime built from an older config is not cached.
    generation: std::sync::atomic::AtomicU64,
    /// Browser logins between `oidc/auth_url` and `oidc/callback`, by `state`.
    pending: Mutex<HashMap<String, Pending>>,
}

/// One browser login in progress. In memory only: after a restart the user starts again.
struct Pending {
    mount: String,
    role: String,
    redirect_uri: String,
    nonce: String,
    client_nonce: Option<String>,
    at: Instant,
}

/// How long a user has between `oidc/auth_url` and `oidc/callback`.
const PENDING_TTL: Duration = Duration::from_secs(300);
/// Most browser logins in progress at once (unauthenticated callers create them).
const PENDING_MAX: usize = 10_000;

impl Cache {
    pub fn clear(&self) {
        if let Ok(mut m) = self.inner.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.sources.lock() {
            m.clear();
        }
    }
    pub fn forget(&self, uuid: &str) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut m) = self.inner.lock() {
            m.remove(uuid);
        }
        self.forget_source(uuid);
    }
    pub fn forget_source(&self, uuid: &str) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut m) = self.sources.lock() {
            m.remove(uuid);
        }
    }
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn source(&self, uuid: &str) -> Option<Arc<KeySource>> {
        self.sources.lock().ok()?.get(uuid).cloned()
    }
    /// Caches `s` unless the config changed since `gen` was read.
    pub fn put_source(&self, uuid: &str, s: Arc<KeySource>, gen: u64) {
        if let Ok(mut m) = self.sources.lock() {
            if self.generation() == gen {
                m.insert(uuid.to_string(), s);
            }
        }
    }
    pub fn source_generation(&self) -> u64 {
        self.generation()
    }
    fn get(&self, uuid: &str) -> Option<Arc<Runtime>> {
        self.inner.lock().ok()?.get(uuid).cloned()
    }
    fn put(&self, uuid: &str, rt: Arc<Runtime>, gen: u64) {
        if let Ok(mut m) = self.inner.lock() {
            if self.generation() == gen {
                m.insert(uuid.to_string(), rt);
            }
        }
    }
}

fn discovery_doc_url(base: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        base.trim_end_matches('/')
    )
}

/// The parts of a discovery document Airlock uses.
#[derive(Clone)]
struct Discovery {
    /// Tokens must carry it.
    issuer: String,
    /// Authorization and token endpoints, for the browser flow (or why they are unusable).
    endpoints: Result<(String, String), String>,
}

/// Fetches the discovery document (checking its issuer) and then the JWKS it names.
async fn fetch_discovery(url: &str, ca: &str) -> Result<(Discovery, Vec<PublicKey>), String> {
    let doc = crate::http_client::get_json(&discovery_doc_url(url), ca).await?;
    let issuer = doc
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or("discovery document has no issuer")?;
    if issuer.trim_end_matches('/') != url.trim_end_matches('/') {
        return Err(format!(
            "issuer did not match the issuer returned by provider, expected \"{url}\" got \"{issuer}\""
        ));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("discovery document has no jwks_uri")?;
    let jwks = crate::http_client::get_json(jwks_uri, ca).await?;
    let endpoint = |k: &str| -> Result<String, String> {
        let u = doc
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("discovery document has no {k}"))?;
        crate::http_client::parse_url(u)?;
        Ok(u.to_string())
    };
    let endpoints =
        endpoint("authorization_endpoint").and_then(|a| Ok((a, endpoint("token_endpoint")?)));
    let d = Discovery {
        issuer: issuer.to_string(),
        endpoints,
    };
    Ok((d, PublicKey::from_jwks(&jwks)?))
}

async fn fetch_keys(rt: &Runtime) -> Result<Vec<PublicKey>, String> {
    let c = &rt.config;
    if !c.oidc_discovery_url.is_empty() {
        let (found, keys) =
            fetch_discovery(&c.oidc_discovery_url, &c.oidc_discovery_ca_pem).await?;
        if let Ok(mut d) = rt.discovered.write() {
            *d = Some(found);
        }
        Ok(keys)
    } else {
        let jwks = crate::http_client::get_json(&c.jwks_url, &c.jwks_ca_pem).await?;
        PublicKey::from_jwks(&jwks)
    }
}

impl Runtime {
    fn new(config: Config) -> Result<Runtime, String> {
        let mut static_keys = Vec::new();
        for pem in &config.jwt_validation_pubkeys {
            static_keys.extend(PublicKey::from_pem(pem).map_err(|e| {
                if e == "no PEM block found" {
                    "error parsing public key: data does not contain any valid public keys"
                        .to_string()
                } else {
                    format!("error parsing public key: {e}")
                }
            })?);
        }
        Ok(Runtime {
            config,
            static_keys: Arc::new(static_keys),
            discovered: RwLock::new(None),
            fetched: RwLock::new(None),
            last_attempt: Mutex::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn is_static(&self) -> bool {
        !self.config.jwt_validation_pubkeys.is_empty()
    }

    /// The current key set; fetched when missing or stale, or (rate-limited) when `kid` is
    /// not in it.
    async fn keys(&self, kid: Option<&str>) -> Result<Arc<Vec<PublicKey>>, String> {
        if self.is_static() {
            return Ok(Arc::clone(&self.static_keys));
        }
        let cur = self.fetched.read().ok().and_then(|f| f.clone());
        let need = match &cur {
            None => true,
            Some((at, keys)) => at.elapsed() > KEYS_TTL || !super::keys::knows_kid(keys, kid),
        };
        if !need {
            if let Some((_, k)) = cur {
                return Ok(k);
            }
        }
        let _one = self.fetch_lock.lock().await;
        // Another login may have fetched while this one waited.
        let cur = self.fetched.read().ok().and_then(|f| f.clone());
        if let Some((at, keys)) = &cur {
            if at.elapsed() <= KEYS_TTL && super::keys::knows_kid(keys, kid) {
                return Ok(Arc::clone(keys));
            }
        }
        let may_fetch = {
            let Ok(mut last) = self.last_attempt.lock() else {
                return Err("key cache lock poisoned".into());
            };
            let ok = last.map(|t| t.elapsed() >= MIN_REFRESH).unwrap_or(true) || cur.is_none();
            if ok {
                *last = Some(Instant::now());
            }
            ok
        };
        if may_fetch {
            match fetch_keys(self).await {
                Ok(keys) => {
                    let keys = Arc::new(keys);
                    if let Ok(mut f) = self.fetched.write() {
                        *f = Some((Instant::now(), Arc::clone(&keys)));
                    }
                    return Ok(keys);
                }
                Err(e) => {
                    // The detail (addresses, TLS errors) goes to the log, not to the
                    // unauthenticated caller.
                    tracing::warn!(error = %e, "fetching JWT verification keys failed");
                    if cur.is_none() {
                        return Err("the issuer's keys could not be fetched".into());
                    }
                }
            }
        }
        cur.map(|(_, k)| k)
            .ok_or_else(|| "no keys available".to_string())
    }
}

async fn load_config(core: &Core, m: &MountEntry) -> ApiResult<Option<Config>> {
    Ok(core.barrier.get_json(&key(m, "config")).await?)
}

/// The mount's runtime (built from storage on first use).
async fn runtime(core: &Core, m: &MountEntry) -> ApiResult<Arc<Runtime>> {
    if let Some(rt) = core.auth_rt.jwt.get(&m.uuid) {
        return Ok(rt);
    }
    let gen = core.auth_rt.jwt.generation();
    let cfg = load_config(core, m)
        .await?
        .ok_or_else(|| ApiError::bad_request("could not load configuration"))?;
    let rt = Arc::new(Runtime::new(cfg).map_err(ApiError::bad_request)?);
    core.auth_rt.jwt.put(&m.uuid, Arc::clone(&rt), gen);
    Ok(rt)
}

pub async fn handle(
    core: &Arc<Core>,
    m: &MountEntry,
    sub: &str,
    req: &Request,
) -> ApiResult<Response> {
    let parts: Vec<&str> = sub.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["config"] => config_rw(core, m, req).await,
        ["role"] if matches!(req.op, Op::List | Op::Read) => list_names(core, m, "role/").await,
        ["role", name] => role_rw(core, m, name, req).await,
        _ => Err(ApiError::unsupported_path()),
    }
}

async fn config_rw(core: &Arc<Core>, m: &MountEntry, req: &Request) -> ApiResult<Response> {
    match req.op {
        Op::Read => match load_config(core, m).await? {
            Some(c) => Ok(Response::data(c.json())),
            None => Err(super::not_found()),
        },
        Op::Create | Op::Update => {
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
                cj::check_alg(a, &[]).map_err(|_| {
                    ApiError::bad_request(format!("invalid jwt_supported_algs: {a}"))
                })?;
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
                crate::http_client::parse_url(&c.oidc_discovery_url)
                    .map_err(ApiError::bad_request)?;
                fetch_keys(&rt).await.map_err(|e| {
                    ApiError::bad_request(format!("error checking oidc discovery URL: {e}"))
                })?;
            } else if !c.jwks_url.is_empty() {
                crate::http_client::parse_url(&c.jwks_url).map_err(ApiError::bad_request)?;
                fetch_keys(&rt)
                    .await
                    .map_err(|e| ApiError::bad_request(format!("error checking jwks URL: {e}")))?;
            }
            core.barrier.put_json(&key(m, "config"), &c).await?;
            core.auth_rt.jwt.forget(&m.uuid);
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

async fn role_rw(
    core: &Arc<Core>,
    m: &MountEntry,
    raw: &str,
    req: &Request,
) -> ApiResult<Response> {
    let name = check_name(raw, "role")?.to_lowercase();
    let k = key(m, &format!("role/{name}"));
    match req.op {
        Op::Read => super::read_item(core, &k, |r: &Role| r.json()).await,
        Op::Create | Op::Update => {
            let _g = core.locks.lock(&k).await;
            let mut r: Role = core.barrier.get_json(&k).await?.unwrap_or_default();
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
            match req.data.get("bound_claims") {
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
            core.barrier.put_json(&k, &r).await?;
            Ok(Response::empty())
        }
        Op::Delete => super::delete_item(core, k).await,
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn token_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error validating token: {e}"))
}

/// Verifies a compact JWS against a mount's key source; returns it once the signature holds.
async fn verify_signature(rt: &Runtime, jwt: &str) -> ApiResult<cj::Jws> {
    let jws = cj::Jws::parse(jwt)
        .map_err(|e| token_err(format!("error verifying token signature: {e}")))?;
    let alg_ok = cj::check_alg(jws.alg(), &rt.config.jwt_supported_algs).is_ok();
    let keys = rt
        .keys(jws.kid())
        .await
        .map_err(|e| ApiError::bad_request(format!("error validating token: {e}")))?;
    // `none`, HMAC and unlisted algorithms never reach a key; they fail like a bad signature.
    if !alg_ok || !super::keys::verify_any(&keys, &jws) {
        return Err(token_err(if rt.is_static() {
            "error verifying token signature: no known key successfully validated the token signature"
        } else {
            "error verifying token signature: failed to verify id token signature"
        }));
    }
    Ok(jws)
}

pub async fn login(core: &Arc<Core>, m: &MountEntry, req: &Request) -> ApiResult<LoginOutcome> {
    let rt = runtime(core, m).await?;
    let role_name = req
        .str_field("role")?
        .filter(|r| !r.is_empty())
        .or_else(|| Some(rt.config.default_role.clone()).filter(|r| !r.is_empty()))
        .ok_or_else(|| ApiError::bad_request("missing role"))?
        .to_lowercase();
    let role: Role = super::login_role(core, m, &role_name)
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
    outcome(&rt, &role, role_name, &jws.claims, req, None)
}

/// The checks after the signature: issuer, audience, times, bound claims; then the login's
/// alias, metadata and token settings. `oidc_client`: the mount's client id when `claims`
/// come from an ID token of the browser flow (its audience must name the client).
fn outcome(
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
        now: now_unix(),
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
    req.data
        .get(k)
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            req.query
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
        })
        .filter(|v| !v.is_empty())
}

fn random_hex() -> String {
    hex::encode(crate::core::random_bytes::<20>())
}

fn oidc_ready(c: &Config) -> ApiResult<()> {
    if c.oidc_discovery_url.is_empty() || c.oidc_client_id.is_empty() {
        return Err(ApiError::bad_request(
            "this mount is not configured for OIDC browser logins: set oidc_discovery_url, oidc_client_id and oidc_client_secret",
        ));
    }
    Ok(())
}

async fn oidc_role(
    core: &Core,
    m: &MountEntry,
    rt: &Runtime,
    name: Option<String>,
) -> ApiResult<(String, Role)> {
    let name = name
        .or_else(|| Some(rt.config.default_role.clone()).filter(|r| !r.is_empty()))
        .ok_or_else(|| ApiError::bad_request("missing role"))?
        .to_lowercase();
    let role: Role = super::login_role(core, m, &name)
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
pub async fn auth_url(core: &Arc<Core>, m: &MountEntry, req: &Request) -> ApiResult<Response> {
    let rt = runtime(core, m).await?;
    oidc_ready(&rt.config)?;
    let (role_name, role) = oidc_role(
        core,
        m,
        &rt,
        req.str_field("role")?.filter(|r| !r.is_empty()),
    )
    .await?;
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
        let mut p = core
            .auth_rt
            .jwt
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
                mount: m.uuid.clone(),
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
pub async fn callback(core: &Arc<Core>, m: &MountEntry, req: &Request) -> ApiResult<LoginOutcome> {
    let state = param(req, "state").ok_or_else(|| ApiError::bad_request("missing state"))?;
    // Single use: taken out whatever happens next.
    let pending = core
        .auth_rt
        .jwt
        .pending
        .lock()
        .map_err(|_| ApiError::internal(&"pending OIDC logins lock poisoned"))?
        .remove(&state)
        .filter(|p| p.mount == m.uuid && p.at.elapsed() < PENDING_TTL)
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
    let rt = runtime(core, m).await?;
    oidc_ready(&rt.config)?;
    let (role_name, role) = oidc_role(core, m, &rt, Some(pending.role.clone())).await?;
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
}

/// Verification for other methods (Kubernetes with a JWKS): keys from a discovery URL,
/// a JWKS URL or PEM keys, cached like a JWT mount's.
pub struct KeySource {
    rt: Runtime,
}

impl KeySource {
    pub fn new(
        discovery_url: &str,
        jwks_url: &str,
        ca_pem: &str,
        pems: &[String],
    ) -> Result<Self, String> {
        let cfg = Config {
            oidc_discovery_url: discovery_url.to_string(),
            oidc_discovery_ca_pem: ca_pem.to_string(),
            jwks_url: jwks_url.to_string(),
            jwks_ca_pem: ca_pem.to_string(),
            jwt_validation_pubkeys: pems.to_vec(),
            ..Default::default()
        };
        Ok(KeySource {
            rt: Runtime::new(cfg)?,
        })
    }

    pub async fn verify(&self, jwt: &str) -> ApiResult<cj::Jws> {
        verify_signature(&self.rt, jwt).await
    }
}

#[cfg(test)]
mod tests {
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
