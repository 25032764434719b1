//! Honeytokens: decoy credentials registered as such. An agent (or whoever steals from it)
//! that uses one gives itself away: the broker blocks any request carrying a decoy — in the
//! path, query, a header (Basic credentials decoded) or a buffered body — and records a
//! high-severity `honeytoken` event; Airlock's API does the same for a decoy presented as a
//! token. Pure: finding decoys in request parts, and minting decoy values.
//!
//! Decoys are defined in a profile (`[[honeytoken]] name, value or kind, env`) or in Airlock
//! (`sys/broker/honeytokens/<name>`); `broker run` and `broker env` put each one with an
//! `env` into the agent's environment, where it looks like any other key.

use airlock_core::percent::{self, Plus};
use base64::Engine;
use serde_json::{Map, Value};

/// Shortest decoy value accepted (shorter ones would match ordinary text).
pub const MIN_LEN: usize = 16;

/// A registered decoy.
#[derive(Clone, PartialEq, Eq)]
pub struct Honeytoken {
    pub name: String,
    pub value: String,
    /// Variable the agent receives it in (none: planted elsewhere by the operator).
    pub env: Option<String>,
}

impl std::fmt::Debug for Honeytoken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is a decoy, but printing it would mark it as one in logs.
        f.debug_struct("Honeytoken")
            .field("name", &self.name)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Kinds of decoy [`mint`] can make, shaped like the real thing.
pub const KINDS: &[&str] = &["openai", "anthropic", "github", "aws", "airlock", "generic"];

/// A decoy value of `kind` from random bytes (at least 40).
pub fn mint(kind: &str, random: &[u8]) -> Result<String, String> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let pick = |set: &[u8], n: usize| -> String {
        random
            .iter()
            .take(n)
            .map(|b| set[(*b as usize) % set.len()] as char)
            .collect()
    };
    if random.len() < 40 {
        return Err("not enough randomness".into());
    }
    Ok(match kind {
        "openai" => format!("sk-proj-{}", pick(ALNUM, 40)),
        "anthropic" => format!("sk-ant-api03-{}", pick(ALNUM, 40)),
        "github" => format!("ghp_{}", pick(ALNUM, 36)),
        "aws" => format!("AKIA{}", pick(UPPER, 16)),
        "airlock" => format!("hvs.{}", pick(ALNUM, 40)),
        "generic" => pick(ALNUM, 40),
        other => {
            return Err(format!(
                "honeytoken kind {other:?} is not one of: {}",
                KINDS.join(", ")
            ))
        }
    })
}

