//! `airlock broker wrap-mcp`: rewrite an `mcp.json` so each local MCP server runs under
//! `airlock broker run` and the secrets in its `env` move into Airlock.
//!
//! Understands the `mcpServers` object (Cursor, Claude Desktop, Claude Code) and VS Code's
//! top-level `servers`. For every stdio server (one with a `command`):
//!
//! * env entries whose name [`is_secret_var`] and whose value is a literal (not empty, not an
//!   Airlock placeholder, not a `${…}` reference) are removed from `env` and returned in
//!   [`WrapOutcome::extracted`], to be stored at `<kv_mount>/<kv_prefix>/<server>` under the
//!   variable's name;
//! * a secret variable whose whole value is a reference to another environment variable
//!   (`${env:NAME}` or `${NAME}`, as the MCP host expands them) is resolved with the `env`
//!   function given to [`wrap_with_env`] (the CLI passes its own environment) and moved the
//!   same way; an unresolved one stays and is reported in [`WrapOutcome::unresolved`];
//! * the server becomes `airlock broker run [--profile P] --agent <server> -- <command> <args…>`
//!   (even with no secret in `env`, so that its traffic goes through the broker), where the
//!   agent name is the server's name with characters agent names cannot hold mapped to `_`;
//! * [`profile_snippet`] gives the profile lines: an agent for every wrapped server (so
//!   `broker run --agent` finds it) and a binding for every moved variable.
//!
//! Remote servers (`url`) are left alone: the broker has to be configured as their proxy.
//! Wrapping is idempotent: a server already running under `airlock broker run` is skipped, so
//! wrapping the output again changes nothing and extracts nothing.
//!
//! This module is pure: it takes the parsed document and returns the new one plus the values
//! to store. The CLI does the I/O (store in Airlock first, then a backup, then the rewrite).
//! Every field of the file and of each server that is not named above is kept as it was.
//! Key order: serde_json's default `Map` is sorted, so the rewritten file comes out with sorted
//! keys (with the `preserve_order` feature the original order is kept, since every change is
//! made in place). That is acceptable: only the order differs, never the content.

use serde_json::{Map, Value};

/// Prefix of the placeholders Airlock hands out in place of real credentials.
const PLACEHOLDER_PREFIX: &str = "airlock-ph-";

/// Reason given for servers that were wrapped before.
const ALREADY_WRAPPED: &str = "already wrapped";

/// Reason given for remote servers.
const REMOTE: &str = "remote server (url): configure the broker as its proxy instead";

/// `_`-separated words that mark an environment variable as secret.
const SECRET_WORDS: &[&str] = &[
    "KEY",
    "APIKEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "PAT",
    "DSN",
];

/// How to wrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapOptions {
    /// The command wrapped servers run (usually `airlock`).
    pub airlock_bin: String,
    /// Passed as `--profile` to each wrapped server.
    pub profile: Option<String>,
    /// KV mount for the extracted secrets (`secret`).
    pub kv_mount: String,
    /// Path prefix under the mount (`mcp`): secrets go to `<mount>/<prefix>/<server>`.
    pub kv_prefix: String,
}

impl Default for WrapOptions {
    fn default() -> Self {
        WrapOptions {
            airlock_bin: "airlock".into(),
            profile: None,
            kv_mount: "secret".into(),
            kv_prefix: "mcp".into(),
        }
    }
}

/// A secret value taken out of the file; the caller stores it in Airlock at `path` under `key`.
#[derive(Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The server's name, as written in the file.
    pub server: String,
    /// The environment variable it came from.
    pub var: String,
    /// KV path: `<kv_mount>/<kv_prefix>/<server name with unsafe characters mapped to `_`>`.
    pub path: String,
    /// The key under `path`: the variable's name.
    pub key: String,
    /// The secret itself.
    pub value: String,
}

/// Never prints the value.
impl std::fmt::Debug for Extracted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extracted")
            .field("server", &self.server)
            .field("var", &self.var)
            .field("path", &self.path)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The result of [`wrap`].
