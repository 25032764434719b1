//! `airlock agent -config agent.hcl` with Vault agent configs: AppRole auto-auth with a
//! response-wrapped secret ID and JWT auto-auth, file sinks, templates re-rendered within a
//! second of a KV write (their command run once per change), `wait` quiescence, polling
//! when the event log is not readable, dynamic PostgreSQL credentials renewed and then
//! replaced, env templates feeding a restarted child. `agent/compat.rs`: the same templates
//! rendered byte for byte as the real OpenBao agent does, and start-up errors naming file
//! and line.

mod compat;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::wait_until;
use crate::database::{psql_ok, role_exists};
use crate::util::*;

/// A running agent (airlock's or OpenBao's), stopped on drop: SIGTERM, then SIGKILL.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the agent to exit by itself; its exit code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the agent did not exit within {limit:?}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `prog agent <args>` in `dir`, its log in `dir/<name>.log`.
fn spawn_agent(prog: &str, args: &[&str], dir: &Path, name: &str, env: &[(&str, &str)]) -> Agent {
    let log = dir.join(format!("{name}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let mut c = Command::new(prog);
    c.arg("agent")
        .args(args)
        .current_dir(dir)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_ADDR")
        .env_remove("BAO_TOKEN")
        .env_remove("AIRLOCK_ADDR")
        .env_remove("AIRLOCK_TOKEN")
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f);
    for (k, v) in env {
        c.env(k, v);
    }
    Agent {
        child: c.spawn().unwrap(),
        log,
    }
}

fn airlock_agent(config: &Path, dir: &Path) -> Agent {
    spawn_agent(
        bin(),
        &["-config", config.to_str().unwrap()],
        dir,
        "airlock-agent",
        &[],
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn ok(r: Resp, what: &str) -> Value {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {:?}",
        r.status,
        r.body
    );
    r.body
}

fn write(p: &Proc, path: &str, body: Value) {
    ok(req(p, "POST", &format!("/v1/{path}"), Some(body)), path);
}

/// Creates the `agent` policy (reads of secret/, kv1/, database/creds and the event log).
fn agent_policy(p: &Proc) {
    let policy = r#"
path "secret/data/*" { capabilities = ["read"] }
path "kv1/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
path "sys/airlock/events" { capabilities = ["read"] }
"#;
    ok(
        req(
            p,
            "PUT",
            "/v1/sys/policies/acl/agent",
            Some(json!({"policy": policy})),
        ),
        "policy",
    );
}

/// A token_file auto_auth block for `token`.
fn token_file_auth(dir: &Path, token: &str) -> String {
    let f = dir.join("vault-token");
    std::fs::write(&f, token).unwrap();
    format!(
        "auto_auth {{\n  method \"token_file\" {{\n    config = {{ token_file_path = \"{}\" }}\n  }}\n}}\n",
        f.display()
    )
}

#[test]
fn approle_with_a_wrapped_secret_id_writes_the_sink_and_follows_kv_writes() {
    let p = start_dev();
    let dir = tempdir("agent-approle");
    write(&p, "sys/auth/approle", json!({"type": "approle"}));
    write(&p, "sys/mounts/kv1", json!({"type": "kv"}));
    agent_policy(&p);
    write(
        &p,
        "auth/approle/role/web",
        json!({"token_policies": ["agent"], "token_ttl": "3s", "token_max_ttl": "60s"}),
    );
    write(
        &p,
        "secret/data/app",
        json!({"data": {"password": "pw-1", "user": "alice"}}),
    );
    write(&p, "kv1/app", json!({"api_key": "key-1"}));
    let role_id = ok(
        req(&p, "GET", "/v1/auth/approle/role/web/role-id", None),
        "role-id",
    )["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let wrapped = http(
        &p.addr,
        "POST",
        "/v1/auth/approle/role/web/secret-id",
        Some("root"),
        None,
        &[("X-Vault-Wrap-TTL", "120s")],
    );
    assert_eq!(wrapped.status, 200, "{:?}", wrapped.body);
    let wrapping_token = wrapped.body["wrap_info"]["token"].as_str().unwrap();
    assert_eq!(
        wrapped.body["wrap_info"]["creation_path"],
        "auth/approle/role/web/secret-id"
    );
    let (role_file, sid_file) = (dir.join("role-id"), dir.join("secret-id"));
    std::fs::write(&role_file, &role_id).unwrap();
    std::fs::write(&sid_file, wrapping_token).unwrap();
    let (sink, out, cmdlog) = (
        dir.join("token"),
        dir.join("out/app.txt"),
        dir.join("cmdlog"),
    );
    let tmpl = dir.join("app.tmpl");
    std::fs::write(
        &tmpl,
        concat!(
            "{{ with secret \"secret/app\" }}short={{ .Data.data.password }}{{ end }}\n",
            "{{ with secret \"secret/data/app\" }}full={{ .Data.data.password }}\n",
            "{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }};{{ end }}\n",
            "{{ toJSON .Data.data }}{{ end }}\n",
            "{{ with secret \"kv1/app\" }}v1={{ .Data.api_key }}{{ end }}\n",
        ),
    )
    .unwrap();
    let cfg = dir.join("agent.hcl");
    std::fs::write(
        &cfg,
        format!(
            r#"vault {{
  address = "{addr}"
}}
auto_auth {{
  method "approle" {{
    mount_path = "auth/approle"
    config = {{
      role_id_file_path = "{role}"
      secret_id_file_path = "{sid}"
      secret_id_response_wrapping_path = "auth/approle/role/web/secret-id"
    }}
  }}
  sink "file" {{
    config = {{
      path = "{sink}"
      mode = 0600
    }}
  }}
}}
template_config {{
  static_secret_render_interval = "5m"
}}
template {{
  source      = "{tmpl}"
  destination = "{out}"
  perms       = "0640"
  command     = "echo rendered >> {cmdlog}"
}}
"#,
            addr = p.addr,
            role = role_file.display(),
            sid = sid_file.display(),
            sink = sink.display(),
            tmpl = tmpl.display(),
            out = out.display(),
            cmdlog = cmdlog.display(),
        ),
    )
    .unwrap();
    let agent = airlock_agent(&cfg, &dir);
    wait_until(Duration::from_secs(10), || read(&out).contains("v1=key-1"));
    let lines = |f: &Path| read(f).lines().count();
    assert_eq!(
        read(&out),
        "short=pw-1\nfull=pw-1\npassword=pw-1;user=alice;\n{\"password\":\"pw-1\",\"user\":\"alice\"}\nv1=key-1\n",
        "{}",
        agent.log()
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // The wrapped secret ID was unwrapped, used and its file removed; the sink holds a
    // working token, mode 0600.
    assert!(
        !sid_file.exists(),
        "the secret ID file is removed after reading"
    );
    assert_eq!(
        std::fs::metadata(&sink).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = read(&sink);
    let me = ok(
        with_token(&p, &token, "GET", "/v1/auth/token/lookup-self", None),
        "lookup",
    );
    assert!(me["data"]["policies"].to_string().contains("agent"));
    assert!(
        !agent.log().contains(&token),
        "the token never reaches the log"
    );
    wait_until(Duration::from_secs(5), || lines(&cmdlog) == 1);

    // A KV v2 write reaches the file within a second; the command runs once.
    let t0 = Instant::now();
    write(
        &p,
        "secret/data/app",
        json!({"data": {"password": "pw-2", "user": "alice"}}),
    );
    wait_until(Duration::from_secs(5), || read(&out).contains("full=pw-2"));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "re-rendered after {took:?}");
    assert!(read(&out).starts_with("short=pw-2\n"));
    // And a KV v1 write.
    let t0 = Instant::now();
    write(&p, "kv1/app", json!({"api_key": "key-2"}));
    wait_until(Duration::from_secs(5), || read(&out).contains("v1=key-2"));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "re-rendered after {took:?}");
    // The 3 s token was renewed meanwhile, not replaced.
    wait_until(Duration::from_secs(6), || {
        with_token(&p, &token, "GET", "/v1/auth/token/lookup-self", None).body["data"]
            ["last_renewal_time"]
            .is_number()
    });
    assert_eq!(read(&sink), token);
    // Once per change: initial render and two writes.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        read(&cmdlog),
        "rendered\nrendered\nrendered\n",
        "{}",
        agent.log()
    );
    // A write that changes nothing the template shows leaves file and command alone.
    write(
        &p,
        "secret/data/app",
        json!({"data": {"password": "pw-2", "user": "alice"}}),
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(lines(&cmdlog), 3);
}

