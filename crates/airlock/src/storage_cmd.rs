//! `airlock operator backup|restore|migrate`: backups through the API of a running server
//! (online), and migration between two stores with no server running (offline).

use std::process::ExitCode;
use std::sync::Arc;

use airlock_store::{backup, Backend, PostgresBackend, SqliteBackend, SyncMode};
use anyhow::{anyhow, bail, Context, Result};

use crate::client::Client;

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
    let (header, _) =
        backup::decode(&body).map_err(|e| anyhow!("the server sent a damaged backup: {e}"))?;
    let tmp = format!("{file}.partial");
    crate::cmd::write_private(std::path::Path::new(&tmp), &body, 0o600)?;
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
    let (header, _) = backup::decode(&body).map_err(|e| anyhow!("{file}: {e}"))?;
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
    let (n, sum) = backup::migrate(src.as_ref(), dst.as_ref())
        .await
        .map_err(|e| anyhow!("migration failed: {e}"))?;
    println!("Success! Copied {n} entries; verified by count and checksum (sha256 {sum}).");
    Ok(ExitCode::SUCCESS)
}