#[derive(Debug, Clone)]
pub struct WrapOutcome {
    /// The rewritten document (equal to the input when nothing was wrapped).
    pub doc: Value,
    /// Secrets removed from the document, in server order then variable order.
    pub extracted: Vec<Extracted>,
    /// Servers whose command was changed.
    pub wrapped: Vec<String>,
    /// (server, reason) for servers left as they were.
    pub skipped: Vec<(String, String)>,
    /// (server, variable, reference) for secret variables whose `${…}` reference could not
    /// be resolved: left in `env`, so the host still passes the real value to the server.
    pub unresolved: Vec<(String, String, String)>,
}

/// Does this variable name look like it holds a secret? Whole `_`-separated words only,
/// compared case-insensitively, so `GITHUB_TOKEN`, `API_KEY`, `SENTRY_DSN` and `apikey` count
/// but `PATH`, `MONKEY` and `KEYBOARD_LAYOUT` do not.
pub fn is_secret_var(name: &str) -> bool {
    // Only real variable names: anything else (spaces, newlines, `=`) is left alone.
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid
        && name
            .split('_')
            .any(|w| SECRET_WORDS.iter().any(|s| w.eq_ignore_ascii_case(s)))
}

/// A value that is not a literal secret: empty, an Airlock placeholder, a `${…}` reference
/// (`${VAR}`, `${env:VAR}`, `${input:id}`, also inside a longer string), or an obvious flag.
fn is_not_literal(v: &str) -> bool {
    let t = v.trim();
    t.is_empty()
        || t.starts_with(PLACEHOLDER_PREFIX)
        || t.split_once("${")
            .is_some_and(|(_, rest)| rest.contains('}'))
        || ["true", "false", "yes", "no", "on", "off", "0", "1"]
            .iter()
            .any(|f| t.eq_ignore_ascii_case(f))
}

/// The variable a whole-value reference names: `${env:NAME}` or `${NAME}` (not
/// `${input:id}`, not `${NAME:-default}`, not a reference inside a longer string).
fn env_reference(v: &str) -> Option<&str> {
    let inner = v.trim().strip_prefix("${")?.strip_suffix('}')?;
    let name = inner.strip_prefix("env:").unwrap_or(inner);
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then_some(name)
}

/// `name` as one KV path segment: characters outside `[A-Za-z0-9_.-]` become `_`, and a name
/// that is empty or only dots (`.`, `..`) becomes underscores so it cannot climb the path.
fn safe_segment(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".into()
    } else if s.chars().all(|c| c == '.') {
        s.replace('.', "_")
    } else {
        s
    }
}

/// `<mount>/<prefix>/<segment>`, without doubled or stray slashes.
/// The agent a wrapped server runs as: its name made valid (letters, digits, `_`, `-`, `.`;
/// at most 64 characters).
pub fn agent_name(server: &str) -> String {
    safe_segment(server).chars().take(64).collect()
}

fn kv_path(opts: &WrapOptions, server: &str) -> String {
    let seg = safe_segment(server);
    [opts.kv_mount.as_str(), opts.kv_prefix.as_str()]
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|p| !p.is_empty())
        .chain(std::iter::once(seg.as_str()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Is `cmd` the Airlock binary: `opts.airlock_bin`, or a path whose last component is
/// `airlock` (or `airlock.exe`)?
fn is_airlock(cmd: &str, opts: &WrapOptions) -> bool {
    if cmd == opts.airlock_bin {
        return true;
    }
    let base = cmd.rsplit(['/', '\\']).next().unwrap_or(cmd);
    base == "airlock" || base.eq_ignore_ascii_case("airlock.exe")
}

/// A stdio server's `command`, `args` and `env`, checked.
struct Stdio {
    command: String,
    args: Vec<String>,
    env: Option<Map<String, Value>>,
}

fn parse_stdio(name: &str, server: &Map<String, Value>) -> Result<Option<Stdio>, String> {
    let command = match server.get("command") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(c)) if !c.trim().is_empty() => c.clone(),
        Some(_) => {
            return Err(format!(
                "server {name:?}: \"command\" must be a non-empty string"
            ))
        }
    };
    let bad_args = || format!("server {name:?}: \"args\" must be a list of strings");
    let args = match server.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad_args)?,
        Some(_) => return Err(bad_args()),
    };
    let bad_env = || format!("server {name:?}: \"env\" must be an object of strings");
    let env = match server.get("env") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Some(m.clone()),
        Some(_) => return Err(bad_env()),
    };
    Ok(Some(Stdio { command, args, env }))
}

