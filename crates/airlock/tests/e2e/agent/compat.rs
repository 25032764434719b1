//! What users bring from Vault: the OpenBao agent's rendering, byte for byte, for the same
//! templates against the same server; configs and templates that are wrong, refused at
//! start with their file and line, and a destination that a failing template never touches.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::{airlock_agent, read, spawn_agent, token_file_auth, write};
use crate::database::psql_ok;
use crate::util::*;

/// Environment for both agents in the differential test.
const DIFF_ENV: (&str, &str) = ("AGENT_DIFF_VAR", "from-the-environment");

#[test]
fn openbao_agent_and_airlock_agent_render_the_same_bytes() {
    let Some(bao) = openbao() else {
        require("the OpenBao binary (bao)", false);
        return;
    };
    let p = start_dev();
    let dir = tempdir("agent-diff");
    write(&p, "sys/mounts/kv1", json!({"type": "kv"}));
    write(
        &p,
        "secret/data/app",
        json!({"data": {"password": "s3cr=t&<x>", "user": "alice", "port": 5432, "ratio": 1.5,
            "big": 12345678901234567890u64, "flag": true, "list": ["x", "y"], "nested": {"a": [1, 2], "b": null}}}),
    );
    write(&p, "kv1/app", json!({"api_key": "key-1", "empty": ""}));
    let mut templates: Vec<(&str, &str)> = vec![
        (
            "kv1.tmpl",
            "{{ with secret \"kv1/app\" }}{{ .Data.api_key }} [{{ .Data.empty }}] {{ .Data.missing }}\nlease={{ .LeaseID }} renewable={{ .Renewable }}{{ end }}\n",
        ),
        (
            "kv2.tmpl",
            "{{ with secret \"secret/app\" }}{{ .Data.data.password }} {{ .Data.data.port }} {{ .Data.data.nope }}{{ end }}\n{{ with secret \"secret/data/app\" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}\n{{ end }}{{ toJSON .Data.data }}\n{{ .Data.metadata.version }} {{ .Data.metadata.destroyed }}{{ end }}\n",
        ),
        (
            "values.tmpl",
            "{{ with secret \"secret/app\" }}{{ .Data.data }}\n{{ .Data.data.nested }} {{ .Data.data.nested.b }} {{ .Data.data.ratio }} {{ .Data.data.big }}\n{{ toJSONPretty .Data.data.nested }}\n{{ printf \"%q %v %d\" .Data.data.user .Data.data.port .Data.data.port }} {{ index .Data.data \"user\" }}\n{{ .LeaseDuration }} {{ .Renewable }} {{ .Warnings }} {{ .Auth }} {{ .WrapInfo }} {{ .RequestID | len }}\n{{ if .Data.data.flag }}{{ range $i, $x := .Data.data.list }}{{ $i }}:{{ $x }} {{ end }}{{ end }}{{ end }}\n{{ join \"-\" (split \",\" \"a,b,c\") }} {{ parseJSON \"{\\\"a\\\":[1,2]}\" }} {{ \"MiXed\" | toLower }} {{ 3 | add 4 }}\n",
        ),
        (
            "funcs.tmpl",
            "{{ env \"AGENT_DIFF_VAR\" }}|{{ env \"AGENT_DIFF_UNSET\" }}|{{ base64Encode \"hello, world\" }}|{{ with secret \"secret/app\" }}{{ .Data.data.user | base64Encode }}{{ end }}\n",
        ),
    ];
    let db = require("PostgreSQL on 127.0.0.1:5432 with psql", psql_ok());
    if db {
        write(&p, "sys/mounts/database", json!({"type": "database"}));
        write(
            &p,
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
                "username": "postgres", "password": "x", "allowed_roles": ["app"],
            }),
        );
        write(
            &p,
            "database/roles/app",
            json!({"db_name": "pg", "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"], "default_ttl": "1h", "max_ttl": "2h"}),
        );
        templates.push((
            "db.tmpl",
            "{{ with secret \"database/creds/app\" }}{{ .LeaseDuration }} {{ .Renewable }} {{ range $k, $v := .Data }}{{ $k }} {{ end }}{{ len .Data.username }} {{ len .Data.password }}{{ end }}\n",
        ));
    }
    for (name, text) in &templates {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let auth = token_file_auth(&dir, "root");
    let config = |who: &str| {
        let out = dir.join(who);
        std::fs::create_dir_all(&out).unwrap();
        let mut c = format!(
            "vault {{\n  address = \"{}\"\n}}\n{auth}exit_after_auth = true\n",
            p.addr
        );
        for (name, _) in &templates {
            c.push_str(&format!(
                "template {{\n  source = \"{}\"\n  destination = \"{}\"\n}}\n",
                dir.join(name).display(),
                out.join(name.replace(".tmpl", ".out")).display()
            ));
        }
        let f = dir.join(format!("{who}.hcl"));
        std::fs::write(&f, c).unwrap();
        f
    };
    let (bao_cfg, airlock_cfg) = (config("bao"), config("airlock"));
    let mut b = spawn_agent(
        &bao,
        &["-config", bao_cfg.to_str().unwrap()],
        &dir,
        "bao-agent",
        &[DIFF_ENV],
    );
    assert_eq!(b.wait_exit(Duration::from_secs(30)), Some(0), "{}", b.log());
    let mut a = spawn_agent(
        bin(),
        &[&format!("-config={}", airlock_cfg.display())],
        &dir,
        "airlock-agent",
        &[DIFF_ENV],
    );
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0), "{}", a.log());
    for (name, _) in &templates {
        let out = name.replace(".tmpl", ".out");
        let (want, got) = (
            std::fs::read(dir.join("bao").join(&out)).unwrap(),
            std::fs::read(dir.join("airlock").join(&out)).unwrap(),
        );
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{out} differs from OpenBao's"
        );
        assert!(
            !want.is_empty() && !String::from_utf8_lossy(&want).contains("<no value>\n<no value>")
        );
    }
    let read_out = |n: &str| read(&dir.join("airlock").join(n));
    assert!(
        read_out("kv1.out").starts_with("key-1 [] <no value>\n"),
        "{}",
        read_out("kv1.out")
    );
    assert!(read_out("funcs.out").starts_with("from-the-environment||aGVsbG8sIHdvcmxk|"));
    if db {
        assert!(
            read_out("db.out").starts_with("3600 true password username "),
            "{}",
            read_out("db.out")
        );
    }
    if db {
        req(
            &p,
            "PUT",
            "/v1/sys/leases/revoke-prefix/database/creds",
            None,
        );
    }
}

