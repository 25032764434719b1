//! Where a JWT mount's keys come from (PEM keys, a JWKS URL or a discovery document) and
//! the cache of fetched key sets: refreshed after ten minutes, and when a token names an
//! unknown `kid` (at most once a second). Also the pending browser logins of the OIDC flow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use airlock_core::jwt as cj;
use airlock_logical::{ApiError, ApiResult};
use serde_json::Value;

use super::Config;
use crate::auth::keys::PublicKey;

const KEYS_TTL: Duration = Duration::from_secs(600);
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Where a mount's keys come from, and the keys last seen.
pub(crate) struct Runtime {
    pub(crate) config: Config,
    pub(crate) static_keys: Arc<Vec<PublicKey>>,
    /// What the discovery document said, when keys come from one.
    pub(crate) discovered: RwLock<Option<Discovery>>,
    pub(crate) fetched: RwLock<Option<(Instant, Arc<Vec<PublicKey>>)>>,
    pub(crate) last_attempt: Mutex<Option<Instant>>,
    /// One fetch at a time; the others wait for its result.
    pub(crate) fetch_lock: tokio::sync::Mutex<()>,
}

/// Per-mount runtimes, by mount uuid.
#[derive(Default)]
pub struct Cache {
    pub(crate) inner: Mutex<HashMap<String, Arc<Runtime>>>,
    pub(crate) sources: Mutex<HashMap<String, Arc<KeySource>>>,
    /// Bumped by every config change, so a runtime built from an older config is not cached.
    pub(crate) generation: std::sync::atomic::AtomicU64,
    /// Browser logins between `oidc/auth_url` and `oidc/callback`, by `state`.
    pub(crate) pending: Mutex<HashMap<String, Pending>>,
}

/// One browser login in progress. In memory only: after a restart the user starts again.
pub(crate) struct Pending {
    pub(crate) mount: String,
    pub(crate) role: String,
    pub(crate) redirect_uri: String,
    pub(crate) nonce: String,
    pub(crate) client_nonce: Option<String>,
    pub(crate) at: Instant,
}

/// How long a user has between `oidc/auth_url` and `oidc/callback`.
pub(super) const PENDING_TTL: Duration = Duration::from_secs(300);
/// Most browser logins in progress at once (unauthenticated callers create them).
pub(super) const PENDING_MAX: usize = 10_000;

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
    pub(crate) fn generation(&self) -> u64 {
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
    pub(crate) fn get(&self, uuid: &str) -> Option<Arc<Runtime>> {
        self.inner.lock().ok()?.get(uuid).cloned()
    }
    pub(crate) fn put(&self, uuid: &str, rt: Arc<Runtime>, gen: u64) {
        if let Ok(mut m) = self.inner.lock() {
            if self.generation() == gen {
                m.insert(uuid.to_string(), rt);
            }
        }
    }
}

pub(crate) fn discovery_doc_url(base: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        base.trim_end_matches('/')
    )
}

/// The parts of a discovery document Airlock uses.
#[derive(Clone)]
pub(crate) struct Discovery {
    /// Tokens must carry it.
    pub(crate) issuer: String,
    /// Authorization and token endpoints, for the browser flow (or why they are unusable).
    pub(crate) endpoints: Result<(String, String), String>,
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

pub(crate) async fn fetch_keys(rt: &Runtime) -> Result<Vec<PublicKey>, String> {
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
    pub(crate) fn new(config: Config) -> Result<Runtime, String> {
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

    pub(crate) fn is_static(&self) -> bool {
        !self.config.jwt_validation_pubkeys.is_empty()
    }

    /// The current key set; fetched when missing or stale, or (rate-limited) when `kid` is
    /// not in it.
    pub(crate) async fn keys(&self, kid: Option<&str>) -> Result<Arc<Vec<PublicKey>>, String> {
        if self.is_static() {
            return Ok(Arc::clone(&self.static_keys));
        }
        let cur = self.fetched.read().ok().and_then(|f| f.clone());
        let need = match &cur {
            None => true,
            Some((at, keys)) => at.elapsed() > KEYS_TTL || !crate::auth::keys::knows_kid(keys, kid),
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
            if at.elapsed() <= KEYS_TTL && crate::auth::keys::knows_kid(keys, kid) {
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

pub(crate) fn token_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error validating token: {e}"))
}

/// Verifies a compact JWS against a mount's key source; returns it once the signature holds.
pub(crate) async fn verify_signature(rt: &Runtime, jwt: &str) -> ApiResult<cj::Jws> {
    let jws = cj::Jws::parse(jwt)
        .map_err(|e| token_err(format!("error verifying token signature: {e}")))?;
    let alg_ok = cj::check_alg(jws.alg(), &rt.config.jwt_supported_algs).is_ok();
    let keys = rt
        .keys(jws.kid())
        .await
        .map_err(|e| ApiError::bad_request(format!("error validating token: {e}")))?;
    // `none`, HMAC and unlisted algorithms never reach a key; they fail like a bad signature.
    if !alg_ok || !crate::auth::keys::verify_any(&keys, &jws) {
        return Err(token_err(if rt.is_static() {
            "error verifying token signature: no known key successfully validated the token signature"
        } else {
            "error verifying token signature: failed to verify id token signature"
        }));
    }
    Ok(jws)
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
