//! Crash durability: every acknowledged write survives `kill -9`, across 20 kills at random
//! moments on SQLite and on PostgreSQL, and the audit chain still verifies afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::util::*;

/// How many times each backend is killed.
const KILLS: u64 = 20;

/// A small deterministic generator for the kill moments (the seed is printed, so a failing
/// run can be replayed with `AIRLOCK_KILL_SEED`).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn seed() -> u64 {
    std::env::var("AIRLOCK_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Four concurrent writers, `KILLS` SIGKILLs at random moments while writes are in flight,
/// and after each restart every acknowledged write must read back; the audit chain must
/// verify at the end.
fn kill_9_loop(tag: &str, storage: &str) {
    let dir = tempdir(tag);
    let key = "11".repeat(32);
    std::fs::write(dir.join("unseal.key"), &key).unwrap();
    let audit = dir.join("audit.log");
    let cfg = dir.join("airlock.toml");
    let storage = storage.replace("{dir}", &dir.display().to_string());
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\n{storage}\n[seal]\nkey_file = \"{}\"\n[[audit]]\nname = \"file\"\npath = \"{}\"\n",
            dir.join("unseal.key").display(),
            audit.display()
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    let root = init.body["root_token"].as_str().unwrap().to_string();
    p.token = Some(root.clone());
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

    let seed = seed();
    println!("{tag}: kill moments from seed {seed} (AIRLOCK_KILL_SEED={seed} replays them)");
    let mut rng = Lcg(seed);
    let acked: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut next = 0u64;
    for round in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..4u64 {
            let addr = p.addr.clone();
            let root = root.clone();
            let acked = Arc::clone(&acked);
            let stop = Arc::clone(&stop);
            let base = next + w * 1_000_000;
            writers.push(std::thread::spawn(move || {
                let mut i = base;
                while !stop.load(Ordering::Relaxed) {
                    let body = serde_json::to_vec(&json!({"data": {"v": i}})).unwrap();
                    let r = std::panic::catch_unwind(|| {
                        http(
                            &addr,
                            "POST",
                            &format!("/v1/kv/data/k{i}"),
                            Some(&root),
                            Some(&body),
                            &[],
                        )
                        .status
                    });
                    match r {
                        Ok(200) => acked.lock().unwrap().push(i),
                        _ => break,
                    }
                    i += 1;
                }
            }));
        }
        // A random moment: 40–400 ms after this round's first acknowledged write (counted
        // from then, so a busy machine does not turn a short moment into no write at all).
        let first = std::time::Instant::now();
        while !acked.lock().unwrap().iter().any(|i| *i >= next)
            && first.elapsed() < Duration::from_secs(15)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(40 + rng.next(360)));
        // SIGKILL while writes are in flight.
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }
        next += 10_000_000;
        p = start_config(&cfg);
        p.token = Some(root.clone());
        assert_eq!(
            req(&p, "GET", "/v1/sys/seal-status", None).body["sealed"],
            false,
            "auto-unseal after restart"
        );
        // This round's acknowledged writes, right after the crash that followed them (all of
        // them again at the end).
        let list: Vec<u64> = acked
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|i| *i >= next - 10_000_000)
            .collect();
        assert!(!list.is_empty(), "round {round}: no write was acknowledged");
        for i in &list {
            let r = req(&p, "GET", &format!("/v1/kv/data/k{i}"), None);
            assert_eq!(
                r.status, 200,
                "{tag} round {round} (seed {seed}): acknowledged write k{i} lost"
            );
            assert_eq!(r.body["data"]["data"]["v"], json!(i));
        }
    }
    let all = acked.lock().unwrap().clone();
    for i in &all {
        let r = req(&p, "GET", &format!("/v1/kv/data/k{i}"), None);
        assert_eq!(
            r.status, 200,
            "{tag} (seed {seed}): acknowledged write k{i} lost"
        );
    }
    println!(
        "{tag}: {KILLS} kills, {} acknowledged writes, all read back",
        all.len()
    );
    drop(p);
    let out = std::process::Command::new(bin())
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit chain broken: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(&root), "root token in audit log");
}

#[test]
fn acknowledged_writes_survive_kill_9_loop_sqlite() {
    kill_9_loop("durable", "path = \"{dir}/data.db\"");
}

#[test]
fn acknowledged_writes_survive_kill_9_loop_postgresql() {
    let reachable = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    if !require("PostgreSQL on 127.0.0.1:5432", reachable) {
        return;
    }
    let table = format!("airlock_kill_{}", std::process::id());
    kill_9_loop(
        "durable-pg",
        &format!(
            "backend = \"postgresql\"\nconnection_url = \"host=127.0.0.1 user=postgres dbname=postgres\"\ntable = \"{table}\""
        ),
    );
    let _ = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ])
        .arg(format!("DROP TABLE IF EXISTS {table}"))
        .output();
}

