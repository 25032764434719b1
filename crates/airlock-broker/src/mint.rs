//! Minted credentials: bindings whose credential is a short-lived access token the broker
//! obtains from a token endpoint, caches until shortly before it expires, and injects like
//! any credential (the agent holds a placeholder). Kinds (`mint = { kind = … }`):
//!
//! - `oauth2_client_credentials`: `client_id` + `client_secret` from the entry, `token_url`,
//!   optional `scope`/`audience`;
//! - `oauth2_refresh_token`: `refresh_token` (+ `client_id`, optional `client_secret`); a
//!   rotated refresh token is written back to the entry with check-and-set, and one rejected
//!   because another broker rotated it first is read again from Airlock and retried;
//! - `github_app`: `app_id`, `installation_id`, `private_key` (PEM) → an RS256 JWT → an
//!   installation token (`token_url` defaults to api.github.com's);
//! - `google_service_account`: `service_account` (the key file's JSON) → an RS256 JWT
//!   assertion → an access token (`scope` required).
//!
//! Pure: building token requests (form bodies, JWTs) and reading answers; the proxy sends.

use base64::Engine;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

/// A binding's minting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mint {
    /// `oauth2_client_credentials`, `oauth2_refresh_token`, `github_app`,
    /// `google_service_account`.
    pub kind: &'static str,
    pub token_url: Option<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
}

const KINDS: [&str; 4] = [
    "oauth2_client_credentials",
    "oauth2_refresh_token",
    "github_app",
    "google_service_account",
];

/// Parses `mint = { kind, token_url, scope, audience }`.
pub fn parse(v: &Value) -> Result<Mint, String> {
    let o: &Map<String, Value> = v.as_object().ok_or("`mint` must be a table")?;
    for k in o.keys() {
        if !["kind", "token_url", "scope", "audience"].contains(&k.as_str()) {
            return Err(format!(
                "unknown mint field `{k}` (known: kind, token_url, scope, audience)"
            ));
        }
    }
    let s = |k: &str| -> Result<Option<String>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(x)) if !x.is_empty() => Ok(Some(x.clone())),
            _ => Err(format!("mint.{k} must be a non-empty string")),
        }
    };
    let kind_s = s("kind")?.ok_or("mint.kind is required")?;
    let kind = KINDS
        .iter()
        .find(|k| **k == kind_s)
        .copied()
        .ok_or_else(|| format!("mint.kind {kind_s:?} is not one of: {}", KINDS.join(", ")))?;
    let token_url = s("token_url")?;
    if let Some(u) = &token_url {
        if !u.starts_with("https://") || u.len() > 2048 {
            return Err("mint.token_url must be an https:// URL".into());
        }
    }
    if kind.starts_with("oauth2") && token_url.is_none() {
        return Err(format!("mint.token_url is required for {kind}"));
    }
    let scope = s("scope")?;
    if kind == "google_service_account" && scope.is_none() {
        return Err("mint.scope is required for google_service_account".into());
    }
    Ok(Mint {
        kind,
        token_url,
        scope,
        audience: s("audience")?,
    })
}

impl Mint {
    /// The entry keys the kind reads (`?`: optional).
    pub fn keys(&self) -> &'static [&'static str] {
        match self.kind {
            "oauth2_client_credentials" => &["client_id", "client_secret"],
            "oauth2_refresh_token" => &["refresh_token", "client_id", "?client_secret"],
            "github_app" => &["app_id", "installation_id", "private_key"],
            _ => &["service_account"],
        }
    }
}

/// A token with when it was minted and when it expires (unix seconds).
pub(crate) type Current = (std::sync::Arc<Zeroizing<String>>, u64, u64);

/// The current token of one minting binding (a single flight: requests that find it stale
/// wait for the one that mints).
#[derive(Default)]
pub struct TokenCell {
    pub(crate) cur: tokio::sync::Mutex<Option<Current>>,
}

impl std::fmt::Debug for TokenCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCell")
    }
}

/// A token request: where, and the form body (or, for GitHub, a bearer JWT and no body).
pub struct TokenRequest {
    pub url: String,
    pub form: Option<Zeroizing<String>>,
    pub bearer: Option<Zeroizing<String>>,
}

