//! `airlock broker wrap-mcp`: rewrite an `mcp.json` so each local MCP server runs under
//! `airlock broker run` and the secrets in its `env` move into Airlock.
//!
//! Understands the `mcpServers` object (Cursor, Claude Desktop, Claude Code) and VS Code's
//! top-level `servers`. For every stdio server (one with a `command`):
//!
//! * env entries whose name [`is_secret_var`] and whose value is a literal (not empty, not an
//!   Airlock placeholder, not a `${VAR}` / `${env:VAR}` / `${input:id}` reference) are removed
//!   from `env` and returned in [`WrapOutcome::extracted`], to be stored at
//!   `<kv_mount>/<kv_prefix>/<server>` under the variable's name;
//! * the server becomes `airlock broker run [--profile P] --agent <server> -- <command> <args…>`
//!   (even with no secret in `env`, so that its traffic goes through the broker), where the
//!   agent name is the server's name with characters agent names cannot hold mapped to `_`;
//! * [`profile_snippet`] gives the profile lines binding the extracted variables.
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
            let secret: Vec<String> = env
                .iter()
                .filter(|(var, val)| {
                    is_secret_var(var) && val.as_str().is_some_and(|s| !is_not_literal(s))
                })
                .map(|(var, _)| var.clone())
                .collect();
            for var in secret {
                let Some(Value::String(value)) = env.remove(&var) else {
                    continue;
                };
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
    })
}

