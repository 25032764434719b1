//! Bindings, agents and profiles: what a brokered credential is and where it may go.
//!
//! A binding is validated once, when it is loaded (from a profile file or from Airlock's
//! `sys/broker/bindings` API), into a [`Binding`] whose fields the proxy uses without further
//! checks. Every error names the binding and the problem; errors from a profile file also
//! name the line of the binding's `[[binding]]` header.

use std::collections::BTreeMap;

use airlock_core::binding::{Destination, HostPattern};
use serde_json::{Map, Value};

use crate::providers;

/// What the broker does with a CONNECT to a host that no binding names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// Pass the TLS bytes through unopened (default): pinning and unrelated traffic untouched.
    Tunnel,
    /// Intercept every host and block any placeholder going where its binding does not allow.
    Inspect,
    /// Refuse every host that is neither bound nor listed in `allow_hosts`.
    Allowlist,
}

impl Egress {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "tunnel" => Ok(Egress::Tunnel),
            "inspect" => Ok(Egress::Inspect),
            "allowlist" => Ok(Egress::Allowlist),
            other => Err(format!(
                "egress {other:?} is not one of tunnel, inspect, allowlist"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Egress::Tunnel => "tunnel",
            Egress::Inspect => "inspect",
            Egress::Allowlist => "allowlist",
        }
    }
}

/// A validated binding.
#[derive(Clone, Debug)]
pub struct Binding {
    pub name: String,
    /// Environment variable that receives the placeholder.
    pub env: String,
    /// KV path (`secret/agents/voice`) and key inside it. Empty when the profile named only
    /// `key`: the project's environment, filled in by the CLI before use.
    pub secret_path: String,
    pub secret_key: String,
    pub dest: Destination,
    /// Lower-case header the placeholder may travel in (`None`: no header).
    pub header: Option<String>,
    /// Header value template; `{}` is the credential.
    pub format: String,
    /// Query parameter the placeholder may travel in.
    pub query: Option<String>,
    /// Replace placeholders in request bodies too.
    pub body: bool,
    /// Static headers added to every request that gets the credential.
    pub extra_headers: Vec<(String, String)>,
    /// `signing = "aws_sigv4"`: the request is re-signed instead of having a placeholder
    /// swapped (`secret_path` then holds `access_key`, `secret_key` and optionally
    /// `security_token`/`session_token`).
    pub aws: Option<AwsSigning>,
    /// Limits on the requests that use this binding.
    pub budget: Option<crate::budget::Budget>,
    /// The credential is computed from several keys of the entry at `secret_path` (see
    /// [`crate::template`]) instead of being one stored value.
    pub template: Option<crate::template::Template>,
    /// The placeholder may travel in the URL path (`/bot<token>/getMe`).
    pub path: bool,
    /// Requests using this binding wait for a human decision.
    pub approval: Option<crate::approval::Approval>,
    /// The credential is an access token minted from the entry at `secret_path`.
    pub mint: Option<crate::mint::Mint>,
    /// The credential is the key of an HMAC signature of the request, sent in `header`.
    pub hmac: Option<crate::hmac_sign::HmacSpec>,
}

/// What an `aws_sigv4` binding allows besides its destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsSigning {
    /// Services the signature's scope may name (empty: any).
    pub services: Vec<String>,
    /// Regions the signature's scope may name (empty: any).
    pub regions: Vec<String>,
}

/// Keys of an `aws_sigv4` binding's KV entry (`?`: optional).
pub const AWS_KEYS: [&str; 4] = [
    "access_key",
    "secret_key",
    "?security_token",
    "?session_token",
];

/// The variable that receives the placeholder secret of an `aws_sigv4` binding.
pub const AWS_SECRET_ENV: &str = "AWS_SECRET_ACCESS_KEY";

