//! Tests of the `mcp.json` transform and the profile lines it suggests.

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
    let wrapped: Vec<String> = ["github", "my tools", "gh", "plain"]
        .map(String::from)
        .to_vec();
    let text = profile_snippet(&list, &wrapped, &Existing::default());
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
    // Every wrapped server has an agent, also one from which nothing was moved.
    assert_eq!(agents, ["gh", "github", "my_tools", "plain"]);
    assert!(p.agents[3].bindings.is_empty());
    assert!(
        text.contains("# \"INTERNAL_TOKEN\": no provider preset"),
        "{text}"
    );
    assert!(
        !text.contains("= \"v\""),
        "a secret value in the snippet: {text}"
    );
}

#[test]
fn profile_snippet_leaves_out_what_the_profile_has() {
    let e = Extracted {
        server: "github".into(),
        var: "GITHUB_TOKEN".into(),
        path: "secret/mcp/github".into(),
        key: "GITHUB_TOKEN".into(),
        value: "v".into(),
    };
    let wrapped = vec!["github".to_string(), "other".to_string()];
    let existing = Existing {
        agents: vec!["other".into()],
        bindings: vec!["github-github_token".into()],
    };
    let text = profile_snippet(std::slice::from_ref(&e), &wrapped, &existing);
    assert!(!text.contains("[[binding]]"), "{text}");
    assert!(!text.contains("[agents.\"other\"]"), "{text}");
    assert!(
        text.contains("[agents.\"github\"]\nbindings = [\"github-github_token\"]"),
        "{text}"
    );
}

#[test]
fn env_references_are_resolved_and_moved_or_reported() {
    let doc = json!({"mcpServers": {
        "gh": {"command": "npx", "env": {
            "GITHUB_TOKEN": "${env:GITHUB_TOKEN}",
            "OPENAI_API_KEY": "${OPENAI_KEY_FROM_SHELL}",
            "MISSING_TOKEN": "${env:NOT_SET}",
            "PROMPTED_TOKEN": "${input:pat}",
            "DEFAULTED_TOKEN": "${X:-y}",
            "MIXED_AUTH": "Bearer ${env:T}",
            "LOG_LEVEL": "${env:LOG_LEVEL}"
        }}
    }});
    let env = |n: &str| match n {
        "GITHUB_TOKEN" => Some("ghp_from_env".to_string()),
        "OPENAI_KEY_FROM_SHELL" => Some("sk-from-env".to_string()),
        "T" | "X" | "LOG_LEVEL" | "pat" => Some("set".to_string()),
        _ => None,
    };
    let out = wrap_with_env(&doc, &opts(), &env).unwrap();
    let moved: Vec<(&str, &str)> = out
        .extracted
        .iter()
        .map(|e| (e.var.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        moved,
        [
            ("GITHUB_TOKEN", "ghp_from_env"),
            ("OPENAI_API_KEY", "sk-from-env")
        ]
    );
    assert_eq!(
        out.doc["mcpServers"]["gh"]["env"],
        json!({
            "MISSING_TOKEN": "${env:NOT_SET}",
            "PROMPTED_TOKEN": "${input:pat}",
            "DEFAULTED_TOKEN": "${X:-y}",
            "MIXED_AUTH": "Bearer ${env:T}",
            "LOG_LEVEL": "${env:LOG_LEVEL}"
        })
    );
    assert_eq!(
        out.unresolved,
        [(
            "gh".to_string(),
            "MISSING_TOKEN".to_string(),
            "${env:NOT_SET}".to_string()
        )]
    );
    // Without an environment, references stay (wrap's behaviour).
    assert!(wrap(&doc, &opts()).unwrap().extracted.is_empty());
}
