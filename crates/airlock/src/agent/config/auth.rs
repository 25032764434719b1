//! `auto_auth`: the method (approle, jwt, kubernetes, token_file) and file sinks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use super::super::decode::Block;
use super::origin;
use super::Origin;

pub struct AutoAuth {
    pub method: Method,
    pub sinks: Vec<Sink>,
    pub origin: Origin,
}

pub struct Method {
    pub kind: MethodKind,
    /// `auth/approle` (Vault's `mount_path`, default `auth/<type>`).
    pub mount_path: String,
    pub wrap_ttl: Option<Duration>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub exit_on_err: bool,
}

pub enum MethodKind {
    AppRole {
        role_id_file: PathBuf,
        secret_id_file: Option<PathBuf>,
        remove_secret_id_file: bool,
        wrapping_path: Option<String>,
    },
    Jwt {
        path: PathBuf,
        role: String,
        remove_after_reading: bool,
    },
    Kubernetes {
        role: String,
        token_path: PathBuf,
    },
    TokenFile {
        path: PathBuf,
    },
}

pub struct Sink {
    pub path: PathBuf,
    pub mode: u32,
    pub wrap_ttl: Option<Duration>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub(super) fn parse_auto_auth(mut b: Block<'_>, warnings: &mut Vec<String>) -> Result<AutoAuth> {
    let origin = origin(&b);
    let mut methods = b.blocks("method")?;
    if methods.len() != 1 {
        return Err(b.err(
            methods.get(1).map(|m| m.line).unwrap_or(0),
            "auto_auth needs one and only one method block",
        ));
    }
    let method = match methods.pop() {
        Some(m) => parse_method(m, warnings)?,
        None => bail!("auto_auth needs a method block"),
    };
    let mut sinks = Vec::new();
    for s in b.blocks("sink")? {
        sinks.push(parse_sink(s)?);
    }
    b.bool("enable_reauth_on_new_credentials")?;
    b.finish()?;
    Ok(AutoAuth {
        method,
        sinks,
        origin,
    })
}

/// The type of a `method`/`sink` block: its label, or its `type` attribute.
fn block_type(b: &mut Block<'_>) -> Result<String> {
    let attr = b.string("type")?;
    let t = match (attr, b.labels.as_slice()) {
        (Some(t), _) => t,
        (None, [label]) => label.clone(),
        (None, _) => return Err(b.err(0, format!("{} type must be specified", b.what))),
    };
    Ok(t.to_ascii_lowercase())
}

fn parse_method(mut b: Block<'_>, warnings: &mut Vec<String>) -> Result<Method> {
    let kind = block_type(&mut b)?;
    let mount = b
        .string("mount_path")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("auth/{kind}"));
    let mount = mount.trim_matches('/').to_string();
    let mount_path = if mount.starts_with("auth/") {
        mount
    } else {
        format!("auth/{mount}")
    };
    if let Some((ns, line)) = b.string_at("namespace")? {
        if !ns.is_empty() {
            warnings.push(format!(
                "{}:{line}: namespace {ns:?} is ignored: Airlock has no namespaces",
                b.src.file.display()
            ));
        }
    }
    let wrap_ttl = b.duration("wrap_ttl")?.filter(|d| !d.is_zero());
    let min_backoff = b.duration("min_backoff")?.unwrap_or(Duration::from_secs(1));
    let max_backoff = b
        .duration("max_backoff")?
        .unwrap_or(Duration::from_secs(300));
    if min_backoff >= max_backoff {
        return Err(b.err(0, "min_backoff cannot be greater than max_backoff"));
    }
    let exit_on_err = b.bool("exit_on_err")?.unwrap_or(false);
    let Some(mut c) = b.block("config")? else {
        return Err(b.err(0, format!("method {kind:?} needs a config block")));
    };
    let path = |c: &mut Block<'_>, key: &'static str| -> Result<PathBuf> {
        match c.string(key)? {
            Some(s) if !s.is_empty() => Ok(PathBuf::from(s)),
            Some(_) => Err(c.err(0, format!("{key:?} value is empty"))),
            None => Err(c.err(0, format!("missing {key:?} value"))),
        }
    };
    let kind = match kind.as_str() {
        "approle" => {
            let role_id_file = path(&mut c, "role_id_file_path")?;
            let secret_id_file = c
                .string("secret_id_file_path")?
                .filter(|s| !s.is_empty())
                .map(PathBuf::from);
            let remove = c
                .bool("remove_secret_id_file_after_reading")?
                .unwrap_or(true);
            let wrapping_path = match c.string("secret_id_response_wrapping_path")? {
                Some(s) if s.is_empty() => {
                    return Err(c.err(0, "'secret_id_response_wrapping_path' value is empty"))
                }
                other => other.map(|s| s.trim_matches('/').to_string()),
            };
            MethodKind::AppRole {
                role_id_file,
                secret_id_file,
                remove_secret_id_file: remove,
                wrapping_path,
            }
        }
        "jwt" => {
            let path = path(&mut c, "path")?;
            let role = c.string("role")?.unwrap_or_default();
            if role.is_empty() {
                return Err(c.err(0, "missing 'role' value"));
            }
            let remove = c.bool("remove_jwt_after_reading")?.unwrap_or(true);
            c.bool("remove_jwt_follows_symlinks")?;
            c.duration("jwt_read_period")?;
            MethodKind::Jwt {
                path,
                role,
                remove_after_reading: remove,
            }
        }
        "kubernetes" => {
            let role = c.string("role")?.unwrap_or_default();
            if role.is_empty() {
                return Err(c.err(0, "missing 'role' value"));
            }
            let token_path = c
                .string("token_path")?
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/var/run/secrets/kubernetes.io/serviceaccount/token".into());
            MethodKind::Kubernetes {
                role,
                token_path: PathBuf::from(token_path),
            }
        }
        "token_file" => MethodKind::TokenFile {
            path: path(&mut c, "token_file_path")?,
        },
        other => {
            return Err(b.err(
                0,
                format!(
                    "auth method {other:?} is not supported by airlock agent \
                     (approle, jwt, kubernetes, token_file)"
                ),
            ))
        }
    };
    c.finish()?;
    b.finish()?;
    Ok(Method {
        kind,
        mount_path,
        wrap_ttl,
        min_backoff,
        max_backoff,
        exit_on_err,
    })
}

