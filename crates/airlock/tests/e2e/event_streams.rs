//! Open event streams: Server-Sent Events (`sys/airlock/events?stream=true`) resume from a
//! cursor, carry heartbeats, name only readable paths and end when the token is revoked;
//! Vault's WebSocket API (`sys/events/subscribe/<type>?json=true`), driven by a WebSocket
//! client written as Vault's documentation describes (Python `websockets`), gets KV events
//! in Vault's CloudEvents envelope, authorised by `subscribe` + `read`, filtered.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

fn token_with(p: &Proc, name: &str, policy: &str) -> String {
    let r = req(
        p,
        "PUT",
        &format!("/v1/sys/policies/acl/{name}"),
        Some(json!({ "policy": policy })),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    let t = req(
        p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({ "policies": [name] })),
    );
    t.body["auth"]["client_token"].as_str().unwrap().to_string()
}

fn write(p: &Proc, path: &str, v: &str) {
    let r = req(
        p,
        "POST",
        &format!("/v1/secret/data/{path}"),
        Some(json!({ "data": { "k": v } })),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// An SSE connection read line by line on a thread.
struct Sse {
    lines: Receiver<String>,
    _stream: TcpStream,
}

impl Sse {
    fn open(p: &Proc, token: &str, query: &str, last_event_id: Option<u64>) -> Sse {
        let hostport = p.addr.trim_start_matches("http://");
        let mut s = TcpStream::connect(hostport).unwrap();
        let mut head = format!(
            "GET /v1/sys/airlock/events?{query} HTTP/1.1\r\nHost: {hostport}\r\nX-Vault-Token: {token}\r\nAccept: text/event-stream\r\n"
        );
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let (tx, rx) = channel();
        let r = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sse {
            lines: rx,
            _stream: s,
        }
    }

    /// The next SSE event (id, type, data); heartbeats are returned as ("", "heartbeat").
    fn next(&self, within: Duration) -> Option<(String, String, String)> {
        let deadline = Instant::now() + within;
        let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_string();
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = v.to_string();
            } else if line.starts_with(": heartbeat") {
                return Some((String::new(), "heartbeat".into(), String::new()));
            } else if line.is_empty() && !kind.is_empty() {
                return Some((id, kind, data));
            }
        }
    }

    /// The next event that is not a heartbeat.
    fn next_event(&self, within: Duration) -> Option<(String, String, String)> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let e = self.next(left)?;
            if e.1 != "heartbeat" {
                return Some(e);
            }
        }
    }
}

