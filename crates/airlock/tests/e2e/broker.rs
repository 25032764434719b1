//! The credential broker end to end: the real `airlock broker run`, a real Airlock server
//! holding the keys (with a file audit device), a local HTTPS upstream standing in for the
//! providers (mapped with `--resolve`), and real clients as the child: curl, requests, httpx
//! (HTTP/2), the openai SDK (SSE streaming), Node, a raw WebSocket client.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::upstream::{self, Upstream};
use crate::util::*;

pub struct Setup {
    pub server: Proc,
    pub audit: PathBuf,
    pub dir: TempDir,
    pub up: Upstream,
    pub profile: PathBuf,
    pub ca: PathBuf,
    pub keys: Vec<(String, String)>,
}

fn random_key(prefix: &str) -> String {
    use std::fmt::Write;
    let mut s = prefix.to_string();
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (std::process::id() as u64) << 32;
    for _ in 0..32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        write!(
            s,
            "{}",
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize])
        )
        .unwrap();
    }
    s
}

pub const PROFILE: &str = r#"
[[binding]]
name = "openai"
provider = "openai"
secret = "secret/agents/test#OPENAI"
paths = ["/v1/"]

[[binding]]
name = "anthropic"
provider = "anthropic"
secret = "secret/agents/test#ANTHROPIC"

[[binding]]
name = "gemini"
secret = "secret/agents/test#GEMINI"
env = "GEMINI_API_KEY"
hosts = ["generativelanguage.googleapis.com"]
query = "key"

[[binding]]
name = "body"
secret = "secret/agents/test#BODY"
env = "BODY_TOKEN"
hosts = ["body.test"]
body = true
"#;

pub fn setup(tag: &str) -> Setup {
    setup_env(tag, &[])
}

