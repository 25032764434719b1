//! `airlock run --watch` and `--fallback`, with real children: a burst of writes gives one
//! restart with the final value; `signal:HUP` reaches a child's trap after its file was
//! rewritten; a change made while the server was down is applied once; the encrypted
//! fallback copy serves when the server is gone, and only to the token that wrote it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::wait_until;
use crate::util::*;

fn watch(p: &Proc, args: &[&str]) -> Child {
    watch_to(p, args, Stdio::piped())
}

fn watch_to(p: &Proc, args: &[&str], stderr: Stdio) -> Child {
    Command::new(bin())
        .arg("run")
        .args(args)
        .env("AIRLOCK_ADDR", &p.addr)
        .env("AIRLOCK_TOKEN", p.token.as_deref().unwrap_or(""))
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn lines(f: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(f)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn put(p: &Proc, v: &str) {
    let r = req(
        p,
        "POST",
        "/v1/secret/data/app",
        Some(json!({"data": {"V": v}})),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

struct Kill(Child);

/// Ends `airlock run` as a user would (SIGTERM, which it passes to the command), then for
/// sure; the commands sleep at most a minute in any case.
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_burst_of_writes_restarts_the_command_once_with_the_last_value() {
    let p = start_dev();
    let dir = tempdir("watch-burst");
    let log = dir.join("starts");
    put(&p, "v0");
    let script = format!("echo \"$V\" >> {}; exec sleep 60", log.display());
    let _w = Kill(watch(
        &p,
        &[
            "--watch",
            "--poll-interval",
            "100ms",
            "--debounce",
            "1s",
            "--grace",
            "2s",
            "--path",
            "secret/app",
            "--",
            "sh",
            "-c",
            &script,
        ],
    ));
    wait_until(Duration::from_secs(10), || lines(&log).len() == 1);
    // Ten writes within one second.
    let t0 = Instant::now();
    for i in 1..=10 {
        put(&p, &format!("v{i}"));
        std::thread::sleep(Duration::from_millis(80));
    }
    assert!(t0.elapsed() < Duration::from_millis(1500));
    wait_until(Duration::from_secs(10), || lines(&log).len() >= 2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        lines(&log),
        vec!["v0", "v10"],
        "one restart, with the last value"
    );
}

#[test]
fn signal_hup_reaches_the_command_after_its_file_is_rewritten() {
    let p = start_dev();
    let dir = tempdir("watch-hup");
    let (got, mount) = (dir.join("got"), dir.join("secrets.json"));
    put(&p, "first");
    // The trap copies the mounted file as the command would re-read it.
    let script = format!(
        "trap 'cat \"$AIRLOCK_SECRETS_FILE\" >> {got}; echo >> {got}' HUP; echo started >> {got}; while true; do sleep 0.05; done",
        got = got.display()
    );
    let _w = Kill(watch(
        &p,
        &[
            "--watch",
            "--on-change",
            "signal:HUP",
            "--poll-interval",
            "100ms",
            "--debounce",
            "200ms",
            "--mount",
            mount.to_str().unwrap(),
            "--mount-format",
            "json",
            "--path",
            "secret/app",
            "--",
            "sh",
            "-c",
            &script,
        ],
    ));
    wait_until(Duration::from_secs(10), || {
        lines(&got).first().map(String::as_str) == Some("started")
    });
    let first: serde_json::Value = serde_json::from_slice(&std::fs::read(&mount).unwrap()).unwrap();
    assert_eq!(first["V"], "first");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&mount).unwrap().permissions().mode() & 0o777,
        0o600
    );
    put(&p, "second");
    wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&got)
            .unwrap_or_default()
            .contains("\"second\"")
    });
    assert_eq!(
        lines(&got)
            .iter()
            .filter(|l| l.as_str() == "started")
            .count(),
        1,
        "not restarted"
    );
}

#[test]
fn a_change_made_while_the_server_was_down_is_applied_once() {
    let dir = tempdir("watch-restart");
    std::fs::write(dir.join("unseal.key"), "7e".repeat(32)).unwrap();
    let cfg = dir.join("airlock.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[seal]\nkey_file = \"{}\"\n",
            dir.join("data.db").display(),
            dir.join("unseal.key").display()
        ),
    )
    .unwrap();
    let mut p = start_config(&cfg);
    let init = req(&p, "PUT", "/v1/sys/init", Some(json!({})));
    let root = init.body["root_token"].as_str().unwrap().to_string();
    p.token = Some(root.clone());
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/mounts/secret",
            Some(json!({"type": "kv-v2"}))
        )
        .status,
        204
    );
    put(&p, "before");
    let log = dir.join("starts");
    let script = format!("echo \"$V\" >> {}; exec sleep 60", log.display());
    let w = Kill(watch(
        &p,
        &[
            "--watch",
            "--poll-interval",
            "200ms",
            "--debounce",
            "300ms",
            "--path",
            "secret/app",
            "--",
            "sh",
            "-c",
            &script,
        ],
    ));
    wait_until(Duration::from_secs(10), || lines(&log).len() == 1);
    drop(p);
    // Down for a while: checks fail, the command keeps running.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lines(&log), vec!["before"]);
    let mut p = start_config(&cfg);
    p.token = Some(root);
    put(&p, "after");
    wait_until(Duration::from_secs(10), || lines(&log).len() >= 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines(&log), vec!["before", "after"]);
    drop(w);
}

