//! Kubernetes Secret manifests, pure: the name and key rules Kubernetes enforces, merging
//! several KV paths with renames, the manifest itself, and its YAML or JSON text. Nothing
//! here reads the network, a file or the clock, and no error quotes a value.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::output::yaml;

/// The label every manifest carries, naming what wrote it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Everything a Secret manifest holds besides its data. No field holds a secret value.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretOpts {
    /// `metadata.name`: a DNS-1123 subdomain.
    pub name: String,
    /// `metadata.namespace`: a DNS-1123 label; absent, kubectl's current namespace applies.
    pub namespace: Option<String>,
    /// The Secret `type` (`Opaque`, `kubernetes.io/tls`, …).
    pub type_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl SecretOpts {
    /// An Opaque Secret named `name`, without namespace, labels or annotations.
    pub fn opaque(name: &str) -> Self {
        SecretOpts {
            name: name.to_string(),
            namespace: None,
            type_: "Opaque".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Checks every field against the rules the API server applies.
    pub fn validate(&self) -> Result<()> {
        check_subdomain("Secret name", &self.name)?;
        if let Some(ns) = &self.namespace {
            check_label_name("namespace", ns)?;
        }
        let type_ok = !self.type_.is_empty()
            && self.type_.len() <= 253
            && self
                .type_
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c));
        if !type_ok {
            bail!(
                "Secret type {:?}: use letters, digits, '-', '.', '_' and '/' (e.g. Opaque)",
                self.type_
            );
        }
        for (k, v) in &self.labels {
            check_qualified_key("label", k)?;
            if k == MANAGED_BY && v != "airlock" {
                bail!("label {MANAGED_BY} is set by airlock (to \"airlock\")");
            }
            if !v.is_empty() && !is_label_value(v) {
                bail!(
                    "label {k}: value {v:?} must be at most 63 letters, digits, '-', '_' or '.', \
                     starting and ending with a letter or digit"
                );
            }
        }
        for k in self.annotations.keys() {
            check_qualified_key("annotation", k)?;
        }
        Ok(())
    }
}

