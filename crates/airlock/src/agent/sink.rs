//! File sinks: every token auto_auth hands out is written to each sink's path, atomically
//! (a temporary file in the same directory, renamed over the old one) with the sink's mode
//! (default 0640). With `wrap_ttl` the sink gets the token response-wrapped instead: the
//! wrap-info JSON Vault's agent writes (`sys/wrapping/wrap`, one line).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::json;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::auth::{self, Issued};
use super::config::Sink;
use super::Log;
use crate::client::Client;

/// Writes `bytes` to `path` through a temporary file in the same directory, with `mode`
/// (not subject to the umask) and, if given, owner and group; then renames it into place.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<()> {
    let tmp = temp_path(path);
    let ctx = || format!("writing {}", path.display());
    let result = (|| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&tmp, uid, gid)?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(ctx)
}

/// `<dir>/<name>.tmp.<8 hex digits>`.
fn temp_path(path: &Path) -> PathBuf {
    let mut r = [0u8; 4];
    rand::fill(&mut r);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: String = r.iter().map(|b| format!("{b:02x}")).collect();
    path.with_file_name(format!("{name}.tmp.{suffix}"))
}

/// Vault's write check at start: a sink whose directory cannot take a file fails now, not
/// after the first login.
pub fn check(sinks: &[Sink]) -> Result<()> {
    for s in sinks {
        let tmp = temp_path(&s.path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(s.mode)
            .open(&tmp)
            .map_err(|e| anyhow!("sink {}: error during write check: {e}", s.path.display()))?;
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(())
}

/// What a sink gets for `issued`.
async fn value_for(base: &Client, sink: &Sink, issued: &Issued) -> Result<Zeroizing<String>> {
    let token = match issued {
        Issued::Wrapped(w) => return Ok(Zeroizing::new(w.expose().to_string())),
        Issued::Token(t) => t,
    };
    let Some(ttl) = sink.wrap_ttl else {
        return Ok(Zeroizing::new(token.expose().to_string()));
    };
    let mut cl = auth::with_token(base, token.expose());
    cl.wrap_ttl = Some(format!("{}s", ttl.as_secs().max(1)));
    let v = auth::api(
        &cl,
        "POST",
        "sys/wrapping/wrap",
        Some(&json!({"token": token.expose()})),
    )
    .await
    .context("error wrapping token, not writing out to sink")?;
    let wi = v
        .get("wrap_info")
        .filter(|w| w["token"].as_str().is_some_and(|t| !t.is_empty()))
        .ok_or_else(|| anyhow!("nil wrap info returned, not writing out to sink"))?;
    Ok(Zeroizing::new(auth::wrap_info_json(wi)))
}

/// Writes each new token to every sink; a failed write is retried every ~2 s until it
/// succeeds or a newer token replaces it. With `once`, returns after the first token is
/// in every sink.
pub async fn run(
    base: Client,
    sinks: Vec<Sink>,
    log: Log,
    once: bool,
    mut rx: watch::Receiver<Option<Issued>>,
) -> Result<()> {
    loop {
        let Some(issued) = rx.borrow_and_update().clone() else {
            if rx.changed().await.is_err() {
                return Ok(());
            }
            continue;
        };
        let mut pending: Vec<&Sink> = sinks.iter().collect();
        let mut superseded = false;
        while !pending.is_empty() {
            let mut failed = Vec::new();
            for s in pending {
                let r = match value_for(&base, s, &issued).await {
                    Ok(v) => write_atomic(&s.path, v.as_bytes(), s.mode, s.uid, s.gid),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => log.info("sink", format!("token written to {}", s.path.display())),
                    Err(e) => {
                        log.error("sink", format!("{}: {e:#}; retrying", s.path.display()));
                        failed.push(s);
                    }
                }
            }
            pending = failed;
            if !pending.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    c = rx.changed() => {
                        if c.is_err() {
                            return Ok(());
                        }
                        superseded = true;
                        break;
                    }
                }
            }
        }
        if superseded {
            continue;
        }
        if once || rx.changed().await.is_err() {
            return Ok(());
        }
    }
}
