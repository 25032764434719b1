//! `airlock run`: inject KV secrets as environment variables into a child process, forward
//! signals, and exit with the child's status. Values are never printed.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::client::Client;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  airlock run --path secret/voice/prod -- python agent.py\n  airlock run --path secret/base --path secret/voice/prod --only OPENAI_API_KEY,DB_URL -- ./serve\n  airlock run --path secret/app --prefix APP_ -- env"
)]
pub struct RunArgs {
    /// KV path to load (repeatable; later paths override earlier ones).
    #[arg(long = "path", required = true)]
    pub paths: Vec<String>,
    /// Only inject these keys (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Prefix for every injected variable name.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Keep AIRLOCK_TOKEN / VAULT_TOKEN in the child's environment (removed by default).
    #[arg(long)]
    pub keep_token: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub async fn run(a: RunArgs) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    let mut env: Vec<(String, Zeroizing<String>)> = Vec::new();
    for p in &a.paths {
        let m = crate::kv::read_map(&cl, p)
            .await
            .with_context(|| format!("loading {p}"))?;
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
    let (prog, args) = a
        .command
        .split_first()
        .ok_or_else(|| anyhow!("no command given after --"))?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args);
    if !a.keep_token {
        cmd.env_remove("AIRLOCK_TOKEN").env_remove("VAULT_TOKEN");
    }
    for (k, v) in &env {
        cmd.env(k, v.as_str());
    }
    drop(env);
    let relay = SignalRelay::install()?;
    let mut child = cmd.spawn().with_context(|| format!("starting {prog}"))?;
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
