//! Unit tests for policy parsing and ACL evaluation, including every row of API.md §12
//! and the `token/027`-`029` capability captures.

use super::*;
use serde_json::json;

/// `capture/prio-a.hcl`, from fixture `policy/001-write-prio-a.json`.
const PRIO_A: &str = "# Policy used to exercise path priority rules (see API.md).\npath \"secret/data/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/data/+/x\" {\n  capabilities = [\"update\"]\n}\npath \"secret/data/team/*\" {\n  capabilities = [\"list\"]\n}\npath \"secret/data/team/a\" {\n  capabilities = [\"create\"]\n}\npath \"secret/data/tea*\" {\n  capabilities = [\"patch\"]\n}\npath \"secret/data/shared/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/data/+/+/deep\" {\n  capabilities = [\"delete\"]\n}\npath \"secret/data/x/+/deep\" {\n  capabilities = [\"sudo\", \"read\"]\n}";

/// `capture/prio-b.hcl`, from fixture `policy/002-write-prio-b.json`.
const PRIO_B: &str = "# Second policy: same pattern as in prio-a (capabilities are unioned) plus a deny.\npath \"secret/data/shared/*\" {\n  capabilities = [\"update\"]\n}\npath \"secret/data/team/b\" {\n  capabilities = [\"deny\"]\n}";

/// `capture/app-read.hcl`, from fixture `sys/018-policy-write.json`.
const APP_READ: &str = "# Application policy used by the fixtures.\npath \"secret/data/app/*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"patch\", \"delete\", \"list\"]\n}\n\npath \"secret/metadata/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n\n# deny wins over the broader glob above\npath \"secret/data/app/admin\" {\n  capabilities = [\"deny\"]\n}\n\n# + matches exactly one path segment\npath \"secret/data/team/+/config\" {\n  capabilities = [\"read\"]\n}\n\npath \"kv1/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n\npath \"database/creds/app\" {\n  capabilities = [\"read\"]\n}\n\npath \"sys/leases/renew\" {\n  capabilities = [\"update\"]\n}";

