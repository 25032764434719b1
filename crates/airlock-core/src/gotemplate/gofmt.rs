//! A port of the parts of Go's `fmt` that templates reach: `%v` printing of template
//! values, `Sprint`/`Sprintln`/`Sprintf` (flags, width, precision, argument indexes,
//! the `%!verb(type=value)` error forms).

use super::strconv::{can_backquote, format_float, is_print, quote_rune, quote_with};
use super::value::Value;
use super::MAX_STRING;

/// Go's `tooLarge`: widths and precisions beyond this are refused.
const MAX_WIDTH: usize = 1_000_000;

#[derive(Default, Clone)]
struct Flags {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    sharp_v: bool,
    plus_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// Go's `pp`: one formatting run.
#[derive(Default)]
pub(crate) struct Printer {
    pub buf: String,
    f: Flags,
    erroring: bool,
}

impl Printer {
    fn write_padding(&mut self, n: usize) {
        let pad = if self.f.zero && !self.f.minus {
            '0'
        } else {
            ' '
        };
        self.buf.extend(std::iter::repeat_n(pad, n));
    }

    fn pad(&mut self, s: &str) {
        let Some(wid) = self.f.wid.filter(|w| *w > 0) else {
            self.buf.push_str(s);
            return;
        };
        let n = wid.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            self.write_padding(n);
        } else {
            self.write_padding(n);
            self.buf.push_str(s);
        }
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        match self.f.prec {
            Some(p) => s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i]),
            None => s,
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s).to_string();
        self.pad(&s);
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        let q = if self.f.sharp && can_backquote(s) {
            format!("`{s}`")
        } else {
            quote_with(s, '"', self.f.plus)
        };
        self.pad(&q);
    }

    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let b = s.as_bytes();
        let length = self.f.prec.map_or(b.len(), |p| p.min(b.len()));
        let mut width = 2 * length;
        if width == 0 {
            if let Some(w) = self.f.wid {
                self.write_padding(w);
            }
            return;
        }
        if self.f.space {
            if self.f.sharp {
                width *= 2;
            }
            width += length - 1;
        } else if self.f.sharp {
            width += 2;
        }
        let w = self.f.wid.unwrap_or(0);
        if w > width && !self.f.minus {
            self.write_padding(w - width);
        }
        let mut out = String::new();
        if self.f.sharp {
            out.push('0');
            out.push(digits[16] as char);
        }
        for (i, &c) in b[..length].iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
                if self.f.sharp {
                    out.push('0');
                    out.push(digits[16] as char);
                }
            }
            out.push(digits[(c >> 4) as usize] as char);
            out.push(digits[(c & 0xf) as usize] as char);
        }
        self.buf.push_str(&out);
        if w > width && self.f.minus {
            self.write_padding(w - width);
        }
    }

    fn fmt_integer(&mut self, u: u64, base: u64, signed: bool, verb: char, upper: bool) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative {
            (u as i64).unsigned_abs()
        } else {
            u
        };
        let digits: &[u8] = if upper {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let mut prec = 0usize;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let old = self.f.zero;
                self.f.zero = false;
                let w = self.f.wid.unwrap_or(0);
                self.write_padding(w);
                self.f.zero = old;
                return;
            }
        } else if self.f.zero && !self.f.minus && self.f.wid.is_some() {
            prec = self.f.wid.unwrap_or(0);
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut rev: Vec<u8> = Vec::new();
        loop {
            rev.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while rev.len() < prec {
            rev.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => rev.extend_from_slice(b"b0"),
                8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                16 => {
                    rev.push(digits[16]);
                    rev.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            rev.extend_from_slice(b"o0");
        }
        if negative {
            rev.push(b'-');
        } else if self.f.plus {
            rev.push(b'+');
        } else if self.f.space {
            rev.push(b' ');
        }
        rev.reverse();
        let s = String::from_utf8_lossy(&rev).into_owned();
        let old = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = old;
    }

    fn fmt_float(&mut self, v: f64, verb: char, prec: i64) {
        let prec = self.f.prec.map_or(prec, |p| p as i64);
        let s = format_float(v, verb, prec);
        let mut num = if s.starts_with('-') || s.starts_with('+') {
            s
        } else {
            format!("+{s}")
        };
        if self.f.space && num.starts_with('+') && !self.f.plus {
            num.replace_range(..1, " ");
        }
        if num[1..].starts_with('I') || num[1..].starts_with('N') {
            let old = self.f.zero;
            self.f.zero = false;
            if num[1..].starts_with('N') && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&num);
            self.f.zero = old;
            return;
        }
        if self.f.plus || !num.starts_with('+') {
            let w = self.f.wid.unwrap_or(0);
            if self.f.zero && !self.f.minus && w > num.len() {
                let (sign, rest) = num.split_at(1);
                self.buf.push_str(sign);
                self.write_padding(w - num.len());
                self.buf.push_str(rest);
                return;
            }
            self.pad(&num);
            return;
        }
        let unsigned = num[1..].to_string();
        self.pad(&unsigned);
    }

    fn bad_verb(&mut self, v: Option<&Value>, verb: char) {
        self.erroring = true;
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        match v {
            Some(v) if !matches!(v, Value::Invalid | Value::Nil) => {
                self.buf.push_str(&v.type_name());
                self.buf.push('=');
                self.print_arg(v, 'v');
            }
            _ => self.buf.push_str("<nil>"),
        }
        self.buf.push(')');
        self.erroring = false;
    }

    fn fmt_string(&mut self, v: &Value, s: &str, verb: char) {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => self.fmt_s(s),
            'x' => self.fmt_sx(s, false),
            'X' => self.fmt_sx(s, true),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(Some(v), verb),
        }
    }

    fn fmt_int_verbs(&mut self, v: &Value, u: u64, signed: bool, verb: char) {
        match verb {
            'v' if self.f.sharp_v && !signed => {
                let old = self.f.sharp;
                self.f.sharp = true;
                self.fmt_integer(u, 16, false, 'v', false);
                self.f.sharp = old;
            }
            'v' | 'd' => self.fmt_integer(u, 10, signed, verb, false),
            'b' => self.fmt_integer(u, 2, signed, verb, false),
            'o' | 'O' => self.fmt_integer(u, 8, signed, verb, false),
            'x' => self.fmt_integer(u, 16, signed, verb, false),
            'X' => self.fmt_integer(u, 16, signed, verb, true),
            'c' => {
                let c = u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                self.pad(&c.to_string());
            }
            'q' => {
                let c = u32::try_from(u)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                let q = quote_rune(c, self.f.plus);
                self.pad(&q);
            }
            'U' => {
                let mut s = format!("U+{:04X}", u);
                if let Some(p) = self.f.prec {
                    let hex = format!("{:X}", u);
                    if hex.len() < p {
                        s = format!("U+{}{}", "0".repeat(p - hex.len()), hex);
                    }
                }
                if self.f.sharp {
                    if let Some(c) = u32::try_from(u)
                        .ok()
                        .and_then(char::from_u32)
                        .filter(|c| is_print(*c))
                    {
                        s.push_str(&format!(" '{c}'"));
                    }
                }
                let old = self.f.zero;
                self.f.zero = false;
                self.pad(&s);
                self.f.zero = old;
            }
            _ => self.bad_verb(Some(v), verb),
        }
    }

    /// Go's `printArg`: the top level of one operand.
    pub(crate) fn print_arg(&mut self, arg: &Value, verb: char) {
        match arg {
            Value::Invalid | Value::Nil => match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(None, verb),
            },
            _ if verb == 'T' => {
                let t = arg.type_name();
                self.fmt_s(&t);
            }
            _ => self.print_value(arg, verb, 0),
        }
    }

    /// Go's `printValue`.
    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        match v {
            Value::Invalid if depth == 0 => self.buf.push_str("<invalid reflect.Value>"),
            Value::Invalid | Value::Nil => match verb {
                'v' => self.buf.push_str("<nil>"),
                _ => self.bad_verb(None, verb),
            },
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(Some(v), verb),
            },
            Value::Int(i) => self.fmt_int_verbs(v, *i as u64, true, verb),
            Value::Uint(u) => self.fmt_int_verbs(v, *u, false, verb),
            Value::Float(f) => match verb {
                'v' => self.fmt_float(*f, 'g', -1),
                'g' | 'G' => self.fmt_float(*f, verb, -1),
                'e' | 'E' | 'f' => self.fmt_float(*f, verb, 6),
                'F' => self.fmt_float(*f, 'f', 6),
                _ => self.bad_verb(Some(v), verb),
            },
            Value::Str(s) | Value::Number(s) => self.fmt_string(v, s, verb),
            Value::List(l) => {
                self.buf.push('[');
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.print_value(item, verb, depth + 1);
                }
                self.buf.push(']');
            }
            Value::Map(m) => {
                self.buf.push_str("map[");
                for (i, (k, item)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.fmt_string(&Value::str(k.as_str()), k, verb);
                    self.buf.push(':');
                    self.print_value(item, verb, depth + 1);
                }
                self.buf.push(']');
            }
            Value::Struct(_, None) => match verb {
                'v' => self.pad("<nil>"),
                _ => self.bad_verb(Some(v), verb),
            },
            Value::Struct(t, Some(fields)) => {
                self.buf.push('&');
                self.print_struct(t.fields, fields, verb, depth);
            }
        }
    }

    fn print_struct(&mut self, names: &[&str], fields: &[Value], verb: char, depth: usize) {
        self.buf.push('{');
        for (i, (name, field)) in names.iter().zip(fields).enumerate() {
            if i > 0 {
                self.buf.push(' ');
            }
            if self.f.plus_v {
                self.buf.push_str(name);
                self.buf.push(':');
            }
            self.print_value(field, verb, depth + 1);
        }
        self.buf.push('}');
    }

    /// What `{{ value }}` writes: Go's `printValue` (pointers are dereferenced and a
    /// missing value prints as `<no value>`) followed by `fmt.Fprint`.
    pub(crate) fn print_template_value(&mut self, v: &Value) {
        match v {
            Value::Invalid => self.buf.push_str("<no value>"),
            Value::Struct(t, Some(fields)) => self.print_struct(t.fields, fields, 'v', 0),
            _ => self.print_arg(v, 'v'),
        }
    }
}

