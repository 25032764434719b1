//! `airlock k8s bootstrap FILE`: the `k8s-bootstrap.sh` pattern, declared. The store (one KV
//! v2 path) is the source of truth: values missing from it are minted or set from the file
//! in one check-and-set write, then every bundle becomes a Secret manifest built from the
//! store, and an env file holds every value for re-sourcing. The default is a dry run that
//! writes nothing anywhere; a second `--apply` changes nothing.
//!
//! The plan ([`plan`]) and the manifests ([`manifests`]) are pure; [`run`] does the I/O.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

use super::config::{Bootstrap, Bundle, Source};
use super::files;
use super::manifest::{check_label_name, render, render_all, secret_manifest, ManifestFormat};
use crate::client::Client;
use crate::kv::{mint_value, resolve, Loc, Target};
use crate::output::to_dotenv;

/// What `--apply` does with one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// In the store already: kept as it is.
    Keep,
    /// Missing: minted.
    Mint,
    /// Missing: set to the file's fixed value.
    Set,
    /// Required and missing: `--apply` stops.
    Missing,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Mint => "mint",
            Action::Set => "set",
            Action::Missing => "MISSING",
        }
    }
}

/// One line of the plan. Holds no value.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    pub action: Action,
    pub note: String,
}

/// What each value of `cfg` needs, given the store's current data (`None`: no store yet).
pub fn plan(cfg: &Bootstrap, current: Option<&Map<String, Value>>) -> Vec<Step> {
    let empty = Map::new();
    let data = current.unwrap_or(&empty);
    cfg.values
        .iter()
        .map(|(name, src)| {
            let (action, note) = match (data.get(name), src) {
                (Some(v), Source::Fixed(f)) if v.as_str() != Some(f.as_str()) => (
                    Action::Keep,
                    "*** (the store's value differs from the file's; the store wins)".into(),
                ),
                (Some(_), _) => (Action::Keep, "***".into()),
                (None, Source::Mint { policy: None }) => {
                    (Action::Mint, "32 random letters and digits".into())
                }
                (None, Source::Mint { policy: Some(p) }) => {
                    (Action::Mint, format!("from password policy {p}"))
                }
                (None, Source::Fixed(_)) => (Action::Set, "*** (fixed in the file)".into()),
                (None, Source::Required) => (
                    Action::Missing,
                    format!(
                        "required: store it first with `airlock kv {} {} {name}=…`",
                        if current.is_some() { "patch" } else { "put" },
                        cfg.store
                    ),
                ),
            };
            Step {
                name: name.clone(),
                action,
                note,
            }
        })
        .collect()
}

/// Every bundle's Secret manifest, from the store's data (which holds every value by then).
/// `namespace` replaces the file's default namespace (a bundle's own namespace stays).
pub fn manifests(
    cfg: &Bootstrap,
    data: &Map<String, Value>,
    namespace: Option<&str>,
) -> Result<Vec<(String, Value)>> {
    cfg.bundles
        .iter()
        .map(|(bname, b)| {
            let mut secret = Map::new();
            for (key, value) in &b.keys {
                let v = data
                    .get(value)
                    .ok_or_else(|| anyhow!("bundle {bname}: {value} is not in {}", cfg.store))?;
                secret.insert(key.clone(), v.clone());
            }
            let mut opts = b.opts.clone();
            opts.namespace = namespace_of(b, namespace);
            Ok((bname.clone(), secret_manifest(secret, &opts)?))
        })
        .collect()
}

/// The env file: every value of the file, as dotenv.
pub fn env_text(cfg: &Bootstrap, data: &Map<String, Value>) -> String {
    let vals: Map<String, Value> = cfg
        .values
        .keys()
        .filter_map(|n| data.get(n).map(|v| (n.clone(), v.clone())))
        .collect();
    format!(
        "# Written by `airlock k8s bootstrap` from {}. Secret: keep it out of git.\n{}",
        cfg.store,
        to_dotenv(&vals)
    )
}

/// The KV v2 write of `data`, accepted only while the entry is still at `version` (0: while
/// it does not exist).
pub fn cas_body(data: &Map<String, Value>, version: i64) -> Value {
    json!({ "data": data, "options": { "cas": version } })
}

/// Arguments of `k8s bootstrap`, as parsed by clap.
pub struct Args {
    pub file: PathBuf,
    pub apply: bool,
    pub namespace: Option<String>,
    pub out: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub format: ManifestFormat,
}

