//! Test support: start `airlock` processes, talk HTTP/1.1 to them, find external services.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_airlock")
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Root of the repository (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A dependency the test needs. In CI a missing one fails the test; elsewhere it skips.
/// Returns false when the test should return early.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("{what} is required in CI but is not available");
    }
    eprintln!("SKIPPED: {what} is not available on this machine");
    false
}

/// A temporary directory removed when dropped.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tempdir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!(
        "airlock-e2e-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// A running `airlock server` child process, killed on drop.
pub struct Proc {
    pub child: Child,
    pub addr: String,
    pub token: Option<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_listen(child: &mut Child) -> (String, Vec<String>) {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.push(line.clone());
            if let Some(addr) = line.strip_prefix("Listening on ") {
                let _ = tx.send((addr.trim().to_string(), lines.clone()));
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("server did not print its listen address within 20s")
}

pub fn start_dev() -> Proc {
    let mut child = Command::new(bin())
        .args([
            "server",
            "--dev",
            "--dev-listen-address",
            "127.0.0.1:0",
            "--dev-root-token-id",
            "root",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn airlock");
    let (addr, lines) = wait_for_listen(&mut child);
    assert!(lines.iter().any(|l| l.starts_with("Unseal key (base64): ")));
    Proc {
        child,
        addr,
        token: Some("root".into()),
    }
}

pub fn start_config(config: &Path) -> Proc {
    start_config_env(config, &[])
}

/// [`start_config`] with extra environment variables for the server.
pub fn start_config_env(config: &Path, env: &[(&str, &Path)]) -> Proc {
    let mut child = Command::new(bin())
        .args(["server", "--config"])
        .arg(config)
        .args(["--log-level", "warn"])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn airlock");
    let (addr, _) = wait_for_listen(&mut child);
    Proc {
        child,
        addr,
        token: None,
    }
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub raw: Vec<u8>,
    pub headers: String,
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    extra: &[(&str, &str)],
) -> Resp {
    let hostport = addr.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let headers = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut payload = buf[split + 4..].to_vec();
    if headers
        .to_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    let status: u16 = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    Resp {
        status,
        body,
        raw: payload,
        headers,
    }
}

/// Decodes a chunked body; a body cut short (a peer that exits while writing, as the `bao`
/// CLI's callback server can) gives what arrived instead of a panic.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let start = i + 2;
        let end = (start + n).min(b.len());
        out.extend_from_slice(&b[start..end]);
        match b.get(start + n + 2..) {
            Some(rest) => b = rest,
            None => break,
        }
    }
    out
}

pub fn req(p: &Proc, method: &str, path: &str, body: Option<Value>) -> Resp {
    let b = body.map(|v| serde_json::to_vec(&v).unwrap());
    http(&p.addr, method, path, p.token.as_deref(), b.as_deref(), &[])
}

pub fn with_token(p: &Proc, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let b = body.map(|v| serde_json::to_vec(&v).unwrap());
    http(&p.addr, method, path, Some(token), b.as_deref(), &[])
}

/// Runs the airlock CLI against `p`; returns (exit code, stdout, stderr).
pub fn cli(p: &Proc, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut c = Command::new(bin());
    c.args(args)
        .env("AIRLOCK_ADDR", &p.addr)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = &p.token {
        c.env("AIRLOCK_TOKEN", t);
    }
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Path of the real OpenBao binary, installing it via ../shared/tools/openbao.
pub fn openbao() -> Option<String> {
    if let Ok(b) = std::env::var("BAO") {
        return Some(b);
    }
    let tool = repo_root().join("../shared/tools/openbao");
    if !tool.exists() {
        return None;
    }
    let out = Command::new("bash").arg(tool).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then_some(p)
}

pub fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real OpenBao dev server, killed on drop.
pub struct Bao {
    pub child: Child,
    pub addr: String,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_openbao(bin: &str) -> Bao {
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openbao");
    let addr = format!("http://127.0.0.1:{port}");
    let a = addr.clone();
    wait_until("openbao health", Duration::from_secs(30), || {
        TcpStream::connect(a.trim_start_matches("http://")).is_ok()
            && http(&a, "GET", "/v1/sys/health", None, None, &[]).status == 200
    });
    Bao { child, addr }
}

/// The first line a child prints on stdout (piped), trimmed.
pub fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    line.trim().to_string()
}

/// Sends `sig` (e.g. "TERM") to a process this test started.
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Mints, with openssl, a CA (`ca.pem`, `ca.key`) and a leaf for localhost and 127.0.0.1
/// signed by it (`cert.pem`, `key.pem`, EC P-256) in `dir`. False (after `require`) when
/// openssl is missing.
pub fn openssl_certs(dir: &Path) -> bool {
    if !require(
        "openssl (to mint a test certificate)",
        Command::new("openssl").arg("version").output().is_ok(),
    ) {
        return false;
    }
    let ossl = |args: &[&str]| {
        let st = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,DNS:airlock.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "1",
            "-subj",
            "/CN=airlock-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat();
    ossl(&ca);
    let csr = [
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ],
    ]
    .concat();
    ossl(&csr);
    ossl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    true
}

/// A forward proxy for tests: answers `CONNECT host:port` by connecting to 127.0.0.1:port
/// (every `*.test` name lives here), then relays bytes both ways. It records each tunnel's
/// target and `Proxy-Authorization` header. Threads end with their connections.
pub struct TestProxy {
    pub url: String,
    pub tunnels: Tunnels,
}

/// Each tunnel's target and `Proxy-Authorization` header.
pub type Tunnels = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

pub fn test_proxy() -> TestProxy {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let tunnels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = std::sync::Arc::clone(&tunnels);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let t = std::sync::Arc::clone(&t);
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match c.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let target = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let auth = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
                    .map(str::to_string);
                t.lock().unwrap().push((target.clone(), auth));
                let port = target.rsplit(':').next().unwrap_or("0");
                let Ok(up) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
                    let _ = c.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                let _ = c.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
                let (mut a, mut b2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let (mut c2, mut up2) = (c, up);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut up2);
                    let _ = up2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut b2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    TestProxy { url, tunnels }
}

/// `start_dev` with extra environment for the server process.
pub fn start_dev_env(env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args([
        "server",
        "--dev",
        "--dev-listen-address",
        "127.0.0.1:0",
        "--dev-root-token-id",
        "root",
        "--log-level",
        "warn",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn airlock");
    let (addr, _) = wait_for_listen(&mut child);
    Proc {
        child,
        addr,
        token: Some("root".into()),
    }
}

/// A finished command's stdout and stderr, together (printed, for the test's log).
pub fn output_text(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    text
}
