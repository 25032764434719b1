//! `airlock login -method=…`, `airlock auth enable|list|disable|tune`, `airlock unwrap`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::output::{self, Format};
use crate::FormatArg;

#[derive(Subcommand)]
pub enum AuthCmd {
    /// Enable an auth method (approle, jwt, oidc, kubernetes, userpass).
    #[command(
        after_help = "Examples:\n  airlock auth enable approle\n  airlock auth enable --path ci-jwt jwt"
    )]
    Enable {
        method: String,
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        default_lease_ttl: Option<String>,
        #[arg(long)]
        max_lease_ttl: Option<String>,
    },
    /// Disable an auth method; tokens it issued are revoked.
    #[command(after_help = "Example:\n  airlock auth disable ci-jwt")]
    Disable { path: String },
    /// List enabled auth methods.
    #[command(after_help = "Example:\n  airlock auth list --format json")]
    List(FormatArg),
    /// Tune an auth method's token TTLs.
    #[command(after_help = "Example:\n  airlock auth tune --max-lease-ttl 1h approle")]
    Tune {
        path: String,
        #[arg(long)]
        default_lease_ttl: Option<String>,
        #[arg(long)]
        max_lease_ttl: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
}

pub async fn auth(c: AuthCmd) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        AuthCmd::Enable {
            method,
            path,
            description,
            default_lease_ttl,
            max_lease_ttl,
        } => {
            let path = path.unwrap_or_else(|| method.clone());
            let path = path.trim_matches('/');
            let mut b = json!({ "type": method });
            if let Some(d) = description {
                b["description"] = json!(d);
            }
            let mut cfg = Map::new();
            if let Some(t) = default_lease_ttl {
                cfg.insert("default_lease_ttl".into(), json!(t));
            }
            if let Some(t) = max_lease_ttl {
                cfg.insert("max_lease_ttl".into(), json!(t));
            }
            if !cfg.is_empty() {
                b["config"] = Value::Object(cfg);
            }
            cl.call("POST", &format!("sys/auth/{path}"), Some(&b))
                .await?;
            println!("Success! Enabled {method} auth method at: {path}/");
        }
        AuthCmd::Disable { path } => {
            let path = path.trim_matches('/');
            cl.call("DELETE", &format!("sys/auth/{path}"), None).await?;
            println!("Success! Disabled the auth method (if it existed) at: {path}/");
        }
        AuthCmd::List(f) => {
            let v = cl
                .call("GET", "sys/auth", None)
                .await?
                .unwrap_or(Value::Null);
            let d = v.get("data").cloned().unwrap_or(v);
            match f.format {
                Format::Table => {
                    println!(
                        "{:<20} {:<12} {:<28} Description",
                        "Path", "Type", "Accessor"
                    );
                    for (k, m) in d.as_object().into_iter().flatten() {
                        println!(
                            "{:<20} {:<12} {:<28} {}",
                            k,
                            output::scalar(&m["type"]),
                            output::scalar(&m["accessor"]),
                            output::scalar(&m["description"])
                        );
                    }
                }
                other => output::print(&d, other)?,
            }
        }
        AuthCmd::Tune {
            path,
            default_lease_ttl,
            max_lease_ttl,
            description,
        } => {
            let path = path.trim_matches('/');
            let mut b = Map::new();
            if let Some(t) = default_lease_ttl {
                b.insert("default_lease_ttl".into(), json!(t));
            }
            if let Some(t) = max_lease_ttl {
                b.insert("max_lease_ttl".into(), json!(t));
            }
            if let Some(d) = description {
                b.insert("description".into(), json!(d));
            }
            cl.call(
                "POST",
                &format!("sys/auth/{path}/tune"),
                Some(&Value::Object(b)),
            )
            .await?;
            println!("Success! Tuned the auth method at: {path}/");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `airlock login -method=M [-path=P] key=value…`: logs in and stores the token.
pub async fn login_method(
    method: &str,
    path: Option<&str>,
    pairs: &[String],
    no_store: bool,
    token_only: bool,
    format: Format,
) -> Result<ExitCode> {
    let mut data = crate::kv::parse_pairs(pairs)?;
    let mount = path.unwrap_or(method).trim_matches('/').to_string();
    let login_path = match method {
        "userpass" => {
            let user = data
                .remove("username")
                .and_then(|u| u.as_str().map(str::to_string))
                .ok_or_else(|| anyhow!("userpass login needs username=NAME"))?;
            if !data.contains_key("password") {
                let pw = rpassword_line("Password (will be hidden): ")?;
                data.insert("password".into(), json!(pw.as_str()));
            }
            format!("auth/{mount}/login/{user}")
        }
        "approle" | "jwt" | "oidc" | "kubernetes" => format!("auth/{mount}/login"),
        "token" => bail!("for a token, use `airlock login TOKEN`"),
        other => bail!("unknown auth method {other:?} (approle, jwt, oidc, kubernetes, userpass)"),
    };
    let base = Client::from_env()?;
    // A login carries its own credential; no token is sent.
    let cl = Client::new(
        &base.addr,
        None,
        std::env::var_os("AIRLOCK_CACERT")
            .or_else(|| std::env::var_os("VAULT_CACERT"))
            .map(Into::into),
    )?;
    let v = if matches!(method, "oidc" | "jwt") && !data.contains_key("jwt") {
        // No JWT at hand: the browser flow (a person signing in with the provider).
        oidc_browser_login(&cl, &mount, data).await?
    } else {
        cl.call("POST", &login_path, Some(&Value::Object(data)))
            .await?
            .ok_or_else(|| anyhow!("the server returned no auth block"))?
    };
    let auth = v
        .get("auth")
        .filter(|a| !a.is_null())
        .ok_or_else(|| anyhow!("the server returned no auth block"))?;
    let token = Zeroizing::new(
        auth.get("client_token")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the server returned no token"))?
            .to_string(),
    );
    if token_only {
        println!("{}", token.as_str());
    } else if format == Format::Table {
        println!("Success! You are now authenticated.\n");
        let duration = match auth["lease_duration"].as_u64() {
            Some(0) => "∞".to_string(),
            Some(n) => crate::output::short_duration(n),
            None => output::scalar(&auth["lease_duration"]),
        };
        let mut m = Map::new();
        m.insert("token_accessor".into(), auth["accessor"].clone());
        m.insert("token_duration".into(), json!(duration));
        m.insert("token_renewable".into(), auth["renewable"].clone());
        m.insert(
            "token_policies".into(),
            json!(auth["token_policies"].to_string()),
        );
        if let Some(meta) = auth.get("metadata").and_then(Value::as_object) {
            for (k, val) in meta {
                m.insert(format!("token_meta_{k}"), val.clone());
            }
        }
        print!("{}", output::table(&Value::Object(m)));
    } else {
        output::print(&v, format)?;
    }
    if !no_store {
        let p = crate::client::token_file().ok_or_else(|| anyhow!("HOME is not set"))?;
        crate::output::write_private(&p, token.as_bytes(), 0o600)?;
        if !token_only && format == Format::Table {
            println!("The token is stored in {}.", p.display());
        }
        crate::cmd::warn_env_token();
    }
    Ok(ExitCode::SUCCESS)
}

/// The OIDC browser flow, as `vault login -method=oidc` runs it: listen on
/// `http://localhost:8250/oidc/callback` (options `port`, `callbackhost`, `callbackport`,
/// `listenaddress`), ask Airlock for the provider's URL, open it in a browser (or only print
/// it: `skip_browser=true`), wait for the provider to send the browser back, and hand the
/// code to Airlock's callback.
async fn oidc_browser_login(
    cl: &Client,
    mount: &str,
    mut opts: serde_json::Map<String, Value>,
) -> Result<Value> {
    let mut take = |k: &str| {
        opts.remove(k).map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
    };
    let port = take("port").unwrap_or_else(|| "8250".into());
    let listen = take("listenaddress").unwrap_or_else(|| "127.0.0.1".into());
    let host = take("callbackhost").unwrap_or_else(|| "localhost".into());
    let cb_port = take("callbackport").unwrap_or_else(|| port.clone());
    let skip_browser = take("skip_browser").is_some_and(|v| v == "true" || v == "1");
    let role = take("role").unwrap_or_default();
    let redirect_uri = format!("http://{host}:{cb_port}/oidc/callback");
    let listener = tokio::net::TcpListener::bind(format!("{listen}:{port}"))
        .await
        .with_context(|| format!("listening for the OIDC callback on {listen}:{port}"))?;
    let client_nonce = {
        let mut b = [0u8; 20];
        rand::fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let v = cl
        .call(
            "POST",
            &format!("auth/{mount}/oidc/auth_url"),
            Some(
                &json!({"role": role, "redirect_uri": redirect_uri, "client_nonce": client_nonce}),
            ),
        )
        .await?
        .ok_or_else(|| anyhow!("auth/{mount}/oidc/auth_url: not found"))?;
    let url = v
        .pointer("/data/auth_url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "the server returned no auth_url (check the role and its allowed_redirect_uris)"
            )
        })?;
    eprintln!("Complete the login via your OIDC provider. Launching browser to:\n\n    {url}\n");
    if !skip_browser {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        let _ = std::process::Command::new(opener)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    eprintln!("Waiting for OIDC authentication to complete...");
    let query = tokio::time::timeout(Duration::from_secs(300), wait_for_callback(&listener))
        .await
        .map_err(|_| anyhow!("timed out after 5 minutes waiting for the OIDC callback"))??;
    let mut q: Vec<(String, String)> = query
        .into_iter()
        .filter(|(k, _)| {
            ["state", "code", "error", "error_description", "id_token"].contains(&k.as_str())
        })
        .collect();
    q.push(("client_nonce".into(), client_nonce));
    let qs = q
        .iter()
        .map(|(k, v)| format!("{k}={}", airlock_server::http_client::form_escape(v)))
        .collect::<Vec<_>>()
        .join("&");
    cl.call("GET", &format!("auth/{mount}/oidc/callback?{qs}"), None)
        .await?
        .ok_or_else(|| anyhow!("the server returned no auth block"))
}

/// Serves the browser's redirect to `/oidc/callback`; returns its query parameters.
async fn wait_for_callback(listener: &tokio::net::TcpListener) -> Result<Vec<(String, String)>> {
    wait_for_path(listener, "/oidc/callback").await
}

/// Serves the browser's redirect to `expected`; returns its query parameters.
pub async fn wait_for_path(
    listener: &tokio::net::TcpListener,
    expected: &str,
) -> Result<Vec<(String, String)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut s, _) = listener.accept().await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 << 10 {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != expected {
            let _ = s
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let page = "<!doctype html><title>Airlock</title><p>Signed in: return to the terminal. You can close this window.</p>";
        let _ = s
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                )
                .as_bytes(),
            )
            .await;
        return Ok(query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                Some((url_decode(k)?, url_decode(v)?))
            })
            .collect());
    }
}

