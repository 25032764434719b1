//! `airlock kv ...`: KV v1/v2 commands in the style of `vault kv`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::{parse_dotenv, parse_flat_yaml, print, table, to_dotenv, Format};
use crate::FormatArg;

#[derive(Args, Clone)]
pub struct Target {
    /// Mount path; when absent the first path segment is the mount.
    #[arg(long)]
    pub mount: Option<String>,
    /// Secret path (`secret/app/config`, or `app/config` with --mount). Without one, the
    /// environment of the project in `airlock.project.toml`.
    #[arg(default_value = "")]
    pub path: String,
    /// The project's environment to use instead of its default (without a path).
    #[arg(long = "env")]
    pub env: Option<String>,
}

#[derive(Subcommand)]
pub enum KvCmd {
    /// Mint random values for keys that do not exist yet (idempotent: existing values are
    /// kept). Values come from a password policy, or 32 random letters and digits.
    #[command(
        after_help = "Examples:\n  airlock kv mint secret/app SESSION_KEY CSRF_SECRET\n  airlock kv mint --policy strong secret/app DB_PASSWORD"
    )]
    Mint {
        #[command(flatten)]
        t: Target,
        /// Keys to fill.
        keys: Vec<String>,
        /// Password policy (`sys/policies/password/<name>`) to generate with.
        #[arg(long)]
        policy: Option<String>,
    },
    /// Write a new version: `key=value`, `key=@file`, `key=-` (stdin), or `-` (JSON object on stdin).
    #[command(
        after_help = "Example:\n  airlock kv put secret/app user=admin password=@pw.txt\n  airlock kv put -mount=secret -cas=0 app user=admin"
    )]
    Put {
        #[command(flatten)]
        t: Target,
        pairs: Vec<String>,
        #[arg(long)]
        cas: Option<i64>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Merge keys into the latest version.
    #[command(after_help = "Example:\n  airlock kv patch secret/app password=new")]
    Patch {
        #[command(flatten)]
        t: Target,
        pairs: Vec<String>,
        #[arg(long)]
        cas: Option<i64>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Read a secret (latest or --version).
    #[command(
        after_help = "Example:\n  airlock kv get secret/app\n  airlock kv get -field=password -version=2 secret/app"
    )]
    Get {
        #[command(flatten)]
        t: Target,
        #[arg(long)]
        version: Option<u64>,
        #[arg(long)]
        field: Option<String>,
        /// Show values as stored: `${…}` references not resolved.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// List keys under a path.
    #[command(after_help = "Example:\n  airlock kv list secret/")]
    List {
        #[command(flatten)]
        t: Target,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Soft-delete the latest version (or --versions).
    #[command(
        after_help = "Example:\n  airlock kv delete secret/app\n  airlock kv delete -versions=1,2 secret/app"
    )]
    Delete {
        #[command(flatten)]
        t: Target,
        #[arg(long, value_delimiter = ',')]
        versions: Vec<u64>,
    },
    /// Restore soft-deleted versions.
    #[command(after_help = "Example:\n  airlock kv undelete -versions=3 secret/app")]
    Undelete {
        #[command(flatten)]
        t: Target,
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
    },
    /// Permanently destroy versions.
    #[command(after_help = "Example:\n  airlock kv destroy -versions=1 secret/app")]
    Destroy {
        #[command(flatten)]
        t: Target,
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
    },
    /// Write an old version's data as a new version.
    #[command(after_help = "Example:\n  airlock kv rollback -version=1 secret/app")]
    Rollback {
        #[command(flatten)]
        t: Target,
        #[arg(long)]
        version: u64,
    },
    /// Key metadata (KV v2).
    #[command(subcommand)]
    Metadata(MetaCmd),
    /// Import a .env, JSON or YAML file into one path (format from the extension or --input-format).
    #[command(after_help = "Example:\n  airlock kv import .env secret/voice/prod")]
    Import {
        file: String,
        #[command(flatten)]
        t: Target,
        #[arg(long)]
        input_format: Option<String>,
    },
    /// Print a secret as dotenv, json or yaml.
    #[command(after_help = "Example:\n  airlock kv export secret/voice/prod --as dotenv > .env")]
    Export {
        #[command(flatten)]
        t: Target,
        /// dotenv, json or yaml (`-format=…` works too).
        #[arg(long = "as", alias = "format", default_value = "dotenv")]
        output: String,
    },
}

