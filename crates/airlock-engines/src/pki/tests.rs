//! Unit tests of the PKI engine's pure parts (name rules, TTLs, serials, DER/X.509
//! round trips) and of the engine over in-memory storage.

use std::sync::Arc;

use airlock_logical::testing::{ctx, mount, request, TestSystem};
use airlock_logical::{Backend, Op};
use serde_json::{json, Value};

use super::roles::{effective_ttl, first_disallowed, glob, is_hostname, Role};
use super::{keys, x509, Pki};

fn role(v: Value) -> Role {
    let mut r: Role = serde_json::from_value(v).unwrap();
    if r.key_type.is_empty() {
        r.key_type = "rsa".into();
    }
    r
}

fn allowed(r: &Role, name: &str) -> bool {
    first_disallowed(r, &[name.to_string()]).is_none()
}

#[test]
fn name_rules_follow_vault() {
    let sub = role(json!({"allowed_domains": ["example.com"], "allow_subdomains": true}));
    assert!(allowed(&sub, "a.example.com"));
    assert!(allowed(&sub, "a.b.example.com"));
    assert!(
        !allowed(&sub, "example.com"),
        "bare domain needs allow_bare_domains"
    );
    assert!(!allowed(&sub, "a.example.org"));
    assert!(!allowed(&sub, "aexample.com"));
    assert!(
        allowed(&sub, "*.example.com"),
        "wildcards of an allowed base"
    );
    assert!(!allowed(&sub, "a.*.example.com"));
    assert!(
        allowed(&sub, "localhost"),
        "allow_localhost defaults to true"
    );
    assert!(!allowed(&sub, "a_b.example.com"), "enforce_hostnames");
    let bare = role(json!({"allowed_domains": ["example.com"], "allow_bare_domains": true}));
    assert!(allowed(&bare, "example.com") && !allowed(&bare, "a.example.com"));
    let globbed =
        role(json!({"allowed_domains": ["*.svc.cluster.local"], "allow_glob_domains": true}));
    assert!(allowed(&globbed, "api.ns.svc.cluster.local"));
    assert!(!allowed(&globbed, "svc.cluster.local"));
    let any = role(json!({"allow_any_name": true}));
    assert!(allowed(&any, "anything.example"));
    assert!(
        !allowed(&any, "bad name"),
        "enforce_hostnames applies with allow_any_name"
    );
    let loose = role(json!({"allow_any_name": true, "enforce_hostnames": false}));
    assert!(allowed(&loose, "bad name"));
    let no_local = role(json!({"allow_localhost": false}));
    assert!(!allowed(&no_local, "localhost"));
    let email = role(json!({"allowed_domains": ["example.com"], "allow_bare_domains": true}));
    assert!(allowed(&email, "me@example.com"));
    assert!(glob("a*c", "abbbc") && !glob("a*c", "abd") && glob("*", "x"));
    assert!(is_hostname("a-b.example.com.") && !is_hostname("-a.com") && !is_hostname("a..b"));
}

#[test]
fn ttls_are_clamped_as_vault_does() {
    assert_eq!(effective_ttl(0, 0, 0, 100, 1000), (100, None));
    assert_eq!(effective_ttl(0, 50, 0, 100, 1000), (50, None));
    assert_eq!(effective_ttl(500, 50, 0, 100, 1000), (500, None));
    let (ttl, w) = effective_ttl(3600 * 1000, 0, 72 * 3600, 768 * 3600, 768 * 3600);
    assert_eq!(ttl, 72 * 3600);
    assert_eq!(
        w.unwrap(),
        "TTL \"1000h0m0s\" is longer than permitted maxTTL \"72h0m0s\", so maxTTL is being used"
    );
    assert_eq!(effective_ttl(0, 0, 0, 2000, 1000).0, 1000);
}

#[test]
fn serials_print_as_colon_hex() {
    assert_eq!(x509::serial_string(&[0x00, 0x1f, 0x0a, 0xff]), "1f:0a:ff");
    assert_eq!(x509::parse_serial("1f:0a:ff"), Some(vec![0x1f, 0x0a, 0xff]));
    assert_eq!(x509::parse_serial("1f-0a-ff"), Some(vec![0x1f, 0x0a, 0xff]));
    assert_eq!(x509::parse_serial("zz"), None);
    assert_eq!(x509::parse_serial("abc"), None);
    let s = x509::serial_string(&x509::new_serial());
    assert!(s.split(':').all(|p| p.len() == 2), "{s}");
    assert_ne!(x509::new_serial(), x509::new_serial());
}

