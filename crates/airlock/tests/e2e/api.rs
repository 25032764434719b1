//! HTTP-level behaviour: envelopes, policies, tokens, seal/unseal, bad input.

use serde_json::json;

use crate::util::*;

#[test]
fn kv_v2_roundtrip_and_envelope() {
    let p = start_dev();
    let w = req(
        &p,
        "POST",
        "/v1/secret/data/app/config",
        Some(json!({"data": {"user": "admin", "n": 3}})),
    );
    assert_eq!(w.status, 200, "{:?}", w.body);
    assert_eq!(w.body["data"]["version"], 1);
    assert!(w.headers.to_lowercase().contains("cache-control: no-store"));
    let r = req(&p, "GET", "/v1/secret/data/app/config", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["data"], json!({"user": "admin", "n": 3}));
    for k in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(r.body.get(k).is_some(), "envelope misses {k}");
    }
    // LIST both ways.
    let l1 = req(&p, "LIST", "/v1/secret/metadata/app", None);
    let l2 = req(&p, "GET", "/v1/secret/metadata/app/?list=true", None);
    assert_eq!(l1.body["data"]["keys"], json!(["config"]));
    assert_eq!(l1.body["data"], l2.body["data"]);
    // Soft delete → 404 with envelope and metadata.
    assert_eq!(
        req(&p, "DELETE", "/v1/secret/data/app/config", None).status,
        204
    );
    let d = req(&p, "GET", "/v1/secret/data/app/config", None);
    assert_eq!(d.status, 404);
    assert!(d.body["data"]["data"].is_null());
    assert!(
        d.body["data"]["metadata"]["deletion_time"]
            .as_str()
            .unwrap()
            .len()
            > 10
    );
    // CAS.
    let c = req(
        &p,
        "POST",
        "/v1/secret/data/app/config",
        Some(json!({"data": {"a": "b"}, "options": {"cas": 0}})),
    );
    assert_eq!(c.status, 400);
    assert_eq!(
        c.body["errors"][0],
        "check-and-set parameter did not match the current version"
    );
    // Missing key.
    let m = req(&p, "GET", "/v1/secret/data/nope", None);
    assert_eq!((m.status, m.body.clone()), (404, json!({"errors": []})));
}

#[test]
fn policies_and_tokens_enforce_access() {
    let p = start_dev();
    let pol = r#"
path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
path "secret/data/app/admin" { capabilities = ["deny"] }
path "auth/token/create" { capabilities = ["update"] }
"#;
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/policies/acl/app",
            Some(json!({"policy": pol}))
        )
        .status,
        204
    );
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["app"], "ttl": "1h"})),
    );
    assert_eq!(t.status, 200, "{:?}", t.body);
    let tok = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(tok.starts_with("alt_"));
    assert_eq!(t.body["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(
        with_token(
            &p,
            &tok,
            "POST",
            "/v1/secret/data/app/x",
            Some(json!({"data": {"k": "v"}}))
        )
        .status,
        200
    );
    assert_eq!(
        with_token(&p, &tok, "GET", "/v1/secret/data/app/x", None).status,
        200
    );
    let denied = with_token(&p, &tok, "GET", "/v1/secret/data/app/admin", None);
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.body["errors"][0],
        "1 error occurred:\n\t* permission denied\n\n"
    );
    assert_eq!(
        with_token(&p, &tok, "GET", "/v1/sys/mounts", None).status,
        403
    );
    // The CLIs' mount probe: allowed for a mount the token can use, 403 for others.
    req(
        &p,
        "POST",
        "/v1/sys/mounts/hidden",
        Some(json!({"type": "kv"})),
    );
    let ui = with_token(
        &p,
        &tok,
        "GET",
        "/v1/sys/internal/ui/mounts/secret/app/x",
        None,
    );
    assert_eq!(ui.body["data"]["path"], "secret/", "{:?}", ui.body);
    assert_eq!(
        with_token(&p, &tok, "GET", "/v1/sys/internal/ui/mounts/hidden/x", None).status,
        403
    );
    let bad = with_token(&p, "alt_bogus", "GET", "/v1/auth/token/lookup-self", None);
    assert_eq!(
        (bad.status, bad.body["errors"][0].clone()),
        (403, json!("permission denied"))
    );
    // Child tokens die with their parent.
    let child = with_token(
        &p,
        &tok,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["app"]})),
    );
    assert_eq!(child.status, 200, "{:?}", child.body);
    let ctok = child.body["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/auth/token/revoke",
            Some(json!({"token": tok}))
        )
        .status,
        204
    );
    assert_eq!(
        with_token(&p, &ctok, "GET", "/v1/auth/token/lookup-self", None).status,
        403
    );
    // num_uses.
    let u = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["app"], "num_uses": 2})),
    );
    let utok = u.body["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        with_token(&p, &utok, "GET", "/v1/auth/token/lookup-self", None).body["data"]["num_uses"],
        1
    );
    assert_eq!(
        with_token(&p, &utok, "GET", "/v1/auth/token/lookup-self", None).body["data"]["num_uses"],
        -1
    );
    assert_eq!(
        with_token(&p, &utok, "GET", "/v1/auth/token/lookup-self", None).status,
        403
    );
    // Capabilities.
    let caps = req(
        &p,
        "POST",
        "/v1/sys/capabilities",
        Some(json!({"token": ctok, "paths": ["secret/data/app/x"]})),
    );
    assert_eq!(
        caps.status, 400,
        "revoked token has no capabilities: {:?}",
        caps.body
    );
}

