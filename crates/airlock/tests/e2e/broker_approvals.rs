//! Approvals: a binding whose requests wait for a human. With `broker run`: approved, denied
//! (with a reason), timed out, and a replay of an approved request (or the same request with
//! another body) needing a new decision, all decided with the real CLI. With `broker serve`:
//! a request pending while the broker restarts keeps its approval (the retried request has
//! the same digest), and is let through once approved.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::broker::{setup, Setup};
use crate::upstream;
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
    let serve = || {
        let mut c = Command::new(bin());
        c.args([
            "broker",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--extra-ca",
        ])
        .arg(&s.ca)
        .env("AIRLOCK_ADDR", &s.server.addr)
        .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
        .stdout(Stdio::null());
        for h in upstream::HOSTS {
            c.arg("--resolve")
                .arg(format!("{h}=127.0.0.1:{}", s.up.port));
        }
        let child = c.spawn().unwrap();
        wait_until("broker serve to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    };
    let mut broker = serve();
    let env_file = s.dir.join("careful.json");
    let (code, out, err) = cli(
        &s.server,
        &[
            "broker",
            "env",
            "--agent",
            "careful",
            "--broker",
            &format!("127.0.0.1:{port}"),
            "--format",
            "json",
            "--ca-file",
            s.dir.join("ca.pem").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(&env_file, out).unwrap();
    let script = repo_root().join("tests/broker/approvals.py");
    let once = || {
        Command::new("python3")
            .arg(&script)
            .args(["once", env_file.to_str().unwrap(), "7"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = once();
    wait_until("a pending approval", Duration::from_secs(20), || {
        pending(&s).len() == 1
    });
    let id = pending(&s)[0]["id"].as_str().unwrap().to_string();
    // The broker goes away while the request waits; the client sees its connection drop.
    let _ = broker.kill();
    let _ = broker.wait();
    let out = first.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "error");
    // A new broker, the same request: it waits on the same approval.
    let mut broker = serve();
    let second = once();
    std::thread::sleep(Duration::from_secs(1));
    let p = pending(&s);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["id"], id.as_str());
    cli_decide(&s, "approve", &id, Some("looked at it"));
    let out = second.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200");
    let _ = broker.kill();
    let _ = broker.wait();
}
