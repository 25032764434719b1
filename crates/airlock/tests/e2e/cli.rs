//! The `airlock` CLI against a dev server, including `airlock run`.

use serde_json::json;

use crate::util::*;

#[test]
fn kv_cli_flow() {
    let p = start_dev();
    let (c, out, err) = cli(
        &p,
        &[
            "kv",
            "put",
            "secret/app",
            "user=admin",
            "password=s3cr3t-value",
        ],
        None,
    );
    assert_eq!(c, 0, "{out}{err}");
    let (c, out, _) = cli(&p, &["kv", "get", "-field=password", "secret/app"], None);
    assert_eq!((c, out.trim()), (0, "s3cr3t-value"));
    let (c, _, _) = cli(
        &p,
        &["kv", "put", "-mount=secret", "-cas=1", "app", "user=root"],
        None,
    );
    assert_eq!(c, 0);
    let (c, _, err) = cli(
        &p,
        &["kv", "put", "-mount=secret", "-cas=1", "app", "user=x"],
        None,
    );
    assert_ne!(c, 0);
    assert!(err.contains("check-and-set"), "{err}");
    let (c, out, _) = cli(
        &p,
        &["kv", "get", "-version=1", "-format=json", "secret/app"],
        None,
    );
    assert_eq!(c, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["data"]["data"]["user"], "admin");
    let (c, _, _) = cli(&p, &["kv", "patch", "secret/app", "extra=1"], None);
    assert_eq!(c, 0);
    let (c, _, _) = cli(&p, &["kv", "rollback", "-version=1", "secret/app"], None);
    assert_eq!(c, 0);
    let (_, out, _) = cli(&p, &["kv", "get", "-field=user", "secret/app"], None);
    assert_eq!(out.trim(), "admin");
    let (c, out, _) = cli(&p, &["kv", "list", "secret/"], None);
    assert_eq!(c, 0);
    assert!(out.contains("app"));
    let (c, out, _) = cli(
        &p,
        &["kv", "metadata", "get", "-format=json", "secret/app"],
        None,
    );
    assert_eq!(c, 0, "{out}");
    let (c, _, _) = cli(&p, &["kv", "delete", "secret/app"], None);
    assert_eq!(c, 0);
    let (c, _, _) = cli(&p, &["kv", "get", "secret/app"], None);
    assert_ne!(c, 0);
    let (c, _, _) = cli(&p, &["kv", "undelete", "-versions=4", "secret/app"], None);
    assert_eq!(c, 0);
    let (c, _, _) = cli(&p, &["kv", "get", "secret/app"], None);
    assert_eq!(c, 0);
    // Import / export.
    let dir = tempdir("cli");
    let env = dir.join("app.env");
    std::fs::write(&env, "export A=1\nB=\"two words\"\n# comment\n").unwrap();
    let (c, _, err) = cli(
        &p,
        &["kv", "import", env.to_str().unwrap(), "secret/imported"],
        None,
    );
    assert_eq!(c, 0, "{err}");
    let (c, out, _) = cli(
        &p,
        &["kv", "export", "secret/imported", "--as", "json"],
        None,
    );
    assert_eq!(c, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!({"A": "1", "B": "two words"}));
    // Policies and tokens.
    let (c, _, err) = cli(
        &p,
        &["policy", "write", "ro", "-"],
        Some("path \"secret/data/*\" { capabilities = [\"read\"] }"),
    );
    assert_eq!(c, 0, "{err}");
    let (c, out, _) = cli(
        &p,
        &["token", "create", "-policy=ro", "-ttl=10m", "-format=json"],
        None,
    );
    assert_eq!(c, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tok = v["auth"]["client_token"].as_str().unwrap().to_string();
    let (c, out, _) = cli(&p, &["token", "capabilities", &tok, "secret/data/x"], None);
    assert_eq!((c, out.trim()), (0, "read"));
    let (c, _, _) = cli(&p, &["token", "revoke", &tok], None);
    assert_eq!(c, 0);
    let (c, _, err) = cli(&p, &["kv", "get", "nosuch/x"], None);
    assert_ne!(c, 0);
    assert_eq!(err.lines().count(), 1, "errors are one line: {err}");
    assert!(
        err.contains("airlock secrets enable -path=nosuch kv-v2"),
        "{err}"
    );
    let (c, out, err) = cli(&p, &["token", "create", "-policy=ro", "-field=token"], None);
    assert_eq!(c, 0, "{err}");
    let (c, out, _) = cli(
        &p,
        &["token", "capabilities", out.trim(), "secret/data/x"],
        None,
    );
    assert_eq!((c, out.trim()), (0, "read"));
    let (c, out, _) = cli(&p, &["version"], None);
    assert_eq!(c, 0);
    assert!(out.starts_with("Airlock v"), "{out}");
}

#[test]
fn run_injects_env_and_passes_exit_code() {
    let p = start_dev();
    cli(&p, &["kv", "put", "secret/base", "A=base", "B=base"], None);
    cli(
        &p,
        &["kv", "put", "secret/prod", "B=prod-value", "C=c"],
        None,
    );
    let (c, out, err) = cli(
        &p,
        &[
            "run",
            "--path",
            "secret/base",
            "--path",
            "secret/prod",
            "--",
            "sh",
            "-c",
            "echo A=$A B=$B C=$C T=${AIRLOCK_TOKEN:-none}; exit 7",
        ],
        None,
    );
    assert_eq!(c, 7, "{err}");
    assert_eq!(out.trim(), "A=base B=prod-value C=c T=none");
    assert!(!err.contains("prod-value"), "values must not be printed");
    let (c, out, _) = cli(
        &p,
        &[
            "run",
            "--path",
            "secret/prod",
            "--only",
            "C",
            "--prefix",
            "X_",
            "--",
            "sh",
            "-c",
            "echo ${X_C}-${X_B:-unset}",
        ],
        None,
    );
    assert_eq!((c, out.trim()), (0, "c-unset"));
    // Signals are forwarded: the child traps TERM and exits 42.
    let mut child = std::process::Command::new(bin())
        .args([
            "run",
            "--path",
            "secret/prod",
            "--",
            "sh",
            "-c",
            // Bounded (~30 s) so a failed test never leaves a process behind holding the
            // test runner's output open.
            "trap 'exit 42' TERM; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; exit 3",
        ])
        .env("AIRLOCK_ADDR", &p.addr)
        .env("AIRLOCK_TOKEN", "root")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(first_line(&mut child), "ready");
    send_signal(child.id(), "TERM");
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(42));
}

