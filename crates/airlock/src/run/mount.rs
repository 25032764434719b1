//! `--mount`: the secrets as a file instead of the environment — dotenv, JSON, YAML or a Go
//! template (`--mount-template`, the values by name as `.`) —
//! rewritten atomically (mode 0600) on every change; or, with `--mount-max-reads N`, a
//! named pipe (FIFO, mode 0600) that hands the current values to N readers and then goes,
//! so the values never rest on disk. The FIFO is removed when `airlock run` ends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{Env, RunArgs};

pub(crate) struct Mount {
    path: PathBuf,
    format: String,
    template: Option<airlock_core::gotemplate::Template>,
    /// FIFO mode: what the next reader gets.
    fifo: Option<Arc<Mutex<Zeroizing<String>>>>,
}

impl Mount {
    /// Checks the options and, for a FIFO, creates it and starts serving readers.
    pub(crate) fn new(a: &RunArgs, env: &Env) -> Result<Option<Mount>> {
        let Some(path) = &a.mount else {
            if a.mount_max_reads.is_some() {
                bail!("--mount-max-reads needs --mount FILE");
            }
            return Ok(None);
        };
        let template = match &a.mount_template {
            None => None,
            Some(t) => {
                let text = std::fs::read_to_string(t)
                    .with_context(|| format!("reading --mount-template {}", t.display()))?;
                let name = t.display().to_string();
                Some(
                    airlock_core::gotemplate::Template::parse(&name, &text, "", "")
                        .map_err(|e| anyhow::anyhow!("--mount-template {e}"))?,
                )
            }
        };
        let mut m = Mount {
            path: path.clone(),
            format: a.mount_format.clone(),
            template,
            fifo: None,
        };
        let text = m.render(env)?;
        match a.mount_max_reads {
            None => m.write_file(&text)?,
            Some(n) => {
                if path.exists() {
                    bail!(
                        "--mount {}: the path exists; a FIFO mount needs a new path",
                        path.display()
                    );
                }
                make_fifo(path)?;
                let shared = Arc::new(Mutex::new(text));
                m.fifo = Some(Arc::clone(&shared));
                serve_fifo(path.clone(), shared, n);
            }
        }
        Ok(Some(m))
    }

    fn render(&self, env: &Env) -> Result<Zeroizing<String>> {
        let map: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
            .collect();
        if let Some(t) = &self.template {
            let opts = airlock_core::gotemplate::RenderOptions {
                error_on_missing_key: true,
            };
            let r = t
                .render_data(&Value::Object(map), &mut EnvOnly, &opts)
                .map_err(|e| anyhow::anyhow!("--mount-template {e}"))?;
            return Ok(Zeroizing::new(r.text));
        }
        Ok(Zeroizing::new(match self.format.as_str() {
            "dotenv" => crate::output::to_dotenv(&map),
            "json" => serde_json::to_string_pretty(&map)? + "\n",
            "yaml" => crate::output::yaml(&Value::Object(map), 0),
            other => bail!("--mount-format {other:?}: use dotenv, json or yaml"),
        }))
    }

    fn write_file(&self, text: &str) -> Result<()> {
        let tmp = self.path.with_extension("partial");
        crate::output::write_private(&tmp, text.as_bytes(), 0o600)?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// New values: the file is rewritten; a FIFO's next reader gets them.
    pub(crate) fn update(&self, env: &Env) -> Result<()> {
        let text = self.render(env)?;
        match &self.fifo {
            None => self.write_file(&text),
            Some(shared) => {
                if let Ok(mut cur) = shared.lock() {
                    *cur = text;
                }
                Ok(())
            }
        }
    }
}

/// A mount template reads the values as `.`, the environment with `env`, nothing else.
struct EnvOnly;

impl airlock_core::gotemplate::Host for EnvOnly {
    fn secret(&mut self, _: &str, _: &[(String, String)]) -> Option<Value> {
        None
    }
    fn env(&self, name: &str) -> String {
        std::env::var(name).unwrap_or_default()
    }
    fn file(&mut self, path: &str) -> Result<String, String> {
        Err(format!("file {path:?}: not available in a mount template"))
    }
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.fifo.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn make_fifo(path: &Path) -> Result<()> {
    // `mkfifo(1)`: the crate forbids the unsafe call to mkfifo(3).
    let st = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(path)
        .status()
        .context("running mkfifo")?;
    if !st.success() {
        bail!("--mount {}: could not create a FIFO", path.display());
    }
    Ok(())
}

/// Serves the FIFO from a thread of its own (opening a FIFO blocks until a reader comes):
/// each reader gets the current values once; after `max` readers (0: no limit) it is
/// removed. After each reader a fresh FIFO is renamed into place, so a reader still
/// draining the old one never gets the next reader's copy too.
fn serve_fifo(path: PathBuf, shared: Arc<Mutex<Zeroizing<String>>>, max: u64) {
    std::thread::spawn(move || {
        let mut served = 0u64;
        loop {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) else {
                return;
            };
            served += 1;
            // A reader is here: before it gets its copy, the next reader's FIFO takes the
            // path (or, after the last, the path goes).
            let last = max != 0 && served >= max;
            let moved_on = if last {
                std::fs::remove_file(&path).is_ok()
            } else {
                let next = path.with_extension("next-fifo");
                let _ = std::fs::remove_file(&next);
                make_fifo(&next).is_ok() && std::fs::rename(&next, &path).is_ok()
            };
            let text = match shared.lock() {
                Ok(t) => Zeroizing::new(t.to_string()),
                Err(_) => return,
            };
            // A reader that goes away early is its own business.
            let _ = f.write_all(text.as_bytes());
            drop(f);
            if last || !moved_on {
                let _ = std::fs::remove_file(&path);
                return;
            }
        }
    });
}
