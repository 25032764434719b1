//! `template`, `env_template` and `exec`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::super::decode::Block;
use super::auth::id;
use super::{origin, Origin};

/// A template's text: a file, or `contents` in the config.
pub enum TemplateText {
    File(PathBuf),
    /// The text, and the config line its first line is on when that is known (heredoc).
    Contents {
        text: String,
        first_line: Option<u32>,
    },
}

/// What file and environment templates share.
pub struct TemplateSpec {
    pub text: TemplateText,
    pub origin: Origin,
    pub error_on_missing_key: bool,
    pub left: String,
    pub right: String,
    pub sandbox: Option<PathBuf>,
}

pub struct FileTemplate {
    pub spec: TemplateSpec,
    pub destination: PathBuf,
    pub perms: Option<u32>,
    pub command: Vec<String>,
    pub command_timeout: Duration,
    /// Quiescence: (min, max).
    pub wait: Option<(Duration, Duration)>,
    pub create_dest_dirs: bool,
    pub backup: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub struct EnvTemplate {
    pub name: String,
    pub spec: TemplateSpec,
}

pub struct Exec {
    pub command: Vec<String>,
    pub restart_always: bool,
    pub stop_signal: i32,
}

/// `source`/`contents`, delimiters, `error_on_missing_key` and `sandbox_path`.
fn parse_spec(b: &mut Block<'_>, name: &str) -> Result<TemplateSpec> {
    let origin = origin(b);
    let source = b.string("source")?.filter(|s| !s.is_empty());
    let contents = b.string_at("contents")?;
    let text = match (source, contents) {
        (Some(_), Some(_)) => {
            return Err(b.err(
                0,
                format!("{name}: 'contents' and 'source' cannot be specified together"),
            ))
        }
        (None, None) => {
            return Err(b.err(
                0,
                format!("{name}: either 'contents' or 'source' must be specified"),
            ))
        }
        (Some(s), None) => TemplateText::File(PathBuf::from(s)),
        (None, Some((text, line))) => TemplateText::Contents {
            text,
            first_line: b.src.heredocs.contains(&line).then_some(line + 1),
        },
    };
    let error_on_missing_key = b.bool("error_on_missing_key")?.unwrap_or(false);
    b.bool("error_fatal")?;
    let left = b.string("left_delimiter")?.unwrap_or_default();
    let right = b.string("right_delimiter")?.unwrap_or_default();
    let sandbox = b
        .string("sandbox_path")?
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    for key in ["function_denylist", "function_blacklist"] {
        if let Some(list) = b.strings(key)? {
            if !list.is_empty() {
                return Err(b.err(
                    0,
                    format!("{name}: {key} is not supported by airlock agent"),
                ));
            }
        }
    }
    Ok(TemplateSpec {
        text,
        origin,
        error_on_missing_key,
        left,
        right,
        sandbox,
    })
}

pub(super) fn parse_template(mut b: Block<'_>) -> Result<FileTemplate> {
    let spec = parse_spec(&mut b, "template")?;
    let destination = match b.string("destination")? {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => return Err(b.err(0, "template: 'destination' must be specified")),
    };
    let perms = b.mode("perms")?;
    let mut command = b.strings("command")?.unwrap_or_default();
    let mut command_timeout = b
        .duration("command_timeout")?
        .unwrap_or(Duration::from_secs(30));
    if let Some(mut e) = b.block("exec")? {
        if let Some(c) = e.strings("command")? {
            command = c;
        }
        if let Some(t) = e.duration("timeout")? {
            command_timeout = t;
        }
        e.finish()?;
    }
    command.retain(|c| !c.is_empty());
    let wait = parse_wait(&mut b)?;
    let create_dest_dirs = b.bool("create_dest_dirs")?.unwrap_or(true);
    let backup = b.bool("backup")?.unwrap_or(false);
    let mut uid = id(&mut b, "uid")?;
    let mut gid = id(&mut b, "gid")?;
    for (key, slot) in [("user", &mut uid), ("group", &mut gid)] {
        let value = match key {
            "user" => b.string("user")?,
            _ => b.string("group")?,
        };
        if let Some(v) = value {
            *slot = Some(v.parse().map_err(|_| {
                b.err(
                    0,
                    format!("template: {key} must be a numeric id for airlock agent, not {v:?}"),
                )
            })?);
        }
    }
    b.finish()?;
    Ok(FileTemplate {
        spec,
        destination,
        perms,
        command,
        command_timeout,
        wait,
        create_dest_dirs,
        backup,
        uid,
        gid,
    })
}

/// `wait { min = "2s" max = "10s" }` or `wait = "2s:10s"`; a missing max is 4 × min.
fn parse_wait(b: &mut Block<'_>) -> Result<Option<(Duration, Duration)>> {
    let Some(it) = b.attr("wait")? else {
        return Ok(None);
    };
    let bad = |msg: &str| b.err(it.line, format!("template: wait: {msg}"));
    let dur = |s: &str| {
        airlock_core::duration::parse_duration_nanos(s.trim())
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| Duration::from_nanos(n as u64))
    };
    let (min, max) = match &it.value {
        airlock_core::hcl::Value::String(s) => {
            let mut parts = s.split(':');
            let min = parts
                .next()
                .and_then(dur)
                .ok_or_else(|| bad("min is not a duration"))?;
            let max = match parts.next() {
                Some(m) => Some(dur(m).ok_or_else(|| bad("max is not a duration"))?),
                None => None,
            };
            if parts.next().is_some() {
                return Err(bad("use \"min:max\""));
            }
            (min, max)
        }
        airlock_core::hcl::Value::Object(items) => {
            let mut w = Block::new(b.src, it.line, "template.wait", items);
            let min = w.duration("min")?.unwrap_or_default();
            let max = w.duration("max")?;
            w.finish()?;
            (min, max)
        }
        other => {
            return Err(bad(&format!(
                "must be a block or \"min:max\", not {}",
                other.type_name()
            )))
        }
    };
    let max = max.unwrap_or(min * 4);
    if max < min {
        return Err(bad("max must not be less than min"));
    }
    Ok((!min.is_zero()).then_some((min, max)))
}

