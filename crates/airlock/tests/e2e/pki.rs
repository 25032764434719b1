//! The PKI engine end to end: the same requests against Airlock and a real OpenBao with
//! response shapes compared (status, `data` keys); certificates checked with `openssl
//! verify` (root and through an intermediate), the CRL read with `openssl crl`, and
//! cert-manager's Vault issuer call replayed as it sends and parses it.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::util::*;

fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let b = body.map(|v| serde_json::to_vec(&v).unwrap());
    http(
        addr,
        method,
        &format!("/v1/{path}"),
        Some("root"),
        b.as_deref(),
        &[],
    )
}

fn ok(addr: &str, method: &str, path: &str, body: Value) -> Value {
    let r = call(addr, method, path, Some(body));
    assert!(
        r.status < 300,
        "{method} {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.raw)
    );
    r.body["data"].clone()
}

fn mount(addr: &str, path: &str) {
    let r = call(
        addr,
        "POST",
        &format!("sys/mounts/{path}"),
        Some(json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.raw));
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn has_openssl() -> bool {
    require(
        "openssl",
        Command::new("openssl").arg("version").output().is_ok(),
    )
}

/// A CSR made by openssl (EC P-256 unless `rsa`), PEM.
fn make_csr(dir: &Path, name: &str, subj: &str, san: &str, rsa: bool) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec![
        "req", "-new", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subj,
    ];
    let newkey = if rsa {
        ["-newkey", "rsa:2048", "", ""]
    } else {
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    };
    args.extend(newkey.iter().filter(|a| !a.is_empty()));
    let addext = format!("subjectAltName={san}");
    if !san.is_empty() {
        args.extend(["-addext", &addext]);
    }
    let (ok, out) = openssl(dir, &args);
    assert!(ok, "{out}");
    std::fs::read_to_string(dir.join(csr)).unwrap()
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// Runs the scenario against one server; returns (step, status, sorted data keys).
fn scenario(addr: &str, dir: &Path) -> Vec<(String, u16, Vec<String>)> {
    mount(addr, "pki");
    mount(addr, "pki_int");
    let mut out = Vec::new();
    let mut step = |name: &str, method: &str, path: &str, body: Option<Value>| -> Resp {
        let r = call(addr, method, path, body);
        let keys = keys_of(&r.body["data"]);
        out.push((name.to_string(), r.status, keys));
        r
    };
    let root = step(
        "root internal",
        "POST",
        "pki/root/generate/internal",
        Some(json!({"common_name": "Root CA", "key_type": "ec", "ttl": "8760h"})),
    );
    assert_eq!(root.status, 200);
    step(
        "root bad key type",
        "POST",
        "pki_int/root/generate/internal",
        Some(json!({"common_name": "x", "key_type": "dsa"})),
    );
    step(
        "role",
        "POST",
        "pki/roles/web",
        Some(
            json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "key_bits": 256, "max_ttl": "72h"}),
        ),
    );
    step("role read", "GET", "pki/roles/web", None);
    step(
        "role any",
        "POST",
        "pki/roles/any",
        Some(json!({"allow_any_name": true, "key_type": "any", "no_store": true})),
    );
    step("role list", "LIST", "pki/roles", None);
    step(
        "role bad key",
        "POST",
        "pki/roles/bad",
        Some(json!({"key_type": "foo"})),
    );
    step(
        "role small rsa",
        "POST",
        "pki/roles/bad",
        Some(json!({"key_type": "rsa", "key_bits": 1024})),
    );
    let issued = step(
        "issue",
        "POST",
        "pki/issue/web",
        Some(json!({"common_name": "a.example.com", "ttl": "1h"})),
    );
    step(
        "issue huge ttl",
        "POST",
        "pki/issue/web",
        Some(json!({"common_name": "a.example.com", "ttl": "100000h"})),
    );
    step(
        "issue outside role",
        "POST",
        "pki/issue/web",
        Some(json!({"common_name": "a.other.com"})),
    );
    step(
        "issue bad san",
        "POST",
        "pki/issue/web",
        Some(json!({"common_name": "a.example.com", "alt_names": "b.other.com"})),
    );
    step("issue no cn", "POST", "pki/issue/web", Some(json!({})));
    step(
        "issue unknown role",
        "POST",
        "pki/issue/nope",
        Some(json!({"common_name": "a.example.com"})),
    );
    step(
        "issue any without type",
        "POST",
        "pki/issue/any",
        Some(json!({"common_name": "x.test"})),
    );
    step(
        "issue any ed25519",
        "POST",
        "pki/issue/any",
        Some(json!({"common_name": "x.test", "key_type": "ed25519"})),
    );
    step(
        "issue any unknown type",
        "POST",
        "pki/issue/any",
        Some(json!({"common_name": "x.test", "key_type": "foo"})),
    );
    let csr = make_csr(dir, "leaf", "/CN=b.example.com", "DNS:b.example.com", false);
    step(
        "sign",
        "POST",
        "pki/sign/web",
        Some(json!({"csr": csr, "common_name": "b.example.com", "ttl": "2h"})),
    );
    step(
        "sign garbage",
        "POST",
        "pki/sign/web",
        Some(json!({"csr": "garbage"})),
    );
    step(
        "sign broken csr",
        "POST",
        "pki/sign/web",
        Some(
            json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQA=\n-----END CERTIFICATE REQUEST-----"}),
        ),
    );
    let rsa_csr = make_csr(dir, "rsaleaf", "/CN=c.example.com", "", true);
    step(
        "sign wrong key type",
        "POST",
        "pki/sign/web",
        Some(json!({"csr": rsa_csr})),
    );
    step(
        "sign-verbatim",
        "POST",
        "pki/sign-verbatim",
        Some(json!({"csr": csr})),
    );
    let serial = issued.body["data"]["serial_number"]
        .as_str()
        .unwrap_or("")
        .to_string();
    step("cert read", "GET", &format!("pki/cert/{serial}"), None);
    step("cert ca", "GET", "pki/cert/ca", None);
    step("cert crl", "GET", "pki/cert/crl", None);
    step("cert missing", "GET", "pki/cert/aa:bb", None);
    step("revoked list empty", "LIST", "pki/certs/revoked", None);
    step(
        "revoke",
        "POST",
        "pki/revoke",
        Some(json!({"serial_number": serial})),
    );
    step(
        "revoke again",
        "POST",
        "pki/revoke",
        Some(json!({"serial_number": serial})),
    );
    step(
        "revoke unknown",
        "POST",
        "pki/revoke",
        Some(json!({"serial_number": "aa:bb"})),
    );
    step("revoke nothing", "POST", "pki/revoke", Some(json!({})));
    step("cert revoked", "GET", &format!("pki/cert/{serial}"), None);
    step("revoked list", "LIST", "pki/certs/revoked", None);
    step("certs list", "LIST", "pki/certs", None);
    step("crl", "GET", "pki/crl", None);
    step("crl pem", "GET", "pki/crl/pem", None);
    step("crl rotate", "GET", "pki/crl/rotate", None);
    step("ca", "GET", "pki/ca", None);
    step("ca pem", "GET", "pki/ca/pem", None);
    step("ca_chain", "GET", "pki/ca_chain", None);
    let int = step(
        "intermediate internal",
        "POST",
        "pki_int/intermediate/generate/internal",
        Some(json!({"common_name": "Intermediate", "key_type": "ec"})),
    );
    step(
        "intermediate exported",
        "POST",
        "pki_int/intermediate/generate/exported",
        Some(json!({"common_name": "Intermediate", "key_type": "ec"})),
    );
    let int_csr = int.body["data"]["csr"].as_str().unwrap_or("").to_string();
    let _ = int_csr;
    // The exported one is the pending key now (both servers keep the newest).
    let exp_csr = out_csr(addr);
    let signed = step(
        "sign-intermediate",
        "POST",
        "pki/root/sign-intermediate",
        Some(json!({"csr": exp_csr, "common_name": "Intermediate", "ttl": "4380h"})),
    );
    let chain = format!(
        "{}\n{}",
        signed.body["data"]["certificate"].as_str().unwrap_or(""),
        signed.body["data"]["issuing_ca"].as_str().unwrap_or("")
    );
    step(
        "set-signed",
        "POST",
        "pki_int/intermediate/set-signed",
        Some(json!({"certificate": chain})),
    );
    step(
        "config/ca junk",
        "POST",
        "pki_int/config/ca",
        Some(json!({"pem_bundle": "junk"})),
    );
    step(
        "tidy",
        "POST",
        "pki/tidy",
        Some(json!({"tidy_cert_store": true, "tidy_revoked_certs": true, "safety_buffer": "1s"})),
    );
    step("role delete", "DELETE", "pki/roles/any", None);
    step("role gone", "GET", "pki/roles/any", None);
    out
}