#[test]
fn bad_input_gets_clear_errors_and_server_keeps_serving() {
    let p = start_dev();
    let r = http(
        &p.addr,
        "POST",
        "/v1/secret/data/x",
        Some("root"),
        Some(b"{not json"),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(r.body["errors"][0]
        .as_str()
        .unwrap()
        .starts_with("failed to decode JSON input"));
    let r = http(
        &p.addr,
        "POST",
        "/v1/secret/data/x",
        Some("root"),
        Some(b"[1,2]"),
        &[],
    );
    assert_eq!(r.status, 400);
    let r = http(
        &p.addr,
        "POST",
        "/v1/secret/data/x",
        Some("root"),
        Some(&[0xff, 0xfe, b'{']),
        &[],
    );
    assert_eq!(r.status, 400);
    let r = req(
        &p,
        "POST",
        "/v1/secret/data/x",
        Some(json!({"data": "str"})),
    );
    assert_eq!(r.status, 400);
    let big = vec![b'a'; 33 * 1024 * 1024];
    let r = http(
        &p.addr,
        "POST",
        "/v1/secret/data/x",
        Some("root"),
        Some(&big),
        &[],
    );
    assert_eq!(r.status, 413);
    let r = http(
        &p.addr,
        "GET",
        "/v1/secret/data/../../sys/mounts",
        Some("root"),
        None,
        &[],
    );
    assert_eq!(r.status, 400);
    let r = http(
        &p.addr,
        "GET",
        "/v1/secret/data/%2e%2e/x",
        Some("root"),
        None,
        &[],
    );
    assert_eq!(r.status, 400);
    let r = http(
        &p.addr,
        "GET",
        "/v1/secret/data/%ff%fe",
        Some("root"),
        None,
        &[],
    );
    assert_eq!(r.status, 400);
    let long = format!("/v1/secret/data/{}", "a/".repeat(5000));
    let r = http(&p.addr, "GET", &long, Some("root"), None, &[]);
    assert!(r.status == 414 || r.status == 400, "{}", r.status);
    let r = req(&p, "GET", "/v1/nosuchmount/data/x", None);
    assert_eq!(
        r.body["errors"][0],
        "no handler for route \"nosuchmount/data/x\". route entry not found."
    );
    // Thousands of keys in one secret.
    let mut m = serde_json::Map::new();
    for i in 0..5000 {
        m.insert(format!("k{i}"), json!(i));
    }
    let r = req(&p, "POST", "/v1/secret/data/many", Some(json!({"data": m})));
    assert_eq!(r.status, 200);
    assert_eq!(
        req(&p, "GET", "/v1/secret/data/many", None).body["data"]["data"]
            .as_object()
            .unwrap()
            .len(),
        5000
    );
    // PATCH with the wrong content type (415) or none (400, as OpenBao).
    let body = br#"{"data": {"k1": 2}}"#;
    let r = http(
        &p.addr,
        "PATCH",
        "/v1/secret/data/many",
        Some("root"),
        Some(body),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(r.status, 415);
    let r = http(
        &p.addr,
        "PATCH",
        "/v1/secret/data/many",
        Some("root"),
        Some(body),
        &[],
    );
    assert_eq!(
        (r.status, r.body["errors"][0].clone()),
        (400, json!("mime: no media type"))
    );
    // Still serving.
    assert_eq!(req(&p, "GET", "/v1/sys/health", None).status, 200);
}

#[test]
fn init_unseal_seal_and_restart() {
    let dir = tempdir("seal");
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n",
            dir.join("data.db").display()
        ),
    )
    .unwrap();
    let p = start_config(&cfg);
    let h = req(&p, "GET", "/v1/sys/health", None);
    assert_eq!(h.status, 501);
    assert_eq!(
        req(&p, "GET", "/v1/sys/init", None).body,
        json!({"initialized": false})
    );
    let init = req(
        &p,
        "PUT",
        "/v1/sys/init",
        Some(json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(init.status, 200, "{:?}", init.body);
    let keys: Vec<String> = init.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let b64: Vec<String> = init.body["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init.body["root_token"].as_str().unwrap().to_string();
    assert_eq!(keys.len(), 3);
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1}))
        )
        .body["errors"][0],
        "Vault is already initialized"
    );
    let mut p = p;
    p.token = Some(root.clone());
    assert_eq!(
        req(&p, "GET", "/v1/sys/seal-status", None).body["sealed"],
        true,
        "sealed after init"
    );
    req(&p, "PUT", "/v1/sys/unseal", Some(json!({"key": keys[0]})));
    assert_eq!(
        req(&p, "PUT", "/v1/sys/unseal", Some(json!({"key": keys[1]}))).body["sealed"],
        false
    );
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/kv",
            Some(json!({"type": "kv", "options": {"version": "2"}}))
        )
        .status,
        204
    );
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/kv/data/a",
            Some(json!({"data": {"x": "1"}}))
        )
        .status,
        200
    );
    assert_eq!(req(&p, "POST", "/v1/sys/rotate", None).status, 204);
    assert_eq!(
        req(&p, "GET", "/v1/sys/key-status", None).body["data"]["term"],
        2
    );
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/kv/data/b",
            Some(json!({"data": {"y": "2"}}))
        )
        .status,
        200
    );
    assert_eq!(req(&p, "PUT", "/v1/sys/seal", None).status, 204);
    let s = req(&p, "GET", "/v1/kv/data/a", None);
    assert_eq!(
        (s.status, s.body.clone()),
        (503, json!({"errors": ["Vault is sealed"]}))
    );
    assert_eq!(req(&p, "GET", "/v1/sys/health", None).status, 503);
    // Wrong key, reset, then two good shares (hex and base64).
    let bad = req(
        &p,
        "PUT",
        "/v1/sys/unseal",
        Some(json!({"key": "00".repeat(33)})),
    );
    assert_eq!(
        bad.status, 200,
        "a wrong share only fails once the threshold is reached: {:?}",
        bad.body
    );
    assert_eq!(
        req(&p, "PUT", "/v1/sys/unseal", Some(json!({"reset": true}))).body["progress"],
        0
    );
    let u1 = req(&p, "PUT", "/v1/sys/unseal", Some(json!({"key": keys[0]})));
    assert_eq!(
        (u1.body["sealed"].clone(), u1.body["progress"].clone()),
        (json!(true), json!(1))
    );
    let u2 = req(&p, "PUT", "/v1/sys/unseal", Some(json!({"key": b64[2]})));
    assert_eq!(u2.body["sealed"], json!(false), "{:?}", u2.body);
    assert_eq!(
        req(&p, "GET", "/v1/kv/data/a", None).body["data"]["data"]["x"],
        "1"
    );
    let health = req(&p, "GET", "/v1/sys/health", None).body;
    let cluster_id = health["cluster_id"].as_str().unwrap().to_string();
    let cluster_name = health["cluster_name"].as_str().unwrap().to_string();
    assert_eq!(
        cluster_name,
        format!("airlock-cluster-{}", &cluster_id[..8])
    );
    assert_eq!(
        req(&p, "GET", "/v1/sys/seal-status", None).body["cluster_id"],
        cluster_id.as_str()
    );
    // Restart: sealed, data survives unseal.
    drop(p);
    let mut p = start_config(&cfg);
    p.token = Some(root);
    let sealed = req(&p, "GET", "/v1/sys/seal-status", None).body;
    assert_eq!(sealed["sealed"], true);
    // As in OpenBao, a sealed server does not tell its cluster identity.
    assert!(sealed.get("cluster_id").is_none(), "{sealed}");
    assert!(req(&p, "GET", "/v1/sys/health", None)
        .body
        .get("cluster_id")
        .is_none());
    req(&p, "PUT", "/v1/sys/unseal", Some(json!({"key": keys[1]})));
    req(&p, "PUT", "/v1/sys/unseal", Some(json!({"key": keys[2]})));
    assert_eq!(
        req(&p, "GET", "/v1/kv/data/b", None).body["data"]["data"]["y"],
        "2"
    );
    // The identity is generated once and kept across restarts.
    let health = req(&p, "GET", "/v1/sys/health", None).body;
    assert_eq!(
        (
            health["cluster_id"].as_str(),
            health["cluster_name"].as_str()
        ),
        (Some(cluster_id.as_str()), Some(cluster_name.as_str()))
    );
    // No secret value in the database file.
    let db = std::fs::read(dir.join("data.db")).unwrap_or_default();
    let wal = std::fs::read(dir.join("data.db-wal")).unwrap_or_default();
    for hay in [db, wal] {
        assert!(
            !hay.windows(7).any(|w| w == b"\"x\":\"1\""),
            "plaintext found in storage"
        );
    }
}