/// [`setup`] with extra environment for the server (e.g. `SSL_CERT_FILE` for an engine's
/// upstream).
pub fn setup_env(tag: &str, server_env: &[(&str, &std::path::Path)]) -> Setup {
    let dir = tempdir(tag);
    let key = "22".repeat(32);
    std::fs::write(dir.join("unseal.key"), &key).unwrap();
    let audit = dir.join("audit.log");
    let cfg = dir.join("server.toml");
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
    let mut server = start_config_env(&cfg, server_env);
    let init = req(&server, "PUT", "/v1/sys/init", Some(json!({})));
    assert_eq!(init.status, 200, "{:?}", init.body);
    server.token = Some(init.body["root_token"].as_str().unwrap().to_string());
    let m = req(
        &server,
        "POST",
        "/v1/sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(m.status, 204, "{:?}", m.body);
    let keys = vec![
        ("OPENAI".to_string(), random_key("sk-test-openai-")),
        ("ANTHROPIC".to_string(), random_key("sk-ant-test-")),
        ("GEMINI".to_string(), random_key("AIzaTest")),
        ("BODY".to_string(), random_key("body-\"quoted\"-")),
    ];
    let data: serde_json::Map<String, serde_json::Value> =
        keys.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let w = req(
        &server,
        "POST",
        "/v1/secret/data/agents/test",
        Some(json!({ "data": data })),
    );
    assert_eq!(w.status, 200, "{:?}", w.body);
    let up = upstream::start();
    up.keys.set("api.openai.com", &keys[0].1);
    up.keys.set("tunnel.test", &keys[0].1);
    up.keys.set("api.anthropic.com", &keys[1].1);
    up.keys.set("generativelanguage.googleapis.com", &keys[2].1);
    up.keys.set("body.test", &keys[3].1);
    let ca = dir.join("upstream-ca.pem");
    std::fs::write(&ca, &up.ca_pem).unwrap();
    let profile = dir.join("airlock.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    Setup {
        server,
        audit,
        dir,
        up,
        profile,
        ca,
        keys,
    }
}

impl Setup {
    pub fn broker(&self, egress: &str, command: &[&str]) -> Command {
        self.broker_with(egress, &[], command)
    }

    pub fn broker_with(&self, egress: &str, opts: &[&str], command: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(["broker", "run", "--profile"])
            .arg(&self.profile)
            .arg("--extra-ca")
            .arg(&self.ca)
            .args(["--egress", egress, "--refresh", "0.5"])
            .args(opts);
        for h in upstream::HOSTS {
            c.arg("--resolve")
                .arg(format!("{h}=127.0.0.1:{}", self.up.port));
        }
        c.arg("--").args(command);
        c.env("AIRLOCK_ADDR", &self.server.addr)
            .env("AIRLOCK_TOKEN", self.server.token.as_deref().unwrap())
            .env("BROKER_TEST_MODE", egress)
            .env_remove("VAULT_TOKEN")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy");
        c
    }

    /// `broker serve` on `127.0.0.1:port` (root token, the stand-in hosts pinned), once it
    /// listens; killed when dropped.
    pub fn serve(&self, port: u16, opts: &[&str]) -> KillOnDrop {
        let mut c = Command::new(bin());
        c.args(["broker", "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--extra-ca")
            .arg(&self.ca)
            .args(opts)
            .env("AIRLOCK_ADDR", &self.server.addr)
            .env("AIRLOCK_TOKEN", self.server.token.as_deref().unwrap())
            .stdout(Stdio::null());
        for h in upstream::HOSTS {
            c.arg("--resolve")
                .arg(format!("{h}=127.0.0.1:{}", self.up.port));
        }
        let child = KillOnDrop(c.spawn().unwrap());
        wait_until("broker serve to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }

    /// `broker env --format json` for `agent` on the `broker serve` at `port`, written to a
    /// file (the CA beside it); returns the file and its contents.
    pub fn agent_env(&self, agent: &str, port: u16) -> (PathBuf, serde_json::Value) {
        let f = self.dir.join(format!("{agent}-{port}.json"));
        let ca = self.dir.join(format!("{agent}-{port}-ca.pem"));
        let (code, out, err) = cli(
            &self.server,
            &[
                "broker",
                "env",
                "--agent",
                agent,
                "--broker",
                &format!("127.0.0.1:{port}"),
                "--format",
                "json",
                "--ca-file",
                ca.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code, 0, "{err}");
        std::fs::write(&f, &out).unwrap();
        (f, serde_json::from_str(&out).unwrap())
    }

    /// No key value anywhere in the audit log; returns its text.
    pub fn audit_text(&self) -> String {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        for (name, v) in &self.keys {
            assert!(
                !text.contains(v.as_str()),
                "{name} key found in the audit log"
            );
        }
        text
    }
}

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_checked(what: &str, mut c: Command) -> String {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn clients_ready() -> bool {
    require(
        "python3 with requests, httpx[http2], openai and cryptography (pip install requests 'httpx[http2]' openai 'cryptography>=50')",
        python_has("requests")
            && python_has("httpx")
            && python_has("h2")
            && python_has("openai")
            && python_has("cryptography"),
    ) && require(
        "curl and node",
        Command::new("curl").arg("--version").output().is_ok()
            && Command::new("node").arg("--version").output().is_ok(),
    )
}

fn client_flow(egress: &str) {
    if !clients_ready() {
        return;
    }
    let s = setup(&format!("broker-{egress}"));
    let script = repo_root().join("tests/broker/clients.py");
    let text = run_checked(
        &format!("real clients through the broker ({egress})"),
        s.broker(egress, &["python3", script.to_str().unwrap()]),
    );
    for (name, v) in &s.keys {
        assert!(
            !text.contains(v.as_str()),
            "{name} key in the clients' output"
        );
    }
    // Audit: injections and blocks are recorded, off the data path but before exit.
    let audit = s.audit_text();
    assert!(
        audit.contains("\"type\":\"broker\""),
        "no broker entries in the audit log"
    );
    assert!(audit.contains("\"kind\":\"inject\""), "no inject entry");
    assert!(audit.contains("\"kind\":\"block\""), "no block entry");
    assert!(audit.contains("\"kind\":\"scrub\""), "no scrub entry");
    let v = Command::new(bin())
        .args(["audit", "verify"])
        .arg(&s.audit)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "audit chain: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn broker_real_clients_tunnel_mode() {
    client_flow("tunnel");
}

#[test]
fn broker_real_clients_inspect_mode() {
    client_flow("inspect");
}

#[test]
fn broker_child_environment_holds_no_secret() {
    let s = setup("broker-env");
    let pidfile = s.dir.join("pid");
    // The shell stays (no `exec`): /proc/<pid>/environ of a process in the middle of an
    // exec can read as empty.
    let script = format!("echo $$ > {}; sleep 3; true", pidfile.display());
    let t0 = Instant::now();
    let mut child = s
        .broker("tunnel", &["sh", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("child pid file", Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    let started = t0.elapsed();
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    let mut env = String::new();
    wait_until("the child's environment", Duration::from_secs(5), || {
        env = std::fs::read(format!("/proc/{pid}/environ"))
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default();
        !env.is_empty()
    });
    let vars: Vec<&str> = env.split('\0').collect();
    for (name, v) in &s.keys {
        assert!(
            !env.contains(v.as_str()),
            "{name} key in the child's environment"
        );
    }
    let root = s.server.token.clone().unwrap();
    assert!(
        !env.contains(&root),
        "Airlock token in the child's environment"
    );
    for k in ["AIRLOCK_TOKEN=", "VAULT_TOKEN="] {
        assert!(
            !vars.iter().any(|v| v.starts_with(k)),
            "{k} set in the child"
        );
    }
    for k in [
        "OPENAI_API_KEY=airlock-ph-",
        "ANTHROPIC_API_KEY=airlock-ph-",
        "GEMINI_API_KEY=airlock-ph-",
    ] {
        assert!(vars.iter().any(|v| v.starts_with(k)), "{k}… missing");
    }
    for k in [
        "HTTPS_PROXY=http://",
        "https_proxy=",
        "HTTP_PROXY=",
        "ALL_PROXY=",
        "NO_PROXY=",
        "SSL_CERT_FILE=",
        "REQUESTS_CA_BUNDLE=",
        "CURL_CA_BUNDLE=",
        "NODE_EXTRA_CA_CERTS=",
        "GIT_SSL_CAINFO=",
        "AWS_CA_BUNDLE=",
        "DENO_CERT=",
        "NODE_USE_ENV_PROXY=1",
    ] {
        assert!(
            vars.iter().any(|v| v.starts_with(k)),
            "{k} missing in the child"
        );
    }
    // The bundle holds the system roots plus the broker CA, not the broker CA alone.
    let bundle = vars
        .iter()
        .find_map(|v| v.strip_prefix("SSL_CERT_FILE="))
        .unwrap();
    let pem = std::fs::read_to_string(bundle).unwrap();
    assert!(
        pem.matches("BEGIN CERTIFICATE").count() > 10,
        "bundle lacks the system roots"
    );
    // The per-run CA is name-constrained to the bound hosts (tunnel mode).
    let ca_file = vars
        .iter()
        .find_map(|v| v.strip_prefix("AIRLOCK_BROKER_CA="))
        .unwrap();
    if let Ok(out) = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", ca_file])
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Name Constraints"), "{text}");
        assert!(text.contains("DNS:api.openai.com"), "{text}");
        assert!(
            text.contains("DNS:generativelanguage.googleapis.com"),
            "{text}"
        );
        // ... and vouches for no IP address.
        assert!(
            text.contains("Excluded:") && text.contains("IP:0.0.0.0/0.0.0.0"),
            "{text}"
        );
    }
    let st = child.wait().unwrap();
    assert!(st.success());
    // The bundle directory is removed when the broker ends.
    assert!(
        !std::path::Path::new(bundle).exists(),
        "CA bundle left behind"
    );
    println!("broker run → child started in {started:?}");
    // Exit codes pass through.
    let st = s
        .broker("tunnel", &["sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7));

    // A one-request run keeps its audit event: the broker flushes before it exits.
    let marker = random_key("last-");
    let url = format!("https://api.openai.com/v1/echo/{marker}");
    let out = s
        .broker(
            "tunnel",
            &[
                "sh",
                "-c",
                &format!("curl -sS -o /dev/null -w '%{{http_code}}' -H \"Authorization: Bearer $OPENAI_API_KEY\" {url}"),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    let audit = s.audit_text();
    let lines: Vec<&str> = audit.lines().filter(|l| l.contains(&marker)).collect();
    assert!(
        lines.iter().any(|l| l.contains("\"kind\":\"inject\"")),
        "the run's only request is missing from the audit log: {lines:?}"
    );

    // Signals reach the child, and its exit code comes back.
    let mut c = s.broker(
        "tunnel",
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 3",
        ],
    );
    let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
    assert_eq!(first_line(&mut child), "ready");
    let t = Instant::now();
    send_signal(child.id(), "TERM");
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(42), "SIGTERM did not reach the child");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn broker_rotation_takes_effect_without_restart() {
    let s = setup("broker-rotate");
    let rot = s.dir.join("rot");
    std::fs::create_dir_all(&rot).unwrap();
    let script = repo_root().join("tests/broker/rotation.py");
    let mut c = s.broker("tunnel", &["python3", script.to_str().unwrap()]);
    c.env("ROTATE_DIR", &rot);
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("child ready", Duration::from_secs(20), || {
        rot.join("ready").exists()
    });
    let new = random_key("sk-test-rotated-");
    let w = req(
        &s.server,
        "POST",
        "/v1/secret/data/agents/test",
        Some(
            json!({"data": {"OPENAI": new, "ANTHROPIC": s.keys[1].1, "GEMINI": s.keys[2].1, "BODY": s.keys[3].1}}),
        ),
    );
    assert_eq!(w.status, 200);
    s.up.keys.set("api.openai.com", &new);
    std::fs::write(rot.join("rotated"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "rotation failed: {text}");
    assert!(!text.contains(&new));
}

#[test]
fn broker_proxy_port_needs_the_agent_credential() {
    let s = setup("broker-auth");
    let script = repo_root().join("tests/broker/proxy_auth.py");
    run_checked(
        "proxy authentication",
        s.broker("tunnel", &["python3", script.to_str().unwrap()]),
    );
    // The refusals are audited (without the presented credential).
    let audit = s.audit_text();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"kind\":\"deny\"") && l.contains("\"status\":407")),
        "no audited 407"
    );
    // A token that may read the secrets but not write broker audit events is refused at start.
    let pol = req(
        &s.server,
        "PUT",
        "/v1/sys/policies/acl/reader",
        Some(
            json!({"policy": "path \"secret/data/agents/*\" { capabilities = [\"read\"] }\npath \"sys/internal/ui/mounts/*\" { capabilities = [\"read\"] }"}),
        ),
    );
    assert_eq!(pol.status, 204, "{:?}", pol.body);
    let t = req(
        &s.server,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["reader"]})),
    );
    let reader = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let out = s
        .broker("tunnel", &["true"])
        .env("AIRLOCK_TOKEN", &reader)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write broker audit events"), "{err}");
}

#[test]
fn broker_profile_errors_name_the_line() {
    let d = tempdir("broker-profile");
    let p = d.join("airlock.toml");
    std::fs::write(
        &p,
        "[[binding]]\nname = \"ok\"\nprovider = \"openai\"\nsecret = \"secret/a#K\"\n\n[[binding]]\nname = \"bad\"\nsecret = \"secret/a#K2\"\nhosts = [\"evil/host\"]\nheader = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["broker", "check", "--profile"])
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The line of the offending field (`hosts`), not just of its `[[binding]]`.
    assert!(err.contains("airlock.toml:9:"), "{err}");
    assert!(
        err.contains("binding \"bad\": host \"evil/host\" is not a valid DNS name"),
        "{err}"
    );
    let out = Command::new(bin())
        .args(["broker", "providers", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for want in [
        "openai",
        "anthropic",
        "gemini",
        "github",
        "stripe",
        "supabase",
    ] {
        assert!(names.contains(&want), "provider {want} missing");
    }
}

#[test]
fn broker_serve_two_agents_with_different_bindings() {
    if !require("python3 with requests", python_has("requests")) {
        return;
    }
    let s = setup("broker-serve");
    let put = |path: &str, body: serde_json::Value| {
        let r = req(&s.server, "POST", path, Some(body));
        assert!(
            r.status == 204 || r.status == 200,
            "{path}: {} {:?}",
            r.status,
            r.body
        );
    };
    put(
        "/v1/sys/broker/bindings/openai",
        json!({"provider": "openai", "secret": "secret/agents/test#OPENAI", "paths": ["/v1/"]}),
    );
    put(
        "/v1/sys/broker/bindings/anthropic",
        json!({"provider": "anthropic", "secret": "secret/agents/test#ANTHROPIC"}),
    );
    // Invalid bindings are refused with the problem named.
    let bad = req(
        &s.server,
        "POST",
        "/v1/sys/broker/bindings/bad",
        Some(json!({"secret": "secret/a#K", "hosts": ["a/b"], "header": "x"})),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body["errors"][0]
        .as_str()
        .unwrap()
        .contains("not a valid DNS name"));
    // Writing a binding decides where a secret may go: the writer must be able to read it.
    put(
        "/v1/sys/policies/acl/binding-writer",
        json!({"policy": "path \"sys/broker/bindings/*\" { capabilities = [\"create\", \"update\"] }\npath \"secret/data/agents/own\" { capabilities = [\"read\"] }"}),
    );
    let t = req(
        &s.server,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["binding-writer"], "ttl": "10m"})),
    );
    let writer = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let steal = with_token(
        &s.server,
        &writer,
        "POST",
        "/v1/sys/broker/bindings/steal",
        Some(
            json!({"secret": "secret/agents/test#OPENAI", "hosts": ["attacker.example"], "header": "authorization"}),
        ),
    );
    assert_eq!(steal.status, 403, "{:?}", steal.body);
    assert!(steal.body["errors"][0]
        .as_str()
        .unwrap()
        .contains("may read secret/data/agents/test"));
    assert_eq!(
        req(&s.server, "GET", "/v1/sys/broker/bindings/steal", None).status,
        404
    );
    let own = with_token(
        &s.server,
        &writer,
        "POST",
        "/v1/sys/broker/bindings/own",
        Some(
            json!({"secret": "secret/agents/own#K", "hosts": ["api.example.com"], "header": "authorization"}),
        ),
    );
    assert_eq!(own.status, 204, "{:?}", own.body);
    // ... and an agent spends its bindings' secrets: defining one that names a binding of a
    // secret the writer cannot read is refused too.
    put(
        "/v1/sys/policies/acl/agent-writer",
        json!({"policy": "path \"sys/broker/agents/*\" { capabilities = [\"create\", \"update\"] }\npath \"secret/data/agents/own\" { capabilities = [\"read\"] }"}),
    );
    let t = req(
        &s.server,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["agent-writer"], "ttl": "10m"})),
    );
    let agent_writer = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let spend = with_token(
        &s.server,
        &agent_writer,
        "POST",
        "/v1/sys/broker/agents/thief",
        Some(json!({"bindings": ["openai"]})),
    );
    assert_eq!(spend.status, 403, "{:?}", spend.body);
    let mine = with_token(
        &s.server,
        &agent_writer,
        "POST",
        "/v1/sys/broker/agents/mine",
        Some(json!({"bindings": ["own"]})),
    );
    assert_eq!(mine.status, 204, "{:?}", mine.body);
    assert_eq!(
        req(&s.server, "DELETE", "/v1/sys/broker/agents/mine", None).status,
        204
    );
    let missing = req(
        &s.server,
        "POST",
        "/v1/sys/broker/agents/x",
        Some(json!({"bindings": ["nope"]})),
    );
    assert_eq!(missing.status, 400);
    put(
        "/v1/sys/broker/agents/voice",
        json!({"bindings": ["openai"], "egress": "inspect"}),
    );
    put(
        "/v1/sys/broker/agents/coder",
        json!({"bindings": ["anthropic"], "egress": "inspect"}),
    );
    let list = req(&s.server, "LIST", "/v1/sys/broker/agents", None);
    assert_eq!(list.body["data"]["keys"], json!(["coder", "voice"]));

    // The broker's own token is short-lived but renewable: serve keeps it alive.
    let t = req(
        &s.server,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["root"], "ttl": "6s", "explicit_max_ttl": "1h"})),
    );
    let serve_token = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let serve_token_made = Instant::now();
    let mut c = Command::new(bin());
    c.args([
        "broker",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--refresh",
        "0.5",
        "--extra-ca",
    ])
    .arg(&s.ca)
    .env("AIRLOCK_ADDR", &s.server.addr)
    .env("AIRLOCK_TOKEN", &serve_token);
    for h in upstream::HOSTS {
        c.arg("--resolve")
            .arg(format!("{h}=127.0.0.1:{}", s.up.port));
    }
    let mut serve = c.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = serve.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = line.strip_prefix("Broker listening on ") {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("broker serve did not start");
    let env_of = |agent: &str| {
        let f = s.dir.join(format!("{agent}.json"));
        let out = Command::new(bin())
            .args([
                "broker",
                "env",
                "--agent",
                agent,
                "--broker",
                &addr,
                "--format",
                "json",
                "--ttl",
                "10m",
                "--ca-file",
            ])
            .arg(s.dir.join(format!("{agent}-ca.pem")))
            .env("AIRLOCK_ADDR", &s.server.addr)
            .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&f, &out.stdout).unwrap();
        f
    };
    let voice = env_of("voice");
    let coder = env_of("coder");
    // Placeholders are stable for an agent (derived), credentials are fresh.
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env_of("voice")).unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_slice(&std::fs::read(&voice).unwrap()).unwrap();
    assert_eq!(again["OPENAI_API_KEY"], first["OPENAI_API_KEY"]);
    let script = repo_root().join("tests/broker/two_agents.py");
    let mut c = Command::new("python3");
    c.arg(script).arg(&voice).arg(&coder);
    for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"] {
        c.env_remove(k);
    }
    let out = c.output().unwrap();
    // Agents come and go without a restart: a new agent's credential starts working, a
    // deleted agent's stops.
    let credential = |agent: &str| {
        let r = req(
            &s.server,
            "POST",
            &format!("/v1/sys/broker/agents/{agent}/credential"),
            Some(json!({"ttl": "10m"})),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["data"]["credential"].as_str().unwrap().to_string()
    };
    let connect = |agent: &str, cred: &str| -> String {
        use base64::Engine;
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(&addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{agent}:{cred}"));
        write!(
            t,
            "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let n = t.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let voice_cred = credential("voice");
    assert!(connect("voice", &voice_cred).contains(" 200"));
    put(
        "/v1/sys/broker/agents/late",
        json!({"bindings": ["openai"]}),
    );
    let late_cred = credential("late");
    wait_until("the new agent is loaded", Duration::from_secs(15), || {
        connect("late", &late_cred).contains(" 200")
    });
    assert_eq!(
        req(&s.server, "DELETE", "/v1/sys/broker/agents/voice", None).status,
        204
    );
    wait_until("the deleted agent is gone", Duration::from_secs(15), || {
        connect("voice", &voice_cred).contains(" 407")
    });
    let wait = Duration::from_secs(9).saturating_sub(serve_token_made.elapsed());

    std::thread::sleep(wait);
    let alive = req(
        &s.server,
        "POST",
        "/v1/auth/token/lookup",
        Some(json!({ "token": serve_token })),
    );
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(
        alive.status, 200,
        "broker serve let its 6 s token expire: {:?}",
        alive.body
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(
        out.status.success(),
        "two agents on one broker serve failed:\n{text}"
    );
    // `broker run --agent` without a profile uses an agent stored in Airlock.
    let out = Command::new(bin())
        .args(["broker", "run", "--agent", "late", "--"])
        .args([
            "sh",
            "-c",
            "test -z \"$ANTHROPIC_API_KEY\" && echo \"$OPENAI_API_KEY\"",
        ])
        .current_dir(&s.dir)
        .env("AIRLOCK_ADDR", &s.server.addr)
        .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("airlock-ph-openai_api_key-"));
    s.audit_text();
}

#[test]
fn broker_body_injection_compression_and_ssrf_guard() {
    let s = setup("broker-misc");
    let script = repo_root().join("tests/broker/misc.py");
    let text = run_checked(
        "broker misc checks",
        s.broker("tunnel", &["python3", script.to_str().unwrap()]),
    );
    assert!(!text.contains(&s.keys[3].1));
    s.audit_text();
}

#[test]
fn broker_fails_closed_and_never_waits_on_audit() {
    let s = setup("broker-failclosed");
    let sync = s.dir.join("sync");
    std::fs::create_dir_all(&sync).unwrap();
    let script = repo_root().join("tests/broker/failclosed.py");
    let mut c2 = s.broker_with(
        "tunnel",
        &["--max-stale", "1.5"],
        &["python3", script.to_str().unwrap()],
    );
    c2.env("SYNC_DIR", &sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c2.spawn().unwrap();
    let pid = s.server.child.id().to_string();
    wait_until("ready", Duration::from_secs(20), || {
        sync.join("ready").exists()
    });
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    std::fs::write(sync.join("stopped"), "").unwrap();
    let ok = std::panic::catch_unwind(|| {
        wait_until("checked", Duration::from_secs(30), || {
            sync.join("checked").exists()
        })
    });
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    std::fs::write(sync.join("resumed"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(
        ok.is_ok(),
        "child never finished its frozen-server checks:\n{text}"
    );
    assert!(out.status.success(), "fail-closed checks failed:\n{text}");
}

#[test]
fn broker_allowlist_egress_refuses_unlisted_hosts() {
    let s = setup("broker-allowlist");
    let script = repo_root().join("tests/broker/allowlist.py");
    run_checked(
        "allowlist egress",
        s.broker("allowlist", &["python3", script.to_str().unwrap()]),
    );
}

#[test]
fn broker_wrap_mcp_moves_secrets_and_is_idempotent() {
    let s = setup("broker-mcp");
    let f = s.dir.join("mcp.json");
    let original = json!({"mcpServers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                   "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_wrapmcp_secret_value", "LOG_LEVEL": "debug"}},
        "remote": {"url": "https://mcp.example.com/sse"}
    }});
    std::fs::write(&f, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    let run = || {
        Command::new(bin())
            .args(["broker", "wrap-mcp"])
            .arg(&f)
            .args(["--profile", "/etc/airlock/agents.toml"])
            .env("AIRLOCK_ADDR", &s.server.addr)
            .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
            .output()
            .unwrap()
    };
    let out = run();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("ghp_wrapmcp_secret_value"),
        "secret printed: {text}"
    );
    let backup = std::fs::read_to_string(s.dir.join("mcp.json.bak")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&backup).unwrap(),
        original
    );
    let first = std::fs::read_to_string(&f).unwrap();
    assert!(
        !first.contains("ghp_wrapmcp_secret_value"),
        "secret left in mcp.json"
    );
    let doc: serde_json::Value = serde_json::from_str(&first).unwrap();
    // The command is this binary, by absolute path (hosts often run with a short PATH).
    let cmd = doc["mcpServers"]["github"]["command"].as_str().unwrap();
    assert!(
        std::path::Path::new(cmd).is_absolute() && cmd.ends_with("/airlock"),
        "{cmd}"
    );
    assert_eq!(
        doc["mcpServers"]["github"]["args"],
        json!([
            "broker",
            "run",
            "--profile",
            "/etc/airlock/agents.toml",
            "--agent",
            "github",
            "--",
            "npx",
            "-y",
            "@modelcontextprotocol/server-github"
        ])
    );
    assert_eq!(
        doc["mcpServers"]["github"]["env"],
        json!({"LOG_LEVEL": "debug"})
    );
    assert_eq!(
        doc["mcpServers"]["remote"],
        original["mcpServers"]["remote"]
    );
    let stored = req(&s.server, "GET", "/v1/secret/data/mcp/github", None);
    assert_eq!(
        stored.body["data"]["data"]["GITHUB_PERSONAL_ACCESS_TOKEN"],
        "ghp_wrapmcp_secret_value"
    );
    // The backup still holds the secret: owner-only.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.dir.join("mcp.json.bak"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "backup mode {mode:o}");
    }
    // The printed profile lines bind the variable (the github preset), so the wrapped server
    // starts: run its new command line, with a stand-in for the server itself.
    let snippet = text
        .split_once("Add to your profile (/etc/airlock/agents.toml):\n\n")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("no profile lines printed: {text}"));
    assert!(snippet.contains("provider = \"github\""), "{snippet}");
    let profile = s.dir.join("mcp-agents.toml");
    std::fs::write(&profile, &snippet).unwrap();
    let mut args: Vec<String> = doc["mcpServers"]["github"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    args[3] = profile.display().to_string();
    let dash = args.iter().position(|a| a == "--").unwrap();
    args.truncate(dash + 1);
    args.extend([
        "sh".into(),
        "-c".into(),
        "echo \"$GITHUB_PERSONAL_ACCESS_TOKEN\"".into(),
    ]);
    let started = Command::new(bin())
        .args(&args)
        .env("AIRLOCK_ADDR", &s.server.addr)
        .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&started.stdout);
    assert!(
        started.status.success() && said.starts_with("airlock-ph-"),
        "wrapped server did not start with a placeholder: {said} {}",
        String::from_utf8_lossy(&started.stderr)
    );
    // Again: nothing changes.
    let out = run();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to change"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), first);
}

#[test]
fn broker_wrap_mcp_resolves_env_references_and_writes_the_profile() {
    let s = setup("broker-mcp-env");
    let f = s.dir.join("mcp.json");
    let original = json!({"mcpServers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                   "env": {"GITHUB_TOKEN": "${env:GITHUB_TOKEN}"}},
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem"]}
    }});
    std::fs::write(&f, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    let run = || {
        Command::new(bin())
            .current_dir(&s.dir)
            .args([
                "broker",
                "wrap-mcp",
                "mcp.json",
                "--profile",
                "agents.toml",
                "--write-profile",
            ])
            .env("AIRLOCK_ADDR", &s.server.addr)
            .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
            .env("GITHUB_TOKEN", "ghp_from_the_shell_env")
            .output()
            .unwrap()
    };
    let out = run();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("ghp_from_the_shell_env"), "{text}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    let profile = std::fs::canonicalize(s.dir.join("agents.toml")).unwrap();
    let stored = req(&s.server, "GET", "/v1/secret/data/mcp/github", None);
    assert_eq!(
        stored.body["data"]["data"]["GITHUB_TOKEN"],
        "ghp_from_the_shell_env"
    );
    let profile_text = std::fs::read_to_string(&profile).unwrap();
    for server in ["github", "files"] {
        let args: Vec<String> = doc["mcpServers"][server]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        // The profile is named by an absolute path.
        assert_eq!(
            std::fs::canonicalize(&args[3]).unwrap(),
            profile,
            "{args:?}"
        );
        assert!(
            profile_text.contains(&format!("[agents.\"{server}\"]")),
            "{profile_text}"
        );
        // The rewritten command starts, from another directory, with a stand-in server.
        let dash = args.iter().position(|a| a == "--").unwrap();
        let mut args = args[..=dash].to_vec();
        args.extend(["sh".into(), "-c".into(), "echo \"[$GITHUB_TOKEN]\"".into()]);
        let started = Command::new(doc["mcpServers"][server]["command"].as_str().unwrap())
            .current_dir("/")
            .args(&args)
            .env("AIRLOCK_ADDR", &s.server.addr)
            .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&started.stdout).trim().to_string();
        assert!(
            started.status.success(),
            "{server} did not start: {said} {}",
            String::from_utf8_lossy(&started.stderr)
        );
        if server == "github" {
            assert!(said.starts_with("[airlock-ph-"), "{said}");
        } else {
            assert_eq!(said, "[]");
        }
    }
    // Again: nothing changes, and the profile is not extended twice.
    let out = run();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&profile).unwrap(), profile_text);
}
