//! Client commands other than `kv`, `run` and `operator`: status, login, token, policy,
//! secrets, audit.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::client::{token_file, Client};
use crate::output::{print, Format};
use crate::FormatArg;

pub(crate) fn read_stdin() -> Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

pub(crate) fn data_of(v: &Value) -> Value {
    v.get("data").cloned().unwrap_or(Value::Null)
}

pub async fn status(f: Format) -> Result<ExitCode> {
    let c = Client::from_env()?;
    let (_, v) = c.raw("GET", "sys/seal-status", None, None).await?;
    print(&v, f)?;
    // Exit codes as the vault CLI: 0 unsealed, 2 sealed (1 is an error).
    Ok(
        if v.get("sealed").and_then(Value::as_bool).unwrap_or(true) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

pub async fn login(token: Option<String>) -> Result<ExitCode> {
    let t = match token {
        Some(t) if t != "-" => t,
        _ => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                eprint!("Token (will be read from this line): ");
            }
            read_stdin_line()?.trim().to_string()
        }
    };
    if t.is_empty() {
        bail!("no token given");
    }
    let addr = Client::from_env()?.addr;
    let cl = Client::new(
        &addr,
        Some(zeroize::Zeroizing::new(t.clone())),
        std::env::var_os("AIRLOCK_CACERT").map(Into::into),
    )?;
    let v = cl
        .call("GET", "auth/token/lookup-self", None)
        .await?
        .unwrap_or(Value::Null);
    let path = token_file().ok_or_else(|| anyhow!("HOME is not set"))?;
    crate::output::write_private(&path, t.as_bytes(), 0o600)?;
    let d = data_of(&v);
    println!(
        "Success! Token stored in {} (policies: {}).",
        path.display(),
        d.get("policies").map(|p| p.to_string()).unwrap_or_default()
    );
    warn_env_token();
    Ok(ExitCode::SUCCESS)
}

/// After storing a login's token: a token in the environment still wins, as with Vault.
pub(crate) fn warn_env_token() {
    if let Some(v) = ["AIRLOCK_TOKEN", "VAULT_TOKEN"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|t| !t.is_empty()))
    {
        eprintln!(
            "WARNING! The {v} environment variable is set! It takes precedence over the token just stored; unset it to use the new token."
        );
    }
}

pub(crate) fn read_stdin_line() -> Result<String> {
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(s)
}

/// Writes a new file with `mode`, whatever the umask: an existing file (or a symlink
/// planted in its place) is removed first, never followed. Used for tokens, backups holding
/// secrets, and files that keep another file's mode.

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a child (or orphan) token.
    #[command(
        after_help = "Example:\n  airlock token create --policy app-read --ttl 1h --format json"
    )]
    Create {
        #[arg(long = "policy")]
        policies: Vec<String>,
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        explicit_max_ttl: Option<String>,
        #[arg(long)]
        period: Option<String>,
        #[arg(long)]
        num_uses: Option<i64>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        orphan: bool,
        #[arg(long)]
        renewable: Option<bool>,
        #[arg(long)]
        role: Option<String>,
        /// `service` (the default) or `batch` (not stored; cannot be renewed or revoked).
        #[arg(long = "type")]
        token_type: Option<String>,
        /// key=value metadata (repeatable).
        #[arg(long = "metadata")]
        metadata: Vec<String>,
        /// Print only this field of the auth block (`token`, `token_accessor`, ...).
        #[arg(long)]
        field: Option<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Look up a token (the current one when absent).
    #[command(
        after_help = "Example:\n  airlock token lookup\n  airlock token lookup --accessor <accessor>"
    )]
    Lookup {
        token: Option<String>,
        #[arg(long)]
        accessor: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Renew a token (the current one when absent).
    #[command(after_help = "Example:\n  airlock token renew --increment 1h")]
    Renew {
        token: Option<String>,
        #[arg(long)]
        increment: Option<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Revoke a token and its children.
    #[command(
        after_help = "Example:\n  airlock token revoke <token>\n  airlock token revoke --self"
    )]
    Revoke {
        token: Option<String>,
        #[arg(long)]
        accessor: bool,
        #[arg(long = "self")]
        own: bool,
        /// Revoke only this token; children become orphans.
        #[arg(long)]
        orphan: bool,
    },
    /// Show a token's capabilities on a path.
    #[command(after_help = "Example:\n  airlock token capabilities secret/data/app")]
    Capabilities {
        /// `[TOKEN] PATH`
        args: Vec<String>,
        #[command(flatten)]
        f: FormatArg,
    },
}