/// Why `k` is not a valid Secret data key, if it is not.
pub fn secret_key_problem(k: &str) -> Option<&'static str> {
    if k.is_empty() {
        Some("it is empty")
    } else if k.len() > 253 {
        Some("it is longer than 253 characters")
    } else if !k
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        Some("a Secret key holds only letters, digits, '-', '_' and '.'")
    } else if k == "." || k.starts_with("..") {
        Some("it must not be '.' nor start with '..'")
    } else {
        None
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 label: at most 63 lower-case letters, digits and '-', alphanumeric at both ends.
pub fn check_label_name(what: &str, s: &str) -> Result<()> {
    if !is_dns_label(s) {
        bail!(
            "{what} {s:?} is not a valid DNS-1123 label: use at most 63 lower-case letters, \
             digits and '-', starting and ending with a letter or digit"
        );
    }
    Ok(())
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels.
pub fn check_subdomain(what: &str, s: &str) -> Result<()> {
    if s.len() > 253 || !s.split('.').all(is_dns_label) {
        bail!(
            "{what} {s:?} is not a valid DNS-1123 subdomain: use lower-case letters, digits, \
             '-' and '.' (at most 253), starting and ending with a letter or digit"
        );
    }
    Ok(())
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 letters, digits, '-', '_' and '.'.
fn check_qualified_key(what: &str, k: &str) -> Result<()> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| check_subdomain("", p).is_ok());
    if !prefix_ok || !is_label_value(name) || name.is_empty() {
        bail!(
            "{what} key {k:?} is not valid: an optional DNS prefix and '/', then at most 63 \
             letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        );
    }
    Ok(())
}

/// `--rename OLD=NEW`, or `--rename PATH:OLD=NEW` for the key of one path only.
#[derive(Clone, Debug, PartialEq)]
pub struct Rename {
    pub path: Option<String>,
    pub from: String,
    pub to: String,
}

impl Rename {
    /// Parses a `--rename` argument; `PATH:` counts as a path only when it is one of `paths`.
    pub fn parse(s: &str, paths: &[String]) -> Result<Rename> {
        let (old, new) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--rename {s:?}: expected OLD=NEW"))?;
        let (path, from) = match old.rsplit_once(':') {
            Some((p, k)) if paths.iter().any(|x| x == p) => (Some(p.to_string()), k),
            _ => (None, old),
        };
        if from.is_empty() || new.is_empty() {
            bail!("--rename {s:?}: expected OLD=NEW with both names non-empty");
        }
        Ok(Rename {
            path,
            from: from.to_string(),
            to: new.to_string(),
        })
    }

    fn spec(&self) -> String {
        match &self.path {
            Some(p) => format!("{p}:{}={}", self.from, self.to),
            None => format!("{}={}", self.from, self.to),
        }
    }
}

/// Merges the keys of several paths, in order, applying renames. A key that two paths give
/// (after renaming) is an error naming both paths; so is a rename whose key is absent and a
/// key Kubernetes would refuse. Errors name keys and paths, never values.
pub fn merge_sources(
    sources: &[(String, Map<String, Value>)],
    renames: &[Rename],
) -> Result<Map<String, Value>> {
    for (i, r) in renames.iter().enumerate() {
        if renames
            .iter()
            .skip(i + 1)
            .any(|o| o.from == r.from && o.path == r.path)
        {
            bail!("--rename {}: {} is renamed twice", r.spec(), r.from);
        }
    }
    let mut used = vec![false; renames.len()];
    let mut out = Map::new();
    // Output key → (path, key in that path).
    let mut origin: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (path, data) in sources {
        for (k, v) in data {
            let hit = renames
                .iter()
                .position(|r| r.from == *k && r.path.as_deref() == Some(path.as_str()))
                .or_else(|| {
                    renames
                        .iter()
                        .position(|r| r.from == *k && r.path.is_none())
                });
            let name = match hit {
                Some(i) => {
                    if let Some(u) = used.get_mut(i) {
                        *u = true;
                    }
                    renames.get(i).map_or(k.clone(), |r| r.to.clone())
                }
                None => k.clone(),
            };
            if let Some((p0, k0)) = origin.get(&name) {
                let from = |p: &str, key: &str| {
                    if key == name {
                        p.to_string()
                    } else {
                        format!("{p} (as {key})")
                    }
                };
                bail!(
                    "key {name} is in both {} and {}: keep one with --rename {path}:{k}=NEW_NAME",
                    from(p0, k0),
                    from(path, k)
                );
            }
            if let Some(why) = secret_key_problem(&name) {
                bail!(
                    "key {name:?} of {path} cannot be a Secret key ({why}): rename it with \
                     --rename {k}=NEW_NAME"
                );
            }
            origin.insert(name.clone(), (path.clone(), k.clone()));
            out.insert(name, v.clone());
        }
    }
    if let Some((r, _)) = renames.iter().zip(&used).find(|(_, u)| !**u) {
        match &r.path {
            Some(p) => bail!("--rename {}: {p} has no key {}", r.spec(), r.from),
            None => bail!("--rename {}: no given path has a key {}", r.spec(), r.from),
        }
    }
    Ok(out)
}

/// A value as the bytes a Secret holds: a string as is, anything else as its JSON text.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The Secret manifest (`apiVersion: v1`, `kind: Secret`) holding `data`, base64-encoded.
pub fn secret_manifest(data: Map<String, Value>, opts: &SecretOpts) -> Result<Value> {
    opts.validate()?;
    let mut encoded = Map::new();
    for (k, v) in &data {
        if let Some(why) = secret_key_problem(k) {
            bail!("key {k:?} cannot be a Secret key: {why}");
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(value_text(v));
        encoded.insert(k.clone(), Value::String(b64));
    }
    let mut labels: Map<String, Value> = opts
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    labels.insert(MANAGED_BY.into(), json!("airlock"));
    let mut meta = Map::new();
    meta.insert("name".into(), json!(opts.name));
    if let Some(ns) = &opts.namespace {
        meta.insert("namespace".into(), json!(ns));
    }
    meta.insert("labels".into(), Value::Object(labels));
    if !opts.annotations.is_empty() {
        let a = opts
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        meta.insert("annotations".into(), Value::Object(a));
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": opts.type_,
        "data": encoded,
    }))
}

/// Output of manifests: YAML (the repository's emitter) or JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ManifestFormat {
    Yaml,
    Json,
}