/// Is this a remote server (`url`, or a VS Code `type` of `http`/`sse`) rather than stdio?
fn is_remote(server: &Map<String, Value>) -> bool {
    server.contains_key("url")
        || matches!(
            server.get("type").and_then(Value::as_str),
            Some("http" | "sse" | "streamable-http" | "streamableHttp")
        )
}

/// Rewrites `doc` (a parsed `mcp.json`) so every local MCP server runs under
/// `airlock broker run`; see the module documentation for the rules.
///
/// Errors: `doc` is not an object; it has neither an `mcpServers` nor a `servers` object; a
/// server is not an object; a stdio server's `command` is not a string, `args` not a list of
/// strings or `env` not an object of strings; two servers would store the same variable at
/// the same KV path (their names differ only in characters mapped to `_`).
pub fn wrap(doc: &Value, opts: &WrapOptions) -> Result<WrapOutcome, String> {
    wrap_with_env(doc, opts, &|_| None)
}

/// [`wrap`], resolving `${env:NAME}` / `${NAME}` values of secret variables with `env`.
pub fn wrap_with_env(
    doc: &Value,
    opts: &WrapOptions,
    env_of: &dyn Fn(&str) -> Option<String>,
) -> Result<WrapOutcome, String> {
    let root = doc
        .as_object()
        .ok_or("the file must hold a JSON object (an mcp.json)")?;
    // Cursor/Claude use `mcpServers`; VS Code uses `servers`. The former wins if both exist.
    let key = ["mcpServers", "servers"]
        .into_iter()
        .find(|k| root.contains_key(*k))
        .ok_or("no \"mcpServers\" (Cursor, Claude) or \"servers\" (VS Code) object in the file")?;
    let servers = root
        .get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| format!("\"{key}\" must be an object of servers"))?;

    // Changes are made in place on a copy so every untouched field stays as it was.
    let mut changed: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut extracted: Vec<Extracted> = Vec::new();
    let mut wrapped = Vec::new();
    let mut skipped = Vec::new();
    let mut unresolved = Vec::new();
    for (name, v) in servers {
        let server = v
            .as_object()
            .ok_or_else(|| format!("server {name:?} must be an object"))?;
        if is_remote(server) {
            skipped.push((name.clone(), REMOTE.to_string()));
            continue;
        }
        let Some(stdio) = parse_stdio(name, server)? else {
            skipped.push((name.clone(), "no \"command\" or \"url\"".to_string()));
            continue;
        };
        if is_airlock(&stdio.command, opts)
            && stdio.args.first().map(String::as_str) == Some("broker")
            && stdio.args.get(1).map(String::as_str) == Some("run")
        {
            skipped.push((name.clone(), ALREADY_WRAPPED.to_string()));
            continue;
        }

        let mut new = server.clone();
        if let Some(mut env) = stdio.env {
            let path = kv_path(opts, name);
            // (variable, its value): literals as written, references resolved.
            let mut secret: Vec<(String, String)> = Vec::new();
            for (var, val) in env.iter() {
                let Some(val) = val.as_str().filter(|_| is_secret_var(var)) else {
                    continue;
                };
                if !is_not_literal(val) {
                    secret.push((var.clone(), val.to_string()));
                } else if let Some(source) = env_reference(val) {
                    match env_of(source).filter(|v| !v.is_empty()) {
                        Some(v) => secret.push((var.clone(), v)),
                        None => unresolved.push((name.clone(), var.clone(), val.to_string())),
                    }
                }
            }
            for (var, value) in secret {
                env.remove(&var);
                if let Some(other) = extracted
                    .iter()
                    .find(|e| e.path == path && e.key == var && e.server != *name)
                {
                    return Err(format!(
                        "servers {:?} and {name:?} would both store {var} at {path}; rename one",
                        other.server
                    ));
                }
                extracted.push(Extracted {
                    server: name.clone(),
                    var: var.clone(),
                    path: path.clone(),
                    key: var,
                    value,
                });
            }
            // An `env` emptied by extraction stays as `{}`: harmless, and the field is kept.
            new.insert("env".into(), Value::Object(env));
        }
        let mut args: Vec<Value> = vec!["broker".into(), "run".into()];
        if let Some(p) = &opts.profile {
            args.extend(["--profile".into(), Value::from(p.as_str())]);
        }
        args.extend([
            "--agent".into(),
            Value::from(agent_name(name)),
            "--".into(),
            Value::from(stdio.command),
        ]);
        args.extend(stdio.args.into_iter().map(Value::from));
        new.insert("command".into(), Value::from(opts.airlock_bin.as_str()));
        new.insert("args".into(), Value::Array(args));
        changed.push((name.clone(), new));
        if let Some(other) = wrapped
            .iter()
            .find(|w: &&String| agent_name(w) == agent_name(name))
        {
            return Err(format!(
                "servers {other:?} and {name:?} would both run as agent {:?}; rename one",
                agent_name(name)
            ));
        }
        wrapped.push(name.clone());
    }

    let mut out = doc.clone();
    if let Some(map) = out.get_mut(key).and_then(Value::as_object_mut) {
        for (name, new) in changed {
            map.insert(name, Value::Object(new));
        }
    }
    Ok(WrapOutcome {
        doc: out,
        extracted,
        wrapped,
        skipped,
        unresolved,
    })
}

