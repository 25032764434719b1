//! `airlock broker …`: run a command behind the credential broker, list the provider catalog,
//! and wrap MCP server configurations (`broker serve` is in `serve`). The proxy itself lives
//! in `airlock-broker`.

mod approvals;
pub mod login;
mod remote;
pub mod sandbox;
mod serve;
mod wrap_mcp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use airlock_broker::config::{self, Egress, Profile};
use airlock_broker::secrets::SecretCache;
use airlock_broker::{AgentRuntime, Broker};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::client::Client;
use remote::{report_usage, spawn_usage_reporter, start_auditor, ApiApprovals, ApiSource};

#[derive(Subcommand)]
pub enum BrokerCmd {
    /// Run a command whose bound credentials are replaced by placeholders and injected by a
    /// local proxy at the network boundary.
    #[command(
        after_help = "Examples:\n  airlock broker run -- python agent.py\n  airlock broker run --profile airlock.broker.toml --agent voice -- node agent.mjs\n  airlock broker run --resolve api.openai.com=127.0.0.1:8443 --extra-ca test-ca.pem -- curl https://api.openai.com/v1/models"
    )]
    Run(RunArgs),
    /// List the built-in provider presets a binding can name.
    #[command(after_help = "Example:\n  airlock broker providers --format json")]
    Providers {
        /// Output format: table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// A long-running broker for several agents (sidecar or daemon). Agents and bindings come
    /// from Airlock (`sys/broker/…`) and/or a profile; every client authenticates with a
    /// credential bound to one agent (see `airlock broker env`).
    #[command(
        after_help = "Examples:\n  airlock broker serve --listen 127.0.0.1:8181\n  airlock broker env --agent voice --broker 127.0.0.1:8181 --ca-file ./broker-ca.pem"
    )]
    Serve(ServeArgs),
    /// Print the environment an agent needs to use a running `broker serve`: placeholders,
    /// proxy variables with a fresh credential, CA variables.
    #[command(
        after_help = "Example:\n  eval \"$(airlock broker env --agent voice --broker 127.0.0.1:8181 --ca-file ./broker-ca.pem)\""
    )]
    Env(EnvArgs),
    /// Check a profile and print its bindings (no secrets are read).
    #[command(after_help = "Example:\n  airlock broker check --profile airlock.broker.toml")]
    Check {
        #[arg(long, default_value = PROFILE)]
        profile: PathBuf,
    },
    /// Sign in to an OAuth provider (browser with PKCE, or --device) and store the tokens in
    /// Airlock for a minting binding; the tokens are never printed.
    #[command(
        after_help = "Examples:\n  airlock broker login github --client-id Iv1.abc --device\n  airlock broker login linear --client-id abc --client-secret-env LINEAR_CLIENT_SECRET --store secret/agents/voice/linear"
    )]
    Login(login::LoginArgs),
    /// List, approve or deny brokered requests that wait for a human decision.
    #[command(
        subcommand,
        after_help = "Examples:\n  airlock broker approvals list\n  airlock broker approvals approve 4f0c… --reason \"expected deploy\"\n  airlock broker approvals deny 4f0c…"
    )]
    Approvals(approvals::ApprovalsCmd),
    /// Rewrite an mcp.json so each MCP server runs under `airlock broker run` and its secret
    /// env entries move into Airlock.
    #[command(
        after_help = "Example:\n  airlock broker wrap-mcp ~/.cursor/mcp.json --profile airlock.broker.toml"
    )]
    WrapMcp(WrapArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Agent whose bindings to use (from the profile). Default: every binding in the profile.
    #[arg(long)]
    pub agent: Option<String>,
    /// Profile with the bindings (default: ./airlock.broker.toml).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub up: UpstreamOpts,
    /// What to do with hosts no binding names: tunnel, inspect or allowlist.
    #[arg(long)]
    pub egress: Option<String>,
    /// Address for the proxy (loopback only). With --sandbox, its port is the proxy's port
    /// inside the sandbox (default 3128).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Linux: run the command in its own user and network namespace whose only way out is
    /// the broker (proxy-ignoring tools, raw sockets and DNS fail closed).
    #[arg(long)]
    pub sandbox: bool,
    /// With --sandbox: a file or directory the command must not read (repeatable; the
    /// token file ~/.airlock-token is hidden by default when it exists).
    #[arg(long, value_name = "PATH", requires = "sandbox")]
    pub hide: Vec<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Variables that point a child at the proxy.
const PROXY_VARS: [&str; 6] = [
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
];

/// Variables that point a child's TLS stacks at the CA bundle (set whether or not the parent
/// had them, so none is left pointing at a bundle without the broker CA).
const CA_VARS: [&str; 13] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "AWS_CA_BUNDLE",
    "DENO_CERT",
    "PIP_CERT",
    "HTTPLIB2_CA_CERTS",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "NIX_SSL_CERT_FILE",
    "CARGO_HTTP_CAINFO",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
];

