//! Browser sessions of the web UI. A session is a random id in an HttpOnly, SameSite=Strict
//! cookie (Secure, and `__Host-` named, behind TLS); the token it stands for stays on the
//! server, in this node's memory. Every request a session makes must also carry the
//! session's CSRF token in `X-Airlock-CSRF`: a cross-site page can send the cookie (or
//! not, SameSite) but never a custom header.
//!
//! Invariants: the map is keyed by the SHA-256 of the id, so a memory dump does not give
//! usable cookies by itself; a session ends at the earliest of its idle timeout, its
//! absolute lifetime and its token's expiry; `Debug` never prints a token or an id.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The cookie's name over plain HTTP.
pub const COOKIE: &str = "airlock_session";
/// The cookie's name behind TLS: the `__Host-` prefix makes browsers refuse it unless it
/// is Secure, has `Path=/` and no `Domain`.
pub const COOKIE_TLS: &str = "__Host-airlock_session";
/// The header every session request carries.
pub const CSRF_HEADER: &str = "x-airlock-csrf";

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// No session lives longer than this, whatever its token's TTL.
pub const MAX_LIFE: Duration = Duration::from_secs(12 * 3600);
/// At most this many live sessions per node; a new sign-in beyond it is refused.
pub const MAX_SESSIONS: usize = 10_000;

struct Session {
    token: Zeroizing<String>,
    csrf: Zeroizing<String>,
    last_used: Instant,
    ends: Instant,
}

/// What a request gets from a valid session.
pub struct Resolved {
    pub token: Zeroizing<String>,
    pub csrf: Zeroizing<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolved(<redacted>)")
    }
}

/// Why a session request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such session, or it ended.
    Unknown,
    /// The session exists but the request lacks its CSRF token.
    Csrf,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.map.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Sessions({n})")
    }
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(airlock_logical::util::random_bytes::<32>())
}

/// Equality that takes the same time wherever the inputs differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// A new session for `token`, living at most `ttl` (the token's remaining life; 0 is
    /// "no expiry"). Returns (id, csrf), or `None` when the node holds too many.
    pub fn create(
        &self,
        token: &str,
        ttl: Duration,
    ) -> Option<(Zeroizing<String>, Zeroizing<String>)> {
        let now = Instant::now();
        let life = if ttl.is_zero() {
            MAX_LIFE
        } else {
            ttl.min(MAX_LIFE)
        };
        let id = Zeroizing::new(random_token());
        let csrf = Zeroizing::new(random_token());
        let mut m = self.map.lock().ok()?;
        if m.len() >= MAX_SESSIONS {
            m.retain(|_, s| live(s, now));
            if m.len() >= MAX_SESSIONS {
                return None;
            }
        }
        m.insert(
            key_of(&id),
            Session {
                token: Zeroizing::new(token.to_string()),
                csrf: csrf.clone(),
                last_used: now,
                ends: now + life,
            },
        );
        Some((id, csrf))
    }

    /// The session `id` names, if it is live; `csrf` must be its CSRF token unless
    /// `csrf_free` (reading the session's own description).
    pub fn resolve(
        &self,
        id: &str,
        csrf: Option<&str>,
        csrf_free: bool,
    ) -> Result<Resolved, Refusal> {
        let now = Instant::now();
        let mut m = self.map.lock().map_err(|_| Refusal::Unknown)?;
        let k = key_of(id);
        let Some(s) = m.get_mut(&k) else {
            return Err(Refusal::Unknown);
        };
        if !live(s, now) {
            m.remove(&k);
            return Err(Refusal::Unknown);
        }
        if !csrf_free && !csrf.is_some_and(|c| same(c.as_bytes(), s.csrf.as_bytes())) {
            return Err(Refusal::Csrf);
        }
        s.last_used = now;
        Ok(Resolved {
            token: s.token.clone(),
            csrf: s.csrf.clone(),
        })
    }

    /// Ends the session `id`; returns its token.
    pub fn end(&self, id: &str) -> Option<Zeroizing<String>> {
        let mut m = self.map.lock().ok()?;
        m.remove(&key_of(id)).map(|s| s.token)
    }

    /// Ends every session (the server sealed: their tokens are unusable anyway).
    pub fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now < s.ends && now.duration_since(s.last_used) < IDLE
}

/// The session id in a `Cookie` header (either name).
pub fn cookie_id(cookie_header: &str) -> Option<&str> {
    cookie_header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == COOKIE || k == COOKIE_TLS)
            .then_some(v.trim())
            .filter(|v| !v.is_empty() && v.len() <= 128)
    })
}

/// The `Set-Cookie` value for a new session (or, with `id` empty, one that clears it).
pub fn set_cookie(id: &str, tls: bool) -> String {
    let name = if tls { COOKIE_TLS } else { COOKIE };
    let age = if id.is_empty() { 0 } else { MAX_LIFE.as_secs() };
    let secure = if tls { "; Secure" } else { "" };
    format!("{name}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_needs_its_csrf_token() {
        let s = Sessions::default();
        let (id, csrf) = s.create("hvs.tok", Duration::from_secs(60)).unwrap();
        assert_eq!(s.resolve(&id, None, false).unwrap_err(), Refusal::Csrf);
        assert_eq!(
            s.resolve(&id, Some("wrong"), false).unwrap_err(),
            Refusal::Csrf
        );
        let r = s.resolve(&id, Some(&csrf), false).unwrap();
        assert_eq!(r.token.as_str(), "hvs.tok");
        assert!(s.resolve(&id, None, true).is_ok());
        assert_eq!(
            s.resolve("other", Some(&csrf), false).unwrap_err(),
            Refusal::Unknown
        );
        assert_eq!(s.end(&id).unwrap().as_str(), "hvs.tok");
        assert_eq!(
            s.resolve(&id, Some(&csrf), false).unwrap_err(),
            Refusal::Unknown
        );
        assert!(!format!("{:?}", s.resolve("x", None, true)).contains("hvs"));
    }

    #[test]
    fn cookies_are_read_and_written_with_their_flags() {
        assert_eq!(cookie_id("a=b; airlock_session=xyz; c=d"), Some("xyz"));
        assert_eq!(cookie_id("__Host-airlock_session=q"), Some("q"));
        assert_eq!(cookie_id("airlock_session="), None);
        assert_eq!(cookie_id("other=1"), None);
        let c = set_cookie("abc", true);
        assert!(c.starts_with("__Host-airlock_session=abc;"));
        for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(!set_cookie("abc", false).contains("Secure"));
        assert!(set_cookie("", false).contains("Max-Age=0"));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
