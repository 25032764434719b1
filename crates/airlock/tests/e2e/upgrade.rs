//! A store written by the previous release opens with this build: `fixtures/store-v1` is a
//! SQLite store made by the build of commit d2a26a0 (see its README). A copy of it must
//! auto-unseal with the same key file and serve its KV v1/v2 secrets, policy, service token,
//! database lease and role, AppRole and userpass logins; the lease still revokes the
//! PostgreSQL user behind it, and the store takes new writes and reopens.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::database::{psql, psql_ok, role_exists};
use crate::util::*;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

fn s(v: &Value) -> &str {
    v.as_str().expect("string in fixture.json")
}

/// Copies the fixture store into `dir` and writes a config that opens it with the fixture key.
fn prepare(dir: &Path, fx: &Value) -> PathBuf {
    std::fs::copy(fixture_dir().join("store.db"), dir.join("store.db")).unwrap();
    std::fs::write(dir.join("unseal.key"), s(&fx["unseal_key_hex"])).unwrap();
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "max_lease_ttl = {}\n[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\nkey_file = \"{}\"\n",
            fx["max_lease_ttl"],
            dir.join("store.db").display(),
            dir.join("unseal.key").display()
        ),
    )
    .unwrap();
    cfg
}

fn assert_unsealed(p: &Proc) {
    let st = req(p, "GET", "/v1/sys/seal-status", None);
    assert_eq!(st.status, 200, "{:?}", st.body);
    assert_eq!(st.body["initialized"], true, "{:?}", st.body);
    assert_eq!(st.body["sealed"], false, "{:?}", st.body);
    assert_eq!(st.body["type"], "keyfile", "{:?}", st.body);
}

fn login(p: &Proc, path: &str, body: Value) -> String {
    let r = http(
        &p.addr,
        "POST",
        path,
        None,
        Some(&serde_json::to_vec(&body).unwrap()),
        &[],
    );
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    let policies = r.body["auth"]["policies"].to_string();
    assert!(policies.contains("fixture-reader"), "{path}: {policies}");
    r.body["auth"]["client_token"].as_str().unwrap().to_string()
}

