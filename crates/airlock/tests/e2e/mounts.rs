//! The mount lifecycle against the real PostgreSQL: disabling a secrets mount revokes what it
//! issued before its data goes (as disabling an auth mount revokes its tokens), role TTLs are
//! clamped to the server's maximum whatever the mount says, the engine answers its own
//! existence check (create vs update), `sys/remount` moves a mount with its data, and
//! `?help=1` describes a path.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::database::{psql_ok, role_exists};
use crate::util::*;

/// A server whose system maximum lease TTL is one hour.
fn server(dir: &std::path::Path) -> Proc {
    let cfg = dir.join("airlock.toml");
    std::fs::write(dir.join("unseal.key"), "44".repeat(32)).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "max_lease_ttl = 3600\ndefault_lease_ttl = 1800\n[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\nkey_file = \"{}\"\n",
            dir.join("data.db").display(),
            dir.join("unseal.key").display()
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    p
}

fn ok(r: Resp, what: &str) -> Resp {
    assert!(
        r.status == 200 || r.status == 204,
        "{what}: {} {:?}",
        r.status,
        r.body
    );
    r
}

fn gone_within(name: &str, limit: Duration) {
    let t = Instant::now();
    while role_exists(name) {
        assert!(t.elapsed() < limit, "{name} still exists after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mount_database(p: &Proc, path: &str) {
    ok(
        req(
            p,
            "POST",
            &format!("/v1/sys/mounts/{path}"),
            Some(json!({"type": "database", "config": {"max_lease_ttl": "10h"}})),
        ),
        "mount",
    );
    ok(
        req(
            p,
            "POST",
            &format!("/v1/{path}/config/pg"),
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
                "username": "postgres", "password": "unused-with-trust-auth",
                "allowed_roles": "*",
            })),
        ),
        "config",
    );
    ok(
        req(
            p,
            "POST",
            &format!("/v1/{path}/roles/long"),
            Some(json!({
                "db_name": "pg",
                "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],
                "default_ttl": "4h", "max_ttl": "5h",
            })),
        ),
        "role",
    );
}

/// Regression: a role's TTLs were clamped to the mount's maximum but not the server's.
#[test]
fn database_role_ttls_never_pass_the_system_max() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let dir = tempdir("mounts-ttl");
    let p = server(&dir);
    mount_database(&p, "db-ttl");
    // The mount allows 10h and the role asks for 4h/5h, but the server's maximum is 1h.
    let c = ok(req(&p, "GET", "/v1/db-ttl/creds/long", None), "creds");
    let user = c.body["data"]["username"].as_str().unwrap().to_string();
    let lease = c.body["lease_id"].as_str().unwrap().to_string();
    let duration = c.body["lease_duration"].clone();
    ok(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke",
            Some(json!({"lease_id": lease})),
        ),
        "revoke",
    );
    gone_within(&user, Duration::from_secs(5));
    assert_eq!(duration, 3600, "{:?}", c.body);
    let c = ok(req(&p, "GET", "/v1/db-ttl/creds/long", None), "creds");
    let renewed = ok(
        req(
            &p,
            "PUT",
            "/v1/sys/leases/renew",
            Some(json!({"lease_id": c.body["lease_id"], "increment": "9h"})),
        ),
        "renew",
    );
    assert!(renewed.body["lease_duration"].as_i64().unwrap() <= 3600);
    ok(req(&p, "DELETE", "/v1/sys/mounts/db-ttl", None), "disable");
}

/// Regression: disabling a database mount removed its data and forgot its leases without
/// dropping the users they stood for.
#[test]
fn disabling_a_database_mount_revokes_its_users() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let dir = tempdir("mounts-life");
    let p = server(&dir);
    mount_database(&p, "db-life");
    let mut users = Vec::new();
    for _ in 0..2 {
        let c = ok(req(&p, "GET", "/v1/db-life/creds/long", None), "creds");
        let user = c.body["data"]["username"].as_str().unwrap().to_string();
        assert!(role_exists(&user));
        users.push(user);
    }
    // Disabling the mount drops every user it created, then its leases and data.
    ok(req(&p, "DELETE", "/v1/sys/mounts/db-life", None), "disable");
    let still: Vec<&String> = users.iter().filter(|u| role_exists(u)).collect();
    for u in &users {
        // Clean up whatever the server left, so a failure does not leak database users.
        if role_exists(u) {
            crate::database::psql(&format!("DROP ROLE IF EXISTS \"{u}\""));
        }
    }
    assert!(
        still.is_empty(),
        "users left behind by the disable: {still:?}"
    );
    assert_eq!(
        req(
            &p,
            "LIST",
            "/v1/sys/leases/lookup/db-life/creds/long/",
            None
        )
        .status,
        404
    );
    // Mounting again at the same path starts empty.
    mount_database(&p, "db-life");
    let r = req(&p, "LIST", "/v1/db-life/roles", None);
    assert_eq!(r.body["data"]["keys"], json!(["long"]));
    assert_eq!(
        req(&p, "LIST", "/v1/db-life/config", None).body["data"]["keys"],
        json!(["pg"])
    );
    ok(
        req(&p, "DELETE", "/v1/sys/mounts/db-life", None),
        "disable again",
    );
}

