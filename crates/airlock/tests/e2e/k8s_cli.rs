//! `airlock k8s secret` and `airlock k8s bootstrap` against a dev server: manifests checked
//! against the Kubernetes schema (`kubernetes-validate`, PyPI) and read back with a YAML
//! 1.1 reader (PyYAML, as kubectl's reader would); renames and their errors; the bootstrap's
//! dry run writing nothing, its check-and-set write, the env file and its `.gitignore` line
//! in a real git work tree, and a second `--apply` that changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::util::*;

fn have_validator() -> bool {
    require(
        "python3 with kubernetes-validate (python3 -m pip install kubernetes-validate)",
        python_has("kubernetes_validate") && python_has("yaml"),
    )
}

/// Runs `kubernetes-validate --strict` on `file`; every name in `secrets` must pass.
fn validate(file: &Path, secrets: &[&str]) {
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in secrets {
        assert!(
            text.contains(&format!("passed for resource secret/{s} ")),
            "{s} not validated: {text}"
        );
    }
}

/// The documents of a YAML file as a YAML 1.1 reader (PyYAML) sees them.
fn yaml_docs(file: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn decode(doc: &Value, key: &str) -> String {
    let b = doc["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no data key {key}: {doc}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
}

fn ok(p: &Proc, args: &[&str]) -> (String, String) {
    let (c, out, err) = cli(p, args, None);
    assert_eq!(c, 0, "{args:?}: {out}{err}");
    (out, err)
}

#[test]
fn k8s_secret_manifests_validate_and_refuse_bad_input() {
    if !have_validator() {
        return;
    }
    let p = start_dev();
    let dir = tempdir("k8s-secret");
    ok(&p, &["kv", "put", "secret/app", "USER=admin", "PASS=TRUE"]);
    ok(
        &p,
        &["kv", "put", "secret/db", "PASS=db-value-77", "HOST=db:5432"],
    );
    let (c, out, err) = cli(
        &p,
        &["kv", "put", "secret/typed", "-"],
        Some(r#"{"PORT": 5432, "ON": true, "CFG": {"a": [1, "x"]}}"#),
    );
    assert_eq!(c, 0, "{out}{err}");

    // Two paths, a path-qualified rename, typed values, labels and annotations.
    let args = [
        "k8s",
        "secret",
        "secret/app",
        "secret/db",
        "secret/typed",
        "--name",
        "app-secrets",
        "--namespace",
        "brain",
        "--rename",
        "secret/db:PASS=DB_PASS",
        "--rename",
        "ON=FLAG",
        "--label",
        "team=ai",
        "--annotation",
        "example.com/note=hello world",
    ];
    let (yaml, _) = ok(&p, &args);
    let file = dir.join("app.yaml");
    std::fs::write(&file, &yaml).unwrap();
    validate(&file, &["app-secrets"]);
    let docs = yaml_docs(&file);
    let (json_out, _) = ok(&p, &[&args[..], &["--format", "json"]].concat());
    let doc: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(docs, vec![doc.clone()], "YAML and JSON differ:\n{yaml}");
    assert_eq!(doc["metadata"]["namespace"], "brain");
    assert_eq!(
        doc["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "airlock"
    );
    assert_eq!(doc["metadata"]["labels"]["team"], "ai");
    assert_eq!(
        doc["metadata"]["annotations"]["example.com/note"],
        "hello world"
    );
    assert_eq!(doc["type"], "Opaque");
    assert_eq!(decode(&doc, "PASS"), "TRUE");
    assert_eq!(decode(&doc, "DB_PASS"), "db-value-77");
    assert_eq!(decode(&doc, "HOST"), "db:5432");
    assert_eq!(decode(&doc, "PORT"), "5432");
    assert_eq!(decode(&doc, "FLAG"), "true");
    assert_eq!(
        serde_json::from_str::<Value>(&decode(&doc, "CFG")).unwrap(),
        json!({"a": [1, "x"]})
    );
    assert_eq!(doc["data"].as_object().unwrap().len(), 7);

    // `${…}` references resolve as in `airlock run`; --raw keeps them.
    ok(&p, &["kv", "put", "secret/refs", "A=xval", "B=${A}-y"]);
    let get = |raw: &[&str]| {
        let args = [
            &[
                "k8s",
                "secret",
                "secret/refs",
                "--name",
                "r",
                "--format",
                "json",
            ],
            raw,
        ]
        .concat();
        let doc: Value = serde_json::from_str(&ok(&p, &args).0).unwrap();
        decode(&doc, "B")
    };
    assert_eq!(get(&[]), "xval-y");
    assert_eq!(get(&["--raw"]), "${A}-y");

    // A key in two paths: both paths named, a rename suggested, no value printed.
    let (c, out, err) = cli(
        &p,
        &["k8s", "secret", "secret/app", "secret/db", "--name", "x"],
        None,
    );
    assert_eq!(c, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("key PASS is in both secret/app and secret/db"),
        "{err}"
    );
    assert!(err.contains("--rename secret/db:PASS=NEW_NAME"), "{err}");
    assert!(
        !err.contains("db-value-77") && !err.contains("TRUE"),
        "{err}"
    );

    // A key Kubernetes refuses: named, with the way out.
    ok(
        &p,
        &["kv", "put", "secret/odd", "bad key=odd-value-55", "GOOD=1"],
    );
    let (c, out, err) = cli(&p, &["k8s", "secret", "secret/odd", "--name", "x"], None);
    assert_eq!(c, 2, "{out}{err}");
    assert!(
        err.contains("\"bad key\"") && err.contains("--rename bad key=NEW_NAME"),
        "{err}"
    );
    assert!(!err.contains("odd-value-55"), "{err}");
    let (out, _) = ok(
        &p,
        &[
            "k8s",
            "secret",
            "secret/odd",
            "--name",
            "x",
            "--rename",
            "bad key=bad-key",
            "--format",
            "json",
        ],
    );
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(decode(&doc, "bad-key"), "odd-value-55");

    // A rename of an absent key, bad names, a missing path.
    for (args, want) in [
        (
            vec!["secret/app", "--name", "x", "--rename", "NOPE=X"],
            "no given path has a key NOPE",
        ),
        (
            vec!["secret/app", "--name", "x", "--rename", "secret/db:USER=X"],
            "no given path has a key secret/db:USER",
        ),
        (
            vec!["secret/app", "--name", "Bad_Name"],
            "DNS-1123 subdomain",
        ),
        (
            vec!["secret/app", "--name", "x", "-n", "a.b"],
            "DNS-1123 label",
        ),
        (
            vec!["secret/nothing-here", "--name", "x"],
            "no secret at secret/nothing-here",
        ),
    ] {
        let (c, out, err) = cli(&p, &[&["k8s", "secret"][..], &args].concat(), None);
        assert_eq!(c, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.is_empty());
    }
}

const BOOTSTRAP: &str = r#"# k8s-bootstrap.toml
store = "secret/brain/bootstrap"   # KV path holding every value: the source of truth
namespace = "brain"                # default namespace of the Secrets
env_file = "local/.k8s-tokens"     # written on --apply (mode 0600, git-ignored)

[values]
KB_ROUTER_TOKEN = { mint = true }                    # 32 random letters/digits when missing
EMBEDDINGS_API_KEY = { mint = true, policy = "strong" } # from a password policy when missing
LLM_API_BASE = { value = "http://litellm:4000" }     # fixed; written when missing
LLM_API_KEY = { required = true }                    # must already be in the store (airlock kv put)

[bundles.agentibrain-router-secrets]                  # one Opaque Secret per bundle
keys = ["KB_ROUTER_TOKEN", "EMBEDDINGS_API_KEY"]
[bundles.embeddings-secrets]
keys = ["LLM_API_KEY", "LLM_API_BASE", "EMBEDDINGS_API_KEYS=EMBEDDINGS_API_KEY"]  # SECRET_KEY=VALUE_NAME
"#;

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn store_version(p: &Proc) -> Option<u64> {
    let r = req(p, "GET", "/v1/secret/metadata/brain/bootstrap", None);
    (r.status == 200).then(|| r.body["data"]["current_version"].as_u64().unwrap())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn k8s_bootstrap_dry_run_apply_and_idempotence() {
    let git_ok = Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_validator() || !require("git", git_ok) {
        return;
    }
    let p = start_dev();
    let w = req(
        &p,
        "PUT",
        "/v1/sys/policies/password/strong",
        Some(
            json!({"policy": "length = 40\nrule \"charset\" {\n  charset = \"abcdef0123456789\"\n}\n"}),
        ),
    );
    assert_eq!(w.status, 204, "{:?}", w.body);
    let repo = tempdir("k8s-bootstrap");
    assert!(git(&repo, &["init", "-q"]).status.success());
    let file = repo.join("k8s-bootstrap.toml");
    std::fs::write(&file, BOOTSTRAP).unwrap();
    let f = file.to_str().unwrap();
    let env_file = repo.join("local/.k8s-tokens");
    let out_dir = repo.join("deploy");
    let o = out_dir.to_str().unwrap();

    // Dry run on an absent store: the plan, masked; nothing written anywhere.
    let (out, _) = ok(&p, &["k8s", "bootstrap", f]);
    for line in [
        "absent (created on --apply)",
        "mint     EMBEDDINGS_API_KEY",
        "mint     KB_ROUTER_TOKEN",
        "set      LLM_API_BASE",
        "MISSING  LLM_API_KEY",
        "brain/embeddings-secrets (Opaque): LLM_API_KEY, LLM_API_BASE, EMBEDDINGS_API_KEYS=EMBEDDINGS_API_KEY",
        "Dry run: nothing was written.",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert!(!out.contains("litellm"), "a value was printed:\n{out}");
    assert_eq!(store_version(&p), None);
    assert!(!repo.join("local").exists() && !out_dir.exists());

    // Apply with a required value missing: exit 1, a clear message, still nothing written.
    let (c, out, err) = cli(&p, &["k8s", "bootstrap", f, "--apply", "--out", o], None);
    assert_eq!(c, 1, "{out}{err}");
    assert!(
        err.contains("required value(s) missing from secret/brain/bootstrap: LLM_API_KEY")
            && err.contains("airlock kv put secret/brain/bootstrap"),
        "{err}"
    );
    assert_eq!(store_version(&p), None);
    assert!(!repo.join("local").exists() && !out_dir.exists());

    ok(
        &p,
        &[
            "kv",
            "put",
            "secret/brain/bootstrap",
            "LLM_API_KEY=sk-llm-4242",
            "OTHER=kept",
        ],
    );
    assert_eq!(store_version(&p), Some(1));
    let (out, _) = ok(&p, &["k8s", "bootstrap", f, "--format", "json"]);
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["store_version"], 1);
    let actions: Vec<(&str, &str)> = plan["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("EMBEDDINGS_API_KEY", "mint"),
            ("KB_ROUTER_TOKEN", "mint"),
            ("LLM_API_BASE", "set"),
            ("LLM_API_KEY", "keep")
        ]
    );
    assert!(!out.contains("sk-llm-4242"));
    assert_eq!(store_version(&p), Some(1));

    // Apply: one write (version 2), manifests in --out, the env file, its .gitignore line.
    let (_, err) = ok(&p, &["k8s", "bootstrap", f, "--apply", "--out", o]);
    assert!(!err.contains("sk-llm-4242"), "{err}");
    assert_eq!(store_version(&p), Some(2));
    let stored =
        req(&p, "GET", "/v1/secret/data/brain/bootstrap", None).body["data"]["data"].clone();
    assert_eq!(stored["OTHER"], "kept");
    assert_eq!(stored["LLM_API_BASE"], "http://litellm:4000");
    assert_eq!(stored["KB_ROUTER_TOKEN"].as_str().unwrap().len(), 32);
    let minted = stored["EMBEDDINGS_API_KEY"].as_str().unwrap().to_string();
    assert!(
        minted.len() == 40 && minted.chars().all(|c| "abcdef0123456789".contains(c)),
        "policy not used"
    );

    let router = out_dir.join("agentibrain-router-secrets.yaml");
    let emb = out_dir.join("embeddings-secrets.yaml");
    for m in [&router, &emb] {
        assert_eq!(mode(m), 0o600, "{}", m.display());
    }
    validate(&router, &["agentibrain-router-secrets"]);
    validate(&emb, &["embeddings-secrets"]);
    let r = yaml_docs(&router).remove(0);
    let e = yaml_docs(&emb).remove(0);
    assert_eq!(r["metadata"]["namespace"], "brain");
    assert_eq!(decode(&r, "EMBEDDINGS_API_KEY"), minted);
    assert_eq!(
        decode(&e, "EMBEDDINGS_API_KEYS"),
        minted,
        "a shared value differs"
    );
    assert_eq!(
        decode(&r, "KB_ROUTER_TOKEN"),
        stored["KB_ROUTER_TOKEN"].as_str().unwrap()
    );
    assert_eq!(decode(&e, "LLM_API_KEY"), "sk-llm-4242");
    assert_eq!(decode(&e, "LLM_API_BASE"), "http://litellm:4000");
    assert_eq!(e["data"].as_object().unwrap().len(), 3);

    assert_eq!(mode(&env_file), 0o600);
    let env_text = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        env_text.contains(&format!("EMBEDDINGS_API_KEY={minted}\n")),
        "{env_text}"
    );
    assert!(env_text.contains("LLM_API_KEY=sk-llm-4242\n") && env_text.contains("LLM_API_BASE="));
    assert!(!env_text.contains("OTHER"), "{env_text}");
    assert!(err.contains("Added .k8s-tokens to"), "{err}");
    let gi = std::fs::read_to_string(repo.join("local/.gitignore")).unwrap();
    assert_eq!(gi, ".k8s-tokens\n");
    let ignored = git(&repo, &["check-ignore", "-q", "local/.k8s-tokens"]);
    assert!(ignored.status.success(), "the env file is not git-ignored");

    // Again: no new version; manifests, env file and .gitignore byte-identical.
    let before: Vec<Vec<u8>> = [&router, &emb, &env_file, &repo.join("local/.gitignore")]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let (_, err) = ok(&p, &["k8s", "bootstrap", f, "--apply", "--out", o]);
    assert!(err.contains("unchanged (version 2)"), "{err}");
    assert!(!err.contains("Added"), "{err}");
    assert_eq!(store_version(&p), Some(2));
    let after: Vec<Vec<u8>> = [&router, &emb, &env_file, &repo.join("local/.gitignore")]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(before, after);

    // To stdout: one YAML stream, identical on every run, valid, the same Secrets.
    let (s1, _) = ok(&p, &["k8s", "bootstrap", f, "--apply"]);
    let (s2, _) = ok(&p, &["k8s", "bootstrap", f, "--apply"]);
    assert_eq!(s1, s2);
    assert_eq!(store_version(&p), Some(2));
    let all = repo.join("all.yaml");
    std::fs::write(&all, &s1).unwrap();
    validate(&all, &["agentibrain-router-secrets", "embeddings-secrets"]);
    assert_eq!(yaml_docs(&all), vec![r, e]);

    // -n replaces the file's namespace.
    let (s3, _) = ok(
        &p,
        &[
            "k8s",
            "bootstrap",
            f,
            "--apply",
            "-n",
            "staging",
            "--format",
            "json",
        ],
    );
    let list: Value = serde_json::from_str(&s3).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][1]["metadata"]["namespace"], "staging");

    // A file error names the file, the line and the reason; an unused value warns.
    let bad = repo.join("bad.toml");
    std::fs::write(
        &bad,
        BOOTSTRAP.replace("\"LLM_API_BASE\",", "\"LLM_API_BASX\","),
    )
    .unwrap();
    let (c, _, err) = cli(&p, &["k8s", "bootstrap", bad.to_str().unwrap()], None);
    assert_eq!(c, 2);
    assert!(
        err.contains("bad.toml:15: bundle embeddings-secrets: no value \"LLM_API_BASX\""),
        "{err}"
    );
    std::fs::write(
        &bad,
        BOOTSTRAP.replace(
            "[bundles.agentibrain",
            "EXTRA = { mint = true }\n[bundles.agentibrain",
        ),
    )
    .unwrap();
    let (_, err) = ok(&p, &["k8s", "bootstrap", bad.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml:12: value EXTRA is used by no bundle"),
        "{err}"
    );
    std::fs::write(
        &bad,
        BOOTSTRAP.replace("{ mint = true }", "{ mint = true, length = 3 }"),
    )
    .unwrap();
    let (c, _, err) = cli(&p, &["k8s", "bootstrap", bad.to_str().unwrap()], None);
    assert_eq!(c, 2);
    assert!(err.contains("bad.toml:7: unknown field `length`"), "{err}");
}
