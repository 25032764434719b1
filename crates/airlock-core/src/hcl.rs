//! A small, strict parser for the HCL (version 1) subset used by Vault policies.
//!
//! Supported: blocks with any number of labels (`path "x" { ... }`, repeatable), attributes
//! `key = value`, strings with Go-style escapes (`\n \t \" \\ \xHH \uHHHH \UHHHHHHHH \NNN`),
//! integers (decimal, optional `-`, `0x` hex), floats (`1.5`, `1e3`), `true`/`false`, lists
//! `[...]` (a trailing comma is allowed, empty elements are not), objects `{ k = v, "k" = v }`
//! and comments `#`, `//`, `/* */`. Heredocs and `${}` interpolation are not supported.
//!
//! The result is the same shape as HCL's own AST: a body is a list of [`Item`]s, each with
//! one or more keys (`path "secret/*" {…}` has keys `["path", "secret/*"]`) and a value.
//! Repeated keys are kept in order; interpretation is left to the caller.
//!
//! Errors read like the Go HCL library's (`At 1:42: error parsing list, expected comma or list
//! end, got: RBRACE`), with 1-based line and column (column counted in characters).
//! The parser never panics and limits nesting to [`MAX_DEPTH`].

use std::fmt;

/// Maximum nesting of objects and lists.
pub const MAX_DEPTH: usize = 64;

/// A parse error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HclError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for HclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "At {}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for HclError {}

/// One entry of a body: `keys... = value` or `keys... { body }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The identifier and labels, unquoted. Never empty.
    pub keys: Vec<String>,
    /// The value; a block's value is [`Value::Object`].
    pub value: Value,
    /// Position of the first key (0 when the item came from JSON).
    pub line: u32,
    /// Column of the first key (0 when the item came from JSON).
    pub column: u32,
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string literal.
    String(String),
    /// An integer literal.
    Int(i64),
    /// A floating-point literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `[a, b, ...]`.
    List(Vec<Value>),
    /// `{ ... }`: an ordered list of items (keys may repeat).
    Object(Vec<Item>),
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::List(_) => "list",
            Value::Object(_) => "object",
        }
    }

    /// Converts to JSON. Multi-key items nest (`a "b" = 1` → `{"a":{"b":1}}`); when a key
    /// repeats, two objects are merged and otherwise the later value wins. Non-finite
    /// floats become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Object(items) => {
                let mut map = serde_json::Map::new();
                for item in items {
                    insert_json(&mut map, &item.keys, item.value.to_json());
                }
                serde_json::Value::Object(map)
            }
        }
    }

    /// Converts from JSON: objects become [`Value::Object`] with one single-key item per
    /// member (position 0), integers that fit `i64` become [`Value::Int`], other numbers
    /// [`Value::Float`]. `null` has no HCL equivalent and becomes an empty list.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::List(Vec::new()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Item {
                        keys: vec![k.clone()],
                        value: Value::from_json(v),
                        line: 0,
                        column: 0,
                    })
                    .collect(),
            ),
        }
    }
}

fn insert_json(
    map: &mut serde_json::Map<String, serde_json::Value>,
    keys: &[String],
    v: serde_json::Value,
) {
    let Some((first, rest)) = keys.split_first() else {
        return;
    };
    let v = if rest.is_empty() {
        v
    } else {
        let mut inner = serde_json::Map::new();
        insert_json(&mut inner, rest, v);
        serde_json::Value::Object(inner)
    };
    match (map.get_mut(first), v) {
        (Some(serde_json::Value::Object(existing)), serde_json::Value::Object(new)) => {
            for (k, val) in new {
                let key = [k];
                insert_json(existing, &key, val);
            }
        }
        (_, v) => {
            map.insert(first.clone(), v);
        }
    }
}

/// Parses HCL text into its top-level items.
pub fn parse(src: &str) -> Result<Vec<Item>, HclError> {
    let tokens = lex(src)?;
    let mut p = Parser { tokens, pos: 0 };
    p.body(false, 0)
}

/// Parses raw bytes; invalid UTF-8 is reported as an error at its position.
pub fn parse_bytes(src: &[u8]) -> Result<Vec<Item>, HclError> {
    match std::str::from_utf8(src) {
        Ok(s) => parse(s),
        Err(e) => {
            let valid = src.get(..e.valid_up_to()).unwrap_or_default();
            let prefix = String::from_utf8_lossy(valid);
            let (line, column) = end_position(&prefix);
            Err(HclError {
                line,
                column,
                message: "illegal UTF-8 encoding".to_string(),
            })
        }
    }
}

