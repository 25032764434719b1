//! MCP-aware policy with the official Python `mcp` SDK on both sides: an MCP server
//! (streamable HTTP over TLS) that needs the real token, and a client running as the agent
//! under `broker run`. Allowed tool calls reach the server with the token; a call with a
//! repository the policy does not allow and a denied tool get JSON-RPC errors from the
//! broker, never reach the server, and every decision is audited. The same policy holds for
//! an MCP server on plain HTTP (no credential there, but the tool rules still apply).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::broker::setup;
use crate::pg_private::TestCa;
use crate::util::*;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PROFILE: &str = r#"
[[binding]]
name = "github-mcp"
secret = "secret/agents/mcp#GITHUB"
env = "GITHUB_TOKEN"
hosts = ["mcp.test"]
header = "authorization"
format = "Bearer {}"

[agents.coder]
bindings = ["github-mcp"]

[agents.coder.mcp]
hosts = ["mcp.test", "mcp-plain.test"]
default = "deny"
rules = [
  { tool = "create_issue", args = { repo = "acme/*" }, action = "allow" },
  { tool = "get_*", action = "allow" },
]
"#;

/// `mcp_server.py PORT ARGS…` logging its calls to `log`, once it listens.
fn mcp_server(
    args: &[&std::ffi::OsStr],
    token: Option<&str>,
    log: &std::path::Path,
) -> (Kill, u16) {
    let port = free_port();
    let mut c = Command::new("python3");
    c.arg(repo_root().join("tests/broker/mcp_server.py"))
        .arg(port.to_string())
        .args(args)
        .env("MCP_SERVER_LOG", log)
        .stdout(Stdio::null());
    if let Some(t) = token {
        c.env("MCP_SERVER_TOKEN", t);
    }
    let server = Kill(c.spawn().unwrap());
    wait_until("the MCP server", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (server, port)
}

/// `mcp_client.py` as the child of `broker run --agent coder` with `host` pinned to the
/// server's port; its output, once it passed.
fn mcp_client(s: &crate::broker::Setup, host: &str, port: u16, url: &str, sse: bool) -> String {
    let pin = format!("{host}=127.0.0.1:{port}");
    let client = repo_root().join("tests/broker/mcp_client.py");
    let out = s
        .broker_with(
            "tunnel",
            &["--agent", "coder", "--resolve", &pin],
            &["python3", client.to_str().unwrap()],
        )
        .env("MCP_URL", url)
        .env("MCP_TRANSPORT", if sse { "sse" } else { "streamable" })
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("mcp: 0 failed"),
        "{text}"
    );
    text
}

#[test]
fn mcp_tool_calls_are_allowed_or_denied_before_the_credential() {
    if !require(
        "python3 with mcp (2.x) and uvicorn (pip install mcp uvicorn)",
        python_has("mcp") && python_has("uvicorn") && python_has("httpx2"),
    ) {
        return;
    }
    let mut s = setup("broker-mcp");
    let token = "ghp_realTokenForTheMcpServer0123456789";
    let w = req(
        &s.server,
        "POST",
        "/v1/secret/data/agents/mcp",
        Some(json!({"data": {"GITHUB": token}})),
    );
    assert_eq!(w.status, 200);
    let ca = TestCa::new(&["mcp.test"]);
    let (cert, key) = (s.dir.join("mcp.pem"), s.dir.join("mcp-key.pem"));
    std::fs::write(&cert, &ca.cert_pem).unwrap();
    std::fs::write(&key, &ca.key_pem).unwrap();
    let both = s.dir.join("cas.pem");
    let up = std::fs::read_to_string(&s.ca).unwrap();
    std::fs::write(&both, format!("{up}\n{}", ca.ca_pem)).unwrap();
    s.ca = both;
    let log = s.dir.join("mcp-calls.log");
    let (_server, port) = mcp_server(&[cert.as_ref(), key.as_ref()], Some(token), &log);
    std::fs::write(&s.profile, PROFILE).unwrap();
    let text = mcp_client(&s, "mcp.test", port, "https://mcp.test/mcp", false);
    assert!(!text.contains(token), "the real token reached the agent");
    // Denied calls never reached the server.
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls, "create_issue acme/site\nget_me\nget_me\n", "{calls}");
    let audit = s.audit_text();
    let mcp: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"kind\":\"mcp\""))
        .collect();
    assert!(
        mcp.iter()
            .any(|l| l.contains("allow tool \\\"create_issue\\\"")),
        "{mcp:?}"
    );
    assert!(
        mcp.iter()
            .any(|l| l.contains("deny: tool call \\\"delete_repo\\\" denied by the default")),
        "{mcp:?}"
    );
    assert!(!audit.contains(token));

    // The same policy for an MCP server on plain HTTP.
    let plain_log = s.dir.join("mcp-plain-calls.log");
    let (_plain, plain_port) = mcp_server(&["plain".as_ref()], None, &plain_log);
    mcp_client(
        &s,
        "mcp-plain.test",
        plain_port,
        "http://mcp-plain.test/mcp",
        false,
    );
    let calls = std::fs::read_to_string(&plain_log).unwrap();
    assert_eq!(calls, "create_issue acme/site\nget_me\nget_me\n", "{calls}");
    assert!(
        s.audit_text()
            .lines()
            .any(|l| l.contains("\"kind\":\"mcp\"")
                && l.contains("mcp-plain.test")
                && l.contains("deny: tool call \\\"delete_repo\\\" denied by the default")),
        "no audited plain-HTTP MCP denial"
    );

    // The older HTTP+SSE transport: the denial arrives on the session's event stream.
    let sse_log = s.dir.join("mcp-sse-calls.log");
    let (_sse, sse_port) = mcp_server(
        &[cert.as_ref(), key.as_ref(), "sse".as_ref()],
        Some(token),
        &sse_log,
    );
    let text = mcp_client(&s, "mcp.test", sse_port, "https://mcp.test/sse", true);
    assert!(!text.contains(token), "the real token reached the agent");
    let calls = std::fs::read_to_string(&sse_log).unwrap();
    assert_eq!(calls, "create_issue acme/site\nget_me\nget_me\n", "{calls}");
    assert!(
        s.audit_text()
            .lines()
            .any(|l| l.contains("\"kind\":\"mcp\"")
                && l.contains("\"status\":202")
                && l.contains("deny: tool call \\\"delete_repo\\\" denied by the default")),
        "no denial answered on the event stream"
    );
}
