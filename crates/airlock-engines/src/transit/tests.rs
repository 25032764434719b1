//! Unit tests of the transit engine against in-memory storage: key lifecycle, the
//! ciphertext format, derivation and convergence, batches, signatures, backups.

use std::sync::Arc;

use airlock_logical::testing::{ctx, mount, request, TestSystem};
use airlock_logical::{Backend, Op};
use serde_json::{json, Value};

use super::Transit;

async fn call(
    b: &Transit,
    c: &airlock_logical::Ctx,
    op: Op,
    path: &str,
    body: Value,
) -> Result<Value, (u16, Vec<String>)> {
    let mut r = request(op, &format!("transit/{path}"), body);
    if op == Op::Update {
        if let Ok(Some(false)) = b.existence(c, &mut r, path).await {
            r.op = Op::Create;
        }
    }
    match b.handle(c, &mut r, path).await {
        Ok(resp) => Ok(
            json!({"status": resp.status.unwrap_or(200), "data": resp.data, "warnings": resp.warnings}),
        ),
        Err(e) => Err((e.status, e.errors)),
    }
}

fn setup() -> (Transit, airlock_logical::Ctx) {
    let sys = Arc::new(TestSystem::default());
    (Transit::new(), ctx(sys, mount("transit/", "transit")))
}

