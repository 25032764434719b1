//! `airlock k8s …`: Kubernetes Secret manifests from KV paths (`k8s secret`) and the
//! declarative bootstrap of several Secrets with minted values (`k8s bootstrap`).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum K8sCmd {
    /// Print a Kubernetes Secret manifest built from KV paths.
    Secret,
    /// Create named Secrets with minted values from a declarative file (dry-run by default).
    Bootstrap,
}

pub async fn run(c: K8sCmd) -> Result<ExitCode> {
    match c {
        K8sCmd::Secret | K8sCmd::Bootstrap => bail!("not implemented yet"),
    }
}
