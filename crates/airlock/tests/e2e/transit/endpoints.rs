//! Every transit endpoint, sent to OpenBao and to Airlock alike and compared (status,
//! `data` shape, warnings, error texts): key types and their create errors, encrypt and
//! decrypt (batches, derivation, upsert), rewrap, data keys, rotation, configuration,
//! trimming, deletion, export, backup, restore, sign, verify, HMAC, random, hash.

use serde_json::json;

use super::{same, start_pair, Srv, PLAIN};

#[test]
fn transit_matches_openbao_endpoint_by_endpoint() {
    let Some((p, reference)) = start_pair() else {
        return;
    };
    let (o, a) = (
        Srv {
            name: "openbao",
            addr: &reference.addr,
        },
        Srv {
            name: "airlock",
            addr: &p.addr,
        },
    );
    for s in [&o, &a] {
        s.ok("POST", "sys/mounts/transit", json!({"type": "transit"}));
    }
    // Keys of every type, and the create errors.
    for ty in [
        "aes128-gcm96",
        "aes256-gcm96",
        "chacha20-poly1305",
        "ed25519",
        "ecdsa-p256",
        "ecdsa-p384",
    ] {
        same(
            &o,
            &a,
            "POST",
            &format!("transit/keys/{ty}"),
            json!({"type": ty, "exportable": true}),
        );
        same(&o, &a, "GET", &format!("transit/keys/{ty}"), json!({}));
    }
    same(
        &o,
        &a,
        "POST",
        "transit/keys/hm",
        json!({"type": "hmac", "key_size": 64}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/keys/hm-nosize",
        json!({"type": "hmac"}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/keys/der",
        json!({"derived": true, "convergent_encryption": true, "allow_plaintext_backup": true}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/keys/ed-der",
        json!({"type": "ed25519", "derived": true}),
    );
    same(&o, &a, "GET", "transit/keys/ed-der", json!({}));
    same(&o, &a, "GET", "transit/keys/ed-der?context=YWJj", json!({}));
    same(
        &o,
        &a,
        "POST",
        "transit/keys/rot",
        json!({"auto_rotate_period": "2h"}),
    );
    for (path, body) in [
        ("transit/keys/bad", json!({"type": "bogus"})),
        ("transit/keys/bad", json!({"convergent_encryption": true})),
        ("transit/keys/bad", json!({"auto_rotate_period": "10m"})),
        ("transit/keys/bad", json!({"type": "hmac", "key_size": 8})),
        ("transit/keys/bad", json!({"key_size": 32})),
        (
            "transit/keys/bad",
            json!({"type": "ecdsa-p256", "derived": true}),
        ),
        (
            "transit/keys/bad",
            json!({"type": "ed25519", "derived": true, "convergent_encryption": true}),
        ),
    ] {
        same(&o, &a, "POST", path, body);
    }
    same(&o, &a, "GET", "transit/keys/missing", json!({}));
    same(&o, &a, "LIST", "transit/keys", json!({}));

    // Encrypt, decrypt, rewrap, data keys.
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/aes256-gcm96",
        json!({"plaintext": PLAIN}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/upserted",
        json!({"plaintext": PLAIN}),
    );
    same(&o, &a, "GET", "transit/keys/upserted", json!({}));
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/upserted-128",
        json!({"plaintext": PLAIN, "type": "aes128-gcm96"}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/upserted-x",
        json!({"plaintext": PLAIN, "type": "ed25519"}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/upserted-y",
        json!({"plaintext": PLAIN, "type": "ecdsa-p256"}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/upserted-conv",
        json!({"plaintext": PLAIN, "convergent_encryption": true}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/upserted-der",
        json!({"plaintext": PLAIN, "context": "YWJj"}),
    );
    same(&o, &a, "GET", "transit/keys/upserted-der", json!({}));
    for (path, body) in [
        ("transit/encrypt/aes256-gcm96", json!({"plaintext": "!!"})),
        ("transit/encrypt/aes256-gcm96", json!({})),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"plaintext": PLAIN, "key_version": 5}),
        ),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"plaintext": PLAIN, "key_version": -1}),
        ),
        ("transit/encrypt/ed25519", json!({"plaintext": PLAIN})),
        ("transit/encrypt/der", json!({"plaintext": PLAIN})),
        (
            "transit/encrypt/der",
            json!({"plaintext": PLAIN, "context": "!!"}),
        ),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"plaintext": PLAIN, "associated_data": "YWQ="}),
        ),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"batch_input": [{"plaintext": PLAIN}, {"plaintext": "!!", "reference": "two"}]}),
        ),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"batch_input": [{"plaintext": PLAIN}, {"plaintext": "!!"}], "partial_failure_response_code": 207}),
        ),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"batch_input": [{"plaintext": PLAIN, "reference": "r"}]}),
        ),
        ("transit/encrypt/aes256-gcm96", json!({"batch_input": []})),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"batch_input": [{"plaintext": PLAIN, "context": "YQ=="}, {"plaintext": PLAIN}]}),
        ),
        (
            "transit/encrypt/aes256-gcm96",
            json!({"batch_input": [{"nope": 1}]}),
        ),
        ("transit/encrypt/aes256-gcm96", json!({"batch_input": "x"})),
        (
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": "vault:v1:AAAA"}),
        ),
        (
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": "vault:v1:!!"}),
        ),
        (
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": "vault:v9:AAAA"}),
        ),
        ("transit/decrypt/aes256-gcm96", json!({"ciphertext": "foo"})),
        (
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": "vault:vx:AAAA"}),
        ),
        (
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": "vault:v1"}),
        ),
        (
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
        ),
        (
            "transit/decrypt/chacha20-poly1305",
            json!({"ciphertext": "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
        ),
        ("transit/decrypt/aes256-gcm96", json!({})),
        (
            "transit/decrypt/missing",
            json!({"ciphertext": "vault:v1:AAAA"}),
        ),
        (
            "transit/decrypt/aes256-gcm96",
            json!({"batch_input": [{"ciphertext": "vault:v1:AAAA"}, {"ciphertext": ""}]}),
        ),
        (
            "transit/decrypt/ed25519",
            json!({"ciphertext": "vault:v1:AAAA"}),
        ),
        (
            "transit/rewrap/aes256-gcm96",
            json!({"ciphertext": "vault:v1:AAAA"}),
        ),
        ("transit/rewrap/aes256-gcm96", json!({})),
        (
            "transit/rewrap/aes256-gcm96",
            json!({"batch_input": [{"ciphertext": "vault:v1:AAAA"}, {"ciphertext": "x"}]}),
        ),
        ("transit/datakey/plaintext/aes256-gcm96", json!({})),
        ("transit/datakey/wrapped/aes256-gcm96", json!({"bits": 512})),
        ("transit/datakey/wrapped/aes256-gcm96", json!({"bits": 100})),
        ("transit/datakey/other/aes256-gcm96", json!({})),
        ("transit/datakey/wrapped/missing", json!({})),
        ("transit/datakey/wrapped/ed25519", json!({})),
        ("transit/datakey/wrapped/der", json!({})),
    ] {
        same(&o, &a, "POST", path, body);
    }
    // Round trips on each side, with every symmetric type and with associated data.
    for s in [&o, &a] {
        for ty in ["aes128-gcm96", "aes256-gcm96", "chacha20-poly1305"] {
            let ct = s.ok(
                "POST",
                &format!("transit/encrypt/{ty}"),
                json!({"plaintext": PLAIN, "associated_data": "YWQ="}),
            )["data"]["ciphertext"]
                .clone();
            let d = s.ok(
                "POST",
                &format!("transit/decrypt/{ty}"),
                json!({"ciphertext": ct, "associated_data": "YWQ="}),
            );
            assert_eq!(d["data"]["plaintext"], PLAIN, "{} {ty}", s.name);
            let r = s.call(
                "POST",
                &format!("transit/decrypt/{ty}"),
                Some(json!({"ciphertext": ct})),
            );
            assert_eq!(
                r.status, 400,
                "{} {ty}: the associated data is authenticated",
                s.name
            );
        }
        let dk = s.ok(
            "POST",
            "transit/datakey/plaintext/aes256-gcm96",
            json!({"bits": 128}),
        );
        let d = s.ok(
            "POST",
            "transit/decrypt/aes256-gcm96",
            json!({"ciphertext": dk["data"]["ciphertext"]}),
        );
        assert_eq!(d["data"]["plaintext"], dk["data"]["plaintext"]);
    }

    // Rotation, configuration, trimming, deletion.
    for (method, path, body) in [
        ("POST", "transit/keys/aes256-gcm96/rotate", json!({})),
        ("POST", "transit/keys/aes256-gcm96/rotate", json!({})),
        ("POST", "transit/keys/missing/rotate", json!({})),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"min_decryption_version": 2}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"min_encryption_version": 1}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"min_decryption_version": 9}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"min_encryption_version": 9}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"min_decryption_version": 0}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"auto_rotate_period": "30m"}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"auto_rotate_period": "2h", "allow_plaintext_backup": true}),
        ),
        ("POST", "transit/keys/aes256-gcm96/config", json!({})),
        (
            "POST",
            "transit/keys/missing/config",
            json!({"deletion_allowed": true}),
        ),
        ("GET", "transit/keys/aes256-gcm96", json!({})),
        (
            "POST",
            "transit/encrypt/aes256-gcm96",
            json!({"plaintext": PLAIN, "key_version": 1}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/trim",
            json!({"min_available_version": 2}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"min_encryption_version": 3, "min_decryption_version": 2}),
        ),
        (
            "POST",
            "transit/encrypt/aes256-gcm96",
            json!({"plaintext": PLAIN, "key_version": 2}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/trim",
            json!({"min_available_version": 3}),
        ),
        ("POST", "transit/keys/aes256-gcm96/trim", json!({})),
        (
            "POST",
            "transit/keys/aes256-gcm96/trim",
            json!({"min_available_version": 2}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/trim",
            json!({"min_available_version": 1}),
        ),
        (
            "POST",
            "transit/keys/aes256-gcm96/config",
            json!({"min_decryption_version": 1}),
        ),
        (
            "POST",
            "transit/keys/missing/trim",
            json!({"min_available_version": 1}),
        ),
        ("GET", "transit/keys/aes256-gcm96", json!({})),
        ("DELETE", "transit/keys/aes256-gcm96", json!({})),
        ("DELETE", "transit/keys/missing", json!({})),
        (
            "POST",
            "transit/keys/upserted/config",
            json!({"deletion_allowed": true}),
        ),
        ("DELETE", "transit/keys/upserted", json!({})),
        ("GET", "transit/keys/upserted", json!({})),
    ] {
        same(&o, &a, method, path, body);
    }

    // Export, backup, restore.
    same(
        &o,
        &a,
        "POST",
        "transit/keys/bk",
        json!({"exportable": true, "allow_plaintext_backup": true}),
    );
    for path in [
        "transit/export/encryption-key/bk",
        "transit/export/encryption-key/bk/1",
        "transit/export/encryption-key/bk/latest",
        "transit/export/encryption-key/bk/v7",
        "transit/export/encryption-key/bk/abc",
        "transit/export/hmac-key/bk",
        "transit/export/public-key/bk",
        "transit/export/signing-key/bk",
        "transit/export/bogus/bk",
        "transit/export/encryption-key/upserted-128",
        "transit/export/encryption-key/missing",
        "transit/export/signing-key/ed25519",
        "transit/export/public-key/ed25519",
        "transit/export/signing-key/ecdsa-p256",
        "transit/export/public-key/ecdsa-p384",
        "transit/export/encryption-key/ed25519",
        "transit/export/hmac-key/hm",
        "transit/export/encryption-key/bk?format=pem",
        "transit/export/signing-key/ecdsa-p256?format=raw",
        "transit/export/signing-key/ecdsa-p256?format=der",
        "transit/export/public-key/ed25519?format=pem",
        "transit/export/public-key/ed25519?format=bogus",
        "transit/backup/bk",
        "transit/backup/upserted-128",
        "transit/backup/missing",
    ] {
        same(&o, &a, "GET", path, json!({}));
    }
    // The exported forms themselves agree where they are deterministic.
    for s in [&o, &a] {
        let pk = s.ok("GET", "transit/export/public-key/ecdsa-p256", json!({}))["data"]["keys"]
            ["1"]
            .clone();
        assert!(
            pk.as_str()
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMFkw"),
            "{}",
            s.name
        );
        let sk = s.ok("GET", "transit/export/signing-key/ecdsa-p256", json!({}))["data"]["keys"]
            ["1"]
            .clone();
        assert!(
            sk.as_str()
                .unwrap()
                .starts_with("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE"),
            "{}",
            s.name
        );
        assert!(!sk.as_str().unwrap().ends_with('\n'));
    }
    // A backup that is not one: OpenBao answers 500 with Go's JSON error (or drops the
    // connection on `{}`); Airlock answers 400 (see the bad-input test).
    same(&o, &a, "POST", "transit/restore", json!({}));
    for s in [&o, &a] {
        let blob = s.ok("GET", "transit/backup/bk", json!({}))["data"]["backup"].clone();
        let r = s.call("POST", "transit/restore/bk", Some(json!({"backup": blob})));
        assert_eq!(
            (r.status, r.body["errors"].clone()),
            (
                500,
                json!(["1 error occurred:\n\t* key \"bk\" already exists\n\n"])
            ),
            "{}",
            s.name
        );
        assert_eq!(
            s.call(
                "POST",
                "transit/restore/bk-copy",
                Some(json!({"backup": blob}))
            )
            .status,
            204
        );
        assert_eq!(
            s.call(
                "POST",
                "transit/restore/bk",
                Some(json!({"backup": blob, "force": true}))
            )
            .status,
            204
        );
    }
    same(&o, &a, "GET", "transit/keys/bk-copy", json!({}));

    // Sign and verify, HMAC.
    for (path, body) in [
        ("transit/sign/ed25519", json!({"input": PLAIN})),
        ("transit/sign/ed25519/sha2-512", json!({"input": PLAIN})),
        (
            "transit/sign/ed25519",
            json!({"input": PLAIN, "marshaling_algorithm": "jws"}),
        ),
        ("transit/sign/ed25519", json!({"input": "!!"})),
        (
            "transit/sign/ed25519",
            json!({"input": PLAIN, "key_version": 4}),
        ),
        (
            "transit/sign/ed25519",
            json!({"input": PLAIN, "hash_algorithm": "md5"}),
        ),
        (
            "transit/sign/ed25519",
            json!({"input": PLAIN, "marshaling_algorithm": "xx"}),
        ),
        ("transit/sign/ecdsa-p256", json!({"input": PLAIN})),
        (
            "transit/sign/ecdsa-p384/sha2-384",
            json!({"input": PLAIN, "marshaling_algorithm": "jws"}),
        ),
        (
            "transit/sign/ecdsa-p256",
            json!({"input": "3q2+7w==", "prehashed": true}),
        ),
        ("transit/sign/ecdsa-p256/none", json!({"input": PLAIN})),
        ("transit/sign/bk", json!({"input": PLAIN})),
        ("transit/sign/missing", json!({"input": PLAIN})),
        (
            "transit/sign/ed25519",
            json!({"batch_input": [{"input": PLAIN}, {"input": "!!"}, {"context": "YQ==", "reference": "c"}]}),
        ),
        (
            "transit/sign/ed-der",
            json!({"input": PLAIN, "context": "YWJj"}),
        ),
        ("transit/sign/ed-der", json!({"input": PLAIN})),
        (
            "transit/verify/ed25519",
            json!({"input": PLAIN, "signature": "vault:v1:AAAA"}),
        ),
        (
            "transit/verify/ed25519",
            json!({"input": PLAIN, "signature": "vault:v1:!!"}),
        ),
        ("transit/verify/ed25519", json!({"input": PLAIN})),
        (
            "transit/verify/ed25519",
            json!({"input": PLAIN, "signature": "x", "hmac": "y"}),
        ),
        (
            "transit/verify/ed25519",
            json!({"input": PLAIN, "signature": "vault:v3:AAAA"}),
        ),
        (
            "transit/verify/ecdsa-p384",
            json!({"input": PLAIN, "signature": "vault:v1:AAAA"}),
        ),
        (
            "transit/verify/ecdsa-p384",
            json!({"input": PLAIN, "signature": "vault:v1:AAAA", "marshaling_algorithm": "jws"}),
        ),
        (
            "transit/verify/ed25519",
            json!({"batch_input": [{"input": PLAIN, "signature": "vault:v1:AAAA"}, {"input": PLAIN, "signature": "bad"}]}),
        ),
        (
            "transit/verify/ed25519",
            json!({"batch_input": [{"input": PLAIN, "signature": "vault:v1:AAAA"}, {"input": PLAIN}]}),
        ),
        ("transit/hmac/bk", json!({"input": PLAIN})),
        ("transit/hmac/bk/sha2-512", json!({"input": PLAIN})),
        ("transit/hmac/bk/sha3-256", json!({"input": PLAIN})),
        (
            "transit/hmac/bk",
            json!({"input": PLAIN, "algorithm": "md5"}),
        ),
        ("transit/hmac/bk", json!({})),
        ("transit/hmac/bk", json!({"input": PLAIN, "key_version": 3})),
        ("transit/hmac/ed25519", json!({"input": PLAIN})),
        ("transit/hmac/missing", json!({"input": PLAIN})),
        (
            "transit/hmac/bk",
            json!({"batch_input": [{"input": PLAIN}, {"input": "!!", "reference": "x"}]}),
        ),
        (
            "transit/verify/bk",
            json!({"input": PLAIN, "hmac": "vault:v1:AAAA"}),
        ),
        ("transit/verify/bk", json!({"input": PLAIN, "hmac": "xx"})),
        (
            "transit/verify/bk",
            json!({"batch_input": [{"input": PLAIN, "hmac": "vault:v1:AAAA"}]}),
        ),
        ("transit/random", json!({})),
        ("transit/random/8", json!({"format": "hex"})),
        ("transit/random/platform/4", json!({})),
        ("transit/random/all/4", json!({})),
        ("transit/random/seal/4", json!({})),
        ("transit/random/bogus/4", json!({})),
        ("transit/random", json!({"bytes": 0})),
        ("transit/random", json!({"bytes": 200000})),
        ("transit/random/abc", json!({})),
        ("transit/random", json!({"format": "x"})),
        ("transit/hash", json!({"input": PLAIN})),
        (
            "transit/hash/sha3-256",
            json!({"input": PLAIN, "format": "base64"}),
        ),
        ("transit/hash", json!({"input": PLAIN, "algorithm": "md5"})),
        ("transit/hash", json!({"input": PLAIN, "format": "bin"})),
        ("transit/hash", json!({})),
        ("transit/hash", json!({"input": "!!"})),
    ] {
        same(&o, &a, "POST", path, body);
    }
    // Deterministic answers are equal, not just alike.
    for path in ["transit/hash/sha2-512", "transit/hash/sha3-384"] {
        let (x, y) = same(&o, &a, "POST", path, json!({"input": PLAIN}));
        assert_eq!(x.body["data"], y.body["data"]);
    }
    // Each side's signatures and HMACs verify on that side, in every variant.
    for s in [&o, &a] {
        for (key, hash, marshaling) in [
            ("ed25519", "sha2-256", "asn1"),
            ("ecdsa-p256", "sha2-256", "asn1"),
            ("ecdsa-p256", "sha2-512", "jws"),
            ("ecdsa-p384", "sha2-224", "asn1"),
            ("ecdsa-p384", "sha3-384", "jws"),
        ] {
            let body =
                json!({"input": PLAIN, "hash_algorithm": hash, "marshaling_algorithm": marshaling});
            let sig = s.ok("POST", &format!("transit/sign/{key}"), body.clone())["data"]
                ["signature"]
                .clone();
            let mut v = body.clone();
            v["signature"] = sig;
            assert_eq!(
                s.ok("POST", &format!("transit/verify/{key}"), v)["data"]["valid"],
                true,
                "{} {key} {hash}",
                s.name
            );
        }
        let h = s.ok("POST", "transit/hmac/hm/sha2-384", json!({"input": PLAIN}))["data"]["hmac"]
            .clone();
        let v = s.ok(
            "POST",
            "transit/verify/hm/sha2-384",
            json!({"input": PLAIN, "hmac": h}),
        );
        assert_eq!(v["data"]["valid"], true);
    }
    // config/keys and upsert turned off.
    same(&o, &a, "GET", "transit/config/keys", json!({}));
    same(
        &o,
        &a,
        "POST",
        "transit/config/keys",
        json!({"disable_upsert": true}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/encrypt/never-made",
        json!({"plaintext": PLAIN}),
    );
    same(
        &o,
        &a,
        "POST",
        "transit/config/keys",
        json!({"disable_upsert": false}),
    );
}
