//! The `aws` secrets engine against moto (an AWS API emulator) in server mode, checked with
//! boto3 (`tests/aws/moto_iam.py`). Moto runs with `INITIAL_NO_AUTH_ACTION_COUNT=3`: after
//! the setup's first three calls it checks every request's SigV4 signature and access key,
//! so Airlock's signing is verified by a real verifier and a deleted key is refused.
//!
//! Covered: IAM users hold the role's policies, groups, tags, path and boundary, their keys
//! work, and revoke and expiry remove every trace; assumed_role, federation_token and
//! session_token credentials with the requested TTL; Terraform's
//! `vault_aws_access_credentials` request sequence; a revocation that fails while IAM is
//! unreachable is retried and completes once the config is fixed; rotate-root; bad input.
//!
//! What moto does not do: it ignores a user's permissions boundary, and it does not accept federation-token or session-token credentials
//! when it checks signatures (only IAM keys and assumed-role sessions), so those are checked
//! for shape and lifetime, not used.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

/// A moto server on a free port, killed (by its PID) on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_available() -> bool {
    python_has("moto")
        && python_has("boto3")
        && python_has("flask")
        && Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn start_moto() -> Moto {
    let port = free_port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    let url = format!("http://127.0.0.1:{port}");
    let m = Moto { child, url };
    wait_until("moto to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    m
}

/// Runs the boto3 helper; its JSON answer.
fn boto(args: &[&str], root: Option<&Value>) -> Value {
    let script = repo_root().join("tests/aws/moto_iam.py");
    let mut c = Command::new("python3");
    c.arg(script).args(args);
    if let Some(r) = root {
        c.env("AIRLOCK_TEST_AWS_KEY", r["checker_key"].as_str().unwrap());
        c.env(
            "AIRLOCK_TEST_AWS_SECRET",
            r["checker_secret"].as_str().unwrap(),
        );
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "moto_iam.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn whoami(m: &Moto, data: &Value) -> Value {
    let mut args = vec![
        "whoami",
        m.url.as_str(),
        data["access_key"].as_str().unwrap(),
        data["secret_key"].as_str().unwrap(),
    ];
    if let Some(t) = data["security_token"].as_str() {
        args.push(t);
    }
    boto(&args, None)
}

/// The IAM user name behind working keys (from their ARN).
fn user_of(m: &Moto, data: &Value) -> String {
    let me = whoami(m, data);
    assert_eq!(me["ok"], true, "{me}");
    me["arn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// Airlock with an `aws/` mount configured against `m`; the root key.
fn setup(m: &Moto) -> (Proc, Value) {
    let root = boto(&["setup", &m.url], None);
    let p = start_dev();
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/aws",
            Some(json!({"type": "aws"}))
        )
        .status,
        204
    );
    let r = req(
        &p,
        "POST",
        "/v1/aws/config/root",
        Some(json!({
            "access_key": root["access_key"], "secret_key": root["secret_key"],
            "region": "us-east-1", "iam_endpoint": m.url, "sts_endpoint": m.url,
            "max_retries": 1,
        })),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    (p, root)
}

fn ok(r: Resp) -> Value {
    assert!(r.status < 300, "status {}: {}", r.status, r.body);
    r.body
}

#[test]
fn iam_users_sts_credentials_and_terraform() {
    if !require(
        "moto[server] and boto3 (python3 -m pip install 'moto[server]' boto3)",
        moto_available(),
    ) {
        return;
    }
    let m = start_moto();
    let (p, root) = setup(&m);
    let cfg = ok(req(&p, "GET", "/v1/aws/config/root", None));
    assert_eq!(cfg["data"]["access_key"], root["access_key"]);
    assert!(cfg["data"].get("secret_key").is_none());
    assert!(!cfg
        .to_string()
        .contains(root["secret_key"].as_str().unwrap()));

    // An IAM user with everything a role can give it.
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#;
    ok(req(
        &p,
        "POST",
        "/v1/aws/roles/dev",
        Some(json!({
            "credential_type": "iam_user",
            "policy_arns": [root["policy_arn"]],
            "policy_document": doc,
            "iam_groups": root["group"],
            "iam_tags": ["team=payments", "env=test"],
            "user_path": "/airlock/",
            "permissions_boundary_arn": root["boundary_arn"],
        })),
    ));
    let listed = ok(req(&p, "LIST", "/v1/aws/roles", None));
    assert_eq!(listed["data"]["keys"], json!(["dev"]));
    let c = ok(req(&p, "GET", "/v1/aws/creds/dev", None));
    assert!(c["lease_id"]
        .as_str()
        .unwrap()
        .starts_with("aws/creds/dev/"));
    assert_eq!(c["renewable"], true);
    assert!(c["data"]["security_token"].is_null());
    let user = user_of(&m, &c["data"]);
    assert!(user.starts_with("vault-token-dev-"), "{user}");
    let u = boto(&["user", &m.url, &user], Some(&root));
    assert_eq!(u["path"], "/airlock/");
    assert_eq!(u["managed"], json!([root["policy_arn"]]));
    assert_eq!(u["inline"], json!(["dev"]));
    assert_eq!(u["groups"], json!([root["group"]]));
    assert_eq!(u["tags"], json!({"team": "payments", "env": "test"}));
    // moto ignores CreateUser's PermissionsBoundary (it keeps boundaries of roles only), so
    // the boundary is sent but cannot be checked here.
    assert_eq!(u["keys"], json!([c["data"]["access_key"]]));

    // Revoke removes every trace, and the keys stop working.
    let r = req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke",
        Some(json!({"lease_id": c["lease_id"]})),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(boto(&["user", &m.url, &user], Some(&root))["exists"], false);
    assert_eq!(whoami(&m, &c["data"])["ok"], false);

    // Expiry does the same.
    ok(req(
        &p,
        "POST",
        "/v1/aws/config/lease",
        Some(json!({"lease": "2s", "lease_max": "10s"})),
    ));
    assert_eq!(
        ok(req(&p, "GET", "/v1/aws/config/lease", None))["data"],
        json!({"lease": "2s", "lease_max": "10s"})
    );
    let c = ok(req(&p, "GET", "/v1/aws/creds/dev", None));
    assert_eq!(c["lease_duration"], 2);
    let user = user_of(&m, &c["data"]);
    wait_until(
        "the expired IAM user to be removed",
        Duration::from_secs(30),
        || boto(&["user", &m.url, &user], Some(&root))["exists"] == false,
    );

    // assumed_role: POST with a TTL; the credentials work and live that long.
    ok(req(
        &p,
        "POST",
        "/v1/aws/roles/deploy",
        Some(json!({
            "credential_type": "assumed_role", "role_arns": [root["role_arn"]],
            "default_sts_ttl": "20m", "max_sts_ttl": "1h",
        })),
    ));
    let s = ok(req(
        &p,
        "POST",
        "/v1/aws/sts/deploy",
        Some(json!({"ttl": "15m"})),
    ));
    assert_eq!(s["renewable"], false);
    assert!(
        (895..=900).contains(&s["lease_duration"].as_i64().unwrap()),
        "{s}"
    );
    assert!(
        s["data"]["arn"]
            .as_str()
            .unwrap()
            .contains(":assumed-role/deployer/"),
        "{s}"
    );
    let me = whoami(&m, &s["data"]);
    assert_eq!(me["ok"], true, "{me}");
    assert!(
        me["arn"]
            .as_str()
            .unwrap()
            .contains("assumed-role/deployer"),
        "{me}"
    );
    // The role's default TTL when none is asked; revoking is accepted and changes nothing.
    let s = ok(req(&p, "GET", "/v1/aws/creds/deploy", None));
    assert!(
        (1195..=1200).contains(&s["lease_duration"].as_i64().unwrap()),
        "{s}"
    );
    let r = req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke",
        Some(json!({"lease_id": s["lease_id"]})),
    );
    assert_eq!(r.status, 204);
    assert_eq!(whoami(&m, &s["data"])["ok"], true);

    // federation_token and session_token: shape and lifetime (see the module doc).
    ok(req(
        &p,
        "POST",
        "/v1/aws/roles/fed",
        Some(json!({
            "credential_type": "federation_token", "policy_document": doc,
        })),
    ));
    let f = ok(req(
        &p,
        "PUT",
        "/v1/aws/sts/fed",
        Some(json!({"ttl": 1000})),
    ));
    assert!(
        (995..=1000).contains(&f["lease_duration"].as_i64().unwrap()),
        "{f}"
    );
    assert!(f["data"]["security_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(
        f["data"]["arn"]
            .as_str()
            .unwrap()
            .contains(":federated-user/vault-"),
        "{f}"
    );
    ok(req(
        &p,
        "POST",
        "/v1/aws/roles/session",
        Some(json!({"credential_type": "session_token"})),
    ));
    let st = ok(req(&p, "GET", "/v1/aws/sts/session?ttl=1800", None));
    assert!(
        (1795..=1800).contains(&st["lease_duration"].as_i64().unwrap()),
        "{st}"
    );
    assert!(st["data"]["access_key"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));

    terraform_flow(&p, &m, &root);

    // Bad input: clear 4xx answers.
    for (path, body, needle) in [
        (
            "/v1/aws/roles/bad",
            json!({"credential_type": "magic"}),
            "unrecognized credential type",
        ),
        (
            "/v1/aws/roles/bad",
            json!({"credential_type": "iam_user"}),
            "needs at least one of",
        ),
        (
            "/v1/aws/sts/deploy",
            json!({"ttl": "2h"}),
            "exceeds the maximum",
        ),
        (
            "/v1/aws/sts/deploy",
            json!({"role_arn": "arn:aws:iam::1:role/x"}),
            "not in allowed role arns",
        ),
        ("/v1/aws/creds/missing", json!({}), "not found"),
    ] {
        let r = req(&p, "POST", path, Some(body));
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.to_string().contains(needle), "{path}: {}", r.body);
    }
    assert_eq!(req(&p, "DELETE", "/v1/aws/roles/fed", None).status, 204);
    assert_eq!(req(&p, "GET", "/v1/aws/roles/fed", None).status, 404);
}

/// The requests of terraform-provider-vault's ephemeral `vault_aws_access_credentials`
/// (`internal/vault/secrets/ephemeral/aws_access_credentials.go`): `type = "creds"` reads
/// `<mount>/creds/<role>` — a plain GET, or a GET with `role_arn`, `ttl`, `region` as query
/// parameters (`ReadWithData`) —; `type = "sts"` writes `<mount>/sts/<role>` (PUT) with
/// those fields in the body. It keeps `data.access_key`, `data.secret_key`,
/// `data.security_token`, `lease_id`, `lease_duration` and `renewable`.
fn terraform_flow(p: &Proc, m: &Moto, root: &Value) {
    let parse = |r: Resp| -> (Value, String, i64, bool) {
        let b = ok(r);
        (
            json!({
                "access_key": b["data"]["access_key"],
                "secret_key": b["data"]["secret_key"],
                "security_token": b["data"]["security_token"],
            }),
            b["lease_id"].as_str().unwrap().to_string(),
            b["lease_duration"].as_i64().unwrap(),
            b["renewable"].as_bool().unwrap(),
        )
    };
    // type = "creds", no optional argument: GET.
    ok(req(
        p,
        "POST",
        "/v1/aws/config/lease",
        Some(json!({"lease": "1h", "lease_max": "2h"})),
    ));
    let (data, lease, duration, renewable) = parse(req(p, "GET", "/v1/aws/creds/dev", None));
    assert!(lease.starts_with("aws/creds/dev/") && duration == 3600 && renewable);
    assert!(data["security_token"].is_null());
    let user = user_of(m, &data);
    ok(req(
        p,
        "PUT",
        "/v1/sys/leases/revoke",
        Some(json!({"lease_id": lease})),
    ));
    assert_eq!(boto(&["user", &m.url, &user], Some(root))["exists"], false);
    // type = "creds" with role_arn, ttl and region: GET with a query string.
    let arn = root["role_arn"].as_str().unwrap();
    let q = format!(
        "/v1/aws/creds/deploy?role_arn={}&ttl=900s&region=us-east-1",
        arn.replace(':', "%3A").replace('/', "%2F")
    );
    let (data, lease, duration, renewable) = parse(req(p, "GET", &q, None));
    assert!(
        lease.starts_with("aws/creds/deploy/") && (895..=900).contains(&duration) && !renewable
    );
    assert_eq!(whoami(m, &data)["ok"], true);
    // type = "sts": PUT with the fields in the body.
    let (data, lease, duration, renewable) = parse(req(
        p,
        "PUT",
        "/v1/aws/sts/deploy",
        Some(json!({"role_arn": arn, "ttl": "16m", "region": "us-east-1"})),
    ));
    assert!(lease.starts_with("aws/sts/deploy/") && (955..=960).contains(&duration) && !renewable);
    assert!(data["security_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert_eq!(whoami(m, &data)["ok"], true);
}

#[test]
fn failed_revocations_are_retried_and_root_rotates() {
    if !require(
        "moto[server] and boto3 (python3 -m pip install 'moto[server]' boto3)",
        moto_available(),
    ) {
        return;
    }
    let m = start_moto();
    let (p, root) = setup(&m);
    ok(req(
        &p,
        "POST",
        "/v1/aws/roles/dev",
        Some(json!({
            "credential_type": "iam_user", "policy_arns": root["policy_arn"],
        })),
    ));
    ok(req(
        &p,
        "POST",
        "/v1/aws/config/lease",
        Some(json!({"lease": "3s", "lease_max": "1h"})),
    ));
    let short = ok(req(&p, "GET", "/v1/aws/creds/dev", None));
    ok(req(
        &p,
        "POST",
        "/v1/aws/config/lease",
        Some(json!({"lease": "1h", "lease_max": "1h"})),
    ));
    let long = ok(req(&p, "GET", "/v1/aws/creds/dev", None));
    let (u_short, u_long) = (user_of(&m, &short["data"]), user_of(&m, &long["data"]));

    // IAM unreachable: an explicit revoke fails and keeps the lease; the expiry fails too.
    let dead = format!("http://127.0.0.1:{}", free_port());
    ok(req(
        &p,
        "POST",
        "/v1/aws/config/root",
        Some(json!({"iam_endpoint": dead})),
    ));
    let r = req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke",
        Some(json!({"lease_id": long["lease_id"]})),
    );
    assert!(r.status >= 500, "{}: {}", r.status, r.body);
    assert!(
        r.body.to_string().contains("failed to remove IAM user"),
        "{}",
        r.body
    );
    let lookup = req(
        &p,
        "PUT",
        "/v1/sys/leases/lookup",
        Some(json!({"lease_id": long["lease_id"]})),
    );
    assert_eq!(lookup.status, 200, "{}", lookup.body);
    std::thread::sleep(Duration::from_secs(5));
    for u in [&u_short, &u_long] {
        assert_eq!(boto(&["user", &m.url, u], Some(&root))["exists"], true);
    }
    let lookup = req(
        &p,
        "PUT",
        "/v1/sys/leases/lookup",
        Some(json!({"lease_id": short["lease_id"]})),
    );
    assert_eq!(
        lookup.status, 200,
        "the failed expiry kept the lease: {}",
        lookup.body
    );

    // Fixed: the retried expiry completes, and an explicit revoke works again.
    ok(req(
        &p,
        "POST",
        "/v1/aws/config/root",
        Some(json!({"iam_endpoint": m.url})),
    ));
    wait_until(
        "the retried revocation to remove the user",
        Duration::from_secs(60),
        || boto(&["user", &m.url, &u_short], Some(&root))["exists"] == false,
    );
    wait_until("the lease record to go", Duration::from_secs(10), || {
        req(
            &p,
            "PUT",
            "/v1/sys/leases/lookup",
            Some(json!({"lease_id": short["lease_id"]})),
        )
        .status
            != 200
    });
    ok(req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke",
        Some(json!({"lease_id": long["lease_id"]})),
    ));
    assert_eq!(
        boto(&["user", &m.url, &u_long], Some(&root))["exists"],
        false
    );

    // rotate-root: a new key only Airlock knows; the old one is deleted and refused.
    let rotated = ok(req(&p, "POST", "/v1/aws/config/rotate-root", None));
    let new_key = rotated["data"]["access_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, root["access_key"].as_str().unwrap());
    assert_eq!(
        ok(req(&p, "GET", "/v1/aws/config/root", None))["data"]["access_key"],
        new_key
    );
    let old = whoami(
        &m,
        &json!({"access_key": root["access_key"], "secret_key": root["secret_key"]}),
    );
    assert_eq!(old["ok"], false, "{old}");
    assert!(
        old["error"]
            .as_str()
            .unwrap()
            .contains("InvalidClientTokenId"),
        "{old}"
    );
    // Airlock keeps working with the new key (moto checks it).
    let c = ok(req(&p, "GET", "/v1/aws/creds/dev", None));
    let u = user_of(&m, &c["data"]);
    ok(req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke",
        Some(json!({"lease_id": c["lease_id"]})),
    ));
    assert_eq!(boto(&["user", &m.url, &u], Some(&root))["exists"], false);
}