/// Position just after `s` (1-based).
fn end_position(s: &str) -> (u32, u32) {
    let mut line = 1u32;
    let mut col = 1u32;
    for c in s.chars() {
        if c == '\n' {
            line = line.saturating_add(1);
            col = 1;
        } else {
            col = col.saturating_add(1);
        }
    }
    (line, col)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Comma,
    Assign,
    Eof,
}

impl Tok {
    /// Token type names as the Go HCL library prints them.
    fn name(&self) -> &'static str {
        match self {
            Tok::Ident(_) => "IDENT",
            Tok::Str(_) => "STRING",
            Tok::Int(_) => "NUMBER",
            Tok::Float(_) => "FLOAT",
            Tok::Bool(_) => "BOOL",
            Tok::LBrace => "LBRACE",
            Tok::RBrace => "RBRACE",
            Tok::LBrack => "LBRACK",
            Tok::RBrack => "RBRACK",
            Tok::Comma => "COMMA",
            Tok::Assign => "ASSIGN",
            Tok::Eof => "EOF",
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: u32,
    column: u32,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    column: u32,
}

impl Lexer<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    fn err(&self, line: u32, column: u32, msg: &str) -> HclError {
        HclError {
            line,
            column,
            message: msg.to_string(),
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c == '-' || c == '.' || c.is_alphanumeric()
}

fn lex(src: &str) -> Result<Vec<Token>, HclError> {
    let mut lx = Lexer {
        chars: src.chars().peekable(),
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        // Skip whitespace and comments.
        let Some(c) = lx.peek() else {
            out.push(Token {
                tok: Tok::Eof,
                line: lx.line,
                column: lx.column,
            });
            return Ok(out);
        };
        let (line, column) = (lx.line, lx.column);
        if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
            lx.bump();
            continue;
        }
        if c == '#' {
            while let Some(c) = lx.peek() {
                if c == '\n' {
                    break;
                }
                lx.bump();
            }
            continue;
        }
        if c == '/' {
            lx.bump();
            match lx.peek() {
                Some('/') => {
                    while let Some(c) = lx.peek() {
                        if c == '\n' {
                            break;
                        }
                        lx.bump();
                    }
                }
                Some('*') => {
                    lx.bump();
                    let mut prev = '\0';
                    loop {
                        match lx.bump() {
                            None => return Err(lx.err(line, column, "comment not terminated")),
                            Some('/') if prev == '*' => break,
                            Some(c) => prev = c,
                        }
                    }
                }
                _ => return Err(lx.err(line, column, "expected '/' for comment")),
            }
            continue;
        }
        let tok = match c {
            '{' => {
                lx.bump();
                Tok::LBrace
            }
            '}' => {
                lx.bump();
                Tok::RBrace
            }
            '[' => {
                lx.bump();
                Tok::LBrack
            }
            ']' => {
                lx.bump();
                Tok::RBrack
            }
            ',' => {
                lx.bump();
                Tok::Comma
            }
            '=' => {
                lx.bump();
                Tok::Assign
            }
            '"' => {
                lx.bump();
                Tok::Str(lex_string(&mut lx, line, column)?)
            }
            '-' | '0'..='9' => lex_number(&mut lx, line, column)?,
            c if is_ident_start(c) => {
                let mut s = String::new();
                while let Some(c) = lx.peek() {
                    if !is_ident_continue(c) {
                        break;
                    }
                    s.push(c);
                    lx.bump();
                }
                match s.as_str() {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    _ => Tok::Ident(s),
                }
            }
            '\0' => return Err(lx.err(line, column, "unexpected null character (0x00)")),
            _ => return Err(lx.err(line, column, "illegal char")),
        };
        out.push(Token { tok, line, column });
    }
}

fn lex_string(lx: &mut Lexer<'_>, line: u32, column: u32) -> Result<String, HclError> {
    let mut s = String::new();
    loop {
        let (el, ec) = (lx.line, lx.column);
        match lx.bump() {
            None | Some('\n') => return Err(lx.err(line, column, "literal not terminated")),
            Some('"') => return Ok(s),
            Some('\0') => return Err(lx.err(el, ec, "unexpected null character (0x00)")),
            Some('\\') => {
                let bad = |lx: &Lexer<'_>| lx.err(el, ec, "illegal char escape");
                let Some(e) = lx.bump() else {
                    return Err(lx.err(line, column, "literal not terminated"));
                };
                match e {
                    'a' => s.push('\u{7}'),
                    'b' => s.push('\u{8}'),
                    'f' => s.push('\u{c}'),
                    'n' => s.push('\n'),
                    'r' => s.push('\r'),
                    't' => s.push('\t'),
                    'v' => s.push('\u{b}'),
                    '\\' => s.push('\\'),
                    '"' => s.push('"'),
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let d = lx
                                .bump()
                                .and_then(|c| c.to_digit(8))
                                .ok_or_else(|| bad(lx))?;
                            v = v * 8 + d;
                        }
                        // Single bytes above 0x7f would not be valid UTF-8 on their own.
                        s.push(
                            char::from_u32(v)
                                .filter(|c| c.is_ascii())
                                .ok_or_else(|| bad(lx))?,
                        );
                    }
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v: u32 = 0;
                        for _ in 0..n {
                            let d = lx
                                .bump()
                                .and_then(|c| c.to_digit(16))
                                .ok_or_else(|| bad(lx))?;
                            v = v
                                .checked_mul(16)
                                .and_then(|v| v.checked_add(d))
                                .ok_or_else(|| bad(lx))?;
                        }
                        let c = char::from_u32(v).ok_or_else(|| bad(lx))?;
                        if e == 'x' && !c.is_ascii() {
                            return Err(bad(lx));
                        }
                        s.push(c);
                    }
                    _ => return Err(bad(lx)),
                }
            }
            Some(c) => s.push(c),
        }
    }
}