fn pol(name: &str, text: &str) -> Policy {
    Policy::parse(name, text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn acl(policies: &[(&str, &str)]) -> Acl {
    let parsed: Vec<Policy> = policies.iter().map(|(n, t)| pol(n, t)).collect();
    Acl::new(&parsed)
}

/// A token's ACL always includes `default`, as in the captures.
fn token_acl(policies: &[(&str, &str)]) -> Acl {
    let mut all = vec![("default", DEFAULT_POLICY)];
    all.extend_from_slice(policies);
    acl(&all)
}

fn names(acl: &Acl, path: &str) -> Vec<&'static str> {
    acl.evaluate(path).names()
}

#[test]
fn api_md_section_12_prio_a_and_b() {
    let acl = token_acl(&[("prio-a", PRIO_A), ("prio-b", PRIO_B)]);
    // (path, prio-a + prio-b, prio-a alone) — fixtures policy/004 and policy/005.
    let rows: &[(&str, &[&str], &[&str])] = &[
        ("secret/data/team/a", &["create"], &["create"]),
        ("secret/data/team/b", &["deny"], &["list"]),
        ("secret/data/team/c", &["list"], &["list"]),
        ("secret/data/teams", &["patch"], &["patch"]),
        ("secret/data/foo/x", &["update"], &["update"]),
        ("secret/data/team/x", &["list"], &["list"]),
        ("secret/data/zzz", &["read"], &["read"]),
        ("secret/data/shared/k", &["read", "update"], &["read"]),
        ("secret/data/a/b/deep", &["delete"], &["delete"]),
        ("secret/data/x/b/deep", &["read", "sudo"], &["read", "sudo"]),
        ("secret/data/a/b/c/deep", &["read"], &["read"]),
        ("secret/metadata/zzz", &["deny"], &["deny"]),
    ];
    let a_only = token_acl(&[("prio-a", PRIO_A)]);
    for (path, both, alone) in rows {
        assert_eq!(names(&acl, path), *both, "prio-a+b {path}");
        assert_eq!(names(&a_only, path), *alone, "prio-a {path}");
    }
}

#[test]
fn api_md_section_12_enforcement() {
    let acl = token_acl(&[("prio-a", PRIO_A), ("prio-b", PRIO_B)]);
    // policy/006: read allowed by data/*.
    assert!(acl
        .allowed("secret/data/zzz", Operation::Read, None)
        .is_ok());
    // policy/007: team/* (list only) beats data/* for a read → 403.
    assert_eq!(
        acl.allowed("secret/data/team/c", Operation::Read, None),
        Err(Denied::MissingCapability)
    );
    // policy/008 and 010: create is not granted, update is (unioned from prio-b).
    assert_eq!(
        acl.allowed("secret/data/shared/k", Operation::Create, None),
        Err(Denied::MissingCapability)
    );
    let d = acl
        .allowed("secret/data/shared/k", Operation::Update, None)
        .unwrap();
    assert_eq!(d.granting_policies, vec!["prio-b"]);
    // policy/011: read of the same key granted by prio-a.
    let d = acl
        .allowed("secret/data/shared/k", Operation::Read, None)
        .unwrap();
    assert_eq!(d.granting_policies, vec!["prio-a"]);
    assert_eq!(
        acl.allowed("secret/data/team/b", Operation::Read, None),
        Err(Denied::ExplicitDeny)
    );
    assert_eq!(
        acl.allowed("secret/metadata/zzz", Operation::Read, None),
        Err(Denied::NoMatchingRule)
    );
}

#[test]
fn token_027_to_029_capabilities() {
    let acl = token_acl(&[("app-read", APP_READ)]);
    let all = &["create", "delete", "list", "patch", "read", "update"][..];
    let rows: &[(&str, &[&str])] = &[
        ("secret/data/app/config", all),
        ("secret/data/app/admin", &["deny"]),
        ("secret/metadata/app/config", &["list", "read"]),
        ("secret/data/team/x/config", &["read"]),
        ("secret/data/team/x/y/config", &["deny"]),
        ("secret/data/other", &["deny"]),
        ("database/creds/app", &["read"]),
        ("sys/mounts", &["deny"]),
        ("auth/token/lookup-self", &["read"]),
        ("secret/data/app/x", all),
    ];
    for (path, want) in rows {
        assert_eq!(names(&acl, path), *want, "{path}");
    }
    let d = acl.evaluate("secret/data/app/config");
    assert_eq!(d.granting_policies, vec!["app-read"]);
    assert_eq!(
        acl.evaluate("auth/token/lookup-self").granting_policies,
        vec!["default"]
    );
    // sys/leases/renew is in both default and app-read: union, both grant.
    assert_eq!(
        acl.evaluate("sys/leases/renew").granting_policies,
        vec!["default", "app-read"]
    );
}

#[test]
fn plus_matches_exactly_one_segment() {
    let acl = acl(&[("p", r#"path "a/+/c" { capabilities = ["read"] }"#)]);
    assert_eq!(acl.capabilities("a/b/c"), Capabilities::READ);
    assert_eq!(acl.capabilities("a//c"), Capabilities::READ);
    assert!(acl.capabilities("a/b/x/c").is_denied());
    assert!(acl.capabilities("a/c").is_denied());
    assert!(acl.capabilities("a/b/c/d").is_denied());
    assert!(acl.capabilities("a/b/cc").is_denied());
}

#[test]
fn plus_with_trailing_glob() {
    let acl = acl(&[(
        "p",
        r#"
path "a/+/c*" { capabilities = ["read"] }
path "+/x" { capabilities = ["list"] }
path "+" { capabilities = ["delete"] }
"#,
    )]);
    assert_eq!(acl.capabilities("a/b/c"), Capabilities::READ);
    assert_eq!(acl.capabilities("a/b/cat"), Capabilities::READ);
    assert_eq!(acl.capabilities("a/b/c/d/e"), Capabilities::READ);
    assert!(acl.capabilities("a/b/x").is_denied());
    assert_eq!(acl.capabilities("q/x"), Capabilities::LIST);
    assert_eq!(acl.capabilities("top"), Capabilities::DELETE);
    assert!(acl.capabilities("top/level").is_denied());
}

#[test]
fn glob_versus_plus_priority() {
    let acl = acl(&[(
        "p",
        r#"
path "secret/*" { capabilities = ["read"] }
path "secret/+/config" { capabilities = ["update"] }
path "secret/+/conf*" { capabilities = ["list"] }
path "secret/app/*" { capabilities = ["delete"] }
path "secret/+/+" { capabilities = ["create"] }
path "secret/a*" { capabilities = ["patch"] }
"#,
    )]);
    // Same first wildcard position: non-prefix `+/config` beats prefix `+/conf*` and
    // `secret/*` (rule 2); `+/+` has more `+` (rule 3).
    assert_eq!(acl.capabilities("secret/x/config"), Capabilities::UPDATE);
    assert_eq!(acl.capabilities("secret/x/configs"), Capabilities::CREATE);
    // Both `secret/*` and `secret/+/conf*` are prefixes with the first wildcard at 7:
    // fewer `+` segments wins (rule 3) although the other pattern is longer.
    assert_eq!(acl.capabilities("secret/x/conf/y"), Capabilities::READ);
    // `secret/app/*` has its glob later than any `+` (rule 1).
    assert_eq!(acl.capabilities("secret/app/config"), Capabilities::DELETE);
    // `secret/a*` (glob at 8) beats `secret/+/+` (wildcard at 7).
    assert_eq!(acl.capabilities("secret/ab/c"), Capabilities::PATCH);
    assert_eq!(acl.capabilities("secret/x"), Capabilities::READ);
}

#[test]
fn longer_prefix_wins_among_globs() {
    let acl = acl(&[(
        "p",
        r#"
path "secret/*" { capabilities = ["read"] }
path "secret/foo*" { capabilities = ["list"] }
path "*" { capabilities = ["sudo"] }
"#,
    )]);
    assert_eq!(acl.capabilities("secret/foobar"), Capabilities::LIST);
    assert_eq!(acl.capabilities("secret/fo"), Capabilities::READ);
    assert_eq!(acl.capabilities("other"), Capabilities::SUDO);
    assert_eq!(acl.capabilities(""), Capabilities::SUDO);
}

#[test]
fn exact_beats_glob_and_plus() {
    let acl = acl(&[(
        "p",
        r#"
path "secret/a/b" { capabilities = ["read"] }
path "secret/a/*" { capabilities = ["update"] }
path "secret/+/b" { capabilities = ["delete"] }
"#,
    )]);
    assert_eq!(acl.capabilities("secret/a/b"), Capabilities::READ);
    assert_eq!(acl.capabilities("secret/a/c"), Capabilities::UPDATE);
    assert_eq!(acl.capabilities("secret/z/b"), Capabilities::DELETE);
    // Request paths lose their leading slashes.
    assert_eq!(acl.capabilities("//secret/a/b"), Capabilities::READ);
}

#[test]
fn deny_takes_precedence_in_either_order() {
    let grant = ("grant", r#"path "s/*" { capabilities = ["read", "sudo"] }"#);
    let deny = ("deny", r#"path "s/*" { capabilities = ["deny"] }"#);
    for order in [[grant, deny], [deny, grant]] {
        let acl = acl(&order);
        assert_eq!(acl.capabilities("s/x"), Capabilities::DENY);
        assert_eq!(names(&acl, "s/x"), vec!["deny"]);
        assert!(!acl.has_sudo("s/x"));
        assert_eq!(
            acl.allowed("s/x", Operation::Read, None),
            Err(Denied::ExplicitDeny)
        );
        assert!(acl.evaluate("s/x").granting_policies.is_empty());
    }
    // deny in the same list drops everything else, even invalid names after it.
    let p = pol(
        "p",
        r#"path "x" { capabilities = ["read", "deny", "bogus"] }"#,
    );
    assert_eq!(p.rules[0].capabilities, Capabilities::DENY);
}

#[test]
fn same_pattern_union_and_granting() {
    let acl = acl(&[
        ("one", r#"path "kv/*" { capabilities = ["read"] }"#),
        ("two", r#"path "kv/*" { capabilities = ["list", "read"] }"#),
        ("three", r#"path "kv/+" { capabilities = ["delete"] }"#),
    ]);
    // `kv/+` beats `kv/*` for one segment (non-prefix), so test a deeper path too.
    assert_eq!(
        acl.capabilities("kv/a/b"),
        Capabilities::READ | Capabilities::LIST
    );
    let d = acl.allowed("kv/a/b", Operation::Read, None).unwrap();
    assert_eq!(d.granting_policies, vec!["one", "two"]);
    let d = acl.allowed("kv/a/b", Operation::List, None).unwrap();
    assert_eq!(d.granting_policies, vec!["two"]);
    assert_eq!(acl.capabilities("kv/a"), Capabilities::DELETE);
    // Repeated block in one policy is unioned too.
    let acl = acl_one(
        r#"path "x" { capabilities = ["read"] }
path "x" { capabilities = ["list"] }"#,
    );
    assert_eq!(
        acl.capabilities("x"),
        Capabilities::READ | Capabilities::LIST
    );
}

fn acl_one(text: &str) -> Acl {
    acl(&[("p", text)])
}

#[test]
fn list_versus_read_and_trailing_slash() {
    let acl = acl_one(
        r#"
path "secret/metadata/app" { capabilities = ["list"] }
path "kv/dir*" { capabilities = ["list"] }
path "secret/data/only-read" { capabilities = ["read"] }
"#,
    );
    // LIST requests end in `/`; the exact rule without the slash applies.
    assert!(acl
        .allowed("secret/metadata/app/", Operation::List, None)
        .is_ok());
    assert_eq!(
        acl.allowed("secret/metadata/app/", Operation::Read, None),
        Err(Denied::NoMatchingRule)
    );
    assert!(acl.allowed("kv/dir/", Operation::List, None).is_ok());
    assert_eq!(
        acl.allowed("secret/data/only-read", Operation::List, None),
        Err(Denied::MissingCapability)
    );
    // sys/capabilities is evaluated as a list request.
    assert_eq!(names(&acl, "secret/metadata/app/"), vec!["list"]);
}

#[test]
fn sudo_checks() {
    let acl = token_acl(&[("prio-a", PRIO_A)]);
    assert!(acl.has_sudo("secret/data/x/b/deep"));
    assert!(!acl.has_sudo("secret/data/a/b/deep"));
    let d = acl
        .allowed("secret/data/x/b/deep", Operation::Read, None)
        .unwrap();
    assert!(d.has_sudo());
    let d = acl
        .allowed("secret/data/zzz", Operation::Read, None)
        .unwrap();
    assert!(!d.has_sudo());
    // A LIST path with a trailing slash finds the exact rule without it, sudo included.
    let accessors = acl_one(r#"path "auth/token/accessors" { capabilities = ["list", "sudo"] }"#);
    assert!(accessors.has_sudo("auth/token/accessors/"));
    let d = accessors
        .allowed("auth/token/accessors/", Operation::List, None)
        .unwrap();
    assert!(d.has_sudo());
    // sudo alone does not grant the operation.
    let sudo_only = acl_one(r#"path "sys/leases/lookup/*" { capabilities = ["sudo"] }"#);
    assert!(sudo_only.has_sudo("sys/leases/lookup/x"));
    assert_eq!(
        sudo_only.allowed("sys/leases/lookup/x", Operation::List, None),
        Err(Denied::MissingCapability)
    );
}

#[test]
fn root_acl() {
    let acl = Acl::root();
    assert!(acl.is_root());
    let d = acl.evaluate("anything/at/all");
    assert_eq!(d.names(), vec!["root"]);
    assert!(d.has_sudo());
    assert_eq!(acl.capabilities("x"), Capabilities::ALL);
    let d = acl.allowed("sys/mounts", Operation::Update, None).unwrap();
    assert!(d.is_root);
    assert_eq!(d.granting_policies, vec!["root"]);
    assert!(acl.has_sudo("sys/raw"));
}

#[test]
fn empty_acl_denies_everything() {
    let acl = Acl::new(&[]);
    assert_eq!(acl.capabilities("secret/x"), Capabilities::DENY);
    assert_eq!(
        acl.allowed("secret/x", Operation::Read, None),
        Err(Denied::NoMatchingRule)
    );
    assert_eq!(Denied::NoMatchingRule.to_string(), "permission denied");
}

#[test]
fn json_policies() {
    let p = pol(
        "j",
        r#"{"path":{"secret/*":{"capabilities":["read"]},"secret/+/x":{"capabilities":["list"],"min_wrapping_ttl":60}}}"#,
    );
    assert_eq!(p.rules.len(), 2);
    let acl = Acl::new(&[p]);
    assert_eq!(acl.capabilities("secret/a"), Capabilities::READ);
    assert_eq!(acl.capabilities("secret/a/x"), Capabilities::LIST);

    let p = pol(
        "j",
        r#"  {"path": [{"a": {"capabilities": ["read"]}}, {"b": {"capabilities": ["deny"]}}]}"#,
    );
    assert_eq!(p.rules.len(), 2);
    assert_eq!(p.rules[1].capabilities, Capabilities::DENY);

    let p = pol(
        "j",
        r#"{"path":{"s/*":{"capabilities":["update"],"allowed_parameters":{"Foo":["a*"],"*":[]},"required_parameters":["foo"]}}}"#,
    );
    assert_eq!(
        p.rules[0].allowed_parameters.get("foo"),
        Some(&vec![json!("a*")])
    );
    assert_eq!(p.rules[0].required_parameters, vec!["foo"]);

    let err = Policy::parse("j", r#"{"path":{"s/*":{"capabilities":["reed"]}}}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"path "s/*": path "s/*": invalid capability"#
    );
    assert!(matches!(
        Policy::parse("j", r#"{"path": {"#),
        Err(PolicyError::Json(_))
    ));
    assert!(matches!(
        Policy::parse("j", r#"{"paths": {}}"#),
        Err(PolicyError::InvalidKey { .. })
    ));
}

#[test]
fn hcl_map_form_of_path() {
    let p = pol(
        "m",
        r#"path = { "a/*" = { capabilities = ["read"] } }
path { "b" { capabilities = ["list"] } }"#,
    );
    assert_eq!(p.rules.len(), 2);
    assert_eq!(p.rules[0].pattern, "a/*");
    assert!(p.rules[0].is_prefix);
    assert_eq!(p.rules[1].capabilities, Capabilities::LIST);
}

mod errors;

/// Property test against a reference model: for a policy with one rule, a path gets the
/// rule's capability exactly when a naive matcher says the rule's pattern matches it
/// (`+` is one whole segment, a trailing `*` any suffix, everything else literal).
#[test]
fn one_rule_matches_as_the_reference_model_says() {
    fn reference(pattern: &str, path: &str) -> bool {
        let (pat, glob) = match pattern.strip_suffix('*') {
            Some(p) => (p, true),
            None => (pattern, false),
        };
        // Walk the pattern; `+` consumes one segment of the path.
        let (mut pi, mut si) = (pat.as_bytes(), path.as_bytes());
        loop {
            match pi.first() {
                None => return if glob { true } else { si.is_empty() },
                Some(b'+') => {
                    let seg = si.iter().position(|c| *c == b'/').unwrap_or(si.len());
                    if seg == 0 {
                        return false;
                    }
                    pi = &pi[1..];
                    si = &si[seg..];
                }
                Some(c) => {
                    if si.first() != Some(c) {
                        return false;
                    }
                    pi = &pi[1..];
                    si = &si[1..];
                }
            }
        }
    }
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let segs = ["a", "b", "ab", "secret", "data", "x1"];
    let mut checked = 0;
    for _ in 0..3000 {
        let n = 1 + next(4) as usize;
        let pat: Vec<String> = (0..n)
            .map(|_| match next(5) {
                0 => "+".to_string(),
                _ => segs[next(segs.len() as u64) as usize].to_string(),
            })
            .collect();
        let mut pattern = pat.join("/");
        match next(3) {
            0 => pattern.push('*'),
            1 => pattern.push_str("/*"),
            _ => {}
        }
        let text = format!("path \"{pattern}\" {{ capabilities = [\"read\"] }}");
        let Ok(p) = Policy::parse("prop", &text) else {
            continue;
        };
        let acl = Acl::new(&[p]);
        for _ in 0..20 {
            let m = 1 + next(5) as usize;
            let path: Vec<&str> = (0..m)
                .map(|_| segs[next(segs.len() as u64) as usize])
                .collect();
            // Trailing-slash (list) paths follow Vault's own rules, pinned by the compat
            // cases; this model covers the rest.
            let path = path.join("/");
            let got = acl.capabilities(&path).contains(Capabilities::READ);
            assert_eq!(got, reference(&pattern, &path), "{pattern} vs {path}");
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn subscribe_covers_listed_event_types_only() {
    let acl = acl_one(
        r#"
path "secret/data/app/*" {
  capabilities = ["read", "subscribe"]
  subscribe_event_types = ["kv-v2/data-*", "kv-v1/write"]
}
path "secret/data/all/*" { capabilities = ["read", "subscribe"] }
path "secret/data/read-only/*" { capabilities = ["read"] }
path "secret/data/app/denied" { capabilities = ["deny"] }
"#,
    );
    assert!(acl.may_subscribe("secret/data/app/x", "kv-v2/data-write"));
    assert!(acl.may_subscribe("secret/data/app/x", "kv-v1/write"));
    assert!(!acl.may_subscribe("secret/data/app/x", "kv-v2/destroy"));
    assert!(acl.may_subscribe("secret/data/all/x", "kv-v2/destroy"));
    assert!(!acl.may_subscribe("secret/data/read-only/x", "kv-v2/data-write"));
    assert!(!acl.may_subscribe("secret/data/app/denied", "kv-v2/data-write"));
    assert!(!acl.may_subscribe("other/x", "kv-v2/data-write"));
    assert!(event_glob("kv*", "kv-v2/data-write"));
    assert!(event_glob("*", ""));
    assert!(event_glob("a*b*c", "aXbYc"));
    assert!(!event_glob("a*b*c", "aXcYb"));
    assert!(!event_glob("ab*ba", "aba"));
}
