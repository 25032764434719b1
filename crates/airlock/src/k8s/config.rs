//! The bootstrap file (`k8s-bootstrap.toml`), parsed once into a checked [`Bootstrap`]:
//! the KV path that holds every value, how each value comes to exist, and the Secrets
//! (bundles) made of them. Pure: text in, a valid config (and warnings) or an error naming
//! the file, the line and the reason.
//!
//! ```toml
//! store = "secret/brain/bootstrap"   # KV v2 path holding every value: the source of truth
//! namespace = "brain"                # default namespace of the Secrets
//! env_file = "local/.k8s-tokens"     # written on --apply (relative to this file)
//!
//! [values]
//! KB_ROUTER_TOKEN = { mint = true }                      # 32 random letters/digits
//! EMBEDDINGS_API_KEY = { mint = true, policy = "strong" } # from a password policy
//! LLM_API_BASE = { value = "http://litellm:4000" }       # fixed; written when missing
//! LLM_API_KEY = { required = true }                      # must already be in the store
//!
//! [bundles.embeddings-secrets]                            # one Secret per bundle
//! keys = ["LLM_API_KEY", "EMBEDDINGS_API_KEYS=EMBEDDINGS_API_KEY"]  # SECRET_KEY=VALUE_NAME
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;
use toml::Spanned;

use super::manifest::{check_label_name, check_subdomain, secret_key_problem, SecretOpts};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    store: Spanned<String>,
    namespace: Option<Spanned<String>>,
    env_file: Option<String>,
    #[serde(default)]
    values: BTreeMap<String, Spanned<RawValue>>,
    #[serde(default)]
    bundles: BTreeMap<String, Spanned<RawBundle>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    mint: Option<bool>,
    policy: Option<String>,
    value: Option<String>,
    required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    keys: Vec<Spanned<String>>,
    namespace: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// How a value comes to exist in the store when it is not there yet.
#[derive(Clone, PartialEq)]
pub enum Source {
    /// Minted: from the password policy, or 32 random letters and digits.
    Mint { policy: Option<String> },
    /// The fixed text given in the file.
    Fixed(String),
    /// Never made by airlock: it must already be in the store.
    Required,
}

/// One Secret: its options and its keys as (Secret key, value name).
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    pub opts: SecretOpts,
    pub keys: Vec<(String, String)>,
    /// Whether the bundle names its own namespace (then `--namespace` does not change it).
    pub own_namespace: bool,
}

/// A checked bootstrap file: every bundle key names a defined value.
#[derive(Clone)]
pub struct Bootstrap {
    pub store: String,
    pub env_file: Option<String>,
    pub values: BTreeMap<String, Source>,
    pub bundles: BTreeMap<String, Bundle>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).unwrap_or(text).matches('\n').count() + 1
}