pub(super) fn parse_env_template(mut b: Block<'_>) -> Result<EnvTemplate> {
    let name = match b.labels.as_slice() {
        [n] if !n.is_empty() => n.clone(),
        _ => {
            return Err(b.err(
                0,
                "env_template: an environment variable name is required (env_template \"NAME\" { ... })",
            ))
        }
    };
    for key in [
        "backup",
        "command",
        "command_timeout",
        "create_dest_dirs",
        "destination",
        "exec",
        "perms",
        "user",
        "uid",
        "group",
        "gid",
        "wait",
        "sandbox_path",
    ] {
        if let Some(line) = b.line_of(key) {
            return Err(b.err(
                line,
                format!("env_template[{name}]: '{key}' is not allowed"),
            ));
        }
    }
    let spec = parse_spec(&mut b, &format!("env_template[{name}]"))?;
    b.finish()?;
    Ok(EnvTemplate { name, spec })
}

pub(super) fn parse_exec(mut b: Block<'_>) -> Result<Exec> {
    let command = b.strings("command")?.unwrap_or_default();
    if command.is_empty() || command.iter().all(|c| c.trim().is_empty()) {
        return Err(b.err(0, "'exec' requires a non-empty 'command' field"));
    }
    let restart_line = b.line_of("restart_on_secret_changes").unwrap_or(0);
    let restart = b
        .string("restart_on_secret_changes")?
        .unwrap_or_else(|| "always".into());
    let restart_always = match restart.as_str() {
        "always" => true,
        "never" => false,
        other => {
            return Err(b.err(
                restart_line,
                format!("'exec.restart_on_secret_changes' unexpected value: {other:?}"),
            ))
        }
    };
    let stop_signal = match b.string_at("restart_stop_signal")? {
        None => libc::SIGTERM,
        Some((s, line)) => signal_number(&s)
            .ok_or_else(|| b.err(line, format!("unknown signal {s:?} (e.g. SIGTERM)")))?,
    };
    b.finish()?;
    Ok(Exec {
        command,
        restart_always,
        stop_signal,
    })
}

/// A signal by name (`SIGTERM` or `TERM`).
fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_uppercase();
    Some(match n.trim_start_matches("SIG") {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "TERM" => libc::SIGTERM,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        "ABRT" => libc::SIGABRT,
        _ => return None,
    })
}