fn lex_number(lx: &mut Lexer<'_>, line: u32, column: u32) -> Result<Tok, HclError> {
    let mut text = String::new();
    if lx.peek() == Some('-') {
        text.push('-');
        lx.bump();
        if !matches!(lx.peek(), Some('0'..='9')) {
            return Err(lx.err(line, column, "illegal char"));
        }
    }
    // Hexadecimal.
    if lx.peek() == Some('0') {
        let mut probe = lx.chars.clone();
        probe.next();
        if matches!(probe.peek(), Some('x' | 'X')) {
            lx.bump();
            lx.bump();
            let mut digits = String::new();
            while let Some(c) = lx.peek() {
                if !c.is_ascii_hexdigit() {
                    break;
                }
                digits.push(c);
                lx.bump();
            }
            if digits.is_empty() || lx.peek().is_some_and(is_ident_continue) {
                return Err(lx.err(line, column, "illegal hexadecimal number"));
            }
            let v = i64::from_str_radix(&digits, 16)
                .map_err(|_| lx.err(line, column, "number out of range"))?;
            return Ok(Tok::Int(if text.is_empty() { v } else { -v }));
        }
    }
    let mut is_float = false;
    while let Some(c) = lx.peek() {
        match c {
            '0'..='9' => {}
            '.' if !is_float => is_float = true,
            'e' | 'E' => {
                is_float = true;
                text.push(c);
                lx.bump();
                if let Some(sign @ ('+' | '-')) = lx.peek() {
                    text.push(sign);
                    lx.bump();
                }
                if !matches!(lx.peek(), Some('0'..='9')) {
                    return Err(lx.err(line, column, "illegal number"));
                }
                continue;
            }
            _ => break,
        }
        text.push(c);
        lx.bump();
    }
    if text.ends_with('.') || lx.peek().is_some_and(is_ident_continue) {
        return Err(lx.err(line, column, "illegal number"));
    }
    if is_float {
        let f: f64 = text
            .parse()
            .map_err(|_| lx.err(line, column, "illegal number"))?;
        if !f.is_finite() {
            return Err(lx.err(line, column, "number out of range"));
        }
        Ok(Tok::Float(f))
    } else {
        text.parse::<i64>()
            .map(Tok::Int)
            .map_err(|_| lx.err(line, column, "number out of range"))
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Token {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .cloned()
            .unwrap_or(Token {
                tok: Tok::Eof,
                line: 1,
                column: 1,
            })
    }

    fn next(&mut self) -> Token {
        let t = self.peek();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn err(t: &Token, msg: String) -> HclError {
        HclError {
            line: t.line,
            column: t.column,
            message: msg,
        }
    }

    fn depth_check(t: &Token, depth: usize) -> Result<(), HclError> {
        if depth >= MAX_DEPTH {
            return Err(Self::err(
                t,
                format!("nesting too deep (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    /// A list of items; inside an object it ends at `}` (not consumed), at top level at EOF.
    fn body(&mut self, in_object: bool, depth: usize) -> Result<Vec<Item>, HclError> {
        let mut items = Vec::new();
        loop {
            let t = self.peek();
            match t.tok {
                Tok::RBrace if in_object => return Ok(items),
                Tok::Eof if !in_object => return Ok(items),
                Tok::Eof => {
                    return Err(Self::err(
                        &t,
                        "object expected closing RBRACE got: EOF".to_string(),
                    ))
                }
                _ => {}
            }
            items.push(self.item(depth)?);
            // Items may optionally be separated by commas.
            if self.peek().tok == Tok::Comma {
                self.next();
            }
        }
    }

    fn item(&mut self, depth: usize) -> Result<Item, HclError> {
        let first = self.peek();
        let mut keys = Vec::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::Ident(s) | Tok::Str(s) => keys.push(s),
                Tok::Assign => {
                    if keys.is_empty() {
                        return Err(Self::err(&t, "no object keys found!".to_string()));
                    }
                    if keys.len() > 1 {
                        return Err(Self::err(
                            &t,
                            "nested object expected: LBRACE got: ASSIGN".to_string(),
                        ));
                    }
                    let value = self.value(depth)?;
                    return Ok(Item {
                        keys,
                        value,
                        line: first.line,
                        column: first.column,
                    });
                }
                Tok::LBrace => {
                    if keys.is_empty() {
                        return Err(Self::err(
                            &t,
                            "expected: IDENT | STRING got: LBRACE".to_string(),
                        ));
                    }
                    let value = self.object(&t, depth)?;
                    return Ok(Item {
                        keys,
                        value,
                        line: first.line,
                        column: first.column,
                    });
                }
                Tok::Eof if !keys.is_empty() => {
                    return Err(Self::err(
                        &t,
                        format!(
                            "key '{}' expected start of object ('{{') or assignment ('=')",
                            keys.join(" ")
                        ),
                    ))
                }
                _ => {
                    return Err(Self::err(
                        &t,
                        format!(
                            "expected: IDENT | STRING | ASSIGN | LBRACE got: {}",
                            t.tok.name()
                        ),
                    ))
                }
            }
        }
    }

    /// Parses an object body after its `{` (`open`), consuming the closing `}`.
    fn object(&mut self, open: &Token, depth: usize) -> Result<Value, HclError> {
        Self::depth_check(open, depth)?;
        let items = self.body(true, depth + 1)?;
        let t = self.next();
        if t.tok != Tok::RBrace {
            return Err(Self::err(
                &t,
                format!("object expected closing RBRACE got: {}", t.tok.name()),
            ));
        }
        Ok(Value::Object(items))
    }

    fn value(&mut self, depth: usize) -> Result<Value, HclError> {
        let t = self.next();
        match t.tok {
            Tok::Str(s) => Ok(Value::String(s)),
            Tok::Int(i) => Ok(Value::Int(i)),
            Tok::Float(f) => Ok(Value::Float(f)),
            Tok::Bool(b) => Ok(Value::Bool(b)),
            Tok::LBrace => self.object(&t, depth),
            Tok::LBrack => self.list(&t, depth),
            Tok::Eof => Err(Self::err(&t, "expected a value, got: EOF".to_string())),
            _ => Err(Self::err(&t, format!("Unknown token: {}", t.tok.name()))),
        }
    }

    /// Parses a list after its `[` (`open`), consuming the closing `]`.
    fn list(&mut self, open: &Token, depth: usize) -> Result<Value, HclError> {
        Self::depth_check(open, depth)?;
        let mut out = Vec::new();
        let mut need_comma = false;
        loop {
            let t = self.next();
            if need_comma && !matches!(t.tok, Tok::Comma | Tok::RBrack) {
                return Err(Self::err(
                    &t,
                    format!(
                        "error parsing list, expected comma or list end, got: {}",
                        t.tok.name()
                    ),
                ));
            }
            match t.tok {
                Tok::RBrack => return Ok(Value::List(out)),
                Tok::Comma if need_comma => need_comma = false,
                Tok::Str(s) => {
                    out.push(Value::String(s));
                    need_comma = true;
                }
                Tok::Int(i) => {
                    out.push(Value::Int(i));
                    need_comma = true;
                }
                Tok::Float(f) => {
                    out.push(Value::Float(f));
                    need_comma = true;
                }
                Tok::Bool(b) => {
                    out.push(Value::Bool(b));
                    need_comma = true;
                }
                Tok::LBrace => {
                    out.push(self.object(&t, depth + 1)?);
                    need_comma = true;
                }
                Tok::LBrack => {
                    out.push(self.list(&t, depth + 1)?);
                    need_comma = true;
                }
                _ => {
                    return Err(Self::err(
                        &t,
                        format!("unexpected token while parsing list: {}", t.tok.name()),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