/// `fmt.Sprint`; `None` when the result would exceed the string size limit.
pub(crate) fn sprint(args: &[Value]) -> Option<String> {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = arg.string_kind().is_some();
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(arg, 'v');
        prev_string = is_string;
        if p.buf.len() > MAX_STRING {
            return None;
        }
    }
    Some(p.buf)
}

/// `fmt.Sprintln`; `None` when the result would exceed the string size limit.
pub(crate) fn sprintln(args: &[Value]) -> Option<String> {
    let mut p = Printer::default();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(arg, 'v');
        if p.buf.len() > MAX_STRING {
            return None;
        }
    }
    p.buf.push('\n');
    Some(p.buf)
}

/// Go's `parsenum`: (number, present, next index).
fn parse_num(s: &[u8], start: usize) -> (usize, bool, usize) {
    let mut num = 0usize;
    let mut i = start;
    let mut isnum = false;
    while i < s.len() && s[i].is_ascii_digit() {
        if num > MAX_WIDTH {
            return (0, false, s.len());
        }
        num = num * 10 + (s[i] - b'0') as usize;
        isnum = true;
        i += 1;
    }
    (num, isnum, i)
}

fn int_from_arg(args: &[Value], arg_num: usize) -> (Option<i64>, usize) {
    match args.get(arg_num) {
        Some(v) => {
            let n = match v {
                Value::Int(i) => Some(*i),
                Value::Uint(u) => i64::try_from(*u).ok(),
                _ => None,
            };
            (
                n.filter(|n| n.unsigned_abs() <= MAX_WIDTH as u64),
                arg_num + 1,
            )
        }
        None => (None, arg_num),
    }
}

