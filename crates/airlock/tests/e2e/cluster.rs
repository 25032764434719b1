//! Several nodes on one PostgreSQL table, as an operator runs them behind a load balancer:
//! what one node changes, every node honours at once (within a second); read-modify-write
//! sequences lose nothing across nodes; one node leads the background duties.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

pub const PG_URL: &str = "host=127.0.0.1 user=postgres dbname=postgres";

/// Nodes on one PostgreSQL table with a shared key-file seal; the first one initialised.
pub struct Cluster {
    pub dir: TempDir,
    pub nodes: Vec<Proc>,
    pub root: String,
    pub table: String,
    pub url: String,
}

impl Cluster {
    /// `None` (after a visible skip message) when PostgreSQL is not there outside CI.
    pub fn start(tag: &str, n: usize) -> Option<Cluster> {
        Self::start_on(tag, n, PG_URL, "127.0.0.1:5432")
    }

    pub fn start_on(tag: &str, n: usize, url: &str, hostport: &str) -> Option<Cluster> {
        let mut c = Self::prepare(tag, url, hostport)?;
        let first = c.spawn();
        let init = req(&first, "PUT", "/v1/sys/init", Some(json!({})));
        assert_eq!(init.status, 200, "{:?}", init.body);
        c.root = init.body["root_token"].as_str().unwrap().to_string();
        c.nodes.push(first);
        for _ in 1..n {
            let p = c.spawn();
            c.nodes.push(p);
        }
        for p in &mut c.nodes {
            p.token = Some(c.root.clone());
        }
        // Every node subscribed and unsealed before the test starts.
        for p in &c.nodes {
            wait_until(Duration::from_secs(10), || {
                req(p, "GET", "/v1/sys/health", None).status == 200
            });
        }
        Some(c)
    }

    /// A table and a key file, no node yet.
    pub fn prepare(tag: &str, url: &str, hostport: &str) -> Option<Cluster> {
        let reachable = std::net::TcpStream::connect(hostport).is_ok();
        if !require(&format!("PostgreSQL on {hostport}"), reachable) {
            return None;
        }
        let dir = tempdir(tag);
        let table = format!(
            "airlock_{}_{}_{}",
            tag.replace('-', "_"),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let c = Cluster {
            dir,
            nodes: Vec::new(),
            root: String::new(),
            table,
            url: url.to_string(),
        };
        std::fs::write(c.dir.join("unseal.key"), "5a".repeat(32)).unwrap();
        Some(c)
    }

    pub fn config_text(&self) -> String {
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\nbackend = \"postgresql\"\nconnection_url = \"{}\"\ntable = \"{}\"\n[seal]\nkey_file = \"{}\"\n",
            self.url,
            self.table,
            self.dir.join("unseal.key").display()
        )
    }

    /// Starts one more node on the cluster's table.
    pub fn spawn(&self) -> Proc {
        let cfg = self.dir.join(format!("node-{}.toml", random_suffix()));
        std::fs::write(&cfg, self.config_text()).unwrap();
        let mut p = start_config(&cfg);
        if !self.root.is_empty() {
            p.token = Some(self.root.clone());
        }
        p
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        if self.url == PG_URL {
            psql(&format!(
                "DROP TABLE IF EXISTS {t}; DROP TABLE IF EXISTS {t}_nodes",
                t = self.table
            ));
        }
    }
}

fn random_suffix() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

