//! `airlock server`: load configuration, build the core, serve until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::Args;

/// The configuration read when no --config is given: not a broker profile
/// (`airlock.broker.toml`) nor a project file (`airlock.project.toml`).
pub const CONFIG: &str = "airlock.server.toml";

#[derive(Args)]
pub struct ServerArgs {
    /// TOML configuration file (default: ./airlock.server.toml).
    #[arg(long, env = "AIRLOCK_CONFIG", conflicts_with = "dev")]
    pub config: Option<PathBuf>,
    /// Development mode: in-memory store, initialised and unsealed, `secret/` is KV v2.
    #[arg(long)]
    pub dev: bool,
    /// Root token id to create in dev mode (random by default).
    #[arg(long, env = "AIRLOCK_DEV_ROOT_TOKEN_ID", requires = "dev")]
    pub dev_root_token_id: Option<String>,
    /// Listen address in dev mode (default 127.0.0.1:8200; port 0 picks a free port).
    #[arg(long, requires = "dev")]
    pub dev_listen_address: Option<String>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "AIRLOCK_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: text or json.
    #[arg(long, env = "AIRLOCK_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

fn init_logging(level: &str, format: &str) -> Result<()> {
    let lvl: tracing::Level = level
        .parse()
        .map_err(|_| anyhow!("--log-level: unknown level {level:?}"))?;
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_max_level(lvl)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);

    match format {
        "json" => b.json().init(),
        "text" => b.init(),
        o => return Err(anyhow!("--log-format: unknown format {o:?} (text, json)")),
    }
    Ok(())
}

/// With a key-file seal, a node that could not unseal at start (the cluster was not
/// initialised yet — another replica initialises it — or storage was unreachable) tries again
/// every 2 s until it has unsealed once. A node sealed later by an operator stays sealed.
fn spawn_auto_unseal_retry(
    core: std::sync::Arc<airlock_server::Core>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !core.uses_auto_unseal() {
            return;
        }
        let mut warned = false;
        while core.is_sealed() {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if !core.is_sealed() {
                break;
            }
            match core.try_auto_unseal().await {
                Ok(true) => {
                    tracing::info!("auto-unsealed with the configured key");
                    break;
                }
                Ok(false) => {}
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(error = ?e.errors, "auto-unseal failed; still trying");
                }
                Err(_) => {}
            }
        }
    })
}

/// `SIGHUP` reopens the audit files (logrotate's `postrotate`: `kill -HUP <pid>`).
fn spawn_audit_reopen(core: std::sync::Arc<airlock_server::Core>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP: audit files will not be reopened");
                return;
            };
            while hup.recv().await.is_some() {
                if let Err(e) = core.audit.reopen().await {
                    tracing::error!(error = %e, "SIGHUP: reopening audit files failed");
                }
            }
        }
        #[cfg(not(unix))]
        drop(core);
    })
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received; draining connections");
}

pub async fn run(a: ServerArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    init_logging(&a.log_level, &a.log_format)?;
    let config = if a.dev {
        let mut c = airlock_server::Config::dev(a.dev_root_token_id.clone());
        if let Some(addr) = &a.dev_listen_address {
            c.listener.address = addr.clone();
        }
        c
    } else {
        let default = PathBuf::from(CONFIG);
        let path = a
            .config
            .clone()
            .or_else(|| default.is_file().then_some(default))
            .ok_or_else(|| anyhow!("either --config FILE or --dev is required (or ./{CONFIG})"))?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut c = toml::from_str::<airlock_server::Config>(&text)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        c.apply_env(|k| std::env::var(k).ok())
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        c
    };
    let core = airlock_server::build_core(config)
        .await
        .map_err(|e| anyhow!(e))?;
    let server = airlock_server::Server::bind(core.clone())
        .await
        .map_err(|e| anyhow!(e))?;
    let addr = server
        .local_addr()
        .ok_or_else(|| anyhow!("listener has no address"))?;
    let scheme = if server.is_tls() { "https" } else { "http" };
    if a.dev {
        let init = server.dev_init().await.map_err(|e| anyhow!(e))?;
        use base64::Engine;
        println!(
            "Airlock dev server: in-memory store, initialised and unsealed. Data is lost at exit."
        );
        println!("Never use dev mode in production.\n");
        println!(
            "Unseal key (base64): {}",
            base64::engine::general_purpose::STANDARD.encode(init.unseal_key.as_slice())
        );
        println!("Root token: {}\n", init.root_token.as_str());
        println!(
            "export AIRLOCK_ADDR={scheme}://{addr} AIRLOCK_TOKEN={}",
            init.root_token.as_str()
        );
        println!(
            "export VAULT_ADDR={scheme}://{addr} VAULT_TOKEN={}",
            init.root_token.as_str()
        );
    } else {
        match core.try_auto_unseal().await {
            Ok(true) => tracing::info!("auto-unsealed with the configured key"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = ?e.errors, "auto-unseal failed; trying again every 2 s")
            }
        }
    }
    let retry = spawn_auto_unseal_retry(core.clone());
    println!("Listening on {scheme}://{addr}");
    tracing::info!(address = %addr, tls = server.is_tls(), startup_ms = started.elapsed().as_millis() as u64, "listening");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let reopen = spawn_audit_reopen(core.clone());
    server.run(shutdown_signal()).await;
    reopen.abort();
    retry.abort();
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// The configuration reference in the README is real: it parses and validates.
    #[test]
    fn readme_config_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("README has a toml block") + 8;
        let end = start + readme[start..].find("```").expect("block ends");
        let cfg: airlock_server::Config = toml::from_str(&readme[start..end]).expect("parses");
        cfg.validate().expect("validates");
        assert_eq!(cfg.audit.len(), 1);
        assert!(cfg.seal.key_file.is_some());
    }

    #[test]
    fn unknown_config_keys_are_rejected_with_their_name() {
        let err = toml::from_str::<airlock_server::Config>("[listener]\nadress = \"x\"\n")
            .expect_err("typo rejected")
            .to_string();
        assert!(err.contains("adress"), "{err}");
    }
}