fn kv_pairs(items: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for it in items {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| anyhow!("expected key=value, got {it:?}"))?;
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

fn print_auth(v: &Value, f: Format) -> Result<()> {
    match f {
        Format::Table => {
            let a = v.get("auth").cloned().unwrap_or(Value::Null);
            let mut m = Map::new();
            for k in [
                "client_token",
                "accessor",
                "lease_duration",
                "renewable",
                "policies",
                "token_policies",
                "orphan",
            ] {
                if let Some(x) = a.get(k) {
                    let key = match k {
                        "client_token" => "token",
                        "accessor" => "token_accessor",
                        "lease_duration" => "token_duration",
                        "renewable" => "token_renewable",
                        o => o,
                    };
                    let x = match (k, x.as_u64()) {
                        // As `vault` prints it: 768h, 20m, ∞ for a token that never expires.
                        ("lease_duration", Some(0)) => json!("∞"),
                        ("lease_duration", Some(n)) => {
                            json!(crate::output::short_duration(n))
                        }
                        _ => x.clone(),
                    };
                    m.insert(key.into(), x);
                }
            }
            print(&Value::Object(m), f)?;
            if let Some(w) = v.get("warnings").and_then(Value::as_array) {
                for x in w {
                    eprintln!("WARNING: {}", x.as_str().unwrap_or(""));
                }
            }
            Ok(())
        }
        _ => print(v, f),
    }
}

pub async fn token(c: TokenCmd) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        TokenCmd::Create {
            policies,
            ttl,
            explicit_max_ttl,
            period,
            num_uses,
            display_name,
            orphan,
            renewable,
            role,
            token_type,
            metadata,
            field,
            f,
        } => {
            let mut b = Map::new();
            if let Some(t) = token_type {
                b.insert("type".into(), json!(t));
            }
            if !policies.is_empty() {
                let p: Vec<String> = policies
                    .iter()
                    .flat_map(|p| p.split(','))
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                b.insert("policies".into(), json!(p));
            }
            for (k, v) in [
                ("ttl", ttl),
                ("explicit_max_ttl", explicit_max_ttl),
                ("period", period),
                ("display_name", display_name),
            ] {
                if let Some(v) = v {
                    b.insert(k.into(), json!(v));
                }
            }
            if let Some(n) = num_uses {
                b.insert("num_uses".into(), json!(n));
            }
            if let Some(r) = renewable {
                b.insert("renewable".into(), json!(r));
            }
            if !metadata.is_empty() {
                b.insert("meta".into(), Value::Object(kv_pairs(&metadata)?));
            }
            let path = match (&role, orphan) {
                (Some(r), _) => format!("auth/token/create/{r}"),
                (None, true) => "auth/token/create-orphan".into(),
                (None, false) => "auth/token/create".into(),
            };
            let v = cl
                .call("POST", &path, Some(&Value::Object(b)))
                .await?
                .unwrap_or(Value::Null);
            if let Some(k) = field {
                // Vault's names: `token` is the client token, `token_*` the rest.
                let auth = &v["auth"];
                let key = match k.as_str() {
                    "token" => "client_token",
                    other => other.strip_prefix("token_").unwrap_or(other),
                };
                let x = auth
                    .get(key)
                    .or_else(|| auth.get(k.as_str()))
                    .ok_or_else(|| anyhow!("field {k:?} not present in the response"))?;
                println!("{}", crate::output::scalar(x));
                return Ok(ExitCode::SUCCESS);
            }
            print_auth(&v, f.format)?;
        }
        TokenCmd::Lookup { token, accessor, f } => {
            let v = match (token, accessor) {
                (Some(a), true) => {
                    cl.call(
                        "POST",
                        "auth/token/lookup-accessor",
                        Some(&json!({"accessor": a})),
                    )
                    .await?
                }
                (None, true) => bail!("--accessor needs an accessor argument"),
                (Some(t), false) => {
                    cl.call("POST", "auth/token/lookup", Some(&json!({"token": t})))
                        .await?
                }
                (None, false) => cl.call("GET", "auth/token/lookup-self", None).await?,
            }
            .unwrap_or(Value::Null);
            match f.format {
                Format::Table => print(&data_of(&v), f.format)?,
                _ => print(&v, f.format)?,
            }
        }
        TokenCmd::Renew {
            token,
            increment,
            f,
        } => {
            let mut b = Map::new();
            if let Some(i) = increment {
                b.insert("increment".into(), json!(i));
            }
            let path = match token {
                Some(t) => {
                    b.insert("token".into(), json!(t));
                    "auth/token/renew"
                }
                None => "auth/token/renew-self",
            };
            let v = cl
                .call("POST", path, Some(&Value::Object(b)))
                .await?
                .unwrap_or(Value::Null);
            print_auth(&v, f.format)?;
        }
        TokenCmd::Revoke {
            token,
            accessor,
            own,
            orphan,
        } => {
            match (token, own) {
                (_, true) => {
                    cl.call("POST", "auth/token/revoke-self", None).await?;
                }
                (Some(a), false) if accessor => {
                    cl.call(
                        "POST",
                        "auth/token/revoke-accessor",
                        Some(&json!({"accessor": a})),
                    )
                    .await?;
                }
                (Some(t), false) => {
                    let p = if orphan {
                        "auth/token/revoke-orphan"
                    } else {
                        "auth/token/revoke"
                    };
                    cl.call("POST", p, Some(&json!({"token": t}))).await?;
                }
                (None, false) => bail!("give a token, an accessor with --accessor, or --self"),
            }
            println!("Success! Revoked token (if it existed)");
        }
        TokenCmd::Capabilities { args, f } => {
            let (path, body, ep) = match args.as_slice() {
                [p] => (p.clone(), json!({"paths": [p]}), "sys/capabilities-self"),
                [t, p] => (
                    p.clone(),
                    json!({"token": t, "paths": [p]}),
                    "sys/capabilities",
                ),
                _ => bail!("usage: airlock token capabilities [TOKEN] PATH"),
            };
            let v = cl
                .call("POST", ep, Some(&body))
                .await?
                .unwrap_or(Value::Null);
            let caps = data_of(&v).get(&path).cloned().unwrap_or(Value::Null);
            match f.format {
                Format::Table => println!(
                    "{}",
                    caps.as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                ),
                _ => print(&caps, f.format)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Write a policy from a file or `-` (stdin).
    #[command(
        after_help = "Example:\n  airlock policy write app-read app-read.hcl\n  echo 'path \"secret/data/*\" { capabilities = [\"read\"] }' | airlock policy write r -"
    )]
    Write { name: String, file: String },
    /// Print a policy.
    #[command(after_help = "Example:\n  airlock policy read app-read")]
    Read {
        name: String,
        #[command(flatten)]
        f: FormatArg,
    },
    /// List policy names.
    #[command(after_help = "Example:\n  airlock policy list")]
    List(FormatArg),
    /// Delete a policy.
    #[command(after_help = "Example:\n  airlock policy delete app-read")]
    Delete { name: String },
}