/// Profile lines for what [`wrap`] did: one `[agents.<server>]` per wrapped server (with no
/// binding when nothing was moved, so `broker run --agent` still finds it) and one
/// `[[binding]]` per moved variable. Variables that a provider preset reads (`GITHUB_TOKEN`,
/// `OPENAI_API_KEY`, ...) get a complete binding; others get a commented template, since only
/// the user knows which host their key is for. Agents and bindings named in `existing` (a
/// profile that already has them) are left out.
pub fn profile_snippet(extracted: &[Extracted], wrapped: &[String], existing: &Existing) -> String {
    let q = |s: &str| Value::from(s).to_string();
    let mut out = String::new();
    for server in wrapped {
        let mut names = Vec::new();
        let agent = agent_name(server);
        for e in extracted.iter().filter(|e| &e.server == server) {
            let name: String = format!("{agent}-{}", e.var.to_ascii_lowercase())
                .chars()
                .take(64)
                .collect();
            let secret = q(&format!("{}#{}", e.path, e.key));
            // The preset that reads this variable, or whose name is its first word
            // (`GITHUB_PERSONAL_ACCESS_TOKEN`, `SLACK_BOT_TOKEN`).
            let first = e.var.split('_').next().unwrap_or("").to_ascii_lowercase();
            let preset = crate::providers::PROVIDERS
                .iter()
                .find(|p| p.env == e.var)
                .or_else(|| {
                    crate::providers::PROVIDERS
                        .iter()
                        .find(|p| p.name.replace('-', "") == first)
                });
            match preset {
                Some(p) => {
                    names.push(name.clone());
                    if existing.bindings.contains(&name) {
                        continue;
                    }
                    let env = if p.env == e.var {
                        String::new()
                    } else {
                        format!("env = {}\n", q(&e.var))
                    };
                    out.push_str(&format!(
                        "[[binding]]\nname = {}\nprovider = {}\nsecret = {secret}\n{env}\n",
                        q(&name),
                        q(p.name)
                    ));
                }
                None => out.push_str(&format!(
                    "# {var}: no provider preset reads this variable; say where it may go:\n\
                     # [[binding]]\n# name = {n}\n# secret = {secret}\n# env = {v}\n\
                     # hosts = [\"api.example.com\"]\n# header = \"authorization\"\n\
                     # format = \"Bearer {{}}\"\n\n",
                    var = q(&e.var),
                    n = q(&name),
                    v = q(&e.var),
                )),
            }
        }
        if existing.agents.contains(&agent) {
            continue;
        }
        out.push_str(&format!(
            "[agents.{}]\nbindings = [{}]\n\n",
            q(&agent),
            names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

/// Names a profile already defines (so [`profile_snippet`] does not repeat them).
#[derive(Debug, Default, Clone)]
pub struct Existing {
    pub agents: Vec<String>,
    pub bindings: Vec<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
