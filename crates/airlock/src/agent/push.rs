//! Pushed changes: a long poll on Airlock's event log (`sys/airlock/events`) names every
//! path the token may read the moment it changes, so a KV write reaches the templates that
//! read it within a second instead of at the next `static_secret_render_interval`. A
//! server without the log (Vault, OpenBao) or a token that may not read it (403) ends the
//! poll: the interval is then the only route, as in Vault's agent.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Log;
use crate::client::Client;

/// What the event log says.
#[derive(Debug)]
pub enum Push {
    /// The data at this path changed (`secret/data/app`, `kv/app`).
    Changed(String),
    /// Changes may have been missed (reconnected, or fell behind the log's retention).
    Resync,
}

/// The log's cursor now, taken before the first fetch so that no later change is missed:
/// `Ok(None)` when the server does not push to this token (logged), `Err` when it could not
/// be asked (the poll will start without a cursor and fetch once when it connects).
pub async fn cursor(cl: &Client, log: Log) -> Result<Option<u64>, ()> {
    match cl.raw("GET", "sys/airlock/events", None, None).await {
        Ok((200, v)) => Ok(v["data"]["next"].as_u64()),
        Ok((status, _)) if refused(status) => {
            unavailable(log, status);
            Ok(None)
        }
        _ => Err(()),
    }
}

fn refused(status: u16) -> bool {
    matches!(status, 400 | 403 | 404 | 405)
}

fn unavailable(log: Log, status: u16) {
    log.info(
        "template",
        format!(
            "the server does not push changes to this token ({status}); static secrets are \
             fetched every static_secret_render_interval"
        ),
    );
}

/// Follows the event log from `since` until the receiver is gone or the server refuses.
pub async fn run(cl: Client, log: Log, tx: mpsc::Sender<Push>, mut since: Option<u64>) {
    let mut failures = 0u32;
    loop {
        let q = match since {
            Some(c) => format!("sys/airlock/events?since={c}&wait=25s&limit=1000"),
            None => "sys/airlock/events".to_string(),
        };
        match cl.raw("GET", &q, None, None).await {
            Ok((200, v)) => {
                let d = &v["data"];
                let mut out = Vec::new();
                for e in d["events"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    if e["event_type"] == "reset" {
                        out.push(Push::Resync);
                    } else if let Some(p) = e["data_path"].as_str() {
                        out.push(Push::Changed(p.to_string()));
                    }
                }
                if failures > 0 || since.is_none() {
                    // Connected without a cursor, or again after failures: a change made
                    // meanwhile is covered by fetching the static secrets once.
                    out.push(Push::Resync);
                    failures = 0;
                }
                since = d["next"].as_u64().or(since);
                for p in out {
                    if tx.send(p).await.is_err() {
                        return;
                    }
                }
            }
            Ok((status, _)) if refused(status) => {
                unavailable(log, status);
                return;
            }
            _ => {
                failures += 1;
                let wait = super::lease::backoff(
                    Duration::from_millis(200),
                    Duration::from_secs(5),
                    failures,
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}
