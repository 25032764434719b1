//! `airlock operator …`: init, unseal, seal, rotate, key status; backups through the API of
//! a running server (online) and migration between two stores with no server running
//! (offline).

use std::process::ExitCode;
use std::sync::Arc;

use airlock_store::{backup as store_backup, Backend, PostgresBackend, SqliteBackend, SyncMode};
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::Client;
use crate::cmd::{data_of, read_stdin, read_stdin_line};
use crate::output::{print, Format};
use crate::FormatArg;

#[derive(Subcommand)]
pub enum OperatorCmd {
    /// Initialise a new server; prints unseal keys and the root token once.
    #[command(after_help = "Example:\n  airlock operator init --key-shares 5 --key-threshold 3")]
    Init {
        #[arg(long, default_value_t = 5)]
        key_shares: u8,
        #[arg(long, default_value_t = 3)]
        key_threshold: u8,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Submit one unseal key (read from stdin when absent).
    #[command(
        after_help = "Example:\n  airlock operator unseal <key>\n  airlock operator unseal --reset"
    )]
    Unseal {
        key: Option<String>,
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Seal the server (needs sudo on sys/seal).
    #[command(after_help = "Example:\n  airlock operator seal")]
    Seal,
    /// Add a new data-key term; old data stays readable.
    #[command(after_help = "Example:\n  airlock operator rotate")]
    Rotate,
    /// Show the active data-key term.
    #[command(after_help = "Example:\n  airlock operator key-status")]
    KeyStatus(FormatArg),
    /// Write a consistent backup of the whole store to FILE (online; needs sudo on
    /// sys/storage/backup). Values stay encrypted: restoring needs the same unseal keys.
    #[command(after_help = "Example:\n  airlock operator backup airlock-$(date +%F).backup")]
    Backup { file: String },
    /// Restore a backup: into a new (uninitialised) server, or over an existing store with
    /// -force. The server seals itself afterwards.
    #[command(
        after_help = "Example:\n  airlock operator restore -force airlock-2026-12-01.backup"
    )]
    Restore {
        #[arg(long, short = 'f', alias = "f")]
        force: bool,
        file: String,
    },
    /// Copy a whole store into another, empty one, with no server running on either
    /// (offline), verified by count and checksum.
    #[command(
        after_help = "Example:\n  airlock operator migrate --from sqlite:airlock-data/airlock.db --to 'postgresql:host=db user=airlock dbname=airlock sslmode=verify-full sslrootcert=/etc/ca.pem'"
    )]
    Migrate {
        /// sqlite:PATH or postgresql:URL
        #[arg(long)]
        from: String,
        /// sqlite:PATH or postgresql:URL
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "airlock_store")]
        from_table: String,
        #[arg(long, default_value = "airlock_store")]
        to_table: String,
    },
}