#[test]
fn keys_sign_and_requests_verify() {
    for (kind, bits) in [
        (keys::KeyType::Ec, 256),
        (keys::KeyType::Ec, 384),
        (keys::KeyType::Ed25519, 0),
    ] {
        let k = keys::PrivateKey::generate(kind, bits).unwrap();
        let sans = x509::Sans {
            dns: vec!["a.example.com".into()],
            ..Default::default()
        };
        let csr = x509::build_csr("a.example.com", &sans, &k).unwrap();
        let parsed = x509::parse_csr(&csr).unwrap();
        assert_eq!(parsed.cn.as_deref(), Some("a.example.com"));
        assert_eq!(parsed.sans.dns, vec!["a.example.com".to_string()]);
        assert_eq!(keys::spki_kind(&parsed.spki).unwrap(), (kind, bits));
        let mut bad = csr.clone();
        let n = bad.len();
        bad[n - 3] ^= 1;
        assert!(x509::parse_csr(&bad).is_err());
        // PEM export reads back as the same key.
        let pem = k.to_pem().unwrap();
        let blocks = keys::parse_pem(&pem).unwrap();
        let (label, der) = &blocks[0];
        let again = keys::PrivateKey::from_pem_block(label, der).unwrap();
        assert_eq!(again.spki().unwrap(), k.spki().unwrap());
    }
    assert!(keys::validate_bits(keys::KeyType::Rsa, 1024).is_err());
    assert!(keys::validate_bits(keys::KeyType::Ec, 100).is_err());
    assert!(keys::KeyType::parse("foo").is_err());
    assert!(x509::parse_csr(b"\x30\x03\x02\x01\x00").is_err());
}

async fn call(
    b: &Pki,
    c: &airlock_logical::Ctx,
    op: Op,
    path: &str,
    body: Value,
) -> Result<Value, u16> {
    let mut r = request(op, &format!("pki/{path}"), body);
    b.handle(c, &mut r, path)
        .await
        .map(|r| r.data.unwrap_or(Value::Null))
        .map_err(|e| e.status)
}

#[tokio::test]
async fn issue_revoke_and_refusals_leave_nothing_half_written() {
    let b = Pki::new("test-pki");
    let sys = Arc::new(TestSystem::default());
    let c = ctx(sys, mount("pki/", "pki"));
    assert_eq!(
        call(
            &b,
            &c,
            Op::Update,
            "issue/web",
            json!({"common_name": "a.example.com"})
        )
        .await,
        Err(400)
    );
    let root = call(
        &b,
        &c,
        Op::Update,
        "root/generate/internal",
        json!({"common_name": "Root", "key_type": "ec"}),
    )
    .await
    .unwrap();
    assert!(root.get("private_key").is_none());
    call(&b, &c, Op::Update, "roles/web", json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "max_ttl": "72h"}))
        .await
        .unwrap();
    let before = c.storage.scan("").await.unwrap();
    for bad in [
        json!({"common_name": "a.other.com"}),
        json!({"common_name": "a.example.com", "alt_names": "x.other.com"}),
        json!({"common_name": "a.example.com", "ip_sans": "not-an-ip"}),
        json!({"common_name": "a.example.com", "ttl": "-5s"}),
        json!({}),
    ] {
        assert_eq!(
            call(&b, &c, Op::Update, "issue/web", bad.clone()).await,
            Err(400),
            "{bad}"
        );
    }
    assert_eq!(
        call(&b, &c, Op::Update, "sign/web", json!({"csr": "garbage"})).await,
        Err(400)
    );
    assert_eq!(
        call(&b, &c, Op::Update, "sign/web", json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQA=\n-----END CERTIFICATE REQUEST-----"})).await,
        Err(400)
    );
    assert_eq!(
        c.storage.scan("").await.unwrap(),
        before,
        "refusals wrote nothing"
    );
    let cert = call(
        &b,
        &c,
        Op::Update,
        "issue/web",
        json!({"common_name": "a.example.com", "ttl": "1000h"}),
    )
    .await
    .unwrap();
    let serial = cert["serial_number"].as_str().unwrap().to_string();
    assert_eq!(cert["private_key_type"], "ec");
    assert_eq!(cert["ca_chain"].as_array().unwrap().len(), 1);
    let rev = call(
        &b,
        &c,
        Op::Update,
        "revoke",
        json!({"serial_number": serial}),
    )
    .await
    .unwrap();
    assert_eq!(rev["state"], "revoked");
    let listed = call(&b, &c, Op::List, "certs/revoked/", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["keys"], json!([serial]));
    let read = call(&b, &c, Op::Read, &format!("cert/{serial}"), json!({}))
        .await
        .unwrap();
    assert!(read["revocation_time"].as_i64().unwrap() > 0);
    assert_eq!(
        call(
            &b,
            &c,
            Op::Update,
            "revoke",
            json!({"serial_number": "aa:bb"})
        )
        .await,
        Err(400)
    );
    assert_eq!(
        call(&b, &c, Op::Update, "roles/x", json!({"key_type": "foo"})).await,
        Err(400)
    );
}