#[test]
fn metrics_and_leader() {
    let p = start_dev();
    req(&p, "GET", "/v1/sys/health", None);
    let m = req(&p, "GET", "/v1/sys/metrics?format=prometheus", None);
    assert_eq!(m.status, 200);
    let text = String::from_utf8_lossy(&m.raw);
    assert!(text.contains("airlock_requests_total"), "{text}");
    assert_eq!(
        req(&p, "GET", "/v1/sys/leader", None).body["ha_enabled"],
        false
    );
    assert_eq!(
        http(&p.addr, "GET", "/v1/sys/metrics", None, None, &[]).status,
        403
    );
}

#[test]
fn expired_tokens_are_rejected_and_purged() {
    let p = start_dev();
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["default"], "ttl": "1s"})),
    );
    let tok = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let acc = t.body["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(
        with_token(&p, &tok, "GET", "/v1/auth/token/lookup-self", None).status,
        200
    );
    wait_until("token expiry", std::time::Duration::from_secs(10), || {
        with_token(&p, &tok, "GET", "/v1/auth/token/lookup-self", None).status == 403
    });
    // The background purge removes it from the accessor list too.
    wait_until("token purge", std::time::Duration::from_secs(15), || {
        let l = req(&p, "LIST", "/v1/auth/token/accessors", None);
        !l.body["data"]["keys"]
            .as_array()
            .map(|k| k.iter().any(|x| x == &json!(acc)))
            .unwrap_or(false)
    });
}

