//! Backup, restore and migration through the CLI, as an operator runs them: a backup taken
//! under write load restores into a new server to exactly what was acknowledged when it was
//! taken; damaged backups change nothing; migration SQLite → PostgreSQL → SQLite gives back
//! the same rows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;

use crate::cluster::psql;
use crate::util::*;

fn server(dir: &std::path::Path, name: &str, storage: &str) -> Proc {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\n{storage}\n[seal]\nkey_file = \"{}\"\n",
            dir.join("unseal.key").display()
        ),
    )
    .unwrap();
    start_config(&cfg)
}

#[test]
fn backup_under_load_restores_what_was_acknowledged() {
    let dir = tempdir("backup");
    std::fs::write(dir.join("unseal.key"), "3c".repeat(32)).unwrap();
    let mut a = server(
        &dir,
        "a",
        &format!("path = \"{}\"", dir.join("a.db").display()),
    );
    let init = req(&a, "PUT", "/v1/sys/init", Some(json!({})));
    let root = init.body["root_token"].as_str().unwrap().to_string();
    a.token = Some(root.clone());
    assert_eq!(
        req(
            &a,
            "POST",
            "/v1/sys/mounts/kv",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    // Writers: each write makes a new key; record when each was issued and acknowledged.
    let stop = AtomicBool::new(false);
    let log: Mutex<Vec<(String, Instant, Instant)>> = Mutex::new(Vec::new());
    let file = dir.join("store.backup");
    let (started, ended) = std::thread::scope(|s| {
        for w in 0..4 {
            let (a, stop, log) = (&a, &stop, &log);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("w{w}-{i}");
                    let t0 = Instant::now();
                    let r = req(
                        a,
                        "POST",
                        &format!("/v1/kv/data/{key}"),
                        Some(json!({"data": {"i": i}})),
                    );
                    if r.status == 200 {
                        log.lock().unwrap().push((key, t0, Instant::now()));
                    }
                    i += 1;
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(700));
        let started = Instant::now();
        let (code, out, err) = cli(&a, &["operator", "backup", file.to_str().unwrap()], None);
        let ended = Instant::now();
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("Success! Backup of"), "{out}");
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        (started, ended)
    });
    let log = log.into_inner().unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes.windows(4).any(|w| w == b"\"i\":"),
        "a value in the clear in the backup"
    );

    // Into a new, uninitialised server: no token needed, it unseals with its key file.
    let mut b = server(
        &dir,
        "b",
        &format!("path = \"{}\"", dir.join("b.db").display()),
    );
    // Damaged backups first: refused, nothing written.
    for (name, damaged) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("corrupted", {
            let mut d = bytes.clone();
            let n = d.len() - 10;
            d[n] ^= 0x40;
            d
        }),
    ] {
        let f = dir.join(format!("{name}.backup"));
        std::fs::write(&f, damaged).unwrap();
        let (code, out, err) = cli(&b, &["operator", "restore", f.to_str().unwrap()], None);
        assert_ne!(code, 0, "{name} backup accepted: {out}");
        assert!(err.contains("not a valid Airlock backup"), "{name}: {err}");
        assert_eq!(
            req(&b, "GET", "/v1/sys/init", None).body["initialized"],
            false,
            "{name}"
        );
    }
    let (code, out, err) = cli(&b, &["operator", "restore", file.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
    b.token = Some(root.clone());
    crate::cluster::wait_until(std::time::Duration::from_secs(5), || {
        req(&b, "GET", "/v1/sys/health", None).status == 200
    });
    let (mut before, mut after, mut present) = (0, 0, 0);
    for (key, issued, acked) in &log {
        let r = req(&b, "GET", &format!("/v1/kv/data/{key}"), None);
        if *acked < started {
            before += 1;
            assert_eq!(
                r.status, 200,
                "{key} was acknowledged before the backup began but is missing"
            );
        }
        if *issued > ended {
            after += 1;
            assert_eq!(
                r.status, 404,
                "{key} was written after the backup ended but is in it"
            );
        }
        if r.status == 200 {
            present += 1;
        }
    }
    println!("{} writes: {before} acknowledged before the backup, {after} issued after, {present} restored", log.len());
    assert!(
        before > 50 && after > 10,
        "the load did not straddle the backup"
    );
    // Same cluster: same identity.
    assert_eq!(
        req(&b, "GET", "/v1/sys/health", None).body["cluster_id"],
        req(&a, "GET", "/v1/sys/health", None).body["cluster_id"]
    );
    // Over an existing store: refused without -force, replaces it with.
    assert_eq!(
        req(
            &b,
            "POST",
            "/v1/kv/data/only-on-b",
            Some(json!({"data": {"x": 1}}))
        )
        .status,
        200
    );
    let (code, _, err) = cli(&b, &["operator", "restore", file.to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(err.contains("-force"), "{err}");
    let (code, out, err) = cli(
        &b,
        &["operator", "restore", "-force", file.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    crate::cluster::wait_until(std::time::Duration::from_secs(5), || {
        req(&b, "GET", "/v1/sys/health", None).status == 200
    });
    assert_eq!(req(&b, "GET", "/v1/kv/data/only-on-b", None).status, 404);
    // Backups need sudo.
    let t = req(
        &a,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    let weak = t.body["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        with_token(&a, weak, "GET", "/v1/sys/storage/backup", None).status,
        403
    );
}

#[test]
fn migrate_sqlite_to_postgresql_and_back_is_byte_identical() {
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    if !require("PostgreSQL on 127.0.0.1:5432", reachable) {
        return;
    }
    let dir = tempdir("migrate");
    std::fs::write(dir.join("unseal.key"), "4d".repeat(32)).unwrap();
    let src = dir.join("src.db");
    let mut a = server(&dir, "a", &format!("path = \"{}\"", src.display()));
    let init = req(&a, "PUT", "/v1/sys/init", Some(json!({})));
    let root = init.body["root_token"].as_str().unwrap().to_string();
    a.token = Some(root.clone());
    assert_eq!(
        req(
            &a,
            "POST",
            "/v1/sys/mounts/kv",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    for i in 0..300 {
        let r = req(
            &a,
            "POST",
            &format!("/v1/kv/data/app/{i}"),
            Some(json!({"data": {"n": i, "s": "é ✓"}})),
        );
        assert_eq!(r.status, 200);
    }
    // A running server holds its SQLite file: migration is offline.
    let table = format!("airlock_migrate_{}", std::process::id());
    let pg = "postgresql:host=127.0.0.1 user=postgres dbname=postgres";
    let to_pg = |p: &Proc| {
        cli(
            p,
            &[
                "operator",
                "migrate",
                "--from",
                &format!("sqlite:{}", src.display()),
                "--to",
                pg,
                "--to-table",
                &table,
            ],
            None,
        )
    };
    let (code, _, err) = to_pg(&a);
    assert_ne!(code, 0);
    assert!(err.contains("in use by another Airlock process"), "{err}");
    drop(a);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let sum = |out: &str| {
        out.split("sha256 ")
            .nth(1)
            .map(|s| s.trim_end_matches([')', '.', '\n']).to_string())
    };
    let p = Proc {
        child: std::process::Command::new("true").spawn().unwrap(),
        addr: String::new(),
        token: None,
    };
    let (code, out1, err) = to_pg(&p);
    assert_eq!(code, 0, "{out1}{err}");
    let back = dir.join("back.db");
    let (code, out2, err) = cli(
        &p,
        &[
            "operator",
            "migrate",
            "--from",
            pg,
            "--from-table",
            &table,
            "--to",
            &format!("sqlite:{}", back.display()),
        ],
        None,
    );
    assert_eq!(code, 0, "{out2}{err}");
    assert!(
        sum(&out1).is_some() && sum(&out1) == sum(&out2),
        "{out1} / {out2}"
    );
    // Into a store that is not empty: refused.
    let (code, _, err) = to_pg(&p);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
    // The copy serves: same data, same root token.
    let mut c = server(&dir, "c", &format!("path = \"{}\"", back.display()));
    c.token = Some(root);
    crate::cluster::wait_until(std::time::Duration::from_secs(5), || {
        req(&c, "GET", "/v1/sys/health", None).status == 200
    });
    let r = req(&c, "GET", "/v1/kv/data/app/299", None);
    assert_eq!(r.body["data"]["data"]["s"], "é ✓");
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_nodes"
    ));
}