/// Runs `airlock agent` expecting it to fail at start; its stderr.
fn fails(dir: &Path, cfg: &str) -> String {
    let f = dir.join("agent.hcl");
    std::fs::write(&f, cfg).unwrap();
    let out = Command::new(bin())
        .args(["agent", "--config"])
        .arg(&f)
        .env_remove("VAULT_ADDR")
        .output()
        .unwrap();
    assert!(!out.status.success(), "accepted:\n{cfg}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_configs_and_templates_fail_at_start_naming_file_and_line() {
    let dir = tempdir("agent-bad");
    let f = dir.join("agent.hcl").display().to_string();
    let auth = token_file_auth(&dir, "root");
    let dest = dir.join("dest.txt");
    std::fs::write(&dest, "keep me\n").unwrap();
    let template = |body: &str| {
        format!(
            "vault {{ address = \"http://127.0.0.1:1\" }}\n{auth}template {{\n{body}\n  destination = \"{}\"\n}}\n",
            dest.display()
        )
    };
    // Malformed HCL.
    let err = fails(&dir, "vault {\n  address = \"http://x\"\n\nauto_auth {\n");
    assert!(err.contains(&format!("{f}:")), "{err}");
    // An unknown key, with its line (after the 5 lines of vault + auth).
    let err = fails(&dir, &template("  contents = \"x\"\n  colour = \"blue\""));
    assert!(
        err.contains(&format!("{f}:9: unknown key \"colour\" in template")),
        "{err}"
    );
    // A wrong type.
    let err = fails(&dir, &template("  contents = \"x\"\n  perms = true"));
    assert!(
        err.contains(&format!("{f}:9:")) && err.contains("perms"),
        "{err}"
    );
    // Both and neither of source and contents.
    let err = fails(&dir, &template("  contents = \"x\"\n  source = \"y\""));
    assert!(err.contains("cannot be specified together"), "{err}");
    let err = fails(&dir, &template(""));
    assert!(err.contains("either 'contents' or 'source'"), "{err}");
    // A template that does not parse: its own file and line.
    let bad = dir.join("bad.tmpl");
    std::fs::write(
        &bad,
        "line one\n{{ with secret \"secret/app\" }}\n{{ .Data.x \n",
    )
    .unwrap();
    let err = fails(
        &dir,
        &template(&format!("  source = \"{}\"", bad.display())),
    );
    assert!(err.contains(&format!("{}:", bad.display())), "{err}");
    // In a heredoc, the config line.
    let err = fails(&dir, &template("  contents = <<EOT\nfine\n{{ end }}\nEOT"));
    assert!(err.contains(&format!("{f}:10:")), "{err}");
    // An unsupported method, a refused tls_skip_verify, env_template without exec.
    let err = fails(
        &dir,
        "auto_auth {\n  method \"aws\" {\n    config = {}\n  }\n}\n",
    );
    assert!(
        err.contains(&format!("{f}:2:")) && err.contains("not supported"),
        "{err}"
    );
    let err = fails(
        &dir,
        &format!("vault {{\n  address = \"https://x\"\n  tls_skip_verify = true\n}}\n{auth}"),
    );
    assert!(err.contains(&format!("{f}:3:")), "{err}");
    let err = fails(
        &dir,
        &format!("{auth}env_template \"X\" {{\n  contents = \"x\"\n}}\n"),
    );
    assert!(err.contains("'exec' element must be specified"), "{err}");
    assert_eq!(
        read(&dest),
        "keep me\n",
        "a failing start never touches the destination"
    );
}

#[test]
fn a_template_failing_at_render_time_leaves_the_destination_untouched() {
    let p = start_dev();
    let dir = tempdir("agent-render-error");
    write(&p, "secret/data/app", json!({"data": {"password": "pw"}}));
    let dest = dir.join("dest.txt");
    std::fs::write(&dest, "previous contents\n").unwrap();
    let cfg = dir.join("agent.hcl");
    std::fs::write(
        &cfg,
        format!(
            "vault {{ address = \"{}\" }}\n{}exit_after_auth = true\ntemplate {{\n  contents = <<EOT\nbefore\n{{{{ with secret \"secret/app\" }}}}{{{{ .Data.data.missing }}}}{{{{ end }}}}\nEOT\n  error_on_missing_key = true\n  destination = \"{}\"\n}}\n",
            p.addr,
            token_file_auth(&dir, "root"),
            dest.display()
        ),
    )
    .unwrap();
    let mut agent = airlock_agent(&cfg, &dir);
    let code = agent.wait_exit(Duration::from_secs(15));
    assert_ne!(code, Some(0), "{}", agent.log());
    let log = agent.log();
    assert!(log.contains(&format!("{}:11:", cfg.display())), "{log}");
    assert_eq!(read(&dest), "previous contents\n");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left behind");
}