impl Binding {
    /// The (KV path, key) pairs the broker keeps in its cache for this binding; keys with a
    /// leading `?` are optional.
    pub fn wanted(&self) -> Vec<(String, String)> {
        if let Some(m) = &self.mint {
            return m
                .keys()
                .iter()
                .map(|k| (self.secret_path.clone(), k.to_string()))
                .collect();
        }
        match (&self.aws, &self.template) {
            (Some(_), _) => AWS_KEYS
                .iter()
                .map(|k| (self.secret_path.clone(), k.to_string()))
                .collect(),
            (None, Some(t)) => t
                .keys()
                .into_iter()
                .map(|k| (self.secret_path.clone(), k))
                .collect(),
            (None, None) => vec![(self.secret_path.clone(), self.secret_key.clone())],
        }
    }
}

/// An agent: a name, the bindings it may use, and its egress policy.
#[derive(Clone, Debug)]
pub struct Agent {
    pub name: String,
    pub bindings: Vec<String>,
    pub egress: Egress,
    /// Extra hosts reachable in `allowlist` mode.
    pub allow_hosts: Vec<HostPattern>,
    /// Limits on everything the agent sends through the broker.
    pub budget: Option<crate::budget::Budget>,
    /// Every request of the agent that carries a credential waits for a human decision.
    pub approval: Option<crate::approval::Approval>,
    /// Which MCP tool calls the agent may make.
    pub mcp: Option<crate::mcp_policy::McpPolicy>,
}

/// A loaded profile (`airlock.toml`).
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub bindings: Vec<Binding>,
    pub agents: Vec<Agent>,
    /// Default egress for agents that do not set one (and for `broker run` without `--agent`).
    pub egress: Option<Egress>,
    pub allow_hosts: Vec<HostPattern>,
    /// Hosts or IP networks the SSRF guard lets through (`10.0.0.0/8`, `db.internal`).
    pub allow_private: Vec<String>,
    /// Decoy credentials (`[[honeytoken]]`).
    pub honeytokens: Vec<crate::honeytoken::Honeytoken>,
}

const BINDING_KEYS: &[&str] = &[
    "name",
    "provider",
    "secret",
    "path",
    "key",
    "env",
    "hosts",
    "host",
    "port",
    "methods",
    "paths",
    "header",
    "format",
    "query",
    "body",
    "extra_headers",
    "description",
    "signing",
    "services",
    "regions",
    "credentials",
    "budget",
    "template",
    "url_path",
    "approval",
    "mint",
    "hmac",
];

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

pub use airlock_core::binding::valid_env_name;

fn valid_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn str_field<'a>(o: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("`{k}` must be a string")),
    }
}

