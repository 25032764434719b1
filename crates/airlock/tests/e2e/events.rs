//! The event log (`sys/airlock/events`): every KV change is an event with a cursor that only
//! grows; a subscriber gets only the events of paths it may read, never a value; a long
//! poll wakes at once on a write; a subscriber behind the retention is told (`reset`);
//! across three nodes every write is sequenced exactly once.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::{wait_until, Cluster};
use crate::util::*;

fn events(p: &Proc, token: &str, q: &str) -> (u16, Vec<Value>, u64) {
    let r = with_token(
        p,
        token,
        "GET",
        &format!("/v1/sys/airlock/events?{q}"),
        None,
    );
    let ev = r.body["data"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (r.status, ev, r.body["data"]["next"].as_u64().unwrap_or(0))
}

#[test]
fn events_name_changes_only_to_who_may_read_them() {
    let p = start_dev();
    let policy = "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"sys/airlock/events\" { capabilities = [\"read\"] }";
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/policies/acl/sub",
            Some(json!({"policy": policy}))
        )
        .status,
        204
    );
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["sub"]})),
    );
    let sub = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let none = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    let none = none.body["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, v) in [
        ("app/one", "s3cret-one"),
        ("other/x", "s3cret-two"),
        ("app/one", "s3cret-three"),
    ] {
        let r = req(
            &p,
            "POST",
            &format!("/v1/secret/data/{path}"),
            Some(json!({"data": {"k": v}})),
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        req(&p, "DELETE", "/v1/secret/metadata/app/one", None).status,
        204
    );
    let mut all = Vec::new();
    wait_until(Duration::from_secs(5), || {
        all = events(&p, "root", "since=0").1;
        all.len() == 5
    });
    let cursors: Vec<u64> = all.iter().map(|e| e["cursor"].as_u64().unwrap()).collect();
    assert_eq!(cursors, vec![1, 2, 3, 4, 5]);
    let types: Vec<&str> = all
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "policy/write",
            "kv-v2/data-write",
            "kv-v2/data-write",
            "kv-v2/data-write",
            "kv-v2/metadata-delete"
        ]
    );
    assert_eq!(all[3]["metadata"]["current_version"], "2");
    assert_eq!(all[0]["data_path"], "sys/policies/acl/sub");
    assert_eq!(all[1]["data_path"], "secret/data/app/one");
    assert!(
        !serde_json::to_string(&all).unwrap().contains("s3cret"),
        "a value in an event"
    );
    // The subscriber sees only what it may read.
    let (status, mine, next) = events(&p, &sub, "since=0");
    assert_eq!(status, 200);
    let paths: Vec<&str> = mine
        .iter()
        .map(|e| e["data_path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![
            "secret/data/app/one",
            "secret/data/app/one",
            "secret/data/app/one"
        ]
    );
    assert_eq!(next, 5);
    // Without read on sys/airlock/events: refused.
    assert_eq!(events(&p, &none, "since=0").0, 403);
    // A long poll wakes at once on a write (and a revoked token is refused on its next one).
    let t0 = Instant::now();
    let h = std::thread::spawn({
        let addr = p.addr.clone();
        let sub = sub.clone();
        move || {
            http(
                &addr,
                "GET",
                "/v1/sys/airlock/events?since=5&wait=20s",
                Some(&sub),
                None,
                &[],
            )
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/secret/data/app/two",
            Some(json!({"data": {"k": "v"}}))
        )
        .status,
        200
    );
    let r = h.join().unwrap();
    let took = t0.elapsed();
    assert_eq!(
        r.body["data"]["events"][0]["data_path"],
        "secret/data/app/two"
    );
    assert!(took < Duration::from_secs(2), "the long poll took {took:?}");
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/auth/token/revoke",
            Some(json!({"token": sub}))
        )
        .status,
        204
    );
    assert_eq!(events(&p, &sub, "since=0").0, 403);
    // Bad cursors are refused clearly.
    let r = req(&p, "GET", "/v1/sys/airlock/events?since=-1", None);
    assert_eq!(r.status, 400);
}

