//! What an unauthenticated client can hold: idle and slow connections are closed, the
//! connection caps refuse cleanly, bodies beyond the small limit are read only for a valid
//! token, and a response sent without reading the body ends the connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::*;

/// A server with short timeouts and small caps, initialised; returns it with its root token.
fn server(dir: &std::path::Path) -> Proc {
    std::fs::write(dir.join("unseal.key"), "22".repeat(32)).unwrap();
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\nhttp_idle_timeout = \"2s\"\nhttp_read_header_timeout = 1\nhttp_read_timeout = \"1s\"\nhttp_read_min_rate = 1024\nmax_connections_per_address = 12\nmax_unauthenticated_request_size = 65536\n[storage]\npath = \"{}\"\n[seal]\nkey_file = \"{}\"\n",
            dir.join("data.db").display(),
            dir.join("unseal.key").display(),
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    p.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    let m = req(
        &p,
        "POST",
        "/v1/sys/mounts/secret",
        Some(json!({"type": "kv-v2"})),
    );
    assert_eq!(m.status, 204);
    let a = req(
        &p,
        "POST",
        "/v1/sys/auth/userpass",
        Some(json!({"type": "userpass"})),
    );
    assert_eq!(a.status, 204);
    p
}

fn connect(p: &Proc) -> TcpStream {
    let s = TcpStream::connect(p.addr.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the server closes the connection (or 10 s pass); returns what came and when
/// the close came.
fn read_to_close(s: &mut TcpStream) -> (String, Duration, bool) {
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (
        String::from_utf8_lossy(&buf).into_owned(),
        t0.elapsed(),
        closed,
    )
}

/// Reads one response head and its content-length body off a keep-alive connection.
fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-response");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    format!("{head}{}", String::from_utf8_lossy(&body))
}

#[test]
fn idle_and_slow_connections_are_closed() {
    let dir = tempdir("limits-idle");
    let p = server(&dir);
    // Connected, nothing sent: closed after the header timeout (1 s), counted from accept.
    let mut silent: Vec<TcpStream> = (0..5).map(|_| connect(&p)).collect();
    for s in &mut silent {
        let (_, _, closed) = read_to_close(s);
        assert!(closed, "a silent connection stayed open");
    }
    // Half an HTTP/2 preface, then nothing: closed within the header timeout too.
    let mut s = connect(&p);
    let t0 = Instant::now();
    s.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let (_, _, closed) = read_to_close(&mut s);
    assert!(
        closed && t0.elapsed() < Duration::from_secs(4),
        "{:?}",
        t0.elapsed()
    );
    // HTTP/2 with prior knowledge (h2c) and HTTP/1.1 on the same port.
    for (flag, want) in [
        ("--http2-prior-knowledge", "2 200"),
        ("--http1.1", "1.1 200"),
    ] {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
                flag,
            ])
            .arg(format!("{}/v1/sys/health", p.addr))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{flag}");
    }
    // Keep-alive after a request: an HTTP/1.1 connection waits for its next request's
    // headers at most the header timeout (1 s here), then it is closed.
    let mut s = connect(&p);
    s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut s).starts_with("http/1.1 200"));
    let (_, after, closed) = read_to_close(&mut s);
    assert!(closed, "an idle keep-alive connection stayed open");
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(6),
        "{after:?}"
    );
    // Headers trickled a byte at a time: cut by the header timeout.
    let mut s = connect(&p);
    let t0 = Instant::now();
    for b in b"GET /v1/sys/health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        if t0.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let (_, _, closed) = read_to_close(&mut s);
    assert!(
        closed && t0.elapsed() < Duration::from_secs(8),
        "slow headers held the connection for {:?}",
        t0.elapsed()
    );
    // A body trickled a byte every 300 ms: 408 and the connection ends.
    let mut s = connect(&p);
    s.write_all(
        b"PUT /v1/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    )
    .unwrap();
    let t0 = Instant::now();
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..30 {
                if w.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let (text, _, closed) = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.to_lowercase().contains("connection: close"), "{text}");
    assert!(closed && t0.elapsed() < Duration::from_secs(5));
    writer.join().unwrap();
    // Still serving.
    assert_eq!(req(&p, "GET", "/v1/sys/health", None).status, 200);
}

