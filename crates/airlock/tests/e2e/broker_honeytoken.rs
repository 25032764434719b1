//! Honeytokens: decoys from the profile and from Airlock (`sys/broker/honeytokens`) reach the
//! agent's environment; any use through the broker is blocked and audited as a high-severity
//! `honeytoken` event, and a decoy presented to Airlock's API as a token is refused, audited
//! and counted in `airlock_honeytoken_uses_total` (at the API and at the broker).

use serde_json::json;

use crate::broker::setup;
use crate::util::*;

#[test]
fn honeytokens_are_blocked_and_raised_at_the_broker_and_the_api() {
    if !require("python3 with requests", python_has("requests")) {
        return;
    }
    let s = setup("broker-honeytoken");
    let mut profile = std::fs::read_to_string(&s.profile).unwrap();
    profile.push_str(
        "\n[[honeytoken]]\nname = \"decoy-openai\"\nkind = \"openai\"\nenv = \"OPENAI_API_KEY_BACKUP\"\n",
    );
    std::fs::write(&s.profile, profile).unwrap();
    let w = req(
        &s.server,
        "POST",
        "/v1/sys/broker/honeytokens/stolen-token",
        Some(
            json!({"kind": "airlock", "env": "AIRLOCK_BACKUP_TOKEN", "description": "planted in ~/.config"}),
        ),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let decoy = w.body["data"]["value"].as_str().unwrap().to_string();
    assert!(decoy.starts_with("hvs."), "{decoy}");
    // Invalid definitions are refused.
    let bad = req(
        &s.server,
        "POST",
        "/v1/sys/broker/honeytokens/bad",
        Some(json!({"value": "short"})),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    let listed = req(&s.server, "LIST", "/v1/sys/broker/honeytokens", None);
    assert_eq!(listed.body["data"]["keys"], json!(["stolen-token"]));

    let script = repo_root().join("tests/broker/honeytoken.py");
    let out = s
        .broker("tunnel", &["python3", script.to_str().unwrap()])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("honeytoken: 0 failed"),
        "{text}"
    );

    // The stored decoy presented to the API as a token: refused like any unknown token,
    // and raised.
    let r = with_token(
        &s.server,
        &decoy,
        "GET",
        "/v1/secret/data/agents/test",
        None,
    );
    assert_eq!(r.status, 403);
    let wrong = "hvs.not-a-honeytoken-just-wrong-000000000";
    let r = with_token(&s.server, wrong, "GET", "/v1/secret/data/agents/test", None);
    assert_eq!(r.status, 403);
    let m = req(&s.server, "GET", "/v1/sys/metrics?format=prometheus", None);
    let text = String::from_utf8_lossy(&m.raw).to_string();
    assert!(
        text.contains("airlock_honeytoken_uses_total{at=\"api\"} 1"),
        "{text}"
    );
    let broker_uses: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("airlock_honeytoken_uses_total{at=\"broker\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(broker_uses >= 5, "{text}");

    let audit = s.audit_text();
    let broker_hits = audit
        .lines()
        .filter(|l| l.contains("\"kind\":\"honeytoken\"") && l.contains("\"severity\":\"high\""))
        .count();
    assert!(broker_hits >= 5, "broker honeytoken events: {broker_hits}");
    let api_hits: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"type\":\"honeytoken\""))
        .collect();
    assert_eq!(api_hits.len(), 1, "{api_hits:?}");
    assert!(
        api_hits[0].contains("\"honeytoken\":\"stolen-token\"")
            && api_hits[0].contains("\"severity\":\"high\"")
    );
    // Audit entries name decoys, never hold their values.
    assert!(!audit.contains(&decoy), "a decoy value in the audit log");
}