#[tokio::test]
async fn encrypt_decrypt_round_trip_and_format() {
    let (b, c) = setup();
    let r = call(
        &b,
        &c,
        Op::Update,
        "encrypt/k",
        json!({"plaintext": "aGVsbG8="}),
    )
    .await
    .unwrap();
    let ct = r["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(ct.starts_with("vault:v1:"));
    let raw = super::crypto::b64d(&ct[9..]).unwrap();
    assert_eq!(raw.len(), 12 + 5 + 16);
    let r = call(&b, &c, Op::Update, "decrypt/k", json!({"ciphertext": ct}))
        .await
        .unwrap();
    assert_eq!(r["data"]["plaintext"], "aGVsbG8=");
    // Tampering and truncation are refused with Vault's words.
    let bad = format!("vault:v1:{}", super::crypto::b64e(&raw[..10]));
    let e = call(&b, &c, Op::Update, "decrypt/k", json!({"ciphertext": bad}))
        .await
        .unwrap_err();
    assert_eq!(e, (400, vec!["invalid ciphertext length".to_string()]));
    let e = call(
        &b,
        &c,
        Op::Update,
        "decrypt/k",
        json!({"ciphertext": "vault:v2:AAAA"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.1, vec!["invalid ciphertext: version is too new"]);
    let e = call(
        &b,
        &c,
        Op::Update,
        "decrypt/k",
        json!({"ciphertext": "vault:v1:!!"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.1, vec!["invalid ciphertext: could not decode base64"]);
}

#[tokio::test]
async fn rotation_min_versions_and_rewrap() {
    let (b, c) = setup();
    call(&b, &c, Op::Update, "keys/k", json!({})).await.unwrap();
    let v1 = call(
        &b,
        &c,
        Op::Update,
        "encrypt/k",
        json!({"plaintext": "aGk="}),
    )
    .await
    .unwrap()["data"]["ciphertext"]
        .clone();
    let r = call(&b, &c, Op::Update, "keys/k/rotate", json!({}))
        .await
        .unwrap();
    assert_eq!(r["data"]["latest_version"], 2);
    let rw = call(&b, &c, Op::Update, "rewrap/k", json!({"ciphertext": v1}))
        .await
        .unwrap();
    assert!(rw["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("vault:v2:"));
    call(
        &b,
        &c,
        Op::Update,
        "keys/k/config",
        json!({"min_decryption_version": 2}),
    )
    .await
    .unwrap();
    let e = call(&b, &c, Op::Update, "decrypt/k", json!({"ciphertext": v1}))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        vec!["ciphertext or signature version is disallowed by policy (too old)"]
    );
    let r = call(&b, &c, Op::Read, "keys/k", json!({})).await.unwrap();
    assert_eq!(r["data"]["keys"].as_object().unwrap().len(), 1);
    // Trim needs a minimum encryption version, then drops version 1 for good.
    call(
        &b,
        &c,
        Op::Update,
        "keys/k/config",
        json!({"min_encryption_version": 2}),
    )
    .await
    .unwrap();
    let r = call(
        &b,
        &c,
        Op::Update,
        "keys/k/trim",
        json!({"min_available_version": 2}),
    )
    .await
    .unwrap();
    assert_eq!(r["data"]["min_available_version"], 2);
    let e = call(
        &b,
        &c,
        Op::Update,
        "keys/k/config",
        json!({"min_decryption_version": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.0, 400);
    // Deletion only once allowed.
    let e = call(&b, &c, Op::Delete, "keys/k", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        vec!["error deleting policy k: deletion is not allowed for this key"]
    );
    call(
        &b,
        &c,
        Op::Update,
        "keys/k/config",
        json!({"deletion_allowed": true}),
    )
    .await
    .unwrap();
    call(&b, &c, Op::Delete, "keys/k", json!({})).await.unwrap();
    assert_eq!(
        call(&b, &c, Op::Read, "keys/k", json!({}))
            .await
            .unwrap_err()
            .0,
        404
    );
}

#[tokio::test]
async fn derived_and_convergent_keys() {
    let (b, c) = setup();
    call(
        &b,
        &c,
        Op::Update,
        "keys/d",
        json!({"derived": true, "convergent_encryption": true}),
    )
    .await
    .unwrap();
    let e = call(
        &b,
        &c,
        Op::Update,
        "encrypt/d",
        json!({"plaintext": "aGk="}),
    )
    .await
    .unwrap_err();
    assert!(e.1[0].starts_with("missing 'context' for key derivation"));
    let a = call(
        &b,
        &c,
        Op::Update,
        "encrypt/d",
        json!({"plaintext": "aGk=", "context": "YWJj"}),
    )
    .await
    .unwrap();
    let a2 = call(
        &b,
        &c,
        Op::Update,
        "encrypt/d",
        json!({"plaintext": "aGk=", "context": "YWJj"}),
    )
    .await
    .unwrap();
    let other = call(
        &b,
        &c,
        Op::Update,
        "encrypt/d",
        json!({"plaintext": "aGk=", "context": "eHl6"}),
    )
    .await
    .unwrap();
    assert_eq!(a["data"]["ciphertext"], a2["data"]["ciphertext"]);
    assert_ne!(a["data"]["ciphertext"], other["data"]["ciphertext"]);
    let e = call(
        &b,
        &c,
        Op::Update,
        "decrypt/d",
        json!({"ciphertext": a["data"]["ciphertext"], "context": "eHl6"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.1, vec!["cipher: message authentication failed"]);
    let r = call(&b, &c, Op::Read, "keys/d", json!({})).await.unwrap();
    assert_eq!(r["data"]["kdf"], "hkdf_sha256");
    assert_eq!(r["data"]["convergent_encryption_version"], -1);
}

#[tokio::test]
async fn batches_report_per_item_errors_and_are_bounded() {
    let (b, c) = setup();
    let r = call(
        &b,
        &c,
        Op::Update,
        "encrypt/k",
        json!({"batch_input": [{"plaintext": "aGk="}, {"plaintext": "!!", "reference": "r"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r["status"], 400);
    let items = r["data"]["batch_results"].as_array().unwrap();
    assert!(items[0]["ciphertext"].is_string());
    assert_eq!(
        items[1],
        json!({"error": "illegal base64 data at input byte 0", "reference": "r"})
    );
    let big: Vec<Value> = (0..super::MAX_BATCH + 1)
        .map(|_| json!({"plaintext": ""}))
        .collect();
    let e = call(&b, &c, Op::Update, "encrypt/k", json!({"batch_input": big}))
        .await
        .unwrap_err();
    assert_eq!(e.0, 400);
    let e = call(&b, &c, Op::Update, "encrypt/k", json!({"batch_input": "x"}))
        .await
        .unwrap_err();
    assert_eq!(e.0, 500);
}

#[tokio::test]
async fn signatures_verify_and_hmacs() {
    let (b, c) = setup();
    for ty in ["ed25519", "ecdsa-p256", "ecdsa-p384"] {
        call(
            &b,
            &c,
            Op::Update,
            &format!("keys/{ty}"),
            json!({"type": ty}),
        )
        .await
        .unwrap();
        for (path, marshal) in [
            (format!("sign/{ty}"), "asn1"),
            (format!("sign/{ty}/sha2-512"), "jws"),
        ] {
            let s = call(
                &b,
                &c,
                Op::Update,
                &path,
                json!({"input": "aGVsbG8=", "marshaling_algorithm": marshal}),
            )
            .await
            .unwrap();
            let sig = s["data"]["signature"].clone();
            let vpath = path.replace("sign/", "verify/");
            let v = call(
                &b,
                &c,
                Op::Update,
                &vpath,
                json!({"input": "aGVsbG8=", "signature": sig, "marshaling_algorithm": marshal}),
            )
            .await
            .unwrap();
            assert_eq!(v["data"]["valid"], true, "{ty} {marshal}");
            let v = call(
                &b,
                &c,
                Op::Update,
                &vpath,
                json!({"input": "aGVsbA==", "signature": sig, "marshaling_algorithm": marshal}),
            )
            .await
            .unwrap();
            assert_eq!(v["data"]["valid"], false);
        }
    }
    let h = call(
        &b,
        &c,
        Op::Update,
        "hmac/ed25519",
        json!({"input": "aGVsbG8="}),
    )
    .await
    .unwrap();
    let v = call(
        &b,
        &c,
        Op::Update,
        "verify/ed25519",
        json!({"input": "aGVsbG8=", "hmac": h["data"]["hmac"]}),
    )
    .await
    .unwrap();
    assert_eq!(v["data"]["valid"], true);
    let e = call(
        &b,
        &c,
        Op::Update,
        "encrypt/ed25519",
        json!({"plaintext": "aGk="}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.1,
        vec!["message encryption not supported for key type ed25519"]
    );
}

#[tokio::test]
async fn export_backup_and_restore() {
    let (b, c) = setup();
    call(
        &b,
        &c,
        Op::Update,
        "keys/k",
        json!({"exportable": true, "allow_plaintext_backup": true}),
    )
    .await
    .unwrap();
    let ct = call(
        &b,
        &c,
        Op::Update,
        "encrypt/k",
        json!({"plaintext": "aGk="}),
    )
    .await
    .unwrap()["data"]["ciphertext"]
        .clone();
    let ex = call(
        &b,
        &c,
        Op::Read,
        "export/encryption-key/k/latest",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        super::crypto::b64d(ex["data"]["keys"]["1"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    let bk = call(&b, &c, Op::Read, "backup/k", json!({})).await.unwrap();
    let blob = bk["data"]["backup"].clone();
    call(&b, &c, Op::Update, "restore/copy", json!({"backup": blob}))
        .await
        .unwrap();
    let r = call(
        &b,
        &c,
        Op::Update,
        "decrypt/copy",
        json!({"ciphertext": ct}),
    )
    .await
    .unwrap();
    assert_eq!(r["data"]["plaintext"], "aGk=");
    let e = call(&b, &c, Op::Update, "restore/copy", json!({"backup": blob}))
        .await
        .unwrap_err();
    assert_eq!(e.0, 500);
    for junk in ["!!", "e30=", "bnVsbA=="] {
        let e = call(&b, &c, Op::Update, "restore/x", json!({"backup": junk}))
            .await
            .unwrap_err();
        assert_eq!(e.0, 400, "{junk}");
    }
    call(&b, &c, Op::Update, "keys/n", json!({})).await.unwrap();
    let e = call(&b, &c, Op::Read, "export/encryption-key/n", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.1, vec!["private key material is not exportable"]);
}

#[tokio::test]
async fn a_write_on_another_node_is_seen_after_invalidate() {
    let (b, c) = setup();
    call(&b, &c, Op::Update, "keys/k", json!({})).await.unwrap();
    // Another engine instance over the same storage stands for another node.
    let other = Transit::new();
    call(&other, &c, Op::Update, "keys/k/rotate", json!({}))
        .await
        .unwrap();
    let r = call(&b, &c, Op::Read, "keys/k", json!({})).await.unwrap();
    assert_eq!(r["data"]["latest_version"], 1, "served from the cache");
    airlock_logical::Engine::invalidate(&b, &c, "policy/k").await;
    let r = call(&b, &c, Op::Read, "keys/k", json!({})).await.unwrap();
    assert_eq!(r["data"]["latest_version"], 2);
}

#[tokio::test]
async fn concurrent_rotations_and_encryptions_lose_nothing() {
    let (b, c) = setup();
    let b = Arc::new(b);
    call(&b, &c, Op::Update, "keys/k", json!({})).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (b, c) = (Arc::clone(&b), c.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                call(&b, &c, Op::Update, "keys/k/rotate", json!({}))
                    .await
                    .map(|_| None)
            } else {
                call(
                    &b,
                    &c,
                    Op::Update,
                    "encrypt/k",
                    json!({"plaintext": "aGk="}),
                )
                .await
                .map(|r| {
                    Some(
                        r["data"]["ciphertext"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
            }
        }));
    }
    let mut cts = Vec::new();
    for t in tasks {
        if let Some(ct) = t.await.unwrap().unwrap() {
            cts.push(ct);
        }
    }
    let r = call(&b, &c, Op::Read, "keys/k", json!({})).await.unwrap();
    assert_eq!(
        r["data"]["latest_version"], 21,
        "every rotation made its own version"
    );
    for ct in cts {
        let d = call(&b, &c, Op::Update, "decrypt/k", json!({"ciphertext": ct}))
            .await
            .unwrap();
        assert_eq!(d["data"]["plaintext"], "aGk=");
    }
}

#[tokio::test]
async fn auto_rotation_follows_the_clock() {
    let sys = Arc::new(TestSystem::default());
    let c = ctx(sys.clone(), mount("transit/", "transit"));
    let b = Transit::new();
    call(
        &b,
        &c,
        Op::Update,
        "keys/auto",
        json!({"auto_rotate_period": "2h"}),
    )
    .await
    .unwrap();
    call(&b, &c, Op::Update, "keys/manual", json!({}))
        .await
        .unwrap();
    airlock_logical::Engine::periodic(&b, &c).await.unwrap();
    sys.advance(3 * 3600);
    airlock_logical::Engine::periodic(&b, &c).await.unwrap();
    let r = call(&b, &c, Op::Read, "keys/auto", json!({}))
        .await
        .unwrap();
    assert_eq!(r["data"]["latest_version"], 2);
    let r = call(&b, &c, Op::Read, "keys/manual", json!({}))
        .await
        .unwrap();
    assert_eq!(r["data"]["latest_version"], 1);
    // Looked at once an hour, not on every tick.
    sys.advance(2 * 3600 + 60);
    airlock_logical::Engine::periodic(&b, &c).await.unwrap();
    let r = call(&b, &c, Op::Read, "keys/auto", json!({}))
        .await
        .unwrap();
    assert_eq!(r["data"]["latest_version"], 3);
}

#[tokio::test]
async fn rsa_keys_encrypt_sign_export_and_back_up() {
    let (b, c) = setup();
    let opts = json!({"type": "rsa-2048", "exportable": true, "allow_plaintext_backup": true});
    call(&b, &c, Op::Update, "keys/r", opts).await.unwrap();
    let k = call(&b, &c, Op::Read, "keys/r", json!({})).await.unwrap();
    assert_eq!(k["data"]["keys"]["1"]["name"], "rsa-2048");
    assert!(k["data"]["keys"]["1"]["public_key"]
        .as_str()
        .unwrap()
        .ends_with("-----END PUBLIC KEY-----\n"));
    assert_eq!(k["data"]["supports_derivation"], false);
    let ct = call(
        &b,
        &c,
        Op::Update,
        "encrypt/r",
        json!({"plaintext": "aGk="}),
    )
    .await
    .unwrap()["data"]["ciphertext"]
        .clone();
    let d = call(&b, &c, Op::Update, "decrypt/r", json!({"ciphertext": ct}))
        .await
        .unwrap();
    assert_eq!(d["data"]["plaintext"], "aGk=");
    for (alg, salt) in [
        ("pss", "auto"),
        ("pss", "hash"),
        ("pss", "20"),
        ("pkcs1v15", "auto"),
    ] {
        for hash in ["sha2-256", "sha3-512", "sha1"] {
            let body = json!({"input": "aGk=", "hash_algorithm": hash,
                "signature_algorithm": alg, "salt_length": salt});
            let sig = call(&b, &c, Op::Update, "sign/r", body.clone())
                .await
                .unwrap()["data"]["signature"]
                .clone();
            let mut v = body.clone();
            v["signature"] = sig;
            let ok = call(&b, &c, Op::Update, "verify/r", v.clone())
                .await
                .unwrap();
            assert_eq!(ok["data"]["valid"], true, "{alg} {salt} {hash}");
            v["input"] = json!("aGo=");
            let no = call(&b, &c, Op::Update, "verify/r", v).await.unwrap();
            assert_eq!(no["data"]["valid"], false);
        }
    }
    let e = call(
        &b,
        &c,
        Op::Update,
        "sign/r",
        json!({"input": "aGk=", "salt_length": "300"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.0, 500); // a single request's signing failure, as in Vault
    for (ty, fmt, head) in [
        ("signing-key", "", "-----BEGIN RSA PRIVATE KEY-----"),
        ("encryption-key", "pem", "-----BEGIN PRIVATE KEY-----"),
        ("public-key", "", "-----BEGIN PUBLIC KEY-----"),
    ] {
        let path = format!("export/{ty}/r");
        let x = call(&b, &c, Op::Read, &path, json!({"format": fmt}))
            .await
            .unwrap();
        assert!(
            x["data"]["keys"]["1"].as_str().unwrap().starts_with(head),
            "{ty}"
        );
    }
    call(&b, &c, Op::Update, "keys/r/rotate", json!({}))
        .await
        .unwrap();
    let blob =
        call(&b, &c, Op::Read, "backup/r", json!({})).await.unwrap()["data"]["backup"].clone();
    call(&b, &c, Op::Update, "restore/r2", json!({"backup": blob}))
        .await
        .unwrap();
    let d = call(&b, &c, Op::Update, "decrypt/r2", json!({"ciphertext": ct}))
        .await
        .unwrap();
    assert_eq!(d["data"]["plaintext"], "aGk=");
    let e = call(
        &b,
        &c,
        Op::Update,
        "keys/rd",
        json!({"type": "rsa-2048", "derived": true}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.0, 500);
}

/// Wraps `key` for the mount's wrapping key as a BYOK client does.
async fn wrap_for(b: &Transit, c: &airlock_logical::Ctx, key: &[u8]) -> String {
    use super::rsa as r;
    let pem = call(b, c, Op::Read, "wrapping_key", json!({}))
        .await
        .unwrap()["data"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let wk = b
        .load(c, super::import::WRAPPING_KEY)
        .await
        .unwrap()
        .unwrap();
    let k = r::parse(&wk.entry(1).unwrap().key).unwrap();
    assert_eq!(r::public_pem(&k).unwrap(), pem);
    let eph = [9u8; 32];
    let mut blob = r::oaep_encrypt(&k, r::OaepHash::Sha256, &eph).unwrap();
    blob.extend(super::kwp::wrap(&eph, key).unwrap());
    super::crypto::b64e(&blob)
}

#[tokio::test]
async fn imported_keys_work_and_bad_blobs_write_nothing() {
    let (b, c) = setup();
    let aes = [5u8; 32];
    let ct = wrap_for(&b, &c, &aes).await;
    call(
        &b,
        &c,
        Op::Update,
        "keys/imp/import",
        json!({"ciphertext": ct}),
    )
    .await
    .unwrap();
    let k = call(&b, &c, Op::Read, "keys/imp", json!({})).await.unwrap();
    assert_eq!(k["data"]["imported_key"], true);
    assert_eq!(k["data"]["imported_key_allow_rotation"], false);
    let e = call(&b, &c, Op::Update, "keys/imp/rotate", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.0, 500);
    // The same key material encrypts compatibly: a ciphertext made with it here opens.
    let enc = call(
        &b,
        &c,
        Op::Update,
        "encrypt/imp",
        json!({"plaintext": "aGk="}),
    )
    .await
    .unwrap()["data"]["ciphertext"]
        .clone();
    let body = enc.as_str().unwrap().trim_start_matches("vault:v1:");
    let raw = super::crypto::b64d(body).unwrap();
    let plain = super::crypto::Aead::Aes256Gcm
        .open(&aes, &raw, b"")
        .unwrap();
    assert_eq!(&plain[..], b"hi");
    // A new version from imported material.
    let ct2 = wrap_for(&b, &c, &[6u8; 32]).await;
    call(
        &b,
        &c,
        Op::Update,
        "keys/imp/import_version",
        json!({"ciphertext": ct2}),
    )
    .await
    .unwrap();
    let k = call(&b, &c, Op::Read, "keys/imp", json!({})).await.unwrap();
    assert_eq!(k["data"]["latest_version"], 2);
    // Bad input: 400, nothing written.
    let short = super::crypto::b64e(&[1u8; 100]);
    let mut other = super::crypto::b64d(&ct).unwrap().to_vec();
    other[530] ^= 1;
    for (path, body) in [
        ("keys/x/import", json!({"ciphertext": short})),
        (
            "keys/x/import",
            json!({"ciphertext": super::crypto::b64e(&other)}),
        ),
        (
            "keys/x/import",
            json!({"ciphertext": ct, "type": "aes128-gcm96"}),
        ),
        (
            "keys/x/import",
            json!({"ciphertext": ct, "type": "rsa-2048"}),
        ),
        ("keys/x/import", json!({"ciphertext": ct, "type": "nope"})),
        (
            "keys/x/import",
            json!({"ciphertext": ct, "hash_function": "MD5"}),
        ),
        (
            "keys/x/import",
            json!({"ciphertext": ct, "convergent_encryption": true}),
        ),
        ("keys/x/import", json!({"type": "ed25519"})),
        ("keys/imp/import", json!({"ciphertext": ct})),
        ("keys/x/import_version", json!({"ciphertext": ct})),
    ] {
        let e = call(&b, &c, Op::Update, path, body.clone())
            .await
            .unwrap_err();
        assert_eq!(e.0, 400, "{path} {body}: {e:?}");
    }
    assert!(call(&b, &c, Op::Read, "keys/x", json!({})).await.is_err());
    let k = call(&b, &c, Op::Read, "keys/imp", json!({})).await.unwrap();
    assert_eq!(k["data"]["latest_version"], 2);
}
