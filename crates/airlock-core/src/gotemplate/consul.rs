//! The pure consul-template (openbao-template) helper functions: strings, encodings,
//! parsing, JSON, membership tests and math, with Go's argument order (the piped value
//! comes last) and Go's error texts.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::Digest;

use super::funcs::{arg, arg_str, quote_value, F};
use super::json::marshal;
use super::value::{from_json, Elem, NumMode, Value};
use super::MAX_STRING;

/// Most elements a list-producing function (`split`, `loop`, ...) may create.
pub(crate) const MAX_LIST: usize = 1 << 20;
/// Largest input `parseJSON` accepts.
const MAX_PARSE_JSON: usize = 8 << 20;

fn too_large(what: &str) -> String {
    format!("{what}: result exceeds the template string size limit")
}

pub(crate) fn call_consul(f: F, args: &[Value]) -> Result<Value, String> {
    let s = |i| arg_str(args, i);
    Ok(match f {
        F::Base64Encode => {
            Value::str(base64::engine::general_purpose::STANDARD.encode(s(0).as_bytes()))
        }
        F::Base64UrlEncode => {
            Value::str(base64::engine::general_purpose::URL_SAFE.encode(s(0).as_bytes()))
        }
        F::Base64Decode => {
            Value::str(b64_decode(&s(0), false).map_err(|e| format!("base64Decode: {e}"))?)
        }
        F::Base64UrlDecode => {
            Value::str(b64_decode(&s(0), true).map_err(|e| format!("base64URLDecode: {e}"))?)
        }
        F::Contains => Value::Bool(contained(&arg(args, 1), &arg(args, 0))),
        F::In => Value::Bool(contained(&arg(args, 0), &arg(args, 1))),
        F::ContainsAll | F::ContainsAny | F::ContainsNone | F::ContainsNotAll => {
            let (ret_true, invert) = match f {
                F::ContainsAll => (true, true),
                F::ContainsAny => (false, false),
                F::ContainsNone => (true, false),
                _ => (false, true),
            };
            let l = arg(args, 1);
            let items = match arg(args, 0) {
                Value::List(v) => v.items.clone(),
                _ => Vec::new(),
            };
            let hit = items.iter().any(|x| contained(&l, x) != invert);
            Value::Bool(if hit { !ret_true } else { ret_true })
        }
        F::Indent => indent(args)?,
        F::Loop => do_loop(args)?,
        F::Join => {
            let sep = s(0);
            let parts: Vec<String> = match arg(args, 1) {
                Value::List(l) => l
                    .items
                    .iter()
                    .map(|v| v.string_kind().unwrap_or("").to_string())
                    .collect(),
                _ => Vec::new(),
            };
            let total = parts.iter().map(String::len).sum::<usize>() + sep.len() * parts.len();
            if total > MAX_STRING {
                return Err(too_large("join"));
            }
            Value::str(parts.join(&sep))
        }
        F::Trim => {
            let cutset = s(0);
            Value::str(s(1).trim_matches(|c| cutset.contains(c)))
        }
        F::TrimPrefix => {
            let (p, v) = (s(0), s(1));
            Value::str(v.strip_prefix(&*p).unwrap_or(&v))
        }
        F::TrimSuffix => {
            let (p, v) = (s(0), s(1));
            Value::str(v.strip_suffix(&*p).unwrap_or(&v))
        }
        F::TrimSpace => Value::str(s(0).trim()),
        F::ParseBool => parse_bool(&s(0))?,
        F::ParseFloat => parse_float(&s(0))?,
        F::ParseInt => Value::Int(parse_int(&s(0))?),
        F::ParseUint => parse_uint(&s(0))?,
        F::ParseJson => parse_json(&s(0))?,
        F::ReplaceAll => replace_all(&s(0), &s(1), &s(2))?,
        F::Sha256Hex => Value::str(hex(&sha2::Sha256::digest(s(0).as_bytes()))),
        F::HmacSha256Hex => Value::str(hex(&hmac_sha256(s(1).as_bytes(), s(0).as_bytes()))),
        F::ToLower => Value::str(map_chars(&s(0), false)),
        F::ToUpper => Value::str(map_chars(&s(0), true)),
        F::ToTitle => Value::str(to_title(&s(0))),
        F::ToJson => {
            Value::str(marshal(&arg(args, 0), true, false).map_err(|e| format!("toJSON: {e}"))?)
        }
        F::ToJsonPretty => Value::str(
            marshal(&arg(args, 0), true, true).map_err(|e| format!("toJSONPretty: {e}"))?,
        ),
        F::ToUnescapedJson => Value::str(
            marshal(&arg(args, 0), false, false).map_err(|e| format!("toUnescapedJSON: {e}"))?,
        ),
        F::ToUnescapedJsonPretty => Value::str(
            marshal(&arg(args, 0), false, true)
                .map_err(|e| format!("toUnescapedJSONPretty: {e}"))?,
        ),
        F::Split => {
            let parts = split(&s(0), s(1).trim())?;
            Value::list(parts.into_iter().map(Value::str).collect(), Elem::Str)
        }
        F::SplitToMap => {
            let mut m = BTreeMap::new();
            for part in split(&s(0), s(2).trim())? {
                if let Some((k, v)) = part.split_once(&*s(1)) {
                    m.insert(k.to_string(), Value::str(v));
                }
            }
            Value::map(m, Elem::Str)
        }
        F::Add | F::Subtract | F::Multiply | F::Divide | F::Modulo | F::Minimum | F::Maximum => {
            math(f, &arg(args, 0), &arg(args, 1))?
        }
        _ => return Err("internal error: not a consul-template function".into()),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        sha2::Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let mut inner = sha2::Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = sha2::Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
    outer.update(inner);
    outer.finalize().to_vec()
}

/// Go's `base64.StdEncoding`/`URLEncoding.DecodeString`: padded, lenient about
/// trailing bits, newlines ignored.
fn b64_decode(s: &str, url: bool) -> Result<String, String> {
    let cfg = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical);
    let alphabet = if url {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    let engine = GeneralPurpose::new(alphabet, cfg);
    let cleaned: String = s.chars().filter(|&c| c != '\r' && c != '\n').collect();
    match engine.decode(cleaned.as_bytes()) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _)
                | base64::DecodeError::InvalidLastSymbol(i, _) => i,
                _ => cleaned.len() / 4 * 4,
            };
            Err(format!("illegal base64 data at input byte {at}"))
        }
    }
}