fn list_field(o: &Map<String, Value>, k: &str) -> Result<Option<Vec<String>>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{k}` must be a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        )),
        Some(_) => Err(format!("`{k}` must be a list of strings")),
    }
}

/// Validates one binding given as a JSON object (profile tables are converted to JSON first).
pub fn parse_binding(v: &Value) -> Result<Binding, String> {
    let o = v
        .as_object()
        .ok_or_else(|| "a binding must be a table/object".to_string())?;
    for k in o.keys() {
        if !BINDING_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "unknown field `{k}` (known: {})",
                BINDING_KEYS.join(", ")
            ));
        }
    }
    let name = str_field(o, "name")?.ok_or("`name` is required")?;
    if !valid_name(name) {
        return Err(format!(
            "name {name:?} must be 1-64 letters, digits, `_`, `-` or `.`"
        ));
    }
    let wrap = |e: String| format!("binding {name:?}: {e}");
    let preset = match str_field(o, "provider").map_err(wrap)? {
        Some(p) => Some(providers::find(p).ok_or_else(|| {
            wrap(format!(
                "unknown provider {p:?} (see `airlock broker providers`)"
            ))
        })?),
        None => None,
    };
    let signing = match str_field(o, "signing").map_err(wrap)? {
        Some(s) => Some(s),
        None => preset.map(|p| p.signing).filter(|s| !s.is_empty()),
    };
    let aws = match signing {
        None => None,
        Some("aws_sigv4") => Some(AwsSigning {
            services: list_field(o, "services").map_err(wrap)?.unwrap_or_default(),
            regions: list_field(o, "regions").map_err(wrap)?.unwrap_or_default(),
        }),
        Some(other) => return Err(wrap(format!("signing {other:?} is not one of: aws_sigv4"))),
    };
    if aws.is_none() && (o.contains_key("services") || o.contains_key("regions")) {
        return Err(wrap(
            "`services` and `regions` need `signing = \"aws_sigv4\"`".into(),
        ));
    }
    let template = match str_field(o, "template").map_err(wrap)? {
        Some(t) => Some(crate::template::Template::parse(t).map_err(wrap)?),
        None => None,
    };
    let mint = match o.get("mint") {
        Some(m) if !m.is_null() => Some(crate::mint::parse(m).map_err(wrap)?),
        // A preset that mints (`github-app`, `google-cloud`) with its defaults.
        _ => match preset.map(|p| p.mint).filter(|k| !k.is_empty()) {
            Some("google_service_account") => Some(
                crate::mint::parse(&serde_json::json!({"kind": "google_service_account",
                    "scope": "https://www.googleapis.com/auth/cloud-platform"}))
                .map_err(wrap)?,
            ),
            Some(kind) => {
                Some(crate::mint::parse(&serde_json::json!({ "kind": kind })).map_err(wrap)?)
            }
            None => None,
        },
    };
    let (secret_path, secret_key) = match (&aws, &template) {
        _ if mint.is_some() => {
            if aws.is_some() || template.is_some() {
                return Err(wrap(
                    "`mint` does not combine with `signing` or `template`".into(),
                ));
            }
            let (p, _) = aws_secret_ref(o).map_err(|_| {
                wrap("a mint binding takes `secret = \"<kv path>\"` (the entry its keys are read from), without `#key`".into())
            })?;
            (p, "access_token".into())
        }
        (Some(_), None) => aws_secret_ref(o).map_err(wrap)?,
        (None, Some(t)) => {
            // The template reads keys of one entry: `secret = "<kv path>"`.
            let (p, _) = aws_secret_ref(o)
                .map_err(|_| wrap("a template binding takes `secret = \"<kv path>\"` (the entry its keys are read from), without `#key`".into()))?;
            if p.starts_with(crate::secrets::LEASED_PREFIX) {
                return Err(wrap(
                    "a template binding reads a KV entry, not `credentials`".into(),
                ));
            }
            (p, t.keys().first().cloned().unwrap_or_default())
        }
        (Some(_), Some(_)) => {
            return Err(wrap(
                "an aws_sigv4 binding re-signs requests: `template` does not apply".into(),
            ))
        }
        (None, None) => secret_ref(o).map_err(wrap)?,
    };
    let env = match str_field(o, "env").map_err(wrap)? {
        Some(e) => e.to_string(),
        None => match preset {
            Some(p) if !p.env.is_empty() => p.env.to_string(),
            _ if aws.is_some() => "AWS_ACCESS_KEY_ID".to_string(),
            _ => secret_key.clone(),
        },
    };
    if !valid_env_name(&env) {
        return Err(wrap(format!(
            "env {env:?} is not a valid environment variable name"
        )));
    }
    let dest = destination(o, preset).map_err(wrap)?;
    let mut header = header_field(o, preset).map_err(wrap)?;
    let format = format_field(o, preset).map_err(wrap)?;
    let query = match str_field(o, "query").map_err(wrap)? {
        Some("") => None,
        Some(q) => Some(q.to_string()),
        None => preset
            .filter(|p| !p.query.is_empty())
            .map(|p| p.query.to_string()),
    };
    let body = match o.get("body") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(wrap("`body` must be true or false".into())),
    };
    // An HMAC binding's placeholder travels in the signature header, replaced by the
    // signature.
    let hmac = match o.get("hmac") {
        None | Some(Value::Null) => None,
        Some(h) => Some(crate::hmac_sign::parse(h).map_err(wrap)?),
    };
    if let Some(h) = &hmac {
        if o.contains_key("header") || mint.is_some() || template.is_some() || aws.is_some() {
            return Err(wrap("`hmac` names its own header and does not combine with `header`, `mint`, `template` or `signing`".into()));
        }
        header = Some(h.header.clone());
    }
    // A minted token goes in `Authorization: Bearer` unless said otherwise.
    let format = if mint.is_some() && header.is_none() && !o.contains_key("query") {
        header = Some("authorization".into());
        if o.contains_key("format") {
            format
        } else {
            "Bearer {}".into()
        }
    } else {
        format
    };
    let path = match o.get("url_path") {
        None | Some(Value::Null) => preset.is_some_and(|p| p.url_path),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(wrap("`url_path` must be true or false".into())),
    };
    if aws.is_some() && (header.is_some() || query.is_some() || body || path) {
        return Err(wrap(
            "an aws_sigv4 binding re-signs requests: `header`, `query` and `body` do not apply"
                .into(),
        ));
    }
    if aws.is_none() && header.is_none() && query.is_none() && !body && !path {
        return Err(wrap(
            "nowhere to inject: set `header`, `query`, `body = true` or `url_path = true`".into(),
        ));
    }
    let extra_headers = extra_headers_field(o, preset).map_err(wrap)?;
    let budget = match o.get("budget") {
        None | Some(Value::Null) => None,
        Some(b) => Some(crate::budget::parse(b).map_err(wrap)?),
    };
    let approval = match o.get("approval") {
        None | Some(Value::Null) => None,
        Some(a) => Some(crate::approval::parse(a).map_err(wrap)?),
    };
    Ok(Binding {
        name: name.to_string(),
        env,
        secret_path,
        secret_key,
        dest,
        header,
        format,
        query,
        body,
        extra_headers,
        aws,
        budget,
        template,
        path,
        approval,
        mint,
        hmac,
    })
}

