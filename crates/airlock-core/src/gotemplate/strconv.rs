//! The parts of Go's `strconv` that templates reach: float formatting (`FormatFloat`
//! and the `encoding/json` float form) and quoting (`Quote`, `QuoteRune`).

/// Go's `strconv.IsPrint`, approximated without Unicode category tables.
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x2028..=0x202E | 0x2060..=0x206F | 0xE000..=0xF8FF | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xFFFE | 0xFFFF | 0xF0000..=0x10FFFF)
}

pub(crate) fn quote_with(s: &str, q: char, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        push_quoted_char(&mut out, c, q, ascii);
    }
    out.push(q);
    out
}

fn push_quoted_char(out: &mut String, c: char, q: char, ascii: bool) {
    if c == q || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if (!ascii || c.is_ascii()) && is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    quote_with(s, '"', false)
}

pub(crate) fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{feff}' && (c == '\t' || !c.is_control()))
}

pub(crate) fn quote_rune(c: char, ascii: bool) -> String {
    quote_with(&c.to_string(), '\'', ascii)
}

/// `strconv.FormatFloat(v, fmt, prec, 64)` for `fmt` in `e E f g G`.
pub(crate) fn format_float(v: f64, fmt: char, prec: i64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    let shortest = prec < 0;
    match fmt {
        'e' | 'E' => {
            let (d, p) = if shortest {
                let d = Digits::shortest(a);
                let p = d.nd().saturating_sub(1);
                (d, p)
            } else {
                (Digits::fixed(a, prec as usize + 1), prec as usize)
            };
            fmt_e(&mut out, &d, p, fmt);
        }
        'f' | 'F' => {
            if shortest {
                let d = Digits::shortest(a);
                let p = (d.nd() as i64 - d.dp).max(0) as usize;
                fmt_f(&mut out, &d, p);
            } else {
                out.push_str(&format!("{:.*}", prec as usize, a));
            }
        }
        _ => {
            let upper = fmt == 'G';
            let (d, mut p) = if shortest {
                let d = Digits::shortest(a);
                let n = d.nd();
                (d, n)
            } else {
                let p = (prec as usize).max(1);
                let mut d = Digits::fixed(a, p);
                d.trim();
                (d, p)
            };
            let nd = d.nd();
            let mut eprec = p as i64;
            if eprec > nd as i64 && nd as i64 >= d.dp {
                eprec = nd as i64;
            }
            if shortest {
                eprec = 6;
            }
            let exp = d.dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(
                    &mut out,
                    &d,
                    p.saturating_sub(1),
                    if upper { 'E' } else { 'e' },
                );
            } else {
                if p as i64 > d.dp {
                    p = nd;
                }
                fmt_f(&mut out, &d, (p as i64 - d.dp).max(0) as usize);
            }
        }
    }
    out
}

/// Decimal digits of a non-negative float: value = 0.d1d2d3... × 10^dp.
struct Digits {
    d: Vec<u8>,
    dp: i64,
}

impl Digits {
    fn parse(s: &str) -> Digits {
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        let exp: i64 = exp.parse().unwrap_or(0);
        if d.iter().all(|&b| b == b'0') {
            return Digits {
                d: Vec::new(),
                dp: 0,
            };
        }
        Digits { d, dp: exp + 1 }
    }

    fn shortest(a: f64) -> Digits {
        Digits::parse(&format!("{a:e}"))
    }

    /// Rounded to `n` significant digits (trailing zeros kept).
    fn fixed(a: f64, n: usize) -> Digits {
        let mut d = Digits::parse(&format!("{:.*e}", n.saturating_sub(1), a));
        if d.d.is_empty() {
            d.d = vec![b'0'; n];
            d.dp = 1;
            d.trim();
        }
        d
    }

    fn trim(&mut self) {
        while self.d.last() == Some(&b'0') {
            self.d.pop();
        }
        if self.d.is_empty() {
            self.dp = 0;
        }
    }

    fn nd(&self) -> usize {
        self.d.len()
    }
}

fn fmt_e(out: &mut String, d: &Digits, prec: usize, fmt: char) {
    out.push(d.d.first().map_or('0', |&b| b as char));
    if prec > 0 {
        out.push('.');
        let m = d.nd().min(prec + 1);
        let mut i = 1;
        if i < m {
            out.extend(d.d[i..m].iter().map(|&b| b as char));
            i = m;
        }
        while i <= prec {
            out.push('0');
            i += 1;
        }
    }
    out.push(fmt);
    let mut exp = if d.nd() == 0 { 0 } else { d.dp - 1 };
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

fn fmt_f(out: &mut String, d: &Digits, prec: usize) {
    if d.dp > 0 {
        let dp = d.dp as usize;
        let m = d.nd().min(dp);
        out.extend(d.d[..m].iter().map(|&b| b as char));
        out.extend(std::iter::repeat_n('0', dp - m));
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i64 {
            let j = d.dp + i - 1;
            let ch = if j >= 0 && (j as usize) < d.nd() {
                d.d[j as usize] as char
            } else {
                '0'
            };
            out.push(ch);
        }
    }
}

/// The float text Go's `encoding/json` writes.
pub(crate) fn json_float(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let mut s = format_float(v, 'e', -1);
        let n = s.len();
        if n >= 4 && &s[n - 4..n - 1] == "e-0" {
            s.remove(n - 2);
        }
        s
    } else {
        format_float(v, 'f', -1)
    }
}
