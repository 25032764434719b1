//! ACL policies: parsing (HCL or JSON), compilation into an [`Acl`], and Vault's path
//! matching and parameter rules.
//!
//! Semantics follow OpenBao's `internal/vault/policy` (`policy.go`, `acl.go`):
//!
//! * A rule's path is exact, a prefix (`*` as the last character, not combined with `+`
//!   segments), or a segment-wildcard pattern (`+` as a whole segment, optionally ending in
//!   `*`). `+*` is rejected.
//! * Rules with the same pattern from several policies are merged: capabilities unioned,
//!   `deny` absorbs everything, parameter lists merged, the smaller wrapping TTLs kept.
//! * Lookup: an exact rule wins; otherwise the longest prefix rule and every matching
//!   segment pattern compete, and the highest priority wins (first wildcard later; not a
//!   prefix; fewer `+`; longer; lexicographically larger). No match means deny.
//! * List (and scan) requests also try the path without its trailing `/`, as does
//!   `sys/capabilities` (OpenBao evaluates capabilities as a list request).
//! * Parameter rules (`required_parameters`, `denied_parameters`, `allowed_parameters`)
//!   are checked for read, create, update and patch.
//!
//! Paths containing identity templates (`{{identity.entity.id}}`, as in the default
//! policy) are validated but skipped when compiling an ACL: Airlock has no identity
//! entities, and OpenBao likewise drops templated paths it cannot fill in.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use serde_json::{Map, Value as Json};

use crate::duration::{parse_duration_nanos, DurationError};
use crate::hcl::{self, HclError, Item, Value};

/// The built-in `default` policy, byte for byte as OpenBao 2.7.2 returns it from
/// `GET sys/policies/acl/default` (fixture `sys/022`). Its two identity-templated paths are
/// skipped when compiled (see the module documentation).
pub const DEFAULT_POLICY: &str = r#"
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own entity by id or name
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}


# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body; old path for
# old clients, new path for newer
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties. This requires knowing the lease ID ahead
# of time and does not divulge any sensitive information.
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}

# Allow a token to make requests to the Authorization Endpoint for OIDC providers.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"#;

/// Name of the built-in superuser policy; it has no text and cannot be written or deleted.
pub const ROOT_POLICY: &str = "root";
/// Name of the policy attached to every token unless `no_default_policy` is set.
pub const DEFAULT_POLICY_NAME: &str = "default";
/// Name of OpenBao's fixed response-wrapping policy (immutable).
pub const RESPONSE_WRAPPING_POLICY_NAME: &str = "response-wrapping";

/// A set of capabilities (bitset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u16);

impl Capabilities {
    /// The empty set.
    pub const NONE: Capabilities = Capabilities(0);
    /// `create`
    pub const CREATE: Capabilities = Capabilities(1 << 0);
    /// `read`
    pub const READ: Capabilities = Capabilities(1 << 1);
    /// `update`
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    /// `patch`
    pub const PATCH: Capabilities = Capabilities(1 << 3);
    /// `delete`
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    /// `list`
    pub const LIST: Capabilities = Capabilities(1 << 5);
    /// `sudo`
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    /// `deny`
    pub const DENY: Capabilities = Capabilities(1 << 7);
    /// `scan` (OpenBao addition: recursive list)
    pub const SCAN: Capabilities = Capabilities(1 << 8);
    /// Every capability except `deny` (what a root token has).
    pub const ALL: Capabilities = Capabilities(0x1ff & !(1 << 7));

    /// Capability names in alphabetical order, the order `sys/capabilities` returns.
    const NAMES: [(&'static str, Capabilities); 9] = [
        ("create", Capabilities::CREATE),
        ("delete", Capabilities::DELETE),
        ("deny", Capabilities::DENY),
        ("list", Capabilities::LIST),
        ("patch", Capabilities::PATCH),
        ("read", Capabilities::READ),
        ("scan", Capabilities::SCAN),
        ("sudo", Capabilities::SUDO),
        ("update", Capabilities::UPDATE),
    ];

    /// Parses one capability name (`create`, `read`, `update`, `patch`, `delete`, `list`,
    /// `sudo`, `deny`, `scan`); case-sensitive as in OpenBao.
    pub fn from_name(name: &str) -> Option<Capabilities> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    /// Whether every capability of `other` is in `self` (true for an empty `other`).
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any capability of `other` is in `self`.
    pub fn intersects(self, other: Capabilities) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether this set means "denied": it contains `deny` or nothing at all.
    pub fn is_denied(self) -> bool {
        self.is_empty() || self.contains(Capabilities::DENY)
    }

    /// Names as `sys/capabilities` renders them: sorted alphabetically; a set containing
    /// `deny`, or an empty set, renders as `["deny"]`.
    pub fn names(&self) -> Vec<&'static str> {
        if self.is_denied() {
            return vec!["deny"];
        }
        Self::NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Capabilities) {
        self.0 |= rhs.0;
    }
}

/// The kind of request being authorised (Vault's logical operations that need a
/// capability; renew/revoke/rollback map to [`Operation::Update`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Write to a path that does not exist yet.
    Create,
    /// GET.
    Read,
    /// Write to an existing path.
    Update,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// LIST.
    List,
    /// SCAN (OpenBao's recursive list).
    Scan,
}

