//! The transit seal: a store whose unseal key is wrapped by another server's transit key —
//! another Airlock, and the real OpenBao — initialises without shares, unseals itself at
//! every start, and stays sealed (answering, with a clear status) while the key's server is
//! gone.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::util::*;

/// A transit key `autounseal` on the server at `addr` (root token `root`).
fn transit_key(addr: &str) {
    let tok = Some("root");
    let body = serde_json::to_vec(&json!({"type": "transit"})).unwrap();
    let r = http(
        addr,
        "POST",
        "/v1/sys/mounts/transit",
        tok,
        Some(&body),
        &[],
    );
    assert!(
        r.status == 204 || r.status == 200,
        "{}",
        String::from_utf8_lossy(&r.raw)
    );
    let r = http(
        addr,
        "POST",
        "/v1/transit/keys/autounseal",
        tok,
        Some(b"{}"),
        &[],
    );
    assert!(
        r.status == 204 || r.status == 200,
        "{}",
        String::from_utf8_lossy(&r.raw)
    );
}

fn sealed_node(dir: &Path, key_server: &str) -> std::path::PathBuf {
    let cfg = dir.join("airlock.server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n[seal]\ntype = \"transit\"\naddress = \"{key_server}\"\ntoken = \"root\"\nkey_name = \"autounseal\"\n",
            dir.join("data.db").display()
        ),
    )
    .unwrap();
    cfg
}

fn check_transit_seal(key_server: &str, dir: &Path) {
    transit_key(key_server);
    let cfg = sealed_node(dir, key_server);
    let p = start_config(&cfg);
    let st = req(&p, "GET", "/v1/sys/seal-status", None);
    assert_eq!(st.body["initialized"], json!(false));
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    assert_eq!(
        init.body["keys"],
        json!([]),
        "no shares with an auto-unseal seal"
    );
    let root = init.body["root_token"].as_str().unwrap().to_string();
    assert_eq!(req(&p, "GET", "/v1/sys/health", None).status, 200);
    let st = req(&p, "GET", "/v1/sys/seal-status", None);
    assert_eq!(st.body["type"], json!("transit"));
    let mut p = p;
    p.token = Some(root.clone());
    let w = req(
        &p,
        "POST",
        "/v1/sys/mounts/kv",
        Some(json!({"type": "kv-v2"})),
    );
    assert_eq!(w.status, 204);
    let w = req(
        &p,
        "POST",
        "/v1/kv/data/a",
        Some(json!({"data": {"v": "1"}})),
    );
    assert_eq!(w.status, 200);
    drop(p);
    // A restart unseals itself through the key's server.
    let mut p = start_config(&cfg);
    p.token = Some(root);
    wait_until("auto-unseal", Duration::from_secs(10), || {
        req(&p, "GET", "/v1/sys/health", None).status == 200
    });
    let r = req(&p, "GET", "/v1/kv/data/a", None);
    assert_eq!(r.body["data"]["data"]["v"], json!("1"));
}

#[test]
fn a_transit_seal_on_another_airlock_and_on_openbao() {
    // Another Airlock's transit engine holds the key.
    let keeper = start_dev();
    let dir = tempdir("seal-transit-airlock");
    check_transit_seal(&keeper.addr, &dir);
    // The key's server gone: the node starts, answers, and stays sealed.
    let cfg = dir.join("airlock.server.toml");
    drop(keeper);
    let p = start_config(&cfg);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(req(&p, "GET", "/v1/sys/health", None).status, 503);
    let st = req(&p, "GET", "/v1/sys/seal-status", None);
    assert_eq!(st.body["sealed"], json!(true));
    assert_eq!(st.body["type"], json!("transit"));
    drop(p);

    // The real OpenBao holds the key.
    let Some(bin) = openbao() else {
        require("OpenBao (../shared/tools/openbao)", false);
        return;
    };
    let bao = start_openbao(&bin);
    let dir = tempdir("seal-transit-bao");
    check_transit_seal(&bao.addr, &dir);
}