/// Options shared by `broker run` and `broker serve`.
#[derive(Args)]
pub struct UpstreamOpts {
    /// Connect to HOST at ADDR (IP or IP:PORT) instead of resolving it; such pins bypass the
    /// SSRF guard (repeatable).
    #[arg(long = "resolve", value_name = "HOST=ADDR")]
    pub resolve: Vec<String>,
    /// Extra CA (PEM) trusted for upstream TLS (and, for `run`, added to the child's bundle).
    #[arg(long = "extra-ca", value_name = "FILE")]
    pub extra_ca: Option<PathBuf>,
    /// Seconds between credential refreshes from Airlock (rotation takes effect within this).
    #[arg(long, default_value_t = 10.0)]
    pub refresh: f64,
    /// Seconds a cached credential may be used without a successful refresh (fail closed).
    #[arg(long, default_value_t = 300.0)]
    pub max_stale: f64,
}

/// [`UpstreamOpts`] checked and loaded.
struct Prepared {
    refresh: Duration,
    max_stale: Duration,
    pins: HashMap<String, airlock_broker::upstream::Pin>,
    extra_pem: Option<String>,
    extra_certs: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
}

impl UpstreamOpts {
    fn prepare(&self) -> Result<Prepared> {
        let mut pins = HashMap::new();
        for r in &self.resolve {
            let (h, p) = airlock_broker::upstream::parse_resolve(r).map_err(|e| anyhow!(e))?;
            pins.insert(h, p);
        }
        let extra_pem = match &self.extra_ca {
            Some(p) => Some(
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            ),
            None => None,
        };
        let extra_certs = match &extra_pem {
            Some(pem) => airlock_broker::ca::parse_pem_certs(pem).map_err(|e| anyhow!(e))?,
            None => vec![],
        };
        Ok(Prepared {
            refresh: secs(self.refresh, "--refresh")?,
            max_stale: secs(self.max_stale, "--max-stale")?,
            pins,
            extra_pem,
            extra_certs,
        })
    }
}

fn loopback(listen: &str) -> Result<std::net::SocketAddr> {
    let a: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| anyhow!("--listen {listen:?} is not an IP:PORT address"))?;
    if !a.ip().is_loopback() {
        bail!("--listen must be a loopback address: the proxy is for local processes only (run it as a sidecar sharing the agent's network namespace)");
    }
    Ok(a)
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address for the proxy (loopback only).
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub listen: String,
    /// Profile with more bindings and agents (besides those stored in Airlock).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    #[command(flatten)]
    pub up: UpstreamOpts,
    /// Write the broker CA certificate (PEM) here.
    #[arg(long = "ca-out", value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
}

#[derive(Args)]
pub struct EnvArgs {
    /// The agent (defined in Airlock with `sys/broker/agents/NAME`).
    #[arg(long)]
    pub agent: String,
    /// Address of the running `broker serve`.
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub broker: String,
    /// Lifetime of the proxy credential (Go duration or seconds).
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Write the CA bundle (system roots + broker CA) here and point the CA variables at it.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Output: `sh` (export lines) or `json`.
    #[arg(long, default_value = "sh")]
    pub format: String,
}