/// One manifest as text, its fields in the order Kubernetes documents them (`output::yaml`
/// quotes every string a YAML 1.1 reader such as kubectl's could retype).
pub fn render(doc: &Value, f: ManifestFormat) -> String {
    if f == ManifestFormat::Json {
        return serde_json::to_string_pretty(doc).unwrap_or_default() + "\n";
    }
    let Some(m) = doc.as_object() else {
        return yaml(doc, 0);
    };
    let order = ["apiVersion", "kind", "metadata", "type", "data"];
    let mut out = String::new();
    let keys = order
        .iter()
        .map(|k| k.to_string())
        .chain(m.keys().filter(|k| !order.contains(&k.as_str())).cloned());
    for k in keys {
        let Some(v) = m.get(&k) else { continue };
        match (k.as_str(), v.as_object()) {
            ("metadata", Some(meta)) => {
                out.push_str("metadata:\n");
                let first = ["name", "namespace"];
                for (mk, mv) in first
                    .iter()
                    .filter_map(|x| meta.get_key_value(*x))
                    .chain(meta.iter().filter(|(x, _)| !first.contains(&x.as_str())))
                {
                    let mut one = Map::new();
                    one.insert(mk.clone(), mv.clone());
                    out.push_str(&yaml(&Value::Object(one), 2));
                }
            }
            _ => {
                let mut one = Map::new();
                one.insert(k.clone(), v.clone());
                out.push_str(&yaml(&Value::Object(one), 0));
            }
        }
    }
    out
}