impl Operation {
    /// The capability this operation needs.
    pub fn capability(self) -> Capabilities {
        match self {
            Operation::Create => Capabilities::CREATE,
            Operation::Read => Capabilities::READ,
            Operation::Update => Capabilities::UPDATE,
            Operation::Patch => Capabilities::PATCH,
            Operation::Delete => Capabilities::DELETE,
            Operation::List => Capabilities::LIST,
            Operation::Scan => Capabilities::SCAN,
        }
    }

    fn checks_parameters(self) -> bool {
        matches!(
            self,
            Operation::Read | Operation::Create | Operation::Update | Operation::Patch
        )
    }

    fn is_list_like(self) -> bool {
        matches!(self, Operation::List | Operation::Scan)
    }
}

/// Errors from parsing a policy or validating its name. `Display` is the text OpenBao puts
/// after `failed to parse policy: ` (for parse errors) or returns as is (for name errors).
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyError {
    /// HCL syntax error, e.g. `At 1:42: error parsing list, expected comma or list end,
    /// got: RBRACE` (OpenBao: `failed to parse policy: At 1:42: ...`).
    Syntax(HclError),
    /// JSON syntax error (policy text starting with `{`), serde_json's message.
    Json(String),
    /// Unknown key at top level (`invalid key "x" on line 3`) or in a path block
    /// (`path "p": invalid key "x" on line 3`).
    InvalidKey {
        /// The path block, if inside one.
        path: Option<String>,
        /// The offending key.
        key: String,
        /// Line of the key (0 for JSON).
        line: u32,
    },
    /// Unknown capability. OpenBao 2.7.2 answers
    /// `failed to parse policy: path "secret/*": path "secret/*": invalid capability "reed"`
    /// (`sys/025`, the path prefix really is doubled); `Display` gives the part after
    /// `failed to parse policy: `.
    InvalidCapability {
        /// The path as written in the policy.
        path: String,
        /// The unknown capability.
        capability: String,
    },
    /// Unknown legacy `policy = "..."` value: `path "p": invalid policy "x"`.
    InvalidLegacyPolicy {
        /// The path as written.
        path: String,
        /// The value.
        policy: String,
    },
    /// `path "p": invalid use of wildcards ('+*' is forbidden)`.
    InvalidWildcard {
        /// The path without its leading `/`.
        path: String,
    },
    /// `failed to validate policy templating: unbalanced templating characters`.
    Templating,
    /// A value of the wrong type: `path "p": capabilities: expected a list of strings`.
    Type {
        /// The path block, if inside one.
        path: Option<String>,
        /// The key.
        key: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `path "p": invalid expiration time: could not parse string as date and time`.
    InvalidExpiration {
        /// The path as written.
        path: String,
    },
    /// `error parsing min_wrapping_ttl: <duration error>`.
    MinWrappingTtl(DurationError),
    /// `error parsing max_wrapping_ttl: <duration error>`.
    MaxWrappingTtl(DurationError),
    /// `max_wrapping_ttl cannot be less than min_wrapping_ttl`.
    WrappingTtlOrder,
    /// `policy name must be provided in the URL`.
    EmptyName,
    /// `cannot update "root" policy` / `cannot delete "root" policy`.
    Immutable {
        /// The policy name.
        name: String,
        /// `"update"` or `"delete"`.
        action: &'static str,
    },
    /// `cannot delete default policy`.
    DeleteDefault,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Syntax(e) => write!(f, "{e}"),
            PolicyError::Json(e) => f.write_str(e),
            PolicyError::InvalidKey { path, key, line } => {
                if let Some(p) = path {
                    write!(f, "path {}: ", quote(p))?;
                }
                write!(f, "invalid key {} on line {line}", quote(key))
            }
            PolicyError::InvalidCapability { path, capability } => write!(
                f,
                "path {p}: path {p}: invalid capability {}",
                quote(capability),
                p = quote(path)
            ),
            PolicyError::InvalidLegacyPolicy { path, policy } => {
                write!(f, "path {}: invalid policy {}", quote(path), quote(policy))
            }
            PolicyError::InvalidWildcard { path } => write!(
                f,
                "path {}: invalid use of wildcards ('+*' is forbidden)",
                quote(path)
            ),
            PolicyError::Templating => f.write_str(
                "failed to validate policy templating: unbalanced templating characters",
            ),
            PolicyError::Type {
                path,
                key,
                expected,
            } => {
                if let Some(p) = path {
                    write!(f, "path {}: ", quote(p))?;
                }
                write!(f, "{key}: expected {expected}")
            }
            PolicyError::InvalidExpiration { path } => write!(
                f,
                "path {}: invalid expiration time: could not parse string as date and time",
                quote(path)
            ),
            PolicyError::MinWrappingTtl(e) => write!(f, "error parsing min_wrapping_ttl: {e}"),
            PolicyError::MaxWrappingTtl(e) => write!(f, "error parsing max_wrapping_ttl: {e}"),
            PolicyError::WrappingTtlOrder => {
                f.write_str("max_wrapping_ttl cannot be less than min_wrapping_ttl")
            }
            PolicyError::EmptyName => f.write_str("policy name must be provided in the URL"),
            PolicyError::Immutable { name, action } => {
                write!(f, "cannot {action} {} policy", quote(name))
            }
            PolicyError::DeleteDefault => f.write_str("cannot delete default policy"),
        }
    }
}

impl std::error::Error for PolicyError {}

impl From<HclError> for PolicyError {
    fn from(e: HclError) -> Self {
        PolicyError::Syntax(e)
    }
}

