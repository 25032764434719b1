//! MCP-aware policy: for MCP servers an agent reaches over HTTP (streamable HTTP or the
//! older HTTP+SSE transport: JSON-RPC messages POSTed to the server), allow or deny each
//! `tools/call` by tool name and argument patterns, before any credential is injected.
//!
//! ```toml
//! [agents.coder.mcp]
//! hosts = ["mcp.github.example"]   # the destinations that speak MCP
//! default = "deny"                  # what a call no rule matches gets (default: deny)
//! rules = [
//!   { tool = "create_issue", args = { repo = "acme/site" }, action = "allow" },
//!   { tool = "get_*", action = "allow" },
//! ]
//! ```
//!
//! Rules are tried in order; the first whose `tool` pattern matches and whose every `args`
//! pattern matches the call's argument of that name (strings as they are, other values as
//! JSON) decides. Patterns are exact text with `*` matching any run of characters. Messages
//! that are not tool calls (`initialize`, `tools/list`, notifications) pass. A batch with a
//! denied call is answered, whole, with a JSON-RPC error for it; nothing reaches the server
//! (on the HTTP+SSE transport the error goes on the session's event stream: `proxy/mcp_sse.rs`).
//! A body that is not JSON-RPC passes (the server will refuse it). Pure.

use airlock_core::binding::HostPattern;
use serde_json::{json, Map, Value};

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub tool: String,
    pub args: Vec<(String, String)>,
    pub allow: bool,
}

/// An agent's MCP policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpPolicy {
    pub hosts: Vec<HostPattern>,
    pub default_allow: bool,
    pub rules: Vec<Rule>,
}

fn action(v: Option<&Value>, what: &str) -> Result<bool, String> {
    match v.and_then(Value::as_str) {
        Some("allow") => Ok(true),
        Some("deny") => Ok(false),
        _ => Err(format!("{what} must be \"allow\" or \"deny\"")),
    }
}

/// Parses an agent's `mcp` table.
pub fn parse(v: &Value) -> Result<McpPolicy, String> {
    let o: &Map<String, Value> = v.as_object().ok_or("`mcp` must be a table")?;
    for k in o.keys() {
        if !["hosts", "default", "rules"].contains(&k.as_str()) {
            return Err(format!(
                "unknown mcp field `{k}` (known: hosts, default, rules)"
            ));
        }
    }
    let hosts = o
        .get("hosts")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("mcp.hosts must list the MCP servers' hosts")?
        .iter()
        .map(|h| {
            h.as_str()
                .ok_or_else(|| "mcp.hosts must be strings".to_string())
                .and_then(HostPattern::parse)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let default_allow = match o.get("default") {
        None => false,
        d => action(d, "mcp.default")?,
    };
    let mut rules = Vec::new();
    for (i, r) in o
        .get("rules")
        .map(|r| {
            r.as_array()
                .cloned()
                .ok_or("mcp.rules must be a list of tables")
        })
        .transpose()?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let r = r
            .as_object()
            .ok_or_else(|| format!("mcp.rules[{i}] must be a table"))?;
        for k in r.keys() {
            if !["tool", "args", "action"].contains(&k.as_str()) {
                return Err(format!(
                    "mcp.rules[{i}]: unknown field `{k}` (known: tool, args, action)"
                ));
            }
        }
        let tool = r
            .get("tool")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("mcp.rules[{i}].tool is required"))?
            .to_string();
        let mut args = Vec::new();
        if let Some(a) = r.get("args") {
            for (k, p) in a
                .as_object()
                .ok_or_else(|| format!("mcp.rules[{i}].args must be a table"))?
            {
                let p = p
                    .as_str()
                    .ok_or_else(|| format!("mcp.rules[{i}].args.{k} must be a string pattern"))?;
                args.push((k.clone(), p.to_string()));
            }
        }
        rules.push(Rule {
            tool,
            args,
            allow: action(r.get("action"), &format!("mcp.rules[{i}].action"))?,
        });
    }
    Ok(McpPolicy {
        hosts,
        default_allow,
        rules,
    })
}

/// `*`-glob matching (any run of characters, including none).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The decision on one request body.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// No tool call in it.
    NoCall,
    /// Every tool call allowed: `allow <tool>` for each.
    Allow(Vec<String>),
    /// A call denied: the JSON-RPC id to answer and why.
    Deny {
        id: Value,
        tool: String,
        reason: String,
    },
}

