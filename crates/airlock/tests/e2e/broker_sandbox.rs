//! `airlock broker run --sandbox`: the child in its own user and network namespace. Real
//! clients (Python sockets, requests, curl) check that every way around the proxy fails
//! closed while the proxy works, and that the token file is hidden; a kernel that refuses
//! user namespaces gives a clear error and never an unsandboxed child.

use std::process::Command;

use crate::broker::setup;
use crate::util::*;

/// Whether this machine lets an unprivileged process create user namespaces (required in CI).
fn userns_ready() -> bool {
    let ok = Command::new("unshare")
        .args(["-Urn", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    require("unprivileged user namespaces (unshare -Urn)", ok)
}

fn output(mut c: Command) -> (bool, String) {
    let out = c.output().unwrap();
    let text = output_text(&out);
    (out.status.success(), text)
}

#[test]
fn broker_sandbox_leaves_only_the_proxy() {
    if !userns_ready() || !require("python3 with requests", python_has("requests")) {
        return;
    }
    let s = setup("broker-sandbox");
    // A home with a token file (hidden by default) and a directory hidden with --hide.
    let home = s.dir.join("home");
    std::fs::create_dir_all(home.join("private")).unwrap();
    let token_file = home.join(".airlock-token");
    std::fs::write(&token_file, "root-token-that-must-stay-hidden").unwrap();
    std::fs::write(home.join("private/key"), "private").unwrap();
    let script = repo_root().join("tests/broker/sandbox.py");
    let hidden = home.join("private");
    let mut c = s.broker_with(
        "tunnel",
        &["--sandbox", "--hide", hidden.to_str().unwrap()],
        &["python3", script.to_str().unwrap()],
    );
    c.env("HOME", &home)
        .env("UPSTREAM_PORT", s.up.port.to_string())
        .env("TOKEN_FILE", &token_file)
        .env("HIDDEN_DIR", &hidden);
    let (ok, text) = output(c);
    assert!(ok, "sandbox checks failed:\n{text}");
    assert!(text.contains("sandbox: 0 failed"), "{text}");
    assert!(!text.contains("root-token-that-must-stay-hidden"));
    for (name, v) in &s.keys {
        assert!(!text.contains(v.as_str()), "{name} key in the output");
    }
    // The files are untouched outside.
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        "root-token-that-must-stay-hidden"
    );
    assert!(s.audit_text().contains("\"kind\":\"inject\""));

    // Without --sandbox, the same raw connection reaches the upstream: the test can fail.
    let probe = format!(
        "import socket; socket.create_connection(('127.0.0.1', {}), timeout=5); print('reached')",
        s.up.port
    );
    let (ok, text) = output(s.broker("tunnel", &["python3", "-c", &probe]));
    assert!(ok && text.contains("reached"), "{text}");

    // The exit status of the sandboxed command is the broker's; a missing command is 127.
    let st = s
        .broker_with("tunnel", &["--sandbox"], &["sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7));
    let st = s
        .broker_with("tunnel", &["--sandbox"], &["no-such-command-airlock"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(127));
    // --hide of a missing path is refused before anything starts.
    let (ok, text) = output(s.broker_with(
        "tunnel",
        &["--sandbox", "--hide", "/no/such/path"],
        &["true"],
    ));
    assert!(!ok && text.contains("--hide /no/such/path"), "{text}");
}

#[test]
fn broker_sandbox_without_user_namespaces_is_a_clear_error() {
    if !userns_ready() {
        return;
    }
    let s = setup("broker-sandbox-nouserns");
    let marker = s.dir.join("started");
    // The broker runs in a user namespace whose limit on new user namespaces is 0.
    let inner = s.broker_with(
        "tunnel",
        &["--sandbox"],
        &["touch", marker.to_str().unwrap()],
    );
    let mut line = String::from("echo 0 > /proc/sys/user/max_user_namespaces && exec");
    line.push_str(&format!(" '{}'", inner.get_program().to_string_lossy()));
    for a in inner.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    let mut c = Command::new("unshare");
    c.args(["-Ur", "sh", "-c", &line]);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let (ok, text) = output(c);
    assert!(!ok, "{text}");
    assert!(
        text.contains("unprivileged user namespaces are unavailable")
            && text.contains("the command was not started"),
        "{text}"
    );
    assert!(!marker.exists(), "the command ran without its sandbox");
}