#[test]
fn a_subscriber_behind_the_retention_gets_a_reset() {
    let dir = tempdir("events-retention");
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[events]\nmax_events = 5\n",
            dir.join("data.db").display()
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    let init = req(
        &p,
        "PUT",
        "/v1/sys/init",
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let key = init.body["keys"][0].as_str().unwrap().to_string();
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    req(&p, "PUT", "/v1/sys/unseal", Some(json!({"key": key})));
    assert_eq!(
        req(&p, "POST", "/v1/sys/mounts/kv", Some(json!({"type": "kv"}))).status,
        204
    );
    let root = p.token.clone().unwrap();
    for i in 0..12 {
        assert_eq!(
            req(&p, "PUT", &format!("/v1/kv/k{i}"), Some(json!({"v": i}))).status,
            204
        );
    }
    let mut got = Vec::new();
    wait_until(Duration::from_secs(5), || {
        got = events(&p, &root, "since=0").1;
        got.last().and_then(|e| e["cursor"].as_u64()) == Some(13)
    });
    assert_eq!(got[0]["event_type"], "reset", "{got:?}");
    assert_eq!(got[0]["metadata"]["missed_from"], 1);
    let kept: Vec<u64> = got[1..]
        .iter()
        .map(|e| e["cursor"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, vec![9, 10, 11, 12, 13]);
    assert_eq!(got[1]["event_type"], "kv-v1/write");
}

/// Writes through three nodes: every one becomes exactly one event, cursors 1..=N with no
/// gap or repeat, and a subscriber on any node sees the others' writes.
#[test]
fn three_nodes_sequence_every_event_once() {
    let Some(c) = Cluster::start("events", 3) else {
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
    wait_until(Duration::from_secs(2), || {
        c.nodes
            .iter()
            .all(|p| req(p, "GET", "/v1/kv/config", None).status == 200)
    });
    std::thread::scope(|s| {
        for (i, p) in c.nodes.iter().enumerate() {
            s.spawn(move || {
                for j in 0..40 {
                    let r = req(
                        p,
                        "POST",
                        &format!("/v1/kv/data/n{i}/k{j}"),
                        Some(json!({"data": {"j": j}})),
                    );
                    assert_eq!(r.status, 200);
                }
            });
        }
    });
    let mut all: Vec<Value> = Vec::new();
    wait_until(Duration::from_secs(10), || {
        all.clear();
        let mut since = 0;
        loop {
            let (_, ev, next) = events(&c.nodes[2], &c.root, &format!("since={since}&limit=1000"));
            if ev.is_empty() {
                break;
            }
            all.extend(ev);
            since = next;
        }
        all.len() >= 121
    });
    let cursors: Vec<u64> = all.iter().map(|e| e["cursor"].as_u64().unwrap()).collect();
    assert_eq!(cursors, (1..=121).collect::<Vec<u64>>(), "gaps or repeats");
    let mut paths: Vec<String> = all
        .iter()
        .map(|e| e["data_path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 121, "an event lost or doubled");
}

/// `airlock events subscribe` prints the events as they happen, one JSON per line, only for
/// the paths asked.
#[test]
fn the_cli_follows_the_event_log() {
    let p = start_dev();
    let dir = tempdir("events-cli");
    let out = dir.join("out");
    let mut child = std::process::Command::new(bin())
        .args([
            "events",
            "subscribe",
            "--since",
            "0",
            "--format",
            "json",
            "secret/data/app",
        ])
        .env("AIRLOCK_ADDR", &p.addr)
        .env("AIRLOCK_TOKEN", "root")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    for (path, v) in [("other", 1), ("app", 2), ("app", 3)] {
        let r = req(
            &p,
            "POST",
            &format!("/v1/secret/data/{path}"),
            Some(json!({"data": {"v": v}})),
        );
        assert_eq!(r.status, 200);
    }
    let mut lines: Vec<Value> = Vec::new();
    wait_until(Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        lines.len() >= 2
    });
    let _ = child.kill();
    let _ = child.wait();
    let versions: Vec<&str> = lines
        .iter()
        .map(|e| e["metadata"]["current_version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["1", "2"], "{lines:?}");
    assert!(lines.iter().all(|e| e["data_path"] == "secret/data/app"));
}

/// Leases (created, renewed, revoked) and broker bindings and agents emit events too, about
/// the path that issued them; none carries a credential.
#[test]
fn leases_and_broker_bindings_emit_events() {
    if !require(
        "PostgreSQL on 127.0.0.1:5432 with psql",
        crate::database::psql_ok(),
    ) {
        return;
    }
    let p = start_dev();
    let ok = |r: Resp| assert!(r.status == 200 || r.status == 204, "{:?}", r.body);
    ok(req(
        &p,
        "POST",
        "/v1/sys/mounts/database",
        Some(json!({"type": "database"})),
    ));
    ok(req(
        &p,
        "POST",
        "/v1/database/config/pg",
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username": "postgres", "password": "unused-with-trust-auth",
            "allowed_roles": ["ev"],
        })),
    ));
    ok(req(
        &p,
        "POST",
        "/v1/database/roles/ev",
        Some(
            json!({"db_name": "pg", "default_ttl": "1h", "max_ttl": "2h",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]}),
        ),
    ));
    let (_, _, start) = events(&p, "root", "");
    let creds = req(&p, "GET", "/v1/database/creds/ev", None);
    assert_eq!(creds.status, 200);
    let lease = creds.body["lease_id"].as_str().unwrap().to_string();
    let password = creds.body["data"]["password"].as_str().unwrap().to_string();
    ok(req(
        &p,
        "PUT",
        "/v1/sys/leases/renew",
        Some(json!({"lease_id": lease, "increment": 600})),
    ));
    ok(req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke",
        Some(json!({"lease_id": lease})),
    ));
    ok(req(
        &p,
        "POST",
        "/v1/sys/broker/bindings/openai",
        Some(json!({"provider": "openai", "secret": "secret/agents/test#OPENAI"})),
    ));
    ok(req(&p, "DELETE", "/v1/sys/broker/bindings/openai", None));
    let mut got = Vec::new();
    wait_until(Duration::from_secs(5), || {
        got = events(&p, "root", &format!("since={start}")).1;
        got.len() >= 5
    });
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .filter(|e| !e["event_type"].as_str().unwrap().starts_with("mounts/"))
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["data_path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("lease/create", "database/creds/ev"),
            ("lease/renew", "database/creds/ev"),
            ("lease/revoke", "database/creds/ev"),
            ("broker/binding-write", "sys/broker/bindings/openai"),
            ("broker/binding-delete", "sys/broker/bindings/openai"),
        ],
        "{got:?}"
    );
    assert_eq!(got[0]["metadata"]["lease_id"], lease.as_str());
    assert!(!serde_json::to_string(&got).unwrap().contains(&password));
}
