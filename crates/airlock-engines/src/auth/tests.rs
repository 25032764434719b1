//! Auth methods over in-memory storage: their logins return an outcome the server would turn
//! into a token; failures say nothing about which part was wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use airlock_logical::testing::{ctx, mount, request, TestSystem};
use airlock_logical::{Backend, Op};
use serde_json::json;

use super::approle::AppRole;
use super::userpass::Userpass;

#[tokio::test]
async fn userpass_login_outcome_and_existence() {
    let c = ctx(Arc::new(TestSystem::default()), mount("up/", "userpass"));
    let up = Userpass;
    let mut w = request(
        Op::Update,
        "auth/up/users/Ann",
        json!({"password": "pw-123456", "token_policies": "dev"}),
    );
    assert_eq!(
        up.existence(&c, &mut w, "users/Ann").await.unwrap(),
        Some(false)
    );
    up.handle(&c, &mut w, "users/Ann").await.unwrap();
    let mut w = request(Op::Update, "auth/up/users/ann", json!({}));
    assert_eq!(
        up.existence(&c, &mut w, "users/ann").await.unwrap(),
        Some(true)
    );
    let mut l = request(
        Op::Update,
        "auth/up/login/ann",
        json!({"password": "pw-123456"}),
    );
    assert_eq!(
        up.describe("login/ann").unwrap().sensitive,
        vec!["password"]
    );
    assert_eq!(up.login_subject(&l, "login/ann"), "ann");
    let out = up
        .handle(&c, &mut l, "login/ann")
        .await
        .unwrap()
        .login
        .unwrap();
    assert_eq!(out.settings.token_policies, vec!["dev".to_string()]);
    assert_eq!(out.meta["username"], "ann");
    let mut bad = request(Op::Update, "auth/up/login/ann", json!({"password": "nope"}));
    assert_eq!(
        up.handle(&c, &mut bad, "login/ann")
            .await
            .unwrap_err()
            .errors[0],
        "invalid username or password"
    );
    let mut nobody = request(
        Op::Update,
        "auth/up/login/bob",
        json!({"password": "pw-123456"}),
    );
    assert_eq!(
        up.handle(&c, &mut nobody, "login/bob")
            .await
            .unwrap_err()
            .errors[0],
        "invalid username or password"
    );
}

#[tokio::test]
async fn approle_secret_ids_are_single_use_when_asked() {
    let c = ctx(
        Arc::new(TestSystem::default()),
        mount("approle/", "approle"),
    );
    let ar = AppRole;
    let mut w = request(
        Op::Update,
        "auth/approle/role/ci",
        json!({"secret_id_num_uses": 1, "token_policies": "ci"}),
    );
    ar.handle(&c, &mut w, "role/ci").await.unwrap();
    let mut r = request(Op::Read, "auth/approle/role/ci/role-id", json!({}));
    let role_id = ar
        .handle(&c, &mut r, "role/ci/role-id")
        .await
        .unwrap()
        .data
        .unwrap()["role_id"]
        .clone();
    let mut g = request(Op::Update, "auth/approle/role/ci/secret-id", json!({}));
    let sid = ar
        .handle(&c, &mut g, "role/ci/secret-id")
        .await
        .unwrap()
        .data
        .unwrap()["secret_id"]
        .clone();
    let login = json!({"role_id": role_id, "secret_id": sid});
    let mut l = request(Op::Update, "auth/approle/login", login.clone());
    let out = ar.handle(&c, &mut l, "login").await.unwrap().login.unwrap();
    assert_eq!(out.meta["role_name"], "ci");
    let mut again = request(Op::Update, "auth/approle/login", login);
    assert_eq!(
        ar.handle(&c, &mut again, "login").await.unwrap_err().status,
        400
    );
    // The secret id is stored only as an HMAC.
    let keys = c.storage.scan("secret-id/").await.unwrap();
    assert!(keys.iter().all(|k| !k.contains(sid.as_str().unwrap())));
}
