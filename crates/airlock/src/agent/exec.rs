//! Child processes: `exec` (the command env templates feed) and template commands. A
//! command given as one string with spaces runs through `sh -c` in its own process group,
//! a list runs as it is (consul-template's rule); signals reach a shell's whole group.

use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use zeroize::Zeroizing;

use super::Log;

/// Rendered environment variables, sorted by name.
pub type Env = Vec<(String, Zeroizing<String>)>;

/// How long a child may take to stop before SIGKILL (Vault's kill timeout).
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The command for `argv`, and whether it is a shell in its own process group.
pub fn prepare(argv: &[String]) -> Option<(tokio::process::Command, bool)> {
    match argv {
        [one] if one.split_whitespace().count() > 1 => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(one).process_group(0);
            Some((c, true))
        }
        [first, rest @ ..] if !first.trim().is_empty() => {
            let mut c = tokio::process::Command::new(first);
            c.args(rest);
            Some((c, false))
        }
        _ => None,
    }
}

/// The command for `argv` (template commands).
pub fn command(argv: &[String]) -> Option<tokio::process::Command> {
    prepare(argv).map(|(c, _)| c)
}

/// Sends `sig` to `pid`, or to its process group (through `kill`: no `unsafe` here).
pub fn signal(pid: Option<u32>, group: bool, sig: i32) {
    if let Some(p) = pid {
        let target = if group {
            format!("-{p}")
        } else {
            p.to_string()
        };
        let _ = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg("--")
            .arg(target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The `exec` child.
pub struct Child {
    inner: tokio::process::Child,
    group: bool,
}

impl Child {
    /// Starts `argv` with the agent's environment plus `env`.
    pub fn spawn(argv: &[String], env: &Env, log: Log) -> Result<Child> {
        let (mut cmd, group) =
            prepare(argv).ok_or_else(|| anyhow!("'exec' requires a non-empty 'command' field"))?;
        for (k, v) in env {
            cmd.env(k, v.as_str());
        }
        let inner = cmd
            .spawn()
            .with_context(|| format!("starting {:?}", argv.first().cloned().unwrap_or_default()))?;
        log.info(
            "exec",
            format!(
                "started the child process (pid {})",
                inner.id().unwrap_or(0)
            ),
        );
        Ok(Child { inner, group })
    }

    pub fn signal(&self, sig: i32) {
        signal(self.inner.id(), self.group, sig);
    }

    pub async fn wait(&mut self) -> Result<ExitStatus> {
        Ok(self.inner.wait().await?)
    }

    /// Sends `sig`, waits up to `grace`, then kills.
    pub async fn stop(&mut self, sig: i32, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(st)) = self.inner.try_wait() {
            return Some(st);
        }
        self.signal(sig);
        match tokio::time::timeout(grace, self.inner.wait()).await {
            Ok(r) => r.ok(),
            Err(_) => {
                self.signal(libc::SIGKILL);
                let _ = self.inner.kill().await;
                self.inner.wait().await.ok()
            }
        }
    }
}

/// Waits for the child if there is one, forever otherwise (for `select!`).
pub async fn wait_opt(child: &mut Option<Child>) -> Result<ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}
