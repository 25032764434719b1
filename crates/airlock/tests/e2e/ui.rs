//! The web UI: HTTP-level checks (security headers, cookie flags, CSRF, the audit query
//! API) and the browser suite `tests/ui/ui.spec.mjs` — Playwright driving Debian's
//! Chromium against a real server behind the TLS listener, and a sign-in on a plain-HTTP
//! dev server. In CI a missing Node, Chromium or playwright-core fails; elsewhere it skips.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::util::*;

/// A server behind TLS with an indexed audit device, initialised; returns it and its root
/// token.
fn start_tls_server(dir: &Path) -> Option<(Proc, String)> {
    if !openssl_certs(dir) {
        return None;
    }
    std::fs::write(dir.join("unseal.key"), "11".repeat(32)).unwrap();
    let cfg = dir.join("airlock.server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\
             [storage]\npath = \"{}\"\n[seal]\nkey_file = \"{}\"\n[[audit]]\nname = \"file\"\npath = \"{}\"\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
            dir.join("data.db").display(),
            dir.join("unseal.key").display(),
            dir.join("audit.log").display(),
        ),
    )
    .unwrap();
    let p = start_config(&cfg);
    let init = curl(
        &p,
        dir,
        "PUT",
        "/v1/sys/init",
        None,
        &[json!({}).to_string().as_str()],
    );
    let root = init.1["root_token"].as_str().unwrap().to_string();
    Some((p, root))
}

/// curl over TLS with the test CA: (status, JSON body, headers).
fn curl(
    p: &Proc,
    dir: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[&str],
) -> (u16, Value, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--path-as-is", "-D", "-", "-X", method, "--cacert"])
        .arg(dir.join("ca.pem"))
        .arg(format!("{}{path}", p.addr));
    if let Some(t) = token {
        c.args(["-H", &format!("X-Vault-Token: {t}")]);
    }
    for b in body {
        c.args(["-d", b]);
    }
    let out = c.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        serde_json::from_str(rest).unwrap_or(Value::Null),
        head.to_string(),
    )
}

fn api(p: &Proc, dir: &Path, root: &str, method: &str, path: &str, body: Value) -> Value {
    let (s, v, _) = curl(p, dir, method, path, Some(root), &[&body.to_string()]);
    assert!(s < 300, "{method} {path}: {s} {v}");
    v
}

