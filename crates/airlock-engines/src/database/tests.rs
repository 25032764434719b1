//! Role, credential and lease logic over in-memory storage and a fake plugin: no database
//! server needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use airlock_logical::testing::{ctx, mount, request, TestSystem};
use airlock_logical::{Backend, LeaseInfo, Op};
use async_trait::async_trait;
use serde_json::json;

use super::plugin::{var, Plugin, Vars};
use super::{Database, DbConfig, Role};

/// Records what it was asked to do; fails creation when the role says so.
#[derive(Default)]
struct Fake {
    users: Mutex<Vec<String>>,
    passwords: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Plugin for Fake {
    fn names(&self) -> &'static [&'static str] {
        &["fake-database-plugin"]
    }
    async fn verify(&self, c: &DbConfig) -> Result<(), String> {
        if c.connection_url == "down" {
            return Err("connection refused".into());
        }
        Ok(())
    }
    async fn create_user(
        &self,
        _conn: &str,
        _c: &DbConfig,
        role: &Role,
        vars: &Vars<'_>,
    ) -> Result<(), String> {
        if role.creation_statements.iter().any(|s| s == "FAIL") {
            return Err("syntax error".into());
        }
        self.users
            .lock()
            .unwrap()
            .push(var(vars, "name").to_string());
        Ok(())
    }
    async fn revoke_user(
        &self,
        _conn: &str,
        _c: &DbConfig,
        username: &str,
        _custom: &[String],
    ) -> Result<(), String> {
        self.users.lock().unwrap().retain(|u| u != username);
        Ok(())
    }
    async fn set_password(
        &self,
        _conn: &str,
        _c: &DbConfig,
        username: &str,
        password: &str,
        _custom: &[String],
    ) -> Result<(), String> {
        self.passwords
            .lock()
            .unwrap()
            .push((username.into(), password.into()));
        Ok(())
    }
}

async fn setup(
    sys: Arc<TestSystem>,
    mount_max: i64,
) -> (Arc<Fake>, Database, airlock_logical::Ctx) {
    let fake = Arc::new(Fake::default());
    let db = Database::with_plugins(vec![fake.clone()]);
    let mut m = mount("database/", "database");
    m.max_lease_ttl = mount_max;
    let c = ctx(sys, m);
    let mut r = request(
        Op::Update,
        "database/config/main",
        json!({"plugin_name": "fake-database-plugin", "connection_url": "x", "allowed_roles": "*", "password": "root-pw"}),
    );
    db.handle(&c, &mut r, "config/main").await.unwrap();
    (fake, db, c)
}