/// Go's `%q` for the common cases (quotes and backslashes escaped).
fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Normalises a policy name as OpenBao does (trim, lowercase). Empty → error. OpenBao
/// accepts any other name, including ones with `/`; the caller may warn
/// `policy name was converted to <name>` when the result differs from the input.
pub fn normalize_policy_name(raw: &str) -> Result<String, PolicyError> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() {
        return Err(PolicyError::EmptyName);
    }
    Ok(name)
}

/// Rejects writes to immutable policies (`root`, `response-wrapping`).
pub fn check_policy_writable(name: &str) -> Result<(), PolicyError> {
    if name == ROOT_POLICY || name == RESPONSE_WRAPPING_POLICY_NAME {
        return Err(PolicyError::Immutable {
            name: name.to_string(),
            action: "update",
        });
    }
    Ok(())
}

/// Rejects deletion of `root`, `response-wrapping` and `default`.
pub fn check_policy_deletable(name: &str) -> Result<(), PolicyError> {
    if name == ROOT_POLICY || name == RESPONSE_WRAPPING_POLICY_NAME {
        return Err(PolicyError::Immutable {
            name: name.to_string(),
            action: "delete",
        });
    }
    if name == DEFAULT_POLICY_NAME {
        return Err(PolicyError::DeleteDefault);
    }
    Ok(())
}

/// One `path "..." { ... }` rule of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The path as written in the policy (used in error messages).
    pub raw_path: String,
    /// The pattern: `raw_path` without a leading `/`.
    pub pattern: String,
    /// `*`-suffixed pattern without `+` segments: a prefix match.
    pub is_prefix: bool,
    /// Contains `+` segments (possibly also a trailing `*`).
    pub has_segment_wildcards: bool,
    /// Contains identity templates (`{{...}}`); skipped when compiling an [`Acl`].
    pub templated: bool,
    /// Granted capabilities; a `deny` rule holds exactly [`Capabilities::DENY`].
    pub capabilities: Capabilities,
    /// Lowercased parameter name → allowed values (empty list = any value; key `*` = any
    /// parameter). Empty map = no restriction.
    pub allowed_parameters: BTreeMap<String, Vec<Json>>,
    /// Lowercased parameter name → denied values (empty list = any value; key `*` = every
    /// parameter).
    pub denied_parameters: BTreeMap<String, Vec<Json>>,
    /// Parameters that must be present.
    pub required_parameters: Vec<String>,
    /// Minimum response-wrapping TTL in seconds (0 = none).
    pub min_wrapping_ttl: u64,
    /// Maximum response-wrapping TTL in seconds (0 = none).
    pub max_wrapping_ttl: u64,
    /// Free-form comment.
    pub comment: Option<String>,
    /// Expiration as Unix seconds (OpenBao's `expiration`); see [`Acl::new_at`].
    pub expiration: Option<i64>,
}

/// A parsed ACL policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The policy name as given to [`Policy::parse`].
    pub name: String,
    /// The policy text as given.
    pub raw: String,
    /// Rules in the order written.
    pub rules: Vec<PathRule>,
    /// Whether any path uses identity templating.
    pub templated: bool,
}

const TOP_LEVEL_KEYS: [&str; 2] = ["name", "path"];
const PATH_KEYS: [&str; 13] = [
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "pagination_limit",
    "expiration",
    "list_scan_response_keys_filter_path",
    "control_group",
];

impl Policy {
    /// Parses policy text, HCL or JSON (text starting with `{` after whitespace is JSON, as
    /// in OpenBao). `name` should already be normalised ([`normalize_policy_name`]).
    ///
    /// Keys accepted in a path block: `capabilities`, legacy `policy`, `allowed_parameters`,
    /// `denied_parameters`, `required_parameters`, `min_wrapping_ttl`, `max_wrapping_ttl`,
    /// `comment`, `expiration`; OpenBao's `mfa_methods`, `pagination_limit`,
    /// `list_scan_response_keys_filter_path` and `control_group` are type-checked loosely
    /// and otherwise ignored.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let items = if text.trim_start().starts_with('{') {
            let json: Json =
                serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
            match Value::from_json(&json) {
                Value::Object(items) => items,
                _ => Vec::new(),
            }
        } else {
            hcl::parse(text)?
        };

        for item in &items {
            let key = first_key(item);
            if !TOP_LEVEL_KEYS.contains(&key) {
                return Err(PolicyError::InvalidKey {
                    path: None,
                    key: key.to_string(),
                    line: item.line,
                });
            }
        }

        let mut blocks: Vec<(&str, &[Item])> = Vec::new();
        for item in items.iter().filter(|i| first_key(i) == "path") {
            collect_path_blocks(item, &mut blocks)?;
        }

        let mut rules = Vec::with_capacity(blocks.len());
        for (key, body) in blocks {
            rules.push(parse_rule(key, body)?);
        }
        let templated = rules.iter().any(|r| r.templated);
        Ok(Policy {
            name: name.to_string(),
            raw: text.to_string(),
            rules,
            templated,
        })
    }
}

fn first_key(item: &Item) -> &str {
    item.keys.first().map(String::as_str).unwrap_or("")
}

fn path_type_error(path: &str) -> PolicyError {
    PolicyError::Type {
        path: Some(path.to_string()),
        key: "path".to_string(),
        expected: "a block of rules",
    }
}

