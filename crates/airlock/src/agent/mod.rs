//! `airlock agent -config agent.hcl`: a drop-in for the Vault/OpenBao agent configs teams
//! already have. auto_auth logs in (`auth.rs`) and keeps the token alive; file sinks get
//! it (`sink.rs`); templates are rendered consul-template style (`render.rs`) from secrets
//! kept with their leases (`secrets.rs`, schedule in `lease.rs`), re-rendered within a
//! second of a KV write through Airlock's event log (`push.rs`); env templates feed a
//! supervised child (`exec.rs`). The config is read by `config.rs` over `decode.rs`.
//!
//! ```text
//! auth ──token──▶ sinks
//!        └──────▶ runner ──secrets──▶ server        push (event log) ──paths──▶ runner
//!                   ├──files──▶ commands
//!                   └──env────▶ exec child
//! ```

mod auth;
mod config;
mod decode;
mod exec;
mod lease;
mod push;
mod render;
mod secrets;
mod sink;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Args;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::run::SignalRelay;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  airlock agent -config agent.hcl\n  airlock agent -config base.hcl -config templates.hcl\n  airlock agent -config /etc/airlock-agent.d/ -exit-after-auth\n\nThe config is the Vault agent's: vault { address }, auto_auth { method \"approle\" { ... } sink \"file\" { ... } },\ntemplate { source destination command }, template_config, env_template + exec, pid_file, exit_after_auth."
)]
pub struct AgentArgs {
    /// Agent configuration (Vault agent HCL, or JSON): a file or a directory of them;
    /// repeat to merge several, later ones winning as in Vault.
    #[arg(long = "config", required = true)]
    pub config: Vec<PathBuf>,
    /// Authenticate, write the sinks and render the templates once, then exit.
    #[arg(long)]
    pub exit_after_auth: bool,
    /// Log level: trace, debug, info, warn or error.
    #[arg(long, env = "VAULT_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// The agent's log: `LEVEL component: message` lines on stderr, no value of a secret.
#[derive(Clone, Copy)]
pub struct Log {
    level: u8,
}

impl Log {
    fn parse(s: Option<&str>) -> Result<Log> {
        let level = match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "info") => 2,
            Some("trace") => 0,
            Some("debug") => 1,
            Some("warn" | "warning") => 3,
            Some("err" | "error") => 4,
            Some(other) => {
                return Err(anyhow!(
                    "unknown log level {other:?} (trace, debug, info, warn, error)"
                ))
            }
        };
        Ok(Log { level })
    }

    fn emit(&self, level: u8, name: &str, component: &str, msg: &str) {
        if level >= self.level {
            let dot = if component.is_empty() { "" } else { "." };
            eprintln!("{} [{name}] agent{dot}{component}: {msg}", utc_now());
        }
    }

    pub fn debug(&self, c: &str, m: impl AsRef<str>) {
        self.emit(1, "DEBUG", c, m.as_ref());
    }
    pub fn info(&self, c: &str, m: impl AsRef<str>) {
        self.emit(2, "INFO", c, m.as_ref());
    }
    pub fn warn(&self, c: &str, m: impl AsRef<str>) {
        self.emit(3, "WARN", c, m.as_ref());
    }
    pub fn error(&self, c: &str, m: impl AsRef<str>) {
        self.emit(4, "ERROR", c, m.as_ref());
    }
}

