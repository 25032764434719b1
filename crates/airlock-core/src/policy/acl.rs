//! Compiled ACLs: rules from several policies merged per path, Vault's lookup priority
//! (exact, then longest prefix and segment patterns), capability and parameter checks.

use super::*;

/// Compiled permissions for one pattern (merged across policies).
#[derive(Debug, Clone)]
struct Perms {
    caps: Capabilities,
    min_wrapping_ttl: u64,
    max_wrapping_ttl: u64,
    allowed: BTreeMap<String, Vec<Json>>,
    denied: BTreeMap<String, Vec<Json>>,
    required: Vec<String>,
    /// Event types `subscribe` covers; `None`: every type.
    event_types: Option<Vec<String>>,
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
            event_types: event_types_of(rule),
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
        if rule.capabilities.contains(Capabilities::SUBSCRIBE) {
            self.event_types = if self.caps.contains(Capabilities::SUBSCRIBE) {
                match (self.event_types.take(), event_types_of(rule)) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                }
            } else {
                event_types_of(rule)
            };
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

/// The event types a rule's `subscribe` covers (`None`: all).
fn event_types_of(rule: &PathRule) -> Option<Vec<String>> {
    if rule.subscribe_event_types.is_empty() || rule.subscribe_event_types.iter().any(|t| t == "*")
    {
        None
    } else {
        Some(rule.subscribe_event_types.clone())
    }
}

/// Glob match with `*` for any run of characters (event types: `kv-v2/*`, `kv*`).
pub fn event_glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
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

    /// Whether events of `event_type` about `path` may be delivered to this token through
    /// Vault's event API: the governing rule grants `subscribe` for that type (and is no
    /// `deny`). The caller also checks `read` on the path.
    pub fn may_subscribe(&self, path: &str, event_type: &str) -> bool {
        if self.root {
            return true;
        }
        match self.lookup(path, false) {
            Some(p) if !p.caps.is_denied() && p.caps.contains(Capabilities::SUBSCRIBE) => {
                match &p.event_types {
                    None => true,
                    Some(types) => types.iter().any(|t| event_glob(t, event_type)),
                }
            }
            _ => false,
        }
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
