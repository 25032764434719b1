//! Profile files (`airlock.broker.toml`): TOML turned into the same JSON the API takes, each
//! table validated by the binding, agent and honeytoken parsers, errors naming the line.

use serde_json::{Map, Value};

use super::{parse_agent, parse_binding, valid_name, Egress, Profile};
use airlock_core::binding::HostPattern;

/// The line of the field an error is about, inside the table that starts at line `header`
/// (1-based): the `key = …` line whose key (or its singular) the message names first, after
/// the `binding "name":` prefix.
fn field_line(text: &str, header: usize, msg: &str) -> Option<usize> {
    let msg = match msg.split_once("\": ") {
        Some((head, rest)) if head.starts_with("binding \"") || head.starts_with("agent \"") => {
            rest
        }
        _ => msg,
    };
    let word_at = |w: &str| -> Option<usize> {
        msg.match_indices(w).map(|(i, _)| i).find(|&i| {
            let before = msg[..i].chars().next_back();
            let after = msg[i + w.len()..].chars().next();
            let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            edge(before) && edge(after)
        })
    };
    let mut best: Option<(usize, usize)> = None;
    for (i, l) in text.lines().enumerate().skip(header) {
        let t = l.trim_start();
        if t.starts_with('[') {
            break;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        if k.is_empty() || k.starts_with('#') {
            continue;
        }
        let single = k.strip_suffix('s').filter(|s| !s.is_empty());
        let pos = [Some(k), single]
            .into_iter()
            .flatten()
            .filter_map(word_at)
            .min();
        if let Some(p) = pos {
            if best.is_none_or(|(bp, _)| p < bp) {
                best = Some((p, i + 1));
            }
        }
    }
    best.map(|(_, line)| line)
}

/// Line (1-based) of the `n`-th (0-based) line that starts with `header` in `text`.
fn header_line(text: &str, header: &str, n: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            t.starts_with(header)
        })
        .nth(n)
        .map(|(i, _)| i + 1)
}

/// Parses and validates a profile. `origin` names the file in errors.
pub fn parse_profile(text: &str, origin: &str) -> Result<Profile, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text.get(..s.start).map_or(0, |t| t.lines().count().max(1)))
            .unwrap_or(0);
        format!("{origin}:{line}: {}", e.message())
    })?;
    let json = toml_to_json(toml::Value::Table(table));
    let o = json.as_object().cloned().unwrap_or_default();
    for k in o.keys() {
        if !["binding", "agents", "broker", "honeytoken"].contains(&k.as_str()) {
            return Err(format!(
                "{origin}: unknown top-level key `{k}` (known: [broker], [[binding]], [agents.NAME], [[honeytoken]])"
            ));
        }
    }
    let mut p = Profile::default();
    if let Some(b) = o.get("broker") {
        let line = header_line(text, "[broker]", 0).unwrap_or(0);
        let b = b
            .as_object()
            .ok_or_else(|| format!("{origin}:{line}: [broker] must be a table"))?;
        for (k, v) in b {
            let err = |e: &str| format!("{origin}:{line}: [broker] {k}: {e}");
            match k.as_str() {
                "egress" => {
                    p.egress = Some(
                        Egress::parse(v.as_str().ok_or_else(|| err("must be a string"))?)
                            .map_err(|e| err(&e))?,
                    )
                }
                "allow_hosts" | "allow_private" => {
                    let list: Vec<String> = v
                        .as_array()
                        .ok_or_else(|| err("must be a list of strings"))?
                        .iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| err("must be a list of strings"))?;
                    if k == "allow_hosts" {
                        p.allow_hosts = list
                            .iter()
                            .map(|h| HostPattern::parse(h))
                            .collect::<Result<_, _>>()
                            .map_err(|e| err(&e))?;
                    } else {
                        for a in &list {
                            crate::guard::Allowance::parse(a).map_err(|e| err(&e))?;
                        }
                        p.allow_private = list;
                    }
                }
                _ => {
                    return Err(err(
                        "unknown key (known: egress, allow_hosts, allow_private)",
                    ))
                }
            }
        }
    }
    match o.get("binding") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, b) in list.iter().enumerate() {
                let line = header_line(text, "[[binding]]", i).unwrap_or(0);
                let binding = parse_binding(b).map_err(|e| {
                    let at = field_line(text, line, &e).unwrap_or(line);
                    format!("{origin}:{at}: {e}")
                })?;
                if p.bindings.iter().any(|x| x.name == binding.name) {
                    return Err(format!(
                        "{origin}:{line}: binding {:?} is defined twice",
                        binding.name
                    ));
                }
                if let Some(other) = p.bindings.iter().find(|x| x.env == binding.env) {
                    return Err(format!(
                        "{origin}:{line}: binding {:?} uses env {} already used by binding {:?}",
                        binding.name, binding.env, other.name
                    ));
                }
                p.bindings.push(binding);
            }
        }
        Some(_) => {
            return Err(format!(
                "{origin}: `binding` must be an array of tables: write [[binding]]"
            ))
        }
    }
    match o.get("honeytoken") {
        None => {}
        Some(Value::Array(list)) => {
            for (i, h) in list.iter().enumerate() {
                let line = header_line(text, "[[honeytoken]]", i).unwrap_or(0);
                let mut h = h.clone();
                let name = h
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| valid_name(n))
                    .ok_or_else(|| format!("{origin}:{line}: a honeytoken needs a `name`"))?
                    .to_string();
                // `kind` instead of `value`: a fresh decoy of that shape for this run.
                if let Some(kind) = h.get("kind").and_then(Value::as_str).map(str::to_string) {
                    if h.get("value").is_some() {
                        return Err(format!(
                            "{origin}:{line}: honeytoken {name:?}: give `value` or `kind`, not both"
                        ));
                    }
                    let mut r = [0u8; 48];
                    rand::fill(&mut r);
                    let v = crate::honeytoken::mint(&kind, &r)
                        .map_err(|e| format!("{origin}:{line}: {e}"))?;
                    h["value"] = Value::String(v);
                }
                let t = crate::honeytoken::parse(&name, &h)
                    .map_err(|e| format!("{origin}:{line}: {e}"))?;
                if p.honeytokens.iter().any(|x| x.name == t.name) {
                    return Err(format!(
                        "{origin}:{line}: honeytoken {name:?} is defined twice"
                    ));
                }
                p.honeytokens.push(t);
            }
        }
        Some(_) => {
            return Err(format!(
                "{origin}: `honeytoken` must be an array of tables: write [[honeytoken]]"
            ))
        }
    }
    if let Some(a) = o.get("agents") {
        let a = a
            .as_object()
            .ok_or_else(|| format!("{origin}: `agents` must be a table of [agents.NAME] tables"))?;
        for (name, v) in a {
            let line = header_line(text, &format!("[agents.{name}]"), 0).unwrap_or(0);
            let agent = parse_agent(name, v).map_err(|e| {
                let at = field_line(text, line, &e).unwrap_or(line);
                format!("{origin}:{at}: {e}")
            })?;
            for b in &agent.bindings {
                if !p.bindings.iter().any(|x| &x.name == b) {
                    return Err(format!(
                        "{origin}:{line}: agent {name:?} names binding {b:?}, which is not defined"
                    ));
                }
            }
            p.agents.push(agent);
        }
    }
    Ok(p)
}

fn toml_to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}