#[derive(Subcommand)]
pub enum MetaCmd {
    /// Show metadata and versions.
    #[command(after_help = "Example:\n  airlock kv metadata get secret/app")]
    Get {
        #[command(flatten)]
        t: Target,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Set max_versions, cas_required, delete_version_after, custom metadata.
    #[command(
        after_help = "Example:\n  airlock kv metadata put -max-versions=5 -custom-metadata=owner=ops secret/app"
    )]
    Put {
        #[command(flatten)]
        t: Target,
        #[arg(long)]
        max_versions: Option<u64>,
        #[arg(long)]
        cas_required: Option<bool>,
        #[arg(long)]
        delete_version_after: Option<String>,
        #[arg(long = "custom-metadata")]
        custom_metadata: Vec<String>,
    },
    /// Delete the key and all its versions.
    #[command(after_help = "Example:\n  airlock kv metadata delete secret/app")]
    Delete {
        #[command(flatten)]
        t: Target,
    },
}

/// A resolved KV location.
pub struct Loc {
    pub mount: String,
    pub key: String,
    pub v2: bool,
}

impl Loc {
    pub fn api(&self, section: &str) -> String {
        if self.v2 {
            format!("{}/{section}/{}", self.mount, self.key)
        } else {
            format!("{}/{}", self.mount, self.key)
        }
    }
}

pub async fn resolve(cl: &Client, t: &Target) -> Result<Loc> {
    let full = match &t.mount {
        Some(m) => format!("{}/{}", m.trim_matches('/'), t.path.trim_start_matches('/')),
        None => t.path.trim_start_matches('/').to_string(),
    };
    let first = full.split('/').next().unwrap_or("");
    let v = cl
        .call("GET", &format!("sys/internal/ui/mounts/{full}"), None)
        .await
        .map_err(|e| {
            // Vault's preflight wording; say what it usually means, for a valid token.
            match e.downcast_ref::<crate::client::ApiFailure>() {
                Some(f) if f.status == 403 && f.token_valid == Some(true) => anyhow!(
                    "cannot use {first}/ with this token: no secrets engine is mounted there, or \
                     the token's policies do not allow it. `airlock secrets list` shows the \
                     mounts, `airlock secrets enable -path={first} kv-v2` adds one, `airlock \
                     token capabilities {full}` shows what the token may do."
                ),
                _ => e,
            }
        })?
        .ok_or_else(|| anyhow!("no secrets engine is mounted at {full}"))?;

    let d = v.get("data").cloned().unwrap_or(Value::Null);
    let mount = d
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no secrets engine is mounted at {full}"))?
        .trim_end_matches('/')
        .to_string();
    let v2 = d.pointer("/options/version").and_then(Value::as_str) == Some("2");
    let key = full
        .strip_prefix(&mount)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    Ok(Loc { mount, key, v2 })
}

fn read_stdin() -> Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

/// Parses `key=value`, `key=@file`, `key=-`, or a lone `-` (JSON object on stdin).
pub fn parse_pairs(pairs: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for p in pairs {
        if p == "-" {
            let v: Value =
                serde_json::from_str(&read_stdin()?).context("stdin must hold a JSON object")?;
            match v {
                Value::Object(o) => m.extend(o),
                _ => bail!("stdin must hold a JSON object"),
            }
            continue;
        }
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("expected key=value, got {p:?}"))?;
        if k.is_empty() {
            bail!("empty key in {p:?}");
        }
        let val = if v == "-" {
            read_stdin()?.trim_end_matches('\n').to_string()
        } else if let Some(f) = v.strip_prefix('@') {
            std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?
        } else {
            v.to_string()
        };
        m.insert(k.to_string(), Value::String(val));
    }
    Ok(m)
}

fn write_body(data: Map<String, Value>, cas: Option<i64>) -> Value {
    let mut b = json!({ "data": data });
    if let Some(c) = cas {
        b["options"] = json!({ "cas": c });
    }
    b
}