pub async fn operator(c: OperatorCmd) -> Result<ExitCode> {
    match &c {
        OperatorCmd::Backup { file } => return backup(file).await,
        OperatorCmd::Restore { force, file } => return restore(file, *force).await,
        OperatorCmd::Migrate {
            from,
            to,
            from_table,
            to_table,
        } => return migrate(from, to, from_table, to_table).await,
        _ => {}
    }
    let cl = Client::from_env()?;
    match c {
        OperatorCmd::Backup { .. } | OperatorCmd::Restore { .. } | OperatorCmd::Migrate { .. } => {}
        OperatorCmd::Init {
            key_shares,
            key_threshold,
            f,
        } => {
            let v = cl
                .call(
                    "PUT",
                    "sys/init",
                    Some(&json!({"secret_shares": key_shares, "secret_threshold": key_threshold})),
                )
                .await?
                .unwrap_or(Value::Null);
            if f.format == Format::Table {
                if let Some(keys) = v.get("keys_base64").and_then(Value::as_array) {
                    for (i, k) in keys.iter().enumerate() {
                        println!("Unseal Key {}: {}", i + 1, k.as_str().unwrap_or(""));
                    }
                }
                println!(
                    "\nInitial Root Token: {}",
                    v.get("root_token").and_then(Value::as_str).unwrap_or("")
                );
                println!("\nStore the unseal keys apart; {key_threshold} of them are needed to unseal after every restart.");
            } else {
                print(&v, f.format)?;
            }
        }
        OperatorCmd::Unseal { key, reset, f } => {
            let body = if reset {
                json!({"reset": true})
            } else {
                let k = match key {
                    Some(k) if k != "-" => k,
                    _ => {
                        use std::io::IsTerminal;
                        if std::io::stdin().is_terminal() {
                            // Typed here, the share stays out of the shell history.
                            eprint!("Unseal Key (will be read from this line): ");
                            read_stdin_line()?.trim().to_string()
                        } else {
                            read_stdin()?.trim().to_string()
                        }
                    }
                };
                if k.is_empty() {
                    bail!("no unseal key given: pass it as an argument, or on standard input");
                }
                json!({"key": k})
            };
            let v = cl
                .call("PUT", "sys/unseal", Some(&body))
                .await?
                .unwrap_or(Value::Null);
            print(&v, f.format)?;
        }
        OperatorCmd::Seal => {
            cl.call("PUT", "sys/seal", None).await?;
            println!("Success! Airlock is sealed.");
        }
        OperatorCmd::Rotate => {
            cl.call("PUT", "sys/rotate", None).await?;
            let v = cl
                .call("GET", "sys/key-status", None)
                .await?
                .unwrap_or(Value::Null);
            println!(
                "Success! Rotated key; new term is {}.",
                data_of(&v).get("term").cloned().unwrap_or(Value::Null)
            );
        }
        OperatorCmd::KeyStatus(f) => {
            let v = cl
                .call("GET", "sys/key-status", None)
                .await?
                .unwrap_or(Value::Null);
            print(&data_of(&v), f.format)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `operator backup FILE`: a consistent backup of the whole store, written atomically.
pub async fn backup(file: &str) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    let (status, body) = cl
        .raw_bytes("GET", "sys/storage/backup", Vec::new(), None)
        .await?;
    if status != 200 {
        bail!(
            "backup failed ({status}): {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (header, _) = store_backup::decode(&body)
        .map_err(|e| anyhow!("the server sent a damaged backup: {e}"))?;
    let tmp = format!("{file}.partial");
    crate::output::write_private(std::path::Path::new(&tmp), &body, 0o600)?;
    std::fs::rename(&tmp, file).with_context(|| format!("writing {file}"))?;
    println!(
        "Success! Backup of {} entries (cluster {}, key term {}) written to {file}.",
        header.entries, header.cluster_id, header.key_term
    );
    Ok(ExitCode::SUCCESS)
}

/// `operator restore [-force] FILE`.
pub async fn restore(file: &str, force: bool) -> Result<ExitCode> {
    let body = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let (header, _) = store_backup::decode(&body).map_err(|e| anyhow!("{file}: {e}"))?;
    let cl = Client::from_env()?;
    let path = if force {
        "sys/storage/restore?force=true"
    } else {
        "sys/storage/restore"
    };
    let (status, resp) = cl
        .raw_bytes("POST", path, body, Some("application/octet-stream"))
        .await?;
    if !(200..300).contains(&status) {
        bail!(
            "restore failed ({status}): {}",
            String::from_utf8_lossy(&resp)
        );
    }
    println!(
        "Success! Restored {} entries (cluster {}). The server sealed itself: unseal it with \
         the backup's unseal keys (a key-file seal unseals at once).",
        header.entries, header.cluster_id
    );
    Ok(ExitCode::SUCCESS)
}

/// A store named on the command line: `sqlite:PATH` or `postgresql:URL`.
async fn open(spec: &str, table: &str) -> Result<Arc<dyn Backend>> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return Ok(Arc::new(
            SqliteBackend::open(std::path::Path::new(path), SyncMode::Full)
                .map_err(|e| anyhow!("{spec}: {e}"))?,
        ));
    }
    if let Some(url) = spec
        .strip_prefix("postgresql:")
        .or_else(|| spec.strip_prefix("postgres:"))
    {
        // `postgresql:postgresql://...` and `postgresql:host=...` both work.
        let pg = PostgresBackend::connect(url, table)
            .await
            .map_err(|e| anyhow!("postgresql: {e}"))?;
        if let Some(c) = pg.cluster() {
            let live = c.nodes().await.map_err(|e| anyhow!("{e}"))?;
            if !live.is_empty() {
                bail!(
                    "{} Airlock node(s) are running on table {table}; stop them before migrating",
                    live.len()
                );
            }
        }
        return Ok(Arc::new(pg));
    }
    bail!("{spec}: name a store as sqlite:PATH or postgresql:URL")
}

/// `operator migrate --from A --to B`: copies every row, then verifies count and checksum.
pub async fn migrate(from: &str, to: &str, from_table: &str, to_table: &str) -> Result<ExitCode> {
    let src = open(from, from_table).await?;
    let dst = open(to, to_table).await?;
    let (n, sum) = store_backup::migrate(src.as_ref(), dst.as_ref())
        .await
        .map_err(|e| anyhow!("migration failed: {e}"))?;
    println!("Success! Copied {n} entries; verified by count and checksum (sha256 {sum}).");
    Ok(ExitCode::SUCCESS)
}
