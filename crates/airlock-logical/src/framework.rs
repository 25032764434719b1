//! Declarative path tables: what an engine serves, written down once.
//!
//! An engine lists its paths as [`PathSpec`]s: a pattern with named segments, the fields the
//! path accepts (typed, with defaults and a `sensitive` flag), one handler per operation,
//! whether the path answers its own existence check (create vs update), whether it is a login
//! (unauthenticated) or needs `sudo`, and help text served on `?help=1`. The router matches a
//! request against the table with [`route`]; an operation the path does not declare is answered
//! here, once, with Vault's "unsupported operation" — engines never write that fallback.
//!
//! Patterns are matched against the path below the mount:
//! - a literal segment matches itself;
//! - `{name}` matches one non-empty segment (captured as `name`);
//! - `{name*}` matches the rest of the path, possibly empty (`{name+}`: non-empty), slashes
//!   included — up to the literal segments that may follow it (`mounts/{path+}/tune`); `data/{key*}` also matches a bare `data`;
//! - a trailing `/?` makes the final slash optional (`roles/?` matches `roles` and `roles/`).

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::op::Op;

/// The type of a field, as Vault's framework names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Str,
    Int,
    Bool,
    /// Seconds, or a Go duration string.
    Duration,
    /// A list of strings, or a comma-separated string.
    StrList,
    /// A map of string to string.
    Map,
    /// `k=v` pairs or a map.
    KvPairs,
    /// Any JSON value (objects the engine reads itself).
    Json,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Str => "string",
            FieldKind::Int => "int",
            FieldKind::Bool => "bool",
            FieldKind::Duration => "duration (sec)",
            FieldKind::StrList => "comma-separated strings",
            FieldKind::Map => "map",
            FieldKind::KvPairs => "key-value pairs",
            FieldKind::Json => "object",
        }
    }
}

/// One field a path accepts.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    /// A credential: never written to the audit log of an unauthenticated request, not even
    /// as an HMAC.
    pub sensitive: bool,
    /// The value used when the request does not carry the field, in its JSON text form.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, kind: FieldKind) -> Self {
        Field {
            name,
            kind,
            sensitive: false,
            default: None,
            help: "",
        }
    }
    pub const fn str(name: &'static str) -> Self {
        Self::new(name, FieldKind::Str)
    }
    pub const fn int(name: &'static str) -> Self {
        Self::new(name, FieldKind::Int)
    }
    pub const fn bool(name: &'static str) -> Self {
        Self::new(name, FieldKind::Bool)
    }
    pub const fn duration(name: &'static str) -> Self {
        Self::new(name, FieldKind::Duration)
    }
    pub const fn list(name: &'static str) -> Self {
        Self::new(name, FieldKind::StrList)
    }
    pub const fn map(name: &'static str) -> Self {
        Self::new(name, FieldKind::Map)
    }
    pub const fn json(name: &'static str) -> Self {
        Self::new(name, FieldKind::Json)
    }
    pub const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub const fn default(mut self, json_text: &'static str) -> Self {
        self.default = Some(json_text);
        self
    }
    pub const fn help(mut self, text: &'static str) -> Self {
        self.help = text;
        self
    }

    /// The default as a JSON value (a plain string when the text is not JSON).
    pub fn default_value(&self) -> Option<Value> {
        self.default
            .map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
    }
}

/// One path of an engine: `H` is the engine's own handler enum.
pub struct PathSpec<H: 'static> {
    pub pattern: &'static str,
    /// Field groups (several paths share groups such as the `token_*` settings).
    pub fields: &'static [&'static [Field]],
    pub ops: &'static [(Op, H)],
    /// The engine answers whether the target exists, so POST/PUT becomes create or update.
    pub existence: bool,
    /// An unauthenticated login endpoint.
    pub login: bool,
    /// Read without a token (Vault's `Unauthenticated` paths: a CA certificate, a CRL).
    pub unauthenticated: bool,
    /// Needs `sudo` in addition to the operation's capability.
    pub sudo: bool,
    pub synopsis: &'static str,
    pub help: &'static str,
}

