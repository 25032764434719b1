//! RSA keys and bring-your-own-key against OpenBao: the RSA and import endpoints compared
//! (status, `data` shape, error texts); the same AES-256 and Ed25519 keys, wrapped with
//! Python's `cryptography` for each server's own `wrapping_key`, imported into both, each
//! server then decrypting the other's ciphertexts and verifying the other's signatures;
//! Airlock's RSA signatures checked by Python; bad blobs refused with a 4xx, nothing written.

use std::process::Command;

use serde_json::{json, Value};

use super::{same, start_pair, Srv, PLAIN};
use crate::util::*;

/// `wrap <pem> <b64 key> <hash>`: CKM_RSA_AES_KEY_WRAP as Vault's docs build it;
/// `gen`: a random AES-256 key and an Ed25519 PKCS#8 key, base64, one per line;
/// `verify <pem> <alg> <hash> <sig> <msg>`: an RSA signature check.
const PY: &str = r#"
import base64, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, ed25519
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
cmd = sys.argv[1]
if cmd == "gen":
    print(base64.b64encode(os.urandom(32)).decode())
    k = ed25519.Ed25519PrivateKey.generate()
    print(base64.b64encode(k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())).decode())
elif cmd == "wrap":
    pub = serialization.load_pem_public_key(sys.argv[2].encode())
    eph = os.urandom(32)
    h = {"SHA1": hashes.SHA1(), "SHA256": hashes.SHA256(), "SHA512": hashes.SHA512()}[sys.argv[4]]
    wrapped_eph = pub.encrypt(eph, padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None))
    print(base64.b64encode(wrapped_eph + aes_key_wrap_with_padding(eph, base64.b64decode(sys.argv[3]))).decode())
elif cmd == "verify":
    pub = serialization.load_pem_public_key(sys.argv[2].encode())
    h = {"sha2-256": hashes.SHA256(), "sha2-512": hashes.SHA512(), "sha3-256": hashes.SHA3_256(), "sha1": hashes.SHA1()}[sys.argv[4]]
    sig = base64.b64decode(sys.argv[5].split(":", 2)[2])
    msg = base64.b64decode(sys.argv[6])
    pad = padding.PKCS1v15() if sys.argv[3] == "pkcs1v15" else padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO)
    pub.verify(sig, msg, pad, h)
    print("ok")
"#;