#[derive(Args)]
pub struct WrapArgs {
    /// The mcp.json file (Cursor, Claude Desktop/Code, or VS Code format).
    pub file: PathBuf,
    /// Profile to pass to `broker run` in each wrapped server (written as an absolute path).
    #[arg(long)]
    pub profile: Option<String>,
    /// Add the agents and bindings the wrapped servers need to the --profile file (created
    /// if missing; what it already defines is left alone) instead of printing them.
    #[arg(long, requires = "profile")]
    pub write_profile: bool,
    /// KV mount for the moved secrets.
    #[arg(long, default_value = "secret")]
    pub mount: String,
    /// Path prefix under the mount (secrets go to <mount>/<prefix>/<server>).
    #[arg(long, default_value = "mcp")]
    pub prefix: String,
    /// Show what would change without writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(c: BrokerCmd) -> Result<ExitCode> {
    match c {
        BrokerCmd::Run(a) => broker_run(a).await,
        BrokerCmd::Serve(a) => serve::broker_serve(a).await,
        BrokerCmd::Env(a) => broker_env(a).await,
        BrokerCmd::Approvals(c) => approvals::run(c).await,
        BrokerCmd::Login(a) => login::run(a).await,
        BrokerCmd::Providers { format } => providers(&format),
        BrokerCmd::Check { profile } => {
            let p = load_profile(&profile)?;
            for b in &p.bindings {
                let d = config::describe(b);
                println!(
                    "{:<16} {:<28} {} → https://{}:{}",
                    d["name"], d["env"], d["secret"], d["hosts"], d["port"]
                );
            }
            for a in &p.agents {
                println!(
                    "agent {:<10} egress={} bindings={}",
                    a.name,
                    a.egress.as_str(),
                    a.bindings.join(",")
                );
            }
            println!("{}: ok", profile.display());
            Ok(ExitCode::SUCCESS)
        }
        BrokerCmd::WrapMcp(a) => wrap_mcp::wrap_mcp(a).await,
    }
}

