//! Machine identity: AppRole, userpass, JWT/OIDC against an HTTPS issuer with discovery,
//! Kubernetes through a TokenReview endpoint and through the cluster's JWKS, response
//! wrapping, rate limits, audit hygiene, and the real clients (hvac, the `bao` CLI, ESO's
//! call sequence).

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::idp::{self, github_claims, k8s_claims, now, Account, Key};
use crate::util::*;

const RSA_KEY: &str = "tests/compat/keys/test-only-rsa.key.pem";
const OTHER_RSA_KEY: &str = "tests/compat/keys/test-only-rsa-other.key.pem";

fn ok(r: &Resp) {
    assert!((200..300).contains(&r.status), "{} {:?}", r.status, r.body);
}

fn setup_secret(p: &Proc) {
    ok(&req(
        p,
        "PUT",
        "/v1/sys/policies/acl/app-read",
        Some(
            json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/app/*\" { capabilities = [\"list\", \"read\"] }\npath \"secret/metadata/app\" { capabilities = [\"list\"] }\n"}),
        ),
    ));
    ok(&req(
        p,
        "POST",
        "/v1/secret/data/app/db",
        Some(json!({"data": {"password": "s3cret-db-pw"}})),
    ));
}

fn login(p: &Proc, path: &str, body: Value) -> Resp {
    http(
        &p.addr,
        "POST",
        path,
        None,
        Some(body.to_string().as_bytes()),
        &[],
    )
}

fn token_of(r: &Resp) -> String {
    r.body["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {:?}", r.body))
        .to_string()
}

fn can_read_secret(p: &Proc, token: &str) -> bool {
    let r = with_token(p, token, "GET", "/v1/secret/data/app/db", None);
    r.status == 200 && r.body["data"]["data"]["password"] == "s3cret-db-pw"
}

#[test]
fn approle_wrapped_secret_id_and_cli() {
    let p = start_dev();
    setup_secret(&p);
    let (c, out, err) = cli(&p, &["auth", "enable", "approle"], None);
    assert_eq!(c, 0, "{out}{err}");
    ok(&req(
        &p,
        "POST",
        "/v1/auth/approle/role/ci",
        Some(
            json!({"token_policies": "app-read", "token_ttl": "20m", "token_max_ttl": "1h",
                    "secret_id_ttl": "10m", "secret_id_num_uses": 2}),
        ),
    ));
    let role_id = req(&p, "GET", "/v1/auth/approle/role/ci/role-id", None).body["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The trusted orchestrator asks for a wrapped secret id; it never sees the secret.
    let w = http(
        &p.addr,
        "POST",
        "/v1/auth/approle/role/ci/secret-id",
        Some("root"),
        Some(br#"{"metadata": "{\"pipeline\":\"deploy\"}"}"#),
        &[("X-Vault-Wrap-TTL", "60s")],
    );
    ok(&w);
    assert!(w.body["data"].is_null(), "{:?}", w.body);
    assert_eq!(w.body["request_id"], "");
    let wrap = w.body["wrap_info"]["token"].as_str().unwrap().to_string();
    assert_eq!(w.body["wrap_info"]["ttl"], 60);
    assert_eq!(
        w.body["wrap_info"]["creation_path"],
        "auth/approle/role/ci/secret-id"
    );
    // lookup does not consume it; the workload unwraps it with the CLI.
    let l = http(
        &p.addr,
        "POST",
        "/v1/sys/wrapping/lookup",
        None,
        Some(json!({"token": wrap}).to_string().as_bytes()),
        &[],
    );
    ok(&l);
    assert_eq!(l.body["data"]["creation_ttl"], 60);
    let (c, secret_id, err) = cli(&p, &["unwrap", "-field=secret_id", &wrap], None);
    assert_eq!(c, 0, "{err}");
    let secret_id = secret_id.trim().to_string();
    assert_eq!(secret_id.len(), 36);
    let (c, _, err) = cli(&p, &["unwrap", &wrap], None);
    assert_ne!(c, 0);
    assert!(
        err.contains("wrapping token is not valid or does not exist"),
        "{err}"
    );
    // The README's CLI form: `write -f -wrap-ttl=60s -field=wrapping_token`; `-f` is needed
    // to write nothing.
    let (c, _, err) = cli(&p, &["write", "auth/approle/role/ci/secret-id"], None);
    assert_ne!(c, 0);
    assert!(err.contains("-force"), "{err}");
    let (c, wrap2, err) = cli(
        &p,
        &[
            "write",
            "-f",
            "-wrap-ttl=60s",
            "-field=wrapping_token",
            "auth/approle/role/ci/secret-id",
        ],
        None,
    );
    assert_eq!(c, 0, "{err}");
    let (c, sid, err) = cli(&p, &["unwrap", "-field=secret_id", wrap2.trim()], None);
    assert_eq!(c, 0, "{err}");
    assert_eq!(sid.trim().len(), 36);
    let (c, table, err) = cli(
        &p,
        &["read", "-wrap-ttl=30s", "auth/approle/role/ci/role-id"],
        None,
    );
    assert_eq!(c, 0, "{err}");
    assert!(
        table.contains("wrapping_token:") && !table.contains(&role_id),
        "{table}"
    );

    // Login through the CLI, without storing the token.
    let (c, tok, err) = cli(
        &p,
        &[
            "login",
            "-method=approle",
            "-no-store",
            "-token-only",
            &format!("role_id={role_id}"),
            &format!("secret_id={secret_id}"),
        ],
        None,
    );
    assert_eq!(c, 0, "{err}");
    let tok = tok.trim().to_string();
    assert!(can_read_secret(&p, &tok));
    // Auth methods never mint root tokens; a secret id never widens the role's bindings.
    let r = req(
        &p,
        "POST",
        "/v1/auth/approle/role/evil",
        Some(json!({"token_policies": "app-read,root"})),
    );
    assert_eq!(
        (r.status, r.body["errors"][0].as_str()),
        (400, Some("auth methods cannot create root tokens"))
    );
    ok(&req(
        &p,
        "POST",
        "/v1/auth/approle/role/narrow",
        Some(json!({"token_bound_cidrs": "127.0.0.0/8"})),
    ));
    let r = req(
        &p,
        "POST",
        "/v1/auth/approle/role/narrow/secret-id",
        Some(json!({"token_bound_cidrs": "0.0.0.0/0"})),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    ok(&req(
        &p,
        "POST",
        "/v1/auth/approle/role/narrow/secret-id",
        Some(json!({"token_bound_cidrs": "127.0.0.1/32"})),
    ));
    let r = http(
        &p.addr,
        "GET",
        "/v1/secret/data/app/db",
        Some("root"),
        None,
        &[("X-Vault-Wrap-TTL", "100000h")],
    );
    assert_eq!(r.status, 400);
    // Auth methods never mint root tokens; a secret id never widens the role's bindings.
    let r = req(
        &p,
        "POST",
        "/v1/auth/approle/role/evil",
        Some(json!({"token_policies": "app-read,root"})),
    );
    assert_eq!(
        (r.status, r.body["errors"][0].as_str()),
        (400, Some("auth methods cannot create root tokens"))
    );
    ok(&req(
        &p,
        "POST",
        "/v1/auth/approle/role/narrow",
        Some(json!({"token_bound_cidrs": "127.0.0.0/8"})),
    ));
    let r = req(
        &p,
        "POST",
        "/v1/auth/approle/role/narrow/secret-id",
        Some(json!({"token_bound_cidrs": "0.0.0.0/0"})),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    ok(&req(
        &p,
        "POST",
        "/v1/auth/approle/role/narrow/secret-id",
        Some(json!({"token_bound_cidrs": "127.0.0.1/32"})),
    ));
    let r = http(
        &p.addr,
        "GET",
        "/v1/secret/data/app/db",
        Some("root"),
        None,
        &[("X-Vault-Wrap-TTL", "100000h")],
    );
    assert_eq!(r.status, 400);
    let look = with_token(&p, &tok, "GET", "/v1/auth/token/lookup-self", None);
    assert_eq!(look.body["data"]["meta"]["pipeline"], "deploy");
    assert_eq!(look.body["data"]["meta"]["role_name"], "ci");
    assert_eq!(look.body["data"]["path"], "auth/approle/login");
    assert!(look.body["data"]["policies"]
        .as_array()
        .unwrap()
        .contains(&json!("app-read")));
    assert_eq!(
        look.body["data"]["ttl"]
            .as_i64()
            .map(|t| t > 1100 && t <= 1200),
        Some(true)
    );
    // secret_id_num_uses = 2: one use left, then it is gone.
    let r = login(
        &p,
        "/v1/auth/approle/login",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    ok(&r);
    let r = login(
        &p,
        "/v1/auth/approle/login",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    assert_eq!(
        (r.status, r.body["errors"][0].as_str()),
        (400, Some("invalid role or secret ID"))
    );
    // A login response can be wrapped too.
    let sid2 = req(&p, "POST", "/v1/auth/approle/role/ci/secret-id", None).body["data"]
        ["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let wl = http(
        &p.addr,
        "POST",
        "/v1/auth/approle/login",
        None,
        Some(
            json!({"role_id": role_id, "secret_id": sid2})
                .to_string()
                .as_bytes(),
        ),
        &[("X-Vault-Wrap-TTL", "30")],
    );
    ok(&wl);
    assert!(wl.body["auth"].is_null());
    let acc = wl.body["wrap_info"]["wrapped_accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let un = with_token(
        &p,
        wl.body["wrap_info"]["token"].as_str().unwrap(),
        "POST",
        "/v1/sys/wrapping/unwrap",
        None,
    );
    ok(&un);
    assert_eq!(un.body["auth"]["accessor"], acc.as_str());
    assert!(can_read_secret(
        &p,
        un.body["auth"]["client_token"].as_str().unwrap()
    ));
    // A wrapping token is good for nothing else.
    let w2 = http(
        &p.addr,
        "GET",
        "/v1/secret/data/app/db",
        Some("root"),
        None,
        &[("X-Vault-Wrap-TTL", "60")],
    );
    let wt = w2.body["wrap_info"]["token"].as_str().unwrap().to_string();
    assert_eq!(
        with_token(&p, &wt, "GET", "/v1/secret/data/app/db", None).status,
        403
    );
    // Disabling the method revokes what it issued.
    let (c, out, _) = cli(&p, &["auth", "list", "--format", "json"], None);
    assert_eq!(c, 0);
    assert!(out.contains("approle/") && out.contains("token/"), "{out}");
    let (c, _, err) = cli(&p, &["auth", "disable", "approle"], None);
    assert_eq!(c, 0, "{err}");
    assert_eq!(
        with_token(&p, &tok, "GET", "/v1/auth/token/lookup-self", None).status,
        403
    );
    let r = login(
        &p,
        "/v1/auth/approle/login",
        json!({"role_id": role_id, "secret_id": secret_id}),
    );
    assert_ne!(r.status, 200);
}

#[test]
fn userpass_rate_limit_and_audit_hygiene() {
    let dir = tempdir("authaudit");
    let cfg = dir.join("airlock.toml");
    let audit = dir.join("audit.log");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\nkey_env = \"AIRLOCK_TEST_UNSEAL_AUTH\"\n[auth]\nfailed_login_burst = 3\nfailed_login_rate = 0.01\n[[audit]]\npath = \"{}\"\n",
            dir.join("data.db").display(),
            audit.display()
        ),
    )
    .unwrap();
    std::env::set_var("AIRLOCK_TEST_UNSEAL_AUTH", "44".repeat(32));
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    ok(&req(
        &p,
        "POST",
        "/v1/sys/mounts/secret",
        Some(json!({"type": "kv-v2"})),
    ));
    setup_secret(&p);
    ok(&req(
        &p,
        "POST",
        "/v1/sys/auth/people",
        Some(json!({"type": "userpass"})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/people/users/alice",
        Some(
            json!({"password": "correct-horse-battery", "token_policies": ["app-read"], "token_ttl": "15m"}),
        ),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/people/users/bob",
        Some(json!({"password": "bob-password-1"})),
    ));
    let r = login(
        &p,
        "/v1/auth/people/login/alice",
        json!({"password": "correct-horse-battery"}),
    );
    ok(&r);
    assert_eq!(r.body["auth"]["metadata"]["username"], "alice");
    assert_eq!(r.body["auth"]["lease_duration"], 900);
    assert!(can_read_secret(&p, &token_of(&r)));
    // The CLI logs in the same way (password given as a pair).
    let (c, out, err) = cli(
        &p,
        &[
            "login",
            "-method=userpass",
            "-path=people",
            "-no-store",
            "-token-only",
            "username=alice",
            "password=correct-horse-battery",
        ],
        None,
    );
    assert_eq!(c, 0, "{err}");
    assert!(can_read_secret(&p, out.trim()));
    // Guessing: three failures, then even the right password is refused for a while.
    for guess in ["guess-one-pw", "guess-two-pw", "guess-three-pw"] {
        let r = login(
            &p,
            "/v1/auth/people/login/alice",
            json!({"password": guess}),
        );
        assert_eq!(
            (r.status, r.body["errors"][0].as_str()),
            (400, Some("invalid username or password"))
        );
    }
    let r = login(
        &p,
        "/v1/auth/people/login/alice",
        json!({"password": "correct-horse-battery"}),
    );
    assert_eq!(r.status, 429, "{:?}", r.body);
    assert!(r.body["errors"][0]
        .as_str()
        .unwrap()
        .contains("rate limit quota exceeded"));
    // Another user from the same address is not affected.
    ok(&login(
        &p,
        "/v1/auth/people/login/bob",
        json!({"password": "bob-password-1"}),
    ));
    // Unknown users get the same answer as wrong passwords.
    let r = login(
        &p,
        "/v1/auth/people/login/nobody",
        json!({"password": "x-password"}),
    );
    assert_eq!(
        (r.status, r.body["errors"][0].as_str()),
        (400, Some("invalid username or password"))
    );
    // `login/login/<user>` is not a way in, and spelling variants share one bucket.
    let r = login(
        &p,
        "/v1/auth/people/login/login/bob",
        json!({"password": "bob-password-1"}),
    );
    assert_ne!(r.status, 200);
    let r = login(
        &p,
        "/v1/auth/people/login/%20ALICE",
        json!({"password": "correct-horse-battery"}),
    );
    assert_eq!(r.status, 429, "{:?}", r.body);
    // Guessing across many usernames from one address is limited too (5 x the burst).
    let mut limited = false;
    for i in 0..16 {
        let r = login(
            &p,
            &format!("/v1/auth/people/login/user{i}"),
            json!({"password": "nope-pw"}),
        );
        if r.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "an address guessing many usernames is limited");
    drop(p);
    let log = std::fs::read_to_string(&audit).unwrap();
    for secret in [
        "correct-horse-battery",
        "guess-one-pw",
        "guess-two-pw",
        "bob-password-1",
        "s3cret-db-pw",
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the audit log");
    }
    let failed: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| {
            e["type"] == "response"
                && e["request"]["path"] == "auth/people/login/alice"
                && e["error"] == "invalid username or password"
        })
        .collect();
    assert_eq!(failed.len(), 3, "every failed login is audited");
    assert!(failed
        .iter()
        .all(|e| e["request"]["data"].get("password").is_none()));
}

struct Jwt {
    p: Proc,
    idp: idp::Idp,
    rsa: Key,
    ec: Key,
    ed: Key,
}

fn jwt_setup() -> Jwt {
    let p = start_dev();
    setup_secret(&p);
    let idp = idp::start();
    let rsa = Key::rsa("k-rsa", RSA_KEY);
    let ec = Key::ec("k-ec");
    let ed = Key::ed("k-ed");
    idp.state.lock().unwrap().jwks = vec![rsa.jwk(), ec.jwk(), ed.jwk()];
    ok(&req(
        &p,
        "POST",
        "/v1/sys/auth/ci-jwt",
        Some(json!({"type": "jwt"})),
    ));
    // A wrong CA is caught when the config is written.
    let r = req(
        &p,
        "POST",
        "/v1/auth/ci-jwt/config",
        Some(
            json!({"oidc_discovery_url": idp.url, "oidc_discovery_ca_pem": airlock_broker::ca::Ca::generate_named(None, "other").unwrap().cert_pem()}),
        ),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("error checking oidc discovery URL"),
        "{:?}",
        r.body
    );
    ok(&req(
        &p,
        "POST",
        "/v1/auth/ci-jwt/config",
        Some(json!({"oidc_discovery_url": idp.url, "oidc_discovery_ca_pem": idp.ca_pem})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/ci-jwt/role/deploy",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "repository",
            "bound_audiences": ["https://github.com/my-org"],
            "bound_claims": {"repository": "my-org/my-repo", "ref": ["refs/heads/main", "refs/tags/v*"], "environment": "production"},
            "bound_claims_type": "glob",
            "claim_mappings": {"ref": "git_ref", "job_workflow_ref": "workflow_ref", "actor": "actor"},
            "token_policies": ["app-read"],
            "token_ttl": "10m",
        })),
    ));
    Jwt {
        p,
        idp,
        rsa,
        ec,
        ed,
    }
}

#[test]
fn jwt_oidc_discovery_logins_and_rejections() {
    let t = jwt_setup();
    let (p, idp) = (&t.p, &t.idp);
    let good = |git_ref: &str| {
        github_claims(
            &idp.url,
            "my-org/my-repo",
            git_ref,
            "production",
            now() + 300,
        )
    };
    for k in [&t.rsa, &t.ec, &t.ed] {
        let r = login(
            p,
            "/v1/auth/ci-jwt/login",
            json!({"role": "deploy", "jwt": k.sign(&good("refs/heads/main"))}),
        );
        ok(&r);
        let a = &r.body["auth"];
        assert_eq!(a["metadata"]["git_ref"], "refs/heads/main", "{}", k.alg());
        assert_eq!(a["metadata"]["role"], "deploy");
        assert_eq!(
            a["metadata"]["workflow_ref"],
            "my-org/my-repo/.github/workflows/deploy.yml@refs/heads/main"
        );
        assert_eq!(a["lease_duration"], 600);
        assert_eq!(a["policies"], json!(["app-read", "default"]));
        let tok = token_of(&r);
        assert!(can_read_secret(p, &tok));
        let look = with_token(p, &tok, "GET", "/v1/auth/token/lookup-self", None);
        assert_eq!(look.body["data"]["display_name"], "ci-jwt-my-org/my-repo");
    }
    // External Secrets Operator with jwt auth: login → lookup-self → list → read → revoke-self.
    let r = login(
        p,
        "/v1/auth/ci-jwt/login",
        json!({"role": "deploy", "jwt": t.rsa.sign(&good("refs/heads/main"))}),
    );
    let tok = token_of(&r);
    ok(&with_token(
        p,
        &tok,
        "GET",
        "/v1/auth/token/lookup-self",
        None,
    ));
    let list = with_token(p, &tok, "GET", "/v1/secret/metadata/app?list=true", None);
    assert_eq!(list.body["data"]["keys"], json!(["db"]), "{:?}", list.body);
    assert!(can_read_secret(p, &tok));
    ok(&with_token(
        p,
        &tok,
        "POST",
        "/v1/auth/token/revoke-self",
        None,
    ));
    assert_eq!(
        with_token(p, &tok, "GET", "/v1/secret/data/app/db", None).status,
        403
    );
    // A tag matches the glob.
    ok(&login(
        p,
        "/v1/auth/ci-jwt/login",
        json!({"role": "deploy", "jwt": t.rsa.sign(&good("refs/tags/v1.2"))}),
    ));
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    let mut c = good("refs/heads/main");
    c["exp"] = json!(now() - 1000);
    cases.push(("expired", t.rsa.sign(&c), "token is expired"));
    let mut c = good("refs/heads/main");
    c["nbf"] = json!(now() + 1000);
    c["iat"] = json!(now());
    cases.push(("not yet valid", t.rsa.sign(&c), "not yet valid"));
    let mut c = good("refs/heads/main");
    c["aud"] = json!("https://github.com/other-org");
    cases.push((
        "wrong audience",
        t.ec.sign(&c),
        "invalid audience (aud) claim",
    ));
    let mut c = good("refs/heads/main");
    c["iss"] = json!("https://token.actions.githubusercontent.com");
    cases.push(("wrong issuer", t.ed.sign(&c), "invalid issuer (iss) claim"));
    cases.push((
        "wrong branch",
        t.rsa.sign(&good("refs/heads/feature")),
        "claim \"ref\" does not match",
    ));
    let mut c = good("refs/heads/main");
    c["repository"] = json!("my-org/other-repo");
    cases.push((
        "other repository",
        t.rsa.sign(&c),
        "claim \"repository\" does not match",
    ));
    let mut c = good("refs/heads/main");
    c["environment"] = json!("staging");
    cases.push((
        "other environment",
        t.rsa.sign(&c),
        "claim \"environment\" does not match",
    ));
    // Algorithm confusion: an RS256 signature presented as HS256, and `alg: none`.
    cases.push((
        "HS256 header",
        t.rsa.sign_with_alg("HS256", &good("refs/heads/main")),
        "signature",
    ));
    let none = format!(
        "{}.{}.",
        idp::b64(br#"{"alg":"none","typ":"JWT"}"#),
        idp::b64(good("refs/heads/main").to_string().as_bytes())
    );
    cases.push(("alg none", none, "signature"));
    // A key the issuer never published, under a kid it does not have.
    let stranger = Key::rsa("k-stranger", OTHER_RSA_KEY);
    cases.push((
        "unknown key",
        stranger.sign(&good("refs/heads/main")),
        "failed to verify id token signature",
    ));
    // A stranger's key under the issuer's own kid.
    let impostor = Key::rsa("k-rsa", OTHER_RSA_KEY);
    cases.push((
        "impostor",
        impostor.sign(&good("refs/heads/main")),
        "failed to verify id token signature",
    ));
    // Tampered payload: claims changed after signing.
    let signed = t.rsa.sign(&good("refs/heads/feature"));
    let parts: Vec<&str> = signed.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        idp::b64(good("refs/heads/main").to_string().as_bytes()),
        parts[2]
    );
    cases.push(("tampered", tampered, "failed to verify id token signature"));
    cases.push(("garbage", "not-a-jwt".into(), "error validating token"));
    for (what, jwt, want) in &cases {
        let r = login(
            p,
            "/v1/auth/ci-jwt/login",
            json!({"role": "deploy", "jwt": jwt}),
        );
        assert_eq!(r.status, 400, "{what}: {:?}", r.body);
        let e = r.body["errors"][0].as_str().unwrap_or_default();
        assert!(e.contains(want), "{what}: {e}");
        assert!(
            !e.contains(jwt.as_str()) || jwt.len() < 12,
            "{what}: the token is echoed"
        );
    }
    let r = login(
        p,
        "/v1/auth/ci-jwt/login",
        json!({"role": "nope", "jwt": t.rsa.sign(&good("refs/heads/main"))}),
    );
    assert_eq!(r.body["errors"][0], "role \"nope\" could not be found");
    // Key rotation at the issuer: a new kid is fetched on first sight.
    let fetches = idp.state.lock().unwrap().jwks_fetches;
    let rotated = Key::ec("k-rotated");
    idp.state.lock().unwrap().jwks = vec![rotated.jwk()];
    std::thread::sleep(Duration::from_millis(1100));
    ok(&login(
        p,
        "/v1/auth/ci-jwt/login",
        json!({"role": "deploy", "jwt": rotated.sign(&good("refs/heads/main"))}),
    ));
    assert!(idp.state.lock().unwrap().jwks_fetches > fetches);
    // The retired key no longer works.
    let r = login(
        p,
        "/v1/auth/ci-jwt/login",
        json!({"role": "deploy", "jwt": t.ed.sign(&good("refs/heads/main"))}),
    );
    assert_eq!(r.status, 400);
    // The CLI reads the JWT from a file, as a CI job would.
    let dir = tempdir("jwtcli");
    let f = dir.join("id-token");
    std::fs::write(&f, rotated.sign(&good("refs/heads/main"))).unwrap();
    let (c, out, err) = cli(
        p,
        &[
            "login",
            "-method=jwt",
            "-path=ci-jwt",
            "-no-store",
            "-token-only",
            "role=deploy",
            &format!("jwt=@{}", f.display()),
        ],
        None,
    );
    assert_eq!(c, 0, "{err}");
    assert!(can_read_secret(p, out.trim()));
}

#[test]
fn jwt_static_keys_and_bao_cli_login() {
    let p = start_dev();
    setup_secret(&p);
    let rsa = Key::rsa("", RSA_KEY);
    let pub_pem =
        std::fs::read_to_string(repo_root().join("tests/compat/keys/test-only-rsa.pub.pem"))
            .unwrap();
    ok(&req(
        &p,
        "POST",
        "/v1/sys/auth/jwt",
        Some(json!({"type": "jwt"})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/jwt/config",
        Some(json!({
        "jwt_validation_pubkeys": [pub_pem], "bound_issuer": "https://token.actions.githubusercontent.com"})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/jwt/role/gha",
        Some(json!({
        "role_type": "jwt", "user_claim": "sub", "bound_subject": "repo:my-org/my-repo:environment:production",
        "bound_audiences": "https://github.com/my-org", "token_policies": "app-read"})),
    ));
    let claims = github_claims(
        "https://token.actions.githubusercontent.com",
        "my-org/my-repo",
        "refs/heads/main",
        "production",
        now() + 300,
    );
    let jwt = rsa.sign(&claims);
    ok(&login(
        &p,
        "/v1/auth/jwt/login",
        json!({"role": "gha", "jwt": jwt}),
    ));
    let mut other = claims.clone();
    other["sub"] = json!("repo:my-org/my-repo:environment:staging");
    let r = login(
        &p,
        "/v1/auth/jwt/login",
        json!({"role": "gha", "jwt": rsa.sign(&other)}),
    );
    assert_eq!(
        r.body["errors"][0],
        "error validating token: invalid subject (sub) claim"
    );
    let bao = openbao();
    if !require("the OpenBao CLI (../shared/tools/openbao)", bao.is_some()) {
        return;
    }
    let out = Command::new(bao.unwrap())
        .args([
            "write",
            "-format=json",
            "auth/jwt/login",
            "role=gha",
            &format!("jwt={jwt}"),
        ])
        .env("VAULT_ADDR", &p.addr)
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(can_read_secret(
        &p,
        v["auth"]["client_token"].as_str().unwrap()
    ));
    // The CLI's own auth commands: tune (via sys/mounts/auth/<path>/tune) and list.
    let bao = |args: &[&str]| {
        Command::new(openbao().unwrap())
            .args(args)
            .env("VAULT_ADDR", &p.addr)
            .env("VAULT_TOKEN", "root")
            .output()
            .unwrap()
    };
    let o = bao(&["auth", "tune", "-default-lease-ttl=30m", "jwt"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bao(&["auth", "list", "-format=json"]);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list["jwt/"]["type"], "jwt");
    let r = login(&p, "/v1/auth/jwt/login", json!({"role": "gha", "jwt": jwt}));
    assert_eq!(
        r.body["auth"]["lease_duration"], 1800,
        "the mount's tuned TTL applies"
    );
}

fn k8s_setup(p: &Proc, idp: &idp::Idp) {
    ok(&req(
        p,
        "POST",
        "/v1/sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    ));
    k8s_setup_config(p, idp);
    ok(&req(
        p,
        "POST",
        "/v1/auth/kubernetes/role/eso",
        Some(json!({
        "bound_service_account_names": ["eso"],
        "bound_service_account_namespaces": ["external-secrets"],
        "token_policies": ["app-read"], "token_ttl": "20m"})),
    ));
    idp.state.lock().unwrap().reviewer = Some("reviewer-service-account-jwt".into());
}

fn k8s_setup_config(p: &Proc, idp: &idp::Idp) {
    ok(&req(
        p,
        "POST",
        "/v1/auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": idp.url,
            "kubernetes_ca_cert": idp.ca_pem,
            "token_reviewer_jwt": "reviewer-service-account-jwt",
            "jwks_url": format!("{}/jwks", idp.url),
            "jwks_ca_pem": idp.ca_pem,
        })),
    ));
}

#[test]
fn kubernetes_token_review_jwks_and_the_eso_call_sequence() {
    let p = start_dev();
    setup_secret(&p);
    ok(&req(
        &p,
        "POST",
        "/v1/secret/data/app/api",
        Some(json!({"data": {"key": "v1"}})),
    ));
    let idp = idp::start();
    let signer = Key::rsa("k8s", RSA_KEY);
    idp.state.lock().unwrap().jwks = vec![signer.jwk()];
    k8s_setup(&p, &idp);
    let cfg = req(&p, "GET", "/v1/auth/kubernetes/config", None);
    assert_eq!(cfg.body["data"]["token_reviewer_jwt_set"], true);
    assert!(
        !String::from_utf8_lossy(&cfg.raw).contains("reviewer-service-account-jwt"),
        "the reviewer JWT is never read back"
    );
    let eso = Account {
        namespace: "external-secrets".into(),
        name: "eso".into(),
        uid: "7f0c7c0e-1111-2222-3333-444455556666".into(),
    };
    let aud = "https://kubernetes.default.svc.cluster.local";
    let jwt = signer.sign(&k8s_claims(
        &eso,
        aud,
        "https://kubernetes.default.svc.cluster.local",
    ));
    idp.state
        .lock()
        .unwrap()
        .accounts
        .insert(jwt.clone(), eso.clone());

    // External Secrets Operator: login → lookup-self → list → read → revoke-self.
    let r = login(
        &p,
        "/v1/auth/kubernetes/login",
        json!({"role": "eso", "jwt": jwt}),
    );
    ok(&r);
    let a = &r.body["auth"];
    assert_eq!(
        a["metadata"]["service_account_namespace"],
        "external-secrets"
    );
    assert_eq!(a["metadata"]["service_account_uid"], eso.uid.as_str());
    assert_eq!(a["lease_duration"], 1200);
    let tok = token_of(&r);
    let review = idp.state.lock().unwrap().reviews.last().cloned().unwrap();
    assert_eq!(review["bearer"], "reviewer-service-account-jwt");
    assert_eq!(review["body"]["kind"], "TokenReview");
    assert_eq!(review["body"]["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(review["body"]["spec"]["token"], jwt.as_str());
    assert_eq!(review["body"]["spec"]["audiences"], json!([aud]));
    let look = with_token(&p, &tok, "GET", "/v1/auth/token/lookup-self", None);
    ok(&look);
    assert_eq!(look.body["data"]["path"], "auth/kubernetes/login");
    let list = with_token(&p, &tok, "GET", "/v1/secret/metadata/app?list=true", None);
    ok(&list);
    assert_eq!(list.body["data"]["keys"], json!(["api", "db"]));
    assert!(can_read_secret(&p, &tok));
    ok(&with_token(
        &p,
        &tok,
        "POST",
        "/v1/auth/token/revoke-self",
        None,
    ));
    assert_eq!(
        with_token(&p, &tok, "GET", "/v1/auth/token/lookup-self", None).status,
        403
    );

    // A token the API server does not vouch for, and bindings that do not match.
    let ghost = Account {
        uid: "00000000-dead-beef-0000-000000000000".into(),
        ..eso.clone()
    };
    let r = login(
        &p,
        "/v1/auth/kubernetes/login",
        json!({"role": "eso", "jwt": signer.sign(&k8s_claims(&ghost, aud, "x"))}),
    );
    assert_eq!(
        (r.status, r.body["errors"][0].as_str()),
        (403, Some("permission denied"))
    );
    let other_ns = Account {
        namespace: "default".into(),
        ..eso.clone()
    };
    let jwt2 = signer.sign(&k8s_claims(&other_ns, aud, "x"));
    idp.state
        .lock()
        .unwrap()
        .accounts
        .insert(jwt2.clone(), other_ns);
    let r = login(
        &p,
        "/v1/auth/kubernetes/login",
        json!({"role": "eso", "jwt": jwt2}),
    );
    assert_eq!(
        (r.status, r.body["errors"][0].as_str()),
        (403, Some("namespace not authorized"))
    );
    let r = login(
        &p,
        "/v1/auth/kubernetes/login",
        json!({"role": "nope", "jwt": jwt}),
    );
    assert_eq!(
        (r.status, r.body["errors"][0].as_str()),
        (400, Some("invalid role name \"nope\""))
    );
    // Pointing the config at another host drops the stored reviewer credential.
    ok(&req(
        &p,
        "POST",
        "/v1/auth/kubernetes/config",
        Some(json!({"kubernetes_host": "https://localhost:1"})),
    ));
    assert_eq!(
        req(&p, "GET", "/v1/auth/kubernetes/config", None).body["data"]["token_reviewer_jwt_set"],
        false
    );
    k8s_setup_config(&p, &idp);
    // Pointing the config at another host drops the stored reviewer credential.
    ok(&req(
        &p,
        "POST",
        "/v1/auth/kubernetes/config",
        Some(json!({"kubernetes_host": "https://localhost:1"})),
    ));
    assert_eq!(
        req(&p, "GET", "/v1/auth/kubernetes/config", None).body["data"]["token_reviewer_jwt_set"],
        false
    );
    k8s_setup_config(&p, &idp);
    // A wrong reviewer credential at the API server: refused, not let through.
    idp.state.lock().unwrap().reviewer = Some("rotated-reviewer".into());
    let r = login(
        &p,
        "/v1/auth/kubernetes/login",
        json!({"role": "eso", "jwt": jwt}),
    );
    assert_eq!(r.status, 403);
    idp.state.lock().unwrap().reviewer = Some("reviewer-service-account-jwt".into());

    // The same service account verified against the cluster's JWKS, without a TokenReview.
    ok(&req(
        &p,
        "POST",
        "/v1/auth/kubernetes/role/eso-jwks",
        Some(json!({
        "bound_service_account_names": "eso", "bound_service_account_namespaces": "external-secrets",
        "audience": aud, "token_review_mode": "jwks", "token_policies": "app-read"})),
    ));
    let reviews = idp.state.lock().unwrap().reviews.len();
    let r = login(
        &p,
        "/v1/auth/kubernetes/login",
        json!({"role": "eso-jwks", "jwt": jwt}),
    );
    ok(&r);
    assert!(can_read_secret(&p, &token_of(&r)));
    assert_eq!(
        idp.state.lock().unwrap().reviews.len(),
        reviews,
        "no TokenReview in jwks mode"
    );
    let forged = Key::rsa("k8s", OTHER_RSA_KEY).sign(&k8s_claims(&eso, aud, "x"));
    assert_eq!(
        login(
            &p,
            "/v1/auth/kubernetes/login",
            json!({"role": "eso-jwks", "jwt": forged})
        )
        .status,
        403
    );
    let wrong_aud = signer.sign(&k8s_claims(&eso, "https://other", "x"));
    assert_eq!(
        login(
            &p,
            "/v1/auth/kubernetes/login",
            json!({"role": "eso-jwks", "jwt": wrong_aud})
        )
        .status,
        403
    );
    let mut expired = k8s_claims(&eso, aud, "x");
    expired["exp"] = json!(now() - 3600);
    assert_eq!(
        login(
            &p,
            "/v1/auth/kubernetes/login",
            json!({"role": "eso-jwks", "jwt": signer.sign(&expired)})
        )
        .status,
        403
    );
}

#[test]
fn hvac_logs_in_with_every_method() {
    if !require("python3 with hvac", python_has("hvac")) {
        return;
    }
    let p = start_dev();
    setup_secret(&p);
    let idp = idp::start();
    let signer = Key::rsa("k-rsa", RSA_KEY);
    idp.state.lock().unwrap().jwks = vec![signer.jwk()];
    // AppRole
    ok(&req(
        &p,
        "POST",
        "/v1/sys/auth/approle",
        Some(json!({"type": "approle"})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/approle/role/ci",
        Some(json!({"token_policies": "app-read"})),
    ));
    let role_id = req(&p, "GET", "/v1/auth/approle/role/ci/role-id", None).body["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = req(&p, "POST", "/v1/auth/approle/role/ci/secret-id", None).body["data"]
        ["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    // userpass
    ok(&req(
        &p,
        "POST",
        "/v1/sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/userpass/users/eso",
        Some(json!({"password": "eso-password", "token_policies": "app-read"})),
    ));
    // JWT (mounted at a custom path) with a JWKS URL
    ok(&req(
        &p,
        "POST",
        "/v1/sys/auth/ci-jwt",
        Some(json!({"type": "jwt"})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/ci-jwt/config",
        Some(
            json!({"jwks_url": format!("{}/jwks", idp.url), "jwks_ca_pem": idp.ca_pem, "bound_issuer": idp.url}),
        ),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/ci-jwt/role/deploy",
        Some(json!({"role_type": "jwt", "user_claim": "repository",
        "bound_audiences": "https://github.com/my-org", "bound_claims": {"repository": "my-org/my-repo"}, "token_policies": "app-read"})),
    ));
    let gh = signer.sign(&github_claims(
        &idp.url,
        "my-org/my-repo",
        "refs/heads/main",
        "production",
        now() + 600,
    ));
    // Kubernetes
    k8s_setup(&p, &idp);
    let eso = Account {
        namespace: "external-secrets".into(),
        name: "eso".into(),
        uid: "u-1".into(),
    };
    let kjwt = signer.sign(&k8s_claims(&eso, "https://kubernetes.default.svc", "x"));
    idp.state.lock().unwrap().accounts.insert(kjwt.clone(), eso);
    let out = Command::new("python3")
        .arg(repo_root().join("tests/clients/hvac_auth.py"))
        .env("VAULT_ADDR", &p.addr)
        .env("ROLE_ID", &role_id)
        .env("SECRET_ID", &secret_id)
        .env("GH_JWT", &gh)
        .env("K8S_JWT", &kjwt)
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hvac auth: ok"), "{stdout}");
}

/// The OIDC provider's answer to the browser: where it sends the browser back.
fn browser_visit(auth_url: &str, ca: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(airlock_server::http_client::request(
            "GET", auth_url, ca, None, None,
        ))
        .unwrap();
    assert_eq!(r.status, 302, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["location"].as_str().unwrap().to_string()
}

/// `http://localhost:PORT/oidc/callback?…` → (`127.0.0.1:PORT`, `/oidc/callback?…`).
fn split_callback(location: &str) -> (String, String) {
    let rest = location.strip_prefix("http://localhost:").unwrap();
    let (port, path) = rest.split_once('/').unwrap();
    (format!("127.0.0.1:{port}"), format!("/{path}"))
}

#[test]
fn oidc_browser_login_api_bao_and_airlock_cli() {
    let p = start_dev();
    setup_secret(&p);
    let idp = idp::start();
    let key = std::sync::Arc::new(Key::rsa("k-oidc", RSA_KEY));
    {
        let mut s = idp.state.lock().unwrap();
        s.jwks = vec![key.jwk()];
        s.client = Some(("airlock-web".into(), "client s3cret/+=".into()));
        s.id_key = Some(key.clone());
        s.id_claims = json!({"sub": "u-42", "email": "ada@example.com", "groups": ["eng"]});
    }
    ok(&req(
        &p,
        "POST",
        "/v1/sys/auth/oidc",
        Some(json!({"type": "oidc"})),
    ));
    ok(&req(
        &p,
        "POST",
        "/v1/auth/oidc/config",
        Some(json!({
            "oidc_discovery_url": idp.url, "oidc_discovery_ca_pem": idp.ca_pem,
            "oidc_client_id": "airlock-web", "oidc_client_secret": "client s3cret/+=",
            "default_role": "web",
        })),
    ));
    let (bao_port, cli_port, api_port) = (free_port(), free_port(), free_port());
    let uris: Vec<String> = [bao_port, cli_port, api_port]
        .iter()
        .map(|p| format!("http://localhost:{p}/oidc/callback"))
        .collect();
    ok(&req(
        &p,
        "POST",
        "/v1/auth/oidc/role/web",
        Some(json!({
            "role_type": "oidc", "user_claim": "email", "allowed_redirect_uris": uris,
            "bound_claims": {"groups": ["eng"]}, "oidc_scopes": ["email", "profile"],
            "claim_mappings": {"email": "email"},
            "token_policies": ["app-read"], "token_ttl": "10m",
        })),
    ));
    let auth_url = |body: Value| login(&p, "/v1/auth/oidc/oidc/auth_url", body);
    // The provider's redirect back, as a query string, for a fresh login.
    let browser_login = || {
        let r = auth_url(json!({"redirect_uri": uris[2]}));
        let location = browser_visit(r.body["data"]["auth_url"].as_str().unwrap(), &idp.ca_pem);
        let (_, cb) = split_callback(&location);
        cb.split_once('?').unwrap().1.to_string()
    };
    let callback = |q: &str| {
        http(
            &p.addr,
            "GET",
            &format!("/v1/auth/oidc/oidc/callback?{q}"),
            None,
            None,
            &[],
        )
    };

    // The API as a browser drives it.
    let r = auth_url(json!({"role": "web", "redirect_uri": "https://evil.example/cb"}));
    assert_eq!(r.status, 400);
    assert!(r.body["errors"][0]
        .as_str()
        .unwrap()
        .contains("unauthorized redirect_uri"));
    let r = auth_url(json!({"redirect_uri": uris[2]}));
    ok(&r);
    let url = r.body["data"]["auth_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/authorize?", idp.url)), "{url}");
    assert!(
        url.contains("client_id=airlock-web") && url.contains("scope=openid%20email%20profile")
    );
    let location = browser_visit(&url, &idp.ca_pem);
    let (_, cb) = split_callback(&location);
    let q = cb.split_once('?').unwrap().1.to_string();
    let r = callback(&format!("{q}x"));
    assert_eq!(r.status, 400, "a tampered state is refused: {:?}", r.body);
    let r = callback(&q);
    ok(&r);
    assert_eq!(r.body["auth"]["metadata"]["email"], "ada@example.com");
    assert_eq!(r.body["auth"]["metadata"]["role"], "web");
    assert!(can_read_secret(&p, &token_of(&r)));
    let again = callback(&q);
    assert_eq!(again.status, 400, "a state is single use");
    // An ID token whose nonce is not the one Airlock sent is refused.
    idp.state.lock().unwrap().wrong_nonce = true;
    let r = callback(&browser_login());
    assert_eq!(r.status, 400);
    assert!(
        r.body["errors"][0].as_str().unwrap().contains("nonce"),
        "{:?}",
        r.body
    );
    idp.state.lock().unwrap().wrong_nonce = false;
    // A user outside the bound group is refused.
    idp.state.lock().unwrap().id_claims["groups"] = json!(["sales"]);
    let r = callback(&browser_login());
    assert_eq!(r.status, 400, "{:?}", r.body);
    idp.state.lock().unwrap().id_claims["groups"] = json!(["eng"]);
    // The client secret is never read back.
    let cfg = req(&p, "GET", "/v1/auth/oidc/config", None);
    assert!(!cfg.raw.windows(6).any(|w| w == b"s3cret"));

    // Real clients: the `bao` CLI and `airlock login -method=oidc`, each with its own
    // callback listener; the test plays the browser.
    let run_cli = |name: &str, mut cmd: Command, port: u16| {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        // Generous: the machine may be busy with other tests (browsers among them). What
        // the client printed instead of a URL is in the failure message.
        let mut said = Vec::new();
        let url = loop {
            match rx.recv_timeout(Duration::from_secs(90)) {
                Ok(line) => match line.find("https://") {
                    Some(i) => break line[i..].trim().to_string(),
                    None => said.push(line),
                },
                Err(_) => panic!("{name} printed no URL: {}", said.join("\n")),
            }
        };
        let location = browser_visit(&url, &idp.ca_pem);
        let (addr, cb) = split_callback(&location);
        assert_eq!(addr, format!("127.0.0.1:{port}"));
        let page = http(&addr, "GET", &cb, None, None, &[]);
        assert_eq!(page.status, 200, "{name}'s callback page");
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{name} login failed: {text}");
        text
    };
    let home = tempdir("oidc-cli");
    let mut c = Command::new(bin());
    c.args(["login", "-method=oidc", "role=web", "skip_browser=true"])
        .arg(format!("port={cli_port}"))
        .env("AIRLOCK_ADDR", &p.addr)
        .env("HOME", home.to_str().unwrap())
        .env_remove("AIRLOCK_TOKEN")
        .env_remove("VAULT_TOKEN");
    let text = run_cli("airlock", c, cli_port);
    assert!(
        text.contains("Success! You are now authenticated."),
        "{text}"
    );
    let stored = std::fs::read_to_string(home.join(".airlock-token")).unwrap();
    assert!(can_read_secret(&p, stored.trim()));
    let bao = openbao();
    if require("the OpenBao CLI (../shared/tools/openbao)", bao.is_some()) {
        let mut c = Command::new(bao.unwrap());
        c.args([
            "login",
            "-method=oidc",
            "-no-store",
            "-format=json",
            "role=web",
            "skip_browser=true",
        ])
        .arg(format!("port={bao_port}"))
        .env("VAULT_ADDR", &p.addr)
        .env_remove("VAULT_TOKEN");
        let text = run_cli("bao", c, bao_port);
        let v: Value = serde_json::from_str(&text).unwrap();
        let t = v["auth"]["client_token"].as_str().unwrap();
        assert!(can_read_secret(&p, t));
    }
}

/// Outbound HTTPS (here the Kubernetes TokenReview) reuses its connections, goes through
/// HTTPS_PROXY (a CONNECT tunnel, with the proxy's credentials) unless NO_PROXY exempts the
/// host, and the CLI reaches a server through the same proxy.
#[test]
fn outbound_https_reuses_connections_and_honours_https_proxy() {
    let idp = idp::start();
    let signer = Key::rsa("k8s", RSA_KEY);
    let eso = Account {
        namespace: "external-secrets".into(),
        name: "eso".into(),
        uid: "7f0c7c0e-1111-2222-3333-444455556666".into(),
    };
    let aud = "https://kubernetes.default.svc.cluster.local";
    let jwt = signer.sign(&k8s_claims(&eso, aud, aud));
    idp.state.lock().unwrap().accounts.insert(jwt.clone(), eso);
    let port = idp.url.rsplit(':').next().unwrap().to_string();
    let setup = |p: &Proc, host: &str| {
        ok(&req(
            p,
            "POST",
            "/v1/sys/auth/kubernetes",
            Some(json!({"type": "kubernetes"})),
        ));
        ok(&req(
            p,
            "POST",
            "/v1/auth/kubernetes/config",
            Some(json!({
                "kubernetes_host": format!("https://{host}:{port}"),
                "kubernetes_ca_cert": idp.ca_pem,
                "token_reviewer_jwt": "reviewer-service-account-jwt",
            })),
        ));
        ok(&req(
            p,
            "POST",
            "/v1/auth/kubernetes/role/eso",
            Some(json!({"bound_service_account_names": ["eso"],
                "bound_service_account_namespaces": ["external-secrets"], "token_policies": ["default"]})),
        ));
    };
    idp.state.lock().unwrap().reviewer = Some("reviewer-service-account-jwt".into());
    let logins = |p: &Proc, n: usize| {
        for _ in 0..n {
            ok(&login(
                p,
                "/v1/auth/kubernetes/login",
                json!({"role": "eso", "jwt": jwt}),
            ));
        }
    };

    // Direct: five logins, five TokenReviews, one connection.
    let direct = start_dev();
    setup(&direct, "localhost");
    let before = idp.state.lock().unwrap().connections;
    let reviews = idp.state.lock().unwrap().reviews.len();
    logins(&direct, 5);
    let s = idp.state.lock().unwrap();
    assert_eq!(s.reviews.len() - reviews, 5);
    assert_eq!(
        s.connections - before,
        1,
        "a TLS connection per TokenReview"
    );
    drop(s);

    // Through the proxy: idp.test resolves only there.
    let proxy = test_proxy();
    let with_creds = proxy.url.replace("http://", "http://svc%40corp:pr0xy-pw@");
    let via = start_dev_env(&[
        ("HTTPS_PROXY", &with_creds),
        ("NO_PROXY", "internal.example"),
    ]);
    setup(&via, "idp.test");
    logins(&via, 3);
    {
        let t = proxy.tunnels.lock().unwrap();
        assert_eq!(t.len(), 1, "one tunnel, reused: {t:?}");
        assert_eq!(t[0].0, format!("idp.test:{port}"));
        use base64::Engine;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("svc@corp:pr0xy-pw")
        );
        assert_eq!(t[0].1.as_deref(), Some(want.as_str()));
    }
    // NO_PROXY exempts the host: no tunnel, and a direct connection to idp.test fails.
    let exempt = start_dev_env(&[("HTTPS_PROXY", &proxy.url), ("NO_PROXY", ".test")]);
    setup(&exempt, "idp.test");
    let r = login(
        &exempt,
        "/v1/auth/kubernetes/login",
        json!({"role": "eso", "jwt": jwt}),
    );
    assert_ne!(r.status, 200);
    assert_eq!(proxy.tunnels.lock().unwrap().len(), 1);

    // The CLI, to an HTTPS server known by a name only the proxy resolves.
    let dir = tempdir("cli-proxy");
    if !openssl_certs(&dir) {
        return;
    }
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n[storage]\npath = \"{}\"\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
            dir.join("data.db").display()
        ),
    )
    .unwrap();
    let srv = start_config(&cfg);
    let srv_port = srv.addr.rsplit(':').next().unwrap().to_string();
    let out = Command::new(bin())
        .args(["status", "--format", "json"])
        .env("AIRLOCK_ADDR", format!("https://airlock.test:{srv_port}"))
        .env("AIRLOCK_CACERT", dir.join("ca.pem"))
        .env("HTTPS_PROXY", &proxy.url)
        .env_remove("NO_PROXY")
        .env_remove("AIRLOCK_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"initialized\""),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(proxy
        .tunnels
        .lock()
        .unwrap()
        .iter()
        .any(|(t, _)| t == &format!("airlock.test:{srv_port}")));
}
