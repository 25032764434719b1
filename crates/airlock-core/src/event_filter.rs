//! Event filters: the subset of Vault's filter expressions (go-bexpr) that subscribers use
//! on event fields — `data_path == secret/data/app and operation != "data-write"`.
//!
//! Grammar: `expr := and ("or" and)*`, `and := unary ("and" unary)*`,
//! `unary := "not" unary | "(" expr ")" | match`, and a match is one of
//! `SEL == V`, `SEL != V`, `SEL contains V`, `SEL not contains V`, `V in SEL`,
//! `V not in SEL`, `SEL is empty`, `SEL is not empty`. Values are bare words or quoted
//! (`"..."` with `\"` escapes, or `` `...` ``). A selector names an event field; a field the
//! event lacks is the empty string.

use std::borrow::Cow;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Equal(String, String),
    Contains(String, String),
    Empty(String),
}

const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Eq,
    Ne,
    Word(String),
    Quoted(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '=' | '!' if b.get(i + 1) == Some(&'=') => {
                out.push(if c == '=' { Tok::Eq } else { Tok::Ne });
                i += 2;
            }
            '"' | '`' => {
                let q = c;
                let mut v = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err("unterminated quoted value".into()),
                        Some('\\') if q == '"' => {
                            match b.get(i + 1) {
                                Some(e) => v.push(*e),
                                None => return Err("unterminated quoted value".into()),
                            }
                            i += 2;
                        }
                        Some(ch) if *ch == q => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Quoted(v));
            }
            _ => {
                let start = i;
                let ends_word = |i: usize| {
                    b[i].is_whitespace()
                        || matches!(b[i], '(' | ')' | '"' | '`')
                        || (matches!(b[i], '=' | '!') && b.get(i + 1) == Some(&'='))
                };
                while i < b.len() && !ends_word(i) {
                    i += 1;
                }
                out.push(Tok::Word(b[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x == w)
    }

    fn peek_word_at(&self, off: usize, w: &str) -> bool {
        matches!(self.toks.get(self.pos + off), Some(Tok::Word(x)) if x == w)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut l = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let r = self.and()?;
            l = Filter::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut l = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let r = self.unary()?;
            l = Filter::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("filter nested too deeply".into());
        }
        let r = if self.peek_word("not") {
            self.pos += 1;
            Filter::Not(Box::new(self.unary()?))
        } else if self.toks.get(self.pos) == Some(&Tok::Open) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::Close) {
                return Err("missing )".into());
            }
            e
        } else {
            self.matcher()?
        };
        self.depth -= 1;
        Ok(r)
    }

    fn operand(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Tok::Word(w)) if !matches!(w.as_str(), "and" | "or") => Ok(w),
            Some(Tok::Quoted(v)) => Ok(v),
            _ => Err(format!("expected {what}")),
        }
    }

    fn matcher(&mut self) -> Result<Filter, String> {
        let first = self.operand("a selector or value")?;
        // `V in SEL`, `V not in SEL`
        if self.peek_word("in") {
            self.pos += 1;
            let sel = self.operand("a selector")?;
            return Ok(Filter::Contains(sel, first));
        }
        if self.peek_word("not") && self.peek_word_at(1, "in") {
            self.pos += 2;
            let sel = self.operand("a selector")?;
            return Ok(Filter::Not(Box::new(Filter::Contains(sel, first))));
        }
        match self.next() {
            Some(Tok::Eq) => Ok(Filter::Equal(first, self.operand("a value")?)),
            Some(Tok::Ne) => Ok(Filter::Not(Box::new(Filter::Equal(
                first,
                self.operand("a value")?,
            )))),
            Some(Tok::Word(w)) if w == "contains" => {
                Ok(Filter::Contains(first, self.operand("a value")?))
            }
            Some(Tok::Word(w)) if w == "not" && self.peek_word("contains") => {
                self.pos += 1;
                Ok(Filter::Not(Box::new(Filter::Contains(
                    first,
                    self.operand("a value")?,
                ))))
            }
            Some(Tok::Word(w)) if w == "is" => {
                let neg = self.peek_word("not");
                if neg {
                    self.pos += 1;
                }
                if !self.peek_word("empty") {
                    return Err("expected empty after is".into());
                }
                self.pos += 1;
                let e = Filter::Empty(first);
                Ok(if neg { Filter::Not(Box::new(e)) } else { e })
            }
            Some(Tok::Word(w)) if w == "matches" => {
                Err("the matches operator is not supported; use ==, !=, contains or in".into())
            }
            _ => Err(format!("expected an operator after {first:?}")),
        }
    }
}

