//! A cluster under faults: leases expiring through three nodes are revoked exactly once;
//! the leader killed under write load loses no acknowledged write and another node takes
//! the duties over within 5 s; a node whose change feed is cut serves nothing stale.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::{psql, wait_until, Cluster};
use crate::util::*;

/// One request that reports a refused or broken connection instead of panicking.
pub fn try_req(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let hostport = addr.trim_start_matches("http://");
    let mut s =
        std::net::TcpStream::connect_timeout(&hostport.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let b = body.map(|v| v.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nX-Vault-Token: {token}\r\nContent-Length: {}\r\n\r\n",
        b.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(b.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let headers = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = headers.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        serde_json::from_slice(&buf[split + 4..]).unwrap_or(Value::Null),
    ))
}

fn leader_index(c: &Cluster) -> Option<usize> {
    c.nodes.iter().position(|p| {
        try_req(&p.addr, &c.root, "GET", "/v1/sys/leader", None)
            .is_some_and(|(_, b)| b["is_self"] == json!(true))
    })
}

fn database_mount(c: &Cluster, log_table: &str, ttl: &str) {
    let p = &c.nodes[0];
    assert_eq!(
        req(
            p,
            "POST",
            "/v1/sys/mounts/database",
            Some(json!({"type": "database"}))
        )
        .status,
        204
    );
    let cfg = req(
        p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username": "postgres", "password": "unused-with-trust-auth",
            "allowed_roles": ["exp"],
        })),
    );
    assert_eq!(cfg.status, 204, "{:?}", cfg.body);
    let create =
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
    let revoke = [
        format!("INSERT INTO {log_table} (name) VALUES ('{{{{name}}}}');"),
        "DROP ROLE IF EXISTS \"{{name}}\";".to_string(),
    ];
    let r = req(
        p,
        "POST",
        "/v1/database/roles/exp",
        Some(json!({
            "db_name": "pg", "creation_statements": [create], "revocation_statements": revoke,
            "default_ttl": ttl, "max_ttl": ttl,
        })),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
}

/// 1,000 leases issued through three nodes expire: each database user is dropped exactly
/// once (the revocation statements log every drop), and none is left.
#[test]
fn leases_through_three_nodes_are_revoked_exactly_once() {
    let Some(c) = Cluster::start("leases", 3) else {
        return;
    };
    let log = format!("{}_revlog", c.table);
    psql(&format!("CREATE TABLE {log} (name TEXT NOT NULL)"));
    database_mount(&c, &log, "4s");
    let names = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..6 {
            let (c, names) = (&c, &names);
            s.spawn(move || {
                let p = &c.nodes[w % 3];
                for _ in 0..1000 / 6 + 1 {
                    let r = req(p, "GET", "/v1/database/creds/exp", None);
                    assert_eq!(r.status, 200, "{:?}", r.body);
                    names
                        .lock()
                        .unwrap()
                        .push(r.body["data"]["username"].as_str().unwrap().to_string());
                }
            });
        }
    });
    let names = names.into_inner().unwrap();
    assert!(names.len() >= 1000);
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    let list = quoted.join(",");
    wait_until(Duration::from_secs(90), || {
        psql(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ({list})"
        )) == "0"
    });
    // Let any second revocation (there must be none) land before counting.
    std::thread::sleep(Duration::from_secs(3));
    let total: usize = psql(&format!("SELECT count(*) FROM {log}"))
        .parse()
        .unwrap();
    let distinct: usize = psql(&format!("SELECT count(DISTINCT name) FROM {log}"))
        .parse()
        .unwrap();
    println!(
        "{} leases, {total} revocations, {distinct} distinct users",
        names.len()
    );
    assert_eq!(distinct, names.len(), "every user revoked");
    assert_eq!(total, names.len(), "a user was revoked more than once");
    for p in &c.nodes {
        let r = req(p, "LIST", "/v1/sys/leases/lookup/database/creds/exp", None);
        assert_eq!(r.status, 404, "leases left: {:?}", r.body);
    }
    psql(&format!("DROP TABLE IF EXISTS {log}"));
}

