//! Minting in the request path (see [`crate::mint`]): a binding's access token is taken from
//! its cell while fresh, and minted at the token endpoint (through the same verified upstream
//! TLS and SSRF guard as everything else) when missing or stale; one request mints while the
//! others wait. A rotated refresh token is stored back in Airlock with check-and-set.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderValue;
use hyper::Request;
use zeroize::Zeroizing;

use crate::mint::{self, TokenRequest};
use crate::{AgentRuntime, Broker};

/// Largest token endpoint answer read.
const MAX_ANSWER: usize = 1 << 20;

impl Broker {
    /// The current token of binding `i` (which mints), minting one if needed.
    pub(super) async fn minted(
        &self,
        agent: &AgentRuntime,
        i: usize,
    ) -> Result<Arc<Zeroizing<String>>, String> {
        let (Some(b), Some(Some(cell))) = (agent.bindings.get(i), agent.tokens.get(i)) else {
            return Err("no token cell".into());
        };
        let Some(m) = &b.mint else {
            return Err("not a minting binding".into());
        };
        let mut cur = cell.cur.lock().await;
        let now = super::unix_now();
        if let Some((t, minted, expires)) = &*cur {
            if !mint::stale(*minted, *expires, now) {
                return Ok(t.clone());
            }
        }
        'mint: for attempt in 0..3 {
            let value = |k: &str| {
                agent
                    .cache
                    .get(&b.secret_path, k)
                    .or_else(|| agent.cache.get(&b.secret_path, &format!("?{k}")))
                    .map(|v| (*v).clone())
            };
            let used_rt = value("refresh_token");
            let req = mint::request(m, value, now)?;
            let (status, body) = self.token_post(&req).await?;
            if (200..300).contains(&status) {
                let a = mint::answer(m, &body, now)?;
                if let (Some(new), Some(old)) = (&a.refresh_token, &used_rt) {
                    if new.as_str() != old.as_str() {
                        self.store_refresh_token(agent, &b.secret_path, old, new)
                            .await;
                    }
                }
                let token = Arc::new(a.token);
                *cur = Some((token.clone(), now, a.expires));
                return Ok(token);
            }
            // A refresh token another broker rotated first: read the entry again (that broker
            // may still be storing the new one, so a few times over about a second) and retry.
            if m.kind == "oauth2_refresh_token" && attempt < 2 && (400..500).contains(&status) {
                for wait_ms in [0u64, 100, 250, 500] {
                    tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
                    agent.cache.refresh_path(&b.secret_path).await?;
                    if value("refresh_token").as_deref().map(String::as_str)
                        != used_rt.as_deref().map(String::as_str)
                    {
                        continue 'mint;
                    }
                }
            }
            return Err(format!("the token endpoint answered {status}"));
        }
        Err("the token endpoint refused the refresh token".into())
    }

    /// Stores a rotated refresh token (check-and-set against the one just used); if another
    /// broker stored one first, the entry is read again instead.
    async fn store_refresh_token(
        &self,
        agent: &AgentRuntime,
        path: &str,
        old: &Zeroizing<String>,
        new: &Zeroizing<String>,
    ) {
        match agent
            .cache
            .replace_if(path, "refresh_token", old, new)
            .await
        {
            Ok(true) => agent.cache.set(path, "refresh_token", new.clone()),
            Ok(false) => {
                let _ = agent.cache.refresh_path(path).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "broker: storing a rotated refresh token failed; it is kept in memory");
                agent.cache.set(path, "refresh_token", new.clone());
            }
        }
    }

    /// POSTs a token request; the status and body.
    async fn token_post(&self, t: &TokenRequest) -> Result<(u16, Bytes), String> {
        let rest = t
            .url
            .strip_prefix("https://")
            .ok_or("the token endpoint must be https")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| "bad token endpoint port")?),
            None => (authority, 443u16),
        };
        let body = t
            .form
            .as_ref()
            .map(|f| f.as_bytes().to_vec())
            .unwrap_or_default();
        let mut req = Request::post(path)
            .header("accept", "application/json")
            .header("user-agent", "airlock-broker")
            .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
            .map_err(|e| format!("token request: {e}"))?;
        if t.form.is_some() {
            req.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        if let Some(jwt) = &t.bearer {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", jwt.as_str()))
                .map_err(|_| "bad JWT")?;
            v.set_sensitive(true);
            req.headers_mut().insert(hyper::header::AUTHORIZATION, v);
        }
        let resp = self
            .upstream
            .send(host, port, false, req)
            .await
            .map_err(|e| format!("the token endpoint: {}", e.message))?;
        let status = resp.status().as_u16();
        let body = super::read_whole(resp.into_body(), MAX_ANSWER)
            .await
            .ok_or("the token endpoint's answer is too large")?;
        Ok((status, body))
    }
}