async fn read_secret(cl: &Client, loc: &Loc, version: Option<u64>) -> Result<Option<Value>> {
    let mut p = loc.api("data");
    if let Some(v) = version.filter(|_| loc.v2) {
        p.push_str(&format!("?version={v}"));
    }
    cl.call("GET", &p, None).await
}

fn secret_map(loc: &Loc, v: &Value) -> Map<String, Value> {
    let d = if loc.v2 {
        v.pointer("/data/data")
    } else {
        v.get("data")
    };
    d.and_then(Value::as_object).cloned().unwrap_or_default()
}

pub async fn read_map(cl: &Client, path: &str) -> Result<Map<String, Value>> {
    read_map_opt(cl, path)
        .await?
        .ok_or_else(|| anyhow!("no secret at {path}"))
}

/// The keys at `path`, or `None` when nothing is stored there.
pub async fn read_map_opt(cl: &Client, path: &str) -> Result<Option<Map<String, Value>>> {
    let t = Target {
        mount: None,
        path: path.to_string(),
        env: None,
    };
    let loc = resolve(cl, &t).await?;
    Ok(read_secret(cl, &loc, None)
        .await?
        .map(|v| secret_map(&loc, &v)))
}

/// Writes `data` into the entry at `path`, keeping keys already stored there.
pub async fn merge_write(cl: &Client, path: &str, data: Map<String, Value>) -> Result<()> {
    let t = Target {
        mount: None,
        path: path.to_string(),
        env: None,
    };
    let loc = resolve(cl, &t).await?;
    let mut m = match read_secret(cl, &loc, None).await? {
        Some(v) => secret_map(&loc, &v),
        None => Map::new(),
    };
    m.extend(data);
    let body = if loc.v2 {
        write_body(m, None)
    } else {
        Value::Object(m)
    };
    cl.call("POST", &loc.api("data"), Some(&body)).await?;
    Ok(())
}

/// A command without a path works on the project's environment (`airlock.project.toml`);
/// `kv put KEY=VALUE` then has its first pair where the path would be.
fn fill_from_project(c: &mut KvCmd) -> Result<()> {
    let (t, pairs) = match c {
        KvCmd::Put { t, pairs, .. } | KvCmd::Patch { t, pairs, .. } => (t, Some(pairs)),
        KvCmd::Mint { t, .. }
        | KvCmd::Get { t, .. }
        | KvCmd::List { t, .. }
        | KvCmd::Delete { t, .. }
        | KvCmd::Undelete { t, .. }
        | KvCmd::Destroy { t, .. }
        | KvCmd::Rollback { t, .. }
        | KvCmd::Import { t, .. }
        | KvCmd::Export { t, .. } => (t, None),
        KvCmd::Metadata(MetaCmd::Get { t, .. })
        | KvCmd::Metadata(MetaCmd::Put { t, .. })
        | KvCmd::Metadata(MetaCmd::Delete { t }) => (t, None),
    };
    if let Some(p) = pairs {
        if t.path.contains('=') || t.path == "-" {
            p.insert(0, std::mem::take(&mut t.path));
        }
    }
    if t.path.is_empty() {
        if t.mount.is_some() {
            bail!("--mount needs a path");
        }
        let ctx = crate::project::file::required(t.env.as_deref())?;
        t.path = ctx.env_path();
    } else if t.env.is_some() {
        bail!("--env picks the project's environment: give it without a path");
    }
    Ok(())
}

/// `data` with its `${…}` references resolved (see `project::refs`), read with `cl`'s token.
pub async fn resolve_refs(
    cl: &Client,
    path: &str,
    data: Map<String, Value>,
) -> Result<Map<String, Value>> {
    resolve_refs_in(cl, path, data, None).await
}

/// [`resolve_refs`] for one key only (`kv get -field`): the others are left as stored.
pub async fn resolve_refs_in(
    cl: &Client,
    path: &str,
    data: Map<String, Value>,
    only: Option<&str>,
) -> Result<Map<String, Value>> {
    let has_refs = data
        .values()
        .any(|v| v.as_str().is_some_and(|s| s.contains("${")));
    if !has_refs {
        return Ok(data);
    }
    crate::project::refs::resolve(path, data, only, |p: String| async move {
        read_map_opt(cl, &p).await
    })
    .await
}

