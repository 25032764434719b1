//! PKI roles: what a role stores, how it is written and shown (Vault's field set and
//! defaults), and the pure rules a request is checked against — which names a role
//! allows (Vault's `validateNames`, with its wording), key type and size, and the TTL a
//! certificate gets.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::keys::{self, KeyType};
use airlock_logical::{ApiError, ApiResult, Field, Request};

/// A role as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub ttl: i64,
    pub max_ttl: i64,
    pub allow_localhost: bool,
    pub allowed_domains: Vec<String>,
    pub allow_bare_domains: bool,
    pub allow_subdomains: bool,
    pub allow_glob_domains: bool,
    pub allow_wildcard_certificates: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
    pub allow_ip_sans: bool,
    pub allowed_uri_sans: Vec<String>,
    pub server_flag: bool,
    pub client_flag: bool,
    pub code_signing_flag: bool,
    pub email_protection_flag: bool,
    /// `rsa`, `ec`, `ed25519` or `any`.
    pub key_type: String,
    pub key_bits: i64,
    pub ext_key_usage: Vec<String>,
    pub no_store: bool,
    pub generate_lease: bool,
    pub require_cn: bool,
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
    pub not_before_duration: i64,
    /// Fields Airlock keeps and shows but does not act on.
    pub other: Map<String, Value>,
}

impl Default for Role {
    fn default() -> Self {
        Role {
            ttl: 0,
            max_ttl: 0,
            allow_localhost: true,
            allowed_domains: Vec::new(),
            allow_bare_domains: false,
            allow_subdomains: false,
            allow_glob_domains: false,
            allow_wildcard_certificates: true,
            allow_any_name: false,
            enforce_hostnames: true,
            allow_ip_sans: true,
            allowed_uri_sans: Vec::new(),
            server_flag: true,
            client_flag: true,
            code_signing_flag: false,
            email_protection_flag: false,
            key_type: "rsa".into(),
            key_bits: 2048,
            ext_key_usage: Vec::new(),
            no_store: false,
            generate_lease: false,
            require_cn: true,
            use_csr_common_name: true,
            use_csr_sans: true,
            not_before_duration: 30,
            other: Map::new(),
        }
    }
}

/// Fields shown with their defaults and kept as given, without effect in Airlock.
const PASSIVE: &[(&str, &str)] = &[
    ("allow_globs_in_identity_templates", "false"),
    ("allow_token_displayname", "false"),
    ("allowed_domains_template", "false"),
    ("allowed_ip_sans_cidr", "[]"),
    ("allowed_other_sans", "[]"),
    ("allowed_serial_numbers", "[]"),
    ("allowed_uri_sans_template", "false"),
    ("allowed_user_ids", "[]"),
    ("basic_constraints_valid_for_non_ca", "false"),
    ("cn_validations", "[\"email\",\"hostname\"]"),
    ("country", "[]"),
    ("ext_key_usage_oids", "[]"),
    ("issuer_ref", "\"default\""),
    (
        "key_usage",
        "[\"DigitalSignature\",\"KeyAgreement\",\"KeyEncipherment\"]",
    ),
    ("locality", "[]"),
    ("not_after", "\"\""),
    ("not_after_bound", "\"permit\""),
    ("not_before", "\"\""),
    ("not_before_bound", "\"permit\""),
    ("organization", "[]"),
    ("ou", "[]"),
    ("policy_identifiers", "[]"),
    ("postal_code", "[]"),
    ("province", "[]"),
    ("signature_bits", "0"),
    ("street_address", "[]"),
    ("use_pss", "false"),
];

/// The fields `roles/<name>` declares.
pub const ROLE_FIELDS: &[Field] = &[
    Field::duration("ttl"),
    Field::duration("max_ttl"),
    Field::bool("allow_localhost"),
    Field::list("allowed_domains"),
    Field::bool("allow_bare_domains"),
    Field::bool("allow_subdomains"),
    Field::bool("allow_glob_domains"),
    Field::bool("allow_wildcard_certificates"),
    Field::bool("allow_any_name"),
    Field::bool("enforce_hostnames"),
    Field::bool("allow_ip_sans"),
    Field::list("allowed_uri_sans"),
    Field::bool("server_flag"),
    Field::bool("client_flag"),
    Field::bool("code_signing_flag"),
    Field::bool("email_protection_flag"),
    Field::str("key_type"),
    Field::int("key_bits"),
    Field::list("ext_key_usage"),
    Field::bool("no_store"),
    Field::bool("generate_lease"),
    Field::bool("require_cn"),
    Field::bool("use_csr_common_name"),
    Field::bool("use_csr_sans"),
    Field::duration("not_before_duration"),
    Field::json("allow_globs_in_identity_templates"),
    Field::json("allow_token_displayname"),
    Field::json("allowed_domains_template"),
    Field::json("allowed_ip_sans_cidr"),
    Field::json("allowed_other_sans"),
    Field::json("allowed_serial_numbers"),
    Field::json("allowed_uri_sans_template"),
    Field::json("allowed_user_ids"),
    Field::json("basic_constraints_valid_for_non_ca"),
    Field::json("cn_validations"),
    Field::json("country"),
    Field::json("ext_key_usage_oids"),
    Field::json("issuer_ref"),
    Field::json("key_usage"),
    Field::json("locality"),
    Field::json("not_after"),
    Field::json("not_after_bound"),
    Field::json("not_before"),
    Field::json("not_before_bound"),
    Field::json("organization"),
    Field::json("ou"),
    Field::json("policy_identifiers"),
    Field::json("postal_code"),
    Field::json("province"),
    Field::json("signature_bits"),
    Field::json("street_address"),
    Field::json("use_pss"),
];

