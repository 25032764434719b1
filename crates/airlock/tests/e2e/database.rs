//! Dynamic database credentials against the real PostgreSQL on this machine: issue, log in,
//! and check that the user is gone after revoke, TTL expiry, revocation of its token,
//! revoke-prefix, and an expiry that happened while Airlock was stopped. A failing creation
//! statement leaves nothing behind.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::*;

pub(crate) fn psql_ok() -> bool {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-tAc", "SELECT 1"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn psql(sql: &str) -> String {
    let o = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            sql,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub(crate) fn role_exists(name: &str) -> bool {
    psql(&format!(
        "SELECT count(*) FROM pg_roles WHERE rolname = '{name}'"
    )) == "1"
}

/// Logs in as `user` and runs a query the role grants.
fn login_works(user: &str, password: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            user,
            "-d",
            "postgres",
            "-tAc",
            "SELECT current_user",
        ])
        .env("PGPASSWORD", password)
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == user)
}

fn gone_within(name: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    while role_exists(name) {
        assert!(t.elapsed() < limit, "{name} still exists after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    t.elapsed()
}

fn server(dir: &std::path::Path) -> Proc {
    let cfg = dir.join("airlock.toml");
    if !cfg.exists() {
        std::fs::write(dir.join("unseal.key"), "33".repeat(32)).unwrap();
        std::fs::write(
            &cfg,
            format!(
                "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\nkey_file = \"{}\"\n",
                dir.join("data.db").display(),
                dir.join("unseal.key").display()
            ),
        )
        .unwrap();
    }
    start_config(&cfg)
}

#[test]
fn postgres_dynamic_credentials_lifecycle() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let dir = tempdir("db");
    let mut p = server(&dir);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    let root = init.body["root_token"].as_str().unwrap().to_string();
    p.token = Some(root.clone());
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    let cfg = req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username": "postgres", "password": "unused-with-trust-auth",
            "allowed_roles": ["app", "short", "bad"],
        })),
    );
    assert_eq!(cfg.status, 204, "{:?}", cfg.body);
    let read = req(&p, "GET", "/v1/database/config/pg", None);
    assert!(read.body["data"]["connection_details"]
        .get("password")
        .is_none());
    assert!(!read.body.to_string().contains("unused-with-trust-auth"));
    let create = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT pg_read_all_data TO \"{{name}}\";";
    // As a widely copied tutorial writes it: spaces inside the braces.
    let spaced = "CREATE ROLE \"{{ name }}\" WITH LOGIN PASSWORD '{{ password }}' VALID UNTIL '{{ expiration }}'; GRANT pg_read_all_data TO \"{{ name }}\";";
    for (name, create, ttl, max) in [("app", spaced, "1h", "24h"), ("short", create, "3s", "6s")] {
        let r = req(
            &p,
            "POST",
            &format!("/v1/database/roles/{name}"),
            Some(
                json!({"db_name": "pg", "creation_statements": [create], "default_ttl": ttl, "max_ttl": max}),
            ),
        );
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
    let role = req(&p, "GET", "/v1/database/roles/app", None);
    assert_eq!(role.body["data"]["default_ttl"], 3600);
    assert_eq!(role.body["data"]["max_ttl"], 86400);

    // Issue, log in, look up, renew (capped), revoke.
    let c = req(&p, "GET", "/v1/database/creds/app", None);
    assert_eq!(c.status, 200, "{:?}", c.body);
    let user = c.body["data"]["username"].as_str().unwrap().to_string();
    let pass = c.body["data"]["password"].as_str().unwrap().to_string();
    let lease = c.body["lease_id"].as_str().unwrap().to_string();
    assert!(lease.starts_with("database/creds/app/"));
    assert_eq!(c.body["lease_duration"], 3600);
    assert_eq!(c.body["renewable"], true);
    assert!(
        user.starts_with("v-root-app-") || user.starts_with("v-token-app-"),
        "{user}"
    );
    assert_eq!(pass.len(), 20);
    assert!(login_works(&user, &pass), "issued user cannot log in");
    let l = req(
        &p,
        "PUT",
        "/v1/sys/leases/lookup",
        Some(json!({"lease_id": lease})),
    );
    assert_eq!(l.status, 200, "{:?}", l.body);
    assert_eq!(l.body["data"]["path"], "database/creds/app");
    assert_eq!(l.body["data"]["last_renewal"], serde_json::Value::Null);
    let list = req(
        &p,
        "LIST",
        "/v1/sys/leases/lookup/database/creds/app/",
        None,
    );
    assert_eq!(list.body["data"]["keys"].as_array().unwrap().len(), 1);
    let r = req(
        &p,
        "PUT",
        "/v1/sys/leases/renew",
        Some(json!({"lease_id": lease, "increment": "100h"})),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["lease_duration"].as_i64().unwrap() > 86000);
    assert!(r.body["warnings"][0]
        .as_str()
        .unwrap()
        .contains("exceeded the effective max_ttl"));
    let r = req(
        &p,
        "PUT",
        &format!("/v1/sys/leases/renew/{lease}"),
        Some(json!({"increment": 60})),
    );
    assert_eq!(r.body["lease_duration"], 60);
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    assert!(!role_exists(&user), "user survived revoke");
    assert!(!login_works(&user, &pass));
    let l = req(
        &p,
        "PUT",
        "/v1/sys/leases/lookup",
        Some(json!({"lease_id": lease})),
    );
    assert_eq!(l.status, 400);
    assert_eq!(l.body["errors"][0], "invalid lease");
    let r = req(
        &p,
        "PUT",
        "/v1/sys/leases/renew",
        Some(json!({"lease_id": lease})),
    );
    assert_eq!(r.body["errors"][0], "lease not found");
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    let unknown = req(&p, "GET", "/v1/database/creds/nope", None);
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["errors"][0], "unknown role: nope");

    // TTL expiry (3 s TTL, 6 s max).
    let c = req(&p, "GET", "/v1/database/creds/short", None);
    let short = c.body["data"]["username"].as_str().unwrap().to_string();
    assert_eq!(c.body["lease_duration"], 3);
    assert!(role_exists(&short));
    let took = gone_within(&short, Duration::from_secs(12));
    println!("short-lived user dropped {took:?} after issue check started");

    // Revoking the token that created a credential revokes the credential.
    let pol = req(
        &p,
        "PUT",
        "/v1/sys/policies/acl/dbapp",
        Some(json!({"policy": "path \"database/creds/app\" { capabilities = [\"read\"] }"})),
    );
    assert_eq!(pol.status, 204);
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["dbapp"]})),
    );
    let app_token = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let c = with_token(&p, &app_token, "GET", "/v1/database/creds/app", None);
    assert_eq!(c.status, 200, "{:?}", c.body);
    let by_token = c.body["data"]["username"].as_str().unwrap().to_string();
    assert!(by_token.contains("-app-"));
    assert!(role_exists(&by_token));
    let denied = with_token(&p, &app_token, "GET", "/v1/database/creds/short", None);
    assert_eq!(denied.status, 403);
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/auth/token/revoke",
            Some(json!({"token": app_token}))
        )
        .status,
        204
    );
    assert!(!role_exists(&by_token), "user survived its token");

    // The legacy Vault paths sys/renew/<id> and sys/revoke/<id> (absent in OpenBao 2.7).
    let c = req(&p, "GET", "/v1/database/creds/app", None);
    let legacy_user = c.body["data"]["username"].as_str().unwrap().to_string();
    let legacy = c.body["lease_id"].as_str().unwrap().to_string();
    let r = req(
        &p,
        "PUT",
        &format!("/v1/sys/renew/{legacy}"),
        Some(json!({"increment": 120})),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["lease_duration"], 120);
    assert_eq!(
        req(&p, "PUT", &format!("/v1/sys/revoke/{legacy}"), None).status,
        204
    );
    assert!(!role_exists(&legacy_user));

    // revoke-prefix.
    let mut users = Vec::new();
    for _ in 0..3 {
        let c = req(&p, "GET", "/v1/database/creds/app", None);
        users.push(c.body["data"]["username"].as_str().unwrap().to_string());
    }
    assert!(users.iter().all(|u| role_exists(u)));
    let rp = req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke-prefix/database/creds/app",
        None,
    );
    assert_eq!(rp.status, 204, "{:?}", rp.body);
    assert!(
        users.iter().all(|u| !role_exists(u)),
        "revoke-prefix left users"
    );
    assert_eq!(
        req(
            &p,
            "LIST",
            "/v1/sys/leases/lookup/database/creds/app/",
            None
        )
        .status,
        404
    );

    // A failing creation statement leaves nothing behind.
    let bad = req(
        &p,
        "POST",
        "/v1/database/roles/bad",
        Some(json!({"db_name": "pg", "creation_statements": [
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'; SELECT no_such_function();"
        ]})),
    );
    assert_eq!(bad.status, 204);
    let c = req(&p, "GET", "/v1/database/creds/bad", None);
    assert_eq!(c.status, 500, "{:?}", c.body);
    let err = c.body["errors"][0].as_str().unwrap();
    assert!(err.contains("failed to create the database user"), "{err}");
    assert!(!err.contains("PASSWORD"), "statement echoed: {err}");
    assert_eq!(
        psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%-bad-%'"),
        "0"
    );
    assert_eq!(
        req(
            &p,
            "LIST",
            "/v1/sys/leases/lookup/database/creds/bad/",
            None
        )
        .status,
        404
    );

    // password_authentication = scram-sha-256: PostgreSQL receives a verifier, never the
    // password; the verifier matches the issued password (recomputed here independently).
    let cfg2 = req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({"password_authentication": "scram-sha-256", "verify_connection": false})),
    );
    assert_eq!(cfg2.status, 204, "{:?}", cfg2.body);
    let c = req(&p, "GET", "/v1/database/creds/app", None);
    let su = c.body["data"]["username"].as_str().unwrap().to_string();
    let spw = c.body["data"]["password"].as_str().unwrap().to_string();
    let verifier = psql(&format!(
        "SELECT rolpassword FROM pg_authid WHERE rolname = '{su}'"
    ));
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    let check = Command::new("python3")
        .args(["-c", "import sys,hashlib,hmac,base64\nv,pw=sys.argv[1],sys.argv[2].encode()\nit,rest=v[len('SCRAM-SHA-256$'):].split(':',1)\nsalt,keys=rest.split('$')\nsk,svk=keys.split(':')\nsp=hashlib.pbkdf2_hmac('sha256',pw,base64.b64decode(salt),int(it))\nck=hmac.new(sp,b'Client Key',hashlib.sha256).digest()\nok=base64.b64encode(hashlib.sha256(ck).digest()).decode()==sk and base64.b64encode(hmac.new(sp,b'Server Key',hashlib.sha256).digest()).decode()==svk\nsys.exit(0 if ok else 1)"])
        .arg(&verifier)
        .arg(&spw)
        .status()
        .unwrap();
    assert!(
        check.success(),
        "SCRAM verifier does not match the issued password"
    );
    let lease = c.body["lease_id"].as_str().unwrap();
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );

    // username_template (Vault's Go-template subset).
    let t = req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({"verify_connection": false,
            "username_template": "{{ printf \"tpl-%s-%s\" (.RoleName | truncate 4) (random 8) | lowercase }}"})),
    );
    assert_eq!(t.status, 204, "{:?}", t.body);
    let c = req(&p, "GET", "/v1/database/creds/app", None);
    let tu = c.body["data"]["username"].as_str().unwrap().to_string();
    assert!(tu.starts_with("tpl-app-") && tu.len() == 16, "{tu}");
    assert!(role_exists(&tu));
    let lease = c.body["lease_id"].as_str().unwrap();
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    let bad = req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({"verify_connection": false, "username_template": "{{ nosuchfn }}"})),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body["errors"][0]
        .as_str()
        .unwrap()
        .contains("unable to initialize username template"));
    req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({"verify_connection": false, "username_template": ""})),
    );

    // Expiry while Airlock is stopped: revoked at start-up.
    let c = req(&p, "GET", "/v1/database/creds/short", None);
    let offline = c.body["data"]["username"].as_str().unwrap().to_string();
    drop(p);
    std::thread::sleep(Duration::from_secs(5));
    assert!(role_exists(&offline), "dropped while Airlock was down?");
    let _p2 = server(&dir);
    let took = gone_within(&offline, Duration::from_secs(10));
    println!("user that expired while Airlock was stopped dropped {took:?} after restart");
}

