//! AWS SigV4 re-signing through `airlock broker run`, with real AWS clients (boto3 and the
//! AWS CLI) against moto in server mode over TLS. Moto checks every request's signature
//! against the IAM keys it knows, so a request that reached it signed with the agent's
//! placeholder would fail: its answers prove the broker re-signed with the real key. The
//! child never holds the real key id or secret (`tests/broker/aws_sigv4.py` lists the
//! checks).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::broker::setup;
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

fn flow(egress: &str) {
    if !ready() {
        return;
    }
    let mut s = setup(&format!("broker-aws-{egress}"));
    let ca = crate::pg_private::TestCa::new(AWS_HOSTS);
    let (cert, key) = (s.dir.join("moto.pem"), s.dir.join("moto-key.pem"));
    std::fs::write(&cert, &ca.cert_pem).unwrap();
    std::fs::write(&key, &ca.key_pem).unwrap();
    let port = free_port();
    let moto = Moto(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .arg("-c")
            .arg(&cert)
            .arg("-k")
            .arg(&key)
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server"),
    );
    // A second moto that does not check signatures, for presigned URLs (see the script);
    // its request log shows the URL the broker sent.
    let open_port = free_port();
    let open_log = s.dir.join("moto-open.log");
    let moto_open = Moto(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &open_port.to_string()])
            .arg("-c")
            .arg(&cert)
            .arg("-k")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&open_log).unwrap())
            .spawn()
            .expect("moto_server"),
    );
    for p in [port, open_port] {
        wait_until("moto to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
        });
    }
    let script = repo_root().join("tests/broker/aws_sigv4.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["setup", &format!("https://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let real: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (real_id, real_secret) = (
        real["access_key"].as_str().unwrap().to_string(),
        real["secret_key"].as_str().unwrap().to_string(),
    );
    let w = req(
        &s.server,
        "POST",
        "/v1/secret/data/aws/prod",
        Some(json!({"data": {"access_key": real_id, "secret_key": real_secret}})),
    );
    assert_eq!(w.status, 200, "{:?}", w.body);
    std::fs::write(&s.profile, PROFILE).unwrap();
    // One bundle with both test CAs (the stand-in upstream's and moto's).
    let both = s.dir.join("cas.pem");
    let up = std::fs::read_to_string(&s.ca).unwrap();
    std::fs::write(&both, format!("{up}\n{}", ca.ca_pem)).unwrap();
    s.ca = both;
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
    let mut c = s.broker_with(egress, &opts, &["python3", script.to_str().unwrap()]);
    c.env("AWS_CONFIG_FILE", &aws_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", s.dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "aws checks failed ({egress}):\n{text}"
    );
    assert!(text.contains("aws-sigv4: 0 failed"), "{text}");
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
        .arg(&script)
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
