//! The template runner (consul-template's, as Vault's agent embeds it). Every template is
//! parsed at start, so a syntax error stops the agent with `FILE:LINE: reason`. Then:
//! render; every secret a template asks for that is not there yet is fetched; render
//! again, until all are complete. A complete render whose text differs from the
//! destination's is written atomically (a temporary file renamed over it, never a
//! truncated destination), then its command runs, once per change. After the first
//! render, `wait { min max }` holds a change back until it has been quiet for `min`, at
//! most `max`. Environment templates feed `exec` instead of files.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_core::gotemplate::{Host, RenderOptions, Template, TemplateError};
use anyhow::{anyhow, Result};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::auth::{self, Issued};
use super::config::{Config, Origin, TemplateSpec, TemplateText};
use super::decode::at;
use super::push::{self, Push};
use super::secrets::{self, Key, Store};
use super::{exec, Log};
use crate::client::Client;

/// Where a file template writes, and what it runs after.
pub struct FileOut {
    pub destination: PathBuf,
    pub perms: Option<u32>,
    pub command: Vec<String>,
    pub command_timeout: Duration,
    pub wait: Option<(Duration, Duration)>,
    pub create_dest_dirs: bool,
    pub backup: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub enum Output {
    File(Box<FileOut>),
    Env(String),
}

/// Where a template's text came from, to name its lines in errors.
enum Place {
    File(PathBuf),
    Contents {
        origin: Origin,
        first_line: Option<u32>,
    },
}

impl Place {
    fn at(&self, e: &TemplateError) -> String {
        match self {
            Place::File(p) => format!("{}:{}: {}", p.display(), e.line, e.reason),
            Place::Contents {
                first_line: Some(first),
                origin,
            } => format!(
                "{}:{}: {}",
                origin.file.display(),
                first + e.line.saturating_sub(1) as u32,
                e.reason
            ),
            Place::Contents { origin, .. } => format!(
                "{origin}: {} (line {} of the template contents)",
                e.reason, e.line
            ),
        }
    }
}

pub struct Compiled {
    tmpl: Template,
    place: Place,
    error_on_missing_key: bool,
    sandbox: Option<PathBuf>,
    pub output: Output,
}

fn compile_spec(spec: TemplateSpec, output: Output) -> Result<Compiled> {
    let (text, place) = match spec.text {
        TemplateText::File(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| {
                at(
                    &spec.origin.file,
                    spec.origin.line,
                    format!("template source {}: {e}", p.display()),
                )
            })?;
            (Zeroizing::new(text), Place::File(p))
        }
        TemplateText::Contents { text, first_line } => (
            Zeroizing::new(text),
            Place::Contents {
                origin: spec.origin.clone(),
                first_line,
            },
        ),
    };
    let name = match &place {
        Place::File(p) => p.display().to_string(),
        Place::Contents { origin, .. } => origin.to_string(),
    };
    let tmpl = Template::parse(&name, &text, &spec.left, &spec.right)
        .map_err(|e| anyhow!("{}", place.at(&e)))?;
    Ok(Compiled {
        tmpl,
        place,
        error_on_missing_key: spec.error_on_missing_key,
        sandbox: spec.sandbox,
        output,
    })
}

/// Parses every template of the config (file and environment), failing on the first error.
pub fn compile(cfg: &mut Config) -> Result<Vec<Compiled>> {
    let mut out = Vec::new();
    for t in std::mem::take(&mut cfg.templates) {
        let file = FileOut {
            destination: t.destination,
            perms: t.perms,
            command: t.command,
            command_timeout: t.command_timeout,
            wait: t.wait,
            create_dest_dirs: t.create_dest_dirs,
            backup: t.backup,
            uid: t.uid,
            gid: t.gid,
        };
        out.push(compile_spec(t.spec, Output::File(Box::new(file)))?);
    }
    for t in std::mem::take(&mut cfg.env_templates) {
        out.push(compile_spec(t.spec, Output::Env(t.name))?);
    }
    Ok(out)
}

/// What templates may ask of the world during one render.
struct PassHost<'a> {
    store: &'a mut Store,
    used: &'a mut HashSet<Key>,
    sandbox: Option<&'a Path>,
}