/// Accepts `path "p" { ... }`, `path = { "p" = { ... } }`, and the JSON forms
/// `{"path": {"p": {...}}}` / `{"path": [{"p": {...}}]}`.
fn collect_path_blocks<'a>(
    item: &'a Item,
    out: &mut Vec<(&'a str, &'a [Item])>,
) -> Result<(), PolicyError> {
    if let Some(label) = item.keys.get(1) {
        if let Some(extra) = item.keys.get(2) {
            return Err(PolicyError::InvalidKey {
                path: Some(label.clone()),
                key: extra.clone(),
                line: item.line,
            });
        }
        return match &item.value {
            Value::Object(body) => {
                out.push((label.as_str(), body.as_slice()));
                Ok(())
            }
            _ => Err(path_type_error(label)),
        };
    }
    let mut push_map = |entries: &'a [Item]| -> Result<(), PolicyError> {
        for entry in entries {
            let label = first_key(entry);
            if let Some(extra) = entry.keys.get(1) {
                return Err(PolicyError::InvalidKey {
                    path: Some(label.to_string()),
                    key: extra.clone(),
                    line: entry.line,
                });
            }
            match &entry.value {
                Value::Object(body) => out.push((label, body.as_slice())),
                _ => return Err(path_type_error(label)),
            }
        }
        Ok(())
    };
    match &item.value {
        Value::Object(entries) => push_map(entries),
        Value::List(list) => {
            for v in list {
                match v {
                    Value::Object(entries) => push_map(entries)?,
                    _ => {
                        return Err(PolicyError::Type {
                            path: None,
                            key: "path".to_string(),
                            expected: "an object of path blocks",
                        })
                    }
                }
            }
            Ok(())
        }
        _ => Err(PolicyError::Type {
            path: None,
            key: "path".to_string(),
            expected: "an object of path blocks",
        }),
    }
}

/// OpenBao's templating validity check: `{{` and `}}` must pair up.
fn check_templating(s: &str) -> Result<bool, PolicyError> {
    let mut pieces = s.split("{{");
    if pieces.next().is_some_and(|first| first.contains("}}")) {
        return Err(PolicyError::Templating);
    }
    let mut templated = false;
    for piece in pieces {
        if piece.split("}}").count() != 2 {
            return Err(PolicyError::Templating);
        }
        templated = true;
    }
    Ok(templated)
}

fn string_list(path: &str, key: &str, v: &Value) -> Result<Vec<String>, PolicyError> {
    let err = || PolicyError::Type {
        path: Some(path.to_string()),
        key: key.to_string(),
        expected: "a list of strings",
    };
    match v {
        Value::List(l) => l
            .iter()
            .map(|e| match e {
                Value::String(s) => Ok(s.clone()),
                _ => Err(err()),
            })
            .collect(),
        _ => Err(err()),
    }
}

fn param_map(
    path: &str,
    key: &str,
    v: &Value,
    into: &mut BTreeMap<String, Vec<Json>>,
) -> Result<(), PolicyError> {
    let err = || PolicyError::Type {
        path: Some(path.to_string()),
        key: key.to_string(),
        expected: "a map of parameter names to lists of values",
    };
    let Value::Object(entries) = v else {
        return Err(err());
    };
    for entry in entries {
        if entry.keys.len() != 1 {
            return Err(err());
        }
        let values = match &entry.value {
            Value::List(l) => l.iter().map(Value::to_json).collect(),
            _ => return Err(err()),
        };
        into.insert(first_key(entry).to_lowercase(), values);
    }
    Ok(())
}

fn wrapping_ttl(v: &Value) -> Result<u64, DurationError> {
    let nanos: i64 = match v {
        Value::Int(i) => i
            .checked_mul(1_000_000_000)
            .ok_or(DurationError::Overflow)?,
        Value::String(s) => parse_duration_nanos(s)?,
        // Go converts a float to a Duration by truncation before scaling.
        Value::Float(f) => (f.trunc() as i64)
            .checked_mul(1_000_000_000)
            .ok_or(DurationError::Overflow)?,
        _ => return Err(DurationError::BadType),
    };
    let secs = nanos / 1_000_000_000;
    u64::try_from(secs).map_err(|_| DurationError::Negative(secs))
}