/// A fresh exported intermediate CSR on `pki_int` (the pending key both servers sign).
fn out_csr(addr: &str) -> String {
    let d = ok(
        addr,
        "POST",
        "pki_int/intermediate/generate/exported",
        json!({"common_name": "Intermediate", "key_type": "ec"}),
    );
    d["csr"].as_str().unwrap().to_string()
}

#[test]
fn pki_responses_match_openbao() {
    let Some(bin) = openbao() else {
        require("openbao", false);
        return;
    };
    if !has_openssl() {
        return;
    }
    let dir = tempdir("pki-compat");
    let ours = start_dev();
    let bao = start_openbao(&bin);
    let a = scenario(&ours.addr, &dir);
    let b = scenario(&bao.addr, &dir);
    let mut diffs = Vec::new();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        // Deliberate: OpenBao answers an unknown key type on a `key_type=any` role with a
        // 500 (its "failed to validate role" multierror); Airlock with a 400.
        let deliberate = x.0 == "issue any unknown type" && x.1 == 400 && y.1 == 500;
        if x != y && !deliberate {
            diffs.push(format!(
                "{}: airlock {} {:?}\n      openbao {} {:?}",
                x.0, x.1, x.2, y.1, y.2
            ));
        }
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn verify(dir: &Path, ca: &str, untrusted: Option<&str>, leaf: &str) {
    let mut args = vec!["verify", "-CAfile", ca];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u]);
    }
    args.push(leaf);
    let (ok, out) = openssl(dir, &args);
    assert!(ok && out.contains(": OK"), "openssl verify {leaf}: {out}");
}

