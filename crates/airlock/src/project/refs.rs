//! References inside values, resolved by the CLI when it reads a secret:
//!
//! - `${KEY}`: another key of the same entry (`secret/voice/dev`);
//! - `${env.KEY}`: a key of another environment of the same project (`secret/voice/env`);
//! - `${project.env.KEY}`: a key of another project's environment;
//! - `$${` is a literal `${`.
//!
//! Resolution loads every entry a reference reaches (with the caller's token), then expands
//! with cycle detection. A reference that cannot be followed is an error naming the key,
//! the reference and the reason; nothing is left unexpanded. Errors never quote values.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

/// At most this many entries are read to resolve one secret.
const MAX_ENTRIES: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Lit(String),
    Ref(Target),
}

/// What a reference points at, relative to the entry it is in.
#[derive(Clone, Debug, PartialEq)]
struct Target {
    /// `None`: the same entry; `Some((project, env))`: project `None` is the same project.
    scope: Option<(Option<String>, String)>,
    key: String,
    /// As written, for messages.
    text: String,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse(value: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$${") {
            lit.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or_else(|| anyhow!("a `${{` without its closing `}}`"))?;
            let inner = &r[..end];
            let parts: Vec<&str> = inner.split('.').collect();
            if !parts.iter().all(|p| valid_part(p)) {
                bail!("`${{{inner}}}` is not a reference (KEY, env.KEY or project.env.KEY)");
            }
            let scope = match parts.as_slice() {
                [_] => None,
                [e, _] => Some((None, e.to_string())),
                [p, e, _] => Some((Some(p.to_string()), e.to_string())),
                _ => bail!("`${{{inner}}}` is not a reference (KEY, env.KEY or project.env.KEY)"),
            };
            if !lit.is_empty() {
                out.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            out.push(Piece::Ref(Target {
                scope,
                key: parts.last().copied().unwrap_or("").to_string(),
                text: format!("${{{inner}}}"),
            }));
            rest = &r[end + 1..];
        } else {
            lit.push('$');
            rest = &after[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// The KV path a reference in the entry at `base` (`<mount…>/<project>/<env>`) points at.
fn target_path(base: &str, t: &Target) -> Result<String> {
    let segs: Vec<&str> = base.split('/').collect();
    match &t.scope {
        None => Ok(base.to_string()),
        Some((None, env)) if segs.len() >= 2 => {
            Ok(format!("{}/{env}", segs[..segs.len() - 1].join("/")))
        }
        Some((Some(project), env)) if segs.len() >= 3 => Ok(format!(
            "{}/{project}/{env}",
            segs[..segs.len() - 2].join("/")
        )),
        _ => bail!(
            "{} needs the entry to sit at <mount>/<project>/<env>, not {base}",
            t.text
        ),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The entries references reach, read once each.
struct Loaded {
    entries: HashMap<String, Map<String, Value>>,
}

impl Loaded {
    fn value(&self, path: &str, key: &str) -> Option<&Value> {
        self.entries.get(path).and_then(|m| m.get(key))
    }
}

/// Resolves the references in `data` (the entry at `path`): in every key, or only in `only`
/// (the others are returned as stored). `fetch(path)` reads another entry (`Ok(None)`:
/// absent).
pub async fn resolve<F, Fut>(
    path: &str,
    data: Map<String, Value>,
    only: Option<&str>,
    mut fetch: F,
) -> Result<Map<String, Value>>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Option<Map<String, Value>>>>,
{
    let path = path.trim_matches('/').to_string();
    let mut loaded = Loaded {
        entries: HashMap::from([(path.clone(), data)]),
    };
    // Load what the references reach, transitively.
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let wanted = |k: &String| only.is_none_or(|o| o == k);
    let mut work: Vec<(String, String)> = loaded.entries[&path]
        .keys()
        .filter(|k| wanted(k))
        .map(|k| (path.clone(), k.clone()))
        .collect();
    let mut absent: HashMap<String, String> = HashMap::new();
    while let Some((p, k)) = work.pop() {
        if !seen.insert((p.clone(), k.clone())) {
            continue;
        }
        let Some(Value::String(s)) = loaded.value(&p, &k) else {
            continue;
        };
        let Ok(pieces) = parse(s) else {
            continue; // reported with its key when expanding
        };
        for piece in pieces {
            let Piece::Ref(t) = piece else { continue };
            let Ok(tp) = target_path(&p, &t) else {
                continue;
            };
            if !loaded.entries.contains_key(&tp) && !absent.contains_key(&tp) {
                if loaded.entries.len() >= MAX_ENTRIES {
                    bail!("{k}: references reach more than {MAX_ENTRIES} entries");
                }
                match fetch(tp.clone()).await {
                    Ok(Some(m)) => {
                        loaded.entries.insert(tp.clone(), m);
                    }
                    Ok(None) => {
                        absent.insert(tp.clone(), format!("no secret at {tp}"));
                    }
                    Err(e) => {
                        absent.insert(tp.clone(), format!("cannot read {tp}: {e:#}"));
                    }
                }
            }
            work.push((tp, t.key.clone()));
        }
    }
    // Expand.
    let mut out = Map::new();
    let keys: Vec<String> = loaded.entries[&path].keys().cloned().collect();
    let mut memo: BTreeMap<(String, String), String> = BTreeMap::new();
    for k in keys {
        let v = loaded.entries[&path][&k].clone();
        let resolved = match v {
            Value::String(_) if wanted(&k) => {
                let mut stack = Vec::new();
                Value::String(expand(&loaded, &absent, &path, &k, &mut stack, &mut memo)?)
            }
            other => other,
        };
        out.insert(k, resolved);
    }
    Ok(out)
}

fn expand(
    loaded: &Loaded,
    absent: &HashMap<String, String>,
    path: &str,
    key: &str,
    stack: &mut Vec<(String, String)>,
    memo: &mut BTreeMap<(String, String), String>,
) -> Result<String> {
    let id = (path.to_string(), key.to_string());
    if let Some(v) = memo.get(&id) {
        return Ok(v.clone());
    }
    if stack.contains(&id) {
        let mut chain: Vec<String> = stack
            .iter()
            .skip_while(|x| **x != id)
            .map(|(p, k)| format!("{p}#{k}"))
            .collect();
        chain.push(format!("{path}#{key}"));
        bail!("reference cycle: {}", chain.join(" → "));
    }
    let Some(v) = loaded.value(path, key) else {
        bail!("{path} has no key {key}");
    };
    let text = match v {
        Value::String(s) => s.clone(),
        other => return Ok(as_text(other)),
    };
    stack.push(id.clone());
    let pieces = parse(&text).map_err(|e| anyhow!("{key} in {path}: {e}"))?;
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Lit(s) => out.push_str(&s),
            Piece::Ref(t) => {
                let tp = target_path(path, &t).map_err(|e| anyhow!("{key}: {e}"))?;
                if let Some(why) = absent.get(&tp) {
                    bail!("{key} refers to {}: {why}", t.text);
                }
                if loaded.value(&tp, &t.key).is_none() {
                    bail!("{key} refers to {}: {tp} has no key {}", t.text, t.key);
                }
                out.push_str(&expand(loaded, absent, &tp, &t.key, stack, memo)?);
            }
        }
    }
    stack.pop();
    memo.insert(id, out.clone());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    async fn run(path: &str, data: Value, store: Value) -> Result<Map<String, Value>> {
        let store = obj(store);
        resolve(path, obj(data), None, |p: String| {
            let r = match p.as_str() {
                "secret/voice/prd" => Err(anyhow!("permission denied")),
                _ => Ok(store.get(&p).map(|v| obj(v.clone()))),
            };
            async move { r }
        })
        .await
    }

    #[tokio::test]
    async fn references_expand_across_keys_envs_and_projects() {
        let out = run(
            "secret/voice/dev",
            json!({
                "USER": "app", "PASS": "${stg.PASS}",
                "URL": "postgres://${USER}:${PASS}@${db.dev.HOST}/x",
                "PRICE": "$${NOT_A_REF} costs $5", "N": 3
            }),
            json!({
                "secret/voice/stg": {"PASS": "p-${SUFFIX}", "SUFFIX": "7"},
                "secret/db/dev": {"HOST": "db.internal"}
            }),
        )
        .await
        .unwrap();
        assert_eq!(out["URL"], json!("postgres://app:p-7@db.internal/x"));
        assert_eq!(out["PASS"], json!("p-7"));
        assert_eq!(out["PRICE"], json!("${NOT_A_REF} costs $5"));
        assert_eq!(out["N"], json!(3));
    }

    #[tokio::test]
    async fn only_the_asked_key_is_resolved() {
        let data = obj(json!({"A": "${prd.X}", "B": "${C}", "C": "c"}));
        let out = resolve(
            "secret/voice/dev",
            data,
            Some("B"),
            |_p: String| async move {
                Err::<Option<Map<String, Value>>, _>(anyhow!("permission denied"))
            },
        )
        .await
        .unwrap();
        assert_eq!(out["B"], json!("c"));
        assert_eq!(out["A"], json!("${prd.X}"));
    }

    #[tokio::test]
    async fn cycles_forbidden_paths_and_missing_keys_are_clear_errors() {
        let e = run(
            "secret/v/dev",
            json!({"A": "${B}", "B": "x${A}"}),
            json!({}),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("reference cycle") && e.contains("secret/v/dev#A"),
            "{e}"
        );
        let e = run("secret/voice/dev", json!({"K": "${prd.DB}"}), json!({}))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("K refers to ${prd.DB}") && e.contains("permission denied"),
            "{e}"
        );
        let e = run(
            "secret/voice/dev",
            json!({"K": "${stg.NOPE}"}),
            json!({"secret/voice/stg": {}}),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("secret/voice/stg has no key NOPE"), "{e}");
        let e = run("secret/voice/dev", json!({"K": "${qa.X}"}), json!({}))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no secret at secret/voice/qa"), "{e}");
        let e = run("secret/voice/dev", json!({"K": "${a b}"}), json!({}))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a reference"), "{e}");
        let e = run("secret/voice/dev", json!({"K": "${OPEN"}), json!({}))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("closing"), "{e}");
    }
}
