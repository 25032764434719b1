//! `airlock run --fallback FILE`: an encrypted copy of the last values fetched, used when the
//! server cannot be reached (and by `--offline`).
//!
//! The file (mode 0600) holds the paths, the time it was written and the values sealed with
//! AES-256-GCM. The key is HMAC-SHA256 of the token over the paths, so the file is useless
//! without the token that wrote it and cannot be replayed for other paths; the time and the
//! paths are the associated data, so neither can be edited to pass `--fallback-max-age`.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Env;

const FORMAT: &str = "airlock-run-fallback-v1";

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    written_unix: i64,
    paths: Vec<String>,
    sealed: String,
}

fn key(token: &str, paths: &[String]) -> Result<Zeroizing<[u8; 32]>> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes())
        .map_err(|_| anyhow!("invalid token for the fallback key"))?;
    mac.update(FORMAT.as_bytes());
    for p in paths {
        mac.update(b"\n");
        mac.update(p.as_bytes());
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&mac.finalize().into_bytes());
    Ok(k)
}

fn aad(written: i64, paths: &[String]) -> Vec<u8> {
    format!("{FORMAT}\n{written}\n{}", paths.join("\n")).into_bytes()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes the values, atomically, readable by the owner only.
pub fn save(path: &Path, token: &str, paths: &[String], env: &Env) -> Result<()> {
    let plain: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let plain = Zeroizing::new(serde_json::to_vec(&plain)?);
    let written = now();
    let sealed =
        airlock_store::keyring::seal_with(&*key(token, paths)?, &aad(written, paths), &plain)
            .map_err(|e| anyhow!("sealing the fallback file: {e}"))?;
    let f = File {
        format: FORMAT.into(),
        written_unix: written,
        paths: paths.to_vec(),
        sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    let tmp = path.with_extension("partial");
    crate::output::write_private(&tmp, &serde_json::to_vec(&f)?, 0o600)?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Reads the values back; refuses a file older than `max_age` seconds.
pub fn load(path: &Path, token: &str, paths: &[String], max_age: Option<u64>) -> Result<Env> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let f: File = serde_json::from_slice(&raw)
        .map_err(|_| anyhow!("{} is not an airlock run fallback file", path.display()))?;
    if f.format != FORMAT {
        bail!("{}: unknown fallback format {:?}", path.display(), f.format);
    }
    if f.paths != paths {
        bail!(
            "{} holds the values of other paths ({}); pass the same --path options",
            path.display(),
            f.paths.join(", ")
        );
    }
    let age = now().saturating_sub(f.written_unix).max(0) as u64;
    if let Some(max) = max_age {
        if age > max {
            bail!(
                "{} is {age} s old, older than --fallback-max-age ({max} s)",
                path.display()
            );
        }
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&f.sealed)
        .map_err(|_| anyhow!("{} is damaged", path.display()))?;
    let plain = airlock_store::keyring::open_with(
        &*key(token, paths)?,
        &aad(f.written_unix, paths),
        &sealed,
    )
    .map_err(|_| {
        anyhow!(
            "{} does not open with this token (or was altered)",
            path.display()
        )
    })?;
    let pairs: Vec<(String, String)> =
        serde_json::from_slice(&plain).map_err(|_| anyhow!("{} is damaged", path.display()))?;
    eprintln!(
        "airlock run: using the values saved in {} {age} s ago",
        path.display()
    );
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, Zeroizing::new(v)))
        .collect())
}