fn parse_rule(key: &str, body: &[Item]) -> Result<PathRule, PolicyError> {
    let templated = check_templating(key)?;

    for item in body {
        let k = first_key(item);
        if !PATH_KEYS.contains(&k) || (item.keys.len() > 1 && k != "control_group") {
            return Err(PolicyError::InvalidKey {
                path: Some(key.to_string()),
                key: item.keys.join(" "),
                line: item.line,
            });
        }
    }

    let type_err = |k: &str, expected: &'static str| PolicyError::Type {
        path: Some(key.to_string()),
        key: k.to_string(),
        expected,
    };

    let mut cap_names: Vec<String> = Vec::new();
    let mut legacy: Option<String> = None;
    let mut allowed = BTreeMap::new();
    let mut denied = BTreeMap::new();
    let mut required: Vec<String> = Vec::new();
    let mut min_ttl: Option<&Value> = None;
    let mut max_ttl: Option<&Value> = None;
    let mut comment: Option<String> = None;
    let mut expiration: Option<&str> = None;

    for item in body {
        let k = first_key(item);
        let v = &item.value;
        match k {
            "capabilities" => cap_names.extend(string_list(key, k, v)?),
            "policy" => match v {
                Value::String(s) => legacy = Some(s.clone()),
                _ => return Err(type_err(k, "a string")),
            },
            "allowed_parameters" => param_map(key, k, v, &mut allowed)?,
            "denied_parameters" => param_map(key, k, v, &mut denied)?,
            "required_parameters" => required.extend(string_list(key, k, v)?),
            "min_wrapping_ttl" => min_ttl = Some(v),
            "max_wrapping_ttl" => max_ttl = Some(v),
            "comment" => match v {
                Value::String(s) => comment = Some(s.clone()),
                _ => return Err(type_err(k, "a string")),
            },
            "expiration" => match v {
                Value::String(s) => expiration = Some(s),
                _ => return Err(type_err(k, "a string")),
            },
            "mfa_methods" => {
                string_list(key, k, v)?;
            }
            "pagination_limit" if !matches!(v, Value::Int(_)) => {
                return Err(type_err(k, "an integer"));
            }
            "list_scan_response_keys_filter_path" if !matches!(v, Value::String(_)) => {
                return Err(type_err(k, "a string"));
            }
            "control_group" if !matches!(v, Value::Object(_)) => {
                return Err(type_err(k, "a block"));
            }
            _ => {}
        }
    }

    let expiration = match expiration {
        Some(s) if !s.is_empty() => {
            Some(
                parse_absolute_time(s).ok_or_else(|| PolicyError::InvalidExpiration {
                    path: key.to_string(),
                })?,
            )
        }
        _ => None,
    };

    let pattern = key.strip_prefix('/').unwrap_or(key).to_string();
    if pattern.contains("+*") {
        return Err(PolicyError::InvalidWildcard { path: pattern });
    }
    let has_segment_wildcards =
        pattern == "+" || pattern.contains("/+") || pattern.starts_with("+/");
    let is_prefix = !has_segment_wildcards && pattern.ends_with('*');

    if let Some(p) = legacy.as_deref().filter(|p| !p.is_empty()) {
        let extra: &[&str] = match p {
            "deny" => {
                cap_names = Vec::new();
                &["deny"]
            }
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            _ => {
                return Err(PolicyError::InvalidLegacyPolicy {
                    path: key.to_string(),
                    policy: p.to_string(),
                })
            }
        };
        cap_names.extend(extra.iter().map(|s| s.to_string()));
    }

    let mut rule = PathRule {
        raw_path: key.to_string(),
        pattern,
        is_prefix,
        has_segment_wildcards,
        templated,
        capabilities: Capabilities::NONE,
        allowed_parameters: BTreeMap::new(),
        denied_parameters: BTreeMap::new(),
        required_parameters: Vec::new(),
        min_wrapping_ttl: 0,
        max_wrapping_ttl: 0,
        comment,
        expiration,
    };

    for name in &cap_names {
        match Capabilities::from_name(name) {
            // As in OpenBao, `deny` ends the rule: later entries and parameters are ignored.
            Some(Capabilities::DENY) => {
                rule.capabilities = Capabilities::DENY;
                return Ok(rule);
            }
            Some(c) => rule.capabilities |= c,
            None => {
                return Err(PolicyError::InvalidCapability {
                    path: key.to_string(),
                    capability: name.clone(),
                })
            }
        }
    }

    rule.allowed_parameters = allowed;
    rule.denied_parameters = denied;
    if let Some(v) = min_ttl {
        rule.min_wrapping_ttl = wrapping_ttl(v).map_err(PolicyError::MinWrappingTtl)?;
    }
    if let Some(v) = max_ttl {
        rule.max_wrapping_ttl = wrapping_ttl(v).map_err(PolicyError::MaxWrappingTtl)?;
    }
    if rule.min_wrapping_ttl != 0
        && rule.max_wrapping_ttl != 0
        && rule.max_wrapping_ttl < rule.min_wrapping_ttl
    {
        return Err(PolicyError::WrappingTtlOrder);
    }
    rule.required_parameters = required;
    Ok(rule)
}

/// `parseutil.ParseAbsoluteTime` for strings: RFC 3339 (optional fraction, `Z` or offset)
/// or integer Unix seconds. Returns Unix seconds.
fn parse_absolute_time(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut i = 19;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b':') => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Compiled permissions for one pattern (merged across policies).
#[derive(Debug, Clone)]
struct Perms {
    caps: Capabilities,
    min_wrapping_ttl: u64,
    max_wrapping_ttl: u64,
    allowed: BTreeMap<String, Vec<Json>>,
    denied: BTreeMap<String, Vec<Json>>,
    required: Vec<String>,
    /// Which policy contributed which capabilities, in policy order.
    granting: Vec<(String, Capabilities)>,
}

impl Perms {
    fn from_rule(rule: &PathRule, policy: &str) -> Perms {
        Perms {
            caps: rule.capabilities,
            min_wrapping_ttl: rule.min_wrapping_ttl,
            max_wrapping_ttl: rule.max_wrapping_ttl,
            allowed: rule.allowed_parameters.clone(),
            denied: rule.denied_parameters.clone(),
            required: rule.required_parameters.clone(),
            granting: vec![(policy.to_string(), rule.capabilities)],
        }
    }

