//! Userpass: username and password, for small setups and External Secrets Operator's
//! `userPass` auth. Passwords are stored as PBKDF2-HMAC-SHA256 (random salt, 100,000
//! iterations) and compared in constant time; an unknown user costs the same hash, so
//! timing does not tell which usernames exist.
//!
//! Storage below the mount prefix: `user/<name>` → [`User`].

use std::collections::BTreeMap;

use airlock_logical::auth::{check_name, ct_eq, LoginOutcome, TokenSettings, TOKEN_FIELDS};
use airlock_logical::util::random_bytes;
use airlock_logical::{ApiError, ApiResult, Ctx, Engine, Field, Op, PathSpec, Request, Response};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{item_exists, list_names, logged_in};

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

fn user_key(name: &str) -> String {
    format!("user/{name}")
}

fn user_json(u: &User) -> Value {
    let mut m = Map::new();
    u.token.write_json(&mut m);
    Value::Object(m)
}

/// The userpass auth method.
pub struct Userpass;

#[derive(Clone, Copy)]
pub enum H {
    Login,
    List,
    Read,
    Write,
    Delete,
    Password,
    Policies,
}

const USER_FIELDS: &[Field] = &[Field::str("password").sensitive()];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("login/{name+}", &[(Op::Update, H::Login)])
        .fields(&[USER_FIELDS])
        .login()
        .help("Logs in with a username and password.", ""),
    PathSpec::new("users/?", &[(Op::List, H::List), (Op::Read, H::List)])
        .help("The users of this mount.", ""),
    PathSpec::new(
        "users/{name}/?",
        &[
            (Op::Read, H::Read),
            (Op::Update, H::Write),
            (Op::Delete, H::Delete),
        ],
    )
    .fields(&[USER_FIELDS, TOKEN_FIELDS])
    .existence()
    .help("A user: password and the tokens its logins get.", ""),
    PathSpec::new("users/{name}/password", &[(Op::Update, H::Password)])
        .fields(&[USER_FIELDS])
        .help("Changes a user's password.", ""),
    PathSpec::new("users/{name}/policies", &[(Op::Update, H::Policies)])
        .fields(&[TOKEN_FIELDS])
        .help("Changes a user's policies.", ""),
];

#[async_trait]
impl Engine for Userpass {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    fn login_subject(&self, _req: &Request, rel: &str) -> String {
        rel.strip_prefix("login/").unwrap_or("").to_string()
    }

    async fn exists(&self, ctx: &Ctx, _h: H, req: &Request) -> ApiResult<Option<bool>> {
        item_exists(ctx, "user", req.cap("name")).await
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        let raw = req.cap("name");
        let name = || check_name(raw, "user").map(|n| n.to_lowercase());
        match h {
            H::Login => login(ctx, raw, req).await,
            H::List => list_names(ctx, "user/").await,
            H::Read => super::read_item(ctx, &user_key(&name()?), user_json).await,
            H::Delete => super::delete_item(ctx, &user_key(&name()?)).await,
            H::Write => write_user(ctx, &name()?, req).await,
            H::Password => {
                let k = user_key(&name()?);
                let pw = Zeroizing::new(
                    req.str_field("password")?
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| {
                            ApiError::bad_request("must provide either password or password_hash")
                        })?,
                );
                let _g = ctx.storage.lock(&k).await;
                let mut u = need_user(ctx, &k).await?;
                let (s, h) = hash_password(&pw).await?;
                (u.salt, u.hash, u.iterations) = (s, h, ITERATIONS);
                ctx.storage.put_json(&k, &u).await?;
                Ok(Response::empty())
            }
            H::Policies => {
                let k = user_key(&name()?);
                let _g = ctx.storage.lock(&k).await;
                let mut u = need_user(ctx, &k).await?;
                u.token.update(req)?;
                u.token.token_policies.sort();
                ctx.storage.put_json(&k, &u).await?;
                Ok(Response::empty())
            }
        }
    }
}

async fn need_user(ctx: &Ctx, k: &str) -> ApiResult<User> {
    ctx.storage
        .get_json(k)
        .await?
        .ok_or_else(|| ApiError::bad_request("username does not exist"))
}

async fn write_user(ctx: &Ctx, name: &str, req: &Request) -> ApiResult<Response> {
    let k = user_key(name);
    let _g = ctx.storage.lock(&k).await;
    let existing: Option<User> = ctx.storage.get_json(&k).await?;
    let mut u = existing.clone().unwrap_or_default();
    u.name = name.to_string();
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
    ctx.storage.put_json(&k, &u).await?;
    Ok(Response::empty())
}

const INVALID: &str = "invalid username or password";

async fn login(ctx: &Ctx, raw: &str, req: &Request) -> ApiResult<Response> {
    let name = raw.trim().to_lowercase();
    let pw = Zeroizing::new(
        req.str_field("password")?
            .ok_or_else(|| ApiError::bad_request("missing password"))?,
    );
    // Absurdly long passwords are refused before any hashing.
    if pw.len() > 4096 {
        return Err(ApiError::bad_request(INVALID));
    }
    let u: Option<User> = if check_name(&name, "user").is_ok() {
        ctx.storage.get_json(&user_key(&name)).await?
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
    Ok(logged_in(LoginOutcome {
        settings: u.token.clone(),
        meta: BTreeMap::from([("username".to_string(), u.name.clone())]),
        display_name: u.name.clone(),
        alias: u.name,
        extra_policies: Vec::new(),
    }))
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