#[test]
fn database_credentials_are_renewed_then_replaced_near_their_max_ttl() {
    if !require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok()) {
        return;
    }
    let p = start_dev();
    let dir = tempdir("agent-db");
    write(&p, "sys/mounts/database", json!({"type": "database"}));
    write(
        &p,
        "database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username": "postgres", "password": "unused-with-trust-auth",
            "allowed_roles": ["long", "short"],
        }),
    );
    let create =
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
    for (name, ttl, max) in [("long", "6s", "60s"), ("short", "3s", "7s")] {
        write(
            &p,
            &format!("database/roles/{name}"),
            json!({"db_name": "pg", "creation_statements": [create], "default_ttl": ttl, "max_ttl": max}),
        );
    }
    agent_policy(&p);
    let t = ok(
        req(
            &p,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["agent"]})),
        ),
        "token",
    );
    let token = t["auth"]["client_token"].as_str().unwrap();
    let (long, short) = (dir.join("long.txt"), dir.join("short.txt"));
    let cfg = dir.join("agent.hcl");
    std::fs::write(
        &cfg,
        format!(
            "vault {{ address = \"{}\" }}\n{}template {{\n  contents = \"{{{{ with secret \\\"database/creds/long\\\" }}}}{{{{ .LeaseID }}}} {{{{ .Data.username }}}}{{{{ end }}}}\"\n  destination = \"{}\"\n}}\ntemplate {{\n  contents = \"{{{{ with secret \\\"database/creds/short\\\" }}}}{{{{ .Data.username }}}}{{{{ end }}}}\"\n  destination = \"{}\"\n}}\n",
            p.addr,
            token_file_auth(&dir, token),
            long.display(),
            short.display()
        ),
    )
    .unwrap();
    let agent = airlock_agent(&cfg, &dir);
    wait_until(Duration::from_secs(10), || {
        !read(&long).is_empty() && !read(&short).is_empty()
    });
    let first = read(&long);
    let (lease_id, user) = first.split_once(' ').unwrap();
    assert!(role_exists(user), "{user} exists in PostgreSQL");
    let first_short = read(&short);
    // Renewed (at 2/3 of 6 s) without a new credential.
    wait_until(Duration::from_secs(8), || {
        let l = req(
            &p,
            "PUT",
            "/v1/sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        );
        l.body["data"]["last_renewal"].is_string()
    });
    assert_eq!(read(&long), first, "a renewal does not re-render");
    // The short role reaches its 7 s maximum: a new user, rendered before the old expires.
    wait_until(Duration::from_secs(10), || {
        let now = read(&short);
        !now.is_empty() && now != first_short
    });
    let second_short = read(&short);
    assert!(role_exists(&second_short), "{second_short} exists");
    assert!(!agent.log().contains("error"), "{}", agent.log());
    drop(agent);
    // Leave no users behind.
    req(
        &p,
        "PUT",
        "/v1/sys/leases/revoke-prefix/database/creds",
        None,
    );
}

