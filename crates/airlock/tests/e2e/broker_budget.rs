//! Budgets and rate limits: an agent and a binding stored in Airlock with budgets, used by
//! `broker run --agent`; requests beyond a limit get 429 with Retry-After, LLM tokens are read
//! from a streamed response's `usage`, and the counters show in `sys/broker/agents/<name>`
//! and in the metrics. Two `broker serve` replicas running at once share one agent budget:
//! each learns what the other counted from Airlock's answer to its usage report.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::broker::setup;
use crate::util::*;

#[test]
fn budgets_limit_requests_and_streamed_tokens() {
    if !require("python3 with requests", python_has("requests")) {
        return;
    }
    let s = setup("broker-budget");
    let ok = |r: Resp| assert!(r.status < 300, "{}: {}", r.status, r.body);
    ok(req(
        &s.server,
        "POST",
        "/v1/sys/broker/bindings/openai-budget",
        Some(
            json!({"provider": "openai", "secret": "secret/agents/test#OPENAI",
                    "budget": {"tokens_per_day": 30}}),
        ),
    ));
    ok(req(
        &s.server,
        "POST",
        "/v1/sys/broker/agents/tokens",
        Some(json!({"bindings": ["openai-budget"], "budget": {"requests_per_minute": 5}})),
    ));
    // A bad budget is refused with the field named.
    let bad = req(
        &s.server,
        "POST",
        "/v1/sys/broker/agents/bad",
        Some(json!({"bindings": [], "budget": {"requests_per_minute": 0}})),
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.to_string().contains("requests_per_minute"),
        "{}",
        bad.body
    );

    let script = repo_root().join("tests/broker/budget.py");
    let out = s
        .broker_with(
            "tunnel",
            &["--agent", "tokens"],
            &["python3", script.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("budget: 0 failed"),
        "{text}"
    );

    let a = req(&s.server, "GET", "/v1/sys/broker/agents/tokens", None);
    assert_eq!(a.status, 200, "{}", a.body);
    let usage = &a.body["data"]["usage"][0];
    assert_eq!(
        usage["bindings"]["openai-budget"]["tokens_per_day"]["used"], 30,
        "{}",
        a.body
    );
    assert_eq!(
        usage["bindings"]["openai-budget"]["tokens_per_day"]["limit"],
        30
    );
    assert!(
        usage["agent"]["requests_per_minute"]["used"]
            .as_u64()
            .unwrap()
            >= 5
    );
    assert!(usage["limited"].as_u64().unwrap() >= 2, "{usage}");
    let m = req(&s.server, "GET", "/v1/sys/metrics?format=prometheus", None);
    let prom = String::from_utf8_lossy(&m.raw).to_string();
    let line = prom
        .lines()
        .find(|l| {
            l.starts_with("airlock_broker_budget_used{")
                && l.contains("binding=\"openai-budget\"")
                && l.contains("window=\"tokens_per_day\"")
        })
        .unwrap_or_else(|| panic!("no budget metric:\n{prom}"));
    assert!(line.ends_with(" 30"), "{line}");
    let audit = s.audit_text();
    assert!(
        audit.contains("\"kind\":\"limit\""),
        "no limit event audited"
    );
    let _: Value = a.body;
}

#[test]
fn broker_replicas_share_one_budget() {
    let s = setup("broker-budget-replicas");
    let ok = |r: Resp| assert!(r.status < 300, "{}: {}", r.status, r.body);
    ok(req(
        &s.server,
        "POST",
        "/v1/sys/broker/bindings/openai-shared",
        Some(json!({"provider": "openai", "secret": "secret/agents/test#OPENAI"})),
    ));
    ok(req(
        &s.server,
        "POST",
        "/v1/sys/broker/agents/shared",
        Some(json!({"bindings": ["openai-shared"], "budget": {"requests_per_minute": 6}})),
    ));
    let (pa, pb) = (free_port(), free_port());
    let _a = s.serve(pa, &["--refresh", "0.5"]);
    let _b = s.serve(pb, &["--refresh", "0.5"]);
    let (_, ea) = s.agent_env("shared", pa);
    let (_, eb) = s.agent_env("shared", pb);
    // One request through a replica: its status.
    let get = |env: &Value| -> u16 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"])
            .arg("--proxy")
            .arg(env["HTTPS_PROXY"].as_str().unwrap())
            .arg("--cacert")
            .arg(env["SSL_CERT_FILE"].as_str().unwrap())
            .arg("-H")
            .arg(format!(
                "Authorization: Bearer {}",
                env["OPENAI_API_KEY"].as_str().unwrap()
            ))
            .arg("https://api.openai.com/v1/models")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
    };
    // The whole exchange stays inside one minute.
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 60
    };
    while secs() > 35 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let first: Vec<u16> = (0..4).map(|_| get(&ea)).collect();
    assert_eq!(first, [200; 4], "replica A, within the budget");
    // Both replicas report every half second; B learns A's four from the answer to its own.
    std::thread::sleep(Duration::from_millis(2000));
    let second: Vec<u16> = (0..3).map(|_| get(&eb)).collect();
    assert_eq!(
        second,
        [200, 200, 429],
        "replica B: 4 + 2 is the budget of 6"
    );
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(get(&ea), 429, "replica A learnt B's two");
    let a = req(&s.server, "GET", "/v1/sys/broker/agents/shared", None);
    let mut used: Vec<u64> = a.body["data"]["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["agent"]["requests_per_minute"]["used"].as_u64().unwrap())
        .collect();
    used.sort();
    assert_eq!(used, [2, 4], "{}", a.body);
}