/// A query component, strictly decoded; a malformed one is dropped (and with it the
/// `code` or `state` it carried, so the login fails cleanly).
fn url_decode(s: &str) -> Option<String> {
    airlock_core::percent::decode_utf8(s, airlock_core::percent::Plus::Space)
}

/// Reads a line from standard input (the password prompt goes to stderr).
fn rpassword_line(prompt: &str) -> Result<Zeroizing<String>> {
    eprint!("{prompt}");
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string()))
}

/// `airlock unwrap [TOKEN]`: the wrapped response (TOKEN defaults to the current token).
pub async fn unwrap(
    token: Option<String>,
    field: Option<String>,
    format: Format,
) -> Result<ExitCode> {
    let base = Client::from_env()?;
    let wrapping = match token {
        Some(t) if !t.is_empty() => Zeroizing::new(t),
        _ => base
            .token
            .clone()
            .ok_or_else(|| anyhow!("no wrapping token given and no current token"))?,
    };
    let cl = Client::new(
        &base.addr,
        Some(wrapping),
        std::env::var_os("AIRLOCK_CACERT")
            .or_else(|| std::env::var_os("VAULT_CACERT"))
            .map(Into::into),
    )?;
    let v = cl
        .call("POST", "sys/wrapping/unwrap", None)
        .await?
        .ok_or_else(|| anyhow!("nothing was wrapped"))?;
    if let Some(k) = field {
        let d = v
            .get("data")
            .and_then(|d| d.get(&k))
            .or_else(|| v.get("auth").and_then(|a| a.get(&k)))
            .ok_or_else(|| anyhow!("field {k:?} not present in the response"))?;
        println!("{}", output::scalar(d));
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        Format::Table => {
            let mut m = Map::new();
            if let Some(Value::Object(d)) = v.get("data") {
                m.extend(d.clone());
            }
            if let Some(Value::Object(a)) = v.get("auth") {
                for (k, x) in a {
                    m.insert(format!("token_{k}"), x.clone());
                }
            }
            output::print(&Value::Object(m), Format::Table)?;
        }
        other => output::print(&v, other)?,
    }
    Ok(ExitCode::SUCCESS)
}
