//! The request pipeline run in-process (no HTTP): an in-memory dev core, requests through
//! `Core::handle`, the router, the engines, the ACL and the mount lifecycle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::logical::{Op, Request, Response};
use crate::{build_core, Config, Core};

async fn dev() -> Arc<Core> {
    let core = build_core(Config::dev(Some("root".into()))).await.unwrap();
    core.initialize(1, 1, Some("root".into()), true)
        .await
        .unwrap();
    core
}

async fn call(
    core: &Arc<Core>,
    token: &str,
    op: Op,
    path: &str,
    data: Value,
) -> crate::error::ApiResult<Response> {
    let mut r = Request::new(op, path);
    if let Value::Object(m) = data {
        r.data = m;
    }
    r.token = Some(Zeroizing::new(token.to_string()));
    core.handle(r).await
}

fn data(r: &Response) -> &Value {
    r.data.as_ref().unwrap()
}

#[tokio::test]
async fn kv_through_the_router_with_acl_existence_and_help() {
    let core = dev().await;
    call(
        &core,
        "root",
        Op::Update,
        "secret/data/app",
        json!({"data": {"k": "v1"}}),
    )
    .await
    .unwrap();
    let r = call(&core, "root", Op::Read, "secret/data/app", json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["data"]["k"], "v1");

    // A create-only token may create a key but not overwrite it: the engine answers the
    // existence check.
    call(
        &core,
        "root",
        Op::Update,
        "sys/policies/acl/create-only",
        json!({"policy": "path \"secret/data/*\" { capabilities = [\"create\"] }"}),
    )
    .await
    .unwrap();
    let t = call(
        &core,
        "root",
        Op::Update,
        "auth/token/create",
        json!({"policies": ["create-only"]}),
    )
    .await
    .unwrap();
    let tok = t.auth.unwrap().client_token;
    assert!(call(
        &core,
        &tok,
        Op::Update,
        "secret/data/new",
        json!({"data": {"a": 1}})
    )
    .await
    .is_ok());
    let denied = call(
        &core,
        &tok,
        Op::Update,
        "secret/data/app",
        json!({"data": {"a": 1}}),
    )
    .await
    .unwrap_err();
    assert_eq!(denied.status, 403);
    let denied = call(&core, &tok, Op::Read, "secret/data/app", json!({}))
        .await
        .unwrap_err();
    assert_eq!(denied.status, 403);

    // An operation the path does not declare; a path the engine does not know.
    let e = call(&core, "root", Op::List, "secret/data/app", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status, 405);
    let e = call(&core, "root", Op::Read, "nowhere/x", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status, 404);

    // ?help=1
    let mut r = Request::new(Op::Read, "secret/data/app");
    r.query.push(("help".into(), "1".into()));
    r.token = Some(Zeroizing::new("root".into()));
    let h = core.handle(r).await.unwrap();
    assert!(data(&h)["help"].as_str().unwrap().contains("data/{key*}"));
}

