//! `airlock run`: inject KV secrets as environment variables (or a `--mount` file) into a
//! child process, forward signals, and exit with the child's status. Values are never
//! printed. `--watch` keeps them current (`watch.rs`); `--fallback` keeps an encrypted copy
//! for when the server cannot be reached (`fallback.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::client::{ApiFailure, Client};

mod fallback;
mod mount;
mod watch;

/// Variable name and value, in the order they are injected.
pub type Env = Vec<(String, Zeroizing<String>)>;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  airlock run --path secret/voice/prod -- python agent.py\n  airlock run --path secret/base --path secret/voice/prod --only OPENAI_API_KEY,DB_URL -- ./serve\n  airlock run --path secret/app --prefix APP_ -- env\n  airlock run --watch --path secret/app -- ./serve            (restart on change)\n  airlock run --watch --on-change signal:HUP --mount /run/app/secrets.env --path secret/app -- ./serve\n  airlock run --fallback ~/.cache/app.fallback --fallback-max-age 24h --path secret/app -- ./serve"
)]
pub struct RunArgs {
    /// KV path to load (repeatable; later paths override earlier ones). Without one, the
    /// environment of the project in airlock.project.toml.
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// The project's environment to use instead of its default (without --path).
    #[arg(long = "env", conflicts_with = "paths")]
    pub env: Option<String>,
    /// Inject values as stored: `${…}` references not resolved.
    #[arg(long)]
    pub raw: bool,
    /// Only inject these keys (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Prefix for every injected variable name.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Keep AIRLOCK_TOKEN / VAULT_TOKEN in the child's environment (removed by default).
    #[arg(long)]
    pub keep_token: bool,
    /// Keep the values current while the command runs (see --on-change).
    #[arg(long)]
    pub watch: bool,
    /// What a change does: restart (SIGTERM, --grace, SIGKILL, start again), signal:NAME
    /// (e.g. signal:HUP, with --mount: the command re-reads its file), exec:COMMAND, none.
    #[arg(long, default_value = "restart")]
    pub on_change: String,
    /// How long a restart waits after SIGTERM before SIGKILL.
    #[arg(long, default_value = "10s")]
    pub grace: String,
    /// A change acts once it has held this long: a burst of writes gives one action.
    #[arg(long, default_value = "1s")]
    pub debounce: String,
    /// How often --watch checks the values.
    #[arg(long, default_value = "2s")]
    pub poll_interval: String,
    /// Write the secrets to this file (mode 0600; rewritten atomically on change) instead of
    /// the environment; the command finds its path in AIRLOCK_SECRETS_FILE.
    #[arg(long)]
    pub mount: Option<PathBuf>,
    /// Format of the --mount file: dotenv, json or yaml.
    #[arg(long, default_value = "dotenv")]
    pub mount_format: String,
    /// Render the --mount file from this Go template instead (`{{ .API_KEY }}`, `range`,
    /// `toJSON`, ...: the values by name are `.`).
    #[arg(long, conflicts_with = "mount_format")]
    pub mount_template: Option<PathBuf>,
    /// Make the --mount path a named pipe (FIFO, mode 0600) that serves the values to this
    /// many readers (0: any number) and is removed after: the values never rest on disk.
    #[arg(long)]
    pub mount_max_reads: Option<u64>,
    /// Keep an encrypted copy of the last values here (mode 0600, sealed with a key derived
    /// from the token and the paths), used when the server cannot be reached.
    #[arg(long)]
    pub fallback: Option<PathBuf>,
    /// Refuse a fallback copy older than this (e.g. 24h).
    #[arg(long)]
    pub fallback_max_age: Option<String>,
    /// Use only the --fallback file; do not ask the server.
    #[arg(long, requires = "fallback")]
    pub offline: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The values of `a.paths`, as the command gets them.
pub(crate) async fn load(a: &RunArgs, cl: &Client) -> Result<Env> {
    let mut env: Env = Vec::new();
    for p in &a.paths {
        let m = crate::kv::read_map(cl, p)
            .await
            .with_context(|| format!("loading {p}"))?;
        let m = if a.raw {
            m
        } else {
            crate::kv::resolve_refs(cl, p, m)
                .await
                .with_context(|| format!("resolving references in {p}"))?
        };
        for (k, v) in m {
            if !a.only.is_empty() && !a.only.iter().any(|o| o == &k) {
                continue;
            }
            let name = format!("{}{k}", a.prefix);
            if !valid_env_name(&name) {
                eprintln!("airlock run: skipping key {k:?} from {p}: not a valid environment variable name");
                continue;
            }
            let val = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if val.contains('\0') {
                bail!("value of {k:?} in {p} contains a NUL byte and cannot be an environment variable");
            }
            env.retain(|(n, _)| n != &name);
            env.push((name, Zeroizing::new(val)));
        }
    }
    for o in &a.only {
        if !env.iter().any(|(n, _)| n == &format!("{}{o}", a.prefix)) {
            bail!("--only {o}: no such key in the given paths");
        }
    }
    Ok(env)
}

/// The values to start with: from the server, or from the fallback file when the server
/// cannot be reached (never when it answers, e.g. with 403) or with --offline.
async fn initial(a: &RunArgs, cl: &Client) -> Result<Env> {
    let token = cl.token.as_deref().map(String::as_str).unwrap_or("");
    let max_age = a
        .fallback_max_age
        .as_deref()
        .map(|s| watch::millis("--fallback-max-age", s).map(|d| d.as_secs()))
        .transpose()?;
    if a.offline {
        let f = a
            .fallback
            .as_deref()
            .ok_or_else(|| anyhow!("--offline needs --fallback FILE"))?;
        return fallback::load(f, token, &a.paths, max_age);
    }
    match load(a, cl).await {
        Ok(env) => {
            if let Some(f) = &a.fallback {
                fallback::save(f, token, &a.paths, &env)?;
            }
            Ok(env)
        }
        Err(e) if e.downcast_ref::<ApiFailure>().is_none() => match &a.fallback {
            Some(f) => {
                eprintln!(
                    "airlock run: the server cannot be reached ({e:#}); trying {}",
                    f.display()
                );
                fallback::load(f, token, &a.paths, max_age)
            }
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Puts the values where the command finds them: its environment, or (with --mount) the
/// file's path in AIRLOCK_SECRETS_FILE.
pub(crate) fn apply_env(a: &RunArgs, cmd: &mut tokio::process::Command, env: &Env) {
    if !a.keep_token {
        cmd.env_remove("AIRLOCK_TOKEN").env_remove("VAULT_TOKEN");
    }
    match &a.mount {
        Some(m) => {
            cmd.env("AIRLOCK_SECRETS_FILE", m);
        }
        None => {
            for (k, v) in env {
                cmd.env(k, v.as_str());
            }
        }
    }
}

pub(crate) fn spawn(a: &RunArgs, env: &Env) -> Result<tokio::process::Child> {
    let (prog, args) = a
        .command
        .split_first()
        .ok_or_else(|| anyhow!("no command given after --"))?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args);
    apply_env(a, &mut cmd, env);
    cmd.spawn().with_context(|| format!("starting {prog}"))
}

pub async fn run(mut a: RunArgs) -> Result<ExitCode> {
    if a.paths.is_empty() {
        a.paths = vec![crate::project::file::required(a.env.as_deref())?.env_path()];
    }
    let cl = Client::from_env()?;
    cl.require_token()?;
    watch::parse_on_change(&a.on_change)?;
    let env = initial(&a, &cl).await?;
    if a.watch {
        return watch::supervise(&a, &cl, env).await;
    }
    let _mount = mount::Mount::new(&a, &env)?;
    let relay = SignalRelay::install()?;
    let mut child = spawn(&a, &env)?;
    drop(env);
    let pid = child.id().map(|p| p as i32);
    let status = relay.wait(&mut child, pid).await?;
    Ok(exit_code(status))
}

/// Signal handlers installed *before* the child is spawned, so a signal that arrives while
/// the child starts is forwarded instead of killing Airlock with the default action.
pub(crate) struct SignalRelay {
    #[cfg(unix)]
    rx: tokio::sync::mpsc::UnboundedReceiver<i32>,
    #[cfg(unix)]
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SignalRelay {
    #[cfg(unix)]
    pub(crate) fn install() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [
            (SignalKind::interrupt(), libc::SIGINT),
            (SignalKind::terminate(), libc::SIGTERM),
            (SignalKind::hangup(), libc::SIGHUP),
            (SignalKind::quit(), libc::SIGQUIT),
            (SignalKind::user_defined1(), libc::SIGUSR1),
            (SignalKind::user_defined2(), libc::SIGUSR2),
        ];
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
        let mut tasks = Vec::new();
        for (k, n) in kinds {
            let mut s = signal(k)?;
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }));
        }
        Ok(SignalRelay { rx, tasks })
    }

