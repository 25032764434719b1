//! `airlock broker login PROVIDER`: onboarding an OAuth provider without the token ever
//! reaching the agent. The authorization-code flow with PKCE (S256) in a browser, redirected
//! to a loopback listener, or the device-code flow (RFC 8628) over SSH or CI; the tokens go
//! straight into Airlock (`--store`, KV), from where a binding with
//! `mint = { kind = "oauth2_refresh_token" }` keeps access tokens fresh.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::Args;
use serde_json::{json, Map, Value};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::client::Client;

#[derive(Args)]
pub struct LoginArgs {
    /// A catalog provider with OAuth endpoints (github, google, slack, linear), or a name for
    /// the endpoints given with --auth-url/--token-url/--device-url.
    pub provider: String,
    /// The OAuth client id of your app registration.
    #[arg(long)]
    pub client_id: String,
    /// Environment variable holding the client secret (confidential clients).
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// Scopes to ask for (space-separated; default: the provider's).
    #[arg(long)]
    pub scope: Option<String>,
    /// Use the device-code flow (no browser on this machine).
    #[arg(long)]
    pub device: bool,
    /// KV path to store the tokens at (default: secret/oauth/PROVIDER).
    #[arg(long)]
    pub store: Option<String>,
    #[arg(long)]
    pub auth_url: Option<String>,
    #[arg(long)]
    pub token_url: Option<String>,
    #[arg(long)]
    pub device_url: Option<String>,
    /// CA certificate (PEM) to trust for the provider's endpoints (besides the system's).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Loopback port for the redirect (default: any free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Endpoints of the catalog's OAuth providers: (name, authorize, token, device, scope).
const OAUTH: &[(&str, &str, &str, &str, &str)] = &[
    (
        "github",
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        "https://github.com/login/device/code",
        "repo read:org",
    ),
    (
        "google",
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        "https://oauth2.googleapis.com/device/code",
        "openid email https://www.googleapis.com/auth/cloud-platform",
    ),
    (
        "slack",
        "https://slack.com/oauth/v2/authorize",
        "https://slack.com/api/oauth.v2.access",
        "",
        "chat:write channels:read",
    ),
    (
        "linear",
        "https://linear.app/oauth/authorize",
        "https://api.linear.app/oauth/token",
        "",
        "read write",
    ),
];

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn random(n: usize) -> String {
    let mut r = vec![0u8; n];
    rand::fill(&mut r[..]);
    b64url(&r)
}

pub async fn run(a: LoginArgs) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    let known = OAUTH.iter().find(|p| p.0 == a.provider);
    let pick = |given: &Option<String>, i: usize| -> Option<String> {
        given.clone().or_else(|| {
            known
                .map(|p| [p.1, p.2, p.3, p.4][i].to_string())
                .filter(|s| !s.is_empty())
        })
    };
    let token_url = pick(&a.token_url, 1)
        .ok_or_else(|| anyhow!("{}: no token endpoint (give --token-url)", a.provider))?;
    let scope = pick(&a.scope, 3).unwrap_or_default();
    let ca = match &a.ca_cert {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => String::new(),
    };
    let secret = match &a.client_secret_env {
        Some(v) => Some(Zeroizing::new(
            std::env::var(v).map_err(|_| anyhow!("{v} is not set"))?,
        )),
        None => None,
    };
    let tokens = if a.device {
        let url = pick(&a.device_url, 2).ok_or_else(|| {
            anyhow!(
                "{}: no device-code endpoint (give --device-url, or use the browser flow)",
                a.provider
            )
        })?;
        device_flow(
            &a,
            &url,
            &token_url,
            &scope,
            &ca,
            secret.as_deref().map(|s| s.as_str()),
        )
        .await?
    } else {
        let url = pick(&a.auth_url, 0).ok_or_else(|| {
            anyhow!(
                "{}: no authorization endpoint (give --auth-url)",
                a.provider
            )
        })?;
        browser_flow(
            &a,
            &url,
            &token_url,
            &scope,
            &ca,
            secret.as_deref().map(|s| s.as_str()),
        )
        .await?
    };
    let store = a
        .store
        .clone()
        .unwrap_or_else(|| format!("secret/oauth/{}", a.provider));
    let mut data = Map::new();
    data.insert("client_id".into(), json!(a.client_id));
    if let Some(s) = &secret {
        data.insert("client_secret".into(), json!(s.as_str()));
    }
    let refresh = tokens.get("refresh_token").and_then(Value::as_str);
    match refresh {
        Some(rt) => data.insert("refresh_token".into(), json!(rt)),
        None => data.insert(
            "access_token".into(),
            tokens.get("access_token").cloned().unwrap_or(Value::Null),
        ),
    };
    crate::kv::merge_write(&cl, &store, data).await?;
    eprintln!(
        "Stored the {} tokens at {store} (they were not printed).",
        a.provider
    );
    let provider_line = if known.is_some() && airlock_broker::providers::find(&a.provider).is_some()
    {
        format!("provider = \"{}\"\n", a.provider)
    } else {
        "hosts = [\"…\"]\n".to_string()
    };
    if refresh.is_some() {
        println!(
            "[[binding]]\nname = \"{p}\"\n{provider_line}secret = \"{store}\"\nmint = {{ kind = \"oauth2_refresh_token\", token_url = \"{token_url}\" }}",
            p = a.provider
        );
    } else {
        println!(
            "[[binding]]\nname = \"{p}\"\n{provider_line}secret = \"{store}#access_token\"",
            p = a.provider
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// POSTs a token request; the answer's JSON (an OAuth error is an error, except for the
/// device flow's waiting states, which are returned).
async fn token(url: &str, ca: &str, fields: &[(&str, &str)]) -> Result<Value> {
    let r = airlock_server::http_client::post_form(url, ca, None, fields)
        .await
        .map_err(|e| anyhow!("{url}: {e}"))?;
    let v: Value = serde_json::from_slice(&r.body)
        .or_else(|_| {
            // GitHub answers form-encoded unless asked otherwise.
            let m: Map<String, Value> = String::from_utf8_lossy(&r.body)
                .split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), json!(crate::broker::login::decode(v))))
                .collect();
            if m.is_empty() {
                Err(())
            } else {
                Ok(Value::Object(m))
            }
        })
        .map_err(|_| anyhow!("{url}: the answer ({}) is not JSON", r.status))?;
    Ok(v)
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&airlock_core::percent::decode_lenient(
        s,
        airlock_core::percent::Plus::Space,
    ))
    .into_owned()
}

