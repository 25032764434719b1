//! `airlock k8s …`: Kubernetes Secret manifests from KV paths (`k8s secret`) and the
//! declarative bootstrap of several Secrets with minted values (`k8s bootstrap`).
//!
//! `manifest.rs` builds and checks manifests (pure), `config.rs` parses the bootstrap file
//! (pure), `bootstrap.rs` plans and applies it, `files.rs` writes what it leaves on disk.
//! Manifests go to stdout (or `--out`) only; no error names a value.

mod bootstrap;
mod config;
mod files;
mod manifest;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use crate::client::Client;
pub use manifest::{merge_sources, secret_manifest, ManifestFormat, Rename, SecretOpts};

#[derive(Subcommand)]
pub enum K8sCmd {
    /// Print a Kubernetes Secret manifest built from KV paths (to stdout only).
    #[command(after_help = "Examples:\n  \
        airlock k8s secret secret/voice/prod --name voice-secrets -n voice | kubectl apply -f -\n  \
        airlock k8s secret secret/db secret/cache --name app --rename secret/cache:PASSWORD=CACHE_PASSWORD\n  \
        airlock k8s secret secret/tls --name web-tls --type kubernetes.io/tls --rename cert=tls.crt --rename key=tls.key\n  \
        airlock k8s secret secret/app --name app --label team=ai --annotation example.com/owner=ops --format json")]
    Secret(SecretArgs),
    /// Create named Secrets with minted values from a declarative file (dry-run by default).
    #[command(after_help = "Examples:\n  \
        airlock k8s bootstrap k8s-bootstrap.toml              (the plan; writes nothing)\n  \
        airlock k8s bootstrap k8s-bootstrap.toml --apply | kubectl apply -f -\n  \
        airlock k8s bootstrap k8s-bootstrap.toml --apply --out deploy/secrets -n staging\n\n\
        The file names the KV v2 path holding every value (`store`), how a missing value is made \
        ([values]: `{ mint = true }`, `{ mint = true, policy = \"strong\" }`, `{ value = \"…\" }`, \
        `{ required = true }`) and one Secret per [bundles.NAME] (`keys = [\"KEY\", \
        \"SECRET_KEY=VALUE_NAME\"]`). --apply writes the missing values in one check-and-set \
        write, prints or writes the manifests and the env file (mode 0600, git-ignored).")]
    Bootstrap(BootstrapArgs),
}

#[derive(Args)]
pub struct SecretArgs {
    /// KV paths whose keys become the Secret's data, merged in order (default: the
    /// project's environment, from airlock.project.toml).
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
    /// The project's environment to use instead of its default (without PATH).
    #[arg(long = "env", conflicts_with = "paths")]
    pub env: Option<String>,
    /// The Secret's name (a DNS-1123 subdomain).
    #[arg(long)]
    pub name: String,
    /// The Secret's namespace (default: none, kubectl's current namespace).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The Secret's type.
    #[arg(long = "type", default_value = "Opaque")]
    pub type_: String,
    /// yaml or json.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: ManifestFormat,
    /// Rename a key: `OLD=NEW`, or `PATH:OLD=NEW` for one path's key only (repeatable).
    #[arg(long = "rename", value_name = "[PATH:]OLD=NEW")]
    pub renames: Vec<String>,
    /// A label (repeatable); `app.kubernetes.io/managed-by: airlock` is always set.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// An annotation (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Keep `${…}` references in values as written instead of resolving them.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Args)]
pub struct BootstrapArgs {
    /// The bootstrap file (TOML).
    pub file: PathBuf,
    /// Write: missing values to the store, then the manifests and the env file. Without it,
    /// only the plan is printed and nothing is written.
    #[arg(long)]
    pub apply: bool,
    /// Namespace of the Secrets (replaces the file's `namespace`; a bundle's own stays).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Write one `<bundle>.yaml` (or `.json`) per bundle here (mode 0600) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The env file to write (replaces the file's `env_file`; relative to the working
    /// directory).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// yaml or json: manifests on --apply; with json, the dry-run plan is JSON too.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: ManifestFormat,
}

pub async fn run(c: K8sCmd) -> Result<ExitCode> {
    match c {
        K8sCmd::Secret(a) => secret(a).await,
        K8sCmd::Bootstrap(a) => {
            bootstrap::run(bootstrap::Args {
                file: a.file,
                apply: a.apply,
                namespace: a.namespace,
                out: a.out,
                env_file: a.env_file,
                format: a.format,
            })
            .await
        }
    }
}

/// `KEY=VALUE` flags into a map; a key given twice is an error.
fn flag_pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for it in items {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| anyhow!("--{flag} {it:?}: expected KEY=VALUE"))?;
        if m.insert(k.to_string(), v.to_string()).is_some() {
            bail!("--{flag}: {k} is given twice");
        }
    }
    Ok(m)
}