#[test]
fn sse_streams_resume_beat_and_end_when_the_token_is_revoked() {
    let p = start_dev();
    let sub = token_with(
        &p,
        "sse",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"sys/airlock/events\" { capabilities = [\"read\"] }",
    );
    let s = Sse::open(&p, &sub, "heartbeat=1s", None);
    std::thread::sleep(Duration::from_millis(300));
    write(&p, "app/a", "s3cret-a");
    write(&p, "other/x", "s3cret-x");
    write(&p, "app/b", "s3cret-b");
    let first = s.next_event(Duration::from_secs(5)).expect("first event");
    let second = s.next_event(Duration::from_secs(5)).expect("second event");
    for (e, path) in [
        (&first, "secret/data/app/a"),
        (&second, "secret/data/app/b"),
    ] {
        assert_eq!(e.1, "kv-v2/data-write");
        let v: Value = serde_json::from_str(&e.2).unwrap();
        assert_eq!(v["data_path"], path);
        assert_eq!(v["id"].as_str().unwrap(), e.0);
        assert!(!e.2.contains("s3cret"), "an event carried a value: {}", e.2);
    }
    // Quiet: a heartbeat within the interval (1 s) and then some.
    let beat = s.next(Duration::from_secs(3)).expect("a heartbeat");
    assert_eq!(beat.1, "heartbeat");

    // Resume after the first event: the next one is the second, and `other/` never shows.
    let first_id: u64 = first.0.parse().unwrap();
    let resumed = Sse::open(&p, &sub, "heartbeat=1s", Some(first_id));
    let again = resumed.next_event(Duration::from_secs(5)).unwrap();
    assert_eq!(again.0, second.0);
    let by_query = Sse::open(&p, &sub, &format!("since={first_id}"), None);
    assert_eq!(
        by_query.next_event(Duration::from_secs(5)).unwrap().0,
        second.0
    );

    // Revoked: the stream says so and ends.
    let t0 = Instant::now();
    let r = req(
        &p,
        "POST",
        "/v1/auth/token/revoke",
        Some(json!({ "token": sub })),
    );
    assert_eq!(r.status, 204);
    let end = s.next_event(Duration::from_secs(6)).expect("an end event");
    assert_eq!(end.1, "end");
    assert!(end.2.contains("revoked"));
    assert!(t0.elapsed() < Duration::from_secs(5));

    // Bad input: a malformed cursor, filter or heartbeat is a 400 before any stream opens.
    for q in [
        "stream=true&since=abc",
        "stream=true&filter=a%20matches%20b",
        "stream=true&heartbeat=0s",
    ] {
        let r = req(&p, "GET", &format!("/v1/sys/airlock/events?{q}"), None);
        assert_eq!(r.status, 400, "{q}: {:?}", r.body);
    }
    // Filtered stream: only the matching path.
    let f = Sse::open(
        &p,
        "root",
        "filter=data_path%20%3D%3D%20secret%2Fdata%2Fapp%2Fb",
        None,
    );
    std::thread::sleep(Duration::from_millis(300));
    write(&p, "app/a", "x");
    write(&p, "app/b", "y");
    let only = f.next_event(Duration::from_secs(5)).unwrap();
    assert!(only.2.contains("secret/data/app/b"), "{}", only.2);
    // A filtered stream from an old cursor replays what it missed, then follows.
    let replay = Sse::open(
        &p,
        "root",
        "since=0&filter=data_path%20%3D%3D%20secret%2Fdata%2Fapp%2Fb",
        None,
    );
    let versions: Vec<String> = (0..2)
        .map(|_| {
            let e = replay.next_event(Duration::from_secs(5)).unwrap();
            let v: Value = serde_json::from_str(&e.2).unwrap();
            v["metadata"]["current_version"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(versions, ["1", "2"]);
    write(&p, "app/a", "z");
    write(&p, "app/b", "w");
    let live = replay.next_event(Duration::from_secs(5)).unwrap();
    assert!(live.2.contains("\"current_version\":\"3\""), "{}", live.2);
}

const WS_CLIENT: &str = r#"
import asyncio, json, sys, websockets
addr, token, pattern, query, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
async def main():
    url = addr.replace("http://", "ws://") + "/v1/sys/events/subscribe/" + pattern + "?json=true" + query
    try:
        ws = await websockets.connect(url, additional_headers={"X-Vault-Token": token})
    except Exception as e:
        print(json.dumps({"refused": str(e)}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    got = 0
    try:
        # want == 0: follow until the server closes the stream.
        while want == 0 or got < want:
            msg = await asyncio.wait_for(ws.recv(), 8)
            print(json.dumps({"message": json.loads(msg)}), flush=True)
            got += 1
    except websockets.ConnectionClosed as e:
        print(json.dumps({"closed": e.rcvd.code if e.rcvd else None, "reason": e.rcvd.reason if e.rcvd else ""}), flush=True)
    except asyncio.TimeoutError:
        print(json.dumps({"timeout": True}), flush=True)
    await ws.close()
asyncio.run(main())
"#;

struct WsClient {
    child: std::process::Child,
    out: Receiver<Value>,
}

impl Drop for WsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl WsClient {
    fn start(p: &Proc, token: &str, pattern: &str, query: &str, want: usize) -> WsClient {
        let mut child = Command::new("python3")
            .args([
                "-c",
                WS_CLIENT,
                &p.addr,
                token,
                pattern,
                query,
                &want.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        WsClient { child, out: rx }
    }

    fn next(&self) -> Value {
        self.out
            .recv_timeout(Duration::from_secs(10))
            .expect("the WebSocket client said nothing")
    }
}

#[test]
fn a_vault_websocket_client_gets_kv_events_in_vaults_envelope() {
    if !require("python3 with websockets", python_has("websockets")) {
        return;
    }
    let p = start_dev();
    let sub = token_with(
        &p,
        "vsub",
        r#"
path "sys/events/subscribe/*" { capabilities = ["read"] }
path "secret/data/app/*" {
  capabilities = ["read", "subscribe"]
  subscribe_event_types = ["kv-v2/data-*"]
}
path "secret/data/noread/*" { capabilities = ["subscribe"] }
path "secret/data/nosub/*" { capabilities = ["read"] }
"#,
    );
    let all = WsClient::start(&p, &sub, "kv*", "", 2);
    assert_eq!(all.next()["ready"], true);
    let filtered = WsClient::start(
        &p,
        &sub,
        "kv-v2/data-write",
        "&filter=data_path%20%3D%3D%20secret%2Fdata%2Fapp%2Ftwo",
        1,
    );
    assert_eq!(filtered.next()["ready"], true);
    let to_revoke = WsClient::start(&p, &sub, "*", "", 0);
    assert_eq!(to_revoke.next()["ready"], true);
    // No `read` on the subscribe path: the handshake is refused.
    let none = token_with(
        &p,
        "nosubscribe",
        "path \"secret/data/*\" { capabilities = [\"read\", \"subscribe\"] }",
    );
    let refused = WsClient::start(&p, &none, "kv*", "", 1);
    assert!(refused.next()["refused"].as_str().unwrap().contains("403"));

    std::thread::sleep(Duration::from_millis(300));
    write(&p, "noread/x", "v"); // subscribe without read: not delivered
    write(&p, "nosub/x", "v"); // read without subscribe: not delivered
    write(&p, "app/one", "v1");
    let r = req(
        &p,
        "POST",
        "/v1/secret/delete/app/one",
        Some(json!({ "versions": [1] })),
    );
    assert_eq!(r.status, 204); // kv-v2/delete: not among the policy's event types
    write(&p, "app/two", "v2");

    let m1 = all.next();
    let m2 = all.next();
    let e1 = &m1["message"];
    assert_eq!(e1["specversion"], "1.0");
    assert_eq!(e1["datacontentype"], "application/cloudevents");
    assert!(e1["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(e1["time"].as_str().is_some());
    assert_eq!(e1["data"]["event_type"], "kv-v2/data-write");
    let md = &e1["data"]["event"]["metadata"];
    assert_eq!(md["path"], "secret/data/app/one");
    assert_eq!(md["data_path"], "secret/data/app/one");
    assert_eq!(md["current_version"], "1");
    assert_eq!(md["operation"], "data-write");
    assert_eq!(md["modified"], "true");
    assert_eq!(e1["data"]["plugin_info"]["mount_path"], "secret/");
    assert_eq!(e1["data"]["plugin_info"]["mount_class"], "secret");
    assert_eq!(e1["data"]["plugin_info"]["plugin"], "kv");
    assert_eq!(
        m2["message"]["data"]["event"]["metadata"]["path"],
        "secret/data/app/two"
    );
    let f = filtered.next();
    assert_eq!(
        f["message"]["data"]["event"]["metadata"]["data_path"],
        "secret/data/app/two"
    );
    for m in [&m1, &m2, &f] {
        assert!(!m.to_string().contains("\"v1\"") && !m.to_string().contains("\"v2\""));
    }

    // Revoking the subscriber's token closes its streams (policy violation, 1008).
    let r = req(
        &p,
        "POST",
        "/v1/auth/token/revoke",
        Some(json!({ "token": sub })),
    );
    assert_eq!(r.status, 204);
    let mut closed = to_revoke.next();
    while closed.get("message").is_some() {
        closed = to_revoke.next();
    }
    assert_eq!(closed["closed"], 1008, "{closed}");
    assert!(closed["reason"].as_str().unwrap().contains("revoked"));

    // Only JSON is served; a plain GET is told to upgrade.
    let r = req(&p, "GET", "/v1/sys/events/subscribe/kv*?json=false", None);
    assert_eq!(r.status, 400);
    let r = req(&p, "GET", "/v1/sys/events/subscribe/kv*?json=true", None);
    assert_eq!(r.status, 400);
    assert!(r.body["errors"][0].as_str().unwrap().contains("WebSocket"));
}