impl<H> PathSpec<H> {
    pub const fn new(pattern: &'static str, ops: &'static [(Op, H)]) -> Self {
        PathSpec {
            pattern,
            fields: &[],
            ops,
            existence: false,
            login: false,
            unauthenticated: false,
            sudo: false,
            synopsis: "",
            help: "",
        }
    }
    pub const fn fields(mut self, f: &'static [&'static [Field]]) -> Self {
        self.fields = f;
        self
    }
    pub const fn existence(mut self) -> Self {
        self.existence = true;
        self
    }
    pub const fn login(mut self) -> Self {
        self.login = true;
        self
    }
    pub const fn unauthenticated(mut self) -> Self {
        self.unauthenticated = true;
        self
    }
    pub const fn sudo(mut self) -> Self {
        self.sudo = true;
        self
    }
    pub const fn help(mut self, synopsis: &'static str, help: &'static str) -> Self {
        self.synopsis = synopsis;
        self.help = help;
        self
    }

    /// The handler for `op`. POST/PUT arrive as update: a path that only declares create
    /// still takes them (and vice versa), as Vault's framework does.
    pub fn handler(&self, op: Op) -> Option<H>
    where
        H: Copy,
    {
        let find = |o: Op| self.ops.iter().find(|(x, _)| *x == o).map(|(_, h)| *h);
        find(op).or_else(|| match op {
            Op::Create => find(Op::Update),
            Op::Update => find(Op::Create),
            _ => None,
        })
    }

    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields
            .iter()
            .flat_map(|g| g.iter())
            .find(|f| f.name == name)
    }

    /// Names of the sensitive fields.
    pub fn sensitive_fields(&self) -> Vec<&'static str> {
        self.fields
            .iter()
            .flat_map(|g| g.iter())
            .filter(|f| f.sensitive)
            .map(|f| f.name)
            .collect()
    }

    /// The `?help=1` text: synopsis, description, operations and fields.
    pub fn help_text(&self) -> String {
        let mut out = format!("## PATH\n\n    {}\n\n", self.pattern);
        if !self.synopsis.is_empty() {
            out.push_str(&format!("{}\n\n", self.synopsis));
        }
        if !self.help.is_empty() {
            out.push_str(&format!("## DESCRIPTION\n\n{}\n\n", self.help));
        }
        let ops: Vec<&str> = self.ops.iter().map(|(o, _)| o.as_str()).collect();
        out.push_str(&format!("## OPERATIONS\n\n    {}\n", ops.join(", ")));
        let fields: Vec<&Field> = self.fields.iter().flat_map(|g| g.iter()).collect();
        if !fields.is_empty() {
            out.push_str("\n## PARAMETERS\n\n");
            for f in fields {
                out.push_str(&format!("    {} ({})", f.name, f.kind.as_str()));
                if let Some(d) = f.default {
                    out.push_str(&format!(" default: {d}"));
                }
                if f.sensitive {
                    out.push_str(" [sensitive]");
                }
                out.push('\n');
                if !f.help.is_empty() {
                    out.push_str(&format!("        {}\n", f.help));
                }
            }
        }
        out
    }
}

/// Captured segments of a match.
pub type Captures = Vec<(&'static str, String)>;

/// A captured segment by name (empty when the pattern has none by that name).
pub fn cap<'a>(caps: &'a Captures, name: &str) -> &'a str {
    caps.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Matches `rel` (the path below the mount) against one pattern.
pub fn match_pattern(pattern: &'static str, rel: &str) -> Option<Captures> {
    let (pattern, optional_slash) = match pattern.strip_suffix("/?") {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let rel = if optional_slash {
        rel.strip_suffix('/').unwrap_or(rel)
    } else {
        rel
    };
    let mut caps = Vec::new();
    if pattern.is_empty() {
        return rel.is_empty().then_some(caps);
    }
    let pat: Vec<&'static str> = pattern.split('/').collect();
    let mut rest = rel;
    for (i, seg) in pat.iter().enumerate() {
        let last = i + 1 == pat.len();
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let greedy = name
                .strip_suffix('*')
                .map(|n| (n, false))
                .or_else(|| name.strip_suffix('+').map(|n| (n, true)));
            if let Some((n, non_empty)) = greedy {
                // The rest of the path, less the literal segments the pattern ends with.
                let tail = &pat[i + 1..];
                if tail.iter().any(|t| t.starts_with('{')) {
                    return None;
                }
                let middle = if tail.is_empty() {
                    rest
                } else {
                    let suffix = format!("/{}", tail.join("/"));
                    rest.strip_suffix(suffix.as_str())?
                };
                if non_empty && middle.is_empty() {
                    return None;
                }
                caps.push((n, middle.to_string()));
                return Some(caps);
            }
            let (head, tail) = match rest.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            if head.is_empty() {
                return None;
            }
            caps.push((name, head.to_string()));
            match (tail, last) {
                (None, true) => return Some(caps),
                (Some(t), false) => rest = t,
                _ => return None,
            }
        } else {
            let (head, tail) = match rest.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            if head != *seg {
                return None;
            }
            match (tail, last) {
                (None, true) => return Some(caps),
                (Some(t), false) => rest = t,
                (None, false) => {
                    // `data` matches `data/{key*}` with an empty key.
                    let next = pat.get(i + 1).copied().unwrap_or("");
                    if i + 2 == pat.len() && next.starts_with('{') && next.ends_with("*}") {
                        caps.push((&next[1..next.len() - 2], String::new()));
                        return Some(caps);
                    }
                    return None;
                }
                _ => return None,
            }
        }
    }
    None
}

