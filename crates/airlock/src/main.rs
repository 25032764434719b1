//! The `airlock` command: argument parsing and glue. The work lives in the library crates
//! (`airlock-server`, `airlock-store`, `airlock-audit`, `airlock-core`); client commands talk
//! to a server over its Vault-compatible HTTP API.

mod agent;
mod auth;
mod broker;
mod client;
mod cmd;
mod events_cmd;
mod generic;
mod k8s;
mod kv;
mod operator;
mod output;
mod project;
mod run;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Format;

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "Airlock: a self-hosted secrets manager and credential broker that speaks the Vault API.",
    after_help = "Examples:\n  airlock server --dev\n  export AIRLOCK_ADDR=http://127.0.0.1:8200 AIRLOCK_TOKEN=...\n  airlock kv put secret/voice/prod OPENAI_API_KEY=@key.txt\n  airlock run --path secret/voice/prod -- python agent.py\n  airlock setup --project voice --env dev && airlock run -- python agent.py\n\nVault-style single-dash flags work too: `airlock kv get -field=password secret/app`."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(clap::Args, Clone, Copy)]
pub struct FormatArg {
    /// Output format: table, json or yaml.
    #[arg(long = "format", default_value = "table", global = true)]
    pub format: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(
        after_help = "Examples:\n  airlock server --dev\n  airlock server --config airlock.server.toml"
    )]
    Server(server::ServerArgs),
    /// Show seal status of the server at AIRLOCK_ADDR.
    #[command(after_help = "Example:\n  airlock status --format json")]
    Status(FormatArg),
    /// Initialise, unseal, seal and rotate.
    #[command(subcommand)]
    Operator(operator::OperatorCmd),
    /// Log in: store a token in ~/.airlock-token after checking it, or log in with an auth
    /// method (-method=approle|jwt|oidc|kubernetes|userpass key=value…).
    #[command(
        after_help = "Examples:\n  airlock login alt_...   (or: echo $TOKEN | airlock login -)\n  airlock login -method=approle role_id=... secret_id=...\n  airlock login -method=jwt -path=ci-jwt role=deploy jwt=@$ACTIONS_ID_TOKEN_FILE\n  airlock login -method=kubernetes role=app jwt=@/var/run/secrets/kubernetes.io/serviceaccount/token\n  airlock login -method=userpass username=alice   (prompts for the password)"
    )]
    Login {
        /// The token (`-` or absent: standard input), or key=value pairs with -method.
        args: Vec<String>,
        /// Auth method to log in with.
        #[arg(long)]
        method: Option<String>,
        /// Mount path of the auth method (default: the method's name).
        #[arg(long)]
        path: Option<String>,
        /// Do not store the token in ~/.airlock-token.
        #[arg(long)]
        no_store: bool,
        /// Print only the token.
        #[arg(long)]
        token_only: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Enable, list, tune and disable auth methods.
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Unwrap a response-wrapping token.
    #[command(
        after_help = "Examples:\n  airlock unwrap s.AbC...\n  airlock unwrap -field=secret_id s.AbC..."
    )]
    Unwrap {
        /// The wrapping token (default: the current token).
        token: Option<String>,
        #[arg(long)]
        field: Option<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Create, inspect, renew and revoke tokens.
    #[command(subcommand)]
    Token(cmd::TokenCmd),
    /// Manage ACL policies.
    #[command(subcommand)]
    Policy(cmd::PolicyCmd),
    /// Enable, list, tune and disable secrets engines.
    #[command(subcommand)]
    Secrets(cmd::SecretsCmd),
    /// Read and write key/value secrets.
    #[command(subcommand)]
    Kv(kv::KvCmd),
    /// Run a command with secrets from KV paths in its environment.
    Run(run::RunArgs),
    /// Run the agent: auto-auth, token sinks, templates and exec from a Vault agent config.
    Agent(agent::AgentArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(cmd::AuditCmd),
    /// Read any API path (e.g. database/creds/app).
    #[command(
        after_help = "Examples:\n  airlock read database/creds/app\n  airlock read -field=password database/creds/app"
    )]
    Read(generic::PathArgs),
    /// Write key=value pairs to any API path.
    #[command(
        after_help = "Example:\n  airlock write database/roles/app db_name=pg creation_statements=@create.sql default_ttl=1h"
    )]
    Write(generic::WriteArgs),
    /// List keys under any API path.
    #[command(after_help = "Example:\n  airlock list database/roles")]
    List(generic::PathArgs),
    /// Delete at any API path.
    #[command(after_help = "Example:\n  airlock delete database/roles/app")]
    Delete(generic::PathArgs),
    /// Look up, renew and revoke leases.
    #[command(subcommand)]
    Lease(generic::LeaseCmd),
    /// Follow the event log: every change the token may see, as it happens.
    #[command(subcommand)]
    Events(events_cmd::EventsCmd),
    /// The credential broker: run agents with placeholders instead of credentials.
    #[command(subcommand)]
    Broker(broker::BrokerCmd),
    /// Projects: lay out secret/<project>/<env> with policies and roles per environment.
    #[command(subcommand)]
    Project(project::ProjectCmd),
    /// Write airlock.project.toml: the project and environment of this repository (or folder).
    Setup(project::SetupArgs),
    /// Compare, check and promote a project's environments.
    #[command(subcommand)]
    Env(project::envs::EnvCmd),
    /// Kubernetes: Secret manifests from KV paths, and a declarative bootstrap of Secrets.
    #[command(subcommand)]
    K8s(k8s::K8sCmd),
    /// Print Airlock's version.
    Version,
}

