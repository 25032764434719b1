//! Typed reading of an agent config's HCL items, every error as `FILE:LINE: reason`.
//!
//! `airlock_core::hcl` gives items with the line of their first key; this module adds what
//! Vault's HCL 1 reader accepts and that parser does not: heredocs (`<<EOT`, `<<-EOT`,
//! expanded to string literals before parsing, line numbers kept) and octal numbers
//! (`mode = 0640`, read back from the source text). A [`Block`] hands out its keys one by
//! one; whatever is left when it is finished is an unknown key, reported with the keys the
//! block accepts.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_core::hcl::{Item, Value};
use anyhow::{anyhow, Result};

/// One config file: its path and its text after heredoc expansion.
pub struct Source {
    pub file: PathBuf,
    pub text: String,
    /// Lines where a heredoc value starts (its first line of text is the next one).
    pub heredocs: HashSet<u32>,
}

impl Source {
    /// An error at `line` of this file (line 0: the file itself, e.g. JSON).
    pub fn err(&self, line: u32, msg: impl std::fmt::Display) -> anyhow::Error {
        at(&self.file, line, msg)
    }
}

/// `FILE:LINE: msg` (`FILE: msg` without a line).
pub fn at(file: &Path, line: u32, msg: impl std::fmt::Display) -> anyhow::Error {
    if line == 0 {
        anyhow!("{}: {msg}", file.display())
    } else {
        anyhow!("{}:{line}: {msg}", file.display())
    }
}

/// Reads and parses one file (HCL, or JSON for a `.json` name).
pub fn parse_file(path: &Path) -> Result<(Source, Vec<Item>)> {
    let raw = std::fs::read(path).map_err(|e| at(path, 0, format!("cannot read: {e}")))?;
    let text = String::from_utf8(raw).map_err(|_| at(path, 0, "not valid UTF-8"))?;
    if path.extension().is_some_and(|e| e == "json") {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| at(path, e.line() as u32, e))?;
        let items = match Value::from_json(&v) {
            Value::Object(items) => items,
            _ => return Err(at(path, 0, "a JSON config must be an object")),
        };
        let src = Source {
            file: path.to_path_buf(),
            text,
            heredocs: HashSet::new(),
        };
        return Ok((src, items));
    }
    let (expanded, heredocs) = expand_heredocs(&text).map_err(|(l, m)| at(path, l, m))?;
    let items = airlock_core::hcl::parse(&expanded).map_err(|e| at(path, e.line, e.message))?;
    let src = Source {
        file: path.to_path_buf(),
        text: expanded,
        heredocs,
    };
    Ok((src, items))
}