/// An environment variable name (the env file is meant to be sourced by a shell).
fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses and checks a bootstrap file. Returns the config and its warnings.
pub fn parse(text: &str, origin: &Path) -> Result<(Bootstrap, Vec<String>)> {
    let file = origin.display();
    let raw: RawFile = toml::from_str(text).map_err(|e| match e.span() {
        Some(s) => anyhow!("{file}:{}: {}", line_of(text, s.start), e.message().trim()),
        None => anyhow!("{file}: {}", e.message().trim()),
    })?;
    let at = |span: std::ops::Range<usize>| format!("{file}:{}", line_of(text, span.start));

    let store = raw.store.get_ref().trim_matches('/').to_string();
    if store.is_empty() || store.split('/').count() < 2 {
        bail!(
            "{}: store {:?} must be a KV path below a mount (e.g. secret/app/bootstrap)",
            at(raw.store.span()),
            raw.store.get_ref()
        );
    }
    let namespace = match &raw.namespace {
        Some(ns) => {
            check_label_name("namespace", ns.get_ref())
                .map_err(|e| anyhow!("{}: {e}", at(ns.span())))?;
            Some(ns.get_ref().clone())
        }
        None => None,
    };

    let mut values = BTreeMap::new();
    for (name, spec) in &raw.values {
        let here = at(spec.span());
        if !is_env_name(name) {
            bail!(
                "{here}: value name {name:?}: use letters, digits and '_', not starting with a \
                 digit (it is also a variable of the env file)"
            );
        }
        let v = spec.get_ref();
        let source = match (v.mint, &v.value, v.required) {
            (Some(true), None, None | Some(false)) => {
                if let Some(p) = &v.policy {
                    let ok = !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                    if !ok {
                        bail!("{here}: {name}: password policy name {p:?} is not valid");
                    }
                }
                Source::Mint {
                    policy: v.policy.clone(),
                }
            }
            (None | Some(false), Some(text), None | Some(false)) if v.policy.is_none() => {
                Source::Fixed(text.clone())
            }
            (None | Some(false), None, Some(true)) if v.policy.is_none() => Source::Required,
            _ if v.policy.is_some() && v.mint != Some(true) => {
                bail!("{here}: {name}: `policy` goes with `mint = true`")
            }
            _ => bail!(
                "{here}: {name}: give exactly one of `mint = true`, `value = \"…\"` or \
                 `required = true`"
            ),
        };
        values.insert(name.clone(), source);
    }

    if raw.bundles.is_empty() {
        bail!("{file}: no bundles: add a [bundles.NAME] table with the keys of each Secret");
    }
    let mut used = BTreeSet::new();
    let mut bundles = BTreeMap::new();
    for (bname, spec) in &raw.bundles {
        let b = spec.get_ref();
        let here = b
            .keys
            .first()
            .map(|k| at(k.span()))
            .unwrap_or_else(|| at(spec.span()));
        check_subdomain("bundle (Secret) name", bname).map_err(|e| anyhow!("{here}: {e}"))?;
        if b.keys.is_empty() {
            bail!("{here}: bundle {bname} has no keys");
        }
        let mut keys: Vec<(String, String)> = Vec::new();
        for k in &b.keys {
            let kh = at(k.span());
            let (key, value) = match k.get_ref().split_once('=') {
                Some((s, v)) => (s.to_string(), v.to_string()),
                None => (k.get_ref().clone(), k.get_ref().clone()),
            };
            if let Some(why) = secret_key_problem(&key) {
                bail!(
                    "{kh}: bundle {bname}: {key:?} cannot be a Secret key ({why}): write \
                     \"SECRET_KEY=VALUE_NAME\" to name it differently"
                );
            }
            if !values.contains_key(&value) {
                bail!("{kh}: bundle {bname}: no value {value:?} in [values]");
            }
            if keys.iter().any(|(x, _)| *x == key) {
                bail!("{kh}: bundle {bname}: key {key} appears twice");
            }
            used.insert(value.clone());
            keys.push((key, value));
        }
        let mut opts = SecretOpts::opaque(bname);
        opts.namespace = b.namespace.clone().or_else(|| namespace.clone());
        if let Some(t) = &b.type_ {
            opts.type_ = t.clone();
        }
        opts.labels = b.labels.clone();
        opts.annotations = b.annotations.clone();
        opts.validate()
            .map_err(|e| anyhow!("{here}: bundle {bname}: {e}"))?;
        bundles.insert(
            bname.clone(),
            Bundle {
                opts,
                keys,
                own_namespace: b.namespace.is_some(),
            },
        );
    }

    let warnings = raw
        .values
        .iter()
        .filter(|(n, _)| !used.contains(*n))
        .map(|(n, s)| format!("{}: value {n} is used by no bundle", at(s.span())))
        .collect();
    Ok((
        Bootstrap {
            store,
            env_file: raw.env_file,
            values,
            bundles,
        },
        warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"# k8s-bootstrap.toml
store = "secret/brain/bootstrap"
namespace = "brain"
env_file = "local/.k8s-tokens"

[values]
KB_ROUTER_TOKEN = { mint = true }
EMBEDDINGS_API_KEY = { mint = true, policy = "strong" }
LLM_API_BASE = { value = "http://litellm:4000" }
LLM_API_KEY = { required = true }

[bundles.agentibrain-router-secrets]
keys = ["KB_ROUTER_TOKEN", "EMBEDDINGS_API_KEY"]
[bundles.embeddings-secrets]
keys = ["LLM_API_KEY", "LLM_API_BASE", "EMBEDDINGS_API_KEYS=EMBEDDINGS_API_KEY"]
"#;

    fn err(text: &str) -> String {
        match parse(text, Path::new("b.toml")) {
            Ok(_) => panic!("parsed: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_example_parses() {
        let (c, warnings) = parse(EXAMPLE, Path::new("b.toml")).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.store, "secret/brain/bootstrap");
        assert_eq!(c.env_file.as_deref(), Some("local/.k8s-tokens"));
        assert!(matches!(
            &c.values["KB_ROUTER_TOKEN"],
            Source::Mint { policy: None }
        ));
        assert!(matches!(
            &c.values["EMBEDDINGS_API_KEY"],
            Source::Mint { policy: Some(p) } if p == "strong"
        ));
        assert!(
            matches!(&c.values["LLM_API_BASE"], Source::Fixed(v) if v == "http://litellm:4000")
        );
        assert!(matches!(&c.values["LLM_API_KEY"], Source::Required));
        let e = &c.bundles["embeddings-secrets"];
        assert_eq!(e.opts.namespace.as_deref(), Some("brain"));
        assert_eq!(e.opts.type_, "Opaque");
        assert_eq!(
            e.keys[2],
            ("EMBEDDINGS_API_KEYS".into(), "EMBEDDINGS_API_KEY".into())
        );
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let e = err(&EXAMPLE.replace("namespace = \"brain\"", "namespaces = \"brain\""));
        assert!(e.starts_with("b.toml:3: unknown field `namespaces`"), "{e}");
        let e = err(&EXAMPLE.replace("{ mint = true }", "{ mint = true, size = 4 }"));
        assert!(e.starts_with("b.toml:7: unknown field `size`"), "{e}");
        let e = err(&EXAMPLE.replace("\"LLM_API_BASE\",", "\"LLM_API_BASX\","));
        assert!(
            e.starts_with("b.toml:15: bundle embeddings-secrets: no value \"LLM_API_BASX\""),
            "{e}"
        );
        let e = err(&EXAMPLE.replace("{ required = true }", "{ required = true, value = \"x\" }"));
        assert!(
            e.starts_with("b.toml:10: LLM_API_KEY: give exactly one"),
            "{e}"
        );
        let e = err(&EXAMPLE.replace(
            "{ value = \"http://litellm:4000\" }",
            "{ value = \"x\", policy = \"p\" }",
        ));
        assert!(e.contains("`policy` goes with `mint = true`"), "{e}");
        let e = err(&EXAMPLE.replace("policy = \"strong\"", "policy = \"../x\""));
        assert!(e.contains("password policy name"), "{e}");
        let e = err(&EXAMPLE.replace("[bundles.embeddings-secrets]", "[bundles.Embeddings]"));
        assert!(
            e.starts_with("b.toml:15: ") && e.contains("DNS-1123 subdomain"),
            "{e}"
        );
        let e = err(&EXAMPLE.replace("\"EMBEDDINGS_API_KEYS=", "\"BAD KEY="));
        assert!(
            e.contains("\"BAD KEY\" cannot be a Secret key") && e.contains("SECRET_KEY=VALUE_NAME"),
            "{e}"
        );
        let e = err(&EXAMPLE.replace("namespace = \"brain\"", "namespace = \"Brain\""));
        assert!(e.starts_with("b.toml:3: namespace \"Brain\""), "{e}");
        let e = err(&EXAMPLE.replace("LLM_API_KEY = {", "llm-api-key = {"));
        assert!(e.contains("value name \"llm-api-key\""), "{e}");
        let e = err(&EXAMPLE.replace("store = \"secret/brain/bootstrap\"", "store = \"secret\""));
        assert!(e.starts_with("b.toml:2: store"), "{e}");
        let e = err("store = \"secret/x\"\n");
        assert!(e.contains("no bundles"), "{e}");
        let e = err("store = \"secret/x\"\n[values]\nA = { mint = true }\n[bundles.a]\nkeys = [\"A\", \"A\"]\n");
        assert!(e.contains("appears twice"), "{e}");
        let e = err("store = \"secret/x\"\n[bundles.a]\nkeys = []\n");
        assert!(e.contains("has no keys"), "{e}");
        let e = err("store = 5\n");
        assert!(e.starts_with("b.toml:1: invalid type"), "{e}");
    }

    #[test]
    fn unused_values_warn_and_bundles_take_options() {
        let text = EXAMPLE.replace(
            "[bundles.agentibrain-router-secrets]\n",
            "UNUSED = { mint = true }\n[bundles.agentibrain-router-secrets]\nnamespace = \"other\"\ntype = \"example.com/token\"\nlabels = { tier = \"backend\" }\n",
        );
        let (c, w) = parse(&text, Path::new("b.toml")).unwrap();
        assert_eq!(
            w,
            vec!["b.toml:12: value UNUSED is used by no bundle".to_string()]
        );
        let b = &c.bundles["agentibrain-router-secrets"];
        assert!(b.own_namespace);
        assert_eq!(b.opts.namespace.as_deref(), Some("other"));
        assert_eq!(b.opts.type_, "example.com/token");
        assert_eq!(b.opts.labels["tier"], "backend");
    }
}