fn py(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python {}: {}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wrapping_pem(s: &Srv) -> String {
    s.ok("GET", "transit/wrapping_key", json!({}))["data"]["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn wrap(s: &Srv, key_b64: &str, hash: &str) -> String {
    py(&["wrap", &wrapping_pem(s), key_b64, hash])
        .trim()
        .to_string()
}

#[test]
fn transit_rsa_and_byok_match_openbao_and_interoperate() {
    let Some((p, reference)) = start_pair() else {
        return;
    };
    if !require("python3 with cryptography", python_has("cryptography")) {
        return;
    }
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
    // RSA endpoints, compared.
    for ty in ["rsa-2048", "rsa-3072"] {
        same(
            &o,
            &a,
            "POST",
            &format!("transit/keys/{ty}"),
            json!({"type": ty, "exportable": true}),
        );
        same(&o, &a, "GET", &format!("transit/keys/{ty}"), json!({}));
    }
    let r = "transit/keys/rsa-2048";
    for (path, body) in [
        ("transit/encrypt/rsa-2048", json!({"plaintext": PLAIN})),
        (
            "transit/encrypt/rsa-2048",
            json!({"batch_input": [{"plaintext": PLAIN}, {"plaintext": "!!"}]}),
        ),
        (
            "transit/encrypt/rsa-2048",
            json!({"plaintext": PLAIN, "associated_data": "eA=="}),
        ),
        ("transit/datakey/plaintext/rsa-2048", json!({})),
        ("transit/datakey/wrapped/rsa-2048", json!({"bits": 512})),
        ("transit/sign/rsa-2048", json!({"input": PLAIN})),
        (
            "transit/sign/rsa-2048/sha2-512",
            json!({"input": PLAIN, "signature_algorithm": "pkcs1v15"}),
        ),
        (
            "transit/sign/rsa-2048",
            json!({"input": PLAIN, "salt_length": "hash", "marshaling_algorithm": "jws"}),
        ),
        (
            "transit/sign/rsa-2048",
            json!({"input": PLAIN, "salt_length": "9999"}),
        ),
        (
            "transit/sign/rsa-2048",
            json!({"input": PLAIN, "salt_length": "x"}),
        ),
        (
            "transit/sign/rsa-2048",
            json!({"input": PLAIN, "hash_algorithm": "none"}),
        ),
        (
            "transit/sign/rsa-2048",
            json!({"batch_input": [{"input": PLAIN}, {"input": "!!"}]}),
        ),
        (
            "transit/verify/rsa-2048",
            json!({"input": PLAIN, "signature": "vault:v1:AAAA"}),
        ),
        (
            "transit/verify/rsa-2048",
            json!({"input": PLAIN, "signature": "vault:v9:AAAA"}),
        ),
        (
            "transit/keys/bad",
            json!({"type": "rsa-2048", "derived": true}),
        ),
        ("transit/keys/bad", json!({"type": "rsa-1024"})),
        (
            "transit/encrypt/new-rsa",
            json!({"plaintext": PLAIN, "type": "rsa-2048"}),
        ),
        (&format!("{r}/rotate"), json!({})),
    ] {
        same(&o, &a, "POST", path, body);
    }
    for (path, q) in [
        ("transit/export/public-key/rsa-2048", ""),
        ("transit/export/public-key/rsa-2048", "?format=der"),
        ("transit/export/signing-key/rsa-2048", ""),
        ("transit/export/encryption-key/rsa-2048/1", "?format=pem"),
        ("transit/export/signing-key/rsa-2048", "?format=raw"),
        ("transit/export/hmac-key/rsa-2048", ""),
    ] {
        same(&o, &a, "GET", &format!("{path}{q}"), json!({}));
    }
    for s in [&o, &a] {
        // Round trips on each side, in every signature variant.
        let ct = s.ok(
            "POST",
            "transit/encrypt/rsa-3072",
            json!({"plaintext": PLAIN}),
        )["data"]["ciphertext"]
            .clone();
        let d = s.ok(
            "POST",
            "transit/decrypt/rsa-3072",
            json!({"ciphertext": ct}),
        );
        assert_eq!(d["data"]["plaintext"], PLAIN, "{}", s.name);
        for (alg, hash, salt) in [
            ("pss", "sha2-256", "auto"),
            ("pss", "sha3-256", "hash"),
            ("pss", "sha2-512", "32"),
            ("pkcs1v15", "sha1", "auto"),
        ] {
            let body = json!({"input": PLAIN, "hash_algorithm": hash,
                "signature_algorithm": alg, "salt_length": salt});
            let sig =
                s.ok("POST", "transit/sign/rsa-3072", body.clone())["data"]["signature"].clone();
            let mut v = body;
            v["signature"] = sig;
            let ok = s.ok("POST", "transit/verify/rsa-3072", v);
            assert_eq!(ok["data"]["valid"], true, "{} {alg} {hash}", s.name);
        }
    }
    // (b) Airlock's RSA signatures verify with Python on the exported public key.
    let pem = a.ok("GET", "transit/export/public-key/rsa-3072", json!({}))["data"]["keys"]["1"]
        .as_str()
        .unwrap()
        .to_string();
    for (alg, hash) in [
        ("pss", "sha2-256"),
        ("pss", "sha3-256"),
        ("pkcs1v15", "sha2-512"),
        ("pkcs1v15", "sha1"),
    ] {
        let sig = a.ok(
            "POST",
            "transit/sign/rsa-3072",
            json!({"input": PLAIN, "hash_algorithm": hash, "signature_algorithm": alg}),
        )["data"]["signature"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            py(&["verify", &pem, alg, hash, &sig, PLAIN]).trim(),
            "ok",
            "{alg} {hash}"
        );
    }
    // BYOK endpoints, compared.
    let (x, y) = same(&o, &a, "GET", "transit/wrapping_key", json!({}));
    for r in [&x, &y] {
        assert!(r.body["data"]["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }
    same(&o, &a, "LIST", "transit/keys", json!({}));
    let gen = py(&["gen"]);
    let mut lines = gen.lines();
    let (aes, ed) = (
        lines.next().unwrap().to_string(),
        lines.next().unwrap().to_string(),
    );
    // Each server gets the same keys, wrapped for its own wrapping key.
    let mut cts = Vec::new();
    for s in [&o, &a] {
        let (w_aes, w_ed) = (wrap(s, &aes, "SHA256"), wrap(s, &ed, "SHA1"));
        cts.push(w_aes.clone());
        let (x, y) = (
            s.call(
                "POST",
                "transit/keys/imp-aes/import",
                Some(json!({"ciphertext": w_aes, "allow_rotation": true})),
            ),
            s.call(
                "POST",
                "transit/keys/imp-ed/import",
                Some(json!({"ciphertext": w_ed, "type": "ed25519", "hash_function": "SHA1"})),
            ),
        );
        assert_eq!(
            (x.status, y.status),
            (204, 204),
            "{}: {} {}",
            s.name,
            x.body,
            y.body
        );
    }
    same(&o, &a, "GET", "transit/keys/imp-aes", json!({}));
    same(&o, &a, "GET", "transit/keys/imp-ed", json!({}));
    same(&o, &a, "POST", "transit/keys/imp-ed/rotate", json!({}));
    // An existing key: the same words; OpenBao says 500, Airlock 400 (the caller's error).
    let body = json!({"ciphertext": cts[0]});
    let (x, y) = (
        o.call("POST", "transit/keys/imp-ed/import", Some(body.clone())),
        a.call("POST", "transit/keys/imp-ed/import", Some(body)),
    );
    assert_eq!((x.status, y.status), (500, 400));
    assert!(x.body["errors"][0]
        .as_str()
        .unwrap()
        .contains(y.body["errors"][0].as_str().unwrap()));
    same(
        &o,
        &a,
        "POST",
        "transit/keys/x/import",
        json!({"type": "nope"}),
    );
    // (a) Each side decrypts the other's ciphertexts and verifies the other's signatures.
    for (from, to) in [(&o, &a), (&a, &o)] {
        let ct = from.ok(
            "POST",
            "transit/encrypt/imp-aes",
            json!({"plaintext": PLAIN}),
        )["data"]["ciphertext"]
            .clone();
        let d = to.ok("POST", "transit/decrypt/imp-aes", json!({"ciphertext": ct}));
        assert_eq!(d["data"]["plaintext"], PLAIN, "{} → {}", from.name, to.name);
        let sig = from.ok("POST", "transit/sign/imp-ed", json!({"input": PLAIN}))["data"]
            ["signature"]
            .clone();
        let v = to.ok(
            "POST",
            "transit/verify/imp-ed",
            json!({"input": PLAIN, "signature": sig}),
        );
        assert_eq!(v["data"]["valid"], true, "{} → {}", from.name, to.name);
    }
    // A new version from imported material (allowed by Vault for any imported key), then
    // rotation inside the server (allow_rotation).
    for s in [&o, &a] {
        let w = wrap(s, &aes, "SHA256");
        let r = s.call(
            "POST",
            "transit/keys/imp-aes/import_version",
            Some(json!({"ciphertext": w})),
        );
        assert_eq!(r.status, 204, "{}: {}", s.name, r.body);
    }
    same(&o, &a, "GET", "transit/keys/imp-aes", json!({}));
    same(&o, &a, "POST", "transit/keys/imp-aes/rotate", json!({}));
    same(&o, &a, "GET", "transit/keys/imp-aes", json!({}));

    // Bad blobs: a clear 4xx from Airlock (OpenBao answers most with a 500), nothing written.
    let before = a.ok("GET", "transit/keys/imp-aes", json!({}));
    let for_openbao = &cts[0];
    let full = cts[1].clone();
    let truncated = full[..full.len() - 12].to_string();
    for body in [
        json!({"ciphertext": for_openbao}),
        json!({"ciphertext": truncated}),
        json!({"ciphertext": &full[..400]}),
        json!({"ciphertext": full, "type": "rsa-2048"}),
        json!({"ciphertext": full, "type": "aes128-gcm96"}),
        json!({"ciphertext": full, "type": "bogus"}),
        json!({"ciphertext": full, "hash_function": "SHA512"}),
        json!({"ciphertext": "!!"}),
    ] {
        let r = a.call("POST", "transit/keys/bad-imp/import", Some(body.clone()));
        assert!(
            (400..500).contains(&r.status)
                && r.body["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{body}: {} {}",
            r.status,
            r.body
        );
        let r = a.call(
            "POST",
            "transit/keys/imp-aes/import_version",
            Some(json!({"ciphertext": for_openbao})),
        );
        assert_eq!(r.status, 400, "{}", r.body);
    }
    assert_eq!(a.call("GET", "transit/keys/bad-imp", None).status, 404);
    let after: Value = a.ok("GET", "transit/keys/imp-aes", json!({}));
    assert_eq!(after["data"], before["data"]);
    // RSA backups travel between Airlock instances (here: within one, under a new name).
    a.ok(
        "POST",
        "transit/keys/rsa-b",
        json!({"type": "rsa-2048", "exportable": true, "allow_plaintext_backup": true}),
    );
    let ct = a.ok("POST", "transit/encrypt/rsa-b", json!({"plaintext": PLAIN}))["data"]
        ["ciphertext"]
        .clone();
    let blob = a.ok("GET", "transit/backup/rsa-b", json!({}))["data"]["backup"].clone();
    assert_eq!(
        a.call(
            "POST",
            "transit/restore/rsa-b2",
            Some(json!({"backup": blob}))
        )
        .status,
        204
    );
    let d = a.ok("POST", "transit/decrypt/rsa-b2", json!({"ciphertext": ct}));
    assert_eq!(d["data"]["plaintext"], PLAIN);
}
