//! Projects and environments: `project create`, `setup` in a monorepo, commands without a
//! path, `--env`, references between keys, environments and projects, `env diff|check|
//! promote`, and the three file names that no longer collide.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::util::*;

/// Runs the CLI in `dir` with `token`.
fn cli_in(p: &Proc, dir: &Path, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("AIRLOCK_ADDR", &p.addr)
        .env("AIRLOCK_TOKEN", token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("AIRLOCK_ENV")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn ok(r: (i32, String, String)) -> String {
    assert_eq!(r.0, 0, "stdout: {}\nstderr: {}", r.1, r.2);
    r.1
}

#[test]
fn projects_environments_and_references() {
    let p = start_dev();
    let dir = tempdir("projects");
    let repo = dir.join("repo");
    let api_src = repo.join("services/api/src");
    std::fs::create_dir_all(&api_src).unwrap();
    let api = repo.join("services/api");
    assert_eq!(
        req(
            &p,
            "POST",
            "/v1/sys/auth/approle",
            Some(json!({"type": "approle"}))
        )
        .status,
        204
    );

    // Lay out two projects.
    let out = ok(cli_in(
        &p,
        &repo,
        "root",
        &[
            "project",
            "create",
            "voice",
            "--envs",
            "dev,stg,prd",
            "--approle",
        ],
    ));
    assert!(out.contains("voice-dev-read"), "{out}");
    ok(cli_in(
        &p,
        &repo,
        "root",
        &["project", "create", "api", "--envs", "dev"],
    ));
    // Idempotent: a second run keeps the entries.
    let out = ok(cli_in(
        &p,
        &repo,
        "root",
        &["project", "create", "voice", "--envs", "dev"],
    ));
    assert!(out.contains("Kept secret/voice/dev"), "{out}");
    let role = req(&p, "GET", "/v1/auth/approle/role/voice-prd", None);
    assert_eq!(
        role.body["data"]["token_policies"],
        json!(["voice-prd-read"])
    );
    // Kubernetes and JWT roles per environment, `{env}` filled in.
    for m in ["kubernetes", "jwt"] {
        let r = req(
            &p,
            "POST",
            &format!("/v1/sys/auth/{m}"),
            Some(json!({"type": m})),
        );
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
    ok(cli_in(
        &p,
        &repo,
        "root",
        &[
            "project",
            "create",
            "voice",
            "--envs",
            "dev,prd",
            "--kubernetes",
            "voice-{env}/agent",
            "--jwt",
            "environment={env}",
        ],
    ));
    let k = req(&p, "GET", "/v1/auth/kubernetes/role/voice-prd", None);
    assert_eq!(
        k.body["data"]["bound_service_account_namespaces"],
        json!(["voice-prd"])
    );
    assert_eq!(
        k.body["data"]["bound_service_account_names"],
        json!(["agent"])
    );
    assert_eq!(k.body["data"]["token_policies"], json!(["voice-prd-read"]));
    let j = req(&p, "GET", "/v1/auth/jwt/role/voice-dev", None);
    assert_eq!(
        j.body["data"]["bound_claims"],
        json!({"environment": "dev"})
    );

    // The repository and one folder of it.
    ok(cli_in(
        &p,
        &repo,
        "root",
        &["setup", "--project", "voice", "--env", "dev"],
    ));
    ok(cli_in(
        &p,
        &api,
        "root",
        &["setup", "--project", "api", "--env", "dev"],
    ));
    assert!(!api.join("airlock.project.toml").exists());
    let text = std::fs::read_to_string(repo.join("airlock.project.toml")).unwrap();
    assert!(text.contains("[folders.\"services/api\"]"), "{text}");

    // Writes and reads without a path.
    ok(cli_in(
        &p,
        &repo,
        "root",
        &["kv", "put", "OPENAI_API_KEY=sk-dev", "DB_USER=app"],
    ));
    ok(cli_in(
        &p,
        &repo,
        "root",
        &[
            "kv",
            "put",
            "--env",
            "prd",
            "OPENAI_API_KEY=sk-prd",
            "DB_PASS=prd-pass",
        ],
    ));
    ok(cli_in(
        &p,
        &repo,
        "root",
        &[
            "kv",
            "patch",
            "DATABASE_URL=postgres://${DB_USER}:${prd.DB_PASS}@db/x",
        ],
    ));
    ok(cli_in(
        &p,
        &api_src,
        "root",
        &[
            "kv",
            "put",
            "API_ONLY=yes",
            "UPSTREAM=${voice.dev.OPENAI_API_KEY}",
        ],
    ));
    let got = req(&p, "GET", "/v1/secret/data/voice/dev", None);
    assert_eq!(got.body["data"]["data"]["DB_USER"], json!("app"));

    // `run` in the repository, with --env, and in the monorepo's folder.
    let show = [
        "run",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$DATABASE_URL\" \"$OPENAI_API_KEY\"",
    ];
    assert_eq!(
        ok(cli_in(&p, &repo, "root", &show)),
        "postgres://app:prd-pass@db/x|sk-dev"
    );
    let prd = [
        "run",
        "--env",
        "prd",
        "--",
        "sh",
        "-c",
        "printf %s \"$OPENAI_API_KEY\"",
    ];
    assert_eq!(ok(cli_in(&p, &repo, "root", &prd)), "sk-prd");
    let in_api = [
        "run",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$API_ONLY\" \"$UPSTREAM\"",
    ];
    assert_eq!(ok(cli_in(&p, &api_src, "root", &in_api)), "yes|sk-dev");
    // As stored, with --raw.
    let raw = ok(cli_in(
        &p,
        &repo,
        "root",
        &["kv", "get", "--raw", "-field=DATABASE_URL"],
    ));
    assert_eq!(raw.trim(), "postgres://${DB_USER}:${prd.DB_PASS}@db/x");
    let resolved = ok(cli_in(
        &p,
        &repo,
        "root",
        &["kv", "get", "-field=DATABASE_URL"],
    ));
    assert_eq!(resolved.trim(), "postgres://app:prd-pass@db/x");

    // A cycle is an error naming it; nothing runs.
    ok(cli_in(
        &p,
        &repo,
        "root",
        &["kv", "put", "--env", "stg", "A=${B}", "B=x-${A}"],
    ));
    let (code, _, err) = cli_in(&p, &repo, "root", &["run", "--env", "stg", "--", "true"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("reference cycle") && err.contains("secret/voice/stg#A"),
        "{err}"
    );

    // A token of dev cannot read prd, and a reference into prd says so.
    let t = req(
        &p,
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["voice-dev-read"]})),
    );
    let dev_token = t.body["auth"]["client_token"].as_str().unwrap().to_string();
    let (code, _, err) = cli_in(&p, &repo, &dev_token, &["kv", "get", "--env", "prd"]);
    assert_ne!(code, 0);
    assert!(!err.contains("prd-pass"), "{err}");
    let (code, _, err) = cli_in(&p, &repo, &dev_token, &["run", "--", "true"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("DATABASE_URL refers to ${prd.DB_PASS}"),
        "{err}"
    );
    assert!(
        !err.contains("prd-pass") && !err.contains("sk-dev"),
        "{err}"
    );
    // One field is resolved alone: another key's reference does not stand in its way.
    let plain = ok(cli_in(
        &p,
        &repo,
        &dev_token,
        &["kv", "get", "-field=OPENAI_API_KEY"],
    ));
    assert_eq!(plain.trim(), "sk-dev");
    let (code, _, err) = cli_in(&p, &repo, &dev_token, &["kv", "get", "-field=DATABASE_URL"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("DATABASE_URL refers to ${prd.DB_PASS}"),
        "{err}"
    );
    let (code, _, _) = cli_in(&p, &repo, &dev_token, &["kv", "put", "X=1"]);
    assert_ne!(code, 0, "the read policy does not write");

    // diff masks values unless --show.
    let d = ok(cli_in(&p, &repo, "root", &["env", "diff", "dev", "prd"]));
    assert!(d.contains("OPENAI_API_KEY") && d.contains("differs"), "{d}");
    assert!(d.contains("DB_PASS") && d.contains("only in prd"), "{d}");
    assert!(!d.contains("sk-dev") && !d.contains("prd-pass"), "{d}");
    let d = ok(cli_in(
        &p,
        &repo,
        "root",
        &["env", "diff", "dev", "prd", "--show", "--format", "json"],
    ));
    let rows: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["dev"] == json!("sk-dev")),
        "{d}"
    );

    // check: prd lacks DB_USER and DATABASE_URL (exit 1); promote one; check again.
    let (code, out, _) = cli_in(&p, &repo, "root", &["env", "check", "--env", "prd"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("DB_USER") && out.contains("DATABASE_URL"),
        "{out}"
    );
    let before = req(&p, "GET", "/v1/secret/metadata/voice/prd", None).body["data"]
        ["current_version"]
        .clone();
    let out = ok(cli_in(
        &p,
        &repo,
        "root",
        &["env", "promote", "dev", "prd", "DB_USER", "--dry-run"],
    ));
    assert!(out.contains("Would promote DB_USER"), "{out}");
    let out = ok(cli_in(
        &p,
        &repo,
        "root",
        &["env", "promote", "dev", "prd", "DB_USER"],
    ));
    assert!(out.contains("Promoted DB_USER"), "{out}");
    let after = req(&p, "GET", "/v1/secret/metadata/voice/prd", None).body["data"]
        ["current_version"]
        .clone();
    assert_eq!(after.as_u64(), before.as_u64().map(|v| v + 1));
    let out = ok(cli_in(
        &p,
        &repo,
        "root",
        &["env", "promote", "dev", "prd", "DB_USER"],
    ));
    assert!(out.contains("Nothing to promote"), "{out}");
    let (code, out, _) = cli_in(&p, &repo, "root", &["env", "check", "--env", "prd"]);
    assert_eq!(code, 1);
    assert!(
        !out.contains("DB_USER") && out.contains("DATABASE_URL"),
        "{out}"
    );

    // A Secret manifest of the environment, references resolved.
    let m = ok(cli_in(
        &p,
        &repo,
        "root",
        &["k8s", "secret", "--name", "voice", "--format", "json"],
    ));
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["data"]["OPENAI_API_KEY"], json!("c2stZGV2"));
    assert_eq!(
        m["data"]["DATABASE_URL"],
        json!("cG9zdGdyZXM6Ly9hcHA6cHJkLXBhc3NAZGIveA==")
    );

    // Outside any project, a path is needed and the error says how to get one.
    let (code, _, err) = cli_in(&p, &dir, "root", &["kv", "get"]);
    assert_eq!(code, 2);
    assert!(err.contains("airlock setup"), "{err}");
}

#[test]
fn a_server_config_named_airlock_toml_is_not_read_as_a_broker_profile() {
    let p = start_dev();
    let dir = tempdir("names");
    std::fs::write(
        dir.join("airlock.toml"),
        "[listener]\naddress = \"127.0.0.1:0\"\n[[audit]]\nname = \"file\"\npath = \"a.log\"\n",
    )
    .unwrap();
    let (code, _, err) = cli_in(&p, &dir, "root", &["broker", "run", "--", "true"]);
    assert_eq!(code, 2);
    assert!(!err.contains("unknown top-level key"), "{err}");
    assert!(err.contains("airlock.broker.toml"), "{err}");
    // A binding naming only `key` reads the project's environment.
    ok(cli_in(
        &p,
        &dir,
        "root",
        &["setup", "--project", "voice", "--env", "dev"],
    ));
    std::fs::write(
        dir.join("airlock.broker.toml"),
        "[[binding]]\nname = \"openai\"\nprovider = \"openai\"\nkey = \"OPENAI_API_KEY\"\n",
    )
    .unwrap();
    let out = ok(cli_in(&p, &dir, "root", &["broker", "check"]));
    assert!(out.contains("secret/voice/dev#OPENAI_API_KEY"), "{out}");
}