/// The first path of `table` whose pattern matches `rel`.
pub fn find<H>(
    table: &'static [PathSpec<H>],
    rel: &str,
) -> Option<(&'static PathSpec<H>, Captures)> {
    table
        .iter()
        .find_map(|p| match_pattern(p.pattern, rel).map(|c| (p, c)))
}

/// Matches and picks the handler: unknown path → `Ok(None)` (the engine decides what that
/// answers), undeclared operation → "unsupported operation".
pub fn route<H: Copy>(
    table: &'static [PathSpec<H>],
    rel: &str,
    op: Op,
) -> ApiResult<Option<(&'static PathSpec<H>, H, Captures)>> {
    let Some((spec, caps)) = find(table, rel) else {
        return Ok(None);
    };
    match spec.handler(op) {
        Some(h) => Ok(Some((spec, h, caps))),
        None => Err(ApiError::unsupported_operation()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(p: &'static str, rel: &str) -> Option<Vec<(String, String)>> {
        match_pattern(p, rel).map(|c| c.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    #[test]
    fn patterns() {
        assert_eq!(caps("config", "config"), Some(vec![]));
        assert_eq!(caps("config", "config/"), None);
        assert_eq!(caps("roles/?", "roles/"), Some(vec![]));
        assert_eq!(caps("roles/?", "roles"), Some(vec![]));
        assert_eq!(
            caps("roles/{name}", "roles/a"),
            Some(vec![("name".into(), "a".into())])
        );
        assert_eq!(caps("roles/{name}", "roles/a/b"), None);
        assert_eq!(caps("roles/{name}", "roles/"), None);
        assert_eq!(
            caps("data/{key*}", "data/a/b/"),
            Some(vec![("key".into(), "a/b/".into())])
        );
        assert_eq!(
            caps("data/{key*}", "data/"),
            Some(vec![("key".into(), "".into())])
        );
        assert_eq!(caps("data/{key+}", "data/"), None);
        assert_eq!(
            caps("data/{key*}", "data"),
            Some(vec![("key".into(), "".into())])
        );
        assert_eq!(caps("data/{key+}", "data"), None);
        assert_eq!(
            caps("role/{name}/secret-id/?", "role/x/secret-id/"),
            Some(vec![("name".into(), "x".into())])
        );
        assert_eq!(caps("", ""), Some(vec![]));
        assert_eq!(
            caps("mounts/{path+}/tune/?", "mounts/a/b/tune/"),
            Some(vec![("path".into(), "a/b".into())])
        );
        assert_eq!(caps("mounts/{path+}/tune", "mounts/tune"), None);
        assert_eq!(caps("mounts/{path+}/tune", "mounts/a/tuned"), None);
        assert_eq!(caps("", "x"), None);
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum H {
        Read,
        Write,
    }
    static TABLE: &[PathSpec<H>] =
        &[
            PathSpec::new("config", &[(Op::Read, H::Read), (Op::Update, H::Write)])
                .fields(&[&[Field::str("a").sensitive(), Field::int("n").default("3")]]),
        ];

    #[test]
    fn routing_and_fallbacks() {
        let (_, h, _) = route(TABLE, "config", Op::Read).ok().flatten().unwrap();
        assert_eq!(h, H::Read);
        let (_, h, _) = route(TABLE, "config", Op::Create).ok().flatten().unwrap();
        assert_eq!(h, H::Write);
        assert_eq!(
            route(TABLE, "config", Op::Delete).err().unwrap().status,
            405
        );
        assert!(route(TABLE, "nope", Op::Read).ok().unwrap().is_none());
        assert_eq!(TABLE[0].sensitive_fields(), vec!["a"]);
        assert!(TABLE[0].help_text().contains("n (int) default: 3"));
    }
}