#[test]
fn the_fallback_copy_serves_when_the_server_is_gone() {
    let mut p = start_dev();
    let dir = tempdir("fallback");
    let fb = dir.join("app.fallback");
    put(&p, "saved-value-1234");
    let run = |p: &Proc, token: &str, extra: &[&str]| {
        let out = Command::new(bin())
            .arg("run")
            .args(extra)
            .args([
                "--fallback",
                fb.to_str().unwrap(),
                "--path",
                "secret/app",
                "--",
                "sh",
                "-c",
                "printf %s \"$V\"",
            ])
            .env("AIRLOCK_ADDR", &p.addr)
            .env("AIRLOCK_TOKEN", token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&p, "root", &[]);
    assert_eq!((code, out.as_str()), (0, "saved-value-1234"), "{err}");
    let raw = std::fs::read(&fb).unwrap();
    assert!(
        !raw.windows(16).any(|w| w == b"saved-value-1234"),
        "value in the clear"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&fb).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // --offline reads the file even with the server up (and a newer value there).
    put(&p, "newer-value");
    let (code, out, _) = run(&p, "root", &["--offline"]);
    assert_eq!((code, out.as_str()), (0, "saved-value-1234"));
    // A token that is refused does not fall back.
    let (code, _, err) = run(&p, "not-a-token", &[]);
    assert_ne!(code, 0);
    assert!(!err.contains("using the values saved"), "{err}");
    let addr = p.addr.clone();
    let _ = p.child.kill();
    let _ = p.child.wait();
    p.addr = addr;
    // The server is gone: the copy serves, with a message.
    let (code, out, err) = run(&p, "root", &["--fallback-max-age", "1h"]);
    assert_eq!((code, out.as_str()), (0, "saved-value-1234"), "{err}");
    assert!(err.contains("using the values saved"), "{err}");
    // Not with another token, nor when too old.
    let (code, _, err) = run(&p, "other-token", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("does not open with this token"), "{err}");
    std::thread::sleep(Duration::from_millis(2100));
    let (code, _, err) = run(&p, "root", &["--fallback-max-age", "1s"]);
    assert_ne!(code, 0);
    assert!(err.contains("older than --fallback-max-age"), "{err}");
}

/// With the event log, a change arrives by push: checks every minute cannot explain a
/// restart within a second. A token that may not read the log falls back to checking.
#[test]
fn changes_are_pushed_and_a_token_without_the_log_falls_back_to_checking() {
    let mut p = start_dev();
    let dir = tempdir("watch-push");
    let log = dir.join("starts");
    put(&p, "p0");
    let script = format!("echo \"$V\" >> {}; exec sleep 60", log.display());
    let _w = Kill(watch(
        &p,
        &[
            "--watch",
            "--poll-interval",
            "60s",
            "--debounce",
            "0s",
            "--grace",
            "1s",
            "--path",
            "secret/app",
            "--",
            "sh",
            "-c",
            &script,
        ],
    ));
    wait_until(Duration::from_secs(10), || lines(&log).len() == 1);
    std::thread::sleep(Duration::from_millis(500));
    let mut delays = Vec::new();
    for i in 1..=5 {
        let t0 = Instant::now();
        put(&p, &format!("p{i}"));
        wait_until(Duration::from_secs(5), || lines(&log).len() == i + 1);
        delays.push(t0.elapsed());
        assert_eq!(lines(&log).last().unwrap(), &format!("p{i}"));
    }
    println!("write to restarted child: {delays:?}");
    assert!(
        delays.iter().all(|d| *d < Duration::from_secs(2)),
        "{delays:?}"
    );

    // A token that may read the secret but not the event log: checks instead.
    let policy = "path \"secret/data/app\" { capabilities = [\"read\"] }\npath \"sys/internal/ui/mounts/*\" { capabilities = [\"read\"] }";
    assert_eq!(
        req(
            &p,
            "PUT",
            "/v1/sys/policies/acl/only-app",
            Some(json!({"policy": policy}))
        )
        .status,
        204
    );
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["only-app"]})),
    );
    p.token = Some(t.body["auth"]["client_token"].as_str().unwrap().to_string());
    let log2 = dir.join("starts2");
    let script = format!("echo \"$V\" >> {}; exec sleep 60", log2.display());
    // Its messages go to a file: the command (a grandchild) keeps a pipe open.
    let errfile = dir.join("stderr");
    let w = Kill(watch_to(
        &p,
        &[
            "--watch",
            "--poll-interval",
            "200ms",
            "--debounce",
            "0s",
            "--path",
            "secret/app",
            "--",
            "sh",
            "-c",
            &script,
        ],
        Stdio::from(std::fs::File::create(&errfile).unwrap()),
    ));
    wait_until(Duration::from_secs(10), || lines(&log2).len() == 1);
    p.token = Some("root".into());
    put(&p, "checked");
    wait_until(Duration::from_secs(5), || lines(&log2).len() == 2);
    drop(w);
    let err = std::fs::read_to_string(&errfile).unwrap();
    assert!(err.contains("does not push changes to this token"), "{err}");
}

