//! Userpass: username and password, for small setups and External Secrets Operator's
//! `userPass` auth. Passwords are stored as PBKDF2-HMAC-SHA256 (random salt, 100,000
//! iterations) and compared in constant time; an unknown user costs the same hash, so
//! timing does not tell which usernames exist.
//!
//! Storage below the mount prefix: `user/<name>` → [`User`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{check_name, ct_eq, key, list_names, LoginOutcome, TokenSettings};
use crate::core::{random_bytes, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::mounts::MountEntry;

const ITERATIONS: u32 = 100_000;

/// At most this many password hashes run at once (the rest wait), so a flood of logins
/// cannot take every core.
fn kdf_slots() -> &'static tokio::sync::Semaphore {
    static S: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        tokio::sync::Semaphore::new(n.div_ceil(2).max(1))
    })
}

/// PBKDF2 on the blocking pool, within the KDF slots.
async fn kdf(password: Zeroizing<Vec<u8>>, salt: Vec<u8>, iterations: u32) -> ApiResult<[u8; 32]> {
    let _permit = kdf_slots()
        .acquire()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tokio::task::spawn_blocking(move || pbkdf2(&password, &salt, iterations))
        .await
        .map_err(|e| ApiError::internal(&e))
}

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct User {
    pub name: String,
    /// hex(salt) and hex(PBKDF2 output).
    pub salt: String,
    pub hash: String,
    pub iterations: u32,
    #[serde(flatten)]
    pub token: TokenSettings,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output.
pub fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
        salt,
        password,
        &mut out,
    );
    out
}

/// Hashes off the async workers (the KDF is deliberately slow).
async fn hash_password(password: &str) -> ApiResult<(String, String)> {
    let salt = random_bytes::<16>();
    let h = kdf(
        Zeroizing::new(password.as_bytes().to_vec()),
        salt.to_vec(),
        ITERATIONS,
    )
    .await?;
    Ok((hex::encode(salt), hex::encode(h)))
}

fn user_key(m: &MountEntry, name: &str) -> String {
    key(m, &format!("user/{name}"))
}

fn user_json(u: &User) -> Value {
    let mut m = Map::new();
    u.token.write_json(&mut m);
    Value::Object(m)
}

pub async fn handle(
    core: &Arc<Core>,
    m: &MountEntry,
    sub: &str,
    req: &Request,
) -> ApiResult<Response> {
    let parts: Vec<&str> = sub.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["users"] if matches!(req.op, Op::List | Op::Read) => list_names(core, m, "user/").await,
        ["users", name] => user_rw(core, m, name, req).await,
        ["users", name, "password"] if req.op == Op::Update => {
            let name = check_name(name, "user")?.to_lowercase();
            let pw = Zeroizing::new(
                req.str_field("password")?
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_request("must provide either password or password_hash")
                    })?,
            );
            let _g = core.locks.lock(&user_key(m, &name)).await;
            let mut u: User = core
                .barrier
                .get_json(&user_key(m, &name))
                .await?
                .ok_or_else(|| ApiError::bad_request("username does not exist"))?;
            let (s, h) = hash_password(&pw).await?;
            (u.salt, u.hash, u.iterations) = (s, h, ITERATIONS);
            core.barrier.put_json(&user_key(m, &name), &u).await?;
            Ok(Response::empty())
        }
        ["users", name, "policies"] if req.op == Op::Update => {
            let name = check_name(name, "user")?.to_lowercase();
            let _g = core.locks.lock(&user_key(m, &name)).await;
            let mut u: User = core
                .barrier
                .get_json(&user_key(m, &name))
                .await?
                .ok_or_else(|| ApiError::bad_request("username does not exist"))?;
            u.token.update(req)?;
            u.token.token_policies.sort();
            core.barrier.put_json(&user_key(m, &name), &u).await?;
            Ok(Response::empty())
        }
        _ => Err(ApiError::unsupported_path()),
    }
}

async fn user_rw(
    core: &Arc<Core>,
    m: &MountEntry,
    raw: &str,
    req: &Request,
) -> ApiResult<Response> {
    let name = check_name(raw, "user")?.to_lowercase();
    let k = user_key(m, &name);
    match req.op {
        Op::Read => super::read_item(core, &k, user_json).await,
        Op::Create | Op::Update => {
            let _g = core.locks.lock(&k).await;
            let existing: Option<User> = core.barrier.get_json(&k).await?;
            let mut u = existing.clone().unwrap_or_default();
            u.name = name.clone();
            match req.str_field("password")?.filter(|p| !p.is_empty()) {
                Some(pw) => {
                    let pw = Zeroizing::new(pw);
                    let (s, h) = hash_password(&pw).await?;
                    (u.salt, u.hash, u.iterations) = (s, h, ITERATIONS);
                }
                None if existing.is_none() => {
                    return Err(ApiError::bad_request(
                        "must provide either password or password_hash",
                    ));
                }
                None => {}
            }
            u.token.update(req)?;
            core.barrier.put_json(&k, &u).await?;
            Ok(Response::empty())
        }
        Op::Delete => super::delete_item(core, k).await,
        _ => Err(ApiError::unsupported_operation()),
    }
}

const INVALID: &str = "invalid username or password";

pub async fn login(
    core: &Arc<Core>,
    m: &MountEntry,
    sub: &str,
    req: &Request,
) -> ApiResult<LoginOutcome> {
    let name = sub
        .strip_prefix("login/")
        .unwrap_or("")
        .trim()
        .to_lowercase();
    let pw = Zeroizing::new(
        req.str_field("password")?
            .ok_or_else(|| ApiError::bad_request("missing password"))?,
    );
    // Absurdly long passwords are refused before any hashing.
    if pw.len() > 4096 {
        return Err(ApiError::bad_request(INVALID));
    }
    let u: Option<User> = if check_name(&name, "user").is_ok() {
        core.barrier.get_json(&user_key(m, &name)).await?
    } else {
        None
    };
    // The same work whether or not the user exists.
    let (salt, want, iters) = match &u {
        Some(u) => (
            hex::decode(&u.salt).unwrap_or_default(),
            hex::decode(&u.hash).unwrap_or_default(),
            u.iterations,
        ),
        None => (vec![0u8; 16], vec![1u8; 32], ITERATIONS),
    };
    let got = kdf(Zeroizing::new(pw.as_bytes().to_vec()), salt, iters).await?;
    let ok = ct_eq(&got, &want);
    let Some(u) = u.filter(|_| ok) else {
        return Err(ApiError::bad_request(INVALID));
    };
    let cidrs = airlock_core::cidr::parse_list(&u.token.token_bound_cidrs)
        .map_err(|e| ApiError::internal(&e))?;
    if !airlock_core::cidr::allows(&cidrs, req.remote.map(|r| r.ip())) {
        return Err(ApiError::bad_request(INVALID));
    }
    Ok(LoginOutcome {
        settings: u.token.clone(),
        meta: BTreeMap::from([("username".to_string(), u.name.clone())]),
        display_name: u.name.clone(),
        alias: u.name,
        extra_policies: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, dkLen=64 (first 32).
        let out = pbkdf2(b"passwd", b"salt", 1);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        let a = pbkdf2(b"pw", b"s1", 3);
        assert_ne!(a, pbkdf2(b"pw", b"s2", 3));
        assert_ne!(a, pbkdf2(b"pw", b"s1", 4));
    }

    #[test]
    fn debug_hides_hash() {
        let u = User {
            name: "a".into(),
            hash: "deadbeef".into(),
            ..Default::default()
        };
        assert!(!format!("{u:?}").contains("deadbeef"));
    }
}
