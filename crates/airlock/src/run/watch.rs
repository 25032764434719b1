//! `airlock run --watch`: keeps the command's secrets current. The server pushes: a long poll
//! on its event log (`sys/airlock/events`) wakes the moment one of the paths changes, and the
//! values are fetched then. Without it (a token that may not read the log, an older server)
//! the values are checked every `--poll-interval`; with it, that check remains as a slow
//! safety net. A change is acted on once it has held for `--debounce` (a burst of
//! writes gives one action), by the `--on-change` strategy: restart the command (SIGTERM,
//! `--grace`, SIGKILL, start again with the new values), send it a signal, run a command,
//! or only log. A `--mount` file is rewritten (atomically) before any of them. Failed checks
//! (server down) keep the running command as it is; the next successful check compares
//! again, so a change made meanwhile is acted on once. Signals to `airlock run` still reach
//! the command, and its exit ends `airlock run` with its status.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha256};

use super::{exit_code, spawn, Env, RunArgs, SignalRelay};
use crate::client::Client;

/// What a change does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnChange {
    Restart,
    Signal(i32),
    Exec(String),
    None,
}

pub fn parse_on_change(s: &str) -> Result<OnChange> {
    Ok(match s {
        "restart" => OnChange::Restart,
        "none" => OnChange::None,
        s if s.starts_with("signal:") => OnChange::Signal(signal_number(&s["signal:".len()..])?),
        s if s.starts_with("exec:") && s.len() > "exec:".len() => {
            OnChange::Exec(s["exec:".len()..].to_string())
        }
        other => bail!(
            "--on-change {other:?}: use restart, signal:NAME (e.g. signal:HUP), exec:COMMAND or none"
        ),
    })
}

fn signal_number(name: &str) -> Result<i32> {
    let n = name.trim().trim_start_matches("SIG");
    Ok(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "TERM" => libc::SIGTERM,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        n => match n.parse::<i32>() {
            Ok(v) if (1..=64).contains(&v) && v != libc::SIGKILL && v != libc::SIGSTOP => v,
            _ => bail!("unknown or unusable signal {name:?} (HUP, INT, QUIT, TERM, USR1, USR2, WINCH or a number)"),
        },
    })
}