/// Accepts Vault-style `-flag=value` by rewriting single-dash long flags to `--flag`.
fn normalize_args() -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, a) in std::env::args_os().enumerate() {
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        let s = a.to_string_lossy().to_string();
        if s == "--" {
            passthrough = true;
            out.push(a);
            continue;
        }
        let bytes = s.as_bytes();
        let long_single = bytes.len() > 2
            && bytes.first() == Some(&b'-')
            && bytes
                .get(1)
                .map(|c| c.is_ascii_alphabetic())
                .unwrap_or(false)
            && (s.contains('=')
                || bytes
                    .get(2)
                    .map(|c| c.is_ascii_alphabetic() || *c == b'-')
                    .unwrap_or(false));
        if long_single {
            out.push(format!("-{s}").into());
        } else {
            out.push(a);
        }
    }
    out
}

/// A reader that goes away (`airlock … | head`) ends the command quietly, as it ends
/// `ls` or `vault`: printing to a closed stdout or stderr panics in Rust's `print!`, and that
/// one panic becomes a quiet, successful exit. Every other panic is reported as usual.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload_as_str().unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    // `broker run --sandbox`'s helper: before the runtime, while the process has one thread.
    let mut argv = std::env::args_os();
    if argv.nth(1).is_some_and(|a| a == broker::sandbox::CHILD_ARG) {
        return broker::sandbox::child_main(argv);
    }
    let cli = Cli::parse_from(normalize_args());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result: anyhow::Result<ExitCode> = rt.block_on(async move {
        match cli.cmd {
            Command::Server(a) => server::run(a).await,
            Command::Status(f) => cmd::status(f.format).await,
            Command::Operator(c) => operator::operator(c).await,
            Command::Login {
                args,
                method,
                path,
                no_store,
                token_only,
                f,
            } => match method.as_deref() {
                Some(m) if m != "token" => {
                    auth::login_method(m, path.as_deref(), &args, no_store, token_only, f.format)
                        .await
                }
                _ => {
                    if args.len() > 1 {
                        anyhow::bail!("login takes one token; use -method=... for key=value pairs");
                    }
                    cmd::login(args.into_iter().next()).await
                }
            },
            Command::Auth(c) => auth::auth(c).await,
            Command::Unwrap { token, field, f } => auth::unwrap(token, field, f.format).await,
            Command::Token(c) => cmd::token(c).await,
            Command::Policy(c) => cmd::policy(c).await,
            Command::Secrets(c) => cmd::secrets(c).await,
            Command::Kv(c) => kv::run(c).await,
            Command::Run(a) => run::run(a).await,
            Command::Agent(a) => agent::run(a).await,
            Command::Audit(c) => cmd::audit(c),
            Command::Broker(c) => broker::run(c).await,
            Command::K8s(c) => k8s::run(c).await,
            Command::Project(c) => project::project(c).await,
            Command::Setup(a) => project::setup(a),
            Command::Env(c) => project::envs::run(c).await,
            Command::Version => {
                println!("Airlock v{}", env!("CARGO_PKG_VERSION"));
                Ok(ExitCode::SUCCESS)
            }
            Command::Read(a) => generic::read(a).await,
            Command::Write(a) => generic::write(a).await,
            Command::List(a) => generic::list(a).await,
            Command::Delete(a) => generic::delete(a).await,
            Command::Lease(c) => generic::lease(c).await,
            Command::Events(c) => events_cmd::run(c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