/// Validates a honeytoken definition (JSON object: `name`, `value`, optional `env`).
pub fn parse(name: &str, v: &Value) -> Result<Honeytoken, String> {
    let o: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| format!("honeytoken {name:?} must be a table/object"))?;
    for k in o.keys() {
        if !["name", "value", "env", "kind", "description"].contains(&k.as_str()) {
            return Err(format!(
                "honeytoken {name:?}: unknown field `{k}` (known: name, value, kind, env, description)"
            ));
        }
    }
    let value = o
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("honeytoken {name:?}: `value` (or `kind`) is required"))?;
    if value.len() < MIN_LEN || value.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "honeytoken {name:?}: the value must be at least {MIN_LEN} printable characters without spaces"
        ));
    }
    let env = match o.get("env") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if airlock_core::binding::valid_env_name(e) => Some(e.clone()),
        Some(_) => {
            return Err(format!(
                "honeytoken {name:?}: `env` must be a valid variable name"
            ))
        }
    };
    Ok(Honeytoken {
        name: name.to_string(),
        value: value.to_string(),
        env,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The decoy a request carries, if any: in the path or query (raw and percent-decoded), a
/// header value (and the decoded user:password of Basic credentials) or the body.
pub fn find<'a, 'h>(
    tokens: &'a [Honeytoken],
    raw_path: &str,
    query: Option<&str>,
    headers: impl Iterator<Item = (&'h str, &'h [u8])>,
    body: Option<&[u8]>,
) -> Option<&'a Honeytoken> {
    if tokens.is_empty() {
        return None;
    }
    // Looked up in place; only decoded forms are allocated, and only when they differ.
    let in_text = |hay: &[u8]| tokens.iter().find(|t| contains(hay, t.value.as_bytes()));
    let decoded = |s: &str, plus| {
        s.contains(['%', '+'])
            .then(|| percent::decode_lenient(s, plus))
    };
    let mut found = in_text(raw_path.as_bytes())
        .or_else(|| decoded(raw_path, Plus::Literal).and_then(|d| in_text(&d)));
    if let Some(q) = query {
        found = found
            .or_else(|| in_text(q.as_bytes()))
            .or_else(|| decoded(q, Plus::Space).and_then(|d| in_text(&d)));
    }
    for (_, v) in headers {
        if found.is_some() {
            break;
        }
        found = in_text(v).or_else(|| {
            let b64 = v
                .get(..6)
                .filter(|p| p.eq_ignore_ascii_case(b"basic "))
                .and_then(|_| v.get(6..))?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim_ascii())
                .ok()?;
            in_text(&raw)
        });
    }
    found.or_else(|| body.and_then(in_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(v: &str) -> Honeytoken {
        Honeytoken {
            name: "decoy".into(),
            value: v.into(),
            env: None,
        }
    }

    #[test]
    fn finds_decoys_wherever_they_travel() {
        let t = [tok("sk-proj-decoyDECOYdecoy1234")];
        let none: [(&str, &[u8]); 0] = [];
        assert!(find(&t, "/v1/x", None, none.into_iter(), None).is_none());
        let h = [("authorization", &b"Bearer sk-proj-decoyDECOYdecoy1234"[..])];
        assert!(find(&t, "/v1/x", None, h.into_iter(), None).is_some());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:sk-proj-decoyDECOYdecoy1234")
        );
        let h = [("authorization", basic.as_bytes())];
        assert!(find(&t, "/", None, h.into_iter(), None).is_some());
        assert!(find(
            &t,
            "/k/sk-proj-decoyDECOYdecoy1234",
            None,
            none.into_iter(),
            None
        )
        .is_some());
        assert!(find(
            &t,
            "/",
            Some("key=sk%2Dproj-decoyDECOYdecoy1234"),
            none.into_iter(),
            None
        )
        .is_some());
        assert!(find(
            &t,
            "/",
            None,
            none.into_iter(),
            Some(b"{\"k\":\"sk-proj-decoyDECOYdecoy1234\"}")
        )
        .is_some());
        assert!(find(
            &[],
            "/sk-proj-decoyDECOYdecoy1234",
            None,
            none.into_iter(),
            None
        )
        .is_none());
    }

    #[test]
    fn minted_decoys_look_real_and_definitions_are_checked() {
        let r = [7u8; 48];
        assert!(mint("openai", &r).unwrap().starts_with("sk-proj-"));
        assert_eq!(mint("aws", &r).unwrap().len(), 20);
        assert!(mint("nope", &r).is_err());
        assert!(mint("openai", &[1u8; 8]).is_err());
        let ok = parse(
            "d",
            &serde_json::json!({"value": "sk-proj-decoyDECOYdecoy1234", "env": "BACKUP_KEY"}),
        )
        .unwrap();
        assert_eq!(ok.env.as_deref(), Some("BACKUP_KEY"));
        assert!(!format!("{ok:?}").contains("decoyDECOY"));
        for bad in [
            serde_json::json!({"value": "short"}),
            serde_json::json!({"value": "has a space in it here"}),
            serde_json::json!({"value": "sk-proj-decoyDECOYdecoy1234", "env": "1X"}),
            serde_json::json!({"value": "sk-proj-decoyDECOYdecoy1234", "nope": 1}),
            serde_json::json!({}),
        ] {
            assert!(parse("d", &bad).is_err(), "{bad}");
        }
    }
}