#[test]
fn env_templates_feed_the_child_and_a_change_restarts_it() {
    let p = start_dev();
    let dir = tempdir("agent-exec");
    write(
        &p,
        "secret/data/app",
        json!({"data": {"password": "first"}}),
    );
    let starts = dir.join("starts");
    let cfg = dir.join("agent.hcl");
    std::fs::write(
        &cfg,
        format!(
            r#"vault {{ address = "{addr}" }}
{auth}
env_template "APP_PASSWORD" {{
  contents = "{{{{ with secret \"secret/app\" }}}}{{{{ .Data.data.password }}}}{{{{ end }}}}"
}}
exec {{
  command = ["sh", "-c", "echo \"$APP_PASSWORD\" >> {starts}; exec sleep 60"]
  restart_on_secret_changes = "always"
  restart_stop_signal = "SIGTERM"
}}
"#,
            addr = p.addr,
            auth = token_file_auth(&dir, "root"),
            starts = starts.display()
        ),
    )
    .unwrap();
    let mut agent = airlock_agent(&cfg, &dir);
    wait_until(Duration::from_secs(10), || read(&starts) == "first\n");
    write(
        &p,
        "secret/data/app",
        json!({"data": {"password": "second"}}),
    );
    wait_until(Duration::from_secs(10), || {
        read(&starts) == "first\nsecond\n"
    });
    // SIGTERM goes to the child; the agent ends with the child's status (killed by TERM).
    send_signal(agent.child.id(), "TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(128 + 15));
    assert_eq!(read(&starts), "first\nsecond\n", "{}", agent.log());

    // A child that ends by itself ends the agent with its exit code.
    let cfg2 = dir.join("exit.hcl");
    std::fs::write(
        &cfg2,
        format!(
            "vault {{ address = \"{}\" }}\n{}env_template \"V\" {{\n  contents = \"{{{{ with secret \\\"secret/app\\\" }}}}{{{{ .Data.data.password }}}}{{{{ end }}}}\"\n}}\nexec {{\n  command = \"test \\\"$V\\\" = second && exit 7\"\n}}\n",
            p.addr,
            token_file_auth(&dir, "root")
        ),
    )
    .unwrap();
    let mut agent = airlock_agent(&cfg2, &dir);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(10)),
        Some(7),
        "{}",
        agent.log()
    );
}