/// Profile lines binding what [`wrap`] extracted: one `[[binding]]` per variable and one
/// `[agents.<server>]` per server. Variables that a provider preset reads (`GITHUB_TOKEN`,
/// `OPENAI_API_KEY`, ...) get a complete binding; others get a commented template, since only
/// the user knows which host their key is for.
pub fn profile_snippet(extracted: &[Extracted]) -> String {
    let q = |s: &str| Value::from(s).to_string();
    let mut out = String::new();
    let mut servers: Vec<&str> = extracted.iter().map(|e| e.server.as_str()).collect();
    servers.dedup();
    for server in servers {
        let mut names = Vec::new();
        let agent = agent_name(server);
        for e in extracted.iter().filter(|e| e.server == server) {
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
                    names.push(name);
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
        out.push_str(&format!(
            "[agents.{}]\nbindings = [{}]\n\n",
            q(&agent),
            names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> WrapOptions {
        WrapOptions {
            profile: Some("/home/u/airlock.toml".into()),
            ..WrapOptions::default()
        }
    }

    fn claude() -> Value {
        json!({
            "mcpServers": {
                "github": {
                    "command": "npx",
                    "args": ["-y", "@modelcontextprotocol/server-github"],
                    "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_xxx", "LOG_LEVEL": "debug"}
                },
                "remote": {"url": "https://mcp.example.com/sse"},
                "time": {"command": "uvx", "args": ["mcp-server-time"], "disabled": false},
            },
            "globalShortcut": "Ctrl+Space"
        })
    }

    fn err(doc: Value) -> String {
        wrap(&doc, &opts()).err().unwrap()
    }

    #[test]
    fn wraps_claude_format() {
        let out = wrap(&claude(), &opts()).unwrap();
        let gh = &out.doc["mcpServers"]["github"];
        assert_eq!(gh["command"], "airlock");
        assert_eq!(
            gh["args"],
            json!([
                "broker",
                "run",
                "--profile",
                "/home/u/airlock.toml",
                "--agent",
                "github",
                "--",
                "npx",
                "-y",
                "@modelcontextprotocol/server-github"
            ])
        );
        assert_eq!(gh["env"], json!({"LOG_LEVEL": "debug"}));
        assert_eq!(out.extracted.len(), 1);
        let e = &out.extracted[0];
        assert_eq!(
            (
                e.server.as_str(),
                e.var.as_str(),
                e.path.as_str(),
                e.key.as_str(),
                e.value.as_str()
            ),
            (
                "github",
                "GITHUB_PERSONAL_ACCESS_TOKEN",
                "secret/mcp/github",
                "GITHUB_PERSONAL_ACCESS_TOKEN",
                "ghp_xxx"
            )
        );
        assert_eq!(out.wrapped, vec!["github", "time"]);
        assert_eq!(
            out.skipped,
            vec![("remote".to_string(), REMOTE.to_string())]
        );
        // Everything else is untouched.
        assert_eq!(out.doc["globalShortcut"], "Ctrl+Space");
        assert_eq!(
            out.doc["mcpServers"]["remote"],
            json!({"url": "https://mcp.example.com/sse"})
        );
        let time = &out.doc["mcpServers"]["time"];
        assert_eq!(time["disabled"], false);
        assert!(time.get("env").is_none());
        assert_eq!(
            time["args"],
            json!([
                "broker",
                "run",
                "--profile",
                "/home/u/airlock.toml",
                "--agent",
                "time",
                "--",
                "uvx",
                "mcp-server-time"
            ])
        );
        // The input is not modified and the secret is gone from the output.
        assert_eq!(claude()["mcpServers"]["github"]["command"], "npx");
        assert!(!out.doc.to_string().contains("ghp_xxx"));
    }

    #[test]
    fn without_profile_and_with_custom_options() {
        let o = WrapOptions {
            airlock_bin: "/usr/local/bin/airlock".into(),
            profile: None,
            kv_mount: "/kv/".into(),
            kv_prefix: "agents/mcp/".into(),
        };
        let out = wrap(&claude(), &o).unwrap();
        let gh = &out.doc["mcpServers"]["github"];
        assert_eq!(gh["command"], "/usr/local/bin/airlock");
        assert_eq!(gh["args"][2], "--agent");
        assert_eq!(out.extracted[0].path, "kv/agents/mcp/github");
        let o = WrapOptions {
            kv_prefix: String::new(),
            ..WrapOptions::default()
        };
        let out = wrap(&claude(), &o).unwrap();
        assert_eq!(out.extracted[0].path, "secret/github");
    }

    #[test]
    fn vscode_format() {
        let doc = json!({
            "inputs": [{"type": "promptString", "id": "pat", "password": true}],
            "servers": {
                "gh": {"type": "stdio", "command": "docker",
                       "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"],
                       "env": {"GITHUB_TOKEN": "${input:pat}", "API_KEY": "k-123"}},
                "web": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"},
                "sse": {"type": "sse", "headers": {"Authorization": "Bearer x"}}
            }
        });
        let out = wrap(&doc, &opts()).unwrap();
        let gh = &out.doc["servers"]["gh"];
        assert_eq!(gh["type"], "stdio");
        assert_eq!(gh["command"], "airlock");
        assert_eq!(gh["args"][7], "docker");
        assert_eq!(gh["env"], json!({"GITHUB_TOKEN": "${input:pat}"}));
        assert_eq!(out.extracted.len(), 1);
        assert_eq!(out.extracted[0].var, "API_KEY");
        assert_eq!(out.extracted[0].path, "secret/mcp/gh");
        assert_eq!(out.doc["inputs"], doc["inputs"]);
        assert_eq!(out.doc["servers"]["web"], doc["servers"]["web"]);
        assert_eq!(out.doc["servers"]["sse"], doc["servers"]["sse"]);
        assert_eq!(out.wrapped, vec!["gh"]);
        let mut skipped: Vec<&str> = out.skipped.iter().map(|(s, _)| s.as_str()).collect();
        skipped.sort_unstable();
        assert_eq!(skipped, vec!["sse", "web"]);
        assert!(out.doc.get("mcpServers").is_none());
    }

    #[test]
    fn idempotent() {
        for o in [opts(), WrapOptions::default()] {
            let once = wrap(&claude(), &o).unwrap();
            let twice = wrap(&once.doc, &o).unwrap();
            assert_eq!(once.doc, twice.doc);
            assert!(twice.extracted.is_empty());
            assert!(twice.wrapped.is_empty());
            let reasons: Vec<(&str, &str)> = twice
                .skipped
                .iter()
                .map(|(s, r)| (s.as_str(), r.as_str()))
                .collect();
            assert_eq!(
                reasons,
                vec![
                    ("github", ALREADY_WRAPPED),
                    ("remote", REMOTE),
                    ("time", ALREADY_WRAPPED)
                ]
            );
        }
    }

    #[test]
    fn recognises_airlock_by_path() {
        for cmd in [
            "airlock",
            "/opt/bin/airlock",
            "C:\\tools\\airlock.exe",
            "./airlock",
        ] {
            let doc = json!({"mcpServers": {"s": {"command": cmd,
                "args": ["broker", "run", "--agent", "s", "--", "x"], "env": {"API_KEY": "k"}}}});
            let out = wrap(&doc, &opts()).unwrap();
            assert_eq!(out.doc, doc, "{cmd}");
            assert!(out.extracted.is_empty() && out.wrapped.is_empty(), "{cmd}");
        }
        // `airlock` running something else is an ordinary server.
        let doc = json!({"mcpServers": {"s": {"command": "airlock", "args": ["mcp"]}}});
        assert_eq!(wrap(&doc, &opts()).unwrap().wrapped, vec!["s"]);
        // So is a binary that merely ends in "airlock".
        let doc = json!({"mcpServers": {"s": {"command": "/bin/notairlock",
            "args": ["broker", "run"]}}});
        assert_eq!(wrap(&doc, &opts()).unwrap().wrapped, vec!["s"]);
    }

    #[test]
    fn keeps_non_secrets_and_references() {
        let doc = json!({"mcpServers": {"s": {"command": "node", "args": ["server.js"], "env": {
            "PATH": "/usr/bin",
            "MONKEY": "banana",
            "KEYBOARD_LAYOUT": "us",
            "LOG_LEVEL": "debug",
            "API_KEY": "${env:API_KEY}",
            "OTHER_TOKEN": "${OTHER_TOKEN}",
            "WITH_DEFAULT_TOKEN": "${X:-y}",
            "BEARER_AUTH": "Bearer ${env:T}",
            "EMPTY_SECRET": "",
            "PLACEHOLDER_KEY": "airlock-ph-openai-AAAAAAAAAAAAAAAAAAAAAAAA",
            "AUTH_ENABLED": "true",
            "DB_PASSWORD": "hunter2",
            "SENTRY_DSN": "https://abc@o1.ingest.sentry.io/2"
        }}}});
        let out = wrap(&doc, &opts()).unwrap();
        let mut expected_env = doc["mcpServers"]["s"]["env"].clone();
        let m = expected_env.as_object_mut().unwrap();
        m.remove("DB_PASSWORD");
        m.remove("SENTRY_DSN");
        assert_eq!(out.doc["mcpServers"]["s"]["env"], expected_env);
        let vars: Vec<(&str, &str)> = out
            .extracted
            .iter()
            .map(|e| (e.var.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            vars,
            vec![
                ("DB_PASSWORD", "hunter2"),
                ("SENTRY_DSN", "https://abc@o1.ingest.sentry.io/2")
            ]
        );
    }

    #[test]
    fn emptied_env_is_kept_as_empty_object() {
        let doc = json!({"mcpServers": {"s": {"command": "x", "env": {"TOKEN": "t"}}}});
        let out = wrap(&doc, &opts()).unwrap();
        assert_eq!(out.doc["mcpServers"]["s"]["env"], json!({}));
        assert_eq!(
            out.doc["mcpServers"]["s"]["args"],
            json!([
                "broker",
                "run",
                "--profile",
                "/home/u/airlock.toml",
                "--agent",
                "s",
                "--",
                "x"
            ])
        );
        // A null env is left as it was.
        let doc = json!({"mcpServers": {"s": {"command": "x", "env": null, "args": null}}});
        let out = wrap(&doc, &opts()).unwrap();
        assert_eq!(out.doc["mcpServers"]["s"]["env"], Value::Null);
    }

    #[test]
    fn remote_servers_are_skipped() {
        let doc = json!({"mcpServers": {
            "a": {"url": "https://x.example/mcp", "headers": {"Authorization": "Bearer s"}},
            "b": {"type": "streamable-http", "url": "https://y.example/mcp"},
            "c": {"url": "https://z.example/sse", "command": "ignored"}
        }});
        let out = wrap(&doc, &opts()).unwrap();
        assert_eq!(out.doc, doc);
        assert!(out.wrapped.is_empty() && out.extracted.is_empty());
        assert_eq!(out.skipped.len(), 3);
        assert!(out.skipped.iter().all(|(_, r)| r == REMOTE));
    }

    #[test]
    fn servers_without_command_are_skipped() {
        let doc = json!({"mcpServers": {"a": {"disabled": true}}, "servers": {"z": {}}});
        let out = wrap(&doc, &opts()).unwrap();
        assert_eq!(out.doc, doc);
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(out.skipped[0].0, "a");
    }

    #[test]
    fn empty_server_list_is_fine() {
        let doc = json!({"mcpServers": {}});
        let out = wrap(&doc, &opts()).unwrap();
        assert_eq!(out.doc, doc);
        assert!(out.wrapped.is_empty() && out.skipped.is_empty() && out.extracted.is_empty());
    }

    #[test]
    fn errors() {
        assert!(err(json!([])).contains("JSON object"));
        assert!(err(json!("x")).contains("JSON object"));
        assert!(err(json!({"x": 1})).contains("\"mcpServers\""));
        assert!(err(json!({"mcpServers": []})).contains("\"mcpServers\" must be an object"));
        assert!(err(json!({"servers": "x"})).contains("\"servers\" must be an object"));
        assert!(err(json!({"mcpServers": {"a": 1}})).contains("server \"a\" must be an object"));
        for cmd in [json!(1), json!(""), json!(["npx"])] {
            let e = err(json!({"mcpServers": {"a": {"command": cmd}}}));
            assert!(e.contains("\"command\""), "{e}");
        }
        for args in [json!("-y x"), json!([1]), json!(["a", null]), json!({})] {
            let e = err(json!({"mcpServers": {"a": {"command": "x", "args": args}}}));
            assert!(e.contains("\"args\" must be a list of strings"), "{e}");
        }
        for env in [
            json!({"K": 1}),
            json!({"K": null}),
            json!(["K=v"]),
            json!("K=v"),
        ] {
            let e = err(json!({"mcpServers": {"a": {"command": "x", "env": env}}}));
            assert!(e.contains("\"env\" must be an object of strings"), "{e}");
        }
        // Already-wrapped servers are still checked.
        let e = err(json!({"mcpServers": {"a": {"command": "airlock",
            "args": ["broker", "run"], "env": {"K": 1}}}}));
        assert!(e.contains("env"), "{e}");
    }

    #[test]
    fn weird_names() {
        let doc = json!({"mcpServers": {
            "weird name/x": {"command": "node", "env": {"API_KEY": "k1"}},
            "..": {"command": "node", "env": {"API_KEY": "k2"}},
            "": {"command": "node", "env": {"API_KEY": "k3"}},
            "ünï.cøde-1_2": {"command": "node", "env": {"API_KEY": "k4"}}
        }});
        let out = wrap(&doc, &opts()).unwrap();
        let mut paths: Vec<(&str, &str)> = out
            .extracted
            .iter()
            .map(|e| (e.server.as_str(), e.path.as_str()))
            .collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            vec![
                ("", "secret/mcp/_"),
                ("..", "secret/mcp/__"),
                ("weird name/x", "secret/mcp/weird_name_x"),
                ("ünï.cøde-1_2", "secret/mcp/_n_.c_de-1_2"),
            ]
        );
        // The JSON key keeps the original name; `--agent` gets a valid agent name.
        let w = &out.doc["mcpServers"]["weird name/x"];
        assert_eq!(w["args"][4], "--agent");
        assert_eq!(w["args"][5], "weird_name_x");
        assert_eq!(out.doc["mcpServers"][".."]["args"][5], "__");
    }

    #[test]
    fn colliding_paths_are_refused() {
        let doc = json!({"mcpServers": {
            "a b": {"command": "x", "env": {"API_KEY": "k1"}},
            "a/b": {"command": "x", "env": {"API_KEY": "k2"}}
        }});
        let e = err(doc);
        assert!(e.contains("secret/mcp/a_b") && e.contains("API_KEY"), "{e}");
        // Different variables, but the two servers would run as one agent.
        let doc = json!({"mcpServers": {
            "a b": {"command": "x", "env": {"API_KEY": "k1"}},
            "a/b": {"command": "x", "env": {"OTHER_TOKEN": "k2"}}
        }});
        let e = err(doc);
        assert!(e.contains("agent \"a_b\""), "{e}");
    }

    #[test]
    fn debug_hides_values() {
        let out = wrap(&claude(), &opts()).unwrap();
        let dbg = format!("{out:?}");
        assert!(dbg.contains("GITHUB_PERSONAL_ACCESS_TOKEN"));
        assert!(!dbg.contains("ghp_xxx"));
    }

    #[test]
    fn secret_names() {
        for n in [
            "API_KEY",
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "GITHUB_PERSONAL_ACCESS_TOKEN",
            "DB_PASSWORD",
            "MYSQL_PASSWD",
            "CLIENT_SECRET",
            "SENTRY_DSN",
            "GITLAB_PAT",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "AWS_CREDENTIAL",
            "BASIC_AUTH",
            "OPENAI_APIKEY",
            "apikey",
            "token",
            "Slack_Bot_Token",
            "KEY",
        ] {
            assert!(is_secret_var(n), "{n}");
        }
        for n in [
            "PATH",
            "MONKEY",
            "KEYBOARD_LAYOUT",
            "LOG_LEVEL",
            "TOKENIZERS_PARALLELISM",
            "AUTHOR",
            "PATTERN",
            "SECRETARY",
            "HOME",
            "",
            "_",
            "X\n[[binding]]\n#_TOKEN",
            "MY TOKEN",
            "1_TOKEN",
        ] {
            assert!(!is_secret_var(n), "{n}");
        }
    }

    #[test]
    fn profile_snippet_parses_and_binds_known_variables() {
        let ex = |server: &str, var: &str| Extracted {
            server: server.into(),
            var: var.into(),
            path: format!("secret/mcp/{}", agent_name(server)),
            key: var.into(),
            value: "v".into(),
        };
        let list = vec![
            ex("github", "GITHUB_TOKEN"),
            ex("my tools", "OPENAI_API_KEY"),
            ex("my tools", "INTERNAL_TOKEN"),
            ex("gh", "GITHUB_PERSONAL_ACCESS_TOKEN"),
        ];
        let text = profile_snippet(&list);
        let p = crate::config::parse_profile(&text, "snippet").unwrap();
        let names: Vec<&str> = p.bindings.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "github-github_token",
                "my_tools-openai_api_key",
                "gh-github_personal_access_token"
            ]
        );
        assert_eq!(p.bindings[2].env, "GITHUB_PERSONAL_ACCESS_TOKEN");
        assert!(p.bindings[2].dest.hosts[0].matches("api.github.com"));
        assert_eq!(p.bindings[1].secret_path, "secret/mcp/my_tools");
        let agents: Vec<&str> = p.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(agents, ["gh", "github", "my_tools"]);
        assert_eq!(p.agents.len(), 3);
        assert!(
            text.contains("# \"INTERNAL_TOKEN\": no provider preset"),
            "{text}"
        );
        assert!(
            !text.contains("= \"v\""),
            "a secret value in the snippet: {text}"
        );
    }
}