pub fn psql(sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ])
        .arg(sql)
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `f` until it holds; panics after `limit`. Returns how long it took.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if f() {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long until `f` holds on every node, at most one second (the promised bound).
fn everywhere_within_1s(c: &Cluster, what: &str, f: impl Fn(&Proc) -> bool) {
    for (i, p) in c.nodes.iter().enumerate() {
        let t0 = Instant::now();
        while !f(p) {
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "{what}: node {i} still disagreed after 1 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn set_policy(p: &Proc, name: &str, text: &str) {
    let r = req(
        p,
        "PUT",
        &format!("/v1/sys/policies/acl/{name}"),
        Some(json!({"policy": text})),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
}

fn token(c: &Cluster, on: usize, body: Value) -> String {
    let r = req(&c.nodes[on], "POST", "/v1/auth/token/create", Some(body));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["auth"]["client_token"].as_str().unwrap().to_string()
}

/// Every inconsistency an operator saw with two nodes on one table, each now a check.
#[test]
fn three_nodes_on_one_database_agree() {
    let Some(c) = Cluster::start("agree", 3) else {
        return;
    };
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    // One identity, the same on every node.
    let ids: Vec<Value> = c
        .nodes
        .iter()
        .map(|p| req(p, "GET", "/v1/sys/health", None).body["cluster_id"].clone())
        .collect();
    assert!(
        ids[0].is_string() && ids.iter().all(|i| *i == ids[0]),
        "{ids:?}"
    );
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
    // Found at once on every node, before their feeds said so: a route miss re-reads the
    // stored table.
    for p in &c.nodes {
        assert_eq!(req(p, "GET", "/v1/kv/config", None).status, 200);
    }
    assert_eq!(
        req(
            b,
            "POST",
            "/v1/sys/auth/ar",
            Some(json!({"type": "approle"}))
        )
        .status,
        204
    );
    let r = req(
        &c.nodes[2],
        "POST",
        "/v1/auth/ar/role/r1",
        Some(json!({"token_ttl": "1m"})),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);

    // Revocation of a root-policy token on A: refused everywhere, including for writing a
    // catch-all policy through B.
    let t = token(&c, 0, json!({"policies": ["root"]}));
    assert_eq!(
        with_token(b, &t, "GET", "/v1/auth/token/lookup-self", None).status,
        200
    );
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/auth/token/revoke",
            Some(json!({"token": t}))
        )
        .status,
        204
    );
    everywhere_within_1s(&c, "revoked token", |p| {
        with_token(p, &t, "GET", "/v1/auth/token/lookup-self", None).status == 403
    });
    let w = with_token(
        b,
        &t,
        "PUT",
        "/v1/sys/policies/acl/all",
        Some(
            json!({"policy": "path \"*\" { capabilities = [\"sudo\", \"create\", \"update\", \"read\"] }"}),
        ),
    );
    assert_eq!(w.status, 403);

    // A child made through B dies with its parent revoked on A.
    let maker = "path \"auth/token/create\" { capabilities = [\"update\"] }";
    set_policy(a, "maker", maker);
    let parent = token(&c, 0, json!({"policies": ["default", "maker"]}));
    let r = with_token(
        b,
        &parent,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let child = r.body["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/auth/token/revoke",
            Some(json!({"token": parent}))
        )
        .status,
        204
    );
    everywhere_within_1s(&c, "child of a revoked parent", |p| {
        with_token(p, &child, "GET", "/v1/auth/token/lookup-self", None).status == 403
    });

    // A policy narrowed to deny, then deleted, on A.
    let read_kv = "path \"kv/data/*\" { capabilities = [\"read\", \"create\", \"update\"] }";
    set_policy(a, "app", read_kv);
    let app = token(&c, 0, json!({"policies": ["app"]}));
    assert_eq!(
        req(a, "POST", "/v1/kv/data/x", Some(json!({"data": {"v": 1}}))).status,
        200
    );
    everywhere_within_1s(&c, "policy allows", |p| {
        with_token(p, &app, "GET", "/v1/kv/data/x", None).status == 200
    });
    let deny = "path \"kv/data/*\" { capabilities = [\"deny\"] }";
    set_policy(a, "app", deny);
    everywhere_within_1s(&c, "policy narrowed to deny", |p| {
        with_token(p, &app, "GET", "/v1/kv/data/x", None).status == 403
    });
    set_policy(a, "app", read_kv);
    everywhere_within_1s(&c, "policy widened again", |p| {
        with_token(p, &app, "GET", "/v1/kv/data/x", None).status == 200
    });
    assert_eq!(
        req(a, "DELETE", "/v1/sys/policies/acl/app", None).status,
        204
    );
    everywhere_within_1s(&c, "policy deleted", |p| {
        with_token(p, &app, "GET", "/v1/kv/data/x", None).status == 403
    });

    // num_uses = 2: used at the same moment on three nodes, it works exactly twice.
    for round in 0..5 {
        let limited = token(&c, 0, json!({"policies": ["default"], "num_uses": 2}));
        let ok = std::thread::scope(|s| {
            let hs: Vec<_> = c
                .nodes
                .iter()
                .map(|p| {
                    let limited = &limited;
                    s.spawn(move || {
                        with_token(p, limited, "GET", "/v1/auth/token/lookup-self", None).status
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|s| *s == 200)
                .count()
        });
        assert_eq!(ok, 2, "round {round}: a num_uses=2 token worked {ok} times");
    }

    // 100 + 100 concurrent writes to one key on A and B: every acknowledged write has its
    // own version, none lost.
    let acked = std::sync::atomic::AtomicUsize::new(0);
    let versions = std::sync::Mutex::new(Vec::new());
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for node in [a, b] {
            for _ in 0..4 {
                let (acked, versions, failed) = (&acked, &versions, &failed);
                s.spawn(move || {
                    for i in 0..25 {
                        let r = req(
                            node,
                            "POST",
                            "/v1/kv/data/hot",
                            Some(json!({"data": {"i": i}})),
                        );
                        if r.status != 200 {
                            failed
                                .lock()
                                .unwrap()
                                .push(format!("{}: {}", r.status, r.body));
                        } else {
                            acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let v = r.body["data"]["version"].as_u64();
                            versions
                                .lock()
                                .unwrap()
                                .push(v.unwrap_or_else(|| panic!("{:?}", r.body)));
                        }
                    }
                });
            }
        }
    });
    let mut v = versions.into_inner().unwrap();
    let n = acked.into_inner();
    assert_eq!(
        n,
        200,
        "every write is acknowledged (conflicts are retried): {:?}",
        failed.into_inner().unwrap()
    );
    v.sort();
    v.dedup();
    assert_eq!(
        v.len(),
        n,
        "duplicate version numbers: acknowledged writes were lost"
    );
    let meta = req(c.nodes.last().unwrap(), "GET", "/v1/kv/metadata/hot", None);
    assert_eq!(meta.body["data"]["current_version"], json!(200));

    // Check-and-set with the same version on two nodes: exactly one wins.
    for round in 0..5 {
        let cur = req(a, "GET", "/v1/kv/metadata/hot", None).body["data"]["current_version"]
            .as_u64()
            .unwrap();
        let wins = std::thread::scope(|s| {
            let hs: Vec<_> = [a, b]
                .into_iter()
                .map(|p| {
                    s.spawn(move || {
                        req(
                            p,
                            "POST",
                            "/v1/kv/data/hot",
                            Some(json!({"options": {"cas": cur}, "data": {"r": round}})),
                        )
                        .status
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .filter(|s| *s == 200)
                .count()
        });
        assert_eq!(wins, 1, "round {round}: cas={cur} succeeded {wins} times");
    }

    // Key rotation on A: what A writes next reads on B.
    assert_eq!(req(a, "POST", "/v1/sys/rotate", None).status, 204);
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/kv/data/after-rotate",
            Some(json!({"data": {"v": "new"}}))
        )
        .status,
        200
    );
    for p in &c.nodes {
        let r = req(p, "GET", "/v1/kv/data/after-rotate", None);
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["data"]["data"]["v"], "new");
    }
    everywhere_within_1s(&c, "key term", |p| {
        req(p, "GET", "/v1/sys/key-status", None).body["data"]["term"] == json!(2)
    });

    // Renewal on A is what B sees.
    let renewable = token(
        &c,
        0,
        json!({"policies": ["default"], "ttl": "60s", "explicit_max_ttl": "1h"}),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let r = with_token(
        a,
        &renewable,
        "POST",
        "/v1/auth/token/renew-self",
        Some(json!({"increment": "30m"})),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    everywhere_within_1s(&c, "renewed token", |p| {
        with_token(p, &renewable, "GET", "/v1/auth/token/lookup-self", None).body["data"]["ttl"]
            .as_i64()
            .unwrap_or(0)
            > 600
    });

    // Updates and deletes on A read on the others.
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/kv/data/shared",
            Some(json!({"data": {"v": 1}}))
        )
        .status,
        200
    );
    for p in &c.nodes {
        assert_eq!(
            req(p, "GET", "/v1/kv/data/shared", None).body["data"]["data"]["v"],
            1
        );
    }
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/kv/data/shared",
            Some(json!({"data": {"v": 2}}))
        )
        .status,
        200
    );
    everywhere_within_1s(&c, "update", |p| {
        req(p, "GET", "/v1/kv/data/shared", None).body["data"]["data"]["v"] == json!(2)
    });
    assert_eq!(req(a, "DELETE", "/v1/kv/metadata/shared", None).status, 204);
    everywhere_within_1s(&c, "delete", |p| {
        req(p, "GET", "/v1/kv/data/shared", None).status == 404
    });
    // A mount removed on A is gone everywhere.
    assert_eq!(
        req(a, "POST", "/v1/sys/mounts/tmp", Some(json!({"type": "kv"}))).status,
        204
    );
    everywhere_within_1s(&c, "mount", |p| {
        req(p, "PUT", "/v1/tmp/x", Some(json!({"a": 1}))).status == 204
    });
    assert_eq!(req(b, "DELETE", "/v1/sys/mounts/tmp", None).status, 204);
    everywhere_within_1s(&c, "unmount", |p| {
        req(p, "GET", "/v1/tmp/x", None).status == 404
    });

    // One leader; every node listed.
    let leaders: Vec<bool> = c
        .nodes
        .iter()
        .map(|p| {
            let l = req(p, "GET", "/v1/sys/leader", None);
            assert_eq!(l.body["ha_enabled"], true);
            l.body["is_self"].as_bool().unwrap()
        })
        .collect();
    assert_eq!(leaders.iter().filter(|x| **x).count(), 1, "{leaders:?}");
    let ha = req(b, "GET", "/v1/sys/ha-status", None);
    assert_eq!(
        ha.body["nodes"].as_array().map(Vec::len),
        Some(3),
        "{:?}",
        ha.body
    );
    // The identity survives a restart.
    let again = c.spawn();
    wait_until(Duration::from_secs(10), || {
        req(&again, "GET", "/v1/sys/health", None).status == 200
    });
    assert_eq!(
        req(&again, "GET", "/v1/sys/health", None).body["cluster_id"],
        ids[0]
    );
}

/// What may be used once is used once, whichever nodes race for it: a wrapped response
/// unwrapped on three nodes at the same moment, an AppRole secret id with one use. And a
/// backup restored through one node is what every node serves.
#[test]
fn single_use_things_are_used_once_across_nodes() {
    let Some(c) = Cluster::start("once", 3) else {
        return;
    };
    let a = &c.nodes[0];
    assert_eq!(
        req(a, "POST", "/v1/sys/mounts/kv", Some(json!({"type": "kv"}))).status,
        204
    );
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/sys/auth/approle",
            Some(json!({"type": "approle"}))
        )
        .status,
        204
    );
    assert_eq!(
        req(
            a,
            "POST",
            "/v1/auth/approle/role/r",
            Some(json!({"secret_id_num_uses": 1, "token_policies": ["default"]}))
        )
        .status,
        204
    );
    let role_id = req(a, "GET", "/v1/auth/approle/role/r/role-id", None).body["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    everywhere_within_1s(&c, "auth mount", |p| {
        req(p, "GET", "/v1/auth/approle/role/r/role-id", None).status == 200
    });
    for round in 0..5 {
        // Wrapped response.
        let w = http(
            &a.addr,
            "POST",
            "/v1/sys/wrapping/wrap",
            Some(&c.root),
            Some(br#"{"secret":"value"}"#),
            &[("X-Vault-Wrap-TTL", "60s")],
        );
        let wt = w.body["wrap_info"]["token"].as_str().unwrap().to_string();
        let secret_id = req(a, "POST", "/v1/auth/approle/role/r/secret-id", None).body["data"]
            ["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
        let (unwrapped, logins) = std::thread::scope(|s| {
            let hs: Vec<_> = c
                .nodes
                .iter()
                .map(|p| {
                    let (wt, role_id, secret_id) = (&wt, &role_id, &secret_id);
                    s.spawn(move || {
                        let u = with_token(p, wt, "POST", "/v1/sys/wrapping/unwrap", None).status;
                        let body = json!({"role_id": role_id, "secret_id": secret_id});
                        let l = http(
                            &p.addr,
                            "POST",
                            "/v1/auth/approle/login",
                            None,
                            Some(body.to_string().as_bytes()),
                            &[],
                        )
                        .status;
                        (u, l)
                    })
                })
                .collect();
            let r: Vec<(u16, u16)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            (
                r.iter().filter(|(u, _)| *u == 200).count(),
                r.iter().filter(|(_, l)| *l == 200).count(),
            )
        });
        assert_eq!(
            unwrapped, 1,
            "round {round}: a wrapped response was unwrapped {unwrapped} times"
        );
        assert_eq!(
            logins, 1,
            "round {round}: a one-use secret id logged in {logins} times"
        );
    }

    // Backup through one node, change things, restore it through another: every node
    // serves the restored state (same keys: they stay unsealed).
    assert_eq!(
        req(a, "PUT", "/v1/kv/x", Some(json!({"v": "before"}))).status,
        204
    );
    let backup = http(
        &a.addr,
        "GET",
        "/v1/sys/storage/backup",
        Some(&c.root),
        None,
        &[],
    );
    assert_eq!(backup.status, 200);
    assert_eq!(
        req(a, "PUT", "/v1/kv/x", Some(json!({"v": "after"}))).status,
        204
    );
    everywhere_within_1s(&c, "write", |p| {
        req(p, "GET", "/v1/kv/x", None).body["data"]["v"] == "after"
    });
    let b = &c.nodes[1];
    let r = http(
        &b.addr,
        "POST",
        "/v1/sys/storage/restore",
        Some(&c.root),
        Some(&backup.raw),
        &[],
    );
    assert_eq!(r.status, 400, "over data without force: {:?}", r.body);
    let r = http(
        &b.addr,
        "POST",
        "/v1/sys/storage/restore?force=true",
        Some(&c.root),
        Some(&backup.raw),
        &[],
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    for p in &c.nodes {
        wait_until(Duration::from_secs(5), || {
            req(p, "GET", "/v1/kv/x", None).body["data"]["v"] == "before"
        });
    }
}

/// Replicas started before the cluster is initialised (a Deployment's first rollout) unseal
/// themselves with the key file once one of them is initialised, without a restart; a node
/// reads its connection string from a file.
#[test]
fn replicas_started_before_init_unseal_themselves() {
    let Some(mut c) = Cluster::prepare("preinit", PG_URL, "127.0.0.1:5432") else {
        return;
    };
    let a = c.spawn();
    let url_file = c.dir.join("pg-url");
    std::fs::write(&url_file, format!("{PG_URL}\n")).unwrap();
    let cfg = c.dir.join("node-b.toml");
    let text = c.config_text().replace(
        &format!("connection_url = \"{PG_URL}\""),
        &format!("connection_url_file = \"{}\"", url_file.display()),
    );
    assert!(text.contains("connection_url_file"), "{text}");
    std::fs::write(&cfg, text).unwrap();
    let mut b = start_config(&cfg);
    assert_eq!(req(&b, "GET", "/v1/sys/health", None).status, 501);
    let init = req(&a, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    wait_until(Duration::from_secs(8), || {
        req(&b, "GET", "/v1/sys/health", None).status == 200
    });
    c.root = init.body["root_token"].as_str().unwrap().to_string();
    b.token = Some(c.root.clone());
    assert_eq!(req(&b, "GET", "/v1/sys/mounts", None).status, 200);
    c.nodes.push(a);
    c.nodes.push(b);
}
