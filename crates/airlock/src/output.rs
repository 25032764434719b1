//! Output formats: `table` (aligned key/value), `json`, `yaml`.

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "yaml" => Ok(Format::Yaml),
            o => Err(format!("unknown format {o:?} (table, json, yaml)")),
        }
    }
}

pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "n/a".into(),
        other => other.to_string(),
    }
}

/// An aligned two-column table of a JSON object.
pub fn table(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) => {
            let w = m.keys().map(|k| k.len()).max().unwrap_or(3).max(3);
            out.push_str(&format!(
                "{:<w$}    {}\n{:<w$}    {}\n",
                "Key", "Value", "---", "-----"
            ));
            for (k, val) in m {
                out.push_str(&format!("{k:<w$}    {}\n", scalar(val)));
            }
        }
        Value::Array(a) => {
            out.push_str("Keys\n----\n");
            for x in a {
                out.push_str(&scalar(x));
                out.push('\n');
            }
        }
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// A YAML scalar for `s`: plain only when no YAML 1.1 or 1.2 reader (kubectl's included)
/// could take it for anything but that string — it starts with a letter, `_` or `/`, holds
/// only letters, digits and `-_./`, and is not a boolean or null word in any case
/// (`TRUE`, `Null`, `y`, `off`); anything else is double-quoted.
fn yaml_str(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !matches!(
            lower.as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

pub fn yaml(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if m.is_empty() => "{}\n".into(),
        Value::Array(a) if a.is_empty() => "[]\n".into(),
        Value::Object(m) => {
            let mut out = String::new();
            for (k, val) in m {
                match val {
                    Value::Object(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n{}", yaml_str(k), yaml(val, indent + 2)))
                    }
                    Value::Array(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n{}", yaml_str(k), yaml(val, indent)))
                    }
                    _ => out.push_str(&format!("{pad}{}: {}", yaml_str(k), yaml(val, 0))),
                }
            }
            out
        }
        Value::Array(a) => {
            let mut out = String::new();
            for val in a {
                match val {
                    Value::Object(_) | Value::Array(_) => {
                        let inner = yaml(val, indent + 2);
                        out.push_str(&format!("{pad}- {}", inner.trim_start()));
                    }
                    _ => out.push_str(&format!("{pad}- {}", yaml(val, 0))),
                }
            }
            out
        }
        Value::String(s) => format!("{}\n", yaml_str(s)),
        Value::Null => "null\n".into(),
        other => format!("{other}\n"),
    }
}

pub fn print(v: &Value, f: Format) -> Result<()> {
    let s = match f {
        Format::Json => serde_json::to_string_pretty(v)? + "\n",
        Format::Yaml => yaml(v, 0),
        Format::Table => table(v),
    };
    print!("{s}");
    Ok(())
}

/// Parses a flat YAML mapping (`key: value` lines, comments, quoted scalars).
pub fn parse_flat_yaml(text: &str) -> Result<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t.trim().is_empty() || t.trim_start().starts_with('#') || t == "---" {
            continue;
        }
        if t.starts_with(' ') || t.starts_with('\t') || t.trim_start().starts_with("- ") {
            bail!(
                "line {}: only a flat `key: value` mapping can be imported",
                i + 1
            );
        }
        let Some((k, v)) = t.split_once(':') else {
            bail!("line {}: expected `key: value`", i + 1);
        };
        let k = unquote(k.trim());
        let v = v.trim();
        let v = if let Some(idx) = v
            .find(" #")
            .filter(|_| !v.starts_with('"') && !v.starts_with('\''))
        {
            v[..idx].trim()
        } else {
            v
        };
        if v.is_empty() || v == "|" || v == ">" {
            bail!(
                "line {}: value of {k:?} is empty or multi-line; not supported",
                i + 1
            );
        }
        m.insert(k, Value::String(unquote(v)));
    }
    Ok(m)
}

fn unquote(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        serde_json::from_str::<String>(s).unwrap_or_else(|_| s[1..s.len() - 1].to_string())
    } else if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        s[1..s.len() - 1].replace("''", "'")
    } else {
        s.to_string()
    }
}

