//! Go's `encoding/json` output for template values: `json.Marshal` (sorted map keys,
//! struct fields in declaration order, `<`, `>`, `&` escaped as `\u003c` ...) and
//! `json.MarshalIndent(v, "", "  ")`, with or without HTML escaping.

use super::strconv::{format_float, json_float};
use super::value::Value;
use super::MAX_STRING;

/// Marshals `v`; `escape_html` is `json.Marshal`'s default, `pretty` is MarshalIndent.
pub(crate) fn marshal(v: &Value, escape_html: bool, pretty: bool) -> Result<String, String> {
    let mut e = Encoder {
        out: String::new(),
        html: escape_html,
        pretty,
    };
    e.value(v, 0)?;
    Ok(e.out)
}

struct Encoder {
    out: String,
    html: bool,
    pretty: bool,
}

impl Encoder {
    fn newline(&mut self, depth: usize) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str("  ");
            }
        }
    }

    fn colon(&mut self) {
        self.out.push(':');
        if self.pretty {
            self.out.push(' ');
        }
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), String> {
        if self.out.len() > MAX_STRING {
            return Err("json: output exceeds the template string size limit".into());
        }
        match v {
            Value::Invalid | Value::Nil | Value::Struct(_, None) => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => self.out.push_str(&i.to_string()),
            Value::Uint(u) => self.out.push_str(&u.to_string()),
            Value::Float(f) => {
                if !f.is_finite() {
                    return Err(format!(
                        "json: unsupported value: {}",
                        format_float(*f, 'g', -1)
                    ));
                }
                self.out.push_str(&json_float(*f));
            }
            Value::Number(n) => self.out.push_str(if n.is_empty() { "0" } else { n }),
            Value::Str(s) => self.string(s),
            Value::List(l) if l.nil => self.out.push_str("null"),
            Value::List(l) if l.items.is_empty() => self.out.push_str("[]"),
            Value::List(l) => {
                self.out.push('[');
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.value(item, depth + 1)?;
                }
                self.newline(depth);
                self.out.push(']');
            }
            Value::Map(m) if m.nil => self.out.push_str("null"),
            Value::Map(m) if m.entries.is_empty() => self.out.push_str("{}"),
            Value::Map(m) => {
                self.out.push('{');
                for (i, (k, item)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.string(k);
                    self.colon();
                    self.value(item, depth + 1)?;
                }
                self.newline(depth);
                self.out.push('}');
            }
            Value::Struct(t, Some(fields)) => {
                self.out.push('{');
                for (i, (name, item)) in t.fields.iter().zip(fields.iter()).enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.string(name);
                    self.colon();
                    self.value(item, depth + 1)?;
                }
                self.newline(depth);
                self.out.push('}');
            }
        }
        Ok(())
    }

    fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '<' | '>' | '&' if self.html => {
                    let b = c as u8;
                    self.out.push_str("\\u00");
                    self.out.push(HEX[(b >> 4) as usize] as char);
                    self.out.push(HEX[(b & 0xf) as usize] as char);
                }
                c if (c as u32) < 0x20 => {
                    let b = c as u8;
                    self.out.push_str("\\u00");
                    self.out.push(HEX[(b >> 4) as usize] as char);
                    self.out.push(HEX[(b & 0xf) as usize] as char);
                }
                '\u{2028}' => self.out.push_str("\\u2028"),
                '\u{2029}' => self.out.push_str("\\u2029"),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}