#[test]
fn tls_listener_and_graceful_shutdown() {
    let dir = tempdir("tls");
    // A CA and a leaf certificate signed by it (a self-signed CA cannot be the server cert).
    if !openssl_certs(&dir) {
        return;
    }
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n[storage]\npath = \"{}\"\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
            dir.join("data.db").display()
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    assert!(p.addr.starts_with("https://"), "{}", p.addr);
    let out = std::process::Command::new(bin())
        .args(["status", "--format", "json"])
        .env("AIRLOCK_ADDR", &p.addr)
        .env("AIRLOCK_CACERT", dir.join("ca.pem"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        v["initialized"],
        json!(false),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the CA the handshake fails with a clear error.
    let out = std::process::Command::new(bin())
        .args(["status"])
        .env("AIRLOCK_ADDR", &p.addr)
        .env_remove("AIRLOCK_CACERT")
        .env_remove("VAULT_CACERT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Garbage instead of a TLS handshake does not hurt the server.
    let hostport = p.addr.trim_start_matches("https://").to_string();
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&hostport).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n\x16\x03\x01garbage");
    }
    // HTTP/2 when the client offers it (ALPN), HTTP/1.1 otherwise.
    for (flag, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version}",
                flag,
                "--cacert",
            ])
            .arg(dir.join("ca.pem"))
            .arg(format!("{}/v1/sys/health", p.addr))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // SIGTERM: graceful exit with status 0.
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(p.child.id().to_string())
        .status()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st:?}");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "server did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn secrets_never_reach_logs_or_errors() {
    use std::io::BufRead;
    let dir = tempdir("logs");
    let log = dir.join("server.log");
    let mut child = std::process::Command::new(bin())
        .args([
            "server",
            "--dev",
            "--dev-listen-address",
            "127.0.0.1:0",
            "--dev-root-token-id",
            "root-token-under-test",
            "--log-level",
            "trace",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut addr = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("Listening on ") {
            addr = a.to_string();
            break;
        }
    }
    let secret = "sup3r-s3cret-value-xyz";
    let tok = Some("root-token-under-test");
    let body = serde_json::to_vec(&json!({"data": {"password": secret}})).unwrap();
    assert_eq!(
        http(&addr, "POST", "/v1/secret/data/s", tok, Some(&body), &[]).status,
        200
    );
    assert_eq!(
        http(&addr, "GET", "/v1/secret/data/s", tok, None, &[]).status,
        200
    );
    // Errors about bad input do not echo it.
    let bad = serde_json::to_vec(&json!({"policies": ["default"], "num_uses": secret})).unwrap();
    let r = http(&addr, "POST", "/v1/auth/token/create", tok, Some(&bad), &[]);
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.raw).contains(secret));
    let broken = format!("{{\"data\": {{\"password\": \"{secret}\"");
    let r = http(
        &addr,
        "POST",
        "/v1/secret/data/s",
        tok,
        Some(broken.as_bytes()),
        &[],
    );
    assert_eq!(r.status, 400);
    assert!(!String::from_utf8_lossy(&r.raw).contains(secret));
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(secret), "secret value in server log");
    assert!(
        !text.contains("root-token-under-test"),
        "root token in server log"
    );
}