impl McpPolicy {
    pub fn applies_to(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.matches(host))
    }

    /// Whether a call is allowed, and by which rule.
    fn decide(&self, tool: &str, args: &Map<String, Value>) -> (bool, String) {
        for (i, r) in self.rules.iter().enumerate() {
            if !glob(&r.tool, tool) {
                continue;
            }
            let matches = r.args.iter().all(|(k, p)| match args.get(k) {
                Some(Value::String(s)) => glob(p, s),
                Some(v) => glob(p, &v.to_string()),
                None => false,
            });
            if matches {
                return (r.allow, format!("rule {}", i + 1));
            }
        }
        (self.default_allow, "the default".into())
    }

    /// Judges a request body (one JSON-RPC message or a batch).
    pub fn judge(&self, body: &[u8]) -> Decision {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return Decision::NoCall;
        };
        let msgs: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        let mut notes = Vec::new();
        for m in msgs {
            if m.get("method").and_then(Value::as_str) != Some("tools/call") {
                continue;
            }
            let params = m.get("params").and_then(Value::as_object);
            let tool = params
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let empty = Map::new();
            let args = params
                .and_then(|p| p.get("arguments"))
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            let (allow, by) = self.decide(&tool, args);
            if !allow {
                return Decision::Deny {
                    id: m.get("id").cloned().unwrap_or(Value::Null),
                    reason: format!("tool call {tool:?} denied by {by} of the agent's MCP policy"),
                    tool,
                };
            }
            notes.push(format!("allow tool {tool:?} ({by})"));
        }
        if notes.is_empty() {
            Decision::NoCall
        } else {
            Decision::Allow(notes)
        }
    }
}

/// The JSON-RPC error answering a denied call.
pub fn jsonrpc_error(id: &Value, reason: &str) -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": -32001, "message": format!("airlock broker: {reason}")},
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> McpPolicy {
        parse(&json!({
            "hosts": ["mcp.github.test"],
            "rules": [
                {"tool": "create_issue", "args": {"repo": "acme/site"}, "action": "allow"},
                {"tool": "get_*", "action": "allow"},
                {"tool": "delete_*", "action": "deny"},
            ]
        }))
        .unwrap()
    }

    fn call(tool: &str, args: Value) -> Vec<u8> {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn tool_calls_are_judged_by_name_and_arguments() {
        let p = policy();
        assert!(p.applies_to("mcp.github.test") && !p.applies_to("api.github.test"));
        assert!(matches!(
            p.judge(&call(
                "create_issue",
                json!({"repo": "acme/site", "title": "x"})
            )),
            Decision::Allow(_)
        ));
        let d = p.judge(&call("create_issue", json!({"repo": "evil/repo"})));
        assert!(
            matches!(&d, Decision::Deny { id, tool, .. } if *id == json!(7) && tool == "create_issue"),
            "{d:?}"
        );
        assert!(matches!(
            p.judge(&call("create_issue", json!({}))),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            p.judge(&call("get_me", json!({}))),
            Decision::Allow(_)
        ));
        assert!(matches!(
            p.judge(&call("delete_repo", json!({"repo": "acme/site"}))),
            Decision::Deny { .. }
        ));
        assert!(
            matches!(p.judge(&call("unknown", json!({}))), Decision::Deny { .. }),
            "default deny"
        );
        // Not tool calls, not JSON: pass.
        assert_eq!(
            p.judge(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Decision::NoCall
        );
        assert_eq!(p.judge(b"not json"), Decision::NoCall);
        // A batch with one denied call is denied.
        let batch = format!(
            "[{},{}]",
            String::from_utf8(call("get_me", json!({}))).unwrap(),
            String::from_utf8(call("delete_repo", json!({}))).unwrap()
        );
        assert!(matches!(p.judge(batch.as_bytes()), Decision::Deny { .. }));
        let e: Value = serde_json::from_slice(&jsonrpc_error(&json!(7), "no")).unwrap();
        assert_eq!(e["error"]["code"], -32001);
    }

    #[test]
    fn globs_and_bad_policies() {
        assert!(
            glob("a*c", "abc") && glob("a*c", "ac") && glob("*", "") && glob("acme/*", "acme/x")
        );
        assert!(!glob("a*c", "abd") && !glob("acme/*", "acme") && !glob("x", "xx"));
        assert!(glob("*-*-*", "a-b-c") && !glob("*-*-*", "a-b"));
        for bad in [
            json!({"rules": []}),
            json!({"hosts": ["a.test"], "default": "maybe"}),
            json!({"hosts": ["a.test"], "rules": [{"tool": "x"}]}),
            json!({"hosts": ["a.test"], "rules": [{"tool": "x", "action": "allow", "args": {"a": 1}}]}),
            json!({"hosts": ["a.test"], "nope": 1}),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