fn providers(format: &str) -> Result<ExitCode> {
    let list = airlock_broker::providers::PROVIDERS;
    if format == "json" {
        let v: Vec<Value> = list
            .iter()
            .map(|p| {
                json!({"name": p.name, "title": p.title, "env": p.env, "hosts": p.hosts,
                       "header": p.header, "format": p.format, "query": p.query,
                       "extra_headers": p.extra_headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                       "paths": p.paths, "note": p.note, "signing": p.signing, "url_path": p.url_path, "mint": p.mint})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<12} {:<26} {:<40} INJECTION", "NAME", "ENV", "HOSTS");
    for p in list {
        let how = if !p.signing.is_empty() {
            format!("signs: {}", p.signing)
        } else if !p.mint.is_empty() {
            format!("mints: {}", p.mint)
        } else if p.url_path {
            "URL path".to_string()
        } else if p.header.is_empty() {
            format!("?{}=…", p.query)
        } else {
            format!("{}: {}", p.header, p.format)
        };
        println!(
            "{:<12} {:<26} {:<40} {}",
            p.name,
            p.env,
            p.hosts.join(","),
            how
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The default profile's name: not the server config (`airlock.server.toml`) nor the
/// project file (`airlock.project.toml`).
pub const PROFILE: &str = "airlock.broker.toml";

/// `./airlock.broker.toml`; an older `./airlock.toml` only if it is a broker profile (a
/// server config of that name is left alone).
fn default_profile() -> PathBuf {
    let p = PathBuf::from(PROFILE);
    if p.exists() {
        return p;
    }
    let legacy = PathBuf::from("airlock.toml");
    let is_profile = std::fs::read_to_string(&legacy)
        .ok()
        .is_some_and(|t| config::parse_profile(&t, "airlock.toml").is_ok());
    if is_profile {
        eprintln!("airlock broker: reading airlock.toml as the profile; rename it {PROFILE}");
        return legacy;
    }
    p
}

fn load_profile(path: &Path) -> Result<Profile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading profile {}", path.display()))?;
    let mut p =
        config::parse_profile(&text, &path.display().to_string()).map_err(|e| anyhow!(e))?;
    // Bindings that name only `key` read the project's environment (airlock.project.toml).
    if p.bindings.iter().any(|b| b.secret_path.is_empty()) {
        let ctx = crate::project::file::current(None)?.ok_or_else(|| {
            anyhow!(
                "{}: a binding names only `key`, which needs a project: add `path`, or run `airlock setup --project NAME --env ENV`",
                path.display()
            )
        })?;
        for b in p.bindings.iter_mut().filter(|b| b.secret_path.is_empty()) {
            b.secret_path = ctx.env_path();
        }
    }
    Ok(p)
}

/// A private directory for the CA bundle, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let mut r = [0u8; 8];
        rand::fill(&mut r);
        let p = std::env::temp_dir().join(format!("airlock-broker-{}", hex_lower(&r)));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn secs(s: f64, what: &str) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s < 1e9) {
        bail!("{what} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

async fn broker_run(a: RunArgs) -> Result<ExitCode> {
    let profile_path = a.profile.clone().unwrap_or_else(default_profile);
    let cl = Client::from_env()?;
    cl.require_token()?;
    // The profile if there is one; an agent it does not define is looked up in Airlock.
    let explicit = a.profile.is_some();
    let mut profile = if explicit || profile_path.exists() {
        load_profile(&profile_path)?
    } else {
        Profile::default()
    };
    let in_profile = a
        .agent
        .as_deref()
        .is_some_and(|n| profile.agents.iter().any(|x| x.name == n));
    if a.agent.is_some() && !in_profile {
        let stored = serve::load_serve_config(&cl, None)
            .await
            .context("loading the agent's bindings from Airlock (sys/broker/…)")?;
        profile.bindings.extend(stored.bindings);
        profile.agents.extend(stored.agents);
    } else if !explicit && !profile_path.exists() {
        bail!(
            "no profile: create {PROFILE} (see README), pass --profile FILE, or name an agent stored in Airlock with --agent"
        );
    }
    let bindings: Vec<config::Binding> = config::select(&profile, a.agent.as_deref())
        .map_err(|e| anyhow!("{}: {e}", profile_path.display()))?
        .into_iter()
        .cloned()
        .collect();
    // An agent defined with no binding still runs under the broker (its traffic goes through
    // it, under its egress rules); without an agent, no binding means nothing to do.
    if bindings.is_empty() && a.agent.is_none() {
        bail!(
            "{}: no bindings{}",
            profile_path.display(),
            a.agent
                .as_deref()
                .map(|x| format!(" for agent {x:?}"))
                .unwrap_or_default()
        );
    }
    let agent_spec = a
        .agent
        .as_deref()
        .and_then(|n| profile.agents.iter().find(|x| x.name == n));
    let egress = match &a.egress {
        Some(e) => Egress::parse(e).map_err(|e| anyhow!(e))?,
        None => agent_spec
            .map(|x| x.egress)
            .or(profile.egress)
            .unwrap_or(Egress::Tunnel),
    };
    let mut allow_hosts = profile.allow_hosts.clone();
    if let Some(s) = agent_spec {
        allow_hosts.extend(s.allow_hosts.iter().cloned());
    }
    let Prepared {
        refresh,
        max_stale,
        pins,
        extra_pem: extra_ca_pem,
        extra_certs,
    } = a.up.prepare()?;
    let listen = loopback(&a.listen)?;
    // Decoys: the profile's, and Airlock's when this token may read them.
    let mut honeytokens = profile.honeytokens.clone();
    match serve::load_honeytokens(&cl).await {
        Ok(stored) => {
            for t in stored {
                if !honeytokens.iter().any(|x| x.name == t.name) {
                    honeytokens.push(t);
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %format!("{e:#}"), "broker: Airlock's honeytokens not loaded")
        }
    }
    let token = cl.token.clone();
    let addr = cl.addr.clone();
    let cacert = std::env::var_os("AIRLOCK_CACERT")
        .or_else(|| std::env::var_os("VAULT_CACERT"))
        .map(PathBuf::from);

    // Credentials: fetched once before the child starts (a missing one is an error now, not
    // a surprise later), then refreshed in the background.
    let wanted: Vec<(String, String)> = bindings.iter().flat_map(|b| b.wanted()).collect();
    let cache = SecretCache::new(
        Arc::new(ApiSource { client: cl }),
        wanted,
        refresh,
        max_stale,
    );
    cache
        .refresh_all()
        .await
        .map_err(|e| anyhow!("loading bound credentials: {e}"))?;
    cache.spawn_refresher();

    let airlock_broker::Placeholders {
        list: placeholders,
        aws_secrets,
    } = airlock_broker::new_placeholders(&bindings);
    let agent_name = a.agent.clone().unwrap_or_else(|| "run".into());
    let bound = airlock_broker::bound_hosts(bindings.iter());
    let ca = airlock_broker::ca::Ca::generate(if egress == Egress::Inspect {
        None
    } else {
        Some(&bound)
    })
    .map_err(|e| anyhow!("creating the broker CA: {e}"))?;
    let guard =
        airlock_broker::guard::Guard::new(&profile.allow_private).map_err(|e| anyhow!(e))?;
    let upstream = airlock_broker::upstream::Upstream::new(&extra_certs, pins, guard)
        .map_err(|e| anyhow!(e))?;
    let renewer = spawn_token_renewer(Client::new(&addr, token.clone(), cacert.clone())?);
    let auditor = start_auditor(Client::new(&addr, token.clone(), cacert.clone())?).await?;
    let cred = airlock_broker::cred::CredKey::random();
    let credential = cred.mint(&agent_name, u64::MAX / 2);
    let mut env_vars: Vec<(String, Zeroizing<String>)> = bindings
        .iter()
        .zip(placeholders.iter())
        .map(|(b, (p, _))| (b.env.clone(), Zeroizing::new(p.clone())))
        .collect();
    for (_, s) in &aws_secrets {
        env_vars.push((config::AWS_SECRET_ENV.into(), s.clone()));
    }
    let leases = cache.clone();
    let meters = airlock_broker::Meters::new(agent_spec.and_then(|s| s.budget.as_ref()), &bindings);
    let tokens = airlock_broker::token_cells(&bindings);
    let runtime = Arc::new(AgentRuntime {
        name: agent_name.clone(),
        meters,
        approval: agent_spec.and_then(|s| s.approval.clone()),
        mcp: agent_spec.and_then(|s| s.mcp.clone()),
        tokens,
        bindings,
        placeholders,
        aws_secrets,
        egress,
        allow_hosts,
        cache,
        spec: String::new(),
    });
    let tmp = TempDir::new()?;

    let bundle = tmp.0.join("ca-bundle.pem");
    let mut extra: Vec<&str> = vec![ca.cert_pem()];
    if let Some(p) = &extra_ca_pem {
        extra.push(p);
    }
    std::fs::write(&bundle, airlock_broker::ca::bundle_pem(&extra))
        .with_context(|| format!("writing {}", bundle.display()))?;
    let ca_only = tmp.0.join("broker-ca.pem");
    std::fs::write(&ca_only, ca.cert_pem())?;

    let mut agents = HashMap::new();
    agents.insert(agent_name.clone(), runtime);
    let broker = Arc::new(Broker {
        agents: agents.into(),
        cred,
        ca,
        upstream,
        audit: auditor.clone(),
        stats: Default::default(),
        honeytokens: std::sync::RwLock::new(Arc::new(honeytokens.clone())),
        approvals: Some(Arc::new(ApiApprovals {
            client: Client::new(&addr, token.clone(), cacert.clone())?,
        })),
        mcp_sessions: Default::default(),
    });
    let usage_id = format!("run-{}-{}", std::process::id(), agent_name);
    let usage_client = Client::new(&addr, token.clone(), cacert.clone())?;
    let reporter = spawn_usage_reporter(
        Client::new(&addr, token.clone(), cacert.clone())?,
        broker.clone(),
        usage_id.clone(),
        refresh,
    );
    // Without --sandbox the proxy listens on the host's loopback now; with it, the child
    // creates the listener inside its namespace and hands it over once started.
    let port = if a.sandbox {
        match listen.port() {
            0 => 3128,
            p => p,
        }
    } else {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the proxy to {listen}"))?;
        let port = listener.local_addr()?.port();
        tokio::spawn(airlock_broker::proxy::serve(broker.clone(), listener));
        port
    };

    let proxy_url = format!(
        "http://{agent_name}:{}@127.0.0.1:{port}",
        credential.as_str()
    );
    let (prog, args) = a
        .command
        .split_first()
        .ok_or_else(|| anyhow!("no command given after --"))?;
    let (mut cmd, sandbox) = if a.sandbox {
        let hide = sandbox::hidden_paths(&a.hide, crate::client::token_file())?;
        let (c, sb) = sandbox::command(port, &hide, &tmp.0, prog, args)?;
        (c, Some(sb))
    } else {
        let mut c = tokio::process::Command::new(prog);
        c.args(args);
        (c, None)
    };
    for k in ["AIRLOCK_TOKEN", "VAULT_TOKEN", "AIRLOCK_ADDR", "VAULT_ADDR"] {
        cmd.env_remove(k);
    }
    // Decoys first: a binding's variable of the same name wins.
    for t in &honeytokens {
        if let Some(e) = &t.env {
            cmd.env(e, &t.value);
        }
    }
    for (k, v) in &env_vars {
        cmd.env(k, v.as_str());
    }
    for k in PROXY_VARS {
        cmd.env(k, &proxy_url);
    }
    cmd.env("NO_PROXY", "localhost,127.0.0.1,::1")
        .env("no_proxy", "localhost,127.0.0.1,::1");
    for k in CA_VARS {
        cmd.env(k, &bundle);
    }
    cmd.env("NODE_USE_ENV_PROXY", "1")
        .env("AIRLOCK_BROKER_CA", &ca_only);
    drop(proxy_url);
    drop(credential);
    // The child gets neither the token variables nor the real credentials, but it runs as
    // this user: a token in the CLI's token file is readable by it (unless hidden).
    if let Some(f) = crate::client::token_file().filter(|f| f.exists() && !a.sandbox) {
        eprintln!(
            "warning: {} holds an Airlock token that {} can read (it runs as your user); for an agent you do not trust, pass a short-lived AIRLOCK_TOKEN and remove the file (`airlock login -no-store` does not write it), or run the agent as another user",
            f.display(),
            a.command.first().map(String::as_str).unwrap_or("the child")
        );
    }
    let relay = crate::run::SignalRelay::install()?;
    let mut child = cmd.spawn().with_context(|| format!("starting {prog}"))?;
    if let Some(sb) = sandbox {
        match sb.listener(&mut child).await {
            Ok(l) => drop(tokio::spawn(airlock_broker::proxy::serve(
                broker.clone(),
                l,
            ))),
            Err(e) => {
                let _ = child.start_kill();
                return Err(e);
            }
        }
    }
    let pid = child.id().map(|p| p as i32);
    let status = relay.wait(&mut child, pid).await?;
    reporter.abort();
    report_usage(&usage_client, &broker, &usage_id).await;
    leases.revoke_leases().await;
    if !auditor.flush(Duration::from_secs(5)).await {
        eprintln!("warning: some broker audit events could not be written to Airlock in time");
    }
    renewer.abort();
    drop(tmp);
    Ok(crate::run::exit_code(status))
}

/// Keeps the broker's own Airlock token alive: a renewable token with a TTL is renewed when
/// half of what remains has passed, so a long-running broker does not fail closed just
/// because its token expired. A token that does not expire, or cannot be renewed, needs
/// nothing (its expiry is the operator's choice).
fn spawn_token_renewer(cl: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (ttl, renewable) = match cl.call("GET", "auth/token/lookup-self", None).await {
                Ok(Some(v)) => (
                    v.pointer("/data/ttl").and_then(Value::as_i64).unwrap_or(0),
                    v.pointer("/data/renewable")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                ),
                other => {
                    if let Err(e) = other {
                        tracing::warn!(error = %format!("{e:#}"), "broker: looking up its Airlock token failed");
                    }
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    continue;
                }
            };
            if ttl <= 0 || !renewable {
                return;
            }
            tokio::time::sleep(Duration::from_secs((ttl as u64 / 2).max(1))).await;
            if let Err(e) = cl
                .call("POST", "auth/token/renew-self", Some(&json!({})))
                .await
            {
                tracing::warn!(error = %format!("{e:#}"), "broker: renewing its Airlock token failed");
            }
        }
    })
}

async fn broker_env(a: EnvArgs) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    let v = cl
        .call(
            "POST",
            &format!("sys/broker/agents/{}/credential", a.agent),
            Some(&json!({ "ttl": a.ttl })),
        )
        .await?
        .ok_or_else(|| anyhow!("agent {} not found", a.agent))?;
    let cred = Zeroizing::new(
        v.pointer("/data/credential")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("no credential in the answer"))?
            .to_string(),
    );
    let mut vars: Vec<(String, String)> = Vec::new();
    if let Some(env) = v.pointer("/data/env").and_then(Value::as_object) {
        for (k, p) in env {
            vars.push((k.clone(), p.as_str().unwrap_or_default().to_string()));
        }
    }
    let proxy = format!("http://{}:{}@{}", a.agent, cred.as_str(), a.broker);
    for k in PROXY_VARS {
        vars.push((k.into(), proxy.clone()));
    }
    vars.push(("NO_PROXY".into(), "localhost,127.0.0.1,::1".into()));
    vars.push(("no_proxy".into(), "localhost,127.0.0.1,::1".into()));
    if let Some(f) = &a.ca_file {
        let ca = cl
            .call("GET", "sys/broker/ca", None)
            .await?
            .and_then(|v| {
                v.pointer("/data/certificate")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| anyhow!("no broker CA"))?;
        std::fs::write(f, airlock_broker::ca::bundle_pem(&[&ca]))
            .with_context(|| format!("writing {}", f.display()))?;
        let p = std::fs::canonicalize(f)?.display().to_string();
        for k in CA_VARS {
            vars.push((k.into(), p.clone()));
        }
        vars.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    }
    if a.format == "json" {
        let m: serde_json::Map<String, Value> = vars
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        println!("{}", Value::Object(m));
    } else {
        for (k, v) in vars {
            println!("export {k}='{}'", v.replace('\'', "'\\''"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