#[test]
fn audit_verify_detects_tampering() {
    let dir = tempdir("audit");
    let audit = dir.join("audit.log");
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\nkey_env = \"AIRLOCK_TEST_UNSEAL\"\n[[audit]]\npath = \"{}\"\n",
            dir.join("data.db").display(),
            audit.display()
        ),
    )
    .unwrap();
    std::env::set_var("AIRLOCK_TEST_UNSEAL", "22".repeat(32));
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    req(
        &p,
        "POST",
        "/v1/sys/mounts/secret",
        Some(json!({"type": "kv-v2"})),
    );
    for i in 0..5 {
        let r = req(
            &p,
            "POST",
            &format!("/v1/secret/data/s{i}"),
            Some(json!({"data": {"password": "hunter2-secret"}})),
        );
        assert_eq!(r.status, 200);
    }
    drop(p);
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        !text.contains("hunter2-secret"),
        "secret value in audit log"
    );
    assert!(text.contains("hmac-sha256:"));
    let verify = |content: &str| {
        let f = dir.join("check.log");
        std::fs::write(&f, content).unwrap();
        std::process::Command::new(bin())
            .args(["audit", "verify"])
            .arg(&f)
            .output()
            .unwrap()
    };
    assert!(verify(&text).status.success());
    let lines: Vec<&str> = text.lines().collect();
    let join = |v: &[&str]| v.join("\n") + "\n";
    let mut deleted = lines.clone();
    deleted.remove(3);
    assert!(
        !verify(&join(&deleted)).status.success(),
        "deleted line not detected"
    );
    let mut edited = lines.clone();
    let e = edited[4].replacen("\"request\"", "\"requesx\"", 1);
    edited[4] = &e;
    assert!(
        !verify(&join(&edited)).status.success(),
        "edited line not detected"
    );
    let mut reordered = lines.clone();
    reordered.swap(5, 6);
    assert!(
        !verify(&join(&reordered)).status.success(),
        "reordered pair not detected"
    );
}

#[test]
fn audit_fails_closed_when_no_device_can_write() {
    if !require(
        "/dev/full (a device whose writes always fail)",
        std::path::Path::new("/dev/full").exists(),
    ) {
        return;
    }
    let dir = tempdir("auditfail");
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\nkey_env = \"AIRLOCK_TEST_UNSEAL_FAIL\"\n[[audit]]\npath = \"/dev/full\"\n",
            dir.join("data.db").display()
        ),
    )
    .unwrap();
    std::env::set_var("AIRLOCK_TEST_UNSEAL_FAIL", "33".repeat(32));
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    // Every audited request fails: nothing is done without an audit record.
    let r = req(
        &p,
        "POST",
        "/v1/sys/mounts/kv",
        Some(json!({"type": "kv-v2"})),
    );
    assert_eq!(r.status, 500, "{:?}", r.body);
    assert_eq!(r.body["errors"][0], "failed to audit request");
    let r = req(&p, "GET", "/v1/sys/mounts", None);
    assert_eq!(r.status, 500);
    assert!(
        r.body["data"].is_null(),
        "no data may leave without an audit record"
    );
    // The mount was not created (the request was refused before it ran).
    assert_eq!(
        req(&p, "GET", "/v1/sys/health", None).status,
        200,
        "server keeps serving"
    );
}

#[test]
fn sighup_reopens_the_audit_file_after_rotation() {
    let dir = tempdir("audit-rotate");
    std::fs::write(dir.join("unseal.key"), "55".repeat(32)).unwrap();
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
        req(&p, "GET", "/v1/auth/token/lookup-self", None).status,
        200
    );
    // logrotate: move the file, then `kill -HUP`.
    let rotated = dir.join("audit.log.1");
    std::fs::rename(&audit, &rotated).unwrap();
    send_signal(p.child.id(), "HUP");
    wait_until(
        "the audit file to be reopened",
        Duration::from_secs(10),
        || {
            req(&p, "GET", "/v1/sys/health", None);
            audit.exists()
        },
    );
    assert_eq!(
        req(&p, "GET", "/v1/auth/token/lookup-self", None).status,
        200
    );
    drop(p);
    let new = std::fs::read_to_string(&audit).unwrap();
    assert!(new.contains("auth/token/lookup-self"), "{new}");
    let verify = |f: &std::path::Path| {
        std::process::Command::new(bin())
            .args(["audit", "verify"])
            .arg(f)
            .output()
            .unwrap()
    };
    for f in [&rotated, &audit] {
        let out = verify(f);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The two files are one chain.
    let both = dir.join("both.log");
    std::fs::write(&both, std::fs::read_to_string(&rotated).unwrap() + &new).unwrap();
    assert!(verify(&both).status.success());
}