impl Host for PassHost<'_> {
    fn secret(&mut self, path: &str, params: &[(String, String)]) -> Option<serde_json::Value> {
        let k = secrets::key(path, params);
        let v = self.store.lookup(&k);
        self.used.insert(k);
        v
    }

    fn env(&self, name: &str) -> String {
        std::env::var(name).unwrap_or_default()
    }

    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }

    fn file(&mut self, path: &str) -> Result<String, String> {
        let p = match self.sandbox {
            Some(sb) => {
                let joined = sb.join(path.trim_start_matches('/'));
                let (Ok(real), Ok(root)) = (joined.canonicalize(), sb.canonicalize()) else {
                    return Err(format!("file({path:?}): not found in the sandbox"));
                };
                if !real.starts_with(&root) {
                    return Err(format!("file({path:?}): outside of the sandbox"));
                }
                real
            }
            None => PathBuf::from(path),
        };
        std::fs::read_to_string(&p).map_err(|e| format!("file({path:?}): {e}"))
    }
}

/// A change held back by `wait`.
struct Pending {
    text: Zeroizing<String>,
    first: Instant,
    last: Instant,
}

struct Slot {
    c: Compiled,
    /// Rendered (written, or found identical on disk) at least once.
    done_once: bool,
    last_text: Option<Zeroizing<String>>,
    pending: Option<Pending>,
    last_error: Option<String>,
}

/// A command to run after a template changed.
pub struct Cmd {
    argv: Vec<String>,
    timeout: Duration,
    dest: PathBuf,
}

pub struct Runner {
    slots: Vec<Slot>,
    store: Store,
    log: Log,
    once: bool,
    exit_on_retry_failure: bool,
    commands: mpsc::UnboundedSender<Cmd>,
    env_tx: Option<mpsc::UnboundedSender<exec::Env>>,
    last_env: Option<exec::Env>,
    /// A destination could not be written: render again then.
    retry_at: Option<Instant>,
}

/// How long after a failed write a template is rendered and written again.
const WRITE_RETRY: Duration = Duration::from_secs(5);

impl Runner {
    pub fn new(
        templates: Vec<Compiled>,
        cfg: &Config,
        log: Log,
        commands: mpsc::UnboundedSender<Cmd>,
        env_tx: Option<mpsc::UnboundedSender<exec::Env>>,
    ) -> Self {
        Runner {
            slots: templates
                .into_iter()
                .map(|c| Slot {
                    c,
                    done_once: false,
                    last_text: None,
                    pending: None,
                    last_error: None,
                })
                .collect(),
            store: Store::new(
                cfg.static_secret_render_interval,
                cfg.vault.num_retries,
                log,
            ),
            log,
            once: cfg.exit_after_auth,
            exit_on_retry_failure: cfg.exit_on_retry_failure,
            commands,
            env_tx,
            last_env: None,
            retry_at: None,
        }
    }