async fn write_role(db: &Database, c: &airlock_logical::Ctx, name: &str, body: serde_json::Value) {
    let mut r = request(Op::Update, &format!("database/roles/{name}"), body);
    db.handle(c, &mut r, &format!("roles/{name}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn creds_register_a_lease_then_create_and_revoke_drops() {
    let sys = Arc::new(TestSystem::default());
    let (fake, db, c) = setup(sys.clone(), 0).await;
    write_role(
        &db,
        &c,
        "app",
        json!({"db_name": "main", "creation_statements": "CREATE", "default_ttl": "1h"}),
    )
    .await;
    let mut r = request(Op::Read, "database/creds/app", json!({}));
    let resp = db.handle(&c, &mut r, "creds/app").await.unwrap();
    assert_eq!(resp.lease_duration, 3600);
    let user = resp.data.as_ref().unwrap()["username"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(*fake.users.lock().unwrap(), vec![user.clone()]);
    let ids = sys.lease_ids();
    assert_eq!(ids.len(), 1);
    assert!(ids[0].starts_with("database/creds/app/"));
    let lease = sys.lease(&ids[0]).unwrap();
    db.revoke(
        &c,
        &LeaseInfo {
            lease_id: &ids[0],
            internal: &lease.internal,
            expire_time: 0,
        },
    )
    .await
    .unwrap();
    assert!(fake.users.lock().unwrap().is_empty());
}

#[tokio::test]
async fn failed_creation_revokes_its_lease() {
    let sys = Arc::new(TestSystem::default());
    let (fake, db, c) = setup(sys.clone(), 0).await;
    write_role(
        &db,
        &c,
        "bad",
        json!({"db_name": "main", "creation_statements": "FAIL"}),
    )
    .await;
    let mut r = request(Op::Read, "database/creds/bad", json!({}));
    let e = db.handle(&c, &mut r, "creds/bad").await.unwrap_err();
    assert_eq!(e.status, 500);
    assert!(e.errors[0].contains("syntax error"));
    assert!(
        sys.lease_ids().is_empty(),
        "the lease went with the failure"
    );
    assert!(fake.users.lock().unwrap().is_empty());
}

/// Regression: a role's max_ttl is clamped to the system maximum even when the mount's own
/// maximum is larger (it used to be clamped only to the mount's).
#[tokio::test]
async fn role_ttls_are_clamped_to_the_system_max() {
    let sys = Arc::new(TestSystem::with_limits(600, 3600));
    let (_fake, db, c) = setup(sys.clone(), 36_000).await;
    write_role(&db, &c, "long", json!({"db_name": "main", "creation_statements": "CREATE", "default_ttl": "4h", "max_ttl": "5h"})).await;
    let mut r = request(Op::Read, "database/creds/long", json!({}));
    let resp = db.handle(&c, &mut r, "creds/long").await.unwrap();
    assert_eq!(resp.lease_duration, 3600);
    let lease = sys.lease(&sys.lease_ids()[0]).unwrap();
    assert_eq!(lease.ttl, 3600);
}

#[tokio::test]
async fn existence_check_and_declared_fields() {
    let sys = Arc::new(TestSystem::default());
    let (_fake, db, c) = setup(sys, 0).await;
    let mut r = request(Op::Update, "database/roles/app", json!({}));
    assert_eq!(
        db.existence(&c, &mut r, "roles/app").await.unwrap(),
        Some(false)
    );
    write_role(
        &db,
        &c,
        "app",
        json!({"db_name": "main", "creation_statements": "CREATE"}),
    )
    .await;
    let mut r = request(Op::Update, "database/roles/app", json!({}));
    assert_eq!(
        db.existence(&c, &mut r, "roles/app").await.unwrap(),
        Some(true)
    );
    let mut r = request(Op::Update, "database/config/main", json!({}));
    assert_eq!(
        db.existence(&c, &mut r, "config/main").await.unwrap(),
        Some(true)
    );
    // An operation the path does not declare.
    let mut r = request(Op::Update, "database/creds/app", json!({}));
    assert_eq!(
        db.handle(&c, &mut r, "creds/app").await.unwrap_err().status,
        405
    );
    // Help text.
    let mut r = request(Op::Read, "database/roles/app", json!({}));
    r.query.push(("help".into(), "1".into()));
    let h = db.handle(&c, &mut r, "roles/app").await.unwrap();
    assert!(h.data.unwrap()["help"]
        .as_str()
        .unwrap()
        .contains("creation_statements"));
}

#[tokio::test]
async fn config_password_is_never_returned_and_verification_fails_cleanly() {
    let sys = Arc::new(TestSystem::default());
    let (_fake, db, c) = setup(sys, 0).await;
    let mut r = request(Op::Read, "database/config/main", json!({}));
    let v = db.handle(&c, &mut r, "config/main").await.unwrap();
    assert!(!v.data.unwrap().to_string().contains("root-pw"));
    let mut r = request(
        Op::Update,
        "database/config/down",
        json!({"plugin_name": "fake-database-plugin", "connection_url": "down"}),
    );
    let e = db.handle(&c, &mut r, "config/down").await.unwrap_err();
    assert_eq!(e.status, 400);
    let mut r = request(Op::Read, "database/config/down", json!({}));
    assert_eq!(
        db.handle(&c, &mut r, "config/down")
            .await
            .unwrap_err()
            .status,
        404
    );
}

#[tokio::test]
async fn static_roles_rotate_on_schedule() {
    let sys = Arc::new(TestSystem::default());
    let (fake, db, c) = setup(sys.clone(), 0).await;
    let mut r = request(
        Op::Update,
        "database/static-roles/svc",
        json!({"db_name": "main", "username": "svc", "rotation_period": "60s"}),
    );
    db.handle(&c, &mut r, "static-roles/svc").await.unwrap();
    assert_eq!(
        fake.passwords.lock().unwrap().len(),
        1,
        "rotated on creation"
    );
    db.periodic(&c).await.unwrap();
    assert_eq!(fake.passwords.lock().unwrap().len(), 1, "not due yet");
    sys.advance(61);
    db.periodic(&c).await.unwrap();
    assert_eq!(fake.passwords.lock().unwrap().len(), 2);
    let mut r = request(Op::Read, "database/static-creds/svc", json!({}));
    let v = db.handle(&c, &mut r, "static-creds/svc").await.unwrap();
    let last = fake.passwords.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(v.data.unwrap()["password"], json!(last));
}

#[tokio::test]
async fn statements_that_would_keep_braces_are_refused_when_written() {
    let sys = Arc::new(TestSystem::default());
    let (_, db, c) = setup(sys, 0).await;
    for (field, stmt) in [
        ("creation_statements", r#"CREATE ROLE "{{ nme }}""#),
        ("revocation_statements", r#"DROP ROLE "{{name""#),
        ("rollback_statements", "{{}}"),
    ] {
        let mut body = json!({"db_name": "main", "creation_statements": "CREATE"});
        body[field] = json!([stmt]);
        let mut r = request(Op::Update, "database/roles/bad", body);
        let e = db.handle(&c, &mut r, "roles/bad").await.unwrap_err();
        assert_eq!(e.status, 400, "{field}");
        assert!(e.errors[0].contains(field), "{:?}", e.errors);
    }
    let mut r = request(Op::Read, "database/roles/bad", json!({}));
    assert_eq!(
        db.handle(&c, &mut r, "roles/bad").await.unwrap_err().status,
        404,
        "nothing was written"
    );
    // Whitespace inside the braces is fine.
    write_role(
        &db,
        &c,
        "spaced",
        json!({"db_name": "main", "creation_statements": [r#"CREATE ROLE "{{ name }}" PASSWORD '{{ password }}'"#]}),
    )
    .await;
}
