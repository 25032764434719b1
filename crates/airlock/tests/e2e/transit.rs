//! The transit engine side by side with a real OpenBao dev server: the same requests to
//! both, compared by status, the shape of `data` (keys and JSON types) and the error text;
//! then cross-checks that need real cryptography to agree — OpenBao's backups restored in
//! Airlock (and Airlock's in OpenBao) decrypt each other's ciphertexts and give the same
//! convergent ciphertexts and Ed25519 signatures, Airlock's signatures verify with Python's
//! `cryptography` on the exported public keys, and bad input gets a 4xx, never a panic.

use std::process::Command;

use serde_json::{json, Value};

use crate::util::*;

mod byok;
mod endpoints;

/// A server under test: its address (both use the root token `root`).
struct Srv<'a> {
    name: &'a str,
    addr: &'a str,
}

impl Srv<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call_as("root", method, path, body)
    }
    fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        let b = body.map(|v| serde_json::to_vec(&v).unwrap());
        http(
            self.addr,
            method,
            &format!("/v1/{path}"),
            Some(token),
            b.as_deref(),
            &[],
        )
    }
    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let r = self.call(method, path, Some(body));
        assert!(
            r.status < 300,
            "{} {method} {path}: {} {}",
            self.name,
            r.status,
            r.body
        );
        r.body
    }
}

/// Keys and JSON types, values dropped (ciphertexts, keys and times differ by nature).
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// One request to both servers: same status, same `data` shape, same warnings, and for
/// errors the same texts.
fn same(a: &Srv, b: &Srv, method: &str, path: &str, body: Value) -> (Resp, Resp) {
    let ra = a.call(method, path, Some(body.clone()));
    let rb = b.call(method, path, Some(body));
    let ctx = format!("{method} {path}");
    assert_eq!(
        ra.status, rb.status,
        "{ctx}: status ({} {} / {} {})",
        a.name, ra.body, b.name, rb.body
    );
    assert_eq!(
        shape(&ra.body["data"]),
        shape(&rb.body["data"]),
        "{ctx}: data shape\n{}\n{}",
        ra.body,
        rb.body
    );
    assert_eq!(ra.body["errors"], rb.body["errors"], "{ctx}: errors");
    assert_eq!(ra.body["warnings"], rb.body["warnings"], "{ctx}: warnings");
    (ra, rb)
}

fn start_pair() -> Option<(Proc, Bao)> {
    let bao = openbao();
    if !require(
        "the OpenBao server (../shared/tools/openbao)",
        bao.is_some(),
    ) {
        return None;
    }
    let bin = bao.unwrap_or_default();
    let p = start_dev();
    // `start_openbao` picks a free port, then OpenBao binds it and the next one: another
    // process can take either in between, and the dev server exits. Try again then.
    for _ in 0..3 {
        let mut reference = start_openbao(&bin);
        let up = http(
            &reference.addr,
            "GET",
            "/v1/sys/seal-status",
            None,
            None,
            &[],
        );
        if up.status == 200 && reference.child.try_wait().ok().flatten().is_none() {
            return Some((p, reference));
        }
    }
    panic!("OpenBao did not stay up on three ports");
}

const PLAIN: &str = "aGVsbG8gd29ybGQ="; // "hello world"

/// The ACL sees encrypt-to-a-new-key as `create`: `update` alone cannot make keys.
#[test]
fn transit_upsert_needs_the_create_capability() {
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
        s.ok("POST", "transit/keys/exists", json!({}));
        let pol = "path \"transit/encrypt/*\" { capabilities = [\"update\"] }";
        s.ok("PUT", "sys/policies/acl/enc-update", json!({"policy": pol}));
        let pol = "path \"transit/encrypt/*\" { capabilities = [\"create\", \"update\"] }";
        s.ok("PUT", "sys/policies/acl/enc-create", json!({"policy": pol}));
        let upd = s.ok(
            "POST",
            "auth/token/create",
            json!({"policies": ["enc-update"]}),
        )["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let cre = s.ok(
            "POST",
            "auth/token/create",
            json!({"policies": ["enc-create"]}),
        )["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string();
        let body = || Some(json!({"plaintext": PLAIN}));
        assert_eq!(
            s.call_as(&upd, "POST", "transit/encrypt/exists", body())
                .status,
            200,
            "{}",
            s.name
        );
        assert_eq!(
            s.call_as(&upd, "POST", "transit/encrypt/new", body())
                .status,
            403,
            "{}",
            s.name
        );
        assert_eq!(
            s.call("GET", "transit/keys/new", None).status,
            404,
            "{}",
            s.name
        );
        assert_eq!(
            s.call_as(&cre, "POST", "transit/encrypt/new", body())
                .status,
            200,
            "{}",
            s.name
        );
    }
}

