//! Projects and environments on top of Vault paths: `secret/<project>/<env>` holds an
//! environment's keys (entries below it, `secret/<project>/<env>/…`, are the environment's
//! too). `airlock project create` lays a project out with its policies (and optionally an
//! auth role per environment), `airlock setup` writes the repository's
//! `airlock.project.toml` (`file.rs`), `airlock env diff|check|promote` compare and move
//! keys between environments (`envs.rs`), and `${…}` references inside values are resolved
//! when the CLI reads them (`refs.rs`).

pub mod envs;
pub mod file;
pub mod refs;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{ApiFailure, Client};
use file::check_name;

#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Lay out secret/<project>/<env> for each environment, with a read and a write policy
    /// per environment and, if asked, an auth role per environment.
    #[command(
        after_help = "Examples:\n  airlock project create voice --envs dev,stg,prd\n  airlock project create voice --envs dev,prd --approle\n  airlock project create voice --envs dev,prd --kubernetes 'voice-{env}/agent'\n  airlock project create voice --envs dev,prd --jwt 'environment={env}' --jwt-path ci-jwt"
    )]
    Create(CreateArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Project name (lower-case letters, digits, '-', '_').
    pub name: String,
    /// Environments (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "dev,stg,prd")]
    pub envs: Vec<String>,
    /// KV v2 mount (enabled when missing).
    #[arg(long, default_value = "secret")]
    pub mount: String,
    /// An AppRole role `<project>-<env>` per environment (auth mount --approle-path).
    #[arg(long)]
    pub approle: bool,
    #[arg(long, default_value = "approle")]
    pub approle_path: String,
    /// A Kubernetes role `<project>-<env>` per environment bound to NAMESPACE/SERVICEACCOUNT
    /// (`{env}` is replaced by the environment).
    #[arg(long, value_name = "NAMESPACE/SERVICEACCOUNT")]
    pub kubernetes: Option<String>,
    #[arg(long, default_value = "kubernetes")]
    pub kubernetes_path: String,
    /// A JWT role `<project>-<env>` per environment with this bound claim, CLAIM=VALUE
    /// (`{env}` is replaced by the environment).
    #[arg(long, value_name = "CLAIM=VALUE")]
    pub jwt: Option<String>,
    #[arg(long, default_value = "jwt")]
    pub jwt_path: String,
    /// Token TTL of the roles.
    #[arg(long, default_value = "1h")]
    pub role_ttl: String,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  airlock setup --project voice --env dev\n  cd services/api && airlock setup --project api --env dev   (adds a folder entry to the file above)"
)]
pub struct SetupArgs {
    /// Project name.
    #[arg(long)]
    pub project: String,
    /// Default environment.
    #[arg(long)]
    pub env: String,
    /// KV v2 mount of the project.
    #[arg(long)]
    pub mount: Option<String>,
    /// Environment `airlock env check` compares against.
    #[arg(long)]
    pub reference_env: Option<String>,
    /// Write a new file here even if one exists in a folder above.
    #[arg(long)]
    pub here: bool,
}

/// The read and write policy names of an environment.
pub fn policy_names(project: &str, env: &str) -> (String, String) {
    (
        format!("{project}-{env}-read"),
        format!("{project}-{env}-write"),
    )
}

/// The policies of an environment (HCL): read covers the entry and everything below it;
/// write adds create/update/patch/delete and version management.
pub fn policies(mount: &str, project: &str, env: &str) -> (String, String) {
    let base = format!("{project}/{env}");
    let read = format!(
        "# Read {mount}/{base} (written by airlock project create)\n\
         path \"{mount}/data/{base}\" {{ capabilities = [\"read\"] }}\n\
         path \"{mount}/data/{base}/*\" {{ capabilities = [\"read\"] }}\n\
         path \"{mount}/metadata/{base}\" {{ capabilities = [\"read\", \"list\"] }}\n\
         path \"{mount}/metadata/{base}/*\" {{ capabilities = [\"read\", \"list\"] }}\n"
    );
    let write = format!(
        "# Read and write {mount}/{base} (written by airlock project create)\n\
         path \"{mount}/data/{base}\" {{ capabilities = [\"create\", \"read\", \"update\", \"patch\", \"delete\"] }}\n\
         path \"{mount}/data/{base}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"patch\", \"delete\"] }}\n\
         path \"{mount}/metadata/{base}\" {{ capabilities = [\"read\", \"list\", \"update\", \"delete\"] }}\n\
         path \"{mount}/metadata/{base}/*\" {{ capabilities = [\"read\", \"list\", \"update\", \"delete\"] }}\n\
         path \"{mount}/delete/{base}\" {{ capabilities = [\"update\"] }}\n\
         path \"{mount}/undelete/{base}\" {{ capabilities = [\"update\"] }}\n\
         path \"{mount}/destroy/{base}\" {{ capabilities = [\"update\"] }}\n"
    );
    (read, write)
}

