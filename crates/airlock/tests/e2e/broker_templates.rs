//! Injection templates and URL-path injection: a Basic credential composed from a user and
//! a password, a TOTP code computed per request from a seed, and a bot token that travels in
//! the URL path — each from one KV entry, the agent holding only placeholders. The stand-in
//! upstream records what it received; the TOTP code is checked against an independent
//! implementation (Python's hmac).

use std::process::Command;

use base64::Engine;
use serde_json::json;

use crate::broker::setup;
use crate::util::*;

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const BOT: &str = "123456:ABC-def_ghi";

const PROFILE: &str = r#"
[[binding]]
name = "basic"
secret = "secret/agents/tmpl"
env = "SERVICE_AUTH"
hosts = ["templates.test"]
header = "authorization"
template = "Basic {basic:user:password}"

[[binding]]
name = "otp"
secret = "secret/agents/tmpl"
env = "SERVICE_OTP"
hosts = ["templates.test"]
header = "x-otp"
template = "{totp:seed}"

[[binding]]
name = "bot"
provider = "telegram"
secret = "secret/agents/tmpl#bot"
hosts = ["templates.test"]
"#;

/// TOTP codes (6 digits, 30 s) for the windows around now, computed by Python.
fn python_totp(seed: &str) -> Vec<String> {
    let code = r#"
import base64, hmac, hashlib, struct, sys, time
key = base64.b32decode(sys.argv[1])
for w in (-1, 0, 1):
    c = int(time.time()) // 30 + w
    d = hmac.new(key, struct.pack(">Q", c), hashlib.sha1).digest()
    o = d[-1] & 15
    print("%06d" % ((struct.unpack(">I", d[o:o + 4])[0] & 0x7fffffff) % 1000000))
"#;
    let out = Command::new("python3")
        .args(["-c", code, seed])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn templates_compose_basic_totp_and_url_path_credentials() {
    if !require(
        "curl",
        Command::new("curl").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let s = setup("broker-templates");
    let w = req(
        &s.server,
        "POST",
        "/v1/secret/data/agents/tmpl",
        Some(json!({"data": {"user": "alice", "password": "s3cret-pw", "seed": SEED, "bot": BOT}})),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw")
    );
    s.up.keys.set("templates.test", &basic);
    std::fs::write(&s.profile, PROFILE).unwrap();
    let script = r#"set -e
curl -sS --max-time 10 -H "Authorization: $SERVICE_AUTH" -H "X-Otp: $SERVICE_OTP" \
  "https://templates.test/v1/echo/bot$TELEGRAM_BOT_TOKEN/getMe" > out.json
grep -q '"auth_ok":true' out.json
# The placeholder of a binding that does not inject into the path is blocked there.
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "https://templates.test/v1/echo/$SERVICE_OTP")
test "$code" = 403
echo templates-ok"#;
    let out = s
        .broker("tunnel", &["sh", "-c", script])
        .current_dir(&*s.dir)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        out.status.success() && text.contains("templates-ok"),
        "{text}"
    );
    assert_eq!(
        s.up.keys.get("seen:path").as_deref(),
        Some(format!("/v1/echo/bot{BOT}/getMe").as_str())
    );
    let otp = s.up.keys.get("seen:x-otp").unwrap_or_default();
    assert!(
        python_totp(SEED).contains(&otp),
        "TOTP {otp:?} is not current"
    );
    // Nothing the agent printed or the audit log holds is a credential.
    let echoed = std::fs::read_to_string(s.dir.join("out.json")).unwrap();
    for secret in ["s3cret-pw", BOT, basic.as_str()] {
        assert!(!echoed.contains(secret), "{secret} echoed to the agent");
        assert!(!s.audit_text().contains(secret));
    }
}