    /// OpenBao's merge of a rule into an existing entry for the same pattern.
    fn merge(&mut self, rule: &PathRule, policy: &str) {
        if self.caps.contains(Capabilities::DENY) {
            return;
        }
        if rule.capabilities.contains(Capabilities::DENY) {
            self.caps = Capabilities::DENY;
            self.allowed.clear();
            self.denied.clear();
            return;
        }
        self.caps |= rule.capabilities;
        self.granting.push((policy.to_string(), rule.capabilities));
        // Prefer the shortest wrapping lifetimes.
        if rule.max_wrapping_ttl > 0
            && (self.max_wrapping_ttl == 0 || rule.max_wrapping_ttl < self.max_wrapping_ttl)
        {
            self.max_wrapping_ttl = rule.max_wrapping_ttl;
        }
        if rule.min_wrapping_ttl > 0
            && (self.min_wrapping_ttl == 0 || rule.min_wrapping_ttl < self.min_wrapping_ttl)
        {
            self.min_wrapping_ttl = rule.min_wrapping_ttl;
        }
        merge_params(&mut self.allowed, &rule.allowed_parameters);
        merge_params(&mut self.denied, &rule.denied_parameters);
        for r in &rule.required_parameters {
            if !self.required.contains(r) {
                self.required.push(r.clone());
            }
        }
    }

    /// Policies that contributed any of `caps`, deduplicated, in order.
    fn granting_for(&self, caps: Capabilities) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (name, c) in &self.granting {
            if c.intersects(caps) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// An empty value list means "any value" and absorbs; otherwise lists are concatenated.
fn merge_params(into: &mut BTreeMap<String, Vec<Json>>, from: &BTreeMap<String, Vec<Json>>) {
    for (k, v) in from {
        match into.get_mut(k) {
            Some(existing) if v.is_empty() || existing.is_empty() => existing.clear(),
            Some(existing) => {
                let mut merged = v.clone();
                merged.append(existing);
                *existing = merged;
            }
            None => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The outcome of an ACL check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Capabilities of the matched rule ([`Capabilities::DENY`] when denied or unmatched;
    /// [`Capabilities::ALL`] for root).
    pub caps: Capabilities,
    /// Policies that granted the capabilities in question (for [`Acl::evaluate`]: any of
    /// `caps`; for [`Acl::allowed`]: the operation's capability). Empty when denied.
    pub granting_policies: Vec<String>,
    /// The token has the root policy.
    pub is_root: bool,
}

impl Decision {
    /// Names as `sys/capabilities` returns them: `["root"]` for root, else
    /// [`Capabilities::names`].
    pub fn names(&self) -> Vec<&'static str> {
        if self.is_root {
            return vec!["root"];
        }
        self.caps.names()
    }

    /// Whether the matched rule grants `sudo` (needed for root-protected paths), or root.
    pub fn has_sudo(&self) -> bool {
        self.is_root || (self.caps.contains(Capabilities::SUDO) && !self.caps.is_denied())
    }

    fn root() -> Decision {
        Decision {
            caps: Capabilities::ALL,
            granting_policies: vec![ROOT_POLICY.to_string()],
            is_root: true,
        }
    }
}

/// Why an operation was refused. Always displayed as `permission denied`, like Vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No rule matches the path.
    NoMatchingRule,
    /// The matched rule says `deny`.
    ExplicitDeny,
    /// The matched rule lacks the operation's capability.
    MissingCapability,
    /// Response wrapping is required by the rule, or the requested TTL is out of bounds.
    WrappingTtl,
    /// A `required_parameters` entry is absent.
    MissingRequiredParameter(String),
    /// A parameter (or value) is listed in `denied_parameters`.
    DeniedParameter(String),
    /// A parameter (or value) is not listed in `allowed_parameters`.
    ParameterNotAllowed(String),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("permission denied")
    }
}

impl std::error::Error for Denied {}

/// Compiled access control for a set of policies.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Perms>,
    /// Prefix patterns, stored without the trailing `*`.
    prefix: HashMap<String, Perms>,
    /// Segment-wildcard patterns, stored as written (trailing `*` kept).
    segment: HashMap<String, Perms>,
}

#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    first_wildcard: isize,
    is_prefix: bool,
    wildcards: usize,
    wc_path: &'a str,
}

/// Priority order of OpenBao's `CheckAllowedFromNonExactPaths` (Greater = wins).
fn priority(a: &Candidate<'_>, b: &Candidate<'_>) -> std::cmp::Ordering {
    a.first_wildcard
        .cmp(&b.first_wildcard)
        // A prefix pattern loses to a non-prefix one.
        .then(b.is_prefix.cmp(&a.is_prefix))
        // More `+` segments lose.
        .then(b.wildcards.cmp(&a.wildcards))
        .then(a.wc_path.len().cmp(&b.wc_path.len()))
        .then(a.wc_path.cmp(b.wc_path))
}

impl Acl {
    /// Compiles policies (rule expirations are ignored; see [`Acl::new_at`]). Tokens with
    /// the `root` policy must use [`Acl::root`] instead.
    pub fn new(policies: &[Policy]) -> Acl {
        Self::build(policies, None)
    }

    /// Like [`Acl::new`] but drops rules whose `expiration` is not after `now_unix`.
    pub fn new_at(policies: &[Policy], now_unix: i64) -> Acl {
        Self::build(policies, Some(now_unix))
    }