/// Several manifests: one YAML stream (documents separated by `---`), or a JSON `v1 List`.
pub fn render_all(docs: &[Value], f: ManifestFormat) -> String {
    match f {
        ManifestFormat::Json => render(
            &json!({"apiVersion": "v1", "kind": "List", "items": docs}),
            ManifestFormat::Json,
        ),
        ManifestFormat::Yaml => docs
            .iter()
            .map(|d| format!("---\n{}", render(d, f)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn manifest_shape_and_encoding() {
        let mut o = SecretOpts::opaque("app-secrets");
        o.namespace = Some("brain".into());
        o.labels.insert("team".into(), "ai".into());
        o.annotations
            .insert("example.com/note".into(), "hi there".into());
        let m = secret_manifest(
            map(json!({"TOKEN": "abc", "PORT": 5432, "FLAG": true, "CFG": {"a": 1}})),
            &o,
        )
        .unwrap();
        assert_eq!(m["apiVersion"], "v1");
        assert_eq!(m["kind"], "Secret");
        assert_eq!(m["type"], "Opaque");
        assert_eq!(m["metadata"]["namespace"], "brain");
        assert_eq!(m["metadata"]["labels"][MANAGED_BY], "airlock");
        assert_eq!(m["metadata"]["labels"]["team"], "ai");
        assert_eq!(m["metadata"]["annotations"]["example.com/note"], "hi there");
        let dec = |k: &str| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(m["data"][k].as_str().unwrap())
                .unwrap();
            String::from_utf8(b).unwrap()
        };
        assert_eq!(dec("TOKEN"), "abc");
        assert_eq!(dec("PORT"), "5432");
        assert_eq!(dec("FLAG"), "true");
        assert_eq!(dec("CFG"), "{\"a\":1}");
        let y = render(&m, ManifestFormat::Yaml);
        let head =
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-secrets\n  namespace: brain\n";
        assert!(y.starts_with(head), "{y}");
        assert!(y.contains("\ntype: Opaque\ndata:\n"), "{y}");
        assert!(
            y.contains("    app.kubernetes.io/managed-by: airlock\n"),
            "{y}"
        );
        let j: Value = serde_json::from_str(&render(&m, ManifestFormat::Json)).unwrap();
        assert_eq!(j, m);
    }

    #[test]
    fn names_and_keys_are_checked() {
        for bad in ["Bad", "-x", "x-", "a_b", "", &"a".repeat(254)] {
            let e = secret_manifest(Map::new(), &SecretOpts::opaque(bad)).unwrap_err();
            assert!(e.to_string().contains("DNS-1123 subdomain"), "{e}");
        }
        assert!(secret_manifest(Map::new(), &SecretOpts::opaque("a.b-c.d")).is_ok());
        let mut o = SecretOpts::opaque("ok");
        o.namespace = Some("a.b".into());
        let e = secret_manifest(Map::new(), &o).unwrap_err();
        assert!(e.to_string().contains("DNS-1123 label"), "{e}");
        o.namespace = Some("x".repeat(64));
        assert!(secret_manifest(Map::new(), &o).is_err());
        for bad in ["a b", "a/b", ".", "..x", "", "é"] {
            assert!(secret_key_problem(bad).is_some(), "{bad}");
        }
        for good in ["A", "a.b", "x-y_z", ".env", &"k".repeat(253)] {
            assert!(secret_key_problem(good).is_none(), "{good}");
        }
        let e = secret_manifest(
            map(json!({"bad key": "sekrit-value"})),
            &SecretOpts::opaque("x"),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("sekrit"), "{e}");
        let mut o = SecretOpts::opaque("x");
        o.labels.insert(MANAGED_BY.into(), "helm".into());
        assert!(o.validate().is_err());
        o.labels.clear();
        o.labels.insert("bad key".into(), "v".into());
        assert!(o.validate().is_err());
        o.labels.clear();
        o.labels.insert("k".into(), "-v".into());
        assert!(o.validate().is_err());
        o.labels.clear();
        o.type_ = "kubernetes.io/tls".into();
        assert!(o.validate().is_ok());
        o.type_ = "a b".into();
        assert!(o.validate().is_err());
    }

    #[test]
    fn merging_renames_and_conflicts() {
        let p = |s: &str| s.to_string();
        let a = (
            p("secret/a"),
            map(json!({"USER": "u", "PASS": "value-a-1"})),
        );
        let b = (
            p("secret/b"),
            map(json!({"PASS": "value-b-2", "bad key": "x"})),
        );
        let paths = vec![a.0.clone(), b.0.clone()];
        let r = |s: &str| Rename::parse(s, &paths).unwrap();

        let e = merge_sources(&[a.clone(), b.clone()], &[r("bad key=OK")]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("secret/a") && msg.contains("secret/b"),
            "{msg}"
        );
        assert!(msg.contains("--rename secret/b:PASS=NEW_NAME"), "{msg}");
        assert!(!msg.contains("value-"), "{msg}");

        // A path-qualified rename resolves it; an unqualified one renames both (still a clash).
        let m = merge_sources(
            &[a.clone(), b.clone()],
            &[r("secret/b:PASS=B_PASS"), r("bad key=OK")],
        )
        .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"USER": "u", "PASS": "value-a-1", "B_PASS": "value-b-2", "OK": "x"})
        );
        let e =
            merge_sources(&[a.clone(), b.clone()], &[r("PASS=P"), r("bad key=OK")]).unwrap_err();
        assert!(e.to_string().contains("secret/a (as PASS)"), "{e}");

        let e = merge_sources(std::slice::from_ref(&b), &[]).unwrap_err();
        assert!(e.to_string().contains("--rename bad key=NEW_NAME"), "{e}");
        let e = merge_sources(std::slice::from_ref(&a), &[r("NOPE=X")]).unwrap_err();
        assert!(
            e.to_string().contains("no given path has a key NOPE"),
            "{e}"
        );
        let e = merge_sources(std::slice::from_ref(&a), &[r("secret/b:USER=X")]).unwrap_err();
        assert!(e.to_string().contains("secret/b has no key USER"), "{e}");
        // `x:y` where x is not a given path is a key with a colon.
        assert_eq!(r("db:pw=DB_PW").path, None);
        assert_eq!(r("db:pw=DB_PW").from, "db:pw");
        assert!(Rename::parse("novalue", &paths).is_err());
        assert!(Rename::parse("A=", &paths).is_err());
        let e = merge_sources(std::slice::from_ref(&a), &[r("USER=X"), r("USER=Y")]).unwrap_err();
        assert!(e.to_string().contains("renamed twice"), "{e}");
    }

    #[test]
    fn ambiguous_strings_stay_strings_in_yaml() {
        let mut o = SecretOpts::opaque("x");
        o.annotations.insert("note".into(), "Yes".into());
        o.labels.insert("n".into(), "0x1F".into());
        let m = secret_manifest(Map::new(), &o).unwrap();
        let text = render(&m, ManifestFormat::Yaml);
        assert!(
            text.contains("note: \"Yes\"") && text.contains("\"n\": \"0x1F\""),
            "{text}"
        );
    }

    #[test]
    fn several_documents() {
        let a = secret_manifest(Map::new(), &SecretOpts::opaque("a")).unwrap();
        let b = secret_manifest(Map::new(), &SecretOpts::opaque("b")).unwrap();
        let y = render_all(&[a.clone(), b.clone()], ManifestFormat::Yaml);
        assert_eq!(y.matches("---\napiVersion: v1\n").count(), 2, "{y}");
        let j: Value =
            serde_json::from_str(&render_all(&[a.clone(), b], ManifestFormat::Json)).unwrap();
        assert_eq!(j["kind"], "List");
        assert_eq!(j["items"][0], a);
    }
}