/// The leader killed with `kill -9` while four clients write through every node: no
/// acknowledged write is lost, another node leads within 5 s, and its duties run (a lease
/// issued before the kill is revoked on time).
#[test]
fn leader_killed_under_write_load_loses_nothing() {
    let Some(mut c) = Cluster::start("failover", 3) else {
        return;
    };
    let log = format!("{}_revlog", c.table);
    psql(&format!("CREATE TABLE {log} (name TEXT NOT NULL)"));
    database_mount(&c, &log, "3s");
    assert_eq!(
        req(
            &c.nodes[0],
            "POST",
            "/v1/sys/mounts/kv",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    let lead = leader_index(&c).expect("a leader");
    let addrs: Vec<String> = c.nodes.iter().map(|p| p.addr.clone()).collect();
    let stop = AtomicBool::new(false);
    let acked: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let killed_at = Mutex::new(None::<Instant>);
    std::thread::scope(|s| {
        for w in 0..4usize {
            let (addrs, stop, acked, root) = (&addrs, &stop, &acked, &c.root);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let addr = &addrs[(w + i as usize) % addrs.len()];
                    let key = format!("w{w}-{}", i % 50);
                    let body = json!({"data": {"n": i}});
                    if let Some((200, _)) = try_req(
                        addr,
                        root,
                        "POST",
                        &format!("/v1/kv/data/{key}"),
                        Some(&body),
                    ) {
                        acked.lock().unwrap().insert(key, i);
                    }
                    i += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        let lease = req(
            &c.nodes[(lead + 1) % 3],
            "GET",
            "/v1/database/creds/exp",
            None,
        );
        assert_eq!(lease.status, 200, "{:?}", lease.body);
        let user = lease.body["data"]["username"].as_str().unwrap().to_string();
        let _ = c.nodes[lead].child.kill();
        let _ = c.nodes[lead].child.wait();
        *killed_at.lock().unwrap() = Some(Instant::now());
        // Another node leads within 5 s.
        let t = wait_until(Duration::from_secs(5), || {
            c.nodes.iter().enumerate().any(|(i, p)| {
                i != lead
                    && try_req(&p.addr, &c.root, "GET", "/v1/sys/leader", None)
                        .is_some_and(|(_, b)| b["is_self"] == json!(true))
            })
        });
        println!("new leader after {t:?}");
        // Its duties run: the lease (3 s) is revoked within 5 s of its end.
        wait_until(Duration::from_secs(9), || {
            psql(&format!("SELECT count(*) FROM {log} WHERE name = '{user}'")) == "1"
        });
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
    });
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() >= 100, "only {} keys written", acked.len());
    let survivor = &c.nodes[(lead + 1) % 3];
    for (key, n) in &acked {
        let r = req(survivor, "GET", &format!("/v1/kv/data/{key}"), None);
        assert_eq!(r.status, 200, "{key} lost");
        let got = r.body["data"]["data"]["n"].as_u64().unwrap();
        assert!(got >= *n, "{key}: acknowledged {n}, read {got}");
    }
    c.nodes.remove(lead);
    psql(&format!("DROP TABLE IF EXISTS {log}"));
}

/// The change feed of one node cut (its session terminated in PostgreSQL): from then on
/// that node never answers with what another node has since changed; it recovers.
#[test]
fn a_node_whose_feed_is_cut_serves_nothing_stale() {
    let Some(c) = Cluster::start("feedcut", 2) else {
        return;
    };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/sys/mounts/kv",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    wait_until(Duration::from_secs(2), || {
        req(b, "GET", "/v1/kv/config", None).status == 200
    });
    for round in 0..3 {
        assert_eq!(
            req(
                a,
                "POST",
                "/v1/kv/data/k",
                Some(json!({"data": {"v": round * 10}}))
            )
            .status,
            200
        );
        // b caches it.
        wait_until(Duration::from_secs(2), || {
            req(b, "GET", "/v1/kv/data/k", None).body["data"]["data"]["v"] == json!(round * 10)
        });
        let port = b.addr.rsplit(':').next().unwrap().to_string();
        let nodes = req(b, "GET", "/v1/sys/ha-status", None);
        let id_b = nodes.body["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| {
                n["api_address"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(&format!(":{port}"))
            })
            .map(|n| n["node_id"].as_str().unwrap().to_string())
            .expect("node b listed");
        let killed = psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'airlock-feed-{id_b}'"
        ));
        assert!(
            killed.parse::<u32>().unwrap_or(0) >= 1,
            "no feed session found"
        );
        // Changed on A while B's feed is (or was just) down.
        assert_eq!(
            req(
                a,
                "POST",
                "/v1/kv/data/k",
                Some(json!({"data": {"v": round * 10 + 1}}))
            )
            .status,
            200
        );
        let t0 = Instant::now();
        let mut refused = 0;
        while t0.elapsed() < Duration::from_secs(3) {
            let r = req(b, "GET", "/v1/kv/data/k", None);
            match r.status {
                503 => refused += 1,
                200 => assert_eq!(
                    r.body["data"]["data"]["v"],
                    json!(round * 10 + 1),
                    "round {round}: node served a stale value after its feed was cut"
                ),
                s => panic!("unexpected {s}: {:?}", r.body),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        println!("round {round}: {refused} requests refused while resubscribing");
        // Recovered.
        wait_until(Duration::from_secs(5), || {
            req(b, "GET", "/v1/sys/health", None).status == 200
        });
    }
}