/// hvac, the `bao` CLI and Airlock's own CLI against the database engine and leases.
#[test]
fn database_credentials_through_hvac_bao_and_airlock_cli() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let bao = openbao();
    if !require("the bao CLI", bao.is_some()) || !require("python3 with hvac", python_has("hvac")) {
        return;
    }
    let bao = bao.unwrap();
    let p = start_dev();
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    // Configured with the generic `airlock write`.
    let (code, out, err) = cli(
        &p,
        &[
            "write",
            "database/config/pg",
            "plugin_name=postgresql-database-plugin",
            "connection_url=postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username=postgres",
            "password=x",
            "allowed_roles=app",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let r = req(
        &p,
        "POST",
        "/v1/database/roles/app",
        Some(
            json!({"db_name": "pg", "default_ttl": "1h", "max_ttl": "2h", "creation_statements":
            ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]}),
        ),
    );
    assert_eq!(r.status, 204);
    // hvac.
    let script = r#"
import hvac, json, os
c = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"], timeout=10)
r = c.secrets.database.generate_credentials(name="app", mount_point="database")
l = c.sys.read_lease(lease_id=r["lease_id"])
print(json.dumps({"username": r["data"]["username"], "lease_id": r["lease_id"], "ttl": l["data"]["ttl"]}))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .env("VAULT_ADDR", &p.addr)
        .env("VAULT_TOKEN", "root")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hvac_user = h["username"].as_str().unwrap().to_string();
    assert!(role_exists(&hvac_user));
    assert!(h["ttl"].as_i64().unwrap() > 3500);
    // bao CLI: read creds, lease lookup/renew/revoke.
    let bao_cmd = |args: &[&str]| {
        let o = Command::new("timeout")
            .arg("20")
            .arg(&bao)
            .args(args)
            .env("VAULT_ADDR", &p.addr)
            .env("VAULT_TOKEN", "root")
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "bao {args:?}: {text}");
        text
    };
    let v: serde_json::Value =
        serde_json::from_str(&bao_cmd(&["read", "-format=json", "database/creds/app"])).unwrap();
    let bao_user = v["data"]["username"].as_str().unwrap().to_string();
    let bao_lease = v["lease_id"].as_str().unwrap().to_string();
    assert!(role_exists(&bao_user));
    let look = bao_cmd(&["lease", "lookup", &bao_lease]);
    assert!(look.contains("database/creds/app"), "{look}");
    let renewed = bao_cmd(&["lease", "renew", "-increment=10m", &bao_lease]);
    assert!(
        renewed.contains("10m") || renewed.contains("600"),
        "{renewed}"
    );
    bao_cmd(&["lease", "revoke", &bao_lease]);
    assert!(!role_exists(&bao_user), "bao lease revoke left the user");
    // Airlock CLI: read, lease lookup, revoke -prefix.
    let (code, out, err) = cli(&p, &["read", "-format=json", "database/creds/app"], None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cli_user = v["data"]["username"].as_str().unwrap().to_string();
    let cli_lease = v["lease_id"].as_str().unwrap().to_string();
    let (code, out, _) = cli(&p, &["lease", "lookup", &cli_lease], None);
    assert_eq!(code, 0);
    assert!(out.contains("database/creds/app"));
    let (code, _, err) = cli(
        &p,
        &["lease", "revoke", "-prefix", "database/creds/app"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    for u in [&hvac_user, &cli_user] {
        assert!(!role_exists(u), "revoke -prefix left {u}");
    }
}

fn mariadb(user: &str, password: &str, sql: &str) -> Option<String> {
    let o = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            user,
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .env("MYSQL_PWD", password)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn redis(args: &[&str]) -> String {
    let o = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn mariadb_and_redis_dynamic_credentials() {
    let maria = mariadb("root", "", "SELECT 1").is_some();
    let redis_up = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "ping"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"));
    if !require(
        "MariaDB on 127.0.0.1:3306 (root, empty password) with the mariadb client",
        maria,
    ) || !require("Redis on 127.0.0.1:6379 with redis-cli", redis_up)
    {
        return;
    }
    let p = start_dev();
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    // MariaDB through mysql-database-plugin.
    let c = req(
        &p,
        "POST",
        "/v1/database/config/my",
        Some(json!({"plugin_name": "mysql-database-plugin",
            "connection_url": "{{username}}:{{password}}@tcp(127.0.0.1:3306)/",
            "username": "root", "password": "", "allowed_roles": ["my", "mybad", "myshort"]})),
    );
    assert_eq!(c.status, 204, "{:?}", c.body);
    let create = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON mysql.db TO '{{name}}'@'%';";
    for (name, stmt, ttl) in [
        ("my", create.to_string(), "1h"),
        ("myshort", create.to_string(), "2s"),
        (
            "mybad",
            format!("{create} GRANT NO_SUCH_PRIVILEGE ON *.* TO '{{{{name}}}}'@'%';"),
            "1h",
        ),
    ] {
        let r = req(
            &p,
            "POST",
            &format!("/v1/database/roles/{name}"),
            Some(
                json!({"db_name": "my", "creation_statements": [stmt], "default_ttl": ttl, "max_ttl": "2h"}),
            ),
        );
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
    let count = |u: &str| {
        mariadb(
            "root",
            "",
            &format!("SELECT count(*) FROM mysql.user WHERE user = '{u}'"),
        )
        .unwrap()
    };
    let cr = req(&p, "GET", "/v1/database/creds/my", None);
    assert_eq!(cr.status, 200, "{:?}", cr.body);
    let user = cr.body["data"]["username"].as_str().unwrap().to_string();
    let pass = cr.body["data"]["password"].as_str().unwrap().to_string();
    assert!(user.len() <= 32, "{user}");
    assert_eq!(
        mariadb(&user, &pass, "SELECT 1").as_deref(),
        Some("1"),
        "issued user cannot log in"
    );
    assert!(mariadb(&user, "wrong-password", "SELECT 1").is_none());
    // An open session of the issued user is killed by the revocation, not left running.
    let mut session = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            &user,
            "-N",
            "-B",
            "-e",
            "SELECT SLEEP(30)",
        ])
        .env("MYSQL_PWD", &pass)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while mariadb(
        "root",
        "",
        &format!("SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"),
    )
    .as_deref()
        != Some("1")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "session never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lease = cr.body["lease_id"].as_str().unwrap();
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    let t = Instant::now();
    while session.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "revoked user's session kept running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&user), "0");
    assert!(
        mariadb(&user, &pass, "SELECT 1").is_none(),
        "revoked user still logs in"
    );
    let bad = req(&p, "GET", "/v1/database/creds/mybad", None);
    assert_eq!(bad.status, 500, "{:?}", bad.body);
    assert_eq!(
        mariadb("root", "", "SELECT count(*) FROM mysql.user WHERE user LIKE 'v-%-mybad%' OR user LIKE 'v-root-myba-%' OR user LIKE 'v-toke-myba-%'").unwrap(),
        "0",
        "half-created MariaDB user left behind"
    );
    let short = req(&p, "GET", "/v1/database/creds/myshort", None);
    let su = short.body["data"]["username"].as_str().unwrap().to_string();
    assert_eq!(count(&su), "1");
    let t = Instant::now();
    while count(&su) != "0" {
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "short-lived MariaDB user not dropped"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Static role: an existing account whose password Airlock rotates; the old one stops working.
    let sfx = std::process::id();
    let static_user = format!("airlock_static_{sfx}");
    let admin = format!("airlock_admin_{sfx}");
    mariadb(
        "root",
        "",
        &format!(
            "DROP USER IF EXISTS '{static_user}'@'%'; CREATE USER '{static_user}'@'%' IDENTIFIED BY 'initial-pw'; \
             DROP USER IF EXISTS '{admin}'@'%'; CREATE USER '{admin}'@'%' IDENTIFIED BY 'admin-pw-0'; \
             GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION;"
        ),
    )
    .unwrap();
    let c = req(
        &p,
        "POST",
        "/v1/database/config/myadm",
        Some(json!({"plugin_name": "mysql-database-plugin",
            "connection_url": "{{username}}:{{password}}@tcp(127.0.0.1:3306)/",
            "username": admin, "password": "admin-pw-0", "allowed_roles": ["st", "adm"]})),
    );
    assert_eq!(c.status, 204, "{:?}", c.body);
    let st = req(
        &p,
        "POST",
        "/v1/database/static-roles/st",
        Some(json!({"db_name": "myadm", "username": static_user, "rotation_period": "1h"})),
    );
    assert_eq!(st.status, 204, "{:?}", st.body);
    assert!(
        mariadb(&static_user, "initial-pw", "SELECT 1").is_none(),
        "initial password still works"
    );
    let sc = req(&p, "GET", "/v1/database/static-creds/st", None);
    let pw1 = sc.body["data"]["password"].as_str().unwrap().to_string();
    assert_eq!(sc.body["data"]["username"], static_user.as_str());
    assert!(sc.body["data"]["ttl"].as_i64().unwrap() > 3500);
    assert!(
        mariadb(&static_user, &pw1, "SELECT 1").is_some(),
        "rotated password does not work"
    );
    assert_eq!(
        req(&p, "POST", "/v1/database/rotate-role/st", None).status,
        204
    );
    let pw2 = req(&p, "GET", "/v1/database/static-creds/st", None).body["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(pw1, pw2);
    assert!(
        mariadb(&static_user, &pw1, "SELECT 1").is_none(),
        "old password still works"
    );
    assert!(mariadb(&static_user, &pw2, "SELECT 1").is_some());
    let list = req(&p, "LIST", "/v1/database/static-roles", None);
    assert_eq!(list.body["data"]["keys"], json!(["st"]));
    // rotate-root: the admin password changes, only Airlock knows it, and the connection works.
    assert_eq!(
        req(&p, "POST", "/v1/database/rotate-root/myadm", None).status,
        204
    );
    assert!(
        mariadb(&admin, "admin-pw-0", "SELECT 1").is_none(),
        "old root password still works"
    );
    assert!(!req(&p, "GET", "/v1/database/config/myadm", None)
        .body
        .to_string()
        .contains("password\":"));
    assert_eq!(
        req(&p, "POST", "/v1/database/rotate-role/st", None).status,
        204,
        "connection broken after rotate-root"
    );
    let pw3 = req(&p, "GET", "/v1/database/static-creds/st", None).body["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(mariadb(&static_user, &pw3, "SELECT 1").is_some());
    // Rotation on its own: a 5 s period rotates without being asked; the old password dies.
    let st = req(
        &p,
        "POST",
        "/v1/database/static-roles/st",
        Some(json!({"rotation_period": "5s"})),
    );
    assert_eq!(st.status, 204, "{:?}", st.body);
    let before = req(&p, "GET", "/v1/database/static-creds/st", None).body["data"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    let t0 = Instant::now();
    let after = loop {
        let now = req(&p, "GET", "/v1/database/static-creds/st", None).body["data"]["password"]
            .as_str()
            .unwrap()
            .to_string();
        if now != before {
            break now;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "no scheduled rotation within 12 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        mariadb(&static_user, &before, "SELECT 1").is_none(),
        "old password still works after scheduled rotation"
    );
    assert!(mariadb(&static_user, &after, "SELECT 1").is_some());
    // A cron schedule instead of a period; both at once, or a bad one, are refused.
    let cron = req(
        &p,
        "POST",
        "/v1/database/static-roles/st",
        Some(json!({"rotation_schedule": "0 3 * * *", "rotation_window": "2h"})),
    );
    // Switching a role from a period to a schedule is allowed.
    assert_eq!(cron.status, 204, "{:?}", cron.body);
    let r = req(&p, "GET", "/v1/database/static-roles/st", None);
    assert_eq!(r.body["data"]["rotation_schedule"], "0 3 * * *");
    assert_eq!(r.body["data"]["rotation_window"], 7200);
    let ttl = req(&p, "GET", "/v1/database/static-creds/st", None).body["data"]["ttl"]
        .as_i64()
        .unwrap();
    assert!(ttl > 0 && ttl <= 86_400, "{ttl}");
    for bad in [
        json!({"db_name": "myadm", "username": static_user, "rotation_schedule": "0 3 * *"}),
        json!({"db_name": "myadm", "username": static_user, "rotation_schedule": "0 3 * * *", "rotation_period": "1h"}),
    ] {
        let b = req(&p, "POST", "/v1/database/static-roles/st2", Some(bad));
        assert_eq!(b.status, 400, "{:?}", b.body);
    }
    mariadb(
        "root",
        "",
        &format!("DROP USER IF EXISTS '{static_user}'@'%'; DROP USER IF EXISTS '{admin}'@'%';"),
    )
    .unwrap();

    // Redis ACL users through redis-database-plugin.
    let c = req(
        &p,
        "POST",
        "/v1/database/config/rd",
        Some(
            json!({"plugin_name": "redis-database-plugin", "host": "127.0.0.1", "port": 6379,
            "username": "", "password": "", "allowed_roles": ["rd"]}),
        ),
    );
    assert_eq!(c.status, 204, "{:?}", c.body);
    let r = req(
        &p,
        "POST",
        "/v1/database/roles/rd",
        Some(
            json!({"db_name": "rd", "creation_statements": ["[\"~airlock-test:*\", \"+@read\", \"+ping\"]"], "default_ttl": "1h"}),
        ),
    );
    assert_eq!(r.status, 204);
    let cr = req(&p, "GET", "/v1/database/creds/rd", None);
    assert_eq!(cr.status, 200, "{:?}", cr.body);
    let user = cr.body["data"]["username"].as_str().unwrap().to_string();
    let pass = cr.body["data"]["password"].as_str().unwrap().to_string();
    let ping = redis(&["--user", &user, "--pass", &pass, "PING"]);
    assert!(
        ping.contains("PONG") && !ping.contains("AUTH failed"),
        "{ping}"
    );
    assert!(redis(&[
        "--user",
        &user,
        "--pass",
        &pass,
        "SET",
        "airlock-test:k",
        "v"
    ])
    .contains("NOPERM"));
    let lease = cr.body["lease_id"].as_str().unwrap();
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    assert!(
        !redis(&["ACL", "LIST"]).contains(&user),
        "Redis user survived revoke"
    );
    // redis-cli falls back to the default user when AUTH fails, so look for the failure.
    let after = redis(&["--user", &user, "--pass", &pass, "PING"]);
    assert!(
        after.contains("AUTH failed") || after.contains("WRONGPASS"),
        "revoked Redis user can still authenticate: {after}"
    );
}

#[test]
fn password_policies_generate_and_feed_database_and_kv_mint() {
    let p = start_dev();
    let policy = "length = 24\nrule \"charset\" {\n  charset = \"abcdefghijklmnopqrstuvwxyz\"\n  min-chars = 2\n}\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 4\n}\nrule \"charset\" {\n  charset = \"!#%\"\n  min-chars = 1\n}\n";
    let w = req(
        &p,
        "PUT",
        "/v1/sys/policies/password/strong",
        Some(json!({"policy": policy})),
    );
    assert_eq!(w.status, 204, "{:?}", w.body);
    assert_eq!(
        req(&p, "GET", "/v1/sys/policies/password/strong", None).body["data"]["policy"],
        policy
    );
    assert_eq!(
        req(&p, "LIST", "/v1/sys/policies/password", None).body["data"]["keys"],
        json!(["strong"])
    );
    let check = |pw: &str| {
        assert_eq!(pw.chars().count(), 24, "{pw}");
        assert!(pw.chars().filter(|c| c.is_ascii_digit()).count() >= 4);
        assert!(pw.chars().filter(|c| c.is_ascii_lowercase()).count() >= 2);
        assert!(pw.chars().any(|c| "!#%".contains(c)));
        assert!(pw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "!#%".contains(c)));
    };
    for _ in 0..5 {
        let g = req(&p, "GET", "/v1/sys/policies/password/strong/generate", None);
        check(g.body["data"]["password"].as_str().unwrap());
    }
    let bad = req(
        &p,
        "PUT",
        "/v1/sys/policies/password/bad",
        Some(json!({"policy": "length = 3\nrule \"charset\" { charset = \"a\" }"})),
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["errors"][0].as_str().unwrap().contains("length"),
        "{:?}",
        bad.body
    );
    assert_eq!(
        req(&p, "GET", "/v1/sys/policies/password/nope/generate", None).status,
        400
    );

    // kv mint: idempotent, fills only missing keys.
    let (code, out, err) = cli(
        &p,
        &["kv", "mint", "--policy", "strong", "secret/app", "A", "B"],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let first = req(&p, "GET", "/v1/secret/data/app", None).body["data"]["data"].clone();
    check(first["A"].as_str().unwrap());
    check(first["B"].as_str().unwrap());
    let (code, out, _) = cli(&p, &["kv", "mint", "secret/app", "A", "B"], None);
    assert_eq!(code, 0);
    assert!(out.contains("Nothing to mint"), "{out}");
    let (code, _, _) = cli(&p, &["kv", "mint", "secret/app", "A", "C"], None);
    assert_eq!(code, 0);
    let after = req(&p, "GET", "/v1/secret/data/app", None).body["data"]["data"].clone();
    assert_eq!(after["A"], first["A"]);
    assert_eq!(after["B"], first["B"]);
    assert_eq!(after["C"].as_str().unwrap().len(), 32);
    assert!(
        !out.contains(first["A"].as_str().unwrap()),
        "a minted value was printed"
    );

    // A database config with the policy issues passwords that follow it.
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    let c = req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({"plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username": "postgres", "password": "x", "allowed_roles": "*", "password_policy": "strong"})),
    );
    assert_eq!(c.status, 204, "{:?}", c.body);
    assert_eq!(
        req(&p, "GET", "/v1/database/config/pg", None).body["data"]["password_policy"],
        "strong"
    );
    req(
        &p,
        "POST",
        "/v1/database/roles/pp",
        Some(
            json!({"db_name": "pg", "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"]}),
        ),
    );
    let cr = req(&p, "GET", "/v1/database/creds/pp", None);
    assert_eq!(cr.status, 200, "{:?}", cr.body);
    check(cr.body["data"]["password"].as_str().unwrap());
    let lease = cr.body["lease_id"].as_str().unwrap();
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    let missing = req(
        &p,
        "POST",
        "/v1/database/config/pg2",
        Some(
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": "postgresql://postgres@127.0.0.1/postgres", "password_policy": "nope", "verify_connection": false}),
        ),
    );
    assert_eq!(missing.status, 400);
}

#[test]
fn postgres_connection_pool_settings() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let p = start_dev();
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    let app = format!("airlock_pool_{}", std::process::id());
    let c = req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({"plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:5432/postgres?sslmode=disable&application_name={app}"),
            "username": "postgres", "password": "x", "allowed_roles": "*",
            "max_open_connections": 4, "max_idle_connections": 1, "max_connection_lifetime": "1s"})),
    );
    assert_eq!(c.status, 204, "{:?}", c.body);
    req(
        &p,
        "POST",
        "/v1/database/roles/pool",
        Some(
            json!({"db_name": "pg", "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"]}),
        ),
    );
    let pids = || {
        psql(&format!("SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = '{app}'"))
    };
    // Concurrent issues open several connections; at most one stays idle afterwards.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let addr = p.addr.clone();
            std::thread::spawn(move || {
                http(
                    &addr,
                    "GET",
                    "/v1/database/creds/pool",
                    Some("root"),
                    None,
                    &[],
                )
                .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let first = pids();
    assert_eq!(
        first.split(',').filter(|s| !s.is_empty()).count(),
        1,
        "idle connections: {first}"
    );
    // Past max_connection_lifetime the pooled connection is replaced.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(req(&p, "GET", "/v1/database/creds/pool", None).status, 200);
    std::thread::sleep(Duration::from_millis(500));
    let second = pids();
    assert_eq!(
        second.split(',').filter(|s| !s.is_empty()).count(),
        1,
        "{second}"
    );
    assert_ne!(
        first, second,
        "the old connection was reused past its lifetime"
    );
    let rp = req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke-prefix/database/creds/pool",
        None,
    );
    assert_eq!(rp.status, 204);
}

/// A least-privilege admin: a non-superuser with CREATEROLE (PostgreSQL 15+), owning the
/// schema the issued users work in. Creation, revocation (objects the user made, an open
/// session) and expiry all work with it.
#[test]
fn postgres_least_privilege_admin_creates_and_revokes() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let tag = format!("{}", std::process::id());
    let admin = format!("airlock_admin_{tag}");
    let schema = format!("lp_{tag}");
    psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    psql(&format!("DROP ROLE IF EXISTS {admin}"));
    psql(&format!(
        "CREATE ROLE {admin} WITH LOGIN CREATEROLE PASSWORD 'admin-pw'"
    ));
    psql(&format!("CREATE SCHEMA {schema} AUTHORIZATION {admin}"));
    psql(&format!("CREATE TABLE {schema}.t (x int)"));
    psql(&format!("ALTER TABLE {schema}.t OWNER TO {admin}"));
    assert_eq!(
        psql(&format!(
            "SELECT rolsuper::text FROM pg_roles WHERE rolname = '{admin}'"
        )),
        "false"
    );
    let dir = tempdir("db-least");
    let mut p = server(&dir);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    let cfg = req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username": admin, "password": "admin-pw", "allowed_roles": "*",
        })),
    );
    assert_eq!(cfg.status, 204, "{:?}", cfg.body);
    let create = format!(
        "CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'; \
         GRANT USAGE, CREATE ON SCHEMA {schema} TO \"{{{{name}}}}\"; GRANT SELECT ON {schema}.t TO \"{{{{name}}}}\";"
    );
    let r = req(
        &p,
        "POST",
        "/v1/database/roles/app",
        Some(json!({"db_name": "pg", "creation_statements": [create], "default_ttl": "1h"})),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    for how in ["revoke", "expiry"] {
        let c = req(&p, "GET", "/v1/database/creds/app", None);
        assert_eq!(c.status, 200, "{:?}", c.body);
        let user = c.body["data"]["username"].as_str().unwrap().to_string();
        let lease = c.body["lease_id"].as_str().unwrap().to_string();
        assert!(role_exists(&user));
        // The user makes an object of its own, and keeps a session open.
        let made = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", &user, "-d", "postgres", "-tAc"])
            .arg(format!("CREATE TABLE {schema}.mine_{how} (y int)"))
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let mut session = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                &user,
                "-d",
                "postgres",
                "-tAc",
                "SELECT pg_sleep(25)",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until(
            "the user's session to start",
            Duration::from_secs(10),
            || {
                psql(&format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"
                )) == "1"
            },
        );
        let t0 = Instant::now();
        if how == "revoke" {
            let r = req(
                &p,
                "PUT",
                "/v1/sys/leases/revoke",
                Some(json!({"lease_id": lease})),
            );
            assert_eq!(r.status, 204, "{:?}", r.body);
        } else {
            let r = req(
                &p,
                "PUT",
                "/v1/sys/leases/renew",
                Some(json!({"lease_id": lease, "increment": 1})),
            );
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
        wait_until("the user to be dropped", Duration::from_secs(20), || {
            !role_exists(&user)
        });
        // The open session was ended, and what the user made now belongs to the admin.
        let st = session.wait().unwrap();
        assert!(!st.success(), "the session survived the revocation");
        assert!(t0.elapsed() < Duration::from_secs(20));
        assert_eq!(
            psql(&format!(
                "SELECT tableowner FROM pg_tables WHERE schemaname = '{schema}' AND tablename = 'mine_{how}'"
            )),
            admin
        );
        let left = req(
            &p,
            "LIST",
            "/v1/sys/leases/lookup/database/creds/app/",
            None,
        );
        assert_eq!(left.status, 404, "{:?}", left.body);
    }
    drop(p);
    psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    psql(&format!("DROP ROLE IF EXISTS {admin}"));
}

