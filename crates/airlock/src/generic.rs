//! Generic Vault-style commands on any API path (`airlock read database/creds/app`,
//! `airlock write database/config/pg plugin_name=…`, `list`, `delete`) and lease commands.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::{self, Format};

#[derive(Args)]
pub struct PathArgs {
    /// API path below /v1/ (e.g. database/creds/app).
    pub path: String,
    /// Print only this field of `data`.
    #[arg(long)]
    pub field: Option<String>,
    /// Wrap the response in a single-use token with this TTL (e.g. 60s).
    #[arg(long)]
    pub wrap_ttl: Option<String>,
    #[command(flatten)]
    pub f: crate::FormatArg,
}

#[derive(Args)]
pub struct WriteArgs {
    pub path: String,
    /// key=value pairs (`key=@file`, `key=-` for stdin, or `-` for a JSON object on stdin).
    pub pairs: Vec<String>,
    #[arg(long)]
    pub field: Option<String>,
    /// Wrap the response in a single-use token with this TTL (e.g. 60s).
    #[arg(long)]
    pub wrap_ttl: Option<String>,
    /// Write with no data (as `vault write -f`).
    #[arg(short = 'f', long)]
    pub force: bool,
    #[command(flatten)]
    pub f: crate::FormatArg,
}

#[derive(Subcommand)]
pub enum LeaseCmd {
    /// Show a lease.
    #[command(after_help = "Example:\n  airlock lease lookup database/creds/app/AbC…")]
    Lookup {
        lease_id: String,
        #[command(flatten)]
        f: crate::FormatArg,
    },
    /// Renew a lease (optionally by an increment).
    #[command(
        after_help = "Example:\n  airlock lease renew -increment=1h database/creds/app/AbC…"
    )]
    Renew {
        lease_id: String,
        #[arg(long)]
        increment: Option<String>,
        #[command(flatten)]
        f: crate::FormatArg,
    },
    /// Revoke a lease, or with -prefix every lease under a prefix.
    #[command(
        after_help = "Examples:\n  airlock lease revoke database/creds/app/AbC…\n  airlock lease revoke -prefix database/creds/app"
    )]
    Revoke {
        lease_id: String,
        #[arg(long)]
        prefix: bool,
        /// Remove the lease records even if the backend cannot revoke (with -prefix).
        #[arg(long)]
        force: bool,
    },
}

fn show(v: Option<Value>, field: Option<&str>, f: Format) -> Result<ExitCode> {
    let Some(v) = v else {
        return Ok(ExitCode::SUCCESS);
    };
    let wrap = v.get("wrap_info").filter(|w| w.is_object()).cloned();
    if let Some(k) = field {
        let d = v
            .get("data")
            .and_then(|d| d.get(k))
            .or_else(|| v.get(k))
            .or_else(|| {
                let w = wrap.as_ref()?;
                w.get(k.strip_prefix("wrapping_").unwrap_or(k))
            })
            .ok_or_else(|| anyhow!("field {k:?} not present in the response"))?;
        println!("{}", output::scalar(d));
        return Ok(ExitCode::SUCCESS);
    }
    if let (Some(w), Format::Table) = (&wrap, f) {
        // A wrapped response: the wrapping token, as `vault` prints it.
        let mut m = Map::new();
        for (k, out) in [
            ("token", "wrapping_token:"),
            ("accessor", "wrapping_accessor:"),
            ("ttl", "wrapping_token_ttl:"),
            ("creation_time", "wrapping_token_creation_time:"),
            ("creation_path", "wrapping_token_creation_path:"),
        ] {
            if let Some(x) = w.get(k) {
                m.insert(out.into(), x.clone());
            }
        }
        output::print(&Value::Object(m), f)?;
        return Ok(ExitCode::SUCCESS);
    }
    if f == Format::Table {
        let mut m = Map::new();
        for k in ["lease_id", "lease_duration", "renewable"] {
            if let Some(x) = v
                .get(k)
                .filter(|x| !matches!(x, Value::String(s) if s.is_empty()))
            {
                if k == "lease_id" || v.get("lease_id").is_some_and(|l| l != "") {
                    m.insert(k.into(), x.clone());
                }
            }
        }
        if let Some(Value::Object(d)) = v.get("data") {
            m.extend(d.clone());
        }
        if let Some(Value::Array(w)) = v.get("warnings") {
            for x in w {
                eprintln!("WARNING! {}", output::scalar(x));
            }
        }
        output::print(&Value::Object(m), f)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::print(&v, f)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn read(a: PathArgs) -> Result<ExitCode> {
    let mut cl = Client::from_env()?;
    cl.wrap_ttl = a.wrap_ttl.clone();
    let v = cl
        .call("GET", a.path.trim_start_matches('/'), None)
        .await?
        .ok_or_else(|| anyhow!("no value found at {}", a.path))?;
    show(Some(v), a.field.as_deref(), a.f.format)
}

pub async fn write(a: WriteArgs) -> Result<ExitCode> {
    let mut cl = Client::from_env()?;
    cl.wrap_ttl = a.wrap_ttl.clone();
    if a.pairs.is_empty() && !a.force {
        anyhow::bail!(
            "Must supply data or use -force (-f) to write to {} with no data",
            a.path
        );
    }
    let data = crate::kv::parse_pairs(&a.pairs)?;

    let v = cl
        .call(
            "POST",
            a.path.trim_start_matches('/'),
            Some(&Value::Object(data)),
        )
        .await?;
    if v.as_ref().is_none_or(Value::is_null) {
        println!("Success! Data written to: {}", a.path);
        return Ok(ExitCode::SUCCESS);
    }
    show(v, a.field.as_deref(), a.f.format)
}

pub async fn list(a: PathArgs) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    let v = cl
        .call("LIST", a.path.trim_start_matches('/'), None)
        .await?
        .ok_or_else(|| anyhow!("no entries found at {}", a.path))?;
    let keys = v.pointer("/data/keys").cloned().unwrap_or(Value::Null);
    if a.f.format == Format::Table {
        // As `airlock kv list` and `vault list` print it.
        print!("{}", output::table(&keys));
        return Ok(ExitCode::SUCCESS);
    }
    output::print(&keys, a.f.format)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(a: PathArgs) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.call("DELETE", a.path.trim_start_matches('/'), None)
        .await?;
    println!("Success! Data deleted (if it existed) at: {}", a.path);
    Ok(ExitCode::SUCCESS)
}

pub async fn lease(c: LeaseCmd) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        LeaseCmd::Lookup { lease_id, f } => {
            let v = cl
                .call(
                    "PUT",
                    "sys/leases/lookup",
                    Some(&json!({ "lease_id": lease_id })),
                )
                .await?;
            show(v, None, f.format)
        }
        LeaseCmd::Renew {
            lease_id,
            increment,
            f,
        } => {
            let mut b = json!({ "lease_id": lease_id });
            if let Some(i) = increment {
                b["increment"] = json!(i);
            }
            let v = cl.call("PUT", "sys/leases/renew", Some(&b)).await?;
            show(v, None, f.format)
        }
        LeaseCmd::Revoke {
            lease_id,
            prefix,
            force,
        } => {
            let id = lease_id.trim_matches('/');
            if force || prefix {
                let verb = if force {
                    "revoke-force"
                } else {
                    "revoke-prefix"
                };
                cl.call("PUT", &format!("sys/leases/{verb}/{id}"), None)
                    .await?;
                println!("All revocation operations queued successfully!");
            } else {
                cl.call("PUT", "sys/leases/revoke", Some(&json!({ "lease_id": id })))
                    .await?;
                println!("All revocation operations queued successfully!");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