/// `2024-05-01T10:00:00.123Z`.
fn utc_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The pid file, removed when the agent ends.
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn write(path: Option<PathBuf>) -> Result<PidFile> {
        if let Some(p) = &path {
            std::fs::write(p, format!("{}\n", std::process::id()))
                .map_err(|e| anyhow!("writing pid_file {}: {e}", p.display()))?;
        }
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Awaits a task once; afterwards (and for none) never completes.
async fn join<T>(h: &mut Option<JoinHandle<Result<T>>>) -> Result<T> {
    let r = match h.as_mut() {
        Some(h) => h.await,
        None => return std::future::pending().await,
    };
    *h = None;
    r.map_err(|e| anyhow!("agent task failed: {e}"))?
}

/// A restart of the child waiting for its debounce.
const RESTART_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn run(a: AgentArgs) -> Result<ExitCode> {
    let mut cfg = config::load(&a.config)?;
    cfg.exit_after_auth |= a.exit_after_auth;
    let log = Log::parse(a.log_level.as_deref().or(cfg.log_level.as_deref()))?;
    for w in &cfg.warnings {
        log.warn("config", w);
    }
    let templates = render::compile(&mut cfg)?;
    let client = Client::new(&cfg.address(), None, cfg.ca_cert())?;
    sink::check(&cfg.auto_auth.sinks)?;
    let _pid = PidFile::write(cfg.pid_file.clone())?;
    let mut relay = SignalRelay::install()?;
    let once = cfg.exit_after_auth;
    let (tok_tx, tok_rx) = watch::channel(None);
    let sinks = std::mem::take(&mut cfg.auto_auth.sinks);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let mut commands = Some(tokio::spawn(async move {
        render::command_worker(cmd_rx, log).await;
        Ok(())
    }));
    let exec_cfg = cfg.exec.take();
    let (env_tx, mut env_rx) = mpsc::unbounded_channel::<exec::Env>();
    let runner = render::Runner::new(
        templates,
        &cfg,
        log,
        cmd_tx,
        exec_cfg.is_some().then_some(env_tx),
    );
    let method = cfg.auto_auth.method;
    let mut tasks: [Option<JoinHandle<Result<()>>>; 3] = [
        Some(tokio::spawn(auth::run(
            client.clone(),
            method,
            log,
            once,
            tok_tx,
        ))),
        Some(tokio::spawn(sink::run(
            client.clone(),
            sinks,
            log,
            once,
            tok_rx.clone(),
        ))),
        Some(tokio::spawn(runner.run(client, tok_rx))),
    ];
    log.info("", format!("started (exit_after_auth: {once})"));

    let mut child: Option<exec::Child> = None;
    let mut restart: Option<(exec::Env, Instant)> = None;
    loop {
        if once && tasks.iter().all(Option::is_none) {
            // The runner is gone, so is the command queue's sender: let it drain.
            join(&mut commands).await?;
            log.info("", "exit_after_auth: done");
            return Ok(ExitCode::SUCCESS);
        }
        let [t0, t1, t2] = &mut tasks;
        let restart_at = restart.as_ref().map(|r| r.1);
        let step: Result<()> = tokio::select! {
            r = join(t0) => r,
            r = join(t1) => r,
            r = join(t2) => r,
            Some(env) = env_rx.recv() => {
                let Some(e) = &exec_cfg else { continue };
                match &child {
                    None if !once => exec::Child::spawn(&e.command, &env, log).map(|c| child = Some(c)),
                    None => Ok(()),
                    Some(_) if e.restart_always => {
                        restart = Some((env, Instant::now() + RESTART_DEBOUNCE));
                        Ok(())
                    }
                    Some(_) => {
                        log.info("exec", "detected an update, but not restarting the process (restart_on_secret_changes = \"never\")");
                        Ok(())
                    }
                }
            }
            _ = async { match restart_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                match (restart.take(), &exec_cfg) {
                    (Some((env, _)), Some(e)) => {
                        if let Some(c) = child.as_mut() {
                            log.info("exec", "secrets changed: restarting the child process");
                            c.stop(e.stop_signal, exec::STOP_GRACE).await;
                        }
                        child = None;
                        exec::Child::spawn(&e.command, &env, log).map(|c| child = Some(c))
                    }
                    _ => Ok(()),
                }
            }
            st = exec::wait_opt(&mut child) => {
                let st = st?;
                log.info("exec", format!("the child process exited ({st}); stopping"));
                return Ok(crate::run::exit_code(st));
            }
            Some(sig) = relay.next() => {
                let stop = [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT].contains(&sig);
                match child.as_mut() {
                    Some(c) if stop => {
                        log.info("", format!("signal {sig}: stopping the child process"));
                        let st = c.stop(sig, exec::STOP_GRACE).await;
                        return Ok(st.map(crate::run::exit_code).unwrap_or(ExitCode::SUCCESS));
                    }
                    Some(c) => c.signal(sig),
                    None if stop => {
                        log.info("", format!("signal {sig}: shutting down"));
                        return Ok(ExitCode::SUCCESS);
                    }
                    None => log.info("", format!("signal {sig} ignored")),
                }
                Ok(())
            }
        };
        if let Err(e) = step {
            if let Some(c) = child.as_mut() {
                c.stop(libc::SIGTERM, exec::STOP_GRACE).await;
            }
            return Err(e);
        }
    }
}