#[test]
fn operator_and_login_flow() {
    let dir = tempdir("operator");
    let cfg = dir.join("airlock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n",
            dir.join("d.db").display()
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    p.token = None;
    let (c, _, _) = cli(&p, &["status"], None);
    assert_eq!(c, 2, "sealed/uninitialised status exits 2");
    let (c, out, err) = cli(
        &p,
        &[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ],
        None,
    );
    assert_eq!(c, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<String> = v["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = v["root_token"].as_str().unwrap().to_string();
    let (c, out, _) = cli(&p, &["operator", "unseal", &keys[0], "-format=json"], None);
    assert_eq!(c, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["progress"],
        1
    );
    let (c, _, _) = cli(&p, &["operator", "unseal", "-"], Some(&keys[1]));
    assert_eq!(c, 0);
    let (c, _, _) = cli(&p, &["status"], None);
    assert_eq!(c, 0, "unsealed status exits 0");
    // login stores the token with mode 0600 in $HOME.
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = std::process::Command::new(bin())
        .args(["login", "-"])
        .env("AIRLOCK_ADDR", &p.addr)
        .env("HOME", &home)
        .env_remove("AIRLOCK_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(root.as_bytes())?;
            ch.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tf = home.join(".airlock-token");
    assert_eq!(std::fs::read_to_string(&tf).unwrap(), root);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = std::process::Command::new(bin())
        .args(["operator", "rotate"])
        .env("AIRLOCK_ADDR", &p.addr)
        .env("HOME", &home)
        .env_remove("AIRLOCK_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("term is 2"));
    p.token = Some(root);
    let (c, _, err) = cli(&p, &["operator", "seal"], None);
    assert_eq!(c, 0, "{err}");
    let (c, _, _) = cli(&p, &["status"], None);
    assert_eq!(c, 2);
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let p = start_dev();
    let (c, _, _) = cli(&p, &["kv", "put", "secret/pipe", "a=1"], None);
    assert_eq!(c, 0);
    for args in [
        &["broker", "providers"][..],
        &["version"],
        &["kv", "get", "secret/pipe"],
        &["read", "sys/mounts"],
        &["secrets", "list"],
    ] {
        let mut child = std::process::Command::new(bin())
            .args(args)
            .env("AIRLOCK_ADDR", &p.addr)
            .env("AIRLOCK_TOKEN", "root")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command prints (as with `| head` on long output).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn cli_errors_say_what_is_wrong() {
    let mut p = start_dev();
    // The server's warnings are shown, and a write the server refused is not a success.
    let (c, _, err) = cli(&p, &["read", "secret/foo"], None);
    assert_eq!(c, 2);
    assert!(err.contains("Invalid path for a versioned K/V"), "{err}");
    let (c, out, err) = cli(&p, &["write", "secret/foo", "a=1"], None);
    assert_eq!(c, 2, "{out}");
    assert!(!out.contains("Success"), "{out}");
    assert!(err.contains("Invalid path for a versioned K/V"), "{err}");
    // A token the server does not know, and a valid one its policies do not allow.
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    let limited = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let root = p
        .token
        .replace("alt_not_a_real_token_0000000000000000".into());
    let (c, _, err) = cli(&p, &["read", "secret/data/x"], None);
    assert_eq!(c, 2);
    assert!(err.contains("The token is not valid"), "{err}");
    let (_, _, err) = cli(&p, &["kv", "get", "secret/x"], None);
    assert!(err.contains("The token is not valid"), "{err}");
    p.token = Some(limited);
    let (_, _, err) = cli(&p, &["read", "secret/data/x"], None);
    assert!(
        err.contains("The token is valid, but its policies (default) do not allow this"),
        "{err}"
    );
    let (_, _, err) = cli(&p, &["kv", "get", "secret/x"], None);
    assert!(err.contains("cannot use secret/ with this token"), "{err}");
    // A sealed server says how to unseal.
    p.token = root;
    assert_eq!(req(&p, "PUT", "/v1/sys/seal", None).status, 204);
    let (c, _, err) = cli(&p, &["kv", "get", "secret/x"], None);
    assert_eq!(c, 2);
    assert!(err.contains("airlock operator unseal"), "{err}");
}