/// A server process this test started, stopped (SIGTERM, then kill) when dropped.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        send_signal(self.0.id(), "TERM");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// MariaDB and Redis started by the test with TLS only (MariaDB with
/// `require_secure_transport`): the database engine reaches both over TLS with the test CA,
/// verifies their certificates, and never falls back to plaintext.
#[test]
fn mariadb_and_redis_over_tls() {
    let tools = ["mariadb-install-db", "mariadb", "redis-server", "redis-cli"];
    let have = tools.iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }) && std::path::Path::new("/usr/sbin/mariadbd").exists();
    if !require(
        "MariaDB (mariadbd, mariadb-install-db) and Redis with TLS",
        have,
    ) {
        return;
    }
    let dir = tempdir("db-tls");
    if !openssl_certs(&dir) {
        return;
    }
    let d = |f: &str| dir.join(f).display().to_string();
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();

    // MariaDB: TLS required for TCP clients; set up over its socket.
    let st = Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--user=root",
            "--skip-test-db",
        ])
        .arg(format!("--datadir={}", d("data")))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let my_port = free_port();
    let _mariadb = Service(
        Command::new("/usr/sbin/mariadbd")
            .args([
                "--no-defaults",
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
            ])
            .args([
                "--innodb-buffer-pool-size=16M",
                "--require-secure-transport=ON",
            ])
            .arg(format!("--datadir={}", d("data")))
            .arg(format!("--port={my_port}"))
            .arg(format!("--socket={}", d("my.sock")))
            .arg(format!("--pid-file={}", d("my.pid")))
            .arg(format!("--ssl-cert={}", d("cert.pem")))
            .arg(format!("--ssl-key={}", d("key.pem")))
            .arg(format!("--ssl-ca={}", d("ca.pem")))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sock = |sql: &str| {
        Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-N", "-e", sql])
            .arg(format!("--socket={}", d("my.sock")))
            .output()
            .unwrap()
    };
    wait_until("MariaDB to start", Duration::from_secs(20), || {
        sock("SELECT 1").status.success()
    });
    let setup = sock(
        "CREATE USER 'admin'@'%' IDENTIFIED BY 's3cret-admin' REQUIRE SSL; GRANT ALL ON *.* TO 'admin'@'%' WITH GRANT OPTION;",
    );
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    // Redis: a TLS port only.
    let rd_port = free_port();
    let _redis = Service(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--tls-auth-clients",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--tls-port", &rd_port.to_string()])
            .args([
                "--tls-cert-file",
                &d("cert.pem"),
                "--tls-key-file",
                &d("key.pem"),
            ])
            .args(["--tls-ca-cert-file", &d("ca.pem"), "--dir", &d("")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rcli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["--tls", "--cacert", &d("ca.pem"), "-h", "127.0.0.1"])
            .args(["-p", &rd_port.to_string()])
            .args(args)
            .output()
            .unwrap()
    };
    wait_until("Redis to start", Duration::from_secs(20), || {
        String::from_utf8_lossy(&rcli(&["PING"]).stdout).contains("PONG")
    });

    let p = start_dev();
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/db",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    let my_cfg = |extra: serde_json::Value, query: &str| {
        let mut body = json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{my_port})/{query}"),
            "username": "admin", "password": "s3cret-admin", "allowed_roles": "*",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        req(&p, "POST", "/v1/db/config/my", Some(body))
    };
    // Plain TCP is refused by the server: no silent plaintext fallback makes it work.
    let plain = my_cfg(json!({}), "");
    assert_eq!(plain.status, 400, "{:?}", plain.body);
    // Options that are not implemented are refused, not ignored.
    for q in [
        "?tls=preferred",
        "?tls=custom",
        "?tls=true&allowFallbackToPlaintext=true",
    ] {
        let r = my_cfg(json!({"verify_connection": false}), q);
        assert_eq!(r.status, 400, "{q}: {:?}", r.body);
    }
    let r = my_cfg(json!({"verify_connection": false, "tls": true}), "");
    assert_eq!(r.status, 400, "a Redis option on MySQL: {:?}", r.body);
    // TLS with the system roots: the test CA is not trusted, so verification fails.
    let r = my_cfg(json!({}), "?tls=true");
    assert_eq!(r.status, 400, "{:?}", r.body);
    // A name the certificate does not carry: refused.
    let r = my_cfg(
        json!({"tls_ca": ca_pem, "tls_server_name": "wrong.example"}),
        "?tls=true",
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    // skip-verify, by name: connects.
    assert_eq!(my_cfg(json!({}), "?tls=skip-verify").status, 204);
    // The CA given: verified TLS.
    let ok = my_cfg(json!({"tls_ca": ca_pem}), "?tls=true");
    assert_eq!(ok.status, 204, "{:?}", ok.body);
    let read = req(&p, "GET", "/v1/db/config/my", None);
    assert!(read.body["data"]["connection_details"]["tls_ca"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let role = req(
        &p,
        "POST",
        "/v1/db/roles/my-app",
        Some(
            json!({"db_name": "my", "creation_statements": ["CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}' REQUIRE SSL; GRANT SELECT ON *.* TO '{{name}}'@'%';"]}),
        ),
    );
    assert_eq!(role.status, 204, "{:?}", role.body);
    let c = req(&p, "GET", "/v1/db/creds/my-app", None);
    assert_eq!(c.status, 200, "{:?}", c.body);
    let user = c.body["data"]["username"].as_str().unwrap().to_string();
    let pw = c.body["data"]["password"].as_str().unwrap().to_string();
    let login = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "--ssl",
            "-N",
            "-e",
            "SELECT CURRENT_USER()",
        ])
        .arg(format!("--ssl-ca={}", d("ca.pem")))
        .arg(format!("-P{my_port}"))
        .arg(format!("-u{user}"))
        .arg(format!("-p{pw}"))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let lease = c.body["lease_id"].as_str().unwrap();
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    let left = sock(&format!(
        "SELECT COUNT(*) FROM mysql.user WHERE user = '{user}'"
    ));
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");

    // Redis over TLS with Vault's fields.
    let rd_cfg = |extra: serde_json::Value| {
        let mut body = json!({
            "plugin_name": "redis-database-plugin", "host": "127.0.0.1", "port": rd_port,
            "allowed_roles": "*",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        req(&p, "POST", "/v1/db/config/rd", Some(body))
    };
    assert_eq!(
        rd_cfg(json!({})).status,
        400,
        "plain TCP to a TLS-only port"
    );
    assert_eq!(
        rd_cfg(json!({"ca_cert": ca_pem, "verify_connection": false})).status,
        400,
        "ca_cert without tls"
    );
    assert_eq!(rd_cfg(json!({"tls": true})).status, 400, "untrusted CA");
    assert_eq!(
        rd_cfg(json!({"tls": true, "insecure_tls": true})).status,
        204
    );
    let ok = rd_cfg(json!({"tls": true, "ca_cert": ca_pem, "insecure_tls": false}));
    assert_eq!(ok.status, 204, "{:?}", ok.body);
    let role = req(
        &p,
        "POST",
        "/v1/db/roles/rd-app",
        Some(json!({"db_name": "rd", "creation_statements": ["[\"~airlock-tls:*\", \"+@read\"]"]})),
    );
    assert_eq!(role.status, 204, "{:?}", role.body);
    let c = req(&p, "GET", "/v1/db/creds/rd-app", None);
    assert_eq!(c.status, 200, "{:?}", c.body);
    let user = c.body["data"]["username"].as_str().unwrap().to_string();
    assert!(String::from_utf8_lossy(&rcli(&["ACL", "USERS"]).stdout).contains(&user));
    let lease = c.body["lease_id"].as_str().unwrap();
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease}))
        )
        .status,
        204
    );
    assert!(!String::from_utf8_lossy(&rcli(&["ACL", "USERS"]).stdout).contains(&user));
}
