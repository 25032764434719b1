//! `airlock broker approvals list|approve|deny`: decide the brokered requests that wait for
//! a human (`sys/broker/approvals`).

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::Client;

#[derive(Subcommand)]
pub enum ApprovalsCmd {
    /// What waits for a decision (with --all: decided ones too, for a day).
    List {
        #[arg(long)]
        all: bool,
        /// Output format: table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Let the request through (a per-request approval lets exactly that request through).
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Refuse the request (the agent gets 403 with the reason).
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

pub async fn run(c: ApprovalsCmd) -> Result<ExitCode> {
    let cl = Client::from_env()?;
    cl.require_token()?;
    match c {
        ApprovalsCmd::List { all, format } => {
            let ids: Vec<String> = cl
                .call("LIST", "sys/broker/approvals", None)
                .await?
                .and_then(|v| v.pointer("/data/keys").cloned())
                .and_then(|k| serde_json::from_value(k).ok())
                .unwrap_or_default();
            let mut rows = Vec::new();
            for id in ids {
                if let Some(d) = cl
                    .call("GET", &format!("sys/broker/approvals/{id}"), None)
                    .await?
                    .and_then(|v| v.get("data").cloned())
                {
                    if all || d["status"] == "pending" {
                        rows.push(d);
                    }
                }
            }
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&Value::Array(rows))?);
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("No approvals {}.", if all { "recorded" } else { "pending" });
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36} {:<9} {:<14} {:<14} REQUEST",
                "ID", "STATUS", "AGENT", "BINDING"
            );
            for d in rows {
                let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
                println!(
                    "{:<36} {:<9} {:<14} {:<14} {} https://{}{} ({})",
                    s("id"),
                    s("status"),
                    s("agent"),
                    s("binding"),
                    s("method"),
                    s("host"),
                    s("path"),
                    s("mode")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCmd::Approve { id, reason } => decide(&cl, &id, "approve", reason).await,
        ApprovalsCmd::Deny { id, reason } => decide(&cl, &id, "deny", reason).await,
    }
}

async fn decide(cl: &Client, id: &str, action: &str, reason: Option<String>) -> Result<ExitCode> {
    let v = cl
        .call(
            "POST",
            &format!("sys/broker/approvals/{id}/{action}"),
            Some(&json!({ "reason": reason })),
        )
        .await?
        .ok_or_else(|| anyhow!("approval {id} not found"))?;
    println!(
        "Approval {id}: {}",
        v.pointer("/data/status")
            .and_then(Value::as_str)
            .unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}