#[test]
fn wait_holds_a_burst_of_changes_back_to_one_render() {
    let p = start_dev();
    let dir = tempdir("agent-wait");
    write(&p, "secret/data/app", json!({"data": {"v": "v0"}}));
    let (out, cmdlog) = (dir.join("out.txt"), dir.join("cmdlog"));
    let cfg = dir.join("agent.hcl");
    std::fs::write(
        &cfg,
        format!(
            "vault {{ address = \"{}\" }}\n{}template {{\n  contents = \"{{{{ with secret \\\"secret/app\\\" }}}}{{{{ .Data.data.v }}}}{{{{ end }}}}\"\n  destination = \"{}\"\n  command = [\"sh\", \"-c\", \"cat {} >> {}\"]\n  wait {{\n    min = \"700ms\"\n    max = \"5s\"\n  }}\n}}\n",
            p.addr,
            token_file_auth(&dir, "root"),
            out.display(),
            out.display(),
            cmdlog.display()
        ),
    )
    .unwrap();
    let agent = airlock_agent(&cfg, &dir);
    // The first render is not held back.
    wait_until(Duration::from_secs(10), || read(&cmdlog) == "v0");
    for i in 1..=5 {
        write(
            &p,
            "secret/data/app",
            json!({"data": {"v": format!("v{i}")}}),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_until(Duration::from_secs(5), || read(&out) == "v5");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read(&cmdlog),
        "v0v5",
        "one render for the burst: {}",
        agent.log()
    );
}

#[test]
fn without_the_event_log_static_secrets_follow_the_render_interval() {
    let p = start_dev();
    let dir = tempdir("agent-poll");
    write(&p, "secret/data/app", json!({"data": {"v": "one"}}));
    let policy = "path \"secret/data/*\" { capabilities = [\"read\"] }";
    ok(
        req(
            &p,
            "PUT",
            "/v1/sys/policies/acl/nopush",
            Some(json!({"policy": policy})),
        ),
        "policy",
    );
    let t = ok(
        req(
            &p,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["nopush"]})),
        ),
        "token",
    );
    let token = t["auth"]["client_token"].as_str().unwrap();
    // A directory of configs, HCL and JSON, merged in name order.
    let conf = dir.join("conf.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-base.hcl"),
        format!(
            "vault {{ address = \"{}\" }}\n{}",
            p.addr,
            token_file_auth(&dir, token)
        ),
    )
    .unwrap();
    let out = dir.join("out.txt");
    std::fs::write(
        conf.join("20-templates.json"),
        json!({
            "template_config": {"static_secret_render_interval": "1s"},
            "template": [{
                "contents": "{{ with secret \"secret/app\" }}{{ .Data.data.v }}{{ end }}",
                "destination": out.to_str().unwrap(),
            }],
        })
        .to_string(),
    )
    .unwrap();
    let agent = airlock_agent(&conf, &dir);
    wait_until(Duration::from_secs(10), || read(&out) == "one");
    write(&p, "secret/data/app", json!({"data": {"v": "two"}}));
    wait_until(Duration::from_secs(4), || read(&out) == "two");
    assert!(
        agent.log().contains("does not push changes"),
        "{}",
        agent.log()
    );
}

