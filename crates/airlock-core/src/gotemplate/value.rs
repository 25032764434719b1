//! Template values: the handful of Go types a consul-template template meets, modelled
//! closely enough that printing, truth, comparison and type errors match Go.
//!
//! - `Invalid` is Go's zero `reflect.Value` ("no value": a missing key, nil data).
//! - `Nil` is a nil `interface{}` (JSON `null`, or a missing key under
//!   `missingkey=zero`, which consul-template uses).
//! - `Number` is `json.Number`: secret data is decoded with `UseNumber`, so numbers are
//!   strings to Go (truthy when non-empty, compared as strings, printed verbatim).
//! - `Struct` is a pointer to one of consul-template's structs (`*dependency.Secret`).

use std::collections::BTreeMap;
use std::rc::Rc;

/// Deepest JSON nesting converted into template values.
pub(crate) const MAX_VALUE_DEPTH: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    /// `interface{}` elements.
    Any,
    /// `string` elements.
    Str,
}

#[derive(Clone, Debug)]
pub(crate) struct List {
    pub items: Vec<Value>,
    pub elem: Elem,
    /// A nil slice (`null` in JSON output).
    pub nil: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Map {
    pub entries: BTreeMap<String, Value>,
    pub elem: Elem,
    pub nil: bool,
}

#[derive(Debug)]
pub(crate) struct StructType {
    /// Go type name without the pointer star, e.g. `dependency.Secret`.
    pub name: &'static str,
    pub fields: &'static [&'static str],
}

pub(crate) static SECRET: StructType = StructType {
    name: "dependency.Secret",
    fields: &[
        "RequestID",
        "LeaseID",
        "LeaseDuration",
        "Renewable",
        "Data",
        "Warnings",
        "Auth",
        "WrapInfo",
    ],
};

pub(crate) static SECRET_AUTH: StructType = StructType {
    name: "dependency.SecretAuth",
    fields: &[
        "ClientToken",
        "Accessor",
        "Policies",
        "Metadata",
        "LeaseDuration",
        "Renewable",
    ],
};

pub(crate) static SECRET_WRAP_INFO: StructType = StructType {
    name: "dependency.SecretWrapInfo",
    fields: &["Token", "TTL", "CreationTime", "WrappedAccessor"],
};

#[derive(Clone, Debug)]
pub(crate) enum Value {
    Invalid,
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Number(Rc<str>),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
    /// A pointer to a struct; `None` is a nil pointer.
    Struct(&'static StructType, Option<Rc<Vec<Value>>>),
}

impl Value {
    pub(crate) fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub(crate) fn list(items: Vec<Value>, elem: Elem) -> Value {
        Value::List(Rc::new(List {
            items,
            elem,
            nil: false,
        }))
    }

    pub(crate) fn map(entries: BTreeMap<String, Value>, elem: Elem) -> Value {
        Value::Map(Rc::new(Map {
            entries,
            elem,
            nil: false,
        }))
    }

    /// Go's type string, as `%T` and error messages print it.
    pub(crate) fn type_name(&self) -> String {
        match self {
            Value::Invalid | Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Uint(_) => "uint64".into(),
            Value::Float(_) => "float64".into(),
            Value::Number(_) => "json.Number".into(),
            Value::Str(_) => "string".into(),
            Value::List(l) => match l.elem {
                Elem::Any => "[]interface {}".into(),
                Elem::Str => "[]string".into(),
            },
            Value::Map(m) => match m.elem {
                Elem::Any => "map[string]interface {}".into(),
                Elem::Str => "map[string]string".into(),
            },
            Value::Struct(t, _) => format!("*{}", t.name),
        }
    }

    /// Go's `isTrue` after `indirectInterface`.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Number(s) | Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Struct(_, p) => p.is_some(),
        }
    }

    /// What a pipeline stage leaves behind: an `interface{}` result is unwrapped, so a
    /// nil interface becomes "no value".
    pub(crate) fn dig(self) -> Value {
        match self {
            Value::Nil => Value::Invalid,
            v => v,
        }
    }

    /// The string behind a Go string kind (`string` or `json.Number`).
    pub(crate) fn string_kind(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Number(s) => Some(s),
            _ => None,
        }
    }
}

impl Map {
    /// `reflect.Zero` of the element type: what a missing key reads as.
    pub(crate) fn zero_elem(&self) -> Value {
        match self.elem {
            Elem::Any => Value::Nil,
            Elem::Str => Value::str(""),
        }
    }
}