fn form(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let enc = |s: &str| airlock_core::sigv4::uri_encode(s, false);
    Zeroizing::new(
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The request that mints a token, from the entry's values (`value(key)`) at `now`.
pub fn request(
    m: &Mint,
    value: impl Fn(&str) -> Option<Zeroizing<String>>,
    now: u64,
) -> Result<TokenRequest, String> {
    let need = |k: &str| value(k).ok_or_else(|| format!("the entry has no {k:?}"));
    match m.kind {
        "oauth2_client_credentials" => {
            let (id, secret) = (need("client_id")?, need("client_secret")?);
            let mut p = vec![
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ];
            if let Some(s) = &m.scope {
                p.push(("scope", s));
            }
            if let Some(a) = &m.audience {
                p.push(("audience", a));
            }
            Ok(TokenRequest {
                url: m.token_url.clone().unwrap_or_default(),
                form: Some(form(&p)),
                bearer: None,
            })
        }
        "oauth2_refresh_token" => {
            let (rt, id) = (need("refresh_token")?, need("client_id")?);
            let secret = value("client_secret");
            let mut p = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", id.as_str()),
            ];
            if let Some(s) = &secret {
                p.push(("client_secret", s.as_str()));
            }
            if let Some(s) = &m.scope {
                p.push(("scope", s));
            }
            Ok(TokenRequest {
                url: m.token_url.clone().unwrap_or_default(),
                form: Some(form(&p)),
                bearer: None,
            })
        }
        "github_app" => {
            let (app, inst, key) = (
                need("app_id")?,
                need("installation_id")?,
                need("private_key")?,
            );
            if !inst.bytes().all(|b| b.is_ascii_digit()) || inst.is_empty() {
                return Err("installation_id must be a number".into());
            }
            // GitHub allows up to 10 minutes; iat is backdated for clock drift.
            let claims =
                json!({"iat": now.saturating_sub(60), "exp": now + 540, "iss": app.as_str()});
            let jwt = sign_rs256(&claims, &key)?;
            let url = m.token_url.clone().unwrap_or_else(|| {
                format!(
                    "https://api.github.com/app/installations/{}/access_tokens",
                    inst.as_str()
                )
            });
            Ok(TokenRequest {
                url: url.replace("{installation_id}", &inst),
                form: None,
                bearer: Some(jwt),
            })
        }
        _ => {
            let sa: Value = serde_json::from_str(&need("service_account")?)
                .map_err(|_| "service_account is not a service account key (JSON)")?;
            let field = |k: &str| {
                sa.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| format!("the service account key has no {k:?}"))
            };
            let token_uri = m.token_url.clone().map_or_else(|| field("token_uri"), Ok)?;
            let claims = json!({
                "iss": field("client_email")?, "scope": m.scope.clone().unwrap_or_default(),
                "aud": token_uri, "iat": now, "exp": now + 3600,
            });
            let key = Zeroizing::new(field("private_key")?);
            let jwt = sign_rs256(&claims, &key)?;
            Ok(TokenRequest {
                url: token_uri,
                form: Some(form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", jwt.as_str()),
                ])),
                bearer: None,
            })
        }
    }
}

/// A minted token.
pub struct Minted {
    pub token: Zeroizing<String>,
    /// Unix second it expires.
    pub expires: u64,
    /// A new refresh token the endpoint rotated to.
    pub refresh_token: Option<Zeroizing<String>>,
}

/// Reads a token endpoint's JSON answer.
pub fn answer(m: &Mint, body: &[u8], now: u64) -> Result<Minted, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "the token endpoint's answer is not JSON")?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(|x| Zeroizing::new(x.to_string()))
    };
    if m.kind == "github_app" {
        let token = s("token").ok_or("no token in GitHub's answer")?;
        let expires = v
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp().max(0) as u64)
            .unwrap_or(now + 3600);
        return Ok(Minted {
            token,
            expires,
            refresh_token: None,
        });
    }
    let token = s("access_token").ok_or_else(|| {
        let e = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no access_token");
        format!("the token endpoint answered {e}")
    })?;
    let ttl = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
    Ok(Minted {
        token,
        expires: now + ttl,
        refresh_token: s("refresh_token"),
    })
}

/// Whether a token expiring at `expires` should be replaced at `now`: in its last tenth of
/// life (minted at `minted`), or within 30 s of its end.
pub fn stale(minted: u64, expires: u64, now: u64) -> bool {
    let life = expires.saturating_sub(minted);
    now + 30.min(life / 2) >= expires || now >= expires.saturating_sub(life / 10)
}

/// A compact JWS (RS256) of `claims` under an RSA private key in PEM (PKCS#1 or PKCS#8).
pub fn sign_rs256(claims: &Value, pem: &str) -> Result<Zeroizing<String>, String> {
    use tokio_rustls::rustls::pki_types::{pem::PemObject, PrivateKeyDer};
    let der =
        PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| "the private key is not PEM")?;
    let key = match &der {
        PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        _ => return Err("the private key is not an RSA key".into()),
    }
    .map_err(|_| "the private key is not a usable RSA key")?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing the JWT failed")?;
    Ok(Zeroizing::new(format!("{input}.{}", b64(&sig))))
}

#[cfg(test)]
mod tests;