/// Parses a dotenv file (`KEY=value`, `export KEY=value`, quotes, comments).
pub fn parse_dotenv(text: &str) -> Result<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("export ").unwrap_or(t);
        let Some((k, v)) = t.split_once('=') else {
            bail!("line {}: expected KEY=value", i + 1);
        };
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            bail!("line {}: invalid key {k:?}", i + 1);
        }
        let v = v.trim();
        let v = if v.starts_with('"') || v.starts_with('\'') {
            unquote(v)
        } else {
            match v.find(" #") {
                Some(idx) => v[..idx].trim().to_string(),
                None => v.to_string(),
            }
        };
        m.insert(k.to_string(), Value::String(v));
    }
    Ok(m)
}

/// A duration as the `vault` CLI prints one: `768h`, `1h30m`, `20m`, `45s`.
pub fn short_duration(secs: u64) -> String {
    let mut s = airlock_core::duration::format_go_duration(secs);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if s.ends_with("h0m") {
        s.truncate(s.len() - 2);
    }
    s
}

/// Renders a map as dotenv lines with safe quoting: plain values bare, others in single quotes
/// (taken literally by shells and dotenv loaders: no `$`/backtick expansion), and values that
/// hold a single quote or a newline in JSON-style double quotes.
pub fn to_dotenv(m: &serde_json::Map<String, Value>) -> String {
    let mut out = String::new();
    for (k, v) in m {
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let plain = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./:@,+%".contains(&b));
        let quoted = if plain {
            s
        } else if !s.contains(['\'', '\n', '\r']) {
            format!("'{s}'")
        } else {
            serde_json::to_string(&s).unwrap_or_default()
        };
        out.push_str(&format!("{k}={quoted}\n"));
    }
    out
}

/// Writes a file only the owner can read (mode `mode`), never through a symlink, synced.
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let ctx = || format!("writing {}", path.display());
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(ctx);
        }
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(path)
        .with_context(ctx)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(ctx)?;
    f.write_all(bytes).with_context(ctx)?;
    f.sync_all().with_context(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_print_like_vault() {
        assert_eq!(short_duration(2_764_800), "768h");
        assert_eq!(short_duration(5400), "1h30m");
        assert_eq!(short_duration(1200), "20m");
        assert_eq!(short_duration(3601), "1h0m1s");
        assert_eq!(short_duration(10), "10s");
    }

    #[test]
    fn dotenv_roundtrip() {
        let m = parse_dotenv("# c\nexport A=1\nB=\"x y\"\nC='q' \nD=plain # comment\n").unwrap();
        assert_eq!(
            Value::Object(m.clone()),
            json!({"A":"1","B":"x y","C":"q","D":"plain"})
        );
        let again = parse_dotenv(&to_dotenv(&m)).unwrap();
        assert_eq!(again, m);
        // `$` and backticks stay literal when the file is sourced by a shell.
        let m = json!({"Q": "has\"quote$dollar`x`", "P": "plain-1.2", "E": ""});
        let text = to_dotenv(m.as_object().unwrap());
        assert_eq!(text, "E=''\nP=plain-1.2\nQ='has\"quote$dollar`x`'\n");
        assert_eq!(Value::Object(parse_dotenv(&text).unwrap()), m);
    }

    #[test]
    fn flat_yaml() {
        let m = parse_flat_yaml("a: 1\nb: \"two\"\n# x\nc: 'it''s'\n").unwrap();
        assert_eq!(Value::Object(m), json!({"a":"1","b":"two","c":"it's"}));
        assert!(parse_flat_yaml("a:\n  b: 1\n").is_err());
    }

    #[test]
    fn yaml_never_leaves_a_string_another_reader_would_retype() {
        for s in [
            "TRUE", "Null", "yes", "Y", "n", "Off", "0x1F", "1_000", "012", "1e3", ".inf", "-x",
            "@x", "~", "", "a b", "a:b", "#c",
        ] {
            let out = yaml(&json!(s), 0);
            assert!(out.starts_with('"'), "{s:?} → {out}");
            assert_eq!(serde_json::from_str::<String>(out.trim()).unwrap(), s);
        }
        assert_eq!(yaml(&json!("plain-word_1.2/x"), 0), "plain-word_1.2/x\n");
    }

    #[test]
    fn yaml_output_quotes_ambiguous() {
        assert_eq!(
            yaml(&json!({"a": "true", "b": "x"}), 0),
            "a: \"true\"\nb: x\n"
        );
    }
}