fn parse_sink(mut b: Block<'_>) -> Result<Sink> {
    let kind = block_type(&mut b)?;
    if kind != "file" {
        return Err(b.err(
            0,
            format!("sink type {kind:?} is not supported by airlock agent (file)"),
        ));
    }
    for key in ["dh_type", "dh_path", "derive_key", "aad", "aad_env_var"] {
        if let Some(line) = b.line_of(key) {
            return Err(b.err(
                line,
                format!(
                    "{key}: encrypting the sink (Diffie-Hellman) is not supported by airlock \
                     agent; response-wrap it with wrap_ttl"
                ),
            ));
        }
    }
    let wrap_ttl = b.duration("wrap_ttl")?.filter(|d| !d.is_zero());
    let Some(mut c) = b.block("config")? else {
        return Err(b.err(0, "'path' not specified for file sink"));
    };
    let path = match c.string("path")? {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => return Err(c.err(0, "'path' not specified for file sink")),
    };
    let mode = c.mode("mode")?.unwrap_or(0o640);
    let uid = id(&mut c, "uid")?;
    let gid = id(&mut c, "gid")?;
    c.finish()?;
    b.finish()?;
    Ok(Sink {
        path,
        mode,
        wrap_ttl,
        uid,
        gid,
    })
}

pub(super) fn id(b: &mut Block<'_>, key: &'static str) -> Result<Option<u32>> {
    match b.int(key)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| b.err(0, format!("{key} must be a non-negative number"))),
    }
}