#[tokio::test]
async fn mounts_enable_move_and_disable_in_process() {
    let core = dev().await;
    call(
        &core,
        "root",
        Op::Update,
        "sys/mounts/k1",
        json!({"type": "kv"}),
    )
    .await
    .unwrap();
    call(&core, "root", Op::Update, "k1/a", json!({"x": "1"}))
        .await
        .unwrap();
    let bad = call(
        &core,
        "root",
        Op::Update,
        "sys/mounts/k2",
        json!({"type": "nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(bad.status, 400);
    assert!(
        core.router.route("k2/x").is_none(),
        "a refused mount is not installed"
    );
    call(
        &core,
        "root",
        Op::Update,
        "sys/remount",
        json!({"from": "k1", "to": "k3"}),
    )
    .await
    .unwrap();
    let r = call(&core, "root", Op::Read, "k3/a", json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["x"], "1");
    let uuid = core.router.route("k3/a").unwrap().entry.uuid.clone();
    call(&core, "root", Op::Delete, "sys/mounts/k3", json!({}))
        .await
        .unwrap();
    assert!(core.router.route("k3/a").is_none());
    let left = core
        .barrier
        .scan(&format!("logical/{uuid}/"))
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "the disabled mount's data is gone: {left:?}"
    );
}

#[tokio::test]
async fn logins_go_through_the_engine_and_come_back_as_tokens() {
    let core = dev().await;
    call(
        &core,
        "root",
        Op::Update,
        "sys/auth/up",
        json!({"type": "userpass"}),
    )
    .await
    .unwrap();
    call(
        &core,
        "root",
        Op::Update,
        "auth/up/users/ann",
        json!({"password": "pw-1234567", "token_policies": "default"}),
    )
    .await
    .unwrap();
    let r = call(
        &core,
        "",
        Op::Update,
        "auth/up/login/ann",
        json!({"password": "pw-1234567"}),
    )
    .await
    .unwrap();
    let auth = r.auth.unwrap();
    assert_eq!(auth.metadata.unwrap()["username"], "ann");
    let me = call(
        &core,
        &auth.client_token,
        Op::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&me)["path"], "auth/up/login/ann");
    let bad = call(
        &core,
        "",
        Op::Update,
        "auth/up/login/ann",
        json!({"password": "nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(bad.status, 400);
    // Disabling the method revokes its tokens.
    call(&core, "root", Op::Delete, "sys/auth/up", json!({}))
        .await
        .unwrap();
    let gone = call(
        &core,
        &auth.client_token,
        Op::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await
    .unwrap_err();
    assert_eq!(gone.status, 403);
}

#[tokio::test]
async fn a_tokens_cubbyhole_is_destroyed_with_it() {
    let core = dev().await;
    let t = call(
        &core,
        "root",
        Op::Update,
        "auth/token/create",
        json!({"policies": ["default"]}),
    )
    .await
    .unwrap();
    let child = t.auth.as_ref().unwrap().client_token.to_string();
    for k in ["a", "b/c", "d"] {
        call(
            &core,
            &child,
            Op::Update,
            &format!("cubbyhole/{k}"),
            json!({"v": k}),
        )
        .await
        .unwrap();
    }
    call(
        &core,
        "root",
        Op::Update,
        "cubbyhole/mine",
        json!({"v": "root"}),
    )
    .await
    .unwrap();
    let cubby = core.router.snapshot(crate::router::Which::Secrets);
    let prefix = cubby.get("cubbyhole/").unwrap().storage_prefix();
    let stored = |core: &Arc<Core>| {
        let core = Arc::clone(core);
        let prefix = prefix.clone();
        async move { core.barrier.scan(&prefix).await.unwrap().len() }
    };
    assert_eq!(stored(&core).await, 4);
    call(
        &core,
        "root",
        Op::Update,
        "auth/token/revoke",
        json!({"token": child}),
    )
    .await
    .unwrap();
    // Only root's entry is left.
    assert_eq!(stored(&core).await, 1);
    let r = call(&core, "root", Op::Read, "cubbyhole/mine", json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["v"], "root");
}

#[tokio::test]
async fn batch_tokens_from_logins_keep_their_bounds_and_store_nothing() {
    let core = dev().await;
    call(
        &core,
        "root",
        Op::Update,
        "sys/auth/userpass",
        json!({"type": "userpass"}),
    )
    .await
    .unwrap();
    call(
        &core,
        "root",
        Op::Update,
        "auth/userpass/users/bob",
        json!({"password": "pw-bob-1", "token_type": "batch", "token_policies": ["default"]}),
    )
    .await
    .unwrap();
    let tokens_before = core.barrier.scan("token/id/").await.unwrap().len();
    let mut login = Request::new(Op::Update, "auth/userpass/login/bob");
    login.data = json!({"password": "pw-bob-1"}).as_object().unwrap().clone();
    let r = core.handle(login).await.unwrap();
    let auth = r.auth.unwrap();
    assert_eq!(auth.token_type, "batch");
    assert!(auth.client_token.starts_with(crate::token::batch::PREFIX));
    assert_eq!(auth.accessor, "");
    // Nothing was stored for it.
    assert_eq!(
        core.barrier.scan("token/id/").await.unwrap().len(),
        tokens_before
    );
    let me = call(
        &core,
        &auth.client_token,
        Op::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(data(&me)["type"], "batch");
    // Bound to an address range: refused from anywhere else.
    call(
        &core,
        "root",
        Op::Update,
        "auth/userpass/users/bob",
        json!({"token_bound_cidrs": ["10.0.0.0/8"]}),
    )
    .await
    .unwrap();
    let mut login = Request::new(Op::Update, "auth/userpass/login/bob");
    login.data = json!({"password": "pw-bob-1"}).as_object().unwrap().clone();
    login.remote = Some("10.1.2.3:5000".parse().unwrap());
    let bound = core.handle(login).await.unwrap().auth.unwrap().client_token;
    let e = call(&core, &bound, Op::Read, "auth/token/lookup-self", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status, 403);
}