async fn browser_flow(
    a: &LoginArgs,
    auth_url: &str,
    token_url: &str,
    scope: &str,
    ca: &str,
    secret: Option<&str>,
) -> Result<Value> {
    let verifier = Zeroizing::new(random(48));
    let challenge = b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    let state = random(24);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port))
        .await
        .context("listening for the redirect on 127.0.0.1")?;
    let redirect = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    );
    let enc = airlock_server::http_client::form_escape;
    let url = format!(
        "{auth_url}{}response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&code_challenge={challenge}&code_challenge_method=S256",
        if auth_url.contains('?') { '&' } else { '?' },
        enc(&a.client_id),
        enc(&redirect),
        enc(scope),
    );
    eprintln!("Sign in to {} in your browser:\n\n    {url}\n", a.provider);
    if !a.no_browser {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        let _ = std::process::Command::new(opener)
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    eprintln!("Waiting for the redirect to {redirect} ...");
    let q = tokio::time::timeout(
        Duration::from_secs(300),
        crate::auth::wait_for_path(&listener, "/callback"),
    )
    .await
    .map_err(|_| anyhow!("timed out after 5 minutes waiting for the redirect"))??;
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(e) = get("error") {
        bail!(
            "{} refused: {e} {}",
            a.provider,
            get("error_description").unwrap_or_default()
        );
    }
    if get("state").as_deref() != Some(state.as_str()) {
        bail!(
            "the redirect's state does not match (a stale or forged redirect); nothing was stored"
        );
    }
    let code = Zeroizing::new(get("code").ok_or_else(|| anyhow!("the redirect carried no code"))?);
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", a.client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    if let Some(s) = secret {
        fields.push(("client_secret", s));
    }
    let v = token(token_url, ca, &fields).await?;
    if v.get("access_token").is_none() {
        bail!(
            "{} refused the code: {}",
            a.provider,
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("no access_token")
        );
    }
    Ok(v)
}

async fn device_flow(
    a: &LoginArgs,
    device_url: &str,
    token_url: &str,
    scope: &str,
    ca: &str,
    secret: Option<&str>,
) -> Result<Value> {
    let d = token(
        device_url,
        ca,
        &[("client_id", a.client_id.as_str()), ("scope", scope)],
    )
    .await?;
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    let device_code =
        Zeroizing::new(s("device_code").ok_or_else(|| anyhow!("no device_code in the answer"))?);
    let uri = s("verification_uri_complete")
        .or_else(|| s("verification_uri"))
        .or_else(|| s("verification_url"))
        .unwrap_or_default();
    eprintln!(
        "On any device, open {uri} and enter the code:\n\n    {}\n",
        s("user_code").unwrap_or_default()
    );
    let mut interval = d
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .max(1);
    let deadline = Instant::now()
        + Duration::from_secs(d.get("expires_in").and_then(Value::as_u64).unwrap_or(900));
    loop {
        if Instant::now() > deadline {
            bail!("the device code expired before the sign-in completed");
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let mut fields = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.as_str()),
            ("client_id", a.client_id.as_str()),
        ];
        if let Some(s) = secret {
            fields.push(("client_secret", s));
        }
        let v = token(token_url, ca, &fields).await?;
        if v.get("access_token").is_some() {
            return Ok(v);
        }
        match v.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some(e) => bail!("{} refused the sign-in: {e}", a.provider),
            None => bail!("{} answered neither a token nor an error", a.provider),
        }
    }
}