/// consul-template's `in(l, v)`: list membership or substring.
fn contained(l: &Value, v: &Value) -> bool {
    match l {
        Value::List(list) => list.items.iter().any(|e| match (e, v) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) | (Value::Number(a), Value::Number(b)) => a == b,
            _ => false,
        }),
        Value::Str(s) => matches!(v, Value::Str(x) if s.contains(&**x)),
        Value::Number(s) => matches!(v, Value::Number(x) if s.contains(&**x)),
        _ => false,
    }
}

fn indent(args: &[Value]) -> Result<Value, String> {
    let spaces = match arg(args, 0) {
        Value::Int(n) => n,
        _ => 0,
    };
    let Ok(spaces) = usize::try_from(spaces) else {
        return Err("indent value must be a positive integer".into());
    };
    let s = arg_str(args, 1);
    let mut out = String::new();
    let mut at_line_start = true;
    for c in s.chars() {
        if at_line_start && c != '\n' {
            if out.len().saturating_add(spaces) > MAX_STRING {
                return Err(too_large("indent"));
            }
            out.extend(std::iter::repeat_n(' ', spaces));
        }
        out.push(c);
        at_line_start = c == '\n';
    }
    Ok(Value::str(out))
}

fn do_loop(args: &[Value]) -> Result<Value, String> {
    let to64 = |v: &Value| -> Result<i64, String> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Uint(u) => Ok(*u as i64),
            Value::Str(s) | Value::Number(s) => parse_int(s),
            other => Err(format!("loop: bad argument type: {}", other.type_name())),
        }
    };
    let (start, stop) = match args {
        [stop] => (0, to64(stop)?),
        [start, stop] => (to64(start)?, to64(stop)?),
        _ => {
            return Err(format!(
                "loop: wrong number of arguments, expected 1 or 2, but got {}",
                args.len()
            ))
        }
    };
    let count = stop.saturating_sub(start).max(0);
    if count as u64 > MAX_LIST as u64 {
        return Err(format!(
            "loop: {count} iterations exceed the limit of {MAX_LIST}"
        ));
    }
    Ok(Value::list(
        (start..stop).map(Value::Int).collect(),
        Elem::Any,
    ))
}

fn split(sep: &str, s: &str) -> Result<Vec<String>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let pieces = if sep.is_empty() {
        s.chars().count()
    } else {
        s.matches(sep).count() + 1
    };
    if pieces > MAX_LIST {
        return Err(format!(
            "split: {pieces} pieces exceed the limit of {MAX_LIST}"
        ));
    }
    Ok(if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(String::from).collect()
    })
}

fn replace_all(from: &str, to: &str, s: &str) -> Result<Value, String> {
    let n = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    let len = s.len() as u128 + n as u128 * to.len() as u128;
    if len > MAX_STRING as u128 {
        return Err(too_large("replaceAll"));
    }
    Ok(Value::str(s.replace(from, to)))
}

/// Go's `strings.ToUpper`/`ToLower`: simple (one-to-one) case mapping.
fn map_chars(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 {
                m.pop().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// `cases.Title(language.Und, cases.NoLower)`: upper-case the first letter of each
/// word, leave the rest alone.
fn to_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if !in_word && c.is_alphabetic() {
            let mut m: Vec<char> = c.to_uppercase().collect();
            if m.len() == 1 {
                out.push(m.pop().unwrap_or(c));
            } else {
                out.extend(m);
            }
        } else {
            out.push(c);
        }
        in_word = c.is_alphanumeric() || c == '_' || c == '\'' || c == '\u{2019}';
    }
    out
}

fn strconv_err(func: &str, s: &str, range: bool) -> String {
    let why = if range {
        "value out of range"
    } else {
        "invalid syntax"
    };
    // Go quotes the input here; it may be a secret, and errors are logged: its length only.
    format!("strconv.{func}: parsing {}: {why}", redacted(s))
}

