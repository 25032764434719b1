//! Minted credentials: OAuth2 client credentials, a rotating refresh token (two brokers
//! racing on it), a GitHub App installation token and a Google service-account token, each
//! obtained by the broker from a stand-in token endpoint (`token_endpoint.rs`), cached until
//! shortly before it expires and minted again; the agent only ever holds placeholders.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::broker::setup;
use crate::util::*;

const PKCS1: &str = include_str!("../../../airlock-broker/src/mint/test-key-pkcs1.pem");
const PKCS8: &str = include_str!("../../../airlock-broker/src/mint/test-key-pkcs8.pem");

const PROFILE: &str = r#"
[[binding]]
name = "cc"
secret = "secret/agents/oauth-cc"
env = "CC_TOKEN"
hosts = ["api.test"]
mint = { kind = "oauth2_client_credentials", token_url = "https://auth.test/token", scope = "read" }

[[binding]]
name = "rt"
secret = "secret/agents/oauth-rt"
env = "RT_TOKEN"
hosts = ["api.test"]
mint = { kind = "oauth2_refresh_token", token_url = "https://auth.test/token" }

[[binding]]
name = "gh"
secret = "secret/agents/gh-app"
env = "GH_TOKEN"
hosts = ["api.test"]
mint = { kind = "github_app", token_url = "https://auth.test/app/installations/{installation_id}/access_tokens" }

[[binding]]
name = "gsa"
secret = "secret/agents/gsa"
env = "GSA_TOKEN"
hosts = ["api.test"]
mint = { kind = "google_service_account", scope = "https://www.googleapis.com/auth/cloud-platform" }

[[binding]]
name = "hooks"
secret = "secret/agents/hooks#signing_key"
env = "HOOK_SIGNING_KEY"
hosts = ["hooks.test"]
hmac = { header = "x-signature", message = "{timestamp}.{body}", prefix = "sha256=", timestamp_header = "x-timestamp" }
"#;

/// Each variable's placeholder works against api.test now and after the tokens expired.
const SCRIPT: &str = r#"set -e
for round in 1 2 3; do
  for v in $VARS; do
    eval "t=\$$v"
    out=$(curl -sS --max-time 10 -H "Authorization: Bearer $t" https://api.test/v1/whoami)
    case "$out" in *'"auth_ok":true'*) ;; *) echo "FAIL $v round $round: $out"; exit 1;; esac
  done
  sleep 2.2
done
# The webhook: the placeholder in the signature header becomes the body's signature.
if [ -n "$HOOK_SIGNING_KEY" ] && echo "$VARS" | grep -q CC_TOKEN; then
  out=$(curl -sS --max-time 10 -X POST -H "X-Signature: $HOOK_SIGNING_KEY" -H 'content-type: application/json' \
    -d '{"event":"deploy","id":7}' https://hooks.test/hook)
  case "$out" in *'"auth_ok":true'*) ;; *) echo "FAIL hmac: $out"; exit 1;; esac
fi
echo mint-ok"#;

#[test]
fn minted_tokens_from_oauth2_github_app_and_google_service_account() {
    if !require(
        "curl",
        Command::new("curl").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let s = setup("broker-mint");
    let put = |path: &str, data: serde_json::Value| {
        let r = req(
            &s.server,
            "POST",
            &format!("/v1/secret/data/{path}"),
            Some(json!({ "data": data })),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    put(
        "agents/oauth-cc",
        json!({"client_id": "airlock-app", "client_secret": "cc-secret-value"}),
    );
    put(
        "agents/oauth-rt",
        json!({"client_id": "airlock-cli", "refresh_token": "rt-initial"}),
    );
    put(
        "agents/gh-app",
        json!({"app_id": "12345", "installation_id": "42", "private_key": PKCS1}),
    );
    let sa = json!({"type": "service_account", "client_email": "bot@airlock-test.iam.gserviceaccount.com",
                    "private_key": PKCS8, "token_uri": "https://auth.test/token"});
    put("agents/gsa", json!({"service_account": sa.to_string()}));
    put(
        "agents/hooks",
        json!({"signing_key": "whsec_test_signing_key_0123"}),
    );
    s.up.keys.set("hmac:key", "whsec_test_signing_key_0123");
    // The stand-in's state: the client, the current refresh token, the signing key.
    let k = ring::signature::RsaKeyPair::from_pkcs8(&pem_der(PKCS8)).unwrap();
    s.up.keys.set("pubkey", &hex::encode(k.public().as_ref()));
    s.up.keys.set("cc:airlock-app", "cc-secret-value");
    s.up.keys.set("rt:current", "rt-initial");
    std::fs::write(&s.profile, PROFILE).unwrap();

    let out = s
        .broker("tunnel", &["sh", "-c", SCRIPT])
        .env("VARS", "CC_TOKEN RT_TOKEN GH_TOKEN GSA_TOKEN")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success() && text.contains("mint-ok"), "{text}");
    // Tokens of 2 s over ~7 s: minted again (not once per request, not only once).
    for grant in [
        "client_credentials",
        "refresh_token",
        "github",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let n: u64 =
            s.up.keys
                .get(&format!("count:{grant}"))
                .unwrap_or_default()
                .parse()
                .unwrap_or(0);
        assert!((2..=6).contains(&n), "{grant}: minted {n} times");
    }
    // The rotated refresh token was stored back.
    let stored = req(&s.server, "GET", "/v1/secret/data/agents/oauth-rt", None);
    assert_eq!(
        stored.body["data"]["data"]["refresh_token"].as_str(),
        s.up.keys.get("rt:current").as_deref()
    );
    let audit = s.audit_text();
    for secret in [
        "cc-secret-value",
        "BEGIN RSA PRIVATE KEY",
        "whsec_test_signing_key_0123",
    ] {
        assert!(!audit.contains(secret) && !text.contains(secret));
    }
}

#[test]
fn two_brokers_share_a_rotating_refresh_token() {
    if !require(
        "curl",
        Command::new("curl").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let s = setup("broker-mint-race");
    let r = req(
        &s.server,
        "POST",
        "/v1/secret/data/agents/oauth-rt",
        Some(json!({"data": {"client_id": "airlock-cli", "refresh_token": "rt-initial"}})),
    );
    assert_eq!(r.status, 200);
    s.up.keys.set("rt:current", "rt-initial");
    std::fs::write(
        &s.profile,
        PROFILE
            .split("[[binding]]")
            .nth(2)
            .map(|b| format!("[[binding]]{b}"))
            .unwrap(),
    )
    .unwrap();
    let run = || {
        s.broker("tunnel", &["sh", "-c", SCRIPT])
            .env("VARS", "RT_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run(), run());
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        let text = output_text(&out);
        assert!(out.status.success() && text.contains("mint-ok"), "{text}");
    }
    let stored = req(&s.server, "GET", "/v1/secret/data/agents/oauth-rt", None);
    assert_eq!(
        stored.body["data"]["data"]["refresh_token"].as_str(),
        s.up.keys.get("rt:current").as_deref(),
        "the refresh token in Airlock is the one the provider holds"
    );
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}
