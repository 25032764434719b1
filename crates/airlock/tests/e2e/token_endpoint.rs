//! A stand-in OAuth2 token endpoint and API for the broker's minted credentials, served by
//! the stand-in upstream (`upstream.rs`) for two hosts:
//!
//! - `auth.test`: `POST /token` for `client_credentials` (client id and secret checked),
//!   `refresh_token` (the current refresh token only; each use rotates it, so a replayed one
//!   is refused with `invalid_grant`) and the JWT-bearer grant of Google service accounts
//!   (RS256 assertion checked with the account's public key); `POST
//!   /app/installations/42/access_tokens` for a GitHub App (RS256 JWT from app 12345).
//!   Access tokens live `ttl` seconds (2 by default).
//! - `api.test`: any path answers `{"auth_ok": …}`: whether the bearer token is one this
//!   endpoint minted.
//!
//! State lives in the upstream's `Keys` map: `cc:<client_id>` (its secret), `rt:current`,
//! `pubkey` (hex DER of the RSA public key), `valid:<token>`, `count:<grant>`.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::upstream::{json_resp, Body, Keys};

static N: AtomicU64 = AtomicU64::new(0);

fn next(prefix: &str) -> String {
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

fn bump(keys: &Keys, what: &str) {
    let k = format!("count:{what}");
    let n: u64 = keys.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    keys.set(&k, &(n + 1).to_string());
}

/// The claims of an RS256 JWT that verifies with the registered public key.
fn verified_claims(keys: &Keys, jwt: &str) -> Option<Value> {
    let der = hex::decode(keys.get("pubkey")?).ok()?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return None;
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let sig = b64.decode(s).ok()?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, der)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .ok()?;
    serde_json::from_slice(&b64.decode(c).ok()?).ok()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds (civil-from-days).
fn rfc3339(t: u64) -> String {
    let (days, secs) = ((t / 86_400) as i64, t % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn mint(keys: &Keys, prefix: &str) -> String {
    let t = next(prefix);
    keys.set(&format!("valid:{t}"), "1");
    t
}

fn ttl(keys: &Keys) -> u64 {
    keys.get("ttl").and_then(|v| v.parse().ok()).unwrap_or(2)
}

/// Answers requests for `auth.test` and `api.test`; `Err` hands the request back.
pub async fn handle(
    keys: &Keys,
    host: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Request<Incoming>> {
    match host {
        // Webhook-style: `x-signature: sha256=<hex HMAC-SHA256(key, "<x-timestamp>.<body>")>`.
        "hooks.test" => {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let (sig, ts) = (h("x-signature"), h("x-timestamp"));
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let key = keys.get("hmac:key").unwrap_or_default();
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
            let mut msg = format!("{ts}.").into_bytes();
            msg.extend_from_slice(&body);
            let want = format!(
                "sha256={}",
                hex::encode(ring::hmac::sign(&k, &msg).as_ref())
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let fresh = ts.parse::<u64>().is_ok_and(|t| t.abs_diff(now) < 300);
            Ok(json_resp(
                200,
                json!({ "auth_ok": fresh && sig == want, "bytes": body.len() }),
            ))
        }
        "api.test" => {
            let ok = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| keys.get(&format!("valid:{t}")).is_some());
            Ok(json_resp(200, json!({ "auth_ok": ok })))
        }
        "auth.test" => {
            let path = req.uri().path().to_string();
            let bearer = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if path == "/app/installations/42/access_tokens" {
                let claims = bearer.and_then(|j| verified_claims(keys, &j));
                let ok = claims.as_ref().is_some_and(|c| {
                    c["iss"] == "12345"
                        && c["exp"].as_u64().unwrap_or(0) - c["iat"].as_u64().unwrap_or(0) <= 600
                });
                if !ok {
                    return Ok(json_resp(
                        401,
                        json!({"message": "A JSON web token could not be decoded"}),
                    ));
                }
                bump(keys, "github");
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let exp = rfc3339(now + ttl(keys));
                return Ok(json_resp(
                    201,
                    json!({"token": mint(keys, "ghs_"), "expires_at": exp}),
                ));
            }
            if path != "/token" {
                return Ok(json_resp(404, json!({"error": "not found"})));
            }
            let f = crate::idp::form(&String::from_utf8_lossy(&body));
            let form = |k: &str| f.get(k).cloned();
            let grant = form("grant_type").unwrap_or_default();
            bump(keys, &grant);
            match grant.as_str() {
                "client_credentials" => {
                    let id = form("client_id").unwrap_or_default();
                    let ok = keys
                        .get(&format!("cc:{id}"))
                        .is_some_and(|s| Some(s) == form("client_secret"));
                    if !ok {
                        return Ok(json_resp(401, json!({"error": "invalid_client"})));
                    }
                    Ok(json_resp(
                        200,
                        json!({"access_token": mint(keys, "at-cc-"), "token_type": "Bearer", "expires_in": ttl(keys)}),
                    ))
                }
                "refresh_token" => {
                    let given = form("refresh_token");
                    if given.is_none() || given != keys.get("rt:current") {
                        return Ok(json_resp(400, json!({"error": "invalid_grant"})));
                    }
                    let rt = next("rt-");
                    keys.set("rt:current", &rt);
                    Ok(json_resp(
                        200,
                        json!({"access_token": mint(keys, "at-rt-"), "token_type": "Bearer", "expires_in": ttl(keys), "refresh_token": rt}),
                    ))
                }
                "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                    let claims = form("assertion").and_then(|j| verified_claims(keys, &j));
                    let ok = claims.is_some_and(|c| {
                        c["iss"] == "bot@airlock-test.iam.gserviceaccount.com"
                            && c["aud"] == "https://auth.test/token"
                            && c["scope"] == "https://www.googleapis.com/auth/cloud-platform"
                    });
                    if !ok {
                        return Ok(json_resp(400, json!({"error": "invalid_grant"})));
                    }
                    Ok(json_resp(
                        200,
                        json!({"access_token": mint(keys, "ya29."), "token_type": "Bearer", "expires_in": ttl(keys)}),
                    ))
                }
                _ => Ok(json_resp(400, json!({"error": "unsupported_grant_type"}))),
            }
        }
        _ => Err(req),
    }
}