async fn ensure_mount(cl: &Client, mount: &str) -> Result<()> {
    let mounts = cl
        .call("GET", "sys/mounts", None)
        .await?
        .unwrap_or(Value::Null);
    let table = mounts.get("data").unwrap_or(&mounts);
    match table.get(format!("{mount}/")) {
        Some(m) => {
            let v2 = m.pointer("/options/version").and_then(Value::as_str) == Some("2");
            if !v2 {
                bail!("{mount}/ is mounted but is not KV version 2");
            }
        }
        None => {
            cl.call(
                "POST",
                &format!("sys/mounts/{mount}"),
                Some(&json!({"type": "kv", "options": {"version": "2"}})),
            )
            .await?;
            println!("Enabled KV v2 at {mount}/");
        }
    }
    Ok(())
}

fn fill(template: &str, env: &str) -> String {
    template.replace("{env}", env)
}

async fn create(a: CreateArgs) -> Result<ExitCode> {
    check_name("project", &a.name)?;
    if a.envs.is_empty() {
        bail!("--envs: name at least one environment");
    }
    for e in &a.envs {
        check_name("environment", e)?;
    }
    let cl = Client::from_env()?;
    cl.require_token()?;
    ensure_mount(&cl, &a.mount).await?;
    for env in &a.envs {
        let path = format!("{}/data/{}/{env}", a.mount, a.name);
        // The entry, created empty when missing (check-and-set 0: never overwrites).
        match cl
            .call(
                "POST",
                &path,
                Some(&json!({"data": {}, "options": {"cas": 0}})),
            )
            .await
        {
            Ok(_) => println!("Created {}/{}/{env}", a.mount, a.name),
            Err(e)
                if e.downcast_ref::<ApiFailure>()
                    .is_some_and(|f| f.status == 400) =>
            {
                println!("Kept {}/{}/{env} (exists)", a.mount, a.name)
            }
            Err(e) => return Err(e),
        }
        cl.call(
            "POST",
            &format!("{}/metadata/{}/{env}", a.mount, a.name),
            Some(&json!({"custom_metadata": {"airlock_project": a.name, "airlock_env": env}})),
        )
        .await?;
        let (rn, wn) = policy_names(&a.name, env);
        let (rp, wp) = policies(&a.mount, &a.name, env);
        for (n, p) in [(&rn, rp), (&wn, wp)] {
            cl.call(
                "PUT",
                &format!("sys/policies/acl/{n}"),
                Some(&json!({ "policy": p })),
            )
            .await?;
        }
        println!("  policies {rn}, {wn}");
        let role = format!("{}-{env}", a.name);
        if a.approle {
            cl.call(
                "POST",
                &format!("auth/{}/role/{role}", a.approle_path),
                Some(&json!({"token_policies": [rn], "token_ttl": a.role_ttl})),
            )
            .await
            .with_context(|| format!("AppRole role at auth/{}", a.approle_path))?;
            println!("  approle role auth/{}/role/{role}", a.approle_path);
        }
        if let Some(k) = &a.kubernetes {
            let k = fill(k, env);
            let (ns, sa) = k
                .split_once('/')
                .ok_or_else(|| anyhow!("--kubernetes wants NAMESPACE/SERVICEACCOUNT, got {k:?}"))?;
            cl.call(
                "POST",
                &format!("auth/{}/role/{role}", a.kubernetes_path),
                Some(&json!({
                    "bound_service_account_names": [sa],
                    "bound_service_account_namespaces": [ns],
                    "token_policies": [rn],
                    "token_ttl": a.role_ttl,
                })),
            )
            .await
            .with_context(|| format!("Kubernetes role at auth/{}", a.kubernetes_path))?;
            println!(
                "  kubernetes role auth/{}/role/{role} ({ns}/{sa})",
                a.kubernetes_path
            );
        }
        if let Some(j) = &a.jwt {
            let j = fill(j, env);
            let (claim, value) = j
                .split_once('=')
                .ok_or_else(|| anyhow!("--jwt wants CLAIM=VALUE, got {j:?}"))?;
            cl.call(
                "POST",
                &format!("auth/{}/role/{role}", a.jwt_path),
                Some(&json!({
                    "role_type": "jwt",
                    "user_claim": "sub",
                    "bound_claims": { claim: value },
                    "token_policies": [rn],
                    "token_ttl": a.role_ttl,
                })),
            )
            .await
            .with_context(|| format!("JWT role at auth/{}", a.jwt_path))?;
            println!(
                "  jwt role auth/{}/role/{role} ({claim}={value})",
                a.jwt_path
            );
        }
    }
    println!(
        "Project {} ready. In its repository: airlock setup --project {} --env {}",
        a.name, a.name, a.envs[0]
    );
    Ok(ExitCode::SUCCESS)
}

