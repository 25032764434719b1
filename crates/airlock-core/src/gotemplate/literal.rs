//! Literals: Go's `strconv.Unquote` for string and character constants and
//! `parse.NewNumber` for numbers (base prefixes, underscores, the int/uint/float
//! interpretations a constant admits).

use super::ast::Number;
use super::lex::Kind;
use super::strconv::go_quote;

/// Go's `strconv.Unquote` for `"..."` and `` `...` `` literals.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    const SYNTAX: &str = "invalid syntax";
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        let inner = &s[1..s.len() - 1];
        if inner.contains('`') {
            return Err(SYNTAX.into());
        }
        return Ok(inner.replace('\r', ""));
    }
    if s.len() < 2 || !s.starts_with('"') || !s.ends_with('"') {
        return Err(SYNTAX.into());
    }
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut rest = &s[1..s.len() - 1];
    while !rest.is_empty() {
        if rest.starts_with('"') || rest.starts_with('\n') {
            return Err(SYNTAX.into());
        }
        let (c, tail) = unquote_char(rest, '"')?;
        match c {
            Unquoted::Byte(b) => out.push(b),
            Unquoted::Char(c) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        rest = tail;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

enum Unquoted {
    Byte(u8),
    Char(char),
}

fn hex_val(s: &str, n: usize) -> Option<u32> {
    let digits = s.get(..n)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Go's `strconv.UnquoteChar`: one possibly escaped character and the rest.
fn unquote_char(s: &str, quote: char) -> Result<(Unquoted, &str), String> {
    const SYNTAX: &str = "invalid syntax";
    let mut chars = s.chars();
    let c = chars.next().ok_or(SYNTAX)?;
    if c == quote {
        return Err(SYNTAX.into());
    }
    if c != '\\' {
        return Ok((Unquoted::Char(c), chars.as_str()));
    }
    let e = chars.next().ok_or(SYNTAX)?;
    let rest = chars.as_str();
    let simple = |c: char| Ok((Unquoted::Char(c), rest));
    match e {
        'a' => simple('\u{7}'),
        'b' => simple('\u{8}'),
        'f' => simple('\u{c}'),
        'n' => simple('\n'),
        'r' => simple('\r'),
        't' => simple('\t'),
        'v' => simple('\u{b}'),
        '\\' => simple('\\'),
        '\'' | '"' if e == quote => simple(e),
        'x' => {
            let v = hex_val(rest, 2).ok_or(SYNTAX)?;
            Ok((Unquoted::Byte(v as u8), &rest[2..]))
        }
        'u' | 'U' => {
            let n = if e == 'u' { 4 } else { 8 };
            let v = hex_val(rest, n).ok_or(SYNTAX)?;
            let c = char::from_u32(v).ok_or(SYNTAX)?;
            Ok((Unquoted::Char(c), &rest[n..]))
        }
        '0'..='7' => {
            let digits = s.get(1..4).ok_or(SYNTAX)?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(SYNTAX.into());
            }
            let v = u32::from_str_radix(digits, 8).map_err(|_| SYNTAX)?;
            if v > 255 {
                return Err(SYNTAX.into());
            }
            Ok((Unquoted::Byte(v as u8), &s[4..]))
        }
        _ => Err(SYNTAX.into()),
    }
}

/// Go's `underscoreOK` for number literals.
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseUint(s, 0, 64)` magnitude parsing (sign handled by the caller).
fn parse_base0(s: &str) -> Option<u64> {
    if s.is_empty() || !underscore_ok(s) {
        return None;
    }
    let (base, digits) = match s.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, &s[2..]),
        [b'0', b'o' | b'O', ..] => (8, &s[2..]),
        [b'0', b'b' | b'B', ..] => (2, &s[2..]),
        [b'0', _, ..] => (8, &s[1..]),
        _ => (10, s),
    };
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(&digits, base).ok()
}

fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, mag) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = parse_base0(mag)?;
    if neg {
        if u == 1 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(u).ok().map(|v| -v)
        }
    } else {
        i64::try_from(u).ok()
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    if !underscore_ok(s) || s.contains(['x', 'X', 'p', 'P', 'n', 'N', 'i', 'I']) {
        return None;
    }
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    cleaned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Go's `parse.NewNumber`.
pub(crate) fn new_number(text: &str, kind: Kind) -> Result<Number, String> {
    let mut n = Number {
        text: text.to_string(),
        is_int: false,
        is_uint: false,
        is_float: false,
        int: 0,
        uint: 0,
        float: 0.0,
    };
    if kind == Kind::CharConstant {
        let inner = text.get(1..).ok_or("invalid syntax")?;
        let (c, tail) = unquote_char(inner, '\'')?;
        if tail != "'" {
            return Err(format!("malformed character constant: {text}"));
        }
        let v = match c {
            Unquoted::Byte(b) => u32::from(b),
            Unquoted::Char(c) => c as u32,
        };
        n.int = i64::from(v);
        n.uint = u64::from(v);
        n.float = f64::from(v);
        n.is_int = true;
        n.is_uint = true;
        n.is_float = true;
        return Ok(n);
    }
    if kind == Kind::Complex || text.ends_with('i') {
        return Err(format!(
            "complex numbers are not supported: {}",
            go_quote(text)
        ));
    }
    if !text.starts_with(['+', '-']) {
        if let Some(u) = parse_base0(text) {
            n.is_uint = true;
            n.uint = u;
        }
    }
    if let Some(i) = parse_go_int(text) {
        n.is_int = true;
        n.int = i;
        if i == 0 {
            n.is_uint = true;
            n.uint = 0;
        }
    }
    if n.is_int {
        n.is_float = true;
        n.float = n.int as f64;
    } else if n.is_uint {
        n.is_float = true;
        n.float = n.uint as f64;
    } else if let Some(f) = parse_go_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", go_quote(text)));
        }
        n.is_float = true;
        n.float = f;
        if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
            n.is_int = true;
            n.int = f as i64;
        }
        if f.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(&f) {
            n.is_uint = true;
            n.uint = f as u64;
        }
    }
    if !n.is_int && !n.is_uint && !n.is_float {
        return Err(format!("illegal number syntax: {}", go_quote(text)));
    }
    Ok(n)
}