#[test]
fn store_written_by_previous_release_opens_unseals_and_serves() {
    let fx: Value =
        serde_json::from_slice(&std::fs::read(fixture_dir().join("fixture.json")).unwrap())
            .unwrap();
    let db = &fx["database"];
    let db_user = s(&db["username"]);
    let lease_id = s(&db["lease_id"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Issued with a 100-year TTL; should it ever be past, start-up expiry may revoke it.
    let lease_live = now < db["lease_expires_after_unix"].as_i64().unwrap();

    // The fixture's database user was dropped when the fixture was made: recreate it so the
    // lease's revocation has a user to drop.
    let pg = require(
        "PostgreSQL on 127.0.0.1:5432 with psql (for the lease revocation)",
        psql_ok(),
    );
    if pg {
        psql(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{db_user}') \
             THEN CREATE ROLE \"{db_user}\" LOGIN; END IF; END $$"
        ));
        assert!(role_exists(db_user), "could not create {db_user}");
    }

    let dir = tempdir("upgrade");
    let cfg = prepare(&dir, &fx);
    let mut p = start_config(&cfg);
    assert_unsealed(&p);
    p.token = Some(s(&fx["root_token"]).to_string());

    // Mounts keep their types and options.
    let mounts = req(&p, "GET", "/v1/sys/mounts", None);
    assert_eq!(mounts.status, 200, "{:?}", mounts.body);
    let m = &mounts.body["data"];
    assert_eq!(m["secret/"]["type"], "kv");
    assert_eq!(m["secret/"]["options"]["version"], "2");
    assert_eq!(m["kv1/"]["type"], "kv");
    assert_ne!(m["kv1/"]["options"]["version"], "2");
    assert_eq!(m["database/"]["type"], "database");
    let auths = req(&p, "GET", "/v1/sys/auth", None);
    assert_eq!(auths.body["data"]["approle/"]["type"], "approle");
    assert_eq!(auths.body["data"]["userpass/"]["type"], "userpass");

    // KV v2: both versions, and the latest.
    let kv2 = &fx["kv2"];
    let path = format!("/v1/secret/data/{}", s(&kv2["path"]));
    for (i, want) in kv2["versions"].as_array().unwrap().iter().enumerate() {
        let v = i + 1;
        let r = req(&p, "GET", &format!("{path}?version={v}"), None);
        assert_eq!(r.status, 200, "version {v}: {:?}", r.body);
        assert_eq!(&r.body["data"]["data"], want, "version {v}");
        assert_eq!(r.body["data"]["metadata"]["version"], v);
    }
    let latest = req(&p, "GET", &path, None);
    assert_eq!(latest.body["data"]["data"], kv2["versions"][1]);
    let meta = req(
        &p,
        "GET",
        &format!("/v1/secret/metadata/{}", s(&kv2["path"])),
        None,
    );
    assert_eq!(meta.body["data"]["current_version"], 2, "{:?}", meta.body);

    // KV v1.
    let kv1 = &fx["kv1"];
    let r = req(&p, "GET", &format!("/v1/kv1/{}", s(&kv1["path"])), None);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"], kv1["data"]);

    // The policy, and the service token it was given: valid for its 100 years, reads what
    // the policy allows and nothing else.
    let pol = req(&p, "GET", "/v1/sys/policies/acl/fixture-reader", None);
    assert_eq!(pol.status, 200, "{:?}", pol.body);
    assert!(pol.body["data"]["policy"]
        .as_str()
        .unwrap()
        .contains("secret/data/app/*"));
    let svc = s(&fx["service_token"]);
    let me = with_token(&p, svc, "GET", "/v1/auth/token/lookup-self", None);
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["data"]["type"], "service");
    assert_eq!(me.body["data"]["display_name"], "token-fixture");
    assert_eq!(me.body["data"]["meta"]["purpose"], "upgrade-fixture");
    assert!(me.body["data"]["policies"]
        .as_array()
        .unwrap()
        .contains(&json!("fixture-reader")));
    assert!(
        me.body["data"]["ttl"].as_i64().unwrap() > 50 * 365 * 86400,
        "{:?}",
        me.body["data"]["ttl"]
    );
    let allowed = [
        path.clone(),
        format!("/v1/kv1/{}", s(&kv1["path"])),
        format!("/v1/secret/metadata/{}", s(&kv2["path"])),
    ];
    for a in &allowed {
        let r = with_token(&p, svc, "GET", a, None);
        assert_eq!(r.status, 200, "{a}: {:?}", r.body);
    }
    let denied = [
        ("GET", format!("/v1/secret/data/{}", s(&kv2["denied_path"]))),
        ("GET", format!("/v1/kv1/{}", s(&kv1["denied_path"]))),
        ("GET", "/v1/database/roles/app".to_string()),
        ("GET", "/v1/sys/mounts".to_string()),
    ];
    for (method, d) in &denied {
        let r = with_token(&p, svc, method, d, None);
        assert_eq!(r.status, 403, "{method} {d}: {:?}", r.body);
    }
    let w = with_token(
        &p,
        svc,
        "POST",
        &path,
        Some(json!({"data": {"api_key": "nope"}})),
    );
    assert_eq!(w.status, 403, "{:?}", w.body);

    // The database connection, role and lease.
    let conn = req(&p, "GET", "/v1/database/config/pg", None);
    assert_eq!(conn.status, 200, "{:?}", conn.body);
    assert_eq!(
        conn.body["data"]["plugin_name"],
        "postgresql-database-plugin"
    );
    assert!(conn.body["data"]["connection_details"]["connection_url"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1:5432"));
    assert_eq!(conn.body["data"]["allowed_roles"], json!(["app"]));
    let role = req(&p, "GET", "/v1/database/roles/app", None);
    assert_eq!(role.status, 200, "{:?}", role.body);
    assert_eq!(role.body["data"]["db_name"], "pg");
    assert_eq!(role.body["data"]["default_ttl"], db["lease_ttl"]);
    assert!(role.body["data"]["creation_statements"][0]
        .as_str()
        .unwrap()
        .starts_with("CREATE ROLE \"{{name}}\""));
    let look = req(
        &p,
        "PUT",
        "/v1/sys/leases/lookup",
        Some(json!({ "lease_id": lease_id })),
    );
    if lease_live {
        assert_eq!(look.status, 200, "{:?}", look.body);
        assert_eq!(look.body["data"]["id"], lease_id);
        assert_eq!(look.body["data"]["path"], "database/creds/app");
        assert_eq!(look.body["data"]["renewable"], true);
        assert!(look.body["data"]["ttl"].as_i64().unwrap() > 0);
        let list = req(
            &p,
            "LIST",
            "/v1/sys/leases/lookup/database/creds/app/",
            None,
        );
        let suffix = lease_id.rsplit('/').next().unwrap();
        assert!(
            list.body["data"]["keys"]
                .as_array()
                .is_some_and(|k| k.contains(&json!(suffix))),
            "{:?}",
            list.body
        );
    } else {
        eprintln!("the fixture lease is past its expiry: only checking that it was revoked");
    }

    // AppRole (twice: the secret_id is unlimited-use) and userpass logins.
    let ar = &fx["approle"];
    for _ in 0..2 {
        let t = login(
            &p,
            "/v1/auth/approle/login",
            json!({"role_id": ar["role_id"], "secret_id": ar["secret_id"]}),
        );
        assert_eq!(with_token(&p, &t, "GET", &allowed[1], None).status, 200);
    }
    let up = &fx["userpass"];
    let t = login(
        &p,
        &format!("/v1/auth/userpass/login/{}", s(&up["username"])),
        json!({"password": up["password"]}),
    );
    assert_eq!(with_token(&p, &t, "GET", &allowed[0], None).status, 200);
    let bad = http(
        &p.addr,
        "POST",
        &format!("/v1/auth/userpass/login/{}", s(&up["username"])),
        None,
        Some(br#"{"password":"wrong"}"#),
        &[],
    );
    assert!(bad.status >= 400, "{:?}", bad.body);

    // The lease still knows its database user: revoking it drops the user.
    if pg {
        if lease_live {
            let r = req(
                &p,
                "PUT",
                "/v1/sys/leases/revoke",
                Some(json!({ "lease_id": lease_id })),
            );
            assert_eq!(r.status, 204, "{:?}", r.body);
        }
        wait_until(
            "the lease's database user to be dropped",
            std::time::Duration::from_secs(20),
            || !role_exists(db_user),
        );
        let gone = req(
            &p,
            "PUT",
            "/v1/sys/leases/lookup",
            Some(json!({ "lease_id": lease_id })),
        );
        assert_eq!(gone.status, 400, "{:?}", gone.body);
    }

    // The old store takes new writes, and reopens with them.
    let w = req(
        &p,
        "POST",
        &path,
        Some(json!({"data": {"api_key": "v3-key"}})),
    );
    assert_eq!(w.status, 200, "{:?}", w.body);
    assert_eq!(w.body["data"]["version"], 3);
    send_signal(p.child.id(), "TERM");
    let _ = p.child.wait();
    drop(p);
    let mut p = start_config(&cfg);
    assert_unsealed(&p);
    p.token = Some(s(&fx["root_token"]).to_string());
    let r = req(&p, "GET", &format!("{path}?version=1"), None);
    assert_eq!(r.body["data"]["data"], kv2["versions"][0]);
    let r = req(&p, "GET", &path, None);
    assert_eq!(r.body["data"]["data"]["api_key"], "v3-key");
    assert_eq!(with_token(&p, svc, "GET", &allowed[0], None).status, 200);
}