/// `--mount-max-reads N`: the values come through a named pipe (mode 0600) that serves N
/// readers and is gone after; the values never rest on disk.
#[test]
fn a_fifo_mount_serves_n_readers_then_goes() {
    let p = start_dev();
    put(&p, "fifo-value");
    let dir = tempdir("run-fifo");
    let fifo = dir.join("secrets.env");
    let script = "stat -c %a:%F \"$AIRLOCK_SECRETS_FILE\" > st; cat \"$AIRLOCK_SECRETS_FILE\" > got1; cat \"$AIRLOCK_SECRETS_FILE\" > got2; sleep 0.5; if [ -e \"$AIRLOCK_SECRETS_FILE\" ]; then echo present; else echo gone; fi > got3";
    let c = Command::new(bin())
        .current_dir(&*dir)
        .args([
            "run",
            "--mount",
            fifo.to_str().unwrap(),
            "--mount-max-reads",
            "2",
            "--path",
            "secret/app",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env("AIRLOCK_ADDR", &p.addr)
        .env("AIRLOCK_TOKEN", "root")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = Kill(c);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = c.0.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "airlock run hung");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    assert_eq!(read("st").trim(), "600:fifo");
    assert_eq!(read("got1"), "V=fifo-value\n");
    assert_eq!(read("got2"), "V=fifo-value\n");
    assert_eq!(read("got3").trim(), "gone");
    assert!(!fifo.exists());
    // An existing path is not replaced by a FIFO.
    std::fs::write(&fifo, "keep").unwrap();
    let out = Command::new(bin())
        .args([
            "run",
            "--mount",
            fifo.to_str().unwrap(),
            "--mount-max-reads",
            "1",
        ])
        .args(["--path", "secret/app", "--", "true"])
        .env("AIRLOCK_ADDR", &p.addr)
        .env("AIRLOCK_TOKEN", "root")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    assert_eq!(std::fs::read_to_string(&fifo).unwrap(), "keep");
}

/// `--mount-template`: the values rendered through a Go template; a broken template fails
/// before the command starts, naming the file and line.
#[test]
fn a_mount_template_renders_the_values() {
    let p = start_dev();
    put(&p, "tpl-value");
    let dir = tempdir("run-tpl");
    let tpl = dir.join("app.tpl");
    std::fs::write(&tpl, "v: {{ .V }}\njson: {{ toJSON . }}\n{{- range $k, $v := . }}\n{{ $k }}<{{ $v | len }}>{{ end }}\n").unwrap();
    let mount = dir.join("app.conf");
    let got = dir.join("got");
    let run = |tpl: &std::path::Path| {
        Command::new(bin())
            .args([
                "run",
                "--mount",
                mount.to_str().unwrap(),
                "--mount-template",
            ])
            .arg(tpl)
            .args(["--path", "secret/app", "--", "sh", "-c"])
            .arg(format!(
                "cat \"$AIRLOCK_SECRETS_FILE\" > '{}'",
                got.display()
            ))
            .env("AIRLOCK_ADDR", &p.addr)
            .env("AIRLOCK_TOKEN", "root")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .unwrap()
    };
    let out = run(&tpl);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&got).unwrap(),
        "v: tpl-value\njson: {\"V\":\"tpl-value\"}\nV<9>\n"
    );
    let bad = dir.join("bad.tpl");
    std::fs::write(&bad, "ok\n{{ if .V }}\nno end\n").unwrap();
    std::fs::remove_file(&got).unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.tpl:") && err.contains("unexpected EOF"),
        "{err}"
    );
    assert!(!got.exists(), "the command ran with a broken template");
    assert!(!err.contains("tpl-value"));
}