pub async fn policy(c: PolicyCmd) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        PolicyCmd::Write { name, file } => {
            let text = if file == "-" {
                read_stdin()?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            cl.call(
                "PUT",
                &format!("sys/policies/acl/{name}"),
                Some(&json!({"policy": text})),
            )
            .await?;
            println!("Success! Uploaded policy: {name}");
        }
        PolicyCmd::Read { name, f } => {
            let v = cl
                .call("GET", &format!("sys/policies/acl/{name}"), None)
                .await?
                .ok_or_else(|| anyhow!("no policy named {name}"))?;
            match f.format {
                Format::Table => print!(
                    "{}",
                    data_of(&v)
                        .get("policy")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                _ => print(&data_of(&v), f.format)?,
            }
        }
        PolicyCmd::List(f) => {
            let v = cl
                .call("LIST", "sys/policies/acl", None)
                .await?
                .unwrap_or(Value::Null);
            let keys = data_of(&v).get("keys").cloned().unwrap_or(json!([]));
            match f.format {
                Format::Table => {
                    for k in keys.as_array().into_iter().flatten() {
                        println!("{}", k.as_str().unwrap_or(""));
                    }
                }
                _ => print(&keys, f.format)?,
            }
        }
        PolicyCmd::Delete { name } => {
            cl.call("DELETE", &format!("sys/policies/acl/{name}"), None)
                .await?;
            println!("Success! Deleted policy: {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum SecretsCmd {
    /// Enable a secrets engine (`kv`, `kv-v2`).
    #[command(after_help = "Example:\n  airlock secrets enable --path team --version 2 kv")]
    Enable {
        engine: String,
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Disable a secrets engine and delete its data.
    #[command(after_help = "Example:\n  airlock secrets disable team")]
    Disable { path: String },
    /// List enabled secrets engines.
    #[command(after_help = "Example:\n  airlock secrets list --format json")]
    List(FormatArg),
    /// Tune a mount's TTLs or description.
    #[command(after_help = "Example:\n  airlock secrets tune --max-lease-ttl 24h team")]
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

pub async fn secrets(c: SecretsCmd) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        SecretsCmd::Enable {
            engine,
            path,
            version,
            description,
        } => {
            let path = path.unwrap_or_else(|| engine.clone());
            let mut b = json!({"type": engine});
            if let Some(v) = version {
                b["options"] = json!({"version": v});
            }
            if let Some(d) = description {
                b["description"] = json!(d);
            }
            cl.call(
                "POST",
                &format!("sys/mounts/{}", path.trim_matches('/')),
                Some(&b),
            )
            .await?;
            println!(
                "Success! Enabled the {engine} secrets engine at: {}/",
                path.trim_matches('/')
            );
        }
        SecretsCmd::Disable { path } => {
            cl.call(
                "DELETE",
                &format!("sys/mounts/{}", path.trim_matches('/')),
                None,
            )
            .await?;
            println!(
                "Success! Disabled the secrets engine (if it existed) at: {}/",
                path.trim_matches('/')
            );
        }
        SecretsCmd::List(f) => {
            let v = cl
                .call("GET", "sys/mounts", None)
                .await?
                .unwrap_or(Value::Null);
            let d = data_of(&v);
            match f.format {
                Format::Table => {
                    println!("{:<20} {:<8} {:<8} Description", "Path", "Type", "Version");
                    for (k, m) in d.as_object().into_iter().flatten() {
                        println!(
                            "{:<20} {:<8} {:<8} {}",
                            k,
                            m.get("type").and_then(Value::as_str).unwrap_or(""),
                            m.pointer("/options/version")
                                .and_then(Value::as_str)
                                .unwrap_or("n/a"),
                            m.get("description").and_then(Value::as_str).unwrap_or("")
                        );
                    }
                }
                _ => print(&d, f.format)?,
            }
        }
        SecretsCmd::Tune {
            path,
            default_lease_ttl,
            max_lease_ttl,
            description,
        } => {
            let mut b = Map::new();
            for (k, v) in [
                ("default_lease_ttl", default_lease_ttl),
                ("max_lease_ttl", max_lease_ttl),
                ("description", description),
            ] {
                if let Some(v) = v {
                    b.insert(k.into(), json!(v));
                }
            }
            cl.call(
                "POST",
                &format!("sys/mounts/{}/tune", path.trim_matches('/')),
                Some(&Value::Object(b)),
            )
            .await?;
            println!(
                "Success! Tuned the secrets engine at: {}/",
                path.trim_matches('/')
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Verify the hash chain of an audit log file.
    #[command(after_help = "Example:\n  airlock audit verify /var/log/airlock/audit.log")]
    Verify { file: std::path::PathBuf },
}

pub fn audit(c: AuditCmd) -> Result<ExitCode> {
    match c {
        AuditCmd::Verify { file } => match airlock_audit::verify(&file) {
            Ok(r) => {
                println!(
                    "OK: {} entries, sequence {}..{}, chain intact",
                    r.entries, r.first_seq, r.last_seq
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("FAILED: {e}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
