//! Budgets and rate limits: an agent and a binding stored in Airlock with budgets, used by
//! `broker run --agent`; requests beyond a limit get 429 with Retry-After, LLM tokens are read
//! from a streamed response's `usage`, and the counters show in `sys/broker/agents/<name>`
//! and in the metrics.

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