/// What an error says instead of a value it could not use.
pub(crate) fn redacted(s: &str) -> String {
    format!("(a value of {} bytes)", s.len())
}

fn parse_bool(s: &str) -> Result<Value, String> {
    Ok(Value::Bool(match s {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
        _ => return Err(format!("parseBool: {}", strconv_err("ParseBool", s, false))),
    }))
}

fn digits_only(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn parse_int(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse::<i64>()
        .map_err(|_| format!("parseInt: {}", strconv_err("ParseInt", s, digits_only(s))))
}

fn parse_uint(s: &str) -> Result<Value, String> {
    if s.is_empty() {
        return Ok(Value::Uint(0));
    }
    if s.starts_with('+') {
        return Err(format!("parseUint: {}", strconv_err("ParseUint", s, false)));
    }
    s.parse::<u64>()
        .map(Value::Uint)
        .map_err(|_| format!("parseUint: {}", strconv_err("ParseUint", s, digits_only(s))))
}

fn parse_float(s: &str) -> Result<Value, String> {
    if s.is_empty() {
        return Ok(Value::Float(0.0));
    }
    let lower = s.to_ascii_lowercase();
    let named = matches!(
        lower.trim_start_matches(['+', '-']),
        "inf" | "infinity" | "nan"
    );
    let syntax = || format!("parseFloat: {}", strconv_err("ParseFloat", s, false));
    if !named && lower.contains(['x', 'p', '_', 'i', 'n']) {
        return Err(syntax());
    }
    match s.parse::<f64>() {
        Ok(f) if named || f.is_finite() => Ok(Value::Float(f)),
        Ok(_) => Err(format!(
            "parseFloat: {}",
            strconv_err("ParseFloat", s, true)
        )),
        Err(_) => Err(syntax()),
    }
}

fn parse_json(s: &str) -> Result<Value, String> {
    if s.is_empty() {
        return Ok(Value::map(BTreeMap::new(), Elem::Any));
    }
    if s.len() > MAX_PARSE_JSON {
        return Err(format!(
            "parseJSON: input larger than {MAX_PARSE_JSON} bytes"
        ));
    }
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    from_json(&v, NumMode::Float, 0)
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    U(u64),
    F(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::I(*i)),
        Value::Uint(u) => Some(Num::U(*u)),
        Value::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

impl Num {
    fn value(self) -> Value {
        match self {
            Num::I(i) => Value::Int(i),
            Num::U(u) => Value::Uint(u),
            Num::F(f) => Value::Float(f),
        }
    }

    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::U(u) => u as f64,
            Num::F(f) => f,
        }
    }
}

/// consul-template's math helpers: `f(b, a)` computes `a OP b` (the piped value `a`
/// comes last), keeping Go's result types.
fn math(f: F, bv: &Value, av: &Value) -> Result<Value, String> {
    let name = match f {
        F::Add => "add",
        F::Subtract => "subtract",
        F::Multiply => "multiply",
        F::Divide => "divide",
        F::Modulo => "modulo",
        F::Minimum => "minimum",
        _ => "maximum",
    };
    let unknown = |v: &Value| {
        format!(
            "{name}: unknown type for {} ({})",
            quote_value(v),
            v.type_name()
        )
    };
    let a = num(av).ok_or_else(|| unknown(av))?;
    let b = num(bv).ok_or_else(|| unknown(bv))?;
    if matches!(f, F::Minimum | F::Maximum) {
        let less = a.f() < b.f();
        let greater = a.f() > b.f();
        let pick_a = if f == F::Minimum { less } else { greater };
        return Ok(if pick_a { a.value() } else { b.value() });
    }
    let div0 = || "runtime error: integer divide by zero".to_string();
    Ok(match (a, b) {
        (Num::F(_), _) | (_, Num::F(_)) => {
            if f == F::Modulo {
                return Err(unknown(if matches!(a, Num::F(_)) { av } else { bv }));
            }
            let (x, y) = (a.f(), b.f());
            Value::Float(match f {
                F::Add => x + y,
                F::Subtract => x - y,
                F::Multiply => x * y,
                _ => x / y,
            })
        }
        (Num::U(x), Num::U(y)) => Value::Uint(match f {
            F::Add => x.wrapping_add(y),
            F::Subtract => x.wrapping_sub(y),
            F::Multiply => x.wrapping_mul(y),
            F::Divide => x.checked_div(y).ok_or_else(div0)?,
            _ => x.checked_rem(y).ok_or_else(div0)?,
        }),
        (x, y) => {
            let to_i = |n: Num| match n {
                Num::I(i) => i,
                Num::U(u) => u as i64,
                Num::F(f) => f as i64,
            };
            let (x, y) = (to_i(x), to_i(y));
            if y == 0 && matches!(f, F::Divide | F::Modulo) {
                return Err(div0());
            }
            Value::Int(match f {
                F::Add => x.wrapping_add(y),
                F::Subtract => x.wrapping_sub(y),
                F::Multiply => x.wrapping_mul(y),
                F::Divide => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            })
        }
    })
}
