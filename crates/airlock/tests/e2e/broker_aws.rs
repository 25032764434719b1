//! AWS SigV4 re-signing through `airlock broker run`, with real AWS clients (boto3 and the
//! AWS CLI) against moto in server mode over TLS. Moto checks every request's signature
//! against the IAM keys it knows, so a request that reached it signed with the agent's
//! placeholder would fail: its answers prove the broker re-signed with the real key. The
//! child never holds the real key id or secret (`tests/broker/aws_sigv4.py` lists the
//! checks). Credentials come from KV (static keys) or, leased, from Airlock's AWS engine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::broker::{setup, setup_env, Setup};
use crate::pg_private::TestCa;
use crate::util::*;

const AWS_HOSTS: &[&str] = &[
    "s3.amazonaws.com",
    "s3.us-east-1.amazonaws.com",
    "sts.amazonaws.com",
    "sts.us-east-1.amazonaws.com",
    "iam.amazonaws.com",
    "evil.test",
    "s3.eu-west-1.amazonaws.com",
];

const PROFILE: &str = r#"
[[binding]]
name = "aws"
provider = "aws"
secret = "secret/aws/prod"
hosts = ["s3.amazonaws.com", "s3.us-east-1.amazonaws.com", "sts.amazonaws.com", "sts.us-east-1.amazonaws.com", "iam.amazonaws.com", "s3.eu-west-1.amazonaws.com"]
services = ["s3", "sts"]
regions = ["us-east-1", "eu-west-1"]
"#;

const LEASED_PROFILE: &str = r#"
[[binding]]
name = "aws"
provider = "aws"
credentials = "aws/creds/agent"
hosts = ["s3.amazonaws.com", "sts.amazonaws.com", "sts.us-east-1.amazonaws.com"]
"#;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ready() -> bool {
    require(
        "moto[server], boto3, requests and the AWS CLI (pip install 'moto[server]' boto3 requests awscli)",
        python_has("moto")
            && python_has("boto3")
            && python_has("requests")
            && Command::new("aws")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
    )
}

fn script() -> PathBuf {
    repo_root().join("tests/broker/aws_sigv4.py")
}

/// A test CA whose leaf covers the AWS hosts and 127.0.0.1, written to `dir`:
/// (CA file, leaf file, key file).
fn moto_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut names = AWS_HOSTS.to_vec();
    names.push("127.0.0.1");
    let ca = TestCa::new(&names);
    let files = (
        dir.join("moto-ca.pem"),
        dir.join("moto.pem"),
        dir.join("moto-key.pem"),
    );
    std::fs::write(&files.0, &ca.ca_pem).unwrap();
    std::fs::write(&files.1, &ca.cert_pem).unwrap();
    std::fs::write(&files.2, &ca.key_pem).unwrap();
    files
}

/// moto over TLS on a free port; with `auth`, it checks signatures after its first three
/// calls; `log` receives its request log.
fn start_moto(cert: &Path, key: &Path, auth: bool, log: Option<&Path>) -> (Moto, u16) {
    let port = free_port();
    let mut c = Command::new("moto_server");
    c.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .arg("-c")
        .arg(cert)
        .arg("-k")
        .arg(key)
        .stdout(Stdio::null())
        .stderr(match log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        });
    if auth {
        c.env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
    }
    let moto = Moto(c.spawn().expect("moto_server"));
    wait_until("moto to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (moto, port)
}