#[test]
fn pki_certificates_verify_with_openssl() {
    if !has_openssl() {
        return;
    }
    let dir = tempdir("pki-openssl");
    let p = start_dev();
    let a = p.addr.as_str();
    mount(a, "pki");
    mount(a, "pki_int");
    let root = ok(
        a,
        "POST",
        "pki/root/generate/exported",
        json!({"common_name": "Airlock Root", "key_type": "rsa", "ttl": "87000h"}),
    );
    assert!(root["private_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    write(&dir, "root.pem", root["certificate"].as_str().unwrap());
    // Intermediate through generate → sign-intermediate → set-signed.
    let int = ok(
        a,
        "POST",
        "pki_int/intermediate/generate/internal",
        json!({"common_name": "Airlock Intermediate", "key_type": "ec", "key_bits": 384}),
    );
    let signed = ok(
        a,
        "POST",
        "pki/root/sign-intermediate",
        json!({"csr": int["csr"], "common_name": "Airlock Intermediate", "ttl": "43800h"}),
    );
    write(&dir, "int.pem", signed["certificate"].as_str().unwrap());
    verify(&dir, "root.pem", None, "int.pem");
    // The CA and the CRL are read without a token, with Vault's content types; nothing else.
    for (path, ctype) in [
        ("/v1/pki/ca/pem", "application/pem-certificate-chain"),
        ("/v1/pki/ca", "application/pkix-cert"),
        ("/v1/pki/crl", "application/pkix-crl"),
        ("/v1/pki/crl/pem", "application/x-pem-file"),
        ("/v1/pki/ca_chain", "application/pem-certificate-chain"),
    ] {
        let r = http(a, "GET", path, None, None, &[]);
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.raw));
        assert!(
            r.headers
                .to_lowercase()
                .contains(&format!("content-type: {ctype}")),
            "{path}: {}",
            r.headers
        );
    }
    let pem = http(a, "GET", "/v1/pki/ca/pem", None, None, &[]);
    assert_eq!(
        String::from_utf8_lossy(&pem.raw).trim(),
        root["certificate"].as_str().unwrap().trim()
    );
    let r = http(a, "GET", "/v1/pki/cert/ca", None, None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        http(a, "GET", "/v1/pki/roles/web", None, None, &[]).status,
        403
    );
    assert_eq!(
        http(a, "LIST", "/v1/pki/certs", None, None, &[]).status,
        403
    );
    let bundle = format!(
        "{}\n{}",
        signed["certificate"].as_str().unwrap(),
        signed["issuing_ca"].as_str().unwrap()
    );
    ok(
        a,
        "POST",
        "pki_int/intermediate/set-signed",
        json!({"certificate": bundle}),
    );
    for m in ["pki", "pki_int"] {
        ok(
            a,
            "POST",
            &format!("{m}/roles/web"),
            json!({"allowed_domains": ["example.com"], "allow_subdomains": true, "key_type": "any", "max_ttl": "720h"}),
        );
    }
    // issue, each key type, from the root and through the intermediate.
    for (kt, bits) in [("ec", 256), ("rsa", 2048), ("ed25519", 0)] {
        let c = ok(
            a,
            "POST",
            "pki/issue/web",
            json!({"common_name": "a.example.com", "key_type": kt, "key_bits": bits}),
        );
        assert_eq!(c["private_key_type"], kt);
        write(&dir, "leaf.pem", c["certificate"].as_str().unwrap());
        verify(&dir, "root.pem", None, "leaf.pem");
    }
    let c = ok(
        a,
        "POST",
        "pki_int/issue/web",
        json!({"common_name": "b.example.com", "alt_names": "c.example.com", "ip_sans": "10.0.0.1", "key_type": "ec"}),
    );
    assert_eq!(c["ca_chain"].as_array().unwrap().len(), 2);
    write(&dir, "leaf.pem", c["certificate"].as_str().unwrap());
    verify(&dir, "root.pem", Some("int.pem"), "leaf.pem");
    let (_, text) = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(
        text.contains("DNS:b.example.com")
            && text.contains("DNS:c.example.com")
            && text.contains("IP Address:10.0.0.1"),
        "{text}"
    );
    // Private key and certificate belong together.
    write(&dir, "leaf.key", c["private_key"].as_str().unwrap());
    let (_, k) = openssl(&dir, &["pkey", "-in", "leaf.key", "-pubout"]);
    let (_, x) = openssl(&dir, &["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
    assert_eq!(k, x);

    // cert-manager's Vault issuer: the body of internal/vault/vault.go Sign, all strings.
    let csr = make_csr(
        &dir,
        "cm",
        "/CN=cm.example.com",
        "DNS:cm.example.com,DNS:www.example.com",
        false,
    );
    let body = json!({
        "common_name": "cm.example.com",
        "alt_names": "cm.example.com,www.example.com",
        "ip_sans": "",
        "uri_sans": "",
        "ttl": "2160h0m0s",
        "csr": csr,
        "exclude_cn_from_sans": "true",
    });
    let r = call(a, "POST", "pki_int/sign/web", Some(body));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
    assert!(
        r.body["warnings"][0].as_str().unwrap().contains("maxTTL"),
        "2160h is cut to the role's 720h"
    );
    let d = &r.body["data"];
    // certutil.ParsePKIMap + ParseSingleCertificateChainPEM: ca_chain, issuing_ca and
    // certificate joined, deduplicated, must form one chain.
    let mut pems: Vec<String> = d["ca_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    pems.push(d["issuing_ca"].as_str().unwrap().to_string());
    pems.push(d["certificate"].as_str().unwrap().to_string());
    pems.dedup();
    let mut uniq: Vec<String> = Vec::new();
    for p in pems {
        if !uniq.contains(&p) {
            uniq.push(p);
        }
    }
    assert_eq!(uniq.len(), 3, "leaf, intermediate, root");
    write(&dir, "cm.pem", d["certificate"].as_str().unwrap());
    write(&dir, "cm-chain.pem", &uniq[..2].join("\n"));
    verify(&dir, "root.pem", Some("cm-chain.pem"), "cm.pem");
    let (_, text) = openssl(&dir, &["x509", "-in", "cm.pem", "-noout", "-text"]);
    assert!(
        text.contains("DNS:cm.example.com, DNS:www.example.com"),
        "{text}"
    );

    // Revocation shows in the CRL (DER and PEM), signed by the CA.
    let serial = d["serial_number"].as_str().unwrap().to_string();
    ok(
        a,
        "POST",
        "pki_int/revoke",
        json!({"serial_number": serial}),
    );
    let crl = call(a, "GET", "pki_int/crl/pem", None);
    write(&dir, "crl.pem", &String::from_utf8_lossy(&crl.raw));
    write(&dir, "int2.pem", &uniq[0]);
    let (okv, text) = openssl(
        &dir,
        &[
            "crl", "-in", "crl.pem", "-noout", "-text", "-CAfile", "int2.pem",
        ],
    );
    assert!(okv && text.contains("verify OK"), "{text}");
    let want = serial.replace(':', "").to_uppercase();
    assert!(text.contains(&want), "{want} not in {text}");
    let der = call(a, "GET", "pki_int/crl", None);
    std::fs::write(dir.join("crl.der"), &der.raw).unwrap();
    let (okd, text) = openssl(
        &dir,
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    assert!(okd && text.contains(&want), "{text}");
    // Revoked by PEM too.
    let c2 = ok(
        a,
        "POST",
        "pki_int/issue/web",
        json!({"common_name": "d.example.com", "key_type": "ec"}),
    );
    ok(
        a,
        "POST",
        "pki_int/revoke",
        json!({"certificate": c2["certificate"]}),
    );
    let revoked = ok(a, "LIST", "pki_int/certs/revoked", json!({}));
    assert_eq!(revoked["keys"].as_array().unwrap().len(), 2);

    // config/ca: import an openssl-made CA with its key, then issue from it.
    if openssl_certs(&dir) {
        mount(a, "pki_imp");
        let b = format!(
            "{}\n{}",
            std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
            std::fs::read_to_string(dir.join("ca.key")).unwrap()
        );
        ok(a, "POST", "pki_imp/config/ca", json!({"pem_bundle": b}));
        ok(
            a,
            "POST",
            "pki_imp/roles/r",
            json!({"allow_any_name": true, "key_type": "ec", "ttl": "1h"}),
        );
        let c = ok(
            a,
            "POST",
            "pki_imp/issue/r",
            json!({"common_name": "imported.test"}),
        );
        write(&dir, "imp.pem", c["certificate"].as_str().unwrap());
        verify(&dir, "ca.pem", None, "imp.pem");
    }
}
