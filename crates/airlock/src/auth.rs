//! `airlock login -method=…`, `airlock auth enable|list|disable|tune`, `airlock unwrap`.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
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
    let v = cl
        .call("POST", &login_path, Some(&Value::Object(data)))
        .await?
        .ok_or_else(|| anyhow!("the server returned no auth block"))?;
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
        println!("Success! You are now authenticated.");
        println!("token_accessor      {}", output::scalar(&auth["accessor"]));
        println!(
            "token_duration      {}s",
            output::scalar(&auth["lease_duration"])
        );
        println!("token_renewable     {}", output::scalar(&auth["renewable"]));
        println!("token_policies      {}", auth["token_policies"]);
        if let Some(m) = auth.get("metadata").and_then(Value::as_object) {
            for (k, val) in m {
                println!("token_meta_{k:<9} {}", output::scalar(val));
            }
        }
    } else {
        output::print(&v, format)?;
    }
    if !no_store {
        let p = crate::client::token_file().ok_or_else(|| anyhow!("HOME is not set"))?;
        crate::cmd::write_private(&p, &token)?;
        if !token_only && format == Format::Table {
            println!("The token is stored in {}.", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
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