/// The IAM user `brokered` (allow-all) and its key, made in a fresh moto.
fn moto_user(port: u16) -> (String, String) {
    let out = Command::new("python3")
        .arg(script())
        .args(["setup", &format!("https://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let real: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        real["access_key"].as_str().unwrap().to_string(),
        real["secret_key"].as_str().unwrap().to_string(),
    )
}

/// Trust moto's CA too (one bundle with the stand-in upstream's).
fn trust(s: &mut Setup, ca_file: &Path) {
    let both = s.dir.join("cas.pem");
    let up = std::fs::read_to_string(&s.ca).unwrap();
    let ca = std::fs::read_to_string(ca_file).unwrap();
    std::fs::write(&both, format!("{up}\n{ca}")).unwrap();
    s.ca = both;
}

/// `broker run` of the script, with the AWS client environment and every AWS host pinned to
/// `port` (eu-west-1 to `open_port`).
fn aws_child(s: &Setup, egress: &str, port: u16, open_port: u16) -> Command {
    let aws_config = s.dir.join("aws-config");
    std::fs::write(
        &aws_config,
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
    )
    .unwrap();
    let mut opts: Vec<String> = Vec::new();
    for h in AWS_HOSTS {
        let p = if h.contains("eu-west-1") {
            open_port
        } else {
            port
        };
        opts.push("--resolve".into());
        opts.push(format!("{h}=127.0.0.1:{p}"));
    }
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let script = script();
    let mut c = s.broker_with(egress, &opts, &["python3", script.to_str().unwrap()]);
    c.env("AWS_CONFIG_FILE", &aws_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", s.dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    c
}

/// Runs the checks; their output.
fn run(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{what} failed:\n{text}");
    assert!(text.contains("aws-sigv4: 0 failed"), "{text}");
    text
}

fn flow(egress: &str) {
    if !ready() {
        return;
    }
    let mut s = setup(&format!("broker-aws-{egress}"));
    let (ca_file, cert, key) = moto_tls(&s.dir);
    let (moto, port) = start_moto(&cert, &key, true, None);
    // A second moto that does not check signatures, for presigned URLs (moto cannot serve
    // them while it checks); its request log shows the URL the broker sent.
    let open_log = s.dir.join("moto-open.log");
    let (moto_open, open_port) = start_moto(&cert, &key, false, Some(&open_log));
    let (real_id, real_secret) = moto_user(port);
    let w = req(
        &s.server,
        "POST",
        "/v1/secret/data/aws/prod",
        Some(json!({"data": {"access_key": real_id, "secret_key": real_secret}})),
    );
    assert_eq!(w.status, 200, "{:?}", w.body);
    std::fs::write(&s.profile, PROFILE).unwrap();
    trust(&mut s, &ca_file);
    let text = run(
        aws_child(&s, egress, port, open_port),
        &format!("aws checks ({egress})"),
    );
    assert!(
        !text.contains(&real_id) && !text.contains(&real_secret),
        "a real AWS key in the output"
    );
    let audit = s.audit_text();
    assert!(
        !audit.contains(&real_secret) && !audit.contains(&real_id),
        "a real AWS key in the audit log"
    );
    assert!(
        audit.contains("\"binding\":\"aws\""),
        "no aws binding in the audit log"
    );
    for reason in [
        "not this agent's placeholder",
        "service \\\"iam\\\" is not bound",
        "does not verify",
        "Signature Version 2",
    ] {
        assert!(audit.contains(reason), "no block audited for: {reason}");
    }
    // The presigned URL moto saw carries the real key id and verifies with the real secret.
    let log = std::fs::read_to_string(&open_log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("\"GET /airlock-broker-test/p.txt?") && l.contains("X-Amz-Signature"))
        .unwrap_or_else(|| panic!("no presigned GET in moto's log:\n{log}"));
    let target = line
        .split('"')
        .nth(1)
        .and_then(|r| r.split(' ').nth(1))
        .unwrap();
    let out = Command::new("python3")
        .arg(script())
        .args([
            "verify-presigned",
            "s3.eu-west-1.amazonaws.com",
            target,
            &real_secret,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["key_id"], real_id.as_str(), "presigned URL key id");
    assert_eq!(
        v["ok"], true,
        "the re-signed presigned URL does not verify with the real secret"
    );
    drop(moto);
    drop(moto_open);
}

#[test]
fn broker_resigns_aws_sigv4_for_boto3_and_the_aws_cli() {
    flow("tunnel");
}

#[test]
fn broker_aws_sigv4_under_inspect_blocks_other_endpoints() {
    flow("inspect");
}

#[test]
fn broker_aws_sigv4_with_leased_credentials_from_the_aws_engine() {
    if !ready() {
        return;
    }
    let tls = tempdir("broker-aws-leased-tls");
    let (ca_file, cert, key) = moto_tls(&tls);
    let (moto, port) = start_moto(&cert, &key, true, None);
    // The server's AWS engine reaches moto over TLS, trusting the test CA.
    let mut s = setup_env("broker-aws-leased", &[("SSL_CERT_FILE", ca_file.as_path())]);
    let (root_id, root_secret) = moto_user(port);
    let url = format!("https://127.0.0.1:{port}");
    let ok = |r: Resp| assert!(r.status < 300, "{}: {}", r.status, r.body);
    ok(req(
        &s.server,
        "POST",
        "/v1/sys/mounts/aws",
        Some(json!({"type": "aws"})),
    ));
    ok(req(
        &s.server,
        "POST",
        "/v1/aws/config/root",
        Some(
            json!({"access_key": root_id, "secret_key": root_secret, "region": "us-east-1",
                    "iam_endpoint": url, "sts_endpoint": url, "max_retries": 1}),
        ),
    ));
    // Leases of 9 s: the broker fetches new credentials after 6 s.
    ok(req(
        &s.server,
        "POST",
        "/v1/aws/config/lease",
        Some(json!({"lease": "9s", "lease_max": "1h"})),
    ));
    let allow =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    ok(req(
        &s.server,
        "POST",
        "/v1/aws/roles/agent",
        Some(json!({"credential_type": "iam_user", "policy_document": allow})),
    ));
    std::fs::write(&s.profile, LEASED_PROFILE).unwrap();
    trust(&mut s, &ca_file);
    let mut c = aws_child(&s, "tunnel", port, port);
    c.env("AWS_CHECKS", "env,sts-whoami,s3-crud,sts-rotation")
        .env("AWS_ROTATION", "1")
        .env("EXPECT_USER", "vault-root-agent-");
    let text = run(c, "aws checks with leased credentials");
    assert!(text.contains("ok sts-rotation"), "{text}");
    assert!(!text.contains(&root_secret));
    // The broker revoked its leases when it stopped: no IAM user of the role is left.
    let out = Command::new("python3")
        .arg(script())
        .args(["users", &url, &root_id, &root_secret])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !users.iter().any(|u| u.starts_with("vault-root-agent-")),
        "users left behind: {users:?}"
    );
    drop(moto);
}