/// The store's data (`None`: absent or its latest version deleted) and the version a
/// check-and-set write must name (0: never written).
async fn read_store(cl: &Client, loc: &Loc) -> Result<(Option<Map<String, Value>>, i64)> {
    if let Some(v) = cl.call("GET", &loc.api("data"), None).await? {
        let data = v.pointer("/data/data").and_then(Value::as_object).cloned();
        let version = v
            .pointer("/data/metadata/version")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if data.is_some() {
            return Ok((data, version));
        }
    }
    let version = cl
        .call("GET", &loc.api("metadata"), None)
        .await?
        .and_then(|m| m.pointer("/data/current_version").and_then(Value::as_i64))
        .unwrap_or(0);
    Ok((None, version))
}

/// The namespace a bundle's Secret goes to: its own, else `-n`, else the file's.
fn namespace_of(b: &Bundle, cli: Option<&str>) -> Option<String> {
    match (cli, b.own_namespace) {
        (Some(n), false) => Some(n.to_string()),
        _ => b.opts.namespace.clone(),
    }
}

/// One run, once the file is parsed and the store read.
struct Run {
    cfg: Bootstrap,
    args: Args,
    /// The env file: `--env-file` (relative to the working directory), else the file's
    /// `env_file` (relative to the file).
    env_path: Option<PathBuf>,
    /// The store's data; `None`: absent.
    current: Option<Map<String, Value>>,
    /// The version a check-and-set write names.
    version: i64,
    steps: Vec<Step>,
}