pub async fn run(mut c: KvCmd) -> Result<ExitCode> {
    fill_from_project(&mut c)?;
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        KvCmd::Put { t, pairs, cas, f } => {
            let loc = resolve(&cl, &t).await?;
            let data = parse_pairs(&pairs)?;
            if data.is_empty() {
                bail!("nothing to write: give key=value pairs");
            }
            if loc.v2 {
                let v = cl
                    .call("POST", &loc.api("data"), Some(&write_body(data, cas)))
                    .await?
                    .unwrap_or(Value::Null);
                print(&v.get("data").cloned().unwrap_or(Value::Null), f.format)?;
            } else {
                cl.call("POST", &loc.api(""), Some(&Value::Object(data)))
                    .await?;
                println!("Success! Data written to: {}", t.path);
            }
        }
        KvCmd::Mint { t, keys, policy } => {
            if keys.is_empty() {
                bail!("name the keys to mint: airlock kv mint PATH KEY…");
            }
            let loc = resolve(&cl, &t).await?;
            let (mut current, version) = match read_secret(&cl, &loc, None).await? {
                Some(v) => (
                    secret_map(&loc, &v),
                    v.pointer("/data/metadata/version").and_then(Value::as_i64),
                ),
                None => (Map::new(), None),
            };
            let mut minted = Vec::new();
            for k in &keys {
                if current.contains_key(k) {
                    continue;
                }
                let value = mint_value(&cl, policy.as_deref()).await?;
                current.insert(k.clone(), Value::String(value));
                minted.push(k.clone());
            }
            if minted.is_empty() {
                println!(
                    "Nothing to mint: every key already has a value at {}",
                    t.path
                );
                return Ok(ExitCode::SUCCESS);
            }
            // Check-and-set on the version read, so two concurrent mints cannot overwrite
            // each other's values.
            let body = if loc.v2 {
                write_body(current, Some(version.unwrap_or(0)))
            } else {
                Value::Object(current)
            };
            cl.call("POST", &loc.api("data"), Some(&body)).await?;
            println!("Minted {} at {}", minted.join(", "), t.path);
        }
        KvCmd::Patch { t, pairs, cas, f } => {
            let loc = resolve(&cl, &t).await?;
            if !loc.v2 {
                bail!("patch needs a KV version 2 mount");
            }
            let data = parse_pairs(&pairs)?;
            let v = cl
                .call_ct(
                    "PATCH",
                    &loc.api("data"),
                    Some(&write_body(data, cas)),
                    Some("application/merge-patch+json"),
                )
                .await?
                .unwrap_or(Value::Null);
            print(&v.get("data").cloned().unwrap_or(Value::Null), f.format)?;
        }
        KvCmd::Get {
            t,
            version,
            field,
            raw,
            f,
        } => {
            let loc = resolve(&cl, &t).await?;
            let Some(mut v) = read_secret(&cl, &loc, version).await? else {
                eprintln!("No value found at {}", loc.api("data"));
                return Ok(ExitCode::from(2));
            };
            let mut data = secret_map(&loc, &v);
            if !raw {
                let full = format!("{}/{}", loc.mount, loc.key);
                data = resolve_refs_in(&cl, &full, data, field.as_deref()).await?;
                let slot = if loc.v2 {
                    v.pointer_mut("/data/data")
                } else {
                    v.get_mut("data")
                };
                if let Some(slot) = slot {
                    *slot = Value::Object(data.clone());
                }
            }
            if let Some(fld) = field {
                let x = data
                    .get(&fld)
                    .ok_or_else(|| anyhow!("field {fld:?} not present in secret"))?;
                match (x, f.format) {
                    (Value::String(s), Format::Table) => println!("{s}"),
                    (other, Format::Table) => println!("{other}"),
                    (other, fmt) => print(other, fmt)?,
                }
                return Ok(ExitCode::SUCCESS);
            }
            match f.format {
                Format::Table => {
                    if loc.v2 {
                        if let Some(m) = v.pointer("/data/metadata") {
                            println!("======= Metadata =======");
                            print!("{}", table(m));
                            println!("\n====== Data ======");
                        }
                    }
                    print!("{}", table(&Value::Object(data)));
                }
                fmt => print(&v, fmt)?,
            }
        }
        KvCmd::List { t, f } => {
            let loc = resolve(&cl, &t).await?;
            let p = if loc.v2 {
                loc.api("metadata")
            } else {
                loc.api("")
            };
            let Some(v) = cl.call("LIST", &p, None).await? else {
                eprintln!("No value found at {p}");
                return Ok(ExitCode::from(2));
            };
            let keys = v.pointer("/data/keys").cloned().unwrap_or(json!([]));
            match f.format {
                Format::Table => print!("{}", table(&keys)),
                fmt => print(&keys, fmt)?,
            }
        }
        KvCmd::Delete { t, versions } => {
            let loc = resolve(&cl, &t).await?;
            if versions.is_empty() {
                cl.call("DELETE", &loc.api("data"), None).await?;
            } else {
                cl.call(
                    "POST",
                    &loc.api("delete"),
                    Some(&json!({"versions": versions})),
                )
                .await?;
            }
            println!("Success! Data deleted (if it existed) at: {}", t.path);
        }
        KvCmd::Undelete { t, versions } => {
            let loc = resolve(&cl, &t).await?;
            cl.call(
                "POST",
                &loc.api("undelete"),
                Some(&json!({"versions": versions})),
            )
            .await?;
            println!("Success! Data written to: {}", loc.api("undelete"));
        }
        KvCmd::Destroy { t, versions } => {
            let loc = resolve(&cl, &t).await?;
            cl.call(
                "POST",
                &loc.api("destroy"),
                Some(&json!({"versions": versions})),
            )
            .await?;
            println!("Success! Data written to: {}", loc.api("destroy"));
        }
        KvCmd::Rollback { t, version } => {
            let loc = resolve(&cl, &t).await?;
            if !loc.v2 {
                bail!("rollback needs a KV version 2 mount");
            }
            let meta = cl
                .call("GET", &loc.api("metadata"), None)
                .await?
                .ok_or_else(|| anyhow!("no secret at {}", t.path))?;
            let current = meta
                .pointer("/data/current_version")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let old = read_secret(&cl, &loc, Some(version))
                .await?
                .ok_or_else(|| anyhow!("version {version} is missing, deleted or destroyed"))?;
            let data = secret_map(&loc, &old);
            let v = cl
                .call(
                    "POST",
                    &loc.api("data"),
                    Some(&write_body(data, Some(current))),
                )
                .await?
                .unwrap_or(Value::Null);
            print(
                &v.get("data").cloned().unwrap_or(Value::Null),
                Format::Table,
            )?;
        }
        KvCmd::Metadata(m) => return metadata(&cl, m).await,
        KvCmd::Import {
            file,
            t,
            input_format,
        } => {
            let text = if file == "-" {
                read_stdin()?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            let fmt = input_format.unwrap_or_else(|| {
                let lower = file.to_lowercase();
                if lower.ends_with(".json") {
                    "json".into()
                } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
                    "yaml".into()
                } else {
                    "dotenv".into()
                }
            });
            let data = match fmt.as_str() {
                "json" => match serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("{file}: invalid JSON"))?
                {
                    Value::Object(o) => o,
                    _ => bail!("{file}: must hold a JSON object"),
                },
                "yaml" => parse_flat_yaml(&text).with_context(|| file.clone())?,
                "dotenv" | "env" => parse_dotenv(&text).with_context(|| file.clone())?,
                o => bail!("unknown input format {o:?} (dotenv, json, yaml)"),
            };
            if data.is_empty() {
                bail!("{file}: no keys to import");
            }
            let n = data.len();
            let loc = resolve(&cl, &t).await?;
            if loc.v2 {
                cl.call("POST", &loc.api("data"), Some(&write_body(data, None)))
                    .await?;
            } else {
                cl.call("POST", &loc.api(""), Some(&Value::Object(data)))
                    .await?;
            }
            println!("Success! Imported {n} keys into {}", t.path);
        }
        KvCmd::Export { t, output } => {
            let loc = resolve(&cl, &t).await?;
            let v = read_secret(&cl, &loc, None)
                .await?
                .ok_or_else(|| anyhow!("no secret at {}", t.path))?;
            let data = secret_map(&loc, &v);
            match output.as_str() {
                "dotenv" | "env" => print!("{}", to_dotenv(&data)),
                "json" => print(&Value::Object(data), Format::Json)?,
                "yaml" => print(&Value::Object(data), Format::Yaml)?,
                o => bail!("unknown export format {o:?} (dotenv, json, yaml)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh random value: from the password policy `policy` (`sys/policies/password/<name>`),
/// or 32 random letters and digits.
pub(crate) async fn mint_value(cl: &Client, policy: Option<&str>) -> Result<String> {
    match policy {
        Some(p) => cl
            .call("GET", &format!("sys/policies/password/{p}/generate"), None)
            .await?
            .and_then(|v| {
                v.pointer("/data/password")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| anyhow!("password policy {p:?} returned nothing")),
        None => {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            Ok((0..32)
                .map(|_| A[rand::random_range(0..A.len())] as char)
                .collect())
        }
    }
}

async fn metadata(cl: &Client, m: MetaCmd) -> Result<ExitCode> {
    match m {
        MetaCmd::Get { t, f } => {
            let loc = resolve(cl, &t).await?;
            let Some(v) = cl.call("GET", &loc.api("metadata"), None).await? else {
                eprintln!("No value found at {}", loc.api("metadata"));
                return Ok(ExitCode::from(2));
            };
            match f.format {
                Format::Table => print(
                    &v.get("data").cloned().unwrap_or(Value::Null),
                    Format::Table,
                )?,
                fmt => print(&v, fmt)?,
            }
        }
        MetaCmd::Put {
            t,
            max_versions,
            cas_required,
            delete_version_after,
            custom_metadata,
        } => {
            let loc = resolve(cl, &t).await?;
            let mut b = Map::new();
            if let Some(x) = max_versions {
                b.insert("max_versions".into(), json!(x));
            }
            if let Some(x) = cas_required {
                b.insert("cas_required".into(), json!(x));
            }
            if let Some(x) = delete_version_after {
                b.insert("delete_version_after".into(), json!(x));
            }
            if !custom_metadata.is_empty() {
                let mut cm = Map::new();
                for it in &custom_metadata {
                    let (k, v) = it
                        .split_once('=')
                        .ok_or_else(|| anyhow!("expected key=value, got {it:?}"))?;
                    cm.insert(k.into(), json!(v));
                }
                b.insert("custom_metadata".into(), Value::Object(cm));
            }
            cl.call("POST", &loc.api("metadata"), Some(&Value::Object(b)))
                .await?;
            println!("Success! Data written to: {}", loc.api("metadata"));
        }
        MetaCmd::Delete { t } => {
            let loc = resolve(cl, &t).await?;
            cl.call("DELETE", &loc.api("metadata"), None).await?;
            println!(
                "Success! Data deleted (if it existed) at: {}",
                loc.api("metadata")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Replaces `key` in the entry at `path` with `new` if it still holds `expected` (KV v2:
/// check-and-set on the version read, so a concurrent writer makes this a no-op). `false`
/// when someone else changed it first.
pub async fn replace_if(
    cl: &Client,
    path: &str,
    key: &str,
    expected: &str,
    new: &str,
) -> Result<bool> {
    let t = Target {
        mount: None,
        path: path.to_string(),
        env: None,
    };
    let loc = resolve(cl, &t).await?;
    let Some(v) = read_secret(cl, &loc, None).await? else {
        return Ok(false);
    };
    let mut m = secret_map(&loc, &v);
    if m.get(key).and_then(Value::as_str) != Some(expected) {
        return Ok(false);
    }
    m.insert(key.to_string(), Value::String(new.to_string()));
    let body = if loc.v2 {
        let version = v.pointer("/data/metadata/version").and_then(Value::as_i64);
        write_body(m, version)
    } else {
        Value::Object(m)
    };
    match cl.call("POST", &loc.api("data"), Some(&body)).await {
        Ok(_) => Ok(true),
        Err(e) if format!("{e:#}").contains("check-and-set") => Ok(false),
        Err(e) => Err(e),
    }
}