/// `airlock setup`: writes the project file here, or adds this folder to the one above.
pub fn setup(a: SetupArgs) -> Result<ExitCode> {
    check_name("project", &a.project)?;
    check_name("environment", &a.env)?;
    if let Some(r) = &a.reference_env {
        check_name("environment", r)?;
    }
    let cwd = std::env::current_dir().context("the working directory")?;
    let existing = if a.here {
        Some(cwd.join(file::FILE)).filter(|f| f.is_file())
    } else {
        file::find(&cwd)
    };
    let (path, mut raw) = match &existing {
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            (f.clone(), file::parse(&text, f)?)
        }
        None => (cwd.join(file::FILE), file::Raw::default()),
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let rel = cwd.strip_prefix(&dir).unwrap_or(Path::new(""));
    let rel = rel.to_string_lossy().replace('\\', "/");
    if rel.is_empty() {
        raw.project = Some(a.project.clone());
        raw.env = Some(a.env.clone());
        if a.mount.is_some() {
            raw.mount = a.mount.clone();
        }
        if a.reference_env.is_some() {
            raw.reference_env = a.reference_env.clone();
        }
    } else {
        raw.folders.insert(
            rel.clone(),
            file::Folder {
                project: a.project.clone(),
                env: Some(a.env.clone()),
                mount: a.mount.clone(),
                reference_env: a.reference_env.clone(),
            },
        );
    }
    std::fs::write(&path, file::render(&raw))
        .with_context(|| format!("writing {}", path.display()))?;
    let mount = a
        .mount
        .as_deref()
        .or(raw.mount.as_deref())
        .unwrap_or("secret");
    if rel.is_empty() {
        println!("Wrote {}: {mount}/{}/{}", path.display(), a.project, a.env);
    } else {
        println!(
            "Wrote {} (folder {rel}): {mount}/{}/{}",
            path.display(),
            a.project,
            a.env
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn project(c: ProjectCmd) -> Result<ExitCode> {
    match c {
        ProjectCmd::Create(a) => create(a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::policy::{Operation, Policy};

    #[test]
    fn an_environments_policies_stop_at_its_prefix() {
        let (read, write) = policies("secret", "voice", "dev");
        let read = Policy::parse("r", &read).unwrap();
        let write = Policy::parse("w", &write).unwrap();
        let acl = airlock_core::policy::Acl::new(&[read]);
        assert!(acl
            .allowed("secret/data/voice/dev", Operation::Read, None)
            .is_ok());
        assert!(acl
            .allowed("secret/data/voice/dev/db", Operation::Read, None)
            .is_ok());
        assert!(acl
            .allowed("secret/data/voice/prd", Operation::Read, None)
            .is_err());
        assert!(acl
            .allowed("secret/data/voice/dev", Operation::Update, None)
            .is_err());
        assert!(acl
            .allowed("secret/data/voice/devx", Operation::Read, None)
            .is_err());
        let acl = airlock_core::policy::Acl::new(&[write]);
        assert!(acl
            .allowed("secret/data/voice/dev", Operation::Update, None)
            .is_ok());
        assert!(acl
            .allowed("secret/data/voice/stg", Operation::Update, None)
            .is_err());
    }
}
