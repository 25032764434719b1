//! KV v1 and v2 over in-memory storage: no server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use airlock_logical::testing::{ctx, mount, request, TestSystem};
use airlock_logical::{Backend, Op};
use serde_json::json;

use super::{KvV1, KvV2};

#[tokio::test]
async fn v2_versions_cas_patch_delete_and_existence() {
    let c = ctx(Arc::new(TestSystem::default()), mount("secret/", "kv"));
    let kv = KvV2;
    let mut w = request(Op::Update, "secret/data/app", json!({"data": {"a": "1"}}));
    assert_eq!(
        kv.existence(&c, &mut w, "data/app").await.unwrap(),
        Some(false)
    );
    kv.handle(&c, &mut w, "data/app").await.unwrap();
    let mut w = request(
        Op::Update,
        "secret/data/app",
        json!({"data": {"a": "2"}, "options": {"cas": 1}}),
    );
    assert_eq!(
        kv.existence(&c, &mut w, "data/app").await.unwrap(),
        Some(true)
    );
    let r = kv.handle(&c, &mut w, "data/app").await.unwrap();
    assert_eq!(r.data.unwrap()["version"], 2);
    let mut stale = request(
        Op::Update,
        "secret/data/app",
        json!({"data": {"a": "3"}, "options": {"cas": 1}}),
    );
    assert_eq!(
        kv.handle(&c, &mut stale, "data/app")
            .await
            .unwrap_err()
            .status,
        400
    );
    let mut p = request(Op::Patch, "secret/data/app", json!({"data": {"b": "x"}}));
    kv.handle(&c, &mut p, "data/app").await.unwrap();
    let mut r = request(Op::Read, "secret/data/app", json!({}));
    let v = kv
        .handle(&c, &mut r, "data/app")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(v["data"], json!({"a": "2", "b": "x"}));
    assert_eq!(v["metadata"]["version"], 3);
    let mut d = request(Op::Delete, "secret/data/app", json!({}));
    kv.handle(&c, &mut d, "data/app").await.unwrap();
    let mut r = request(Op::Read, "secret/data/app", json!({}));
    let e = kv.handle(&c, &mut r, "data/app").await.unwrap_err();
    assert_eq!(e.status, 404);
    assert!(
        e.body.unwrap()["metadata"]["deletion_time"]
            .as_str()
            .unwrap()
            .len()
            > 10
    );
    let mut u = request(Op::Update, "secret/undelete/app", json!({"versions": [3]}));
    kv.handle(&c, &mut u, "undelete/app").await.unwrap();
    let mut r = request(Op::Read, "secret/data/app", json!({}));
    assert!(kv.handle(&c, &mut r, "data/app").await.is_ok());
    let mut l = request(Op::List, "secret/metadata/", json!({}));
    assert_eq!(
        kv.handle(&c, &mut l, "metadata/")
            .await
            .unwrap()
            .data
            .unwrap()["keys"],
        json!(["app"])
    );
    // Undeclared operation, unknown path, undeclared field.
    let mut l = request(Op::List, "secret/data/app", json!({}));
    assert_eq!(
        kv.handle(&c, &mut l, "data/app").await.unwrap_err().status,
        405
    );
    let mut x = request(Op::Read, "secret/nope", json!({}));
    let r = kv.handle(&c, &mut x, "nope").await.unwrap();
    assert_eq!(r.status, Some(404));
    assert!(r.warnings[0].contains("Invalid path for a versioned K/V"));
}

#[tokio::test]
async fn v1_free_form_data_and_lease_duration() {
    let c = ctx(
        Arc::new(TestSystem::with_limits(120, 600)),
        mount("kv/", "kv"),
    );
    let kv = KvV1;
    let mut w = request(Op::Update, "kv/a/b", json!({"user": "u", "ttl": "30s"}));
    assert_eq!(kv.existence(&c, &mut w, "a/b").await.unwrap(), Some(false));
    kv.handle(&c, &mut w, "a/b").await.unwrap();
    let mut r = request(Op::Read, "kv/a/b", json!({}));
    let resp = kv.handle(&c, &mut r, "a/b").await.unwrap();
    assert_eq!(resp.lease_duration, 30);
    assert_eq!(resp.data.unwrap()["user"], "u");
    let mut l = request(Op::List, "kv/a", json!({}));
    assert_eq!(
        kv.handle(&c, &mut l, "a").await.unwrap().data.unwrap()["keys"],
        json!(["b"])
    );
    let mut d = request(Op::Delete, "kv/a/b", json!({}));
    kv.handle(&c, &mut d, "a/b").await.unwrap();
    let mut r = request(Op::Read, "kv/a/b", json!({}));
    assert_eq!(kv.handle(&c, &mut r, "a/b").await.unwrap_err().status, 404);
}
