//! Userpass: username and password, for small setups and External Secrets Operator's
//! `userPass` auth. Passwords are stored as Argon2id (RFC 9106; 19 MiB, 2 passes, 1 lane,
//! OWASP's minimum; random 16-byte salt) and compared in constant time; an unknown user costs
//! the same hash, so timing does not tell which usernames exist. A password stored with an
//! older scheme (PBKDF2-HMAC-SHA256) or older parameters still logs in, and is re-hashed
//! with the current ones at that login.
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

/// How a password is stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kdf {
    /// Records written before Argon2id: PBKDF2-HMAC-SHA256 with `iterations`.
    #[default]
    #[serde(rename = "pbkdf2-sha256")]
    Pbkdf2Sha256,
    /// Argon2id, version 0x13, with `m_cost` KiB, `t_cost` passes and `p_cost` lanes.
    #[serde(rename = "argon2id")]
    Argon2id,
}

/// The current Argon2id parameters: memory (KiB), passes, lanes.
pub const ARGON2: (u32, u32, u32) = (19 * 1024, 2, 1);

/// At most this many password hashes run at once (the rest wait), so a flood of logins
/// cannot take every core or more than a few hashes' memory.
fn kdf_slots() -> &'static tokio::sync::Semaphore {
    static S: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        tokio::sync::Semaphore::new(n.div_ceil(2).max(1))
    })
}

/// What a stored hash was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheme {
    pub kdf: Kdf,
    pub iterations: u32,
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Scheme {
    pub const CURRENT: Scheme = Scheme {
        kdf: Kdf::Argon2id,
        iterations: 0,
        m_cost: ARGON2.0,
        t_cost: ARGON2.1,
        p_cost: ARGON2.2,
    };

    fn of(u: &User) -> Scheme {
        Scheme {
            kdf: u.kdf,
            iterations: u.iterations,
            m_cost: u.m_cost,
            t_cost: u.t_cost,
            p_cost: u.p_cost,
        }
    }

    /// The 32-byte hash of `password` (blocking: call it off the async workers).
    pub fn hash(&self, password: &[u8], salt: &[u8]) -> Result<[u8; 32], String> {
        match self.kdf {
            Kdf::Pbkdf2Sha256 => Ok(pbkdf2(password, salt, self.iterations)),
            Kdf::Argon2id => {
                let params = argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
                    .map_err(|e| e.to_string())?;
                let a = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = [0u8; 32];
                a.hash_password_into(password, salt, &mut out)
                    .map_err(|e| e.to_string())?;
                Ok(out)
            }
        }
    }
}

/// The KDF on the blocking pool, within the KDF slots.
async fn kdf(scheme: Scheme, password: Zeroizing<Vec<u8>>, salt: Vec<u8>) -> ApiResult<[u8; 32]> {
    let _permit = kdf_slots()
        .acquire()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tokio::task::spawn_blocking(move || scheme.hash(&password, &salt))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))
}

#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct User {
    pub name: String,
    /// hex(salt) and hex(hash).
    pub salt: String,
    pub hash: String,
    pub kdf: Kdf,
    /// PBKDF2 iterations (legacy records).
    pub iterations: u32,
    /// Argon2id parameters.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    #[serde(flatten)]
    pub token: TokenSettings,
}

impl User {
    fn set_hash(&mut self, scheme: Scheme, salt: &[u8], hash: &[u8; 32]) {
        self.salt = hex::encode(salt);
        self.hash = hex::encode(hash);
        self.kdf = scheme.kdf;
        self.iterations = scheme.iterations;
        self.m_cost = scheme.m_cost;
        self.t_cost = scheme.t_cost;
        self.p_cost = scheme.p_cost;
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output (legacy records only).
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

/// Sets `u`'s password with the current scheme (off the async workers: it is deliberately
/// slow).
async fn set_password(u: &mut User, password: &str) -> ApiResult<()> {
    let salt = random_bytes::<16>();
    let h = kdf(
        Scheme::CURRENT,
        Zeroizing::new(password.as_bytes().to_vec()),
        salt.to_vec(),
    )
    .await?;
    u.set_hash(Scheme::CURRENT, &salt, &h);
    Ok(())
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
                let g = ctx.storage.lock(&k).await?;
                let mut u = need_user(ctx, &k).await?;
                set_password(&mut u, &pw).await?;
                g.put_json(&k, &u).await?;
                Ok(Response::empty())
            }
            H::Policies => {
                let k = user_key(&name()?);
                let g = ctx.storage.lock(&k).await?;
                let mut u = need_user(ctx, &k).await?;
                u.token.update(req)?;
                u.token.token_policies.sort();
                g.put_json(&k, &u).await?;
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
    let g = ctx.storage.lock(&k).await?;
    let existing: Option<User> = ctx.storage.get_json(&k).await?;
    let mut u = existing.clone().unwrap_or_default();
    u.name = name.to_string();
    match req.str_field("password")?.filter(|p| !p.is_empty()) {
        Some(pw) => {
            let pw = Zeroizing::new(pw);
            set_password(&mut u, &pw).await?;
        }
        None if existing.is_none() => {
            return Err(ApiError::bad_request(
                "must provide either password or password_hash",
            ));
        }
        None => {}
    }
    u.token.update(req)?;
    g.put_json(&k, &u).await?;
    Ok(Response::empty())
}

const INVALID: &str = "invalid username or password";

/// Stores the password just verified with the current scheme, unless it changed meanwhile.
/// A failure here never fails the login: the old hash keeps working.
async fn rehash(ctx: &Ctx, name: &str, old_hash: &str, pw: &str) {
    let k = user_key(name);
    let mut fresh = User::default();
    if set_password(&mut fresh, pw).await.is_err() {
        return;
    }
    let Ok(g) = ctx.storage.lock(&k).await else {
        return;
    };
    let Ok(Some(mut u)) = ctx.storage.get_json::<User>(&k).await else {
        return;
    };
    if u.hash != old_hash {
        return;
    }
    (
        u.salt,
        u.hash,
        u.kdf,
        u.iterations,
        u.m_cost,
        u.t_cost,
        u.p_cost,
    ) = (
        fresh.salt,
        fresh.hash,
        fresh.kdf,
        fresh.iterations,
        fresh.m_cost,
        fresh.t_cost,
        fresh.p_cost,
    );
    if let Err(e) = g.put_json(&k, &u).await {
        tracing::warn!(error = ?e.errors, "userpass: re-hashing a password failed; the old hash stays");
    }
}

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
    let (scheme, salt, want) = match &u {
        Some(u) => (
            Scheme::of(u),
            hex::decode(&u.salt).unwrap_or_default(),
            hex::decode(&u.hash).unwrap_or_default(),
        ),
        None => (Scheme::CURRENT, vec![0u8; 16], vec![1u8; 32]),
    };
    let got = kdf(scheme, Zeroizing::new(pw.as_bytes().to_vec()), salt).await?;
    let ok = ct_eq(&got, &want);
    let Some(u) = u.filter(|_| ok) else {
        return Err(ApiError::bad_request(INVALID));
    };
    if scheme != Scheme::CURRENT {
        rehash(ctx, &name, &u.hash, &pw).await;
    }
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