#[test]
fn jwt_auto_auth_reads_and_removes_the_jwt_file() {
    let p = start_dev();
    let dir = tempdir("agent-jwt");
    write(&p, "sys/auth/jwt", json!({"type": "jwt"}));
    let pub_pem =
        std::fs::read_to_string(repo_root().join("tests/compat/keys/test-only-rsa.pub.pem"))
            .unwrap();
    write(
        &p,
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [pub_pem], "bound_issuer": "https://ci.example"}),
    );
    agent_policy(&p);
    write(
        &p,
        "auth/jwt/role/deploy",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "airlock",
            "token_policies": "agent", "token_ttl": "1h"}),
    );
    write(&p, "secret/data/app", json!({"data": {"v": "from-jwt"}}));
    let claims = json!({"iss": "https://ci.example", "aud": "airlock", "sub": "ci",
        "iat": crate::idp::now(), "exp": crate::idp::now() + 300});
    let jwt_file = dir.join("jwt");
    std::fs::write(
        &jwt_file,
        crate::idp::Key::rsa("", "tests/compat/keys/test-only-rsa.key.pem").sign(&claims),
    )
    .unwrap();
    let (out, sink) = (dir.join("out.txt"), dir.join("sink"));
    let cfg = dir.join("agent.hcl");
    std::fs::write(
        &cfg,
        format!(
            r#"vault {{ address = "{addr}" }}
auto_auth {{
  method {{
    type = "jwt"
    config = {{
      path = "{jwt}"
      role = "deploy"
    }}
  }}
  sink {{
    type = "file"
    config = {{ path = "{sink}" }}
  }}
}}
template {{
  contents    = "{{{{ with secret \"secret/app\" }}}}{{{{ .Data.data.v }}}}{{{{ end }}}}"
  destination = "{out}"
}}
"#,
            addr = p.addr,
            jwt = jwt_file.display(),
            sink = sink.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let agent = airlock_agent(&cfg, &dir);
    wait_until(Duration::from_secs(10), || read(&out) == "from-jwt");
    assert!(!jwt_file.exists(), "the JWT file is removed after reading");
    assert_eq!(
        std::fs::metadata(&sink).unwrap().permissions().mode() & 0o777,
        0o640,
        "Vault's default sink mode; {}",
        agent.log()
    );
}