impl Role {
    /// A role from a write request (absent fields take Vault's defaults).
    pub fn from_request(req: &Request) -> ApiResult<Self> {
        let d = Role::default();
        let b = |k: &str, dflt: bool| -> ApiResult<bool> { Ok(req.bool_field(k)?.unwrap_or(dflt)) };
        let l =
            |k: &str| -> ApiResult<Vec<String>> { Ok(req.str_list_field(k)?.unwrap_or_default()) };
        let key_type = req.str_field("key_type")?.unwrap_or_else(|| "rsa".into());
        let bits = req.int_field("key_bits")?.unwrap_or(0);
        let key_bits = match key_type.as_str() {
            "any" => bits,
            kt => i64::from(keys::validate_bits(KeyType::parse(kt)?, bits)?),
        };
        let mut other = Map::new();
        for (k, _) in PASSIVE {
            if let Some(v) = req.value(k)? {
                other.insert((*k).to_string(), v.into_owned());
            }
        }
        let role = Role {
            ttl: req.duration_field("ttl")?.unwrap_or(0),
            max_ttl: req.duration_field("max_ttl")?.unwrap_or(0),
            allow_localhost: b("allow_localhost", d.allow_localhost)?,
            allowed_domains: l("allowed_domains")?,
            allow_bare_domains: b("allow_bare_domains", false)?,
            allow_subdomains: b("allow_subdomains", false)?,
            allow_glob_domains: b("allow_glob_domains", false)?,
            allow_wildcard_certificates: b("allow_wildcard_certificates", true)?,
            allow_any_name: b("allow_any_name", false)?,
            enforce_hostnames: b("enforce_hostnames", true)?,
            allow_ip_sans: b("allow_ip_sans", true)?,
            allowed_uri_sans: l("allowed_uri_sans")?,
            server_flag: b("server_flag", true)?,
            client_flag: b("client_flag", true)?,
            code_signing_flag: b("code_signing_flag", false)?,
            email_protection_flag: b("email_protection_flag", false)?,
            key_type,
            key_bits,
            ext_key_usage: l("ext_key_usage")?,
            no_store: b("no_store", false)?,
            generate_lease: b("generate_lease", false)?,
            require_cn: b("require_cn", true)?,
            use_csr_common_name: b("use_csr_common_name", true)?,
            use_csr_sans: b("use_csr_sans", true)?,
            not_before_duration: req.duration_field("not_before_duration")?.unwrap_or(30),
            other,
        };
        if role.max_ttl > 0 && role.ttl > role.max_ttl {
            return Err(ApiError::bad_request(
                r#""ttl" value must be less than "max_ttl" value"#,
            ));
        }
        for u in &role.ext_key_usage {
            eku_oid(u)?;
        }
        Ok(role)
    }

    /// The role as `GET roles/<name>` shows it.
    pub fn to_json(&self) -> Value {
        let mut m = match json!({
            "ttl": self.ttl, "max_ttl": self.max_ttl,
            "allow_localhost": self.allow_localhost, "allowed_domains": self.allowed_domains,
            "allow_bare_domains": self.allow_bare_domains, "allow_subdomains": self.allow_subdomains,
            "allow_glob_domains": self.allow_glob_domains,
            "allow_wildcard_certificates": self.allow_wildcard_certificates,
            "allow_any_name": self.allow_any_name, "enforce_hostnames": self.enforce_hostnames,
            "allow_ip_sans": self.allow_ip_sans, "allowed_uri_sans": self.allowed_uri_sans,
            "server_flag": self.server_flag, "client_flag": self.client_flag,
            "code_signing_flag": self.code_signing_flag,
            "email_protection_flag": self.email_protection_flag,
            "key_type": self.key_type, "key_bits": self.key_bits,
            "ext_key_usage": self.ext_key_usage, "no_store": self.no_store,
            "generate_lease": self.generate_lease, "require_cn": self.require_cn,
            "use_csr_common_name": self.use_csr_common_name, "use_csr_sans": self.use_csr_sans,
            "not_before_duration": self.not_before_duration,
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, dflt) in PASSIVE {
            let v = self
                .other
                .get(*k)
                .cloned()
                .unwrap_or_else(|| serde_json::from_str(dflt).unwrap_or(Value::Null));
            m.insert((*k).to_string(), v);
        }
        Value::Object(m)
    }

    /// Extended key usages beyond server/client auth, as OIDs.
    pub fn extra_ekus(&self) -> ApiResult<Vec<Vec<u64>>> {
        let mut out = Vec::new();
        if self.code_signing_flag {
            out.push(vec![1, 3, 6, 1, 5, 5, 7, 3, 3]);
        }
        if self.email_protection_flag {
            out.push(vec![1, 3, 6, 1, 5, 5, 7, 3, 4]);
        }
        for u in &self.ext_key_usage {
            if let Some(o) = eku_oid(u)? {
                out.push(o);
            }
        }
        Ok(out)
    }
}

/// Go's `x509.ExtKeyUsage` names as Vault takes them (`ServerAuth`, `ClientAuth`, ...);
/// `None` for the two the flags already cover.
fn eku_oid(name: &str) -> ApiResult<Option<Vec<u64>>> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("extkeyusage").unwrap_or(&n);
    let base = |x: u64| Some(vec![1, 3, 6, 1, 5, 5, 7, 3, x]);
    Ok(match n {
        "serverauth" | "clientauth" => None,
        "codesigning" => base(3),
        "emailprotection" => base(4),
        "ipsecendsystem" => base(5),
        "ipsectunnel" => base(6),
        "ipsecuser" => base(7),
        "timestamping" => base(8),
        "ocspsigning" => base(9),
        "any" => Some(vec![2, 5, 29, 37, 0]),
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid ext_key_usage value {name:?}"
            )))
        }
    })
}