/// Setup shared by the browser suite: a KV v2 mount, users, a restricted policy, a broker
/// binding and agent, and one blocked exfiltration attempt in the audit log.
fn seed(p: &Proc, dir: &Path, root: &str) {
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/sys/auth/userpass",
        json!({"type": "userpass"}),
    );
    api(
        p,
        dir,
        root,
        "PUT",
        "/v1/sys/policies/acl/public-only",
        json!({"policy": "path \"secret/data/public/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/public/*\" { capabilities = [\"read\", \"list\"] }\n"}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/auth/userpass/users/bob",
        json!({"password": "bob-pass-1", "token_policies": ["public-only"]}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/secret/data/agents/voice",
        json!({"data": {"OPENAI_API_KEY": "sk-test-0000"}}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/sys/broker/bindings/openai",
        json!({"provider": "openai", "secret": "secret/agents/voice#OPENAI_API_KEY"}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/sys/broker/agents/voice",
        json!({"bindings": ["openai"], "egress": "tunnel"}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/sys/broker/audit",
        json!({"events": [{"time": "2026-12-04T10:00:00Z", "kind": "block", "agent": "voice", "binding": "openai",
            "method": "POST", "host": "exfil.example.net", "port": 443, "path": "/collect", "status": 403,
            "reason": "placeholder sent to a host its binding does not name"}]}),
    );
}

/// Two leases under `database/creds/ui/` (PostgreSQL users with a 1-hour TTL).
fn seed_leases(p: &Proc, dir: &Path, root: &str) {
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/sys/mounts/database",
        json!({"type": "database"}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/database/config/pg",
        json!({"plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username": "postgres", "password": "unused-with-trust-auth", "allowed_roles": ["ui"]}),
    );
    api(
        p,
        dir,
        root,
        "POST",
        "/v1/database/roles/ui",
        json!({"db_name": "pg", "default_ttl": "1h", "max_ttl": "2h", "creation_statements":
            ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]}),
    );
    for _ in 0..2 {
        let (s, v, _) = curl(p, dir, "GET", "/v1/database/creds/ui", Some(root), &[]);
        assert_eq!(s, 200, "{v}");
    }
}

fn node_ready() -> bool {
    let ui = repo_root().join("crates/airlock/tests/ui");
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Path::new("/usr/bin/chromium").exists()
        && ui.join("node_modules/playwright-core").exists()
}

/// One browser at a time: Chromium is heavy, and the other tests share the machine.
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_spec(env: &[(&str, &str)]) {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let ui = repo_root().join("crates/airlock/tests/ui");
    let out = Command::new("node")
        .arg("ui.spec.mjs")
        .current_dir(&ui)
        .envs(env.iter().copied())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser suite failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn security_headers_cookies_and_csrf() {
    let dir = tempdir("ui-http");
    let Some((p, root)) = start_tls_server(&dir) else {
        return;
    };
    // The root redirects to the UI; every UI response carries the security headers.
    let (s, _, h) = curl(&p, &dir, "GET", "/", None, &[]);
    assert_eq!(s, 307);
    assert!(h.to_lowercase().contains("location: /ui/"), "{h}");
    for path in [
        "/ui/",
        "/ui/assets/app.js",
        "/ui/nothing/here",
        "/ui/api/session",
    ] {
        let (_, _, h) = curl(&p, &dir, "GET", path, None, &[]);
        let h = h.to_lowercase();
        assert!(
            h.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{path}: {h}"
        );
        assert!(h.contains("frame-ancestors 'none'"), "{path}");
        assert!(h.contains("x-content-type-options: nosniff"), "{path}");
        assert!(h.contains("referrer-policy: no-referrer"), "{path}");
    }
    let (s, _, _) = curl(&p, &dir, "GET", "/ui/assets/../../v1/sys/health", None, &[]);
    assert_ne!(s, 200);

    // Sign-in: the cookie is HttpOnly, Secure, SameSite=Strict and __Host- named (TLS).
    let login = json!({"method": "token", "token": root}).to_string();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--cacert",
        ])
        .arg(dir.join("ca.pem"))
        .args(["-d", &login])
        .arg(format!("{}/ui/api/session", p.addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let cookie_line = text
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {text}"))
        .to_string();
    for flag in [
        "__Host-airlock_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie_line.contains(flag), "{cookie_line}");
    }
    assert!(!cookie_line.contains(&root), "the cookie is not the token");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let csrf = body["csrf"].as_str().unwrap().to_string();
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();

    let call =
        |method: &str, path: &str, headers: &[String], data: Option<&str>| -> (u16, String) {
            let mut c = Command::new("curl");
            c.args([
                "-sS",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "-X",
                method,
                "--cacert",
            ])
            .arg(dir.join("ca.pem"));
            for h in headers {
                c.args(["-H", h]);
            }
            if let Some(d) = data {
                c.args(["-d", d]);
            }
            let out = c.arg(format!("{}{path}", p.addr)).output().unwrap();
            let t = String::from_utf8_lossy(&out.stdout).to_string();
            let (b, code) = t.rsplit_once('\n').unwrap();
            (code.parse().unwrap(), b.to_string())
        };
    let with_cookie = format!("Cookie: {cookie}");
    let with_csrf = format!("X-Airlock-CSRF: {csrf}");
    // The session works for the API only with its CSRF header.
    let (s, b) = call(
        "GET",
        "/v1/auth/token/lookup-self",
        std::slice::from_ref(&with_cookie),
        None,
    );
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("CSRF"), "{b}");
    let (s, _) = call(
        "GET",
        "/v1/auth/token/lookup-self",
        &[with_cookie.clone(), with_csrf.clone()],
        None,
    );
    assert_eq!(s, 200);
    // A cross-site form post: no CSRF header, form encoding, a foreign origin.
    let (s, _) = call(
        "POST",
        "/v1/secret/data/x",
        &[
            with_cookie.clone(),
            "Content-Type: application/x-www-form-urlencoded".into(),
            "Origin: https://evil.example".into(),
        ],
        Some("data=1"),
    );
    assert_eq!(s, 403);
    let (s, _) = call("GET", "/v1/secret/data/x", &[], None);
    assert_eq!(s, 403, "nothing was written");
    // Sign-in from another origin or as a form is refused.
    let (s, _) = call(
        "POST",
        "/ui/api/session",
        &[
            "Content-Type: application/json".into(),
            "Origin: https://evil.example".into(),
        ],
        Some(&login),
    );
    assert_eq!(s, 403);
    let (s, _) = call(
        "POST",
        "/ui/api/session",
        &["Content-Type: application/x-www-form-urlencoded".into()],
        Some("method=token&token=x"),
    );
    assert_eq!(s, 403);
    let (s, _) = call(
        "POST",
        "/ui/api/session",
        &["Content-Type: application/json".into()],
        Some("{not json"),
    );
    assert_eq!(s, 400);
    // Signing out ends the session, not the token.
    let (s, _) = call(
        "DELETE",
        "/ui/api/session",
        std::slice::from_ref(&with_cookie),
        None,
    );
    assert_eq!(s, 403, "sign-out needs the CSRF header too");
    let (s, _) = call(
        "DELETE",
        "/ui/api/session",
        &[with_cookie.clone(), with_csrf.clone()],
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = call(
        "GET",
        "/v1/auth/token/lookup-self",
        &[with_cookie.clone(), with_csrf.clone()],
        None,
    );
    assert_eq!(s, 403, "the session is gone");
    let (s, _, _) = curl(
        &p,
        &dir,
        "GET",
        "/v1/auth/token/lookup-self",
        Some(&root),
        &[],
    );
    assert_eq!(s, 200, "the token was not revoked");
}

#[test]
fn audit_query_api() {
    let dir = tempdir("ui-audit");
    let Some((p, root)) = start_tls_server(&dir) else {
        return;
    };
    seed(&p, &dir, &root);
    api(
        &p,
        &dir,
        &root,
        "POST",
        "/v1/secret/data/app/db",
        json!({"data": {"password": "pw-one"}}),
    );
    let (_, v, _) = curl(&p, &dir, "GET", "/v1/secret/data/app/db", Some(&root), &[]);
    assert_eq!(v["data"]["data"]["password"], "pw-one");
    // The index follows the log within moments.
    let q = |query: &str| {
        curl(
            &p,
            &dir,
            "GET",
            &format!("/v1/sys/airlock/audit/query?{query}"),
            Some(&root),
            &[],
        )
    };
    wait_until(
        "the read is indexed",
        std::time::Duration::from_secs(10),
        || {
            q("path=secret/data/app/db&operation=read&type=response").1["data"]["entries"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    let (s, v, _) = q("path=secret/data/app/db&type=response&operation=read");
    assert_eq!(s, 200);
    let e = &v["data"]["entries"][0];
    assert_eq!(e["request"]["path"], "secret/data/app/db");
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(v["data"]["chain"]["intact"], true);
    assert!(
        !v.to_string().contains("pw-one"),
        "values are HMACs in the log and in answers"
    );
    // By the HMAC of a value.
    let (_, h, _) = curl(
        &p,
        &dir,
        "POST",
        "/v1/sys/audit-hash/file",
        Some(&root),
        &[r#"{"input":"pw-one"}"#],
    );
    let hmac = h["data"]["hash"].as_str().unwrap().to_string();
    let (_, v, _) = q(&format!("hmac={hmac}&type=response"));
    let found = v["data"]["entries"].as_array().unwrap();
    assert!(
        found
            .iter()
            .any(|e| e["request"]["path"] == "secret/data/app/db"),
        "{v}"
    );
    // Broker events, by agent and kind.
    let (_, v, _) = q("type=broker&agent=voice&kind=block");
    assert_eq!(
        v["data"]["entries"][0]["broker"]["host"],
        "exfil.example.net"
    );
    // Pages: no repeats, in order.
    let (_, first, _) = q("limit=3");
    let next = first["data"]["next"].as_str().unwrap().to_string();
    let (_, second, _) = q(&format!("limit=3&before={next}"));
    let seqs = |v: &Value| -> Vec<u64> {
        v["data"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["chain"]["seq"].as_u64().unwrap())
            .collect()
    };
    let (a, b) = (seqs(&first), seqs(&second));
    assert_eq!(a.len(), 3);
    assert!(a.iter().min() > b.iter().max(), "{a:?} then {b:?}");
    // Bad input is a 400.
    for bad in [
        "limit=100000",
        "limit=0",
        "from=2026-12-05T00:00:00Z&to=2026-12-04T00:00:00Z",
        "from=last+tuesday",
        "status=99",
        "type=everything",
        "hmac=abc",
        "surprise=1",
        "before=-1",
    ] {
        let (s, v, _) = q(bad);
        assert_eq!(s, 400, "{bad}: {v}");
    }
    // Without sudo: 403, even with read on the path.
    api(
        &p,
        &dir,
        &root,
        "PUT",
        "/v1/sys/policies/acl/audit-read",
        json!({"policy": "path \"sys/airlock/audit/*\" { capabilities = [\"read\", \"update\"] }"}),
    );
    let (_, t, _) = curl(
        &p,
        &dir,
        "POST",
        "/v1/auth/token/create",
        Some(&root),
        &[r#"{"policies":["audit-read"]}"#],
    );
    let tok = t["auth"]["client_token"].as_str().unwrap().to_string();
    let (s, _, _) = curl(
        &p,
        &dir,
        "GET",
        "/v1/sys/airlock/audit/query",
        Some(&tok),
        &[],
    );
    assert_eq!(s, 403);
    api(
        &p,
        &dir,
        &root,
        "PUT",
        "/v1/sys/policies/acl/audit-read",
        json!({"policy": "path \"sys/airlock/audit/*\" { capabilities = [\"read\", \"update\", \"sudo\"] }"}),
    );
    let (s, _, _) = curl(
        &p,
        &dir,
        "GET",
        "/v1/sys/airlock/audit/query?limit=1",
        Some(&tok),
        &[],
    );
    assert_eq!(s, 200);
    let (s, v, _) = curl(
        &p,
        &dir,
        "POST",
        "/v1/sys/airlock/audit/verify",
        Some(&root),
        &["{}"],
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"]["intact"], true, "{v}");
}

#[test]
fn browser_suite() {
    if !require(
        "node, /usr/bin/chromium and playwright-core (npm ci in crates/airlock/tests/ui)",
        node_ready(),
    ) {
        return;
    }
    let dir = tempdir("ui-browser");
    let Some((p, root)) = start_tls_server(&dir) else {
        return;
    };
    seed(&p, &dir, &root);
    let leases = require(
        "PostgreSQL on 127.0.0.1:5432 (the leases the page shows)",
        crate::database::psql_ok(),
    );
    if leases {
        seed_leases(&p, &dir, &root);
    }
    let shots = std::env::var("AIRLOCK_UI_SHOTS")
        .unwrap_or_else(|_| dir.join("shots").display().to_string());
    run_spec(&[
        ("BASE", p.addr.as_str()),
        ("TOKEN", root.as_str()),
        ("SHOTS", shots.as_str()),
        ("SUITE", "full"),
        ("LEASES", if leases { "1" } else { "" }),
    ]);

    // Plain HTTP (dev mode on loopback): the cookie is not Secure, sign-in works the same.
    let dev = start_dev();
    run_spec(&[
        ("BASE", dev.addr.as_str()),
        ("TOKEN", "root"),
        ("SUITE", "dev"),
    ]);
}

/// Signing in through the browser with a JWT and with OIDC (the IdP's authorization page
/// redirects back to the UI's callback address, as Vault's UI uses it).
#[test]
fn browser_sign_in_with_jwt_and_oidc() {
    if !require(
        "node, /usr/bin/chromium and playwright-core (npm ci in crates/airlock/tests/ui)",
        node_ready(),
    ) {
        return;
    }
    let p = start_dev();
    let idp = crate::idp::start();
    let key = std::sync::Arc::new(crate::idp::Key::ec("k-ui"));
    {
        let mut s = idp.state.lock().unwrap();
        s.jwks = vec![key.jwk()];
        s.client = Some(("airlock-ui".into(), "client-secret-1".into()));
        s.id_key = Some(key.clone());
        s.id_claims = json!({"sub": "u-7", "email": "ada@example.com", "groups": ["eng"]});
    }
    let ok = |method: &str, path: &str, body: Value| {
        let r = req(&p, method, path, Some(body));
        assert!(r.status < 300, "{path}: {} {:?}", r.status, r.body);
    };
    ok("POST", "/v1/sys/auth/jwt", json!({"type": "jwt"}));
    ok(
        "POST",
        "/v1/auth/jwt/config",
        json!({"oidc_discovery_url": idp.url, "oidc_discovery_ca_pem": idp.ca_pem}),
    );
    ok(
        "POST",
        "/v1/auth/jwt/role/ui",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["airlock-ui"],
            "token_policies": ["default"], "token_ttl": "10m"}),
    );
    ok("POST", "/v1/sys/auth/oidc", json!({"type": "oidc"}));
    ok(
        "POST",
        "/v1/auth/oidc/config",
        json!({"oidc_discovery_url": idp.url, "oidc_discovery_ca_pem": idp.ca_pem,
            "oidc_client_id": "airlock-ui", "oidc_client_secret": "client-secret-1", "default_role": "web"}),
    );
    ok(
        "POST",
        "/v1/auth/oidc/role/web",
        json!({"role_type": "oidc", "user_claim": "email",
            "allowed_redirect_uris": [format!("{}/ui/vault/auth/oidc/oidc/callback", p.addr)],
            "bound_claims": {"groups": ["eng"]}, "token_policies": ["default"], "token_ttl": "10m"}),
    );
    let now = crate::idp::now();
    let jwt = key.sign(
        &json!({"iss": idp.url, "sub": "ci-bot", "aud": "airlock-ui",
        "iat": now, "nbf": now - 5, "exp": now + 300}),
    );
    run_spec(&[
        ("BASE", p.addr.as_str()),
        ("TOKEN", "root"),
        ("SUITE", "sso"),
        ("JWT", jwt.as_str()),
    ]);
}
