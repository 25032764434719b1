//! Logical requests and responses: what backends see, independent of HTTP.

use std::net::SocketAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};

/// Vault's logical operations. POST/PUT arrive as `Update` and become `Create` when the
/// backend's existence check says the target does not exist yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
    List,
    Patch,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Patch => "patch",
        }
    }
}

pub struct Request {
    pub id: String,
    pub op: Op,
    /// Path below `/v1/`, without a leading slash.
    pub path: String,
    pub data: Map<String, Value>,
    pub query: Vec<(String, String)>,
    pub token: Option<Zeroizing<String>>,
    pub remote: Option<SocketAddr>,
    pub content_type: Option<String>,
    /// `X-Vault-Wrap-TTL` in seconds: wrap the response.
    pub wrap_ttl: Option<i64>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("op", &self.op)
            .field("path", &self.path)
            .field("data", &"***")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Request {
    pub fn query(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn str_field(&self, k: &str) -> ApiResult<Option<String>> {
        match self.data.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::bad_request(format!(
                "error converting input for field \"{k}\": expected a string"
            ))),
        }
    }

    pub fn bool_field(&self, k: &str) -> ApiResult<Option<bool>> {
        match self.data.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(Some(true)),
                "false" | "0" | "f" | "F" | "FALSE" | "False" | "" => Ok(Some(false)),
                _ => Err(field_err(k, "bool", s)),
            },
            Some(Value::Number(n)) => Ok(Some(n.as_f64().unwrap_or(0.0) != 0.0)),
            Some(v) => Err(field_err(k, "bool", &v.to_string())),
        }
    }

    pub fn int_field(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.data.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| field_err(k, "int", &n.to_string())),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| field_err(k, "int", s)),
            Some(v) => Err(field_err(k, "int", &v.to_string())),
        }
    }

    /// A TTL field: integer seconds or a Go duration string.
    pub fn duration_field(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.data.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => airlock_core::duration::parse_duration_value(v)
                .map(|s| Some(s as i64))
                .map_err(|_| match v {
                    // Durations are not secret; OpenBao quotes the bad value.
                    Value::String(s) if s.len() <= 64 => {
                        ApiError::bad_request(format!("time: invalid duration {s:?}"))
                    }
                    _ => ApiError::bad_request(format!(
                        "error converting input for field \"{k}\": invalid duration"
                    )),
                }),
        }
    }

    /// A list of strings: JSON array, or a comma-separated string.
    pub fn str_list_field(&self, k: &str) -> ApiResult<Option<Vec<String>>> {
        match self.data.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
            )),
            Some(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for v in a {
                    match v {
                        Value::String(s) => out.push(s.trim().to_string()),
                        Value::Number(n) => out.push(n.to_string()),
                        _ => return Err(field_err(k, "slice", &v.to_string())),
                    }
                }
                Ok(Some(out))
            }
            Some(v) => Err(field_err(k, "slice", &v.to_string())),
        }
    }

    /// Vault's key/value-pairs field (`meta`): a map, or `k=v` strings (one or a list).
    pub fn kv_pairs_field(
        &self,
        k: &str,
    ) -> ApiResult<Option<std::collections::BTreeMap<String, String>>> {
        let bad = |i: usize| {
            ApiError::bad_request(format!(
                "Field validation failed: error converting input for field \"{k}\": invalid key pair at index {i} in field \"{k}\""
            ))
        };
        let pairs: Vec<&Value> = match self.data.get(k) {
            Some(Value::String(_)) => self.data.get(k).into_iter().collect(),
            Some(Value::Array(a)) => a.iter().collect(),
            _ => return self.str_map_field(k),
        };
        let mut out = std::collections::BTreeMap::new();
        for (i, p) in pairs.iter().enumerate() {
            let (a, b) = p
                .as_str()
                .and_then(|s| s.split_once('='))
                .ok_or_else(|| bad(i))?;
            out.insert(a.to_string(), b.to_string());
        }
        Ok(Some(out))
    }

    /// A list of strings where a lone string is one element (not split on commas).
    pub fn str_list_field_nosplit(&self, k: &str) -> ApiResult<Option<Vec<String>>> {
        match self.data.get(k) {
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Some(Vec::new())),
            Some(Value::String(s)) => Ok(Some(vec![s.trim().to_string()])),
            _ => self.str_list_field(k),
        }
    }

    /// A map of string to string.
    pub fn str_map_field(
        &self,
        k: &str,
    ) -> ApiResult<Option<std::collections::BTreeMap<String, String>>> {
        match self.data.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => {
                let mut out = std::collections::BTreeMap::new();
                for (mk, mv) in m {
                    let s = match mv {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    out.insert(mk.clone(), s);
                }
                Ok(Some(out))
            }
            Some(v) => Err(ApiError::bad_request(format!(
                "error converting input for field \"{k}\": '' expected type 'map[string]interface {{}}', got unconvertible type '{}'",
                json_kind(v)
            ))),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map",
    }
}

/// OpenBao's text for a field of the wrong type. The offending value is not echoed (it would
/// land in logs and audit entries in clear); OpenBao's text does not echo it either.
fn field_err(k: &str, want: &str, _got: &str) -> ApiError {
    let detail = match want {
        "int" => "'' cannot parse value as 'int': strconv.ParseInt: invalid syntax".to_string(),
        "bool" => "'' cannot parse value as 'bool': strconv.ParseBool: invalid syntax".to_string(),
        other => format!("expected {other}"),
    };
    ApiError::bad_request(format!(
        "Field validation failed: error converting input for field \"{k}\": {detail}"
    ))
}

/// The `auth` block of login and token-create responses.
#[derive(Clone, Serialize, serde::Deserialize)]
pub struct AuthBlock {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    pub lease_duration: i64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub mfa_requirement: Option<Value>,
    pub num_uses: i64,
}

impl std::fmt::Debug for AuthBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBlock")
            .field("client_token", &"***")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
pub struct Response {
    /// Overrides the status (default 200, or 204 when there is nothing to send).
    pub status: Option<u16>,
    pub data: Option<Value>,
    pub auth: Option<AuthBlock>,
    pub warnings: Vec<String>,
    pub lease_id: String,
    pub lease_duration: i64,
    pub renewable: bool,
    /// A body sent as is, without the envelope (`sys/health`, `sys/seal-status`, ...).
    pub raw: Option<Value>,
    /// Copy `data`'s keys to the top level too (Vault's backwards-compatible sys/ responses).
    pub top_level: bool,
    /// A plain-text body (`sys/metrics?format=prometheus`).
    pub text: Option<String>,
    /// Set when the response has been wrapped: the envelope's `wrap_info`.
    pub wrap_info: Option<Value>,
    /// The accessor a wrapping names (`wrapped_accessor`), e.g. an AppRole secret id's.
    pub wrapped_accessor: Option<String>,
}

impl Response {
    pub fn data(v: Value) -> Self {
        Self {
            data: Some(v),
            ..Default::default()
        }
    }
    pub fn empty() -> Self {
        Self::default()
    }
    pub fn raw(v: Value) -> Self {
        Self {
            raw: Some(v),
            ..Default::default()
        }
    }
    pub fn list(keys: Vec<String>) -> Self {
        Self::data(serde_json::json!({ "keys": keys }))
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_none()
            && self.auth.is_none()
            && self.raw.is_none()
            && self.text.is_none()
            && self.wrap_info.is_none()
            && self.warnings.is_empty()
    }
}