/// The manifest options and renames of `k8s secret`, checked before anything is read.
fn secret_opts(a: &SecretArgs) -> Result<(SecretOpts, Vec<Rename>)> {
    let opts = SecretOpts {
        name: a.name.clone(),
        namespace: a.namespace.clone(),
        type_: a.type_.clone(),
        labels: flag_pairs("label", &a.labels)?,
        annotations: flag_pairs("annotation", &a.annotations)?,
    };
    opts.validate()?;
    for (i, p) in a.paths.iter().enumerate() {
        if a.paths.iter().skip(i + 1).any(|q| q == p) {
            bail!("path {p} is given twice");
        }
    }
    let renames = a
        .renames
        .iter()
        .map(|r| Rename::parse(r, &a.paths))
        .collect::<Result<Vec<_>>>()?;
    Ok((opts, renames))
}

/// Reads each path's keys, in order, with `${…}` references resolved unless `raw` (as
/// `airlock run` and `kv get` do).
async fn read_sources(
    cl: &Client,
    paths: &[String],
    raw: bool,
) -> Result<Vec<(String, Map<String, Value>)>> {
    let mut out = Vec::new();
    for p in paths {
        let m = crate::kv::read_map(cl, p).await?;
        let m = if raw {
            m
        } else {
            crate::kv::resolve_refs(cl, p, m)
                .await
                .with_context(|| format!("resolving references in {p}"))?
        };
        out.push((p.clone(), m));
    }
    Ok(out)
}

async fn secret(mut a: SecretArgs) -> Result<ExitCode> {
    if a.paths.is_empty() {
        a.paths = vec![crate::project::file::required(a.env.as_deref())?.env_path()];
    }
    let (opts, renames) = secret_opts(&a)?;
    let cl = Client::from_env()?;
    cl.require_token()?;
    let sources = read_sources(&cl, &a.paths, a.raw).await?;
    let data = merge_sources(&sources, &renames)?;
    let doc = secret_manifest(data, &opts)?;
    print!("{}", manifest::render(&doc, a.format));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> SecretArgs {
        use clap::FromArgMatches;
        let cmd = clap::Command::new("t");
        let cmd = <SecretArgs as Args>::augment_args(cmd);
        let m = cmd.try_get_matches_from(["t"].iter().chain(extra)).unwrap();
        SecretArgs::from_arg_matches(&m).unwrap()
    }

    #[test]
    fn secret_flags_are_checked_before_reading() {
        let a = args(&[
            "secret/a",
            "secret/b",
            "--name",
            "app",
            "-n",
            "brain",
            "--label",
            "team=ai",
            "--annotation",
            "note=x",
            "--rename",
            "secret/b:K=B_K",
        ]);
        let (o, r) = secret_opts(&a).unwrap();
        assert_eq!(o.namespace.as_deref(), Some("brain"));
        assert_eq!(o.labels["team"], "ai");
        assert_eq!(r[0].path.as_deref(), Some("secret/b"));
        for bad in [
            vec!["secret/a", "--name", "Bad"],
            vec!["secret/a", "--name", "ok", "-n", "a.b"],
            vec!["secret/a", "--name", "ok", "--label", "novalue"],
            vec![
                "secret/a", "--name", "ok", "--label", "a=1", "--label", "a=2",
            ],
            vec!["secret/a", "secret/a", "--name", "ok"],
            vec!["secret/a", "--name", "ok", "--rename", "X"],
        ] {
            assert!(secret_opts(&args(&bad)).is_err(), "{bad:?}");
        }
    }
}
