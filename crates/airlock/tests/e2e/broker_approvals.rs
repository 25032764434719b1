//! Approvals: a binding whose requests wait for a human. With `broker run`: approved, denied
//! (with a reason), timed out, and a replay of an approved request (or the same request with
//! another body) needing a new decision, all decided with the real CLI. With `broker serve`:
//! a request pending while the broker restarts keeps its approval (the retried request has
//! the same digest), and is let through once approved. Two replicas at once: requests waiting
//! on each are decided separately, and a window approved through one replica covers the other.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::broker::{setup, Setup};
use crate::util::*;

fn pending(s: &Setup) -> Vec<Value> {
    let l = req(&s.server, "LIST", "/v1/sys/broker/approvals", None);
    let ids: Vec<String> =
        serde_json::from_value(l.body["data"]["keys"].clone()).unwrap_or_default();
    ids.iter()
        .map(|id| {
            req(
                &s.server,
                "GET",
                &format!("/v1/sys/broker/approvals/{id}"),
                None,
            )
            .body["data"]
                .clone()
        })
        .filter(|a| a["status"] == "pending")
        .collect()
}

fn cli_decide(s: &Setup, action: &str, id: &str, reason: Option<&str>) {
    let mut args = vec!["broker", "approvals", action, id];
    if let Some(r) = reason {
        args.extend(["--reason", r]);
    }
    let (code, out, err) = cli(&s.server, &args, None);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn approvals_hold_requests_until_a_human_decides() {
    if !require("python3 with requests", python_has("requests")) {
        return;
    }
    let s = setup("broker-approvals");
    let mut profile = std::fs::read_to_string(&s.profile).unwrap();
    profile = profile.replacen(
        "paths = [\"/v1/\"]",
        "paths = [\"/v1/\"]\napproval = { mode = \"request\", timeout = 4 }",
        1,
    );
    std::fs::write(&s.profile, profile).unwrap();
    let script = repo_root().join("tests/broker/approvals.py");
    let mut child = s
        .broker("tunnel", &["python3", script.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The human: approve the first request, deny the second, leave the rest.
    let mut seen: Vec<String> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        for a in pending(&s) {
            let id = a["id"].as_str().unwrap().to_string();
            if seen.contains(&id) {
                continue;
            }
            match seen.len() {
                0 => cli_decide(&s, "approve", &id, None),
                1 => cli_decide(&s, "deny", &id, Some("not this one")),
                _ => {}
            }
            seen.push(id);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}");
    assert!(
        out.status.success() && text.contains("approvals: 0 failed"),
        "{text}"
    );
    assert_eq!(seen.len(), 4, "{seen:?}");
    // The first approval was used by its request and cannot let another through.
    let first = req(
        &s.server,
        "GET",
        &format!("/v1/sys/broker/approvals/{}", seen[0]),
        None,
    );
    assert_eq!(first.body["data"]["status"], "used", "{}", first.body);
    assert_eq!(first.body["data"]["decided_by"], "root");
    let again = req(
        &s.server,
        "POST",
        &format!("/v1/sys/broker/approvals/{}/approve", seen[0]),
        Some(json!({})),
    );
    assert_eq!(again.status, 400);
    // Different bodies, different digests.
    let d = |i: usize| {
        req(
            &s.server,
            "GET",
            &format!("/v1/sys/broker/approvals/{}", seen[i]),
            None,
        )
        .body["data"]["digest"]
            .clone()
    };
    assert_ne!(d(0), d(1));
    assert_eq!(
        d(0),
        d(3),
        "a replay has the digest of the request it replays"
    );
    // The decision is in the audit log, and the forwarded request names its approval.
    let audit = s.audit_text();
    assert!(audit.contains(&format!("sys/broker/approvals/{}/approve", seen[0])));
    assert!(
        audit.contains(&format!("approved {} by root", seen[0])),
        "no approval on the inject event"
    );
}

#[test]
fn a_pending_approval_survives_a_broker_restart() {
    if !require("python3 with requests", python_has("requests")) {
        return;
    }
    let s = setup("broker-approvals-serve");
    for (path, body) in [
        (
            "/v1/sys/broker/bindings/openai",
            json!({"provider": "openai", "secret": "secret/agents/test#OPENAI", "approval": {"mode": "request", "timeout": 60}}),
        ),
        (
            "/v1/sys/broker/agents/careful",
            json!({"bindings": ["openai"]}),
        ),
    ] {
        let r = req(&s.server, "POST", path, Some(body));
        assert!(r.status < 300, "{path}: {}", r.body);
    }
    let port = free_port();
    let broker = s.serve(port, &[]);
    let (env_file, _) = s.agent_env("careful", port);
    let first = once(&env_file, 7);
    wait_until("a pending approval", Duration::from_secs(20), || {
        pending(&s).len() == 1
    });
    let id = pending(&s)[0]["id"].as_str().unwrap().to_string();
    // The broker goes away while the request waits; the client sees its connection drop.
    drop(broker);
    assert_eq!(status_of(first), "error");
    // A new broker, the same request: it waits on the same approval.
    let _broker = s.serve(port, &[]);
    let second = once(&env_file, 7);
    std::thread::sleep(Duration::from_secs(1));
    let p = pending(&s);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["id"], id.as_str());
    cli_decide(&s, "approve", &id, Some("looked at it"));
    assert_eq!(status_of(second), "200");
}

/// One POST through a `broker serve` (`approvals.py once`), running in the background.
fn once(env_file: &std::path::Path, n: u32) -> std::process::Child {
    Command::new("python3")
        .arg(repo_root().join("tests/broker/approvals.py"))
        .arg("once")
        .arg(env_file)
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn status_of(c: std::process::Child) -> String {
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn replicas_running_at_once_share_approvals() {
    if !require("python3 with requests", python_has("requests")) {
        return;
    }
    let s = setup("broker-approvals-replicas");
    for (path, body) in [
        (
            "/v1/sys/broker/bindings/openai-each",
            json!({"provider": "openai", "secret": "secret/agents/test#OPENAI", "approval": {"mode": "request", "timeout": 60}}),
        ),
        (
            "/v1/sys/broker/bindings/openai-window",
            json!({"provider": "openai", "secret": "secret/agents/test#OPENAI", "approval": {"mode": "window", "window": 300, "timeout": 60}}),
        ),
        (
            "/v1/sys/broker/agents/each",
            json!({"bindings": ["openai-each"]}),
        ),
        (
            "/v1/sys/broker/agents/windowed",
            json!({"bindings": ["openai-window"]}),
        ),
    ] {
        let r = req(&s.server, "POST", path, Some(body));
        assert!(r.status < 300, "{path}: {}", r.body);
    }
    let (pa, pb) = (free_port(), free_port());
    let _a = s.serve(pa, &[]);
    let _b = s.serve(pb, &[]);

    // Per request: one request waiting on each replica, each decided on its own.
    let (each_a, _) = s.agent_env("each", pa);
    let (each_b, _) = s.agent_env("each", pb);
    let on_a = once(&each_a, 1);
    wait_until("A's request pending", Duration::from_secs(20), || {
        pending(&s).len() == 1
    });
    let id_a = pending(&s)[0]["id"].as_str().unwrap().to_string();
    let on_b = once(&each_b, 2);
    wait_until("B's request pending", Duration::from_secs(20), || {
        pending(&s).len() == 2
    });
    let id_b = pending(&s)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .find(|id| *id != id_a)
        .unwrap();
    cli_decide(&s, "deny", &id_a, Some("not this one"));
    cli_decide(&s, "approve", &id_b, None);
    assert_eq!(status_of(on_a), "403", "denied on A");
    assert_eq!(status_of(on_b), "200", "approved on B");

    // A window approved for a request on A lets B's requests through without asking.
    let (win_a, _) = s.agent_env("windowed", pa);
    let (win_b, _) = s.agent_env("windowed", pb);
    let first = once(&win_a, 3);
    wait_until(
        "the window's approval pending",
        Duration::from_secs(20),
        || pending(&s).len() == 1,
    );
    let id = pending(&s)[0]["id"].as_str().unwrap().to_string();
    cli_decide(&s, "approve", &id, Some("for the next five minutes"));
    assert_eq!(status_of(first), "200");
    assert_eq!(status_of(once(&win_b, 4)), "200", "B inside A's window");
    assert_eq!(status_of(once(&win_a, 5)), "200", "A again, same window");
    assert!(pending(&s).is_empty(), "{:?}", pending(&s));
}
