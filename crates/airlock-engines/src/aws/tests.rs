//! Role validation, configuration and the checks made before any AWS call, over in-memory
//! storage (the AWS calls themselves are tested against moto in the e2e suite).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use airlock_logical::testing::{ctx, mount, request, TestSystem};
use airlock_logical::{Backend, Ctx, Op};
use serde_json::{json, Value};

use super::creds::{iam_username, tag_params, validate};
use super::{Aws, Role};

async fn call(c: &Ctx, op: Op, rel: &str, data: Value) -> Result<Option<Value>, (u16, String)> {
    let mut r = request(op, &format!("aws/{rel}"), data);
    let b = Aws;
    if matches!(op, Op::Update | Op::Create) {
        if let Ok(Some(false)) = b.existence(c, &mut r, rel).await {
            r.op = Op::Create;
        }
    }
    b.handle(c, &mut r, rel)
        .await
        .map(|r| r.data)
        .map_err(|e| (e.status, e.errors.join(" ")))
}

fn setup() -> Ctx {
    ctx(
        Arc::new(TestSystem::with_limits(3600, 7200)),
        mount("aws/", "aws"),
    )
}

#[tokio::test]
async fn config_root_hides_the_secret_and_checks_endpoints() {
    let c = setup();
    call(
        &c,
        Op::Update,
        "config/root",
        json!({"access_key": "AKIA", "secret_key": "s3cr3t", "iam_endpoint": "http://127.0.0.1:1"}),
    )
    .await
    .unwrap();
    let d = call(&c, Op::Read, "config/root", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d["access_key"], "AKIA");
    assert_eq!(d["max_retries"], -1);
    assert!(d.get("secret_key").is_none());
    assert!(!d.to_string().contains("s3cr3t"));
    // Plain http only on loopback.
    let e = call(
        &c,
        Op::Update,
        "config/root",
        json!({"sts_endpoint": "http://sts.example.com/"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.0, 400);
    // A partial update keeps the rest.
    call(
        &c,
        Op::Update,
        "config/root",
        json!({"region": "eu-west-1"}),
    )
    .await
    .unwrap();
    let d = call(&c, Op::Read, "config/root", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d["access_key"].as_str(), d["region"].as_str()),
        (Some("AKIA"), Some("eu-west-1"))
    );
    call(
        &c,
        Op::Update,
        "config/lease",
        json!({"lease": "30m", "lease_max": 7200}),
    )
    .await
    .unwrap();
    let d = call(&c, Op::Read, "config/lease", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d, json!({"lease": "30m0s", "lease_max": "2h0m0s"}));
    assert_eq!(
        call(&c, Op::Update, "config/lease", json!({"lease": "1h"}))
            .await
            .unwrap_err()
            .0,
        400
    );
}

#[tokio::test]
async fn roles_round_trip_and_bad_input_is_refused() {
    let c = setup();
    call(&c, Op::Update, "roles/dev", json!({
        "credential_type": "iam_user",
        "policy_arns": "arn:aws:iam::123456789012:policy/a,arn:aws:iam::aws:policy/ReadOnlyAccess",
        "policy_document": "{ \"Version\": \"2012-10-17\" }",
        "iam_tags": ["team=x", "env=dev"],
        "user_path": "/airlock/",
    }))
    .await
    .unwrap();
    let d = call(&c, Op::Read, "roles/dev", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d["credential_type"], "iam_user");
    assert_eq!(d["policy_document"], "{\"Version\":\"2012-10-17\"}");
    assert_eq!(d["policy_arns"].as_array().unwrap().len(), 2);
    assert_eq!(d["iam_tags"], json!({"env": "dev", "team": "x"}));
    let keys = call(&c, Op::List, "roles/", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys["keys"], json!(["dev"]));

    for (body, needle) in [
        (
            json!({"credential_type": "magic"}),
            "unrecognized credential type",
        ),
        (
            json!({"credential_type": "iam_user"}),
            "needs at least one of",
        ),
        (
            json!({"credential_type": "federation_token"}),
            "needs policy_arns",
        ),
        (
            json!({"credential_type": "assumed_role", "role_arns": "x", "user_path": "/p/"}),
            "user_path",
        ),
        (
            json!({"credential_type": "iam_user", "policy_arns": "not-an-arn"}),
            "not an IAM policy ARN",
        ),
        (
            json!({"credential_type": "assumed_role", "default_sts_ttl": 7200, "max_sts_ttl": 3600}),
            "less than or equal",
        ),
        (
            json!({"credential_type": "iam_user", "policy_document": "{nope"}),
            "cannot parse policy document",
        ),
    ] {
        let e = call(&c, Op::Update, "roles/bad", body.clone())
            .await
            .unwrap_err();
        assert_eq!(e.0, 400, "{body}");
        assert!(e.1.contains(needle), "{body}: {}", e.1);
    }
    assert_eq!(
        call(&c, Op::Read, "roles/bad", json!({}))
            .await
            .unwrap_err()
            .0,
        404
    );

    call(&c, Op::Delete, "roles/dev", json!({})).await.unwrap();
    assert_eq!(
        call(&c, Op::Read, "roles/dev", json!({}))
            .await
            .unwrap_err()
            .0,
        404
    );
}

#[tokio::test]
async fn sts_checks_come_before_any_aws_call() {
    let c = setup();
    // An endpoint nobody listens on: any AWS call would fail with 502.
    call(&c, Op::Update, "config/root", json!({"access_key": "a", "secret_key": "b", "sts_endpoint": "http://127.0.0.1:9/", "iam_endpoint": "http://127.0.0.1:9/", "max_retries": 0}))
        .await
        .unwrap();
    call(&c, Op::Update, "roles/ar", json!({"credential_type": "assumed_role", "role_arns": ["arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b"], "max_sts_ttl": 1800}))
        .await
        .unwrap();
    let e = call(
        &c,
        Op::Update,
        "creds/ar",
        json!({"ttl": "1h", "role_arn": "arn:aws:iam::1:role/a"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.0, 400);
    assert!(e.1.contains("exceeds the maximum"), "{}", e.1);
    let e = call(&c, Op::Update, "sts/ar", json!({"ttl": "900"}))
        .await
        .unwrap_err();
    assert!(e.1.contains("unable to determine one"), "{}", e.1);
    let e = call(
        &c,
        Op::Update,
        "sts/ar",
        json!({"role_arn": "arn:aws:iam::1:role/c"}),
    )
    .await
    .unwrap_err();
    assert!(e.1.contains("not in allowed role arns"), "{}", e.1);
    let e = call(&c, Op::Read, "creds/nope", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.0, 400);
    // AWS unreachable: 502, saying so.
    let e = call(
        &c,
        Op::Update,
        "sts/ar",
        json!({"role_arn": "arn:aws:iam::1:role/a"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.0, 502, "{}", e.1);
    // iam_user: the lease registered first is revoked again when AWS fails (its revocation
    // fails too here, so it stays for the lease manager to retry).
    call(&c, Op::Update, "roles/u", json!({"credential_type": "iam_user", "policy_arns": "arn:aws:iam::aws:policy/ReadOnlyAccess"}))
        .await
        .unwrap();
    let e = call(&c, Op::Read, "creds/u", json!({})).await.unwrap_err();
    assert_eq!(e.0, 502, "{}", e.1);
    let e = call(&c, Op::Read, "sts/u", json!({})).await.unwrap_err();
    assert_eq!(e.0, 400);
}

#[test]
fn names_and_tags() {
    let u = iam_username(
        "userpass-alice smith",
        "a-very-long-role-name-that-goes-on-and-on",
        1_700_000_000,
    );
    assert!(u.len() <= 64, "{u}");
    assert!(
        u.starts_with("vault-userpass-alice_smith-a-very-long-"),
        "{u}"
    );
    assert!(u.contains("-1700000000-"), "{u}");
    let tags = [
        ("b".to_string(), "2".to_string()),
        ("a".to_string(), "1".to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        tag_params(&tags)[0],
        ("Tags.member.1.Key".to_string(), "a".to_string())
    );
    let r = Role {
        credential_type: "session_token".into(),
        ..Default::default()
    };
    assert!(validate(&r).is_empty());
}