/// An `aws_sigv4` binding's credentials: `secret = "<kv path>"` (or `path`), whose entry
/// holds `access_key`, `secret_key` and optionally a session token.
fn aws_secret_ref(o: &Map<String, Value>) -> Result<(String, String), String> {
    if let Some(c) = str_field(o, "credentials")? {
        // Dynamic credentials from the AWS engine: `<mount>/creds/<role>` or `<mount>/sts/<role>`.
        let c = c.trim_matches('/');
        let parts: Vec<&str> = c.split('/').collect();
        let ok = parts.len() >= 3
            && matches!(parts[parts.len() - 2], "creds" | "sts")
            && parts.iter().all(|s| valid_name(s));
        if !ok || o.contains_key("secret") || o.contains_key("path") {
            return Err(format!(
                "credentials {c:?} must be an AWS engine path `<mount>/creds/<role>` or `<mount>/sts/<role>` (and no `secret`)"
            ));
        }
        return Ok((
            format!("{}{c}", crate::secrets::LEASED_PREFIX),
            "access_key".into(),
        ));
    }
    let path = match (str_field(o, "secret")?, str_field(o, "path")?, str_field(o, "key")?) {
        (Some(p), None, None) | (None, Some(p), None) if !p.contains('#') => p,
        _ => {
            return Err(
                "an aws_sigv4 binding takes `secret = \"<kv path>\"` (an entry holding access_key and secret_key), without `#key`".into(),
            )
        }
    };
    let path = path.trim_matches('/').to_string();
    if path.is_empty()
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!("secret path {path:?} is not a valid KV path"));
    }
    Ok((path, "access_key".into()))
}

/// A binding's credential: `secret = "path#KEY"`, or `path` and `key`; the KV path and key.
fn secret_ref(o: &Map<String, Value>) -> Result<(String, String), String> {
    let (secret_path, secret_key) = match (
        str_field(o, "secret")?,
        str_field(o, "path")?,
        str_field(o, "key")?,
    ) {
        (Some(s), None, None) => match s.rsplit_once('#') {
            Some((p, k)) if !p.is_empty() && !k.is_empty() => (p.to_string(), k.to_string()),
            _ => {
                return Err(format!(
                    "secret {s:?} must be `<kv path>#<key>`, e.g. \"secret/agents/voice#OPENAI_API_KEY\""
                ))
            }
        },
        (None, Some(p), Some(k)) if !p.is_empty() && !k.is_empty() => {
            (p.to_string(), k.to_string())
        }
        // `key` alone: a key of the project's environment (the CLI fills the path in from
        // airlock.project.toml; see `Binding::secret_path`).
        (None, None, Some(k)) if !k.is_empty() => return Ok((String::new(), k.to_string())),
        (None, None, None) => {
            return Err(
                "`secret = \"<kv path>#<key>\"` (or `path` and `key`) is required".into(),
            )
        }
        _ => {
            return Err(
                "give either `secret = \"<kv path>#<key>\"` or both `path` and `key`".into(),
            )
        }
    };
    let secret_path = secret_path.trim_matches('/').to_string();
    if secret_path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "secret path {secret_path:?} is not a valid KV path"
        ));
    }
    Ok((secret_path, secret_key))
}

