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
    /// `subscribe` (Vault's: receive events about the path, with `read` on it)
    pub const SUBSCRIBE: Capabilities = Capabilities(1 << 9);
    /// Every capability except `deny` (what a root token has).
    pub const ALL: Capabilities = Capabilities(0x3ff & !(1 << 7));

    /// Capability names in alphabetical order, the order `sys/capabilities` returns.
    const NAMES: [(&'static str, Capabilities); 10] = [
        ("create", Capabilities::CREATE),
        ("delete", Capabilities::DELETE),
        ("deny", Capabilities::DENY),
        ("list", Capabilities::LIST),
        ("patch", Capabilities::PATCH),
        ("read", Capabilities::READ),
        ("scan", Capabilities::SCAN),
        ("subscribe", Capabilities::SUBSCRIBE),
        ("sudo", Capabilities::SUDO),
        ("update", Capabilities::UPDATE),
    ];

    /// Parses one capability name (`create`, `read`, `update`, `patch`, `delete`, `list`,
    /// `sudo`, `deny`, `scan`, `subscribe`); case-sensitive as in OpenBao.
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
                let _ = key;
                write!(f, "invalid key on line {line}")
            }
            PolicyError::InvalidCapability { path, .. } => {
                write!(f, "path {p}: path {p}: invalid capability", p = quote(path))
            }
            PolicyError::InvalidLegacyPolicy { path, .. } => {
                write!(f, "path {}: invalid policy", quote(path))
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
    /// Event types (globs, `*` for any) the `subscribe` capability covers (Vault's
    /// `subscribe_event_types`); none listed means every type.
    pub subscribe_event_types: Vec<String>,
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
const PATH_KEYS: [&str; 14] = [
    "subscribe_event_types",
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

mod parse;

use parse::*;

mod acl;

pub use acl::{event_glob, Acl, Decision, Denied};

#[cfg(test)]
mod tests;