    #[cfg(not(unix))]
    pub(crate) fn install() -> Result<Self> {
        Ok(SignalRelay {})
    }

    /// The next signal to forward.
    #[cfg(unix)]
    pub(crate) async fn next(&mut self) -> Option<i32> {
        self.rx.recv().await
    }

    #[cfg(not(unix))]
    pub(crate) async fn next(&mut self) -> Option<i32> {
        std::future::pending().await
    }

    /// Wait for the child, forwarding every relayed signal to it.
    #[cfg(unix)]
    pub(crate) async fn wait(
        mut self,
        child: &mut tokio::process::Child,
        pid: Option<i32>,
    ) -> Result<std::process::ExitStatus> {
        let status = loop {
            tokio::select! {
                st = child.wait() => break st?,
                Some(sig) = self.rx.recv() => {
                    if let Some(p) = pid {
                        // The workspace forbids `unsafe`, so signal the pid through `kill`.
                        let _ = std::process::Command::new("kill").arg(format!("-{sig}")).arg(p.to_string()).status();
                    }
                }
            }
        };
        for t in self.tasks {
            t.abort();
        }
        Ok(status)
    }

    #[cfg(not(unix))]
    pub(crate) async fn wait(
        self,
        child: &mut tokio::process::Child,
        _pid: Option<i32>,
    ) -> Result<std::process::ExitStatus> {
        Ok(child.wait().await?)
    }
}

pub(crate) fn exit_code(st: std::process::ExitStatus) -> ExitCode {
    if let Some(c) = st.code() {
        return ExitCode::from(c.clamp(0, 255) as u8);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(s) = st.signal() {
            return ExitCode::from((128 + s).clamp(0, 255) as u8);
        }
    }
    ExitCode::from(1)
}