#[test]
fn connection_caps_refuse_cleanly_and_give_places_back() {
    let dir = tempdir("limits-caps");
    let p = server(&dir);
    // Hold the 12 places of this address with connections that keep a request going.
    let mut held: Vec<TcpStream> = (0..12)
        .map(|_| {
            let mut s = connect(&p);
            s.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert!(read_response(&mut s).starts_with("http/1.1 200"));
            s
        })
        .collect();
    // The 13th is refused at once with a complete 503, and closed.
    let mut s = connect(&p);
    let (text, _, closed) = read_to_close(&mut s);
    assert!(closed);
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    assert!(text.contains("too many open connections"), "{text}");
    // Refusals are counted.
    held.pop();
    std::thread::sleep(Duration::from_millis(200));
    let m = req(&p, "GET", "/v1/sys/metrics?format=prometheus", None);
    let text = String::from_utf8_lossy(&m.raw).into_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with("airlock_connections_refused_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    // Closing gives the places back.
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..15 {
        assert_eq!(req(&p, "GET", "/v1/sys/health", None).status, 200);
    }
}

#[test]
fn large_bodies_need_a_valid_token_and_early_answers_close_the_connection() {
    let dir = tempdir("limits-body");
    let p = server(&dir);
    let root = p.token.clone().unwrap();
    let hostport = p.addr.trim_start_matches("http://").to_string();
    // Headers announcing a big body, the body never sent: the answer comes at once, without
    // waiting for it, and ends the connection.
    let early = |path: &str, token: Option<&str>, len: usize| {
        let mut s = connect(&p);
        let tok = token
            .map(|t| format!("X-Vault-Token: {t}\r\n"))
            .unwrap_or_default();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {hostport}\r\n{tok}Content-Length: {len}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let t0 = Instant::now();
        let (text, _, closed) = read_to_close(&mut s);
        assert!(
            t0.elapsed() < Duration::from_millis(900),
            "{path}: waited for the body"
        );
        assert!(closed, "{path}: connection left open");
        assert!(text.to_lowercase().contains("connection: close"), "{text}");
        text
    };
    for path in [
        "/v1/sys/unseal",
        "/v1/sys/init",
        "/v1/auth/userpass/login/u",
        "/v1/sys/wrapping/unwrap",
    ] {
        let t = early(path, None, 100_000);
        assert!(t.starts_with("HTTP/1.1 413"), "{path}: {t}");
    }
    // An unauthenticated endpoint stays small even with a valid token.
    assert!(early("/v1/sys/unseal", Some(&root), 100_000).starts_with("HTTP/1.1 413"));
    // No token or a bogus one: 403 before a byte of the body is read.
    assert!(early("/v1/secret/data/big", None, 1_000_000).starts_with("HTTP/1.1 403"));
    assert!(early("/v1/secret/data/big", Some("alt_bogus"), 1_000_000).starts_with("HTTP/1.1 403"));
    // Beyond the overall limit: 413 whatever the token.
    assert!(early("/v1/secret/data/big", Some(&root), 64 << 20).starts_with("HTTP/1.1 413"));
    // Chunked, no length given: cut at the small limit.
    let mut s = connect(&p);
    s.write_all(
        format!(
            "PUT /v1/sys/unseal HTTP/1.1\r\nHost: {hostport}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    // Exactly one byte over, so the server reads all that was sent (no reset).
    let chunk = format!("{:x}\r\n{}\r\n", 16384, " ".repeat(16384));
    for _ in 0..4 {
        s.write_all(chunk.as_bytes()).unwrap();
    }
    s.write_all(b"1\r\n \r\n").unwrap();
    let (text, _, _) = read_to_close(&mut s);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // A valid token on an authenticated path may send up to the overall limit.
    let big = "x".repeat(1_000_000);
    let w = req(
        &p,
        "POST",
        "/v1/secret/data/big",
        Some(json!({"data": {"v": big}})),
    );
    assert_eq!(w.status, 200, "{:?}", w.body);
    assert_eq!(
        req(&p, "GET", "/v1/secret/data/big", None).body["data"]["data"]["v"]
            .as_str()
            .map(str::len),
        Some(1_000_000)
    );
    // A small unauthenticated body on a keep-alive connection: the connection stays usable.
    let mut s = connect(&p);
    for _ in 0..3 {
        s.write_all(
            format!("PUT /v1/sys/unseal HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 15\r\n\r\n{{\"reset\": true}}").as_bytes(),
        )
        .unwrap();
        let r = read_response(&mut s);
        assert!(r.starts_with("http/1.1 200"), "{r}");
        assert!(!r.contains("connection: close"), "{r}");
    }
}
