//! TLS to PostgreSQL, for the storage backend and the database engine, against a private
//! TLS-enabled server whose CA the test makes: each `sslmode` does what libpq's does, and a
//! wrong CA or host name fails with an error that says so.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::wait_until;
use crate::pg_private::{PrivatePg, TestCa};
use crate::util::*;

/// Starts `airlock server` with `storage`; `Ok(proc)` once listening, `Err(stderr)` if it
/// exits first.
fn try_start(dir: &std::path::Path, name: &str, storage: &str) -> Result<Proc, String> {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("[listener]\naddress = \"127.0.0.1:0\"\n[storage]\n{storage}\n"),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["server", "--config"])
        .arg(&cfg)
        .args(["--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = line.strip_prefix("Listening on ") {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let t0 = Instant::now();
    loop {
        if let Ok(addr) = rx.try_recv() {
            return Ok(Proc {
                child,
                addr,
                token: None,
            });
        }
        if let Ok(Some(_)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return Err(err);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "server neither listened nor exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_sslmode_against_a_tls_postgresql() {
    let ca = TestCa::new(&["localhost"]);
    let other = TestCa::new(&["localhost"]);
    let Some(pg) = PrivatePg::start("pgtls", Some(&ca)) else {
        return;
    };
    pg.wait_ready();
    let dir = tempdir("pgtls-files");
    let ca_file = dir.join("ca.pem");
    let wrong_ca = dir.join("wrong-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    std::fs::write(&wrong_ca, &other.ca_pem).unwrap();
    let (cert, key) = (dir.join("client.pem"), dir.join("client.key"));
    std::fs::write(&cert, &ca.client_pem).unwrap();
    std::fs::write(&key, &ca.client_key_pem).unwrap();
    pg.psql("CREATE ROLE certuser LOGIN SUPERUSER");
    let port = pg.port;
    let url = |host: &str, q: &str| format!("postgresql://postgres@{host}:{port}/postgres?{q}");
    // (name, url, Ok(encrypted) | Err(part of the message))
    let cases: Vec<(&str, String, Result<bool, &str>)> = vec![
        ("disable", url("127.0.0.1", "sslmode=disable"), Ok(false)),
        ("default", url("127.0.0.1", "application_name=x"), Ok(true)),
        ("prefer", url("127.0.0.1", "sslmode=prefer"), Ok(true)),
        ("require", url("127.0.0.1", "sslmode=require"), Ok(true)),
        ("verify_ca", url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", ca_file.display())), Ok(true)),
        ("verify_full", url("localhost", &format!("sslmode=verify-full&sslrootcert={}", ca_file.display())), Ok(true)),
        (
            "kv_verify_full",
            format!("host=localhost port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{}'", ca_file.display()),
            Ok(true),
        ),
        (
            "client_cert",
            format!(
                "postgresql://certuser@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
                ca_file.display(), cert.display(), key.display()
            ),
            Ok(true),
        ),
        (
            "client_cert_missing",
            format!("postgresql://certuser@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}", ca_file.display()),
            Err("certificate"),
        ),
        ("wrong_host", url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca_file.display())), Err("certificate")),
        ("wrong_ca", url("localhost", &format!("sslmode=verify-ca&sslrootcert={}", wrong_ca.display())), Err("certificate")),
        ("wrong_ca_require", url("localhost", &format!("sslmode=require&sslrootcert={}", wrong_ca.display())), Err("certificate")),
        ("unsupported", url("localhost", "sslmode=require&sslcrl=/x"), Err("sslcrl is not supported")),
        ("allow", url("localhost", "sslmode=allow"), Err("sslmode \"allow\" is not supported")),
    ];
    for (name, conn, want) in cases {
        let storage = format!(
            "backend = \"postgresql\"\nconnection_url = \"{}\"\ntable = \"tls_{name}\"",
            conn.replace('\\', "\\\\").replace('"', "\\\"")
        );
        match (try_start(&dir, name, &storage), want) {
            (Ok(p), Ok(encrypted)) => {
                // The node's own session tells PostgreSQL's view of the connection.
                let mut ssl = String::new();
                wait_until(Duration::from_secs(10), || {
                    ssl = pg.psql("SELECT coalesce(bool_and(s.ssl)::text, '') FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'airlock-feed-%'");
                    !ssl.is_empty()
                });
                assert_eq!(ssl == "true", encrypted, "{name}: ssl={ssl}");
                let init = req(
                    &p,
                    "PUT",
                    "/v1/sys/init",
                    Some(json!({"secret_shares": 1, "secret_threshold": 1})),
                );
                assert_eq!(init.status, 200, "{name}: {:?}", init.body);
                drop(p);
                wait_until(Duration::from_secs(10), || {
                    pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'airlock-feed-%'") == "0"
                });
            }
            (Err(e), Err(part)) => {
                assert!(e.contains(part), "{name}: unclear error: {e}");
                println!("{name}: {}", e.lines().last().unwrap_or(""));
                assert!(!e.contains("panicked"), "{name}: {e}");
            }
            (Ok(_), Err(part)) => panic!("{name}: started, expected an error with {part:?}"),
            (Err(e), Ok(_)) => panic!("{name}: failed: {e}"),
        }
    }

    // The database engine, on the same server.
    let p = start_dev();
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    let config = |q: &str, host: &str| {
        req(
            &p,
            "POST",
            "/v1/database/config/tls",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/postgres?{q}"),
                "username": "postgres", "password": "trust-auth",
                "allowed_roles": ["tls"],
            })),
        )
    };
    let bad = config(
        &format!("sslmode=verify-ca&sslrootcert={}", wrong_ca.display()),
        "localhost",
    );
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert!(
        bad.body.to_string().contains("certificate"),
        "{:?}",
        bad.body
    );
    assert!(!bad.body.to_string().contains("trust-auth"));
    let bad = config(
        &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
        "127.0.0.1",
    );
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert!(
        bad.body.to_string().contains("certificate"),
        "{:?}",
        bad.body
    );
    let ok = config(
        &format!("sslmode=verify-full&sslrootcert={}", ca_file.display()),
        "localhost",
    );
    assert_eq!(ok.status, 204, "{:?}", ok.body);
    let role = req(
        &p,
        "POST",
        "/v1/database/roles/tls",
        Some(json!({
            "db_name": "tls",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],
            "default_ttl": "1h",
        })),
    );
    assert_eq!(role.status, 204, "{:?}", role.body);
    let creds = req(&p, "GET", "/v1/database/creds/tls", None);
    assert_eq!(creds.status, 200, "{:?}", creds.body);
    let user = creds.body["data"]["username"].as_str().unwrap();
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{user}'"
        )),
        "1"
    );
}