/// Replaces every heredoc value by a string literal followed by as many newlines as the
/// heredoc spanned, so every later line keeps its number. HCL 1 semantics: the value is
/// the lines up to the closing marker, each with its newline; `<<-` removes the closing
/// marker's indentation from every line when all of them have it.
pub fn expand_heredocs(src: &str) -> Result<(String, HashSet<u32>), (u32, String)> {
    let mut out = String::with_capacity(src.len());
    let mut starts = HashSet::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut line = 1u32;
    while let Some(&c) = chars.get(i) {
        match c {
            '"' => {
                // Copy a string literal through, escapes included.
                out.push(c);
                i += 1;
                while let Some(&s) = chars.get(i) {
                    out.push(s);
                    i += 1;
                    if s == '\\' {
                        if let Some(&n) = chars.get(i) {
                            out.push(n);
                            i += 1;
                        }
                    } else if s == '"' || s == '\n' {
                        if s == '\n' {
                            line += 1;
                        }
                        break;
                    }
                }
            }
            '#' => i = copy_line(&chars, i, &mut out),
            '/' if chars.get(i + 1) == Some(&'/') => i = copy_line(&chars, i, &mut out),
            '/' if chars.get(i + 1) == Some(&'*') => {
                out.push_str("/*");
                i += 2;
                while let Some(&s) = chars.get(i) {
                    out.push(s);
                    i += 1;
                    if s == '\n' {
                        line += 1;
                    }
                    if s == '*' && chars.get(i) == Some(&'/') {
                        out.push('/');
                        i += 1;
                        break;
                    }
                }
            }
            '<' if chars.get(i + 1) == Some(&'<') => {
                let (value, consumed, newlines) = heredoc(&chars, i, line)?;
                starts.insert(line);
                out.push('"');
                for ch in value.chars() {
                    match ch {
                        '\\' => out.push_str("\\\\"),
                        '"' => out.push_str("\\\""),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                            out.push_str(&format!("\\x{:02x}", c as u32))
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
                for _ in 0..newlines {
                    out.push('\n');
                }
                line += newlines;
                i = consumed;
            }
            '\n' => {
                out.push(c);
                line += 1;
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok((out, starts))
}

fn copy_line(chars: &[char], mut i: usize, out: &mut String) -> usize {
    while let Some(&s) = chars.get(i) {
        if s == '\n' {
            break;
        }
        out.push(s);
        i += 1;
    }
    i
}

/// Reads the heredoc starting at `chars[i]` (`<<`): (value, index after it, newlines it spans).
fn heredoc(chars: &[char], i: usize, line: u32) -> Result<(String, usize, u32), (u32, String)> {
    let mut j = i + 2;
    let indent = chars.get(j) == Some(&'-');
    if indent {
        j += 1;
    }
    let mut anchor = String::new();
    while let Some(&c) = chars.get(j) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            anchor.push(c);
            j += 1;
        } else {
            break;
        }
    }
    while matches!(chars.get(j), Some(' ' | '\t' | '\r')) {
        j += 1;
    }
    if anchor.is_empty() || chars.get(j) != Some(&'\n') {
        return Err((
            line,
            "a heredoc needs a marker and a line break (<<EOT)".into(),
        ));
    }
    j += 1;
    let mut newlines = 1u32;
    let mut lines: Vec<String> = Vec::new();
    loop {
        if j >= chars.len() {
            return Err((
                line,
                format!("heredoc not terminated: no line {anchor:?} follows"),
            ));
        }
        let mut l = String::new();
        while let Some(&c) = chars.get(j) {
            j += 1;
            if c == '\n' {
                newlines += 1;
                break;
            }
            l.push(c);
        }
        let trimmed = l.trim_end_matches('\r');
        if trimmed.trim() == anchor {
            let prefix: String = trimmed
                .chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect();
            let body_lines: Vec<String> = if indent && lines.iter().all(|b| b.starts_with(&prefix))
            {
                lines
                    .iter()
                    .map(|b| b.get(prefix.len()..).unwrap_or("").to_string())
                    .collect()
            } else {
                lines
            };
            let mut value = String::new();
            for b in body_lines {
                value.push_str(&b);
                value.push('\n');
            }
            return Ok((value, j, newlines));
        }
        lines.push(l);
    }
}

/// A block's items, taken key by key.
pub struct Block<'a> {
    pub src: &'a Source,
    pub line: u32,
    /// Where the block sits, for messages (`auto_auth.method`).
    pub what: String,
    /// Labels after the block's name (`method "approle"` → `["approle"]`).
    pub labels: Vec<String>,
    items: Vec<Option<&'a Item>>,
    asked: Vec<&'static str>,
}

impl<'a> Block<'a> {
    pub fn new(src: &'a Source, line: u32, what: &str, items: &'a [Item]) -> Self {
        Block {
            src,
            line,
            what: what.to_string(),
            labels: Vec::new(),
            items: items.iter().map(Some).collect(),
            asked: Vec::new(),
        }
    }

    pub fn err(&self, line: u32, msg: impl std::fmt::Display) -> anyhow::Error {
        self.src.err(if line == 0 { self.line } else { line }, msg)
    }

    /// Every item named `key`, removed from the block.
    fn take_all(&mut self, key: &'static str) -> Vec<&'a Item> {
        self.asked.push(key);
        let mut out = Vec::new();
        for slot in &mut self.items {
            if slot.is_some_and(|it| it.keys.first().is_some_and(|k| k == key)) {
                if let Some(it) = slot.take() {
                    out.push(it);
                }
            }
        }
        out
    }

    /// The one attribute named `key`, if present.
    pub fn attr(&mut self, key: &'static str) -> Result<Option<&'a Item>> {
        let all = self.take_all(key);
        if let Some(second) = all.get(1) {
            return Err(self.err(
                second.line,
                format!("{key:?} is given more than once in {}", self.what),
            ));
        }
        match all.first() {
            Some(it) if it.keys.len() > 1 => {
                Err(self.err(it.line, format!("{key:?} in {} takes no label", self.what)))
            }
            Some(it) => Ok(Some(it)),
            None => Ok(None),
        }
    }

    fn type_err(&self, it: &Item, key: &str, want: &str) -> anyhow::Error {
        self.err(
            it.line,
            format!(
                "{key:?} in {} must be {want}, not {}",
                self.what,
                it.value.type_name()
            ),
        )
    }

    pub fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        let Some(it) = self.attr(key)? else {
            return Ok(None);
        };
        match &it.value {
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(self.type_err(it, key, "a string")),
        }
    }

    /// A string with its line.
    pub fn string_at(&mut self, key: &'static str) -> Result<Option<(String, u32)>> {
        let line = self
            .items
            .iter()
            .flatten()
            .find(|it| it.keys.first().is_some_and(|k| k == key))
            .map(|it| it.line)
            .unwrap_or(0);
        Ok(self.string(key)?.map(|s| (s, line)))
    }

    /// A boolean (`true`, or a string Vault's ParseBool accepts).
    pub fn bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        let Some(it) = self.attr(key)? else {
            return Ok(None);
        };
        match &it.value {
            Value::Bool(b) => Ok(Some(*b)),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" => Ok(Some(false)),
                _ => Err(self.type_err(it, key, "true or false")),
            },
            Value::Int(i @ (0 | 1)) => Ok(Some(*i == 1)),
            _ => Err(self.type_err(it, key, "true or false")),
        }
    }

    pub fn int(&mut self, key: &'static str) -> Result<Option<i64>> {
        let Some(it) = self.attr(key)? else {
            return Ok(None);
        };
        match &it.value {
            Value::Int(i) => Ok(Some(*i)),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.type_err(it, key, "a number")),
            _ => Err(self.type_err(it, key, "a number")),
        }
    }

    /// A duration as Vault reads one: a number of seconds, or a string ("5m", "30s", "300").
    pub fn duration(&mut self, key: &'static str) -> Result<Option<Duration>> {
        let Some(it) = self.attr(key)? else {
            return Ok(None);
        };
        let bad = || {
            self.err(
                it.line,
                format!(
                    "{key:?} in {} must be a duration (e.g. \"30s\", \"5m\" or a number of seconds)",
                    self.what
                ),
            )
        };
        match &it.value {
            Value::Int(i) if *i >= 0 => Ok(Some(Duration::from_secs(*i as u64))),
            Value::String(s) => match airlock_core::duration::parse_duration_nanos(s.trim()) {
                Ok(n) if n >= 0 => Ok(Some(Duration::from_nanos(n as u64))),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    /// A file mode: an octal number as HCL 1 reads `0640`, or an octal string ("0640").
    pub fn mode(&mut self, key: &'static str) -> Result<Option<u32>> {
        let Some(it) = self.attr(key)? else {
            return Ok(None);
        };
        let bad = || {
            self.err(
                it.line,
                format!("{key:?} in {} must be a file mode such as 0640", self.what),
            )
        };
        let v = match &it.value {
            Value::String(s) => u32::from_str_radix(s.trim(), 8).map_err(|_| bad())?,
            Value::Int(i) => match raw_number(self.src, it) {
                Some(text) if text.len() > 1 && text.starts_with('0') => {
                    u32::from_str_radix(&text, 8).map_err(|_| bad())?
                }
                _ => u32::try_from(*i).map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        if v > 0o7777 {
            return Err(bad());
        }
        Ok(Some(v))
    }

    /// A list of strings; a single string is a list of one.
    pub fn strings(&mut self, key: &'static str) -> Result<Option<Vec<String>>> {
        let Some(it) = self.attr(key)? else {
            return Ok(None);
        };
        match &it.value {
            Value::String(s) => Ok(Some(vec![s.clone()])),
            Value::List(l) => l
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.type_err(it, key, "a list of strings")),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            _ => Err(self.type_err(it, key, "a string or a list of strings")),
        }
    }

    /// Every block named `key` (`key { }`, `key "label" { }`, or a JSON list of objects).
    pub fn blocks(&mut self, key: &'static str) -> Result<Vec<Block<'a>>> {
        let mut out = Vec::new();
        for it in self.take_all(key) {
            let what = if self.what.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.what)
            };
            let labels: Vec<String> = it.keys.iter().skip(1).cloned().collect();
            let objects: Vec<&'a [Item]> = match &it.value {
                Value::Object(items) => vec![items.as_slice()],
                Value::List(l) if l.iter().all(|v| matches!(v, Value::Object(_))) => l
                    .iter()
                    .filter_map(|v| match v {
                        Value::Object(items) => Some(items.as_slice()),
                        _ => None,
                    })
                    .collect(),
                other => {
                    return Err(self.err(
                        it.line,
                        format!("{what} must be a block, not {}", other.type_name()),
                    ))
                }
            };
            for items in objects {
                let mut b = Block::new(self.src, it.line, &what, items);
                b.labels = labels.clone();
                out.push(b);
            }
        }
        Ok(out)
    }

    /// At most one block named `key`.
    pub fn block(&mut self, key: &'static str) -> Result<Option<Block<'a>>> {
        let mut all = self.blocks(key)?;
        if let Some(second) = all.get(1) {
            return Err(self.err(
                second.line,
                format!("only one {} block is allowed", second.what),
            ));
        }
        Ok(all.pop())
    }

    /// Removes `key` whatever it holds (for keys that are accepted and ignored).
    pub fn ignore(&mut self, key: &'static str) -> Option<u32> {
        self.take_all(key).first().map(|it| it.line)
    }

    /// Line of the first remaining item named `key`, without taking it.
    pub fn line_of(&self, key: &str) -> Option<u32> {
        self.items
            .iter()
            .flatten()
            .find(|it| it.keys.first().is_some_and(|k| k == key))
            .map(|it| it.line)
    }

    /// Fails on the first key nobody asked for.
    pub fn finish(self) -> Result<()> {
        if let Some(it) = self.items.iter().flatten().next() {
            let name = it.keys.first().map(String::as_str).unwrap_or("");
            let mut valid = self.asked.clone();
            valid.sort_unstable();
            valid.dedup();
            let inside = if self.what.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in {}", self.what)
            };
            return Err(self.err(
                it.line,
                format!(
                    "unknown key {name:?} {inside} (valid: {})",
                    valid.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// The literal text of an item's number value, read from the source (to see `0640`).
fn raw_number(src: &Source, it: &Item) -> Option<String> {
    if it.line == 0 {
        return None;
    }
    let line = src.text.lines().nth(it.line as usize - 1)?;
    let rest: String = line
        .chars()
        .skip(it.column.saturating_sub(1) as usize)
        .collect();
    let after_eq = rest.split_once('=')?.1.trim_start();
    let digits: String = after_eq
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredocs_become_strings_and_keep_line_numbers() {
        let src = "a = <<EOT\nx \"q\"\n\ty\nEOT\nb = 1\nc = <<-EOF\n    one\n      two\n    EOF\n";
        let (out, starts) = expand_heredocs(src).unwrap();
        let items = airlock_core::hcl::parse(&out).unwrap();
        let get = |k: &str| items.iter().find(|i| i.keys[0] == k).unwrap();
        assert_eq!(get("a").value, Value::String("x \"q\"\n\ty\n".into()));
        assert_eq!(get("b").line, 5);
        assert_eq!(get("c").value, Value::String("one\n  two\n".into()));
        assert_eq!(starts, HashSet::from([1, 6]));
        assert!(expand_heredocs("a = <<EOT\nno end\n").is_err());
        // Heredoc markers inside strings and comments are text.
        let (out, _) = expand_heredocs("a = \"<<EOT\" # <<EOT\n").unwrap();
        assert_eq!(out, "a = \"<<EOT\" # <<EOT\n");
    }

    #[test]
    fn modes_are_octal_as_hcl1_reads_them() {
        let text = "mode = 0640\nperms = \"0600\"\nplain = 420\n";
        let src = Source {
            file: PathBuf::from("x.hcl"),
            text: text.into(),
            heredocs: HashSet::new(),
        };
        let items = airlock_core::hcl::parse(text).unwrap();
        let mut b = Block::new(&src, 0, "t", &items);
        assert_eq!(b.mode("mode").unwrap(), Some(0o640));
        assert_eq!(b.mode("perms").unwrap(), Some(0o600));
        assert_eq!(b.mode("plain").unwrap(), Some(420));
        b.finish().unwrap();
    }

    #[test]
    fn unknown_and_repeated_keys_name_their_line() {
        let text = "a = 1\nb = 2\na = 3\n";
        let src = Source {
            file: PathBuf::from("x.hcl"),
            text: text.into(),
            heredocs: HashSet::new(),
        };
        let items = airlock_core::hcl::parse(text).unwrap();
        let mut b = Block::new(&src, 0, "t", &items);
        let e = b.int("a").unwrap_err().to_string();
        assert!(e.starts_with("x.hcl:3: "), "{e}");
        let b = Block::new(&src, 0, "t", &items);
        let e = b.finish().unwrap_err().to_string();
        assert!(e.starts_with("x.hcl:1: unknown key \"a\""), "{e}");
    }
}