impl Run {
    fn missing(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.action == Action::Missing)
            .map(|s| s.name.as_str())
            .collect()
    }

    /// The command that stores a required value by hand.
    fn store_hint(&self) -> String {
        let verb = if self.current.is_some() {
            "patch"
        } else {
            "put"
        };
        format!("airlock kv {verb} {} NAME=…", self.cfg.store)
    }

    fn plan_text(&self) -> String {
        let cfg = &self.cfg;
        let mut out = match &self.current {
            Some(_) => format!("Store {} (version {})\n", cfg.store, self.version),
            None => format!("Store {}: absent (created on --apply)\n", cfg.store),
        };
        out.push_str("Values:\n");
        let w = self.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &self.steps {
            let (label, name, note) = (s.action.label(), &s.name, &s.note);
            out.push_str(&format!("  {label:<8} {name:<w$}  {note}\n"));
        }
        out.push_str("Secrets:\n");
        for (name, b) in &cfg.bundles {
            let ns = namespace_of(b, self.args.namespace.as_deref())
                .map(|n| format!("{n}/"))
                .unwrap_or_default();
            let keys: Vec<String> = b
                .keys
                .iter()
                .map(|(k, v)| {
                    if k == v {
                        k.clone()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            let (t, keys) = (&b.opts.type_, keys.join(", "));
            out.push_str(&format!("  {ns}{name} ({t}): {keys}\n"));
        }
        out
    }

    fn plan_json(&self) -> Value {
        let ns = self.args.namespace.as_deref();
        let values: Vec<Value> = self
            .steps
            .iter()
            .map(|s| json!({"name": s.name, "action": s.action.label(), "note": s.note}))
            .collect();
        let secrets: Vec<Value> = self
            .cfg
            .bundles
            .iter()
            .map(|(n, b)| {
                let keys: Vec<Value> = b
                    .keys
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect();
                json!({
                    "name": n,
                    "namespace": namespace_of(b, ns),
                    "type": b.opts.type_,
                    "keys": keys,
                })
            })
            .collect();
        json!({
            "store": self.cfg.store,
            "store_version": self.current.as_ref().map(|_| self.version),
            "values": values,
            "secrets": secrets,
            "missing": self.missing(),
            "env_file": self.env_path.as_ref().map(|p| p.display().to_string()),
            "out": self.args.out.as_ref().map(|p| p.display().to_string()),
        })
    }

    /// The dry run: the plan on stdout, nothing written.
    fn dry_run(&self) -> Result<ExitCode> {
        if self.args.format == ManifestFormat::Json {
            print!(
                "{}",
                serde_json::to_string_pretty(&self.plan_json())? + "\n"
            );
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", self.plan_text());
        let to_write = self
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Mint | Action::Set))
            .count();
        let dest = match &self.args.out {
            Some(d) => format!("to {}", d.display()),
            None => "to stdout".into(),
        };
        let env = self
            .env_path
            .as_ref()
            .map(|p| format!(" and the env file {}", p.display()))
            .unwrap_or_default();
        println!(
            "Dry run: nothing was written. --apply would write {to_write} value(s) to the \
             store, {} Secret manifest(s) {dest}{env}.",
            self.cfg.bundles.len()
        );
        let missing = self.missing();
        if !missing.is_empty() {
            println!(
                "--apply would stop: required value(s) missing from {}: {} (`{}`)",
                self.cfg.store,
                missing.join(", "),
                self.store_hint()
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Makes the missing values and writes them in one check-and-set write on the version
    /// read: a concurrent run that wrote first makes this one fail instead of replacing its
    /// values. Returns the store's data as written.
    async fn fill_store(&self, cl: &Client, loc: &Loc) -> Result<Map<String, Value>> {
        let (store, version) = (&self.cfg.store, self.version);
        let mut data = self.current.clone().unwrap_or_default();
        let mut written = Vec::new();
        for s in &self.steps {
            let v = match (s.action, self.cfg.values.get(&s.name)) {
                (Action::Mint, Some(Source::Mint { policy })) => {
                    mint_value(cl, policy.as_deref()).await?
                }
                (Action::Set, Some(Source::Fixed(f))) => f.clone(),
                _ => continue,
            };
            data.insert(s.name.clone(), Value::String(v));
            written.push(s.name.as_str());
        }
        if written.is_empty() {
            eprintln!("Store {store} unchanged (version {version}).");
            return Ok(data);
        }
        let resp = cl
            .call("POST", &loc.api("data"), Some(&cas_body(&data, version)))
            .await
            .with_context(|| {
                format!(
                    "writing {store} (check-and-set on version {version}): if another run \
                     wrote it first, run again"
                )
            })?;
        let new = resp
            .and_then(|r| r.pointer("/data/version").and_then(Value::as_i64))
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default();
        eprintln!("Store {store}: wrote {}{new}.", written.join(", "));
        Ok(data)
    }

    /// The manifests (stdout, or one file each in --out) and the env file.
    fn write_outputs(&self, data: &Map<String, Value>) -> Result<()> {
        let format = self.args.format;
        let docs = manifests(&self.cfg, data, self.args.namespace.as_deref())?;
        match &self.args.out {
            Some(dir) => {
                files::ensure_dir(dir)?;
                let ext = match format {
                    ManifestFormat::Yaml => "yaml",
                    ManifestFormat::Json => "json",
                };
                for (name, doc) in &docs {
                    let path = dir.join(format!("{name}.{ext}"));
                    let changed = files::write_if_changed(&path, render(doc, format).as_bytes())?;
                    let what = if changed { "Wrote" } else { "Unchanged:" };
                    eprintln!("{what} {}", path.display());
                    if let Some(w) = files::warn_if_not_ignored(&path) {
                        eprintln!("{w}");
                    }
                }
            }
            None => {
                let all: Vec<Value> = docs.into_iter().map(|(_, d)| d).collect();
                print!("{}", render_all(&all, format));
            }
        }
        if let Some(path) = &self.env_path {
            if let Some(dir) = path.parent() {
                files::ensure_dir(dir)?;
            }
            // Ignored before it exists, so no `git add` can pick it up in between.
            for m in files::ensure_git_ignored(path)? {
                eprintln!("{m}");
            }
            let changed = files::write_if_changed(path, env_text(&self.cfg, data).as_bytes())?;
            let what = if changed { "Wrote" } else { "Unchanged:" };
            eprintln!("{what} env file {} (mode 0600)", path.display());
        }
        Ok(())
    }
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let (cfg, warnings) = super::config::parse(&text, &args.file)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if let Some(ns) = &args.namespace {
        check_label_name("namespace", ns)?;
    }
    let env_path = args.env_file.clone().or_else(|| {
        let base = args.file.parent().unwrap_or(Path::new(""));
        cfg.env_file.as_ref().map(|e| base.join(e))
    });

    let cl = Client::from_env()?;
    cl.require_token()?;
    let target = Target {
        mount: None,
        path: cfg.store.clone(),
        env: None,
    };
    let loc = resolve(&cl, &target).await?;
    if !loc.v2 {
        bail!(
            "{}: the store must be on a KV version 2 mount (its writes are check-and-set)",
            cfg.store
        );
    }
    let (current, version) = read_store(&cl, &loc).await?;
    let steps = plan(&cfg, current.as_ref());
    let r = Run {
        cfg,
        args,
        env_path,
        current,
        version,
        steps,
    };
    if !r.args.apply {
        return r.dry_run();
    }
    eprint!("{}", r.plan_text());
    let missing = r.missing();
    if !missing.is_empty() {
        eprintln!(
            "error: required value(s) missing from {}: {}. Store them (`{}`) and run again; \
             nothing was written.",
            r.cfg.store,
            missing.join(", "),
            r.store_hint()
        );
        return Ok(ExitCode::from(1));
    }
    let data = r.fill_store(&cl, &loc).await?;
    r.write_outputs(&data)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::config::parse;

    const FILE: &str = r#"store = "secret/brain/bootstrap"
namespace = "brain"
[values]
TOKEN = { mint = true }
KEY = { mint = true, policy = "strong" }
BASE = { value = "http://litellm:4000" }
LLM = { required = true }
[bundles.router]
keys = ["TOKEN", "KEY"]
[bundles.embeddings]
keys = ["LLM", "BASE", "KEYS=KEY"]
"#;

    fn cfg() -> Bootstrap {
        parse(FILE, Path::new("b.toml")).unwrap().0
    }

    fn actions(steps: &[Step]) -> Vec<(&str, Action)> {
        steps.iter().map(|s| (s.name.as_str(), s.action)).collect()
    }

    #[test]
    fn plan_of_an_absent_and_a_full_store() {
        let c = cfg();
        let p = plan(&c, None);
        assert_eq!(
            actions(&p),
            vec![
                ("BASE", Action::Set),
                ("KEY", Action::Mint),
                ("LLM", Action::Missing),
                ("TOKEN", Action::Mint)
            ]
        );
        assert!(
            p[2].note
                .contains("airlock kv put secret/brain/bootstrap LLM="),
            "{}",
            p[2].note
        );
        let full = json!({
            "BASE": "http://other", "KEY": "k-secret", "LLM": 7, "TOKEN": "t-secret", "EXTRA": 1
        });
        let p = plan(&c, full.as_object());
        assert!(p.iter().all(|s| s.action == Action::Keep));
        assert!(p[0].note.contains("differs"), "{}", p[0].note);
        let r = Run {
            cfg: c.clone(),
            args: Args {
                file: "b.toml".into(),
                apply: false,
                namespace: Some("ns2".into()),
                out: None,
                env_file: None,
                format: ManifestFormat::Json,
            },
            env_path: None,
            current: full.as_object().cloned(),
            version: 3,
            steps: p,
        };
        let text = r.plan_text();
        assert!(
            text.starts_with("Store secret/brain/bootstrap (version 3)\n"),
            "{text}"
        );
        let j = r.plan_json().to_string();
        assert!(
            !j.contains("k-secret") && j.contains("\"store_version\":3"),
            "{j}"
        );
        assert!(
            !text.contains("k-secret") && !text.contains("t-secret"),
            "{text}"
        );
        assert!(
            text.contains("ns2/embeddings (Opaque): LLM, BASE, KEYS=KEY"),
            "{text}"
        );
        let partial = json!({"TOKEN": "x"});
        let p = plan(&c, partial.as_object());
        assert!(p[2].note.contains("airlock kv patch"), "{}", p[2].note);
    }

    #[test]
    fn manifests_share_values_and_take_the_namespace() {
        let c = cfg();
        let data = json!({"BASE": "b", "KEY": "shared", "LLM": 7, "TOKEN": "t", "EXTRA": "no"});
        let docs = manifests(&c, data.as_object().unwrap(), Some("other")).unwrap();
        let names: Vec<&str> = docs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["embeddings", "router"]);
        let (e, r) = (&docs[0].1, &docs[1].1);
        assert_eq!(e["data"]["KEYS"], r["data"]["KEY"]);
        assert_eq!(e["data"]["LLM"], "Nw==");
        assert!(e["data"].get("EXTRA").is_none());
        assert_eq!(e["metadata"]["namespace"], "other");
        let docs2 = manifests(&c, data.as_object().unwrap(), None).unwrap();
        assert_eq!(docs2[0].1["metadata"]["namespace"], "brain");
        let missing = json!({"BASE": "b"});
        assert!(manifests(&c, missing.as_object().unwrap(), None).is_err());
        assert_eq!(
            cas_body(data.as_object().unwrap(), 0)["options"],
            json!({"cas": 0})
        );
        let env = env_text(&c, data.as_object().unwrap());
        assert!(
            env.ends_with("BASE=b\nKEY=shared\nLLM=7\nTOKEN=t\n"),
            "{env}"
        );
        assert!(!env.contains("EXTRA"));
    }
}