/// Go's `argNumber`: an explicit `[n]` index at `i`.
fn arg_number(p: &mut PrintfState, format: &[u8], i: usize, num_args: usize) -> (usize, bool) {
    if format.get(i) != Some(&b'[') {
        return (i, false);
    }
    p.reordered = true;
    let Some(close) = format[i..].iter().position(|&b| b == b']') else {
        p.good_arg_num = false;
        return (i + 1, false);
    };
    let (n, ok, end) = parse_num(format, i + 1);
    if !ok || end != i + close {
        p.good_arg_num = false;
        return (i + close + 1, false);
    }
    if n >= 1 && n - 1 < num_args {
        p.arg_num = n - 1;
        return (i + close + 1, true);
    }
    p.good_arg_num = false;
    (i + close + 1, true)
}

struct PrintfState {
    arg_num: usize,
    reordered: bool,
    good_arg_num: bool,
}

/// `fmt.Sprintf`; `None` when the result would exceed the string size limit.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> Option<String> {
    let mut p = Printer::default();
    let mut st = PrintfState {
        arg_num: 0,
        reordered: false,
        good_arg_num: true,
    };
    let fb = format.as_bytes();
    let end = fb.len();
    let mut i = 0;
    while i < end {
        if p.buf.len() > MAX_STRING {
            return None;
        }
        st.good_arg_num = true;
        let last = i;
        while i < end && fb[i] != b'%' {
            i += 1;
        }
        if i > last {
            p.buf.push_str(&format[last..i]);
        }
        if i >= end {
            break;
        }
        i += 1;
        p.f = Flags::default();
        while i < end {
            match fb[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => break,
            }
            i += 1;
        }
        let (ni, mut after_index) = arg_number(&mut st, fb, i, args.len());
        i = ni;
        if i < end && fb[i] == b'*' {
            i += 1;
            let (w, next) = int_from_arg(args, st.arg_num);
            st.arg_num = next;
            match w {
                Some(w) if w < 0 => {
                    p.f.wid = Some(w.unsigned_abs() as usize);
                    p.f.minus = true;
                    p.f.zero = false;
                }
                Some(w) => p.f.wid = Some(w as usize),
                None => p.buf.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            let (w, present, next) = parse_num(fb, i);
            i = next;
            p.f.wid = present.then_some(w);
            if after_index && present {
                st.good_arg_num = false;
            }
        }
        if i + 1 < end && fb[i] == b'.' {
            i += 1;
            if after_index {
                st.good_arg_num = false;
            }
            let (ni, ai) = arg_number(&mut st, fb, i, args.len());
            i = ni;
            after_index = ai;
            if i < end && fb[i] == b'*' {
                i += 1;
                let (w, next) = int_from_arg(args, st.arg_num);
                st.arg_num = next;
                match w {
                    Some(w) if w >= 0 => p.f.prec = Some(w as usize),
                    Some(_) => {
                        p.f.prec = None;
                        p.buf.push_str("%!(BADPREC)");
                    }
                    None => p.buf.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (w, present, next) = parse_num(fb, i);
                i = next;
                p.f.prec = Some(if present { w } else { 0 });
            }
        }
        if !after_index {
            let (ni, ai) = arg_number(&mut st, fb, i, args.len());
            i = ni;
            after_index = ai;
        }
        let _ = after_index;
        if i >= end {
            p.buf.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('%');
        i += verb.len_utf8();
        if verb == '%' {
            p.buf.push('%');
        } else if !st.good_arg_num {
            p.buf.push_str("%!");
            p.buf.push(verb);
            p.buf.push_str("(BADINDEX)");
        } else if st.arg_num >= args.len() {
            p.buf.push_str("%!");
            p.buf.push(verb);
            p.buf.push_str("(MISSING)");
        } else {
            if verb == 'v' {
                p.f.sharp_v = p.f.sharp;
                p.f.sharp = false;
                p.f.plus_v = p.f.plus;
                p.f.plus = false;
            }
            p.print_arg(&args[st.arg_num], verb);
            st.arg_num += 1;
        }
    }
    if !st.reordered && st.arg_num < args.len() {
        p.f = Flags::default();
        p.buf.push_str("%!(EXTRA ");
        for (k, arg) in args[st.arg_num..].iter().enumerate() {
            if k > 0 {
                p.buf.push_str(", ");
            }
            if matches!(arg, Value::Invalid | Value::Nil) {
                p.buf.push_str("<nil>");
            } else {
                p.buf.push_str(&arg.type_name());
                p.buf.push('=');
                p.print_arg(arg, 'v');
            }
        }
        p.buf.push(')');
    }
    (p.buf.len() <= MAX_STRING).then_some(p.buf)
}
