//! The agent's configuration: a Vault agent HCL file (or several, merged as Vault merges
//! them) read into validated types. Everything the agent does not support is refused with
//! the file and line that asked for it, except a few settings that change nothing a user
//! relies on (logging destinations, telemetry, connection reuse), which are ignored with a
//! warning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use super::decode::{self, at, Block, Source};

mod auth;
mod templates;

pub use auth::{AutoAuth, Method, MethodKind, Sink};
pub use templates::{EnvTemplate, Exec, FileTemplate, TemplateSpec, TemplateText};

/// Where a block came from, for messages (`agent.hcl:12`).
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: PathBuf,
    pub line: u32,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The merged, validated configuration.
pub struct Config {
    pub vault: Vault,
    pub auto_auth: AutoAuth,
    pub templates: Vec<FileTemplate>,
    pub env_templates: Vec<EnvTemplate>,
    pub exec: Option<Exec>,
    pub static_secret_render_interval: Duration,
    pub exit_on_retry_failure: bool,
    pub pid_file: Option<PathBuf>,
    pub exit_after_auth: bool,
    pub log_level: Option<String>,
    /// Settings accepted but ignored, to print at start.
    pub warnings: Vec<String>,
}

#[derive(Clone, Default)]
pub struct Vault {
    pub address: Option<String>,
    pub ca_cert: Option<PathBuf>,
    /// Attempts for a failing secret fetch before `exit_on_retry_failure` applies.
    pub num_retries: u32,
}

/// One file's settings before merging.
#[derive(Default)]
struct Partial {
    vault: Option<Vault>,
    auto_auth: Option<AutoAuth>,
    templates: Vec<FileTemplate>,
    env_templates: Vec<EnvTemplate>,
    exec: Option<(Exec, Origin)>,
    template_config: Option<(Option<Duration>, bool)>,
    pid_file: Option<PathBuf>,
    exit_after_auth: bool,
    log_level: Option<String>,
    warnings: Vec<String>,
}

/// Loads every `-config` path (a file, or a directory of `.hcl`/`.json` files), merges them
/// in order and validates the result.
pub fn load(paths: &[PathBuf]) -> Result<Config> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| at(p, 0, format!("cannot read directory: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    f.is_file()
                        && (name.ends_with(".hcl") || name.ends_with(".json"))
                        && !name.ends_with('~')
                        && !name.starts_with(".#")
                        && !(name.starts_with('#') && name.ends_with('#'))
                })
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(p.clone());
        }
    }
    let Some(first) = files.first().cloned() else {
        bail!("no configuration: give -config FILE");
    };
    let mut merged = Partial::default();
    for f in &files {
        let (src, items) = decode::parse_file(f)?;
        let p = parse_file(&src, &items)?;
        merged = merge(merged, p);
    }
    validate(merged, &first)
}

fn merge(a: Partial, b: Partial) -> Partial {
    let mut templates = a.templates;
    templates.extend(b.templates);
    let mut env_templates = a.env_templates;
    env_templates.extend(b.env_templates);
    let mut warnings = a.warnings;
    warnings.extend(b.warnings);
    Partial {
        vault: b.vault.or(a.vault),
        auto_auth: b.auto_auth.or(a.auto_auth),
        templates,
        env_templates,
        exec: b.exec.or(a.exec),
        template_config: b.template_config.or(a.template_config),
        pid_file: b.pid_file.or(a.pid_file),
        exit_after_auth: a.exit_after_auth || b.exit_after_auth,
        log_level: b.log_level.or(a.log_level),
        warnings,
    }
}

fn validate(p: Partial, first: &Path) -> Result<Config> {
    let Some(auto_auth) = p.auto_auth else {
        return Err(at(
            first,
            0,
            "no auto_auth block: airlock agent authenticates with auto_auth and renders \
             templates or writes sinks with that token (the agent's cache, listener and \
             api_proxy modes are not supported)",
        ));
    };
    let o = &auto_auth.origin;
    if auto_auth.sinks.is_empty() && p.templates.is_empty() && p.env_templates.is_empty() {
        return Err(at(
            &o.file,
            o.line,
            "auto_auth requires at least one sink or at least one template",
        ));
    }
    if auto_auth.method.wrap_ttl.is_some() {
        if auto_auth.sinks.len() != 1 {
            return Err(at(
                &o.file,
                o.line,
                "wrapping enabled on auth method and 0 or many sinks defined",
            ));
        }
        if auto_auth.sinks.iter().any(|s| s.wrap_ttl.is_some()) {
            return Err(at(
                &o.file,
                o.line,
                "wrapping enabled both on auth method and sink",
            ));
        }
        if !p.templates.is_empty() || !p.env_templates.is_empty() {
            return Err(at(
                &o.file,
                o.line,
                "wrap_ttl on the auth method hands the token out wrapped, so templates \
                 cannot use it: wrap at the sink instead (sink \"file\" { wrap_ttl = ... })",
            ));
        }
    }
    match (&p.exec, p.env_templates.first()) {
        (Some((_, eo)), None) => {
            return Err(at(
                &eo.file,
                eo.line,
                "must specify at least one 'env_template' element with a top-level 'exec' element",
            ))
        }
        (None, Some(t)) => {
            return Err(at(
                &t.spec.origin.file,
                t.spec.origin.line,
                "a top-level 'exec' element must be specified with 'env_template' entries",
            ))
        }
        _ => {}
    }
    if let (Some(t), false) = (p.env_templates.first(), p.templates.is_empty()) {
        return Err(at(
            &t.spec.origin.file,
            t.spec.origin.line,
            "'template' cannot be specified with 'env_template' entries",
        ));
    }
    for (i, t) in p.env_templates.iter().enumerate() {
        if p.env_templates.iter().take(i).any(|e| e.name == t.name) {
            return Err(at(
                &t.spec.origin.file,
                t.spec.origin.line,
                format!(
                    "env_template: duplicate environment variable name: {:?}",
                    t.name
                ),
            ));
        }
    }
    let (interval, exit_on_retry_failure) = p.template_config.unwrap_or((None, false));
    Ok(Config {
        vault: p.vault.unwrap_or(Vault {
            num_retries: 12,
            ..Vault::default()
        }),
        auto_auth,
        templates: p.templates,
        env_templates: p.env_templates,
        exec: p.exec.map(|(e, _)| e),
        static_secret_render_interval: interval
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(300)),
        exit_on_retry_failure,
        pid_file: p.pid_file,
        exit_after_auth: p.exit_after_auth,
        log_level: p.log_level,
        warnings: p.warnings,
    })
}