/// Go's `ryanuber/go-glob`: `*` matches any run of characters, dots included.
pub fn glob(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (
        parts.first().copied().unwrap_or(""),
        parts.last().copied().unwrap_or(""),
    );
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    for p in parts.iter().skip(1).take(parts.len().saturating_sub(2)) {
        match rest.find(p) {
            Some(i) => rest = rest.get(i + p.len()..).unwrap_or(""),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Vault's hostname rule (ASCII; an internationalised name is refused).
pub fn is_hostname(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

/// The first of `names` the role does not allow (Vault's `validateNames`), if any.
pub fn first_disallowed<'a>(role: &Role, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(String::as_str)
        .find(|n| !name_allowed(role, n))
}

fn name_allowed(role: &Role, name: &str) -> bool {
    let mut reduced = name.to_string();
    let mut email_domain = name.to_string();
    let mut is_email = false;
    let mut is_wildcard = false;
    let mut wildcard_label = String::new();
    if let Some((_, domain)) = name.split_once('@') {
        if domain.is_empty() || domain.contains('@') {
            return false;
        }
        is_email = true;
        email_domain = domain.to_string();
        reduced = domain.to_string();
    }
    if reduced.contains('*') {
        // The wildcard must sit in the first label only.
        let Some((label, rest)) = reduced.split_once('.') else {
            return false;
        };
        if !label.contains('*') || rest.contains('*') || rest.is_empty() {
            return false;
        }
        if !role.allow_wildcard_certificates {
            return false;
        }
        wildcard_label = label.to_string();
        reduced = rest.to_string();
        is_wildcard = true;
    }
    if is_email && is_wildcard {
        return false;
    }
    if role.enforce_hostnames {
        if !reduced.is_empty() && !is_hostname(&reduced) {
            return false;
        }
        let label_ok = wildcard_label == "*" || is_hostname(&wildcard_label.replacen('*', "a", 1));
        if is_wildcard && !label_ok {
            return false;
        }
    }
    if role.allow_any_name {
        return true;
    }
    if role.allow_localhost {
        let local = |d: &str| d == "localhost" || d == "localdomain";
        if local(&reduced) || (is_email && local(&email_domain)) {
            return true;
        }
        if role.allow_subdomains
            && (reduced.ends_with(".localhost")
                || reduced.ends_with(".localdomain")
                || (is_wildcard && local(&reduced)))
        {
            return true;
        }
    }
    role.allowed_domains
        .iter()
        .filter(|d| !d.is_empty())
        .any(|d| {
            (role.allow_bare_domains
                && (name.eq_ignore_ascii_case(d)
                    || (is_email && email_domain.eq_ignore_ascii_case(d))))
                || (role.allow_subdomains
                    && (reduced.ends_with(&format!(".{d}"))
                        || (is_wildcard && reduced.eq_ignore_ascii_case(d))))
                || (role.allow_glob_domains && d.contains('*') && glob(d, name))
        })
}

/// The TTL a certificate gets (Vault's order: request, role, mount default; never above
/// the role's max, else the mount's), with Vault's warning when it was cut.
pub fn effective_ttl(
    requested: i64,
    role_ttl: i64,
    role_max: i64,
    mount_default: i64,
    mount_max: i64,
) -> (i64, Option<String>) {
    let mut ttl = requested;
    if ttl == 0 && role_ttl > 0 {
        ttl = role_ttl;
    }
    let max = if role_max > 0 { role_max } else { mount_max };
    if ttl == 0 {
        ttl = mount_default;
    }
    if ttl > max {
        let fmt = |s: i64| airlock_core::duration::format_go_duration(s.max(0) as u64);
        let w = format!(
            "TTL \"{}\" is longer than permitted maxTTL \"{}\", so maxTTL is being used",
            fmt(ttl),
            fmt(max)
        );
        return (max, Some(w));
    }
    (ttl, None)
}