#[test]
fn database_roles_answer_their_own_existence_check() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let dir = tempdir("mounts-exist");
    let p = server(&dir);
    mount_database(&p, "db-x");
    ok(
        req(
            &p,
            "PUT",
            "/v1/sys/policies/acl/create-only",
            Some(json!({"policy": "path \"db-x/roles/*\" { capabilities = [\"create\"] }"})),
        ),
        "policy",
    );
    let t = ok(
        req(
            &p,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["create-only"]})),
        ),
        "token",
    );
    let tok = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let body = json!({"db_name": "pg", "creation_statements": ["SELECT 1"]});
    assert_eq!(
        with_token(&p, &tok, "POST", "/v1/db-x/roles/fresh", Some(body.clone())).status,
        204
    );
    assert_eq!(
        with_token(&p, &tok, "POST", "/v1/db-x/roles/fresh", Some(body)).status,
        403
    );
}

#[test]
fn remount_moves_a_mount_with_its_data_and_help_describes_paths() {
    let mut p = start_dev();
    p.token = Some("root".into());
    ok(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/old-kv",
            Some(json!({"type": "kv-v2"})),
        ),
        "mount",
    );
    ok(
        req(
            &p,
            "POST",
            "/v1/old-kv/data/app",
            Some(json!({"data": {"k": "v"}})),
        ),
        "write",
    );
    // Needs sudo, like Vault's.
    ok(
        req(
            &p,
            "PUT",
            "/v1/sys/policies/acl/no-sudo",
            Some(json!({"policy": "path \"sys/remount\" { capabilities = [\"update\"] }"})),
        ),
        "policy",
    );
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["no-sudo"]})),
    );
    let tok = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        with_token(
            &p,
            &tok,
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "old-kv", "to": "new-kv"}))
        )
        .status,
        403
    );
    let r = ok(
        req(
            &p,
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "old-kv", "to": "new-kv"})),
        ),
        "remount",
    );
    let id = r.body["data"]["migration_id"].as_str().unwrap().to_string();
    let s = ok(
        req(&p, "GET", &format!("/v1/sys/remount/status/{id}"), None),
        "status",
    );
    assert_eq!(s.body["data"]["migration_info"]["status"], "success");
    assert_eq!(
        req(&p, "GET", "/v1/new-kv/data/app", None).body["data"]["data"]["k"],
        "v"
    );
    assert_eq!(req(&p, "GET", "/v1/old-kv/data/app", None).status, 404);
    // Errors: a missing source, a taken target, a reserved target.
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "nope", "to": "x"}))
        )
        .status,
        400
    );
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "new-kv", "to": "secret"}))
        )
        .status,
        400
    );
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "new-kv", "to": "sys/x"}))
        )
        .status,
        400
    );
    // An auth method moves within the auth table.
    ok(
        req(
            &p,
            "POST",
            "/v1/sys/auth/up",
            Some(json!({"type": "userpass"})),
        ),
        "enable userpass",
    );
    ok(
        req(
            &p,
            "POST",
            "/v1/auth/up/users/ann",
            Some(json!({"password": "pw-123456"})),
        ),
        "user",
    );
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "auth/up", "to": "kv-elsewhere"}))
        )
        .status,
        400
    );
    ok(
        req(
            &p,
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "auth/up", "to": "auth/people"})),
        ),
        "remount auth",
    );
    let login = req(
        &p,
        "POST",
        "/v1/auth/people/login/ann",
        Some(json!({"password": "pw-123456"})),
    );
    assert_eq!(login.status, 200, "{:?}", login.body);

    // ?help=1 describes the matched path, its operations and fields.
    let h = ok(req(&p, "GET", "/v1/new-kv/data/app?help=1", None), "help");
    let text = h.body["data"]["help"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.contains("data/{key*}") && text.contains("options"),
        "{text}"
    );
    let h = ok(
        req(&p, "GET", "/v1/auth/people/users/ann?help=1", None),
        "help",
    );
    assert!(h.body["data"]["help"]
        .as_str()
        .unwrap()
        .contains("password (string) [sensitive]"));
}