/// Where a binding's credential may go: `hosts`/`host` (or the provider's), `port`,
/// `methods` and `paths` (or the provider's), normalised.
fn destination(
    o: &Map<String, Value>,
    preset: Option<&providers::Provider>,
) -> Result<Destination, String> {
    let mut host_strs = list_field(o, "hosts")?.unwrap_or_default();
    if let Some(h) = str_field(o, "host")? {
        host_strs.push(h.to_string());
    }
    if host_strs.is_empty() {
        if let Some(p) = preset {
            host_strs = p.hosts.iter().map(|h| h.to_string()).collect();
        }
    }
    if host_strs.is_empty() {
        return Err("`hosts` is required (or a `provider` that has them)".into());
    }
    let hosts = host_strs
        .iter()
        .map(|h| HostPattern::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let port = match o.get("port") {
        None | Some(Value::Null) => 443,
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|p| (1..=65535).contains(p))
            .map(|p| p as u16)
            .ok_or_else(|| format!("port {n} is not in 1-65535"))?,
        Some(_) => return Err("`port` must be a number".into()),
    };
    let methods: Vec<String> = list_field(o, "methods")?
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    for m in &methods {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("method {m:?} is not an HTTP method"));
        }
    }
    let mut path_prefixes = list_field(o, "paths")?.unwrap_or_default();
    if path_prefixes.is_empty() {
        if let Some(p) = preset {
            path_prefixes = p.paths.iter().map(|s| s.to_string()).collect();
        }
    }
    for p in &mut path_prefixes {
        let clean = p.starts_with('/')
            && !p.contains('%')
            && !p.split('/').any(|seg| seg == "." || seg == "..");
        let n = airlock_core::binding::normalize_path(p)
            .filter(|_| clean)
            .ok_or_else(|| {
                format!("path prefix {p:?} must start with `/` and contain no `..` or escapes")
            })?;
        *p = n;
    }
    Ok(Destination {
        hosts,
        port,
        methods,
        path_prefixes,
    })
}

/// The header a binding's credential travels in (`""`: none; default: the provider's).
fn header_field(
    o: &Map<String, Value>,
    preset: Option<&providers::Provider>,
) -> Result<Option<String>, String> {
    let header = match str_field(o, "header")? {
        Some("") => None,
        Some(h) => Some(h.to_ascii_lowercase()),
        None => preset
            .filter(|p| !p.header.is_empty())
            .map(|p| p.header.to_string()),
    };
    if let Some(h) = &header {
        if !valid_header_name(h) {
            return Err(format!("header {h:?} is not a valid header name"));
        }
        if matches!(
            h.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding" | "proxy-authorization"
        ) {
            return Err(format!("header {h:?} cannot carry a credential"));
        }
    }
    Ok(header)
}

/// The header value template (`{}` is the credential; default: the provider's, or `{}`).
fn format_field(
    o: &Map<String, Value>,
    preset: Option<&providers::Provider>,
) -> Result<String, String> {
    let format = str_field(o, "format")?
        .map(str::to_string)
        .or_else(|| preset.map(|p| p.format.to_string()))
        .unwrap_or_else(|| "{}".into());
    if format.matches("{}").count() != 1 {
        return Err(format!(
            "format {format:?} must contain `{{}}` exactly once"
        ));
    }
    if format.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("format contains control characters".into());
    }
    Ok(format)
}