impl Filter {
    /// Parses a filter expression.
    pub fn parse(s: &str) -> Result<Filter, String> {
        if s.len() > MAX_LEN {
            return Err(format!("filter longer than {MAX_LEN} bytes"));
        }
        let toks = lex(s)?;
        if toks.is_empty() {
            return Err("empty filter".into());
        }
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let f = p.or()?;
        if p.pos < p.toks.len() {
            return Err("unexpected text after the expression".into());
        }
        Ok(f)
    }

    /// The values `field` must have for the filter to match, when it pins the field to a
    /// few values (`data_path == a or data_path == b`, possibly `and` something else);
    /// `None` when any value could match.
    pub fn pinned(&self, field: &str) -> Option<Vec<String>> {
        match self {
            Filter::Equal(sel, v) if sel == field => Some(vec![v.clone()]),
            Filter::Or(a, b) => {
                let mut x = a.pinned(field)?;
                x.extend(b.pinned(field)?);
                Some(x)
            }
            Filter::And(a, b) => match (a.pinned(field), b.pinned(field)) {
                (Some(x), Some(y)) => Some(if x.len() <= y.len() { x } else { y }),
                (x, y) => x.or(y),
            },
            _ => None,
        }
    }

    /// Evaluates against an event's fields (`get` returns a field's value).
    pub fn matches<'a>(&self, get: &dyn Fn(&str) -> Option<Cow<'a, str>>) -> bool {
        let val = |sel: &str| get(sel).unwrap_or_default();
        match self {
            Filter::And(a, b) => a.matches(get) && b.matches(get),
            Filter::Or(a, b) => a.matches(get) || b.matches(get),
            Filter::Not(a) => !a.matches(get),
            Filter::Equal(sel, v) => val(sel) == v.as_str(),
            Filter::Contains(sel, v) => val(sel).contains(v.as_str()),
            Filter::Empty(sel) => val(sel).is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(k: &str) -> Option<Cow<'static, str>> {
        match k {
            "data_path" => Some("secret/data/foo".into()),
            "operation" => Some("data-write".into()),
            "event_type" => Some("kv-v2/data-write".into()),
            _ => None,
        }
    }

    #[test]
    fn vault_examples_and_operators() {
        let t = |s: &str| Filter::parse(s).unwrap().matches(&ev);
        assert!(!t(
            r#"data_path == secret/data/foo and operation != "data-write""#
        ));
        assert!(t("data_path == secret/data/foo"));
        assert!(t(r#"data_path == "secret/data/foo" or operation == x"#));
        assert!(t("not (operation == delete)"));
        assert!(t("data_path contains data/"));
        assert!(t("data/f in data_path"));
        assert!(t("zzz not in data_path"));
        assert!(t("mount_path is empty"));
        assert!(t("event_type is not empty and event_type != kv-v1/write"));
        assert!(!t("data_path not contains foo"));
        assert!(t("operation==data-write"));
    }

    #[test]
    fn pinned_values_are_found_only_when_implied() {
        let p = |s: &str| Filter::parse(s).unwrap().pinned("data_path");
        assert_eq!(p("data_path == a"), Some(vec!["a".to_string()]));
        assert_eq!(
            p("data_path == a or data_path == b"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            p("data_path == a and operation != x"),
            Some(vec!["a".to_string()])
        );
        assert_eq!(p("data_path == a or operation == x"), None);
        assert_eq!(p("not data_path == a"), None);
        assert_eq!(p("data_path != a"), None);
        assert_eq!(p("data_path contains a"), None);
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        for bad in [
            "",
            "data_path ==",
            "(a == b",
            "a == b c",
            "a matches b",
            "a is full",
            "\"open",
            "and",
            &"(".repeat(100),
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Filter::parse(&"a".repeat(5000)).is_err());
    }
}