    /// Whether any rule grants something somewhere below `mount` (a path ending in `/`), as
    /// Vault checks before describing a mount in `sys/internal/ui/mounts`.
    pub fn may_reach_prefix(&self, mount: &str) -> bool {
        if self.root {
            return true;
        }
        let grants = |p: &Perms| !p.caps.is_denied() && p.caps != Capabilities(0);
        let overlaps = |fixed: &str| fixed.starts_with(mount) || mount.starts_with(fixed);
        self.exact
            .iter()
            .any(|(k, p)| grants(p) && k.starts_with(mount))
            || self.prefix.iter().any(|(k, p)| grants(p) && overlaps(k))
            || self.segment.iter().any(|(k, p)| {
                let fixed = k.split('+').next().unwrap_or("");
                grants(p) && overlaps(fixed.trim_end_matches('*'))
            })
    }

    /// The ACL of a root token: everything is allowed, including sudo.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    /// Whether this is the root ACL.
    pub fn is_root(&self) -> bool {
        self.root
    }

    fn build(policies: &[Policy], now: Option<i64>) -> Acl {
        let mut acl = Acl::default();
        for policy in policies {
            for rule in &policy.rules {
                if rule.templated {
                    continue;
                }
                if let (Some(now), Some(exp)) = (now, rule.expiration) {
                    if now >= exp {
                        continue;
                    }
                }
                let (map, key) = if rule.has_segment_wildcards {
                    (&mut acl.segment, rule.pattern.as_str())
                } else if rule.is_prefix {
                    let key = rule.pattern.strip_suffix('*').unwrap_or(&rule.pattern);
                    (&mut acl.prefix, key)
                } else {
                    (&mut acl.exact, rule.pattern.as_str())
                };
                match map.get_mut(key) {
                    Some(existing) => existing.merge(rule, &policy.name),
                    None => {
                        map.insert(key.to_string(), Perms::from_rule(rule, &policy.name));
                    }
                }
            }
        }
        acl
    }

    /// Finds the governing rule for `path` (OpenBao's `AllowOperation` lookup).
    fn lookup(&self, path: &str, list_like: bool) -> Option<&Perms> {
        let path = path.trim_start_matches('/');
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        let trimmed = path.strip_suffix('/');
        if list_like {
            if let Some(p) = self.exact.get(trimmed.unwrap_or(path)) {
                return Some(p);
            }
        }
        if let Some(p) = self.non_exact(path) {
            return Some(p);
        }
        match trimmed {
            Some(t) if list_like => self.non_exact(t),
            _ => None,
        }
    }