/// Real cryptography agreeing across the two implementations.
#[test]
fn transit_interoperates_with_openbao_and_python() {
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
        s.ok("POST", "transit/keys/k", json!({}));
    }
    // Same name, different keys: OpenBao's ciphertext does not open in Airlock.
    let foreign = o.ok("POST", "transit/encrypt/k", json!({"plaintext": PLAIN}))["data"]
        ["ciphertext"]
        .clone();
    let r = a.call(
        "POST",
        "transit/decrypt/k",
        Some(json!({"ciphertext": foreign})),
    );
    assert_eq!(
        (r.status, r.body["errors"].clone()),
        (400, json!(["cipher: message authentication failed"]))
    );

    // Backups move keys across; each side then decrypts the other's ciphertexts, derives the
    // same convergent ciphertexts and makes the same Ed25519 signatures.
    let opts = json!({"exportable": true, "allow_plaintext_backup": true});
    for (name, extra) in [
        ("x-aes256", json!({})),
        ("x-aes128", json!({"type": "aes128-gcm96"})),
        ("x-chacha", json!({"type": "chacha20-poly1305"})),
        (
            "x-conv",
            json!({"derived": true, "convergent_encryption": true}),
        ),
        ("x-ed", json!({"type": "ed25519"})),
        ("x-hmac", json!({"type": "hmac", "key_size": 48})),
    ] {
        let mut body = opts.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        for (from, to) in [(&o, &a), (&a, &o)] {
            from.ok("POST", &format!("transit/keys/{name}"), body.clone());
            from.ok("POST", &format!("transit/keys/{name}/rotate"), json!({}));
            let blob = from.ok("GET", &format!("transit/backup/{name}"), json!({}))["data"]
                ["backup"]
                .clone();
            let copy = format!("{name}-from-{}", from.name);
            let r = to.call(
                "POST",
                &format!("transit/restore/{copy}"),
                Some(json!({"backup": blob})),
            );
            assert_eq!(
                r.status, 204,
                "{name} {} → {}: {}",
                from.name, to.name, r.body
            );
            let (x, y) = (
                from.ok("GET", &format!("transit/keys/{name}"), json!({})),
                to.ok("GET", &format!("transit/keys/{copy}"), json!({})),
            );
            assert_eq!(
                x["data"]["keys"], y["data"]["keys"],
                "{name}: the versions and their times travel"
            );
            assert_eq!(y["data"]["latest_version"], 2);
            match name {
                "x-ed" => {
                    let s1 = from.ok(
                        "POST",
                        &format!("transit/sign/{name}"),
                        json!({"input": PLAIN}),
                    );
                    let s2 = to.ok(
                        "POST",
                        &format!("transit/sign/{copy}"),
                        json!({"input": PLAIN}),
                    );
                    assert_eq!(
                        s1["data"]["signature"], s2["data"]["signature"],
                        "Ed25519 is deterministic"
                    );
                }
                "x-hmac" => {
                    let h1 = from.ok(
                        "POST",
                        &format!("transit/hmac/{name}"),
                        json!({"input": PLAIN}),
                    );
                    let h2 = to.ok(
                        "POST",
                        &format!("transit/hmac/{copy}"),
                        json!({"input": PLAIN}),
                    );
                    assert_eq!(h1["data"]["hmac"], h2["data"]["hmac"]);
                }
                _ => {
                    let ctx = if name == "x-conv" {
                        json!("dXNlci00Mg==")
                    } else {
                        Value::Null
                    };
                    let mut enc = json!({"plaintext": PLAIN, "key_version": 1});
                    if !ctx.is_null() {
                        enc["context"] = ctx.clone();
                    }
                    let ct = from.ok("POST", &format!("transit/encrypt/{name}"), enc.clone())
                        ["data"]["ciphertext"]
                        .clone();
                    let mut dec = json!({"ciphertext": ct});
                    if !ctx.is_null() {
                        dec["context"] = ctx.clone();
                    }
                    let d = to.ok("POST", &format!("transit/decrypt/{copy}"), dec);
                    assert_eq!(
                        d["data"]["plaintext"], PLAIN,
                        "{name}: {} → {}",
                        from.name, to.name
                    );
                    if name == "x-conv" {
                        let ct2 = to.ok("POST", &format!("transit/encrypt/{copy}"), enc)["data"]
                            ["ciphertext"]
                            .clone();
                        assert_eq!(ct, ct2, "convergent encryption derives the same nonce");
                    }
                }
            }
        }
    }

    // Airlock's signatures verify with an independent implementation.
    if require("python3 with cryptography", python_has("cryptography")) {
        for (key, ty, hash, marshaling) in [
            ("py-ed", "ed25519", "sha2-256", "asn1"),
            ("py-p256", "ecdsa-p256", "sha2-256", "asn1"),
            ("py-p256-jws", "ecdsa-p256", "sha2-512", "jws"),
            ("py-p384", "ecdsa-p384", "sha2-384", "asn1"),
            ("py-p384-224", "ecdsa-p384", "sha2-224", "jws"),
        ] {
            a.ok("POST", &format!("transit/keys/{key}"), json!({"type": ty}));
            let sig = a.ok(
                "POST",
                &format!("transit/sign/{key}"),
                json!({"input": PLAIN, "hash_algorithm": hash, "marshaling_algorithm": marshaling}),
            )["data"]["signature"]
                .as_str()
                .unwrap()
                .to_string();
            let pk = a.ok(
                "GET",
                &format!("transit/export/public-key/{key}"),
                json!({}),
            )["data"]["keys"]["1"]
                .as_str()
                .unwrap()
                .to_string();
            let out = Command::new("python3")
                .arg("-c")
                .arg(PY_VERIFY)
                .args([ty, hash, marshaling, &pk, &sig, PLAIN])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{key}: python says {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

const PY_VERIFY: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
ty, hash_name, marshaling, pk, sig, msg = sys.argv[1:]
msg = base64.b64decode(msg)
body = sig.split(":", 2)[2]
if marshaling == "jws":
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    n = len(raw) // 2
    der = utils.encode_dss_signature(int.from_bytes(raw[:n], "big"), int.from_bytes(raw[n:], "big"))
else:
    der = base64.b64decode(body)
if ty == "ed25519":
    ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(pk)).verify(der, msg)
else:
    h = {"sha2-224": hashes.SHA224(), "sha2-256": hashes.SHA256(), "sha2-384": hashes.SHA384(), "sha2-512": hashes.SHA512()}[hash_name]
    serialization.load_pem_public_key(pk.encode()).verify(der, msg, ec.ECDSA(h))
print("ok")
"#;

/// Hostile input: every answer a 4xx with a reason, the server still up, nothing written.
#[test]
fn transit_refuses_bad_input_without_side_effects() {
    let p = start_dev();
    let a = Srv {
        name: "airlock",
        addr: &p.addr,
    };
    a.ok("POST", "sys/mounts/transit", json!({"type": "transit"}));
    a.ok("POST", "transit/keys/k", json!({}));
    let before = a.ok("GET", "transit/keys/k", json!({}));
    let ct = a.ok("POST", "transit/encrypt/k", json!({"plaintext": PLAIN}))["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_string();
    let truncated = &ct[..ct.len() - 8];
    let big: Vec<Value> = (0..10_001).map(|_| json!({"plaintext": ""})).collect();
    for (path, body) in [
        ("transit/decrypt/k", json!({"ciphertext": truncated})),
        (
            "transit/decrypt/k",
            json!({"ciphertext": ct.replace("vault:v1:", "vault:v2:")}),
        ),
        (
            "transit/decrypt/k",
            json!({"ciphertext": ct.replace("vault:v1:", "vault:v0:x")}),
        ),
        ("transit/decrypt/k", json!({"ciphertext": "vault:v1:" })),
        (
            "transit/decrypt/k",
            json!({"ciphertext": "vault:v99999999999999999999:AAAA"}),
        ),
        (
            "transit/decrypt/k",
            json!({"ciphertext": ct, "context": "!!"}),
        ),
        ("transit/decrypt/k", json!({"ciphertext": 5})),
        (
            "transit/decrypt/k",
            json!({"batch_input": [{"ciphertext": truncated}]}),
        ),
        ("transit/encrypt/k", json!({"plaintext": "aGVsbG8"})),
        (
            "transit/encrypt/k",
            json!({"plaintext": PLAIN, "key_version": "x"}),
        ),
        ("transit/encrypt/k", json!({"batch_input": big})),
        (
            "transit/encrypt/k2",
            json!({"plaintext": PLAIN, "type": "rsa-9"}),
        ),
        ("transit/keys/k3", json!({"type": "unknown"})),
        (
            "transit/rewrap/k",
            json!({"ciphertext": ct, "key_version": 7}),
        ),
        ("transit/sign/k", json!({"input": PLAIN})),
        (
            "transit/verify/k",
            json!({"input": PLAIN, "signature": "vault:v1:AAAA"}),
        ),
        ("transit/restore/r", json!({"backup": "!!"})),
        ("transit/restore/r", json!({"backup": "bnVsbA=="})),
        ("transit/restore/r", json!({"backup": "e30="})),
        (
            "transit/restore/r",
            json!({"backup": "eyJwb2xpY3kiOnsibmFtZSI6InIifX0="}),
        ),
        (
            "transit/keys/k/config",
            json!({"min_decryption_version": "abc"}),
        ),
        ("transit/hmac/k", json!({"input": PLAIN, "key_version": -4})),
    ] {
        let r = a.call("POST", path, Some(body.clone()));
        assert!(
            (400..500).contains(&r.status)
                && (r.body["errors"].as_array().is_some_and(|e| !e.is_empty())
                    || r.body["data"]["batch_results"][0]["error"].is_string()),
            "{path} {body}: {} {}",
            r.status,
            r.body
        );
    }
    assert_eq!(
        a.ok("GET", "transit/keys/k", json!({}))["data"],
        before["data"]
    );
    assert_eq!(a.call("GET", "transit/keys/r", None).status, 404);
    assert_eq!(a.call("GET", "transit/keys/k3", None).status, 404);
    assert_eq!(a.call("GET", "sys/health", None).status, 200);
}