/// Static headers sent with the credential: the provider's, overridden or extended by
/// `extra_headers`.
fn extra_headers_field(
    o: &Map<String, Value>,
    preset: Option<&providers::Provider>,
) -> Result<Vec<(String, String)>, String> {
    let mut extra_headers: Vec<(String, String)> = preset
        .map(|p| {
            p.extra_headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    match o.get("extra_headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("extra_headers.{k} must be a string"))?;
                let k = k.to_ascii_lowercase();
                if !valid_header_name(&k) || v.bytes().any(|b| b < 0x20 && b != b'\t') {
                    return Err(format!("extra header {k:?} is not valid"));
                }
                extra_headers.retain(|(n, _)| n != &k);
                extra_headers.push((k, v.to_string()));
            }
        }
        Some(_) => return Err("`extra_headers` must be a table of strings".into()),
    }
    Ok(extra_headers)
}

/// Validates one agent given as JSON.
pub fn parse_agent(name: &str, v: &Value) -> Result<Agent, String> {
    if !valid_name(name) {
        return Err(format!(
            "agent name {name:?} must be 1-64 letters, digits, `_`, `-` or `.`"
        ));
    }
    let wrap = |e: String| format!("agent {name:?}: {e}");
    let o = v
        .as_object()
        .ok_or_else(|| wrap("must be a table/object".into()))?;
    for k in o.keys() {
        if ![
            "bindings",
            "egress",
            "allow_hosts",
            "budget",
            "approval",
            "mcp",
            "description",
            "name",
        ]
        .contains(&k.as_str())
        {
            return Err(wrap(format!(
                "unknown field `{k}` (known: bindings, egress, allow_hosts, budget, approval, mcp)"
            )));
        }
    }
    let bindings = list_field(o, "bindings").map_err(wrap)?.unwrap_or_default();
    let egress = match str_field(o, "egress").map_err(wrap)? {
        Some(e) => Egress::parse(e).map_err(wrap)?,
        None => Egress::Tunnel,
    };
    let allow_hosts = list_field(o, "allow_hosts")
        .map_err(wrap)?
        .unwrap_or_default()
        .iter()
        .map(|h| HostPattern::parse(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(wrap)?;
    let budget = match o.get("budget") {
        None | Some(Value::Null) => None,
        Some(b) => Some(crate::budget::parse(b).map_err(wrap)?),
    };
    let approval = match o.get("approval") {
        None | Some(Value::Null) => None,
        Some(a) => Some(crate::approval::parse(a).map_err(wrap)?),
    };
    let mcp = match o.get("mcp") {
        None | Some(Value::Null) => None,
        Some(m) => Some(crate::mcp_policy::parse(m).map_err(wrap)?),
    };
    Ok(Agent {
        name: name.to_string(),
        bindings,
        egress,
        allow_hosts,
        budget,
        approval,
        mcp,
    })
}
/// The bindings an agent may use, in profile order.
pub fn select<'a>(profile: &'a Profile, agent: Option<&str>) -> Result<Vec<&'a Binding>, String> {
    match agent {
        None => Ok(profile.bindings.iter().collect()),
        Some(a) => {
            let ag = profile
                .agents
                .iter()
                .find(|x| x.name == a)
                .ok_or_else(|| format!("agent {a:?} is not defined in the profile"))?;
            Ok(profile
                .bindings
                .iter()
                .filter(|b| ag.bindings.contains(&b.name))
                .collect())
        }
    }
}

/// A short, secret-free description of a binding, for listings.
pub fn describe(b: &Binding) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("name", b.name.clone());
    m.insert("env", b.env.clone());
    m.insert("secret", format!("{}#{}", b.secret_path, b.secret_key));
    m.insert(
        "hosts",
        b.dest
            .hosts
            .iter()
            .map(|h| match h {
                HostPattern::Exact(e) => e.clone(),
                HostPattern::OneLabel(s) => format!("*.{s}"),
            })
            .collect::<Vec<_>>()
            .join(","),
    );
    m.insert("port", b.dest.port.to_string());
    m
}

mod profile;
pub use profile::parse_profile;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