/// A digest of the values, to tell a change (the values themselves are not kept around).
pub fn digest(env: &Env) -> [u8; 32] {
    let mut h = Sha256::new();
    for (k, v) in env {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().into()
}

pub fn millis(what: &str, s: &str) -> Result<Duration> {
    let n = airlock_core::duration::parse_duration_nanos(s)
        .map_err(|_| anyhow!("{what} {s:?} is not a duration (e.g. 500ms, 2s, 1m)"))?;
    if n < 0 {
        bail!("{what} must not be negative");
    }
    Ok(Duration::from_nanos(n as u64))
}

/// Sends `sig` to `pid` (through `kill`: the workspace forbids `unsafe`).
pub fn send_signal(pid: Option<u32>, sig: i32) {
    if let Some(p) = pid {
        let _ = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(p.to_string())
            .status();
    }
}

/// Stops a child: SIGTERM, then SIGKILL after `grace`.
async fn stop(child: &mut tokio::process::Child, grace: Duration) {
    send_signal(child.id(), libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// The event data paths a KV path may appear as: itself (KV v1) and, for KV v2, with
/// `data/` after the mount, wherever the mount ends.
fn data_paths(paths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.trim_matches('/');
        out.push(p.to_string());
        let parts: Vec<&str> = p.split('/').collect();
        for i in 1..parts.len() {
            out.push(format!(
                "{}/data/{}",
                parts[..i].join("/"),
                parts[i..].join("/")
            ));
        }
    }
    out
}

/// Long-polls the event log and sends a wake-up for every event about one of `paths`.
/// Ends (and `--watch` falls back to polling) when the server has no log or refuses it.
async fn push(cl: Client, paths: Vec<String>, tx: tokio::sync::mpsc::Sender<()>) {
    let wanted = data_paths(&paths);
    let mut since: Option<u64> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let q = match since {
            Some(c) => format!("sys/airlock/events?since={c}&wait=25s&limit=1000"),
            None => "sys/airlock/events".to_string(),
        };
        match cl.raw("GET", &q, None, None).await {
            Ok((200, v)) => {
                backoff = Duration::from_millis(200);
                let d = &v["data"];
                let hit = d["events"].as_array().is_some_and(|ev| {
                    ev.iter().any(|e| {
                        e["event_type"] == "reset"
                            || e["data_path"]
                                .as_str()
                                .is_some_and(|p| wanted.iter().any(|w| w == p))
                    })
                });
                let reconnected = since.is_none();
                since = d["next"].as_u64().or(since);
                // After (re)connecting, one check: a change made meanwhile is seen once.
                if (hit || reconnected) && tx.send(()).await.is_err() {
                    return;
                }
            }
            Ok((status, _)) if status == 403 || status == 404 || status == 405 => {
                eprintln!("airlock run: the server does not push changes to this token ({status}); checking every --poll-interval");
                return;
            }
            _ => {
                // The log is durable: the next poll from the same cursor returns what was
                // written meanwhile (or a reset, if that was more than the retention).
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub async fn supervise(a: &RunArgs, cl: &Client, mut env: Env) -> Result<ExitCode> {
    let strategy = parse_on_change(&a.on_change)?;
    let grace = millis("--grace", &a.grace)?;
    let debounce = millis("--debounce", &a.debounce)?;
    let poll = millis("--poll-interval", &a.poll_interval)?.max(Duration::from_millis(50));
    let mut relay = SignalRelay::install()?;
    let mut applied = digest(&env);
    let mount = super::mount::Mount::new(a, &env)?;
    let mut child = spawn(a, &env)?;
    // A change seen, and since when it has held.
    let mut pending: Option<([u8; 32], Instant)> = None;
    let (push_tx, mut pushed) = tokio::sync::mpsc::channel::<()>(1);
    let pusher = tokio::spawn(push(cl.clone(), a.paths.clone(), push_tx));
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut push_alive = true;
    loop {
        let settle = pending.map(|(_, since)| tokio::time::Instant::from_std(since + debounce));
        tokio::select! {
            st = child.wait() => {
                pusher.abort();
                return Ok(exit_code(st?));
            }
            Some(sig) = relay.next() => send_signal(child.id(), sig),
            p = pushed.recv(), if push_alive => {
                if p.is_none() {
                    push_alive = false;
                }
            }
            _ = tick.tick() => {}
            _ = async { match settle { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
        }
        let fresh = match super::load(a, cl).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("airlock run: checking for changes failed (the command keeps its values): {e:#}");
                continue;
            }
        };
        let d = digest(&fresh);
        if d == applied {
            pending = None;
            continue;
        }
        match pending {
            Some((p, since)) if p == d && since.elapsed() >= debounce => {}
            Some((p, _)) if p == d => continue,
            _ => {
                pending = Some((d, Instant::now()));
                continue;
            }
        }
        // The new values held for the debounce time: act once.
        pending = None;
        applied = d;
        env = fresh;
        if let Some(f) = &a.fallback {
            if let Some(t) = cl.token.as_ref() {
                if let Err(e) = super::fallback::save(f, t, &a.paths, &env) {
                    eprintln!("airlock run: updating the fallback file failed: {e:#}");
                }
            }
        }
        if let Some(m) = &mount {
            m.update(&env)?;
        }
        match &strategy {
            OnChange::Restart => {
                eprintln!("airlock run: values changed; restarting the command");
                stop(&mut child, grace).await;
                child = spawn(a, &env)?;
            }
            OnChange::Signal(sig) => {
                eprintln!("airlock run: values changed; sending signal {sig}");
                send_signal(child.id(), *sig);
            }
            OnChange::Exec(cmd) => {
                eprintln!("airlock run: values changed; running {cmd:?}");
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c").arg(cmd);
                super::apply_env(a, &mut c, &env);
                match c.status().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => eprintln!("airlock run: {cmd:?} exited with {s}"),
                    Err(e) => eprintln!("airlock run: {cmd:?} could not start: {e}"),
                }
            }
            OnChange::None => eprintln!("airlock run: values changed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_on_change("restart").unwrap(), OnChange::Restart);
        assert_eq!(
            parse_on_change("signal:HUP").unwrap(),
            OnChange::Signal(libc::SIGHUP)
        );
        assert_eq!(
            parse_on_change("signal:SIGUSR1").unwrap(),
            OnChange::Signal(libc::SIGUSR1)
        );
        assert_eq!(
            parse_on_change("exec:./reload.sh").unwrap(),
            OnChange::Exec("./reload.sh".into())
        );
        for bad in [
            "signal:KILL",
            "signal:9",
            "signal:NOPE",
            "exec:",
            "reload",
            "",
        ] {
            assert!(parse_on_change(bad).is_err(), "{bad} accepted");
        }
    }
}