    fn non_exact(&self, path: &str) -> Option<&Perms> {
        let mut best: Option<(Candidate<'_>, &Perms)> = None;
        let longest_prefix = self
            .prefix
            .iter()
            .filter(|(k, _)| path.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len());
        if let Some((k, perms)) = longest_prefix {
            if self.segment.is_empty() {
                return Some(perms);
            }
            best = Some((
                Candidate {
                    first_wildcard: isize::try_from(k.len()).unwrap_or(isize::MAX),
                    is_prefix: true,
                    wildcards: 0,
                    wc_path: k.as_str(),
                },
                perms,
            ));
        }
        if self.segment.is_empty() {
            return None;
        }
        let path_parts: Vec<&str> = path.split('/').collect();
        for (full, perms) in &self.segment {
            if full.is_empty() {
                continue;
            }
            let first_wildcard = full
                .find('+')
                .and_then(|i| isize::try_from(i).ok())
                .unwrap_or(-1);
            let (wc_path, is_prefix) = match full.strip_suffix('*') {
                Some(p) => (p, true),
                None => (full.as_str(), false),
            };
            let acl_parts: Vec<&str> = wc_path.split('/').collect();
            if path_parts.len() < acl_parts.len()
                || (!is_prefix && acl_parts.len() != path_parts.len())
            {
                continue;
            }
            let mut wildcards = 0usize;
            let last = acl_parts.len().saturating_sub(1);
            let matched = acl_parts
                .iter()
                .zip(&path_parts)
                .enumerate()
                .all(|(i, (acl, part))| {
                    if *acl == "+" {
                        wildcards += 1;
                        true
                    } else {
                        acl == part || (is_prefix && i == last && part.starts_with(acl))
                    }
                });
            if !matched {
                continue;
            }
            let cand = Candidate {
                first_wildcard,
                is_prefix,
                wildcards,
                wc_path,
            };
            let better = match &best {
                None => true,
                Some((b, _)) => priority(&cand, b) == std::cmp::Ordering::Greater,
            };
            if better {
                best = Some((cand, perms));
            }
        }
        best.map(|(_, p)| p)
    }

    /// What the token may do on `path`, as `sys/capabilities` reports it (OpenBao evaluates
    /// it as a list request, so a trailing `/` may fall back to the path without it).
    pub fn evaluate(&self, path: &str) -> Decision {
        if self.root {
            return Decision::root();
        }
        match self.lookup(path, true) {
            Some(perms) if !perms.caps.is_denied() => Decision {
                caps: perms.caps,
                granting_policies: perms.granting_for(perms.caps),
                is_root: false,
            },
            _ => Decision {
                caps: Capabilities::DENY,
                granting_policies: Vec::new(),
                is_root: false,
            },
        }
    }

    /// Capabilities on `path` ([`Capabilities::DENY`] when nothing is granted; all but deny
    /// for root).
    pub fn capabilities(&self, path: &str) -> Capabilities {
        self.evaluate(path).caps
    }

    /// Whether the rule governing `path` grants `sudo` (or the ACL is root). For a request,
    /// prefer [`Decision::has_sudo`] on the result of [`Acl::allowed`], which uses the same
    /// rule as the operation (Vault's `RootPrivs`).
    pub fn has_sudo(&self, path: &str) -> bool {
        if self.root {
            return true;
        }
        // The list fallback (path without its trailing `/`) only adds matches where none
        // exist otherwise, so it is safe for every operation and right for LIST.
        self.lookup(path, true)
            .is_some_and(|p| !p.caps.is_denied() && p.caps.contains(Capabilities::SUDO))
    }

    /// Checks one request (no response wrapping requested). See [`Acl::allowed_wrapped`].
    pub fn allowed(
        &self,
        path: &str,
        op: Operation,
        params: Option<&Map<String, Json>>,
    ) -> Result<Decision, Denied> {
        self.allowed_wrapped(path, op, params, None)
    }

    /// Checks one request: capability for `op`, wrapping-TTL bounds (a rule with
    /// `min_wrapping_ttl`/`max_wrapping_ttl` requires the response to be wrapped with a TTL
    /// in bounds), then for read/create/update/patch the parameter rules:
    ///
    /// 1. every `required_parameters` entry must be present (looked up lowercased);
    /// 2. no parameters at all → allowed;
    /// 3. `denied_parameters`: key `*` denies any parameter; a listed parameter is denied
    ///    when its value matches the list (empty list = every value);
    /// 4. `allowed_parameters`: none, or only `*`, → allowed; otherwise every parameter must
    ///    be listed (or `*` present) and its value must match its list.
    ///
    /// Values match when equal; strings match with Vault's globbing (`foo*`, `*foo`,
    /// `*foo*`). Numbers compare by value (Vault compares Go types and never matches JSON
    /// numbers against HCL numbers; Airlock is deliberately more useful here).
    pub fn allowed_wrapped(
        &self,
        path: &str,
        op: Operation,
        params: Option<&Map<String, Json>>,
        wrap_ttl: Option<u64>,
    ) -> Result<Decision, Denied> {
        if self.root {
            return Ok(Decision::root());
        }
        let perms = self
            .lookup(path, op.is_list_like())
            .ok_or(Denied::NoMatchingRule)?;
        if perms.caps.contains(Capabilities::DENY) {
            return Err(Denied::ExplicitDeny);
        }
        let needed = op.capability();
        if !perms.caps.contains(needed) {
            return Err(Denied::MissingCapability);
        }

        if perms.max_wrapping_ttl > 0 && !matches!(wrap_ttl, Some(t) if t <= perms.max_wrapping_ttl)
        {
            return Err(Denied::WrappingTtl);
        }
        if perms.min_wrapping_ttl > 0 && !matches!(wrap_ttl, Some(t) if t >= perms.min_wrapping_ttl)
        {
            return Err(Denied::WrappingTtl);
        }
        if perms.min_wrapping_ttl != 0
            && perms.max_wrapping_ttl != 0
            && perms.max_wrapping_ttl < perms.min_wrapping_ttl
        {
            return Err(Denied::WrappingTtl);
        }

        if op.checks_parameters() {
            check_parameters(perms, params)?;
        }

        Ok(Decision {
            caps: perms.caps,
            granting_policies: perms.granting_for(needed),
            is_root: false,
        })
    }
}

fn check_parameters(perms: &Perms, params: Option<&Map<String, Json>>) -> Result<(), Denied> {
    let empty = Map::new();
    let data = params.unwrap_or(&empty);
    for r in &perms.required {
        if !data.contains_key(&r.to_lowercase()) {
            return Err(Denied::MissingRequiredParameter(r.clone()));
        }
    }
    if data.is_empty() {
        return Ok(());
    }
    if !perms.denied.is_empty() {
        if perms.denied.contains_key("*") {
            return Err(Denied::DeniedParameter("*".to_string()));
        }
        for (k, v) in data {
            if let Some(list) = perms.denied.get(&k.to_lowercase()) {
                if value_in_list(v, list) {
                    return Err(Denied::DeniedParameter(k.clone()));
                }
            }
        }
    }
    if perms.allowed.is_empty() {
        return Ok(());
    }
    let allowed_all = perms.allowed.contains_key("*");
    if allowed_all && perms.allowed.len() == 1 {
        return Ok(());
    }
    for (k, v) in data {
        match perms.allowed.get(&k.to_lowercase()) {
            None if !allowed_all => return Err(Denied::ParameterNotAllowed(k.clone())),
            Some(list) if !value_in_list(v, list) => {
                return Err(Denied::ParameterNotAllowed(k.clone()))
            }
            _ => {}
        }
    }
    Ok(())
}

fn value_in_list(v: &Json, list: &[Json]) -> bool {
    list.is_empty() || list.iter().any(|el| value_matches(el, v))
}

fn value_matches(el: &Json, v: &Json) -> bool {
    match (el, v) {
        (Json::String(pattern), Json::String(s)) => glob_match(pattern, s),
        _ => json_eq(el, v),
    }
}

/// `strutil.GlobbedStringsMatch`: `*` only at the start and/or end; a lone `*` (or any
/// pattern shorter than 2 characters) matches only itself.
fn glob_match(pattern: &str, s: &str) -> bool {
    if pattern.len() < 2 {
        return s == pattern;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) => {
            let inner = pattern.get(1..pattern.len() - 1).unwrap_or("");
            s.contains(inner)
        }
        (Some(suffix), None) => s.ends_with(suffix),
        (None, Some(prefix)) => s.starts_with(prefix),
        (None, None) => s == pattern,
    }
}

/// JSON equality with numbers compared by value.
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