    fn all_done(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.done_once && s.pending.is_none())
    }

    /// Runs until every template rendered once (with `exit_after_auth`), a fatal error, or
    /// forever.
    pub async fn run(
        mut self,
        base: Client,
        mut tokens: watch::Receiver<Option<Issued>>,
    ) -> Result<()> {
        let mut cl = loop {
            if let Some(Issued::Token(t)) = tokens.borrow_and_update().clone() {
                break auth::with_token(&base, t.expose());
            }
            if tokens.changed().await.is_err() {
                return Ok(());
            }
        };
        let (push_tx, mut pushed) = mpsc::channel::<Push>(64);
        let (watching, log) = (!self.slots.is_empty(), self.log);
        let spawn_push = |cl: Client| {
            let tx = push_tx.clone();
            async move {
                if !watching {
                    return None;
                }
                let since = match push::cursor(&cl, log).await {
                    Ok(None) => return None,
                    Ok(Some(c)) => Some(c),
                    Err(()) => None,
                };
                Some(tokio::spawn(push::run(cl, log, tx, since)))
            }
        };
        let mut pusher = spawn_push(cl.clone()).await;
        let mut dirty = true;
        // With exit_after_auth, auto_auth ends after the first token: keep rendering.
        let mut more_tokens = true;
        loop {
            let outcome = self.store.run_due(&cl).await;
            if let Some(e) = outcome.exhausted {
                if self.exit_on_retry_failure {
                    stop(&pusher);
                    return Err(e);
                }
            }
            if outcome.changed || dirty {
                dirty = false;
                if let Err(e) = self.render_pass() {
                    stop(&pusher);
                    return Err(e);
                }
            }
            self.flush_quiet();
            if self.store.due_now() {
                continue;
            }
            if self.once && self.all_done() {
                stop(&pusher);
                return Ok(());
            }
            if self.retry_at.is_some_and(|t| t <= Instant::now()) {
                self.retry_at = None;
                dirty = true;
                continue;
            }
            let next = [self.store.next_due(), self.next_quiet(), self.retry_at]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                _ = async { match next { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
                c = tokens.changed(), if more_tokens => {
                    if c.is_err() {
                        more_tokens = false;
                        continue;
                    }
                    let issued = tokens.borrow_and_update().clone();
                    if let Some(Issued::Token(t)) = issued {
                        self.log.info("template", "received a new token: fetching every secret again");
                        cl = auth::with_token(&base, t.expose());
                        self.store.clear();
                        stop(&pusher);
                        pusher = spawn_push(cl.clone()).await;
                        dirty = true;
                    }
                }
                Some(p) = pushed.recv() => match p {
                    Push::Changed(path) => {
                        if self.store.changed(&path) {
                            self.log.debug("template", format!("{path} changed"));
                        }
                    }
                    Push::Resync => self.store.resync(),
                },
            }
        }
    }

    /// Renders every template with what the store has; asks the store for what is missing.
    fn render_pass(&mut self) -> Result<()> {
        let mut used = HashSet::new();
        let mut failed = false;
        let mut commands: Vec<Cmd> = Vec::new();
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let mut host = PassHost {
                store: &mut self.store,
                used: &mut used,
                sandbox: slot.c.sandbox.as_deref(),
            };
            let opts = RenderOptions {
                error_on_missing_key: slot.c.error_on_missing_key,
            };
            match slot.c.tmpl.render(&mut host, &opts) {
                Err(e) => {
                    failed = true;
                    let msg = slot.c.place.at(&e);
                    if self.once || self.exit_on_retry_failure {
                        return Err(anyhow!("{msg}"));
                    }
                    if slot.last_error.as_deref() != Some(msg.as_str()) {
                        self.log.error(
                            "template",
                            format!(
                                "{msg} (kept the last rendering; trying again on the next change)"
                            ),
                        );
                        slot.last_error = Some(msg);
                    }
                }
                Ok(r) if !r.complete => {}
                Ok(r) => {
                    slot.last_error = None;
                    let text = Zeroizing::new(r.text);
                    match deliver(slot, text, self.log) {
                        Ok(Some(c)) if !commands.iter().any(|x| x.argv == c.argv) => {
                            commands.push(c)
                        }
                        Ok(_) => {}
                        Err(e) if self.once => return Err(e),
                        Err(e) => {
                            self.log.error(
                                "template",
                                format!("{e:#} (trying again in {WRITE_RETRY:?})"),
                            );
                            self.retry_at = Some(Instant::now() + WRITE_RETRY);
                        }
                    }
                }
            }
        }
        if !failed {
            self.store.retain(&used);
        }
        for c in commands {
            let _ = self.commands.send(c);
        }
        self.send_env();
        Ok(())
    }

    /// Writes the changes `wait` held back once they are quiet (or old) enough.
    fn flush_quiet(&mut self) {
        let now = Instant::now();
        let mut commands = Vec::new();
        for slot in &mut self.slots {
            let Output::File(f) = &slot.c.output else {
                continue;
            };
            let Some((min, max)) = f.wait else { continue };
            let ready = slot
                .pending
                .as_ref()
                .is_some_and(|p| now >= p.last + min || now >= p.first + max);
            if !ready {
                continue;
            }
            if let Some(p) = slot.pending.take() {
                match write_now(slot, p.text, self.log) {
                    Ok(Some(c)) if !commands.iter().any(|x: &Cmd| x.argv == c.argv) => {
                        commands.push(c)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.log.error(
                            "template",
                            format!("{e:#} (trying again in {WRITE_RETRY:?})"),
                        );
                        self.retry_at = Some(now + WRITE_RETRY);
                    }
                }
            }
        }
        for c in commands {
            let _ = self.commands.send(c);
        }
    }

    fn next_quiet(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match (&s.c.output, &s.pending) {
                (Output::File(f), Some(p)) => {
                    f.wait.map(|(min, max)| (p.last + min).min(p.first + max))
                }
                _ => None,
            })
            .min()
    }

    /// Hands the environment to `exec` when every environment template is rendered and
    /// something changed.
    fn send_env(&mut self) {
        let Some(tx) = &self.env_tx else { return };
        let mut env: exec::Env = Vec::new();
        for s in &self.slots {
            if let Output::Env(name) = &s.c.output {
                match &s.last_text {
                    Some(t) => env.push((name.clone(), Zeroizing::new(t.to_string()))),
                    None => return,
                }
            }
        }
        env.sort_by(|a, b| a.0.cmp(&b.0));
        let same = self.last_env.as_ref().is_some_and(|old| {
            old.len() == env.len()
                && old
                    .iter()
                    .zip(&env)
                    .all(|(a, b)| a.0 == b.0 && a.1.as_str() == b.1.as_str())
        });
        if !same {
            let _ = tx.send(env.clone());
            self.last_env = Some(env);
        }
    }
}