/// PostgreSQL restarted while clients write through two nodes: errors during the outage
/// are clean 5xx answers (no dropped connection, no panic), the nodes reconnect on their
/// own, and every acknowledged write is there afterwards.
#[test]
fn postgresql_restarted_mid_load() {
    let Some(pg) = crate::pg_private::PrivatePg::start("pgrestart", None) else {
        return;
    };
    pg.wait_ready();
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        pg.port
    );
    let Some(c) = Cluster::start_on("restart", 2, &url, &pg.hostport()) else {
        return;
    };
    assert_eq!(
        req(
            &c.nodes[0],
            "POST",
            "/v1/sys/mounts/kv",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    let addrs: Vec<String> = c.nodes.iter().map(|p| p.addr.clone()).collect();
    let stop = AtomicBool::new(false);
    let acked: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    let statuses: Mutex<HashMap<u16, usize>> = Mutex::new(HashMap::new());
    let broken = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..4usize {
            let (addrs, stop, acked, statuses, broken, root) =
                (&addrs, &stop, &acked, &statuses, &broken, &c.root);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let addr = &addrs[(w + i as usize) % addrs.len()];
                    let key = format!("w{w}-{}", i % 40);
                    match try_req(
                        addr,
                        root,
                        "POST",
                        &format!("/v1/kv/data/{key}"),
                        Some(&json!({"data": {"n": i}})),
                    ) {
                        Some((200, _)) => {
                            acked.lock().unwrap().insert(key, i);
                        }
                        Some((s, _)) => *statuses.lock().unwrap().entry(s).or_default() += 1,
                        None => {
                            broken.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        }
        std::thread::sleep(Duration::from_secs(1));
        pg.stop();
        std::thread::sleep(Duration::from_secs(2));
        pg.start_again();
        // Both nodes serve again.
        for p in &c.nodes {
            wait_until(Duration::from_secs(15), || {
                try_req(&p.addr, &c.root, "GET", "/v1/sys/health", None)
                    .is_some_and(|(s, _)| s == 200)
            });
        }
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
    });
    let statuses = statuses.into_inner().unwrap();
    println!(
        "during the outage: {statuses:?}, {} broken connections",
        broken.load(Ordering::SeqCst)
    );
    assert!(
        statuses.keys().all(|s| (500..600).contains(s)),
        "{statuses:?}"
    );
    assert!(!statuses.is_empty(), "the outage was not noticed");
    assert_eq!(
        broken.load(Ordering::SeqCst),
        0,
        "connections dropped instead of answered"
    );
    let acked = acked.into_inner().unwrap();
    for (key, n) in &acked {
        let r = req(&c.nodes[1], "GET", &format!("/v1/kv/data/{key}"), None);
        assert_eq!(r.status, 200, "{key} lost");
        assert!(
            r.body["data"]["data"]["n"].as_u64().unwrap() >= *n,
            "{key}: acknowledged {n} lost"
        );
    }
}