/// How JSON numbers become template values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumMode {
    /// `json.Number` (the Vault API client decodes with `UseNumber`).
    JsonNumber,
    /// `float64` (plain `json.Unmarshal`, as `parseJSON` does).
    Float,
}

/// Converts decoded JSON into a template value.
pub(crate) fn from_json(
    v: &serde_json::Value,
    mode: NumMode,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!("JSON nested deeper than {MAX_VALUE_DEPTH} levels"));
    }
    Ok(match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match mode {
            NumMode::JsonNumber => Value::Number(n.to_string().into()),
            NumMode::Float => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::str(s.as_str()),
        serde_json::Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| from_json(x, mode, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Value::list(items, Elem::Any)
        }
        serde_json::Value::Object(o) => {
            let mut entries = BTreeMap::new();
            for (k, x) in o {
                entries.insert(k.clone(), from_json(x, mode, depth + 1)?);
            }
            Value::map(entries, Elem::Any)
        }
    })
}

fn present<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn str_field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Value {
    match present(obj, key) {
        Some(serde_json::Value::String(s)) => Value::str(s.as_str()),
        Some(other) => Value::str(other.to_string()),
        None => Value::str(""),
    }
}

fn int_field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Value {
    let n = present(obj, key).and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    });
    Value::Int(n.unwrap_or(0))
}

fn bool_field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Value {
    Value::Bool(present(obj, key).and_then(|v| v.as_bool()).unwrap_or(false))
}

fn strings_field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Value {
    match present(obj, key) {
        Some(serde_json::Value::Array(a)) => {
            let items = a
                .iter()
                .map(|x| match x {
                    serde_json::Value::String(s) => Value::str(s.as_str()),
                    other => Value::str(other.to_string()),
                })
                .collect();
            Value::list(items, Elem::Str)
        }
        _ => Value::List(Rc::new(List {
            items: Vec::new(),
            elem: Elem::Str,
            nil: true,
        })),
    }
}

fn map_field(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    elem: Elem,
) -> Result<Value, String> {
    match present(obj, key) {
        Some(serde_json::Value::Object(o)) => {
            let mut entries = BTreeMap::new();
            for (k, x) in o {
                let v = match (elem, x) {
                    (Elem::Any, _) => from_json(x, NumMode::JsonNumber, 1)?,
                    (Elem::Str, serde_json::Value::String(s)) => Value::str(s.as_str()),
                    (Elem::Str, other) => Value::str(other.to_string()),
                };
                entries.insert(k.clone(), v);
            }
            Ok(Value::map(entries, elem))
        }
        _ => Ok(Value::Map(Rc::new(Map {
            entries: BTreeMap::new(),
            elem,
            nil: true,
        }))),
    }
}

/// Builds a `*dependency.Secret` from the host's JSON rendering of it.
pub(crate) fn secret_from_json(v: &serde_json::Value) -> Result<Value, String> {
    let Some(obj) = v.as_object() else {
        return Err("the secret is not a JSON object".into());
    };
    let auth = match present(obj, "Auth").and_then(|a| a.as_object()) {
        Some(a) => Value::Struct(
            &SECRET_AUTH,
            Some(Rc::new(vec![
                str_field(a, "ClientToken"),
                str_field(a, "Accessor"),
                strings_field(a, "Policies"),
                map_field(a, "Metadata", Elem::Str)?,
                int_field(a, "LeaseDuration"),
                bool_field(a, "Renewable"),
            ])),
        ),
        None => Value::Struct(&SECRET_AUTH, None),
    };
    let wrap = match present(obj, "WrapInfo").and_then(|a| a.as_object()) {
        Some(w) => Value::Struct(
            &SECRET_WRAP_INFO,
            Some(Rc::new(vec![
                str_field(w, "Token"),
                int_field(w, "TTL"),
                str_field(w, "CreationTime"),
                str_field(w, "WrappedAccessor"),
            ])),
        ),
        None => Value::Struct(&SECRET_WRAP_INFO, None),
    };
    Ok(Value::Struct(
        &SECRET,
        Some(Rc::new(vec![
            str_field(obj, "RequestID"),
            str_field(obj, "LeaseID"),
            int_field(obj, "LeaseDuration"),
            bool_field(obj, "Renewable"),
            map_field(obj, "Data", Elem::Any)?,
            strings_field(obj, "Warnings"),
            auth,
            wrap,
        ])),
    ))
}
