//! The function table (Go's builtins plus OpenBao agent's consul-template functions),
//! each with its Go signature so arity and argument types are checked as Go checks
//! them, and the Go builtins themselves (`index`, `slice`, `len`, comparisons, ...).

use std::rc::Rc;

use super::gofmt::{sprint, sprintf, sprintln, Printer};
use super::strconv::go_quote;
use super::value::{Elem, Value};

/// A parameter type, as far as templates can tell types apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    /// `interface{}`
    Any,
    /// `reflect.Value` (builtins that take values as they are)
    Value,
    /// No type: the operand of a `(pipeline).Field` chain.
    Untyped,
    Str,
    Int,
    /// `[]string`
    StrList,
    /// `[]interface{}`
    AnyList,
}

impl Ty {
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            Ty::Any => "interface {}",
            Ty::Value => "reflect.Value",
            Ty::Untyped => "<nil>",
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::StrList => "[]string",
            Ty::AnyList => "[]interface {}",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum F {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Html,
    Js,
    UrlQuery,
    Call,
    File,
    Secret,
    Env,
    MustEnv,
    EnvOrDefault,
    ExecuteTemplate,
    Timestamp,
    Base64Decode,
    Base64Encode,
    Base64UrlDecode,
    Base64UrlEncode,
    Contains,
    ContainsAll,
    ContainsAny,
    ContainsNone,
    ContainsNotAll,
    In,
    Indent,
    Loop,
    Join,
    Trim,
    TrimPrefix,
    TrimSuffix,
    TrimSpace,
    ParseBool,
    ParseFloat,
    ParseInt,
    ParseJson,
    ParseUint,
    ReplaceAll,
    Sha256Hex,
    HmacSha256Hex,
    ToLower,
    ToUpper,
    ToTitle,
    ToJson,
    ToJsonPretty,
    ToUnescapedJson,
    ToUnescapedJsonPretty,
    Split,
    SplitToMap,
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Minimum,
    Maximum,
    /// Defined in OpenBao agent but not implemented here: fails when called.
    Unsupported,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Func {
    pub f: F,
    pub fixed: &'static [Ty],
    pub variadic: Option<Ty>,
}

const fn fx(f: F, fixed: &'static [Ty]) -> Func {
    Func {
        f,
        fixed,
        variadic: None,
    }
}

const fn var(f: F, fixed: &'static [Ty], rest: Ty) -> Func {
    Func {
        f,
        fixed,
        variadic: Some(rest),
    }
}

use Ty::{Any, AnyList, Int, Str, StrList, Value as Val};

static TABLE: &[(&str, Func)] = &[
    // Go's text/template builtins.
    ("and", var(F::And, &[Val], Val)),
    ("or", var(F::Or, &[Val], Val)),
    ("not", fx(F::Not, &[Val])),
    ("len", fx(F::Len, &[Val])),
    ("index", var(F::Index, &[Val], Val)),
    ("slice", var(F::Slice, &[Val], Val)),
    ("print", var(F::Print, &[], Any)),
    ("printf", var(F::Printf, &[Str], Any)),
    ("println", var(F::Println, &[], Any)),
    ("eq", var(F::Eq, &[Val], Val)),
    ("ne", fx(F::Ne, &[Val, Val])),
    ("lt", fx(F::Lt, &[Val, Val])),
    ("le", fx(F::Le, &[Val, Val])),
    ("gt", fx(F::Gt, &[Val, Val])),
    ("ge", fx(F::Ge, &[Val, Val])),
    ("html", var(F::Html, &[], Any)),
    ("js", var(F::Js, &[], Any)),
    ("urlquery", var(F::UrlQuery, &[], Any)),
    ("call", var(F::Call, &[Val], Val)),
    // OpenBao agent (openbao-template) functions.
    ("file", fx(F::File, &[Str])),
    ("secret", var(F::Secret, &[], Str)),
    ("env", fx(F::Env, &[Str])),
    ("mustEnv", fx(F::MustEnv, &[Str])),
    ("envOrDefault", fx(F::EnvOrDefault, &[Str, Str])),
    ("executeTemplate", var(F::ExecuteTemplate, &[Str], Any)),
    ("timestamp", var(F::Timestamp, &[], Str)),
    ("base64Decode", fx(F::Base64Decode, &[Str])),
    ("base64Encode", fx(F::Base64Encode, &[Str])),
    ("base64URLDecode", fx(F::Base64UrlDecode, &[Str])),
    ("base64URLEncode", fx(F::Base64UrlEncode, &[Str])),
    ("contains", fx(F::Contains, &[Any, Any])),
    ("containsAll", fx(F::ContainsAll, &[AnyList, Any])),
    ("containsAny", fx(F::ContainsAny, &[AnyList, Any])),
    ("containsNone", fx(F::ContainsNone, &[AnyList, Any])),
    ("containsNotAll", fx(F::ContainsNotAll, &[AnyList, Any])),
    ("in", fx(F::In, &[Any, Any])),
    ("indent", fx(F::Indent, &[Int, Str])),
    ("loop", var(F::Loop, &[], Any)),
    ("join", fx(F::Join, &[Str, StrList])),
    ("trim", fx(F::Trim, &[Str, Str])),
    ("trimPrefix", fx(F::TrimPrefix, &[Str, Str])),
    ("trimSuffix", fx(F::TrimSuffix, &[Str, Str])),
    ("trimSpace", fx(F::TrimSpace, &[Str])),
    ("parseBool", fx(F::ParseBool, &[Str])),
    ("parseFloat", fx(F::ParseFloat, &[Str])),
    ("parseInt", fx(F::ParseInt, &[Str])),
    ("parseJSON", fx(F::ParseJson, &[Str])),
    ("parseUint", fx(F::ParseUint, &[Str])),
    ("replaceAll", fx(F::ReplaceAll, &[Str, Str, Str])),
    ("sha256Hex", fx(F::Sha256Hex, &[Str])),
    ("hmacSHA256Hex", fx(F::HmacSha256Hex, &[Str, Str])),
    ("toLower", fx(F::ToLower, &[Str])),
    ("toUpper", fx(F::ToUpper, &[Str])),
    ("toTitle", fx(F::ToTitle, &[Str])),
    ("toJSON", fx(F::ToJson, &[Any])),
    ("toJSONPretty", fx(F::ToJsonPretty, &[Any])),
    ("toUnescapedJSON", fx(F::ToUnescapedJson, &[Any])),
    (
        "toUnescapedJSONPretty",
        fx(F::ToUnescapedJsonPretty, &[Any]),
    ),
    ("split", fx(F::Split, &[Str, Str])),
    ("splitToMap", fx(F::SplitToMap, &[Str, Str, Str])),
    ("add", fx(F::Add, &[Any, Any])),
    ("subtract", fx(F::Subtract, &[Any, Any])),
    ("multiply", fx(F::Multiply, &[Any, Any])),
    ("divide", fx(F::Divide, &[Any, Any])),
    ("modulo", fx(F::Modulo, &[Any, Any])),
    ("minimum", fx(F::Minimum, &[Any, Any])),
    ("maximum", fx(F::Maximum, &[Any, Any])),
];

/// OpenBao agent functions this implementation does not provide. Templates that merely
/// mention them still parse (as with `bao agent`); calling one is an execution error.
static UNSUPPORTED: &[&str] = &[
    "secrets",
    "pkiCert",
    "scratch",
    "explodeMap",
    "mergeMap",
    "mergeMapWithOverride",
    "parseYAML",
    "plugin",
    "regexReplaceAll",
    "regexMatch",
    "md5sum",
    "toTOML",
    "toYAML",
    "sockaddr",
    "writeToFile",
    "spew_dump",
    "spew_printf",
    "spew_sdump",
    "spew_sprintf",
];

pub(crate) fn lookup(name: &str) -> Option<Func> {
    if let Some((_, f)) = TABLE.iter().find(|(n, _)| *n == name) {
        return Some(*f);
    }
    if UNSUPPORTED.contains(&name) || (name.starts_with("sprig_") && name.len() > 6) {
        return Some(var(F::Unsupported, &[], Any));
    }
    None
}

pub(crate) fn is_defined(name: &str) -> bool {
    lookup(name).is_some()
}

/// The `i`th argument (arity is checked before any function runs).
pub(crate) fn arg(args: &[Value], i: usize) -> Value {
    args.get(i).cloned().unwrap_or(Value::Invalid)
}

/// The `i`th argument as a string (string parameters are type-checked before calls).
pub(crate) fn arg_str(args: &[Value], i: usize) -> Rc<str> {
    match args.get(i) {
        Some(Value::Str(s)) => s.clone(),
        _ => Rc::from(""),
    }
}

/// Go's builtins that need neither the host nor the template set.
pub(crate) fn call_builtin(f: F, args: &[Value]) -> Result<Value, String> {
    let too_large = || "result exceeds the template string size limit".to_string();
    match f {
        F::Not => Ok(Value::Bool(!arg(args, 0).truth())),
        F::Len => length(&arg(args, 0)),
        F::Index => index(args),
        F::Slice => slice(args),
        F::Print => sprint(args).map(Value::str).ok_or_else(too_large),
        F::Println => sprintln(args).map(Value::str).ok_or_else(too_large),
        F::Printf => sprintf(&arg_str(args, 0), args.get(1..).unwrap_or(&[]))
            .map(Value::str)
            .ok_or_else(too_large),
        F::Eq => eq(&arg(args, 0), args.get(1..).unwrap_or(&[])).map(Value::Bool),
        F::Ne => eq(&arg(args, 0), &[arg(args, 1)]).map(|b| Value::Bool(!b)),
        F::Lt => lt(&arg(args, 0), &arg(args, 1)).map(Value::Bool),
        F::Le => le(&arg(args, 0), &arg(args, 1)).map(Value::Bool),
        F::Gt => le(&arg(args, 0), &arg(args, 1)).map(|b| Value::Bool(!b)),
        F::Ge => lt(&arg(args, 0), &arg(args, 1)).map(|b| Value::Bool(!b)),
        F::Html => Ok(Value::str(html_escape(&eval_args(args)?))),
        F::Js => Ok(Value::str(js_escape(&eval_args(args)?))),
        F::UrlQuery => Ok(Value::str(query_escape(&eval_args(args)?))),
        F::Call => match arg(args, 0).dig() {
            Value::Invalid => Err("call of nil".into()),
            v => Err(format!("non-function of type {}", v.type_name())),
        },
        _ => Err("internal error: not a builtin".into()),
    }
}

/// `%v` of a value, for error messages.
pub(crate) fn show(v: &Value) -> String {
    let mut p = Printer::default();
    p.print_arg(v, 'v');
    p.buf
}

fn length(v: &Value) -> Result<Value, String> {
    let n = match v {
        Value::Invalid => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        Value::Nil | Value::Struct(_, None) => return Err("len of nil pointer".into()),
        Value::Str(s) | Value::Number(s) => s.len(),
        Value::List(l) => l.items.len(),
        Value::Map(m) => m.entries.len(),
        Value::Struct(t, Some(_)) => return Err(format!("len of type {}", t.name)),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn index_arg(idx: &Value, cap: usize) -> Result<usize, String> {
    let x = match idx {
        Value::Int(i) => *i,
        Value::Uint(u) => *u as i64,
        Value::Invalid | Value::Nil => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ))
        }
    };
    match usize::try_from(x) {
        Ok(u) if u <= cap => Ok(u),
        _ => Err(format!("index out of range: {x}")),
    }
}

fn index(args: &[Value]) -> Result<Value, String> {
    let mut item = arg(args, 0).dig();
    if matches!(item, Value::Invalid) {
        return Err("index of untyped nil".into());
    }
    for idx in args.iter().skip(1) {
        let idx = idx.clone().dig();
        item = match item {
            Value::Nil | Value::Struct(_, None) => return Err("index of nil pointer".into()),
            Value::List(l) => {
                let x = index_arg(&idx, l.items.len())?;
                l.items
                    .get(x)
                    .cloned()
                    .ok_or("reflect: slice index out of range")?
            }
            Value::Str(s) | Value::Number(s) => {
                let x = index_arg(&idx, s.len())?;
                let b = s
                    .as_bytes()
                    .get(x)
                    .ok_or("reflect: string index out of range")?;
                Value::Uint(u64::from(*b))
            }
            Value::Map(m) => {
                let key = match &idx {
                    Value::Str(k) => k.to_string(),
                    Value::Invalid | Value::Nil => {
                        return Err("value is nil; should be of type string".into())
                    }
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ))
                    }
                };
                m.entries
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| m.zero_elem())
            }
            Value::Struct(t, Some(_)) => {
                return Err(format!("can't index item of type {}", t.name))
            }
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(args: &[Value]) -> Result<Value, String> {
    let item = arg(args, 0).dig();
    if matches!(item, Value::Invalid) {
        return Err("slice of untyped nil".into());
    }
    let idxs = args.get(1..).unwrap_or(&[]);
    if idxs.len() > 3 {
        return Err(format!("too many slice indexes: {}", idxs.len()));
    }
    let len = match &item {
        Value::Str(s) | Value::Number(s) => {
            if idxs.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.items.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, v) in idxs.iter().enumerate() {
        idx[i] = index_arg(&v.clone().dig(), len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if idxs.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    let (i, j) = (idx[0], idx[1]);
    Ok(match item {
        Value::Str(s) => Value::str(String::from_utf8_lossy(
            s.as_bytes().get(i..j).unwrap_or(&[]),
        )),
        Value::Number(s) => {
            Value::Number(String::from_utf8_lossy(s.as_bytes().get(i..j).unwrap_or(&[])).into())
        }
        Value::List(l) => Value::list(l.items.get(i..j).unwrap_or(&[]).to_vec(), l.elem),
        other => other,
    })
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Basic {
    Bool,
    Int,
    Uint,
    Float,
    Str,
}

fn basic_kind(v: &Value) -> Option<Basic> {
    match v {
        Value::Bool(_) => Some(Basic::Bool),
        Value::Int(_) => Some(Basic::Int),
        Value::Uint(_) => Some(Basic::Uint),
        Value::Float(_) => Some(Basic::Float),
        Value::Str(_) | Value::Number(_) => Some(Basic::Str),
        _ => None,
    }
}

fn is_nilish(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil | Value::Struct(_, None) => true,
        Value::List(l) => l.nil,
        Value::Map(m) => m.nil,
        _ => false,
    }
}

fn eq(a1: &Value, rest: &[Value]) -> Result<bool, String> {
    let v1 = a1.clone().dig();
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(&v1);
    for a in rest {
        let v2 = a.clone().dig();
        let k2 = basic_kind(&v2);
        let truth = if k1 != k2 {
            match (&v1, &v2) {
                (Value::Int(i), Value::Uint(u)) => *i >= 0 && *i as u64 == *u,
                (Value::Uint(u), Value::Int(i)) => *i >= 0 && *u == *i as u64,
                _ => {
                    if !matches!(v1, Value::Invalid) && !matches!(v2, Value::Invalid) {
                        return Err("incompatible types for comparison".into());
                    }
                    false
                }
            }
        } else {
            match (&v1, &v2) {
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Int(a), Value::Int(b)) => a == b,
                (Value::Uint(a), Value::Uint(b)) => a == b,
                (Value::Float(a), Value::Float(b)) => a == b,
                _ if k1 == Some(Basic::Str) => v1.string_kind() == v2.string_kind(),
                _ => {
                    let (n1, n2) = (is_nilish(&v1), is_nilish(&v2));
                    if n1 || n2 {
                        n1 == n2
                    } else if let (Value::Struct(_, Some(a)), Value::Struct(_, Some(b))) =
                        (&v1, &v2)
                    {
                        Rc::ptr_eq(a, b)
                    } else {
                        return Err(format!(
                            "non-comparable type {}: {}",
                            show(&v2),
                            v2.type_name()
                        ));
                    }
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a1: &Value, a2: &Value) -> Result<bool, String> {
    let (v1, v2) = (a1.clone().dig(), a2.clone().dig());
    let bad_type = || "invalid type for comparison".to_string();
    let k1 = basic_kind(&v1).ok_or_else(bad_type)?;
    let k2 = basic_kind(&v2).ok_or_else(bad_type)?;
    Ok(match (&v1, &v2) {
        (Value::Int(i), Value::Uint(u)) => *i < 0 || (*i as u64) < *u,
        (Value::Uint(u), Value::Int(i)) => *i >= 0 && *u < *i as u64,
        _ if k1 != k2 => return Err("incompatible types for comparison".into()),
        (Value::Int(a), Value::Int(b)) => a < b,
        (Value::Uint(a), Value::Uint(b)) => a < b,
        (Value::Float(a), Value::Float(b)) => a < b,
        _ if k1 == Basic::Str => v1.string_kind() < v2.string_kind(),
        _ => return Err(bad_type()),
    })
}

fn le(a1: &Value, a2: &Value) -> Result<bool, String> {
    if lt(a1, a2)? {
        return Ok(true);
    }
    eq(a1, std::slice::from_ref(a2))
}

/// text/template's `evalArgs`: one string as is, anything else through `fmt.Sprint`.
fn eval_args(args: &[Value]) -> Result<String, String> {
    if let [Value::Str(s)] = args {
        return Ok(s.to_string());
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Invalid | Value::Nil => Value::str("<no value>"),
            other => other.clone(),
        })
        .collect();
    sprint(&printable).ok_or_else(|| "result exceeds the template string size limit".into())
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || super::strconv::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An empty `[]string` or `[]interface{}` for nil arguments.
pub(crate) fn nil_list(elem: Elem) -> Value {
    Value::List(Rc::new(super::value::List {
        items: Vec::new(),
        elem,
        nil: true,
    }))
}

/// For error messages that quote a value the way Go's `%q` would.
pub(crate) fn quote_value(v: &Value) -> String {
    match v {
        Value::Invalid | Value::Nil => "<invalid reflect.Value>".into(),
        _ => match v.string_kind() {
            Some(s) => go_quote(s),
            None => show(v),
        },
    }
}