/// Blocks of Vault's agent that airlock agent does not implement.
const REFUSED: &[(&str, &str)] = &[
    (
        "listener",
        "the agent's listener (API proxy and cache) is not supported",
    ),
    ("cache", "the agent's cache is not supported"),
    ("api_proxy", "the agent's API proxy is not supported"),
];

/// Settings accepted and ignored.
const IGNORED: &[&str] = &[
    "telemetry",
    "log_file",
    "log_format",
    "log_rotate_bytes",
    "log_rotate_duration",
    "log_rotate_max_files",
    "disable_mlock",
    "disable_idle_connections",
    "disable_keep_alives",
];

fn parse_file(src: &Source, items: &[airlock_core::hcl::Item]) -> Result<Partial> {
    let mut top = Block::new(src, 0, "", items);
    let mut p = Partial::default();
    for (key, why) in REFUSED {
        if let Some(line) = top.line_of(key) {
            return Err(src.err(line, format!("{key}: {why} by airlock agent")));
        }
    }
    for key in IGNORED {
        if let Some(line) = top.ignore(key) {
            p.warnings.push(format!(
                "{}:{line}: {key} is ignored by airlock agent",
                src.file.display()
            ));
        }
    }
    p.vault = top.block("vault")?.map(parse_vault).transpose()?;
    p.auto_auth = top
        .block("auto_auth")?
        .map(|b| auth::parse_auto_auth(b, &mut p.warnings))
        .transpose()?;
    for b in top.blocks("template")? {
        p.templates.push(templates::parse_template(b)?);
    }
    if let Some(mut b) = top.block("template_config")? {
        let interval = b.duration("static_secret_render_interval")?;
        let exit = b.bool("exit_on_retry_failure")?.unwrap_or(false);
        b.ignore("max_connections_per_host");
        b.ignore("lease_renewal_threshold");
        b.finish()?;
        p.template_config = Some((interval, exit));
    }
    for b in top.blocks("env_template")? {
        p.env_templates.push(templates::parse_env_template(b)?);
    }
    if let Some(b) = top.block("exec")? {
        let origin = origin(&b);
        p.exec = Some((templates::parse_exec(b)?, origin));
    }
    p.pid_file = top
        .string("pid_file")?
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    p.exit_after_auth = top.bool("exit_after_auth")?.unwrap_or(false);
    p.log_level = top.string("log_level")?;
    top.finish()?;
    Ok(p)
}

pub(super) fn origin(b: &Block<'_>) -> Origin {
    Origin {
        file: b.src.file.clone(),
        line: b.line,
    }
}

fn parse_vault(mut b: Block<'_>) -> Result<Vault> {
    let address = b.string("address")?.filter(|s| !s.is_empty());
    let ca_cert = b
        .string("ca_cert")?
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let skip_line = b.line_of("tls_skip_verify").unwrap_or(0);
    if b.bool("tls_skip_verify")? == Some(true) {
        return Err(b.err(
            skip_line,
            "tls_skip_verify = true is refused: airlock agent always verifies the server's \
             certificate; give its CA with ca_cert",
        ));
    }
    for key in ["ca_path", "client_cert", "client_key", "tls_server_name"] {
        if let Some(line) = b.line_of(key) {
            return Err(b.err(
                line,
                format!("vault.{key} is not supported by airlock agent (use ca_cert)"),
            ));
        }
    }
    let mut num_retries = 12;
    if let Some(mut r) = b.block("retry")? {
        match r.int("num_retries")? {
            None | Some(0) => {}
            Some(-1) => num_retries = 0,
            Some(n) if n > 0 => num_retries = n.min(1000) as u32,
            Some(_) => return Err(r.err(0, "retry.num_retries must be -1 (no retries) or more")),
        }
        r.finish()?;
    }
    b.finish()?;
    Ok(Vault {
        address,
        ca_cert,
        num_retries,
    })
}

impl Config {
    /// The server address: `vault.address`, else `VAULT_ADDR`/`BAO_ADDR`/`AIRLOCK_ADDR`,
    /// else Vault's default.
    pub fn address(&self) -> String {
        self.vault
            .address
            .clone()
            .or_else(|| std::env::var("VAULT_ADDR").ok())
            .or_else(|| std::env::var("BAO_ADDR").ok())
            .or_else(|| std::env::var("AIRLOCK_ADDR").ok())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "https://127.0.0.1:8200".into())
    }

    /// The CA file: `vault.ca_cert`, else `VAULT_CACERT`/`AIRLOCK_CACERT`.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.vault.ca_cert.clone().or_else(|| {
            std::env::var_os("VAULT_CACERT")
                .or_else(|| std::env::var_os("AIRLOCK_CACERT"))
                .map(PathBuf::from)
        })
    }
}
