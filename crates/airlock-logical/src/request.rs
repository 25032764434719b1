//! Logical requests and responses: what engines see, independent of HTTP.
//!
//! Field accessors (`str_field`, `int_field`, ...) check the field against the path's
//! declared fields once the router has matched the request to a [`crate::framework::PathSpec`]:
//! an engine cannot read a field it did not declare (that is a bug, answered with a 500), and
//! the declaration's `sensitive` flag drives audit redaction.

use std::borrow::Cow;
use std::net::SocketAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};
use crate::framework::Field;
pub use crate::op::Op;

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
    /// The fields the matched path declares (set by the router; `None` outside engines).
    pub fields: Option<&'static [&'static [Field]]>,
    /// Named segments the matched path pattern captured (`roles/{name}` → `name`).
    pub captures: Vec<(&'static str, String)>,
    /// Field errors say `Field validation failed: …` (OpenBao's framework validation). On
    /// paths with an existence check OpenBao reads the fields there first and its errors
    /// come without that prefix; the framework clears this flag for them.
    pub validation_prefix: bool,
    /// The raw body, for the few endpoints whose body is not JSON (a backup to restore);
    /// never audited.
    pub body: Option<Vec<u8>>,
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
    /// A request for `path` with no data (tests, internal calls).
    pub fn new(op: Op, path: impl Into<String>) -> Self {
        Request {
            id: String::new(),
            op,
            path: path.into(),
            data: Map::new(),
            query: Vec::new(),
            token: None,
            remote: None,
            content_type: None,
            wrap_ttl: None,
            fields: None,
            captures: Vec::new(),
            validation_prefix: true,
            body: None,
        }
    }

    /// The same request without its credential, query and matched path (for audit copies).
    pub fn audit_copy(&self) -> Self {
        Request {
            id: self.id.clone(),
            op: self.op,
            path: self.path.clone(),
            data: self.data.clone(),
            query: Vec::new(),
            token: None,
            remote: self.remote,
            content_type: None,
            wrap_ttl: None,
            fields: None,
            captures: Vec::new(),
            validation_prefix: true,
            body: None,
        }
    }

    /// A named segment of the matched path (empty when the pattern has none by that name).
    pub fn cap(&self, name: &str) -> &str {
        self.captures
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn declared(&self, k: &str) -> ApiResult<Option<&'static Field>> {
        let Some(groups) = self.fields else {
            return Ok(None);
        };
        match groups.iter().flat_map(|g| g.iter()).find(|f| f.name == k) {
            Some(f) => Ok(Some(f)),
            None => Err(ApiError::internal(&format_args!(
                "field {k:?} is read but not declared by the path"
            ))),
        }
    }

    /// The raw value of a declared field, or its declared default.
    pub fn value(&self, k: &str) -> ApiResult<Option<Cow<'_, Value>>> {
        let f = self.declared(k)?;
        match self.data.get(k) {
            Some(v) => Ok(Some(Cow::Borrowed(v))),
            None => Ok(f.and_then(|f| f.default_value()).map(Cow::Owned)),
        }
    }

    /// Whether the request carries the field at all.
    pub fn has(&self, k: &str) -> ApiResult<bool> {
        self.declared(k)?;
        Ok(self.data.contains_key(k))
    }

    pub fn query(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn str_field(&self, k: &str) -> ApiResult<Option<String>> {
        match self.value(k)?.as_deref() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(v) => Err(self.field_err(k, &unconvertible("string", v))),
        }
    }

    /// Go's `strconv.ParseBool` forms, and the numbers 0 and 1.
    pub fn bool_field(&self, k: &str) -> ApiResult<Option<bool>> {
        let bad = || self.field_err(k, PARSE_BOOL);
        match self.value(k)?.as_deref() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(Some(true)),
                "false" | "0" | "f" | "F" | "FALSE" | "False" | "" => Ok(Some(false)),
                _ => Err(bad()),
            },
            Some(Value::Number(n)) => match n.as_i64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(bad()),
            },
            Some(_) => Err(bad()),
        }
    }

    /// An integer: a JSON integer, a string of one, or a bool (1/0); not a fraction.
    pub fn int_field(&self, k: &str) -> ApiResult<Option<i64>> {
        let bad = || self.field_err(k, PARSE_INT);
        match self.value(k)?.as_deref() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A TTL field: integer seconds, a Go duration string, or a bool (1 s / 0, as OpenBao's
    /// weak decoding does).
    pub fn duration_field(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.value(k)?.as_deref() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
            Some(v @ (Value::Object(_) | Value::Array(_))) => {
                Err(self.field_err(k, &unconvertible("string", v)))
            }
            // OpenBao's Go texts, without the value (which they quote).
            Some(v) => airlock_core::duration::parse_duration_value(v)
                .map(|s| Some(s as i64))
                .map_err(|e| ApiError::bad_request(e.to_string())),
        }
    }

    /// A JSON object field (`config` of a mount): the object, or OpenBao's type error.
    pub fn object_field(&self, k: &str) -> ApiResult<Option<Map<String, Value>>> {
        match self.value(k)?.as_deref() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m.clone())),
            Some(v) => Err(self.field_err(k, &unconvertible("map[string]interface {}", v))),
        }
    }

    /// `Field validation failed: error converting input for field "<k>": <detail>`, without
    /// the prefix on paths with an existence check (as OpenBao answers there).
    fn field_err(&self, k: &str, detail: &str) -> ApiError {
        let prefix = if self.validation_prefix {
            "Field validation failed: "
        } else {
            ""
        };
        ApiError::bad_request(format!(
            "{prefix}error converting input for field \"{k}\": {detail}"
        ))
    }

    /// A list of strings: JSON array, or a comma-separated string.
    pub fn str_list_field(&self, k: &str) -> ApiResult<Option<Vec<String>>> {
        match self.value(k)?.as_deref() {
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
                        other => {
                            return Err(self.field_err(
                                k,
                                &format!(
                                    "decoding failed due to the following error(s):\n\n'[0]' {}",
                                    unconvertible("string", other).trim_start_matches("'' ")
                                ),
                            ))
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(Value::Number(n)) => Ok(Some(vec![n.to_string()])),
            Some(Value::Bool(b)) => Ok(Some(vec![if *b { "1" } else { "0" }.to_string()])),
            Some(v) => Err(self.field_err(
                k,
                &format!(
                    "decoding failed due to the following error(s):\n\n'[0]' {}",
                    unconvertible("string", v).trim_start_matches("'' ")
                ),
            )),
        }
    }

    /// Vault's key/value-pairs field (`meta`): a map, or `k=v` strings (one or a list).
    pub fn kv_pairs_field(
        &self,
        k: &str,
    ) -> ApiResult<Option<std::collections::BTreeMap<String, String>>> {
        let bad = |i: usize| {
            self.field_err(
                k,
                &format!("invalid key pair at index {i} in field \"{k}\""),
            )
        };
        let raw = self.value(k)?;
        let pairs: Vec<&Value> = match raw.as_deref() {
            Some(v @ Value::String(_)) => vec![v],
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
        match self.value(k)?.as_deref() {
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
        match self.value(k)?.as_deref() {
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
            Some(v) => Err(self.field_err(k, &unconvertible("map[string]interface {}", v))),
        }
    }
}

/// Go's `strconv` texts for a value that is not a number or a bool.
const PARSE_INT: &str = "'' cannot parse value as 'int': strconv.ParseInt: invalid syntax";
const PARSE_BOOL: &str = "'' cannot parse value as 'bool': strconv.ParseBool: invalid syntax";

/// The Go type a JSON value decodes to (what OpenBao names in its errors).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `'' expected type '<want>', got unconvertible type '<go type>'` (the value itself is
/// never quoted).
fn unconvertible(want: &str, v: &Value) -> String {
    format!(
        "'' expected type '{want}', got unconvertible type '{}'",
        go_type(v)
    )
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
    /// A successful login: the server turns it into a token and fills `auth`.
    pub login: Option<Box<crate::login::LoginOutcome>>,
    /// A plain-text body (`sys/metrics?format=prometheus`).
    pub text: Option<String>,
    /// A binary body (`application/octet-stream`): a backup.
    pub bytes: Option<Vec<u8>>,
    /// The content type of a `bytes` or `text` body, when not the default
    /// (`application/pkix-cert` for a DER certificate, …).
    pub content_type: Option<&'static str>,
    /// Set when the response has been wrapped: the envelope's `wrap_info`.
    pub wrap_info: Option<Value>,
    /// The accessor a wrapping names (`wrapped_accessor`), e.g. an AppRole secret id's.
    pub wrapped_accessor: Option<String>,
    /// What the audit log records instead of `data` (a read of the audit log records a
    /// summary, not the entries it returned, which would nest in every later read).
    pub audit_data: Option<Value>,
}

/// Marks a response whose `data` keys Vault also copies to the top level (its
/// backwards-compatible `sys/` answers).
pub fn top(mut r: Response) -> Response {
    r.top_level = true;
    r
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("data", &self.data.as_ref().map(|_| "***"))
            .field("lease_id", &self.lease_id)
            .finish_non_exhaustive()
    }
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
            && self.login.is_none()
            && self.warnings.is_empty()
    }
}