fn stop(h: &Option<tokio::task::JoinHandle<()>>) {
    if let Some(h) = h {
        h.abort();
    }
}

/// A complete render: to the environment, to disk now, or held back by `wait`.
fn deliver(slot: &mut Slot, text: Zeroizing<String>, log: Log) -> Result<Option<Cmd>> {
    let wait = match &slot.c.output {
        Output::Env(_) => {
            slot.last_text = Some(text);
            slot.done_once = true;
            return Ok(None);
        }
        Output::File(f) => f.wait,
    };
    if slot.done_once && wait.is_some() {
        if slot
            .last_text
            .as_ref()
            .is_some_and(|t| t.as_str() == text.as_str())
        {
            slot.pending = None;
            return Ok(None);
        }
        let now = Instant::now();
        slot.pending = Some(match slot.pending.take() {
            Some(p) => Pending {
                text,
                first: p.first,
                last: now,
            },
            None => Pending {
                text,
                first: now,
                last: now,
            },
        });
        return Ok(None);
    }
    write_now(slot, text, log)
}

/// Writes a file template's text unless the destination already holds it; the command
/// to run when it changed.
fn write_now(slot: &mut Slot, text: Zeroizing<String>, log: Log) -> Result<Option<Cmd>> {
    let Output::File(f) = &slot.c.output else {
        return Ok(None);
    };
    let dest = &f.destination;
    let existing = std::fs::read(dest).ok().map(Zeroizing::new);
    slot.done_once = true;
    if existing
        .as_ref()
        .is_some_and(|e| e.as_slice() == text.as_bytes())
    {
        slot.last_text = Some(text);
        return Ok(None);
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            if !f.create_dest_dirs {
                return Err(anyhow!("{}: parent directory is missing", dest.display()));
            }
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow!("creating {}: {e}", parent.display()))?;
        }
    }
    let perms = f.perms.unwrap_or_else(|| {
        std::fs::metadata(dest)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644)
    });
    if f.backup && existing.is_some() {
        let bak = PathBuf::from(format!("{}.bak", dest.display()));
        let _ = std::fs::remove_file(&bak);
        if let Err(e) = std::fs::hard_link(dest, &bak) {
            log.warn(
                "template",
                format!("could not back up {}: {e}", dest.display()),
            );
        }
    }
    super::sink::write_atomic(dest, text.as_bytes(), perms, f.uid, f.gid)?;
    log.info("template", format!("rendered {}", dest.display()));
    slot.last_text = Some(text);
    Ok((!f.command.is_empty()).then(|| Cmd {
        argv: f.command.clone(),
        timeout: f.command_timeout,
        dest: dest.clone(),
    }))
}

/// Runs template commands one after another, each bounded by its timeout.
pub async fn command_worker(mut rx: mpsc::UnboundedReceiver<Cmd>, log: Log) {
    while let Some(c) = rx.recv().await {
        let Some(mut cmd) = exec::command(&c.argv) else {
            log.error("template", format!("{}: empty command", c.dest.display()));
            continue;
        };
        cmd.kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(ch) => ch,
            Err(e) => {
                log.error(
                    "template",
                    format!(
                        "{}: command {:?} could not start: {e}",
                        c.dest.display(),
                        c.argv
                    ),
                );
                continue;
            }
        };
        match tokio::time::timeout(c.timeout, child.wait()).await {
            Ok(Ok(st)) if st.success() => {}
            Ok(Ok(st)) => log.error(
                "template",
                format!(
                    "{}: command {:?} exited with {st}",
                    c.dest.display(),
                    c.argv
                ),
            ),
            Ok(Err(e)) => log.error(
                "template",
                format!("{}: command {:?}: {e}", c.dest.display(), c.argv),
            ),
            Err(_) => {
                let _ = child.kill().await;
                log.error(
                    "template",
                    format!(
                        "{}: command {:?} timed out after {:?}",
                        c.dest.display(),
                        c.argv,
                        c.timeout
                    ),
                );
            }
        }
    }
}
