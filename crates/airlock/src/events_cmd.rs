//! `airlock events subscribe`: follows the server's event log (`sys/airlock/events`) and
//! prints each event the token may see, one per line, until interrupted.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::Value;

use crate::client::Client;

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Print events as they happen (only those of paths the token may read).
    #[command(
        after_help = "Examples:\n  airlock events subscribe\n  airlock events subscribe secret/data/app --since 0 --format json"
    )]
    Subscribe {
        /// Only events whose path starts with one of these.
        paths: Vec<String>,
        /// Start after this cursor (0: everything kept); default: from now on.
        #[arg(long)]
        since: Option<u64>,
        /// `table` (cursor, type, path, version) or `json` (one event per line).
        #[arg(long, default_value = "table")]
        format: String,
    },
}

pub async fn run(c: EventsCmd) -> Result<ExitCode> {
    let EventsCmd::Subscribe {
        paths,
        since,
        format,
    } = c;
    if format != "table" && format != "json" {
        bail!("--format {format:?}: use table or json");
    }
    let cl = Client::from_env()?;
    cl.require_token()?;
    let mut since = since;
    let mut backoff = Duration::from_millis(200);
    loop {
        let q = match since {
            Some(s) => format!("sys/airlock/events?since={s}&wait=30s&limit=1000"),
            None => "sys/airlock/events".to_string(),
        };
        let v = match cl.call("GET", &q, None).await {
            Ok(v) => {
                backoff = Duration::from_millis(200);
                v.unwrap_or(Value::Null)
            }
            Err(e) if e.downcast_ref::<crate::client::ApiFailure>().is_some() => return Err(e),
            Err(e) => {
                eprintln!("airlock events: {e:#}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let d = &v["data"];
        for e in d["events"].as_array().into_iter().flatten() {
            let path = e["path"].as_str().unwrap_or("");
            let reset = e["event_type"] == "reset";
            if !reset && !paths.is_empty() && !paths.iter().any(|p| path.starts_with(p.as_str())) {
                continue;
            }
            if format == "json" {
                println!("{e}");
            } else {
                println!(
                    "{:>8}  {:<24} {}  {}",
                    e["cursor"],
                    e["event_type"].as_str().unwrap_or(""),
                    path,
                    e["metadata"]["current_version"]
                        .as_str()
                        .map(|v| format!("v{v}"))
                        .unwrap_or_default()
                );
            }
        }
        since = d["next"].as_u64().or(since);
    }
}
