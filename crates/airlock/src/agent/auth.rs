//! auto_auth: log in with the configured method, hand the token to the sinks and the
//! template runner, keep it alive (renew-self at 2/3 of its TTL), and log in again, with
//! backoff, when it cannot be renewed or a renewal fails. The token never reaches a log
//! line: it lives in [`Token`], whose `Debug` prints `***`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::config::{Method, MethodKind};
use super::lease::{self, TokenStep};
use super::Log;
use crate::client::Client;

/// A token (or, with wrapping, the wrap-info JSON), shared without copies, zeroed on drop.
#[derive(Clone)]
pub struct Token(Arc<Zeroizing<String>>);

impl Token {
    pub fn new(s: String) -> Self {
        Token(Arc::new(Zeroizing::new(s)))
    }

    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl PartialEq for Token {
    fn eq(&self, o: &Self) -> bool {
        self.0.as_str() == o.0.as_str()
    }
}

/// What auto_auth hands out.
#[derive(Clone, Debug, PartialEq)]
pub enum Issued {
    /// A token the agent uses and the sinks write.
    Token(Token),
    /// The login response wrapped (method `wrap_ttl`): wrap-info JSON for the sink only.
    Wrapped(Token),
}

/// A client that sends `token`.
pub fn with_token(base: &Client, token: &str) -> Client {
    let mut c = base.clone();
    c.token = Some(Zeroizing::new(token.to_string()));
    c.wrap_ttl = None;
    c
}

/// One request; a non-2xx answer becomes an error naming the path and the server's errors.
pub async fn api(cl: &Client, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let (status, v) = cl
        .raw(method, path, body, None)
        .await
        .with_context(|| format!("{method} {path}"))?;
    if (200..300).contains(&status) {
        return Ok(v);
    }
    Err(api_error(path, status, &v))
}

pub fn api_error(path: &str, status: u16, v: &Value) -> anyhow::Error {
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let msg = if errors.is_empty() {
        format!("{path}: server answered {status}")
    } else {
        format!("{path}: server answered {status}: {}", errors.join("; "))
    };
    Status(status, msg).into()
}

/// A non-2xx answer (as opposed to a connection failure).
#[derive(Debug)]
pub struct Status(pub u16, String);

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Status {}

/// The HTTP status of an error from [`api`], if the server answered.
pub fn status_of(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<Status>().map(|s| s.0)
}

struct Login {
    issued: Issued,
    ttl: u64,
    renewable: bool,
}

/// The method's state between logins: credentials read once (files may be removed after
/// reading) are kept for the next login.
struct State {
    method: Method,
    role_id: Option<Zeroizing<String>>,
    secret: Option<Zeroizing<String>>,
}

fn read_trimmed(path: &Path) -> Result<Option<Zeroizing<String>>> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = Zeroizing::new(s);
            let t = s.trim();
            Ok((!t.is_empty()).then(|| Zeroizing::new(t.to_string())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

impl State {
    /// The login request: (path, body); an empty path means a token file (lookup-self).
    async fn credentials(&mut self, base: &Client, log: Log) -> Result<(String, Value)> {
        let login = format!("{}/login", self.method.mount_path);
        match &self.method.kind {
            MethodKind::AppRole {
                role_id_file,
                secret_id_file,
                remove_secret_id_file,
                wrapping_path,
            } => {
                if let Some(r) = read_trimmed(role_id_file)? {
                    self.role_id = Some(r);
                }
                let role_id = self.role_id.as_ref().ok_or_else(|| {
                    anyhow!(
                        "no known role ID: {} is missing or empty",
                        role_id_file.display()
                    )
                })?;
                let Some(sid_file) = secret_id_file else {
                    return Ok((login, json!({"role_id": role_id.as_str()})));
                };
                if let Some(raw) = read_trimmed(sid_file)? {
                    let sid = match wrapping_path {
                        Some(p) => unwrap_secret_id(base, &raw, p, log).await?,
                        None => raw,
                    };
                    self.secret = Some(sid);
                    if *remove_secret_id_file {
                        if let Err(e) = std::fs::remove_file(sid_file) {
                            log.error(
                                "auth",
                                format!("removing {} after reading: {e}", sid_file.display()),
                            );
                        }
                    }
                }
                let sid = self.secret.as_ref().ok_or_else(|| {
                    anyhow!(
                        "no known secret ID: {} is missing or empty",
                        sid_file.display()
                    )
                })?;
                Ok((
                    login,
                    json!({"role_id": role_id.as_str(), "secret_id": sid.as_str()}),
                ))
            }
            MethodKind::Jwt {
                path,
                role,
                remove_after_reading,
            } => {
                if let Some(jwt) = read_trimmed(path)? {
                    self.secret = Some(jwt);
                    if *remove_after_reading {
                        if let Err(e) = std::fs::remove_file(path) {
                            log.error(
                                "auth",
                                format!("removing {} after reading: {e}", path.display()),
                            );
                        }
                    }
                }
                let jwt = self.secret.as_ref().ok_or_else(|| {
                    anyhow!(
                        "latest known jwt is empty, cannot authenticate ({} is missing)",
                        path.display()
                    )
                })?;
                Ok((login, json!({"role": role, "jwt": jwt.as_str()})))
            }
            MethodKind::Kubernetes { role, token_path } => {
                let jwt = read_trimmed(token_path)?.ok_or_else(|| {
                    anyhow!(
                        "service account token {} is missing or empty",
                        token_path.display()
                    )
                })?;
                Ok((login, json!({"role": role, "jwt": jwt.as_str()})))
            }
            MethodKind::TokenFile { path } => {
                if let Some(t) = read_trimmed(path)? {
                    self.secret = Some(t);
                }
                if self.secret.is_none() {
                    bail!(
                        "token file {} is missing or empty and no token is known",
                        path.display()
                    );
                }
                Ok((String::new(), Value::Null))
            }
        }
    }

    async fn login(&mut self, base: &Client, log: Log) -> Result<Login> {
        let (path, body) = self.credentials(base, log).await?;
        if path.is_empty() {
            // token_file: the token is checked, not exchanged.
            let t = self
                .secret
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let v = api(&with_token(base, &t), "GET", "auth/token/lookup-self", None).await?;
            let d = &v["data"];
            return Ok(Login {
                issued: Issued::Token(Token::new(t)),
                ttl: d["ttl"].as_u64().unwrap_or(0),
                renewable: d["renewable"].as_bool().unwrap_or(false),
            });
        }
        let mut cl = base.clone();
        cl.token = None;
        cl.wrap_ttl = self
            .method
            .wrap_ttl
            .map(|d| format!("{}s", d.as_secs().max(1)));
        let v = api(&cl, "POST", &path, Some(&body)).await?;
        drop(body);
        if self.method.wrap_ttl.is_some() {
            let wi = v
                .get("wrap_info")
                .filter(|w| w["token"].as_str().is_some_and(|t| !t.is_empty()))
                .ok_or_else(|| anyhow!("authentication returned nil wrap info"))?;
            return Ok(Login {
                issued: Issued::Wrapped(Token::new(wrap_info_json(wi))),
                ttl: 0,
                renewable: false,
            });
        }
        let auth = &v["auth"];
        let token = auth["client_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("authentication returned no client token"))?;
        Ok(Login {
            issued: Issued::Token(Token::new(token.to_string())),
            ttl: auth["lease_duration"].as_u64().unwrap_or(0),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        })
    }
}

/// The wrap info as Vault's agent writes it to a sink (Go's `SecretWrapInfo`, one line).
pub fn wrap_info_json(wi: &Value) -> String {
    let s = |k: &str| Value::String(wi[k].as_str().unwrap_or("").to_string());
    // Go encodes the struct's fields in their order: keep it.
    format!(
        "{{\"token\":{},\"accessor\":{},\"ttl\":{},\"creation_time\":{},\"creation_path\":{},\"wrapped_accessor\":{}}}\n",
        s("token"),
        s("accessor"),
        wi["ttl"].as_i64().unwrap_or(0),
        s("creation_time"),
        s("creation_path"),
        s("wrapped_accessor"),
    )
}

/// The secret ID behind a wrapping token, after checking the token was made where the
/// config says (a token minted elsewhere could hand the agent someone else's secret ID).
async fn unwrap_secret_id(
    base: &Client,
    wrapping: &str,
    expected: &str,
    log: Log,
) -> Result<Zeroizing<String>> {
    let wc = with_token(base, wrapping);
    let look = api(
        &wc,
        "POST",
        "sys/wrapping/lookup",
        Some(&json!({"token": wrapping})),
    )
    .await
    .context("looking up the wrapped secret ID")?;
    let found = look["data"]["creation_path"].as_str().unwrap_or("");
    if found.trim_matches('/') != expected {
        log.error(
            "auth",
            format!("SECURITY: unable to validate wrapping token creation path: expected {expected:?}, found {found:?}"),
        );
        bail!("unable to validate wrapping token creation path");
    }
    let v = api(&wc, "POST", "sys/wrapping/unwrap", None)
        .await
        .context("unwrapping the secret ID")?;
    let sid = v["data"]["secret_id"]
        .as_str()
        .ok_or_else(|| anyhow!("secret_id in response nil when unwrapping secret ID"))?;
    Ok(Zeroizing::new(sid.to_string()))
}

/// Renews the token; returns its new TTL and renewability.
async fn renew_self(base: &Client, token: &Token, increment: u64) -> Result<(u64, bool)> {
    let v = api(
        &with_token(base, token.expose()),
        "POST",
        "auth/token/renew-self",
        Some(&json!({"increment": increment})),
    )
    .await?;
    let a = &v["auth"];
    Ok((
        a["lease_duration"].as_u64().unwrap_or(0),
        a["renewable"].as_bool().unwrap_or(false),
    ))
}

/// Runs auto_auth until the task is dropped. With `once` (exit_after_auth), returns after
/// the first token is handed out. An error ends it only with the method's `exit_on_err`.
pub async fn run(
    base: Client,
    method: Method,
    log: Log,
    once: bool,
    tx: watch::Sender<Option<Issued>>,
) -> Result<()> {
    let (min, max, exit_on_err) = (method.min_backoff, method.max_backoff, method.exit_on_err);
    let mut st = State {
        method,
        role_id: None,
        secret: None,
    };
    let mut failures = 0u32;
    loop {
        log.info("auth", "authenticating");
        let login = match st.login(&base, log).await {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                if exit_on_err {
                    return Err(e.context("auto_auth"));
                }
                let wait = lease::backoff(min, max, failures);
                log.error(
                    "auth",
                    format!("error authenticating: {e:#} (retrying in {wait:?})"),
                );
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        failures = 0;
        log.info("auth", "authentication successful, sending token to sinks");
        let issued = login.issued.clone();
        // The same token again (a token file): sinks and templates have it already.
        tx.send_if_modified(|cur| {
            let new = cur.as_ref() != Some(&issued);
            if new {
                *cur = Some(issued.clone());
            }
            new
        });
        if once {
            return Ok(());
        }
        let Issued::Token(token) = issued else {
            // A wrapped token is handed out once; the agent cannot renew what it cannot read.
            std::future::pending::<()>().await;
            return Ok(());
        };
        keep_alive(&base, &token, login.ttl, login.renewable, log).await;
    }
}

/// Renews the token while it can; returns when it is time to log in again. A renewal the
/// server refuses ends it at once; one that does not reach the server is retried with
/// backoff while the token has time left.
async fn keep_alive(base: &Client, token: &Token, ttl: u64, renewable: bool, log: Log) {
    let increment = ttl;
    let (mut ttl, mut renewable) = (ttl, renewable);
    loop {
        let issued = tokio::time::Instant::now();
        match lease::plan_token(ttl, renewable, increment) {
            None => {
                log.info("auth", "token has no TTL: not renewing it");
                std::future::pending::<()>().await;
            }
            Some(TokenStep::Login(after)) => {
                tokio::time::sleep(after).await;
                log.info(
                    "auth",
                    "token cannot be renewed further: authenticating again",
                );
                return;
            }
            Some(TokenStep::Renew(after)) => {
                tokio::time::sleep(after).await;
                let expires = issued + Duration::from_secs(ttl);
                let mut failures = 0;
                loop {
                    match renew_self(base, token, increment).await {
                        Ok((t, r)) => {
                            log.info("auth", "renewed auth token");
                            ttl = t;
                            renewable = r;
                            break;
                        }
                        Err(e) => {
                            failures += 1;
                            let wait = lease::backoff(
                                Duration::from_secs(1),
                                Duration::from_secs(60),
                                failures,
                            );
                            let left =
                                expires.saturating_duration_since(tokio::time::Instant::now());
                            if status_of(&e).is_some_and(|s| s < 500) || left <= wait * 2 {
                                log.error(
                                    "auth",
                                    format!("error renewing token: {e:#}; authenticating again"),
                                );
                                return;
                            }
                            log.warn(
                                "auth",
                                format!("error renewing token: {e:#} (retrying in {wait:?})"),
                            );
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
    }
}
