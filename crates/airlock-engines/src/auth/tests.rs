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
async fn userpass_stores_argon2id_and_rehashes_older_hashes_at_login() {
    use super::userpass::{pbkdf2, Kdf, User, ARGON2};
    let c = ctx(Arc::new(TestSystem::default()), mount("up/", "userpass"));
    let up = Userpass;
    let mut w = request(
        Op::Update,
        "auth/up/users/new",
        json!({"password": "pw-new-1"}),
    );
    up.handle(&c, &mut w, "users/new").await.unwrap();
    let u: User = c.storage.get_json("user/new").await.unwrap().unwrap();
    assert_eq!(
        (u.kdf, u.m_cost, u.t_cost, u.p_cost),
        (Kdf::Argon2id, ARGON2.0, ARGON2.1, ARGON2.2)
    );
    assert_eq!((u.salt.len(), u.hash.len()), (32, 64));
    // A record written by an older release: PBKDF2-HMAC-SHA256, 100,000 iterations, and no
    // `kdf` field at all.
    let salt = [7u8; 16];
    let legacy = json!({
        "name": "old",
        "salt": hex::encode(salt),
        "hash": hex::encode(pbkdf2(b"pw-old-1", &salt, 100_000)),
        "iterations": 100_000,
        "token_policies": ["dev"],
    });
    c.storage.put_json("user/old", &legacy).await.unwrap();
    let login = |pw: &str| request(Op::Update, "auth/up/login/old", json!({"password": pw}));
    // A wrong password fails and changes nothing.
    assert!(up
        .handle(&c, &mut login("wrong"), "login/old")
        .await
        .is_err());
    let still: User = c.storage.get_json("user/old").await.unwrap().unwrap();
    assert_eq!(still.kdf, Kdf::Pbkdf2Sha256);
    // The right one logs in and is re-hashed with Argon2id; the next login uses that.
    let out = up
        .handle(&c, &mut login("pw-old-1"), "login/old")
        .await
        .unwrap();
    assert_eq!(
        out.login.unwrap().settings.token_policies,
        vec!["dev".to_string()]
    );
    let now: User = c.storage.get_json("user/old").await.unwrap().unwrap();
    assert_eq!((now.kdf, now.iterations), (Kdf::Argon2id, 0));
    assert_ne!(now.salt, hex::encode(salt));
    assert!(up
        .handle(&c, &mut login("pw-old-1"), "login/old")
        .await
        .is_ok());
    assert!(up
        .handle(&c, &mut login("wrong"), "login/old")
        .await
        .is_err());
    // Older Argon2id parameters are raised too.
    let mut weak = now.clone();
    weak.m_cost = 8;
    weak.t_cost = 1;
    let h = super::userpass::Scheme {
        kdf: Kdf::Argon2id,
        iterations: 0,
        m_cost: 8,
        t_cost: 1,
        p_cost: 1,
    }
    .hash(b"pw-old-1", &salt)
    .unwrap();
    weak.salt = hex::encode(salt);
    weak.hash = hex::encode(h);
    c.storage.put_json("user/old", &weak).await.unwrap();
    assert!(up
        .handle(&c, &mut login("pw-old-1"), "login/old")
        .await
        .is_ok());
    let raised: User = c.storage.get_json("user/old").await.unwrap().unwrap();
    assert_eq!((raised.m_cost, raised.t_cost), (ARGON2.0, ARGON2.1));
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