#[test]
fn postgresql_storage_survives_restart() {
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    if !require("PostgreSQL on 127.0.0.1:5432", reachable) {
        return;
    }
    let dir = tempdir("pg");
    let table = format!("airlock_e2e_{}", std::process::id());
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\nbackend = \"postgresql\"\nconnection_url = \"host=127.0.0.1 user=postgres dbname=postgres\"\ntable = \"{table}\"\n[seal]\nkey_env = \"AIRLOCK_TEST_UNSEAL_PG\"\n"
        ),
    )
    .unwrap();
    std::env::set_var("AIRLOCK_TEST_UNSEAL_PG", "44".repeat(32));
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    let root = init.body["root_token"].as_str().unwrap().to_string();
    p.token = Some(root.clone());
    assert_eq!(
        req(&p, "GET", "/v1/sys/seal-status", None).body["storage_type"],
        "postgresql"
    );
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/kv",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    let w = req(
        &p,
        "POST",
        "/v1/kv/data/db",
        Some(json!({"data": {"pw": "pg-secret-value"}})),
    );
    assert_eq!(w.status, 200, "{:?}", w.body);
    drop(p);
    let mut p = start_config(&cfg);
    p.token = Some(root);
    let r = req(&p, "GET", "/v1/kv/data/db", None);
    assert_eq!(r.body["data"]["data"]["pw"], "pg-secret-value");
    drop(p);
    let out = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-Atc"])
        .arg(format!(
            "SELECT encode(v, 'escape') FROM {table}; DROP TABLE {table};"
        ))
        .output();
    if let Ok(out) = out {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("pg-secret-value"),
            "plaintext in PostgreSQL"
        );
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body from a keep-alive stream.
fn read_response(s: &mut std::net::TcpStream) -> Option<(u16, String)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        buf.push(b[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((status, head))
}

#[test]
fn error_answers_keep_the_connection_usable() {
    use std::io::Write;
    let p = start_dev();
    let hostport = p.addr.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&hostport).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // Errors that do not depend on the body (wrong content type, no route, no token) with the
    // body arriving a moment after the headers, as it does from a busy client: the answer
    // must not leave unread bytes behind, so the connection stays usable.
    let body = br#"{"data":{"x":"1"}}"#;
    let reqs = [
        format!("PATCH /v1/secret/data/x HTTP/1.1\r\nHost: {hostport}\r\nX-Vault-Token: root\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()),
        format!("POST /v1/nosuchmount/x HTTP/1.1\r\nHost: {hostport}\r\nX-Vault-Token: root\r\nContent-Length: {}\r\n\r\n", body.len()),
        format!("POST /v1/secret/data/x HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: {}\r\n\r\n", body.len()),
    ];
    for r in &reqs {
        s.write_all(r.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.write_all(body).unwrap();
        let (status, head) = read_response(&mut s).expect("an answer");
        assert!(status >= 400, "{status}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "the server closes after {status}"
        );
        s.write_all(format!("GET /v1/sys/health HTTP/1.1\r\nHost: {hostport}\r\n\r\n").as_bytes())
            .unwrap();
        let (status, _) = read_response(&mut s).expect("the connection still answers");
        assert_eq!(status, 200);
    }
}

/// Regression: `activecode=100` answered 500 and `101` dropped the connection.
#[test]
fn health_status_codes_outside_200_599_are_refused() {
    let p = start_dev();
    for q in [
        "activecode=100",
        "activecode=101",
        "sealedcode=199",
        "activecode=600",
    ] {
        let r = req(&p, "GET", &format!("/v1/sys/health?{q}"), None);
        assert_eq!(r.status, 400, "{q}");
    }
    assert_eq!(
        req(&p, "GET", "/v1/sys/health?activecode=599", None).status,
        599
    );
    // The server keeps serving on the same terms.
    assert_eq!(req(&p, "GET", "/v1/sys/health", None).status, 200);
}

#[test]
fn audit_entries_and_errors_never_hold_field_values_in_clear() {
    let dir = tempdir("audit-clear");
    std::fs::write(dir.join("unseal.key"), "33".repeat(32)).unwrap();
    let audit = dir.join("audit.log");
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\nkey_file = \"{}\"\n[[audit]]\nname = \"file\"\npath = \"{}\"\n",
            dir.join("data.db").display(),
            dir.join("unseal.key").display(),
            audit.display()
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/secret",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    // A numeric secret, written and read back.
    let w = req(
        &p,
        "POST",
        "/v1/secret/data/pin",
        Some(json!({"data": {"PIN": 834764846903110u64, "ratio": 0.918273}})),
    );
    assert_eq!(w.status, 200);
    let r = req(&p, "GET", "/v1/secret/data/pin", None);
    assert_eq!(r.body["data"]["data"]["PIN"], 834764846903110u64);
    // Field errors that would quote the value: none does, in the response or the audit log.
    let secret = "Zq9-not-a-duration-Kx7";
    let errors = [
        req(
            &p,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"ttl": secret})),
        ),
        req(
            &p,
            "POST",
            "/v1/sys/mounts/x",
            Some(json!({"type": secret})),
        ),
        req(
            &p,
            "POST",
            "/v1/sys/mounts/y",
            Some(json!({"type": "kv", "config": {"default_lease_ttl": secret}})),
        ),
        req(
            &p,
            "PUT",
            "/v1/sys/policies/acl/p",
            Some(json!({"policy": format!("path \"a\" {{ capabilities = [\"{secret}\"] }}")})),
        ),
        http(
            &p.addr,
            "GET",
            "/v1/secret/data/pin",
            p.token.as_deref(),
            None,
            &[("X-Vault-Wrap-TTL", secret)],
        ),
    ];
    for e in &errors {
        assert_eq!(e.status, 400, "{:?}", e.body);
        assert!(!e.body.to_string().contains(secret), "{}", e.body);
    }
    let a = req(
        &p,
        "POST",
        "/v1/sys/auth/ar",
        Some(json!({"type": "approle"})),
    );
    assert_eq!(a.status, 204);
    let bad_cidr = req(
        &p,
        "POST",
        "/v1/auth/ar/role/r",
        Some(json!({"secret_id_bound_cidrs": [secret]})),
    );
    assert_eq!(bad_cidr.status, 400);
    assert!(!bad_cidr.body.to_string().contains(secret));
    drop(p);
    let text = std::fs::read_to_string(&audit).unwrap();
    for clear in ["834764846903110", "0.918273", secret] {
        assert!(!text.contains(clear), "{clear} in the audit log");
    }
    assert!(text.contains("hmac-sha256:"));
}
