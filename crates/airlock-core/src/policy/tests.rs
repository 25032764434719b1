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
        r#"path "s/*": path "s/*": invalid capability "reed""#
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

#[test]
fn error_messages_match_openbao() {
    // sys/025: "failed to parse policy: path \"secret/*\": path \"secret/*\": invalid capability \"reed\""
    let err =
        Policy::parse("broken", r#"path "secret/*" { capabilities = ["reed"] }"#).unwrap_err();
    assert_eq!(
        format!("failed to parse policy: {err}"),
        "failed to parse policy: path \"secret/*\": path \"secret/*\": invalid capability \"reed\""
    );
    // sys/024.
    let err = Policy::parse("broken", r#"path "secret/*" { capabilities = ["read" }"#).unwrap_err();
    assert_eq!(
        format!("failed to parse policy: {err}"),
        "failed to parse policy: At 1:42: error parsing list, expected comma or list end, got: RBRACE"
    );
    let cases: &[(&str, &str)] = &[
        (
            "paths \"x\" {}",
            "invalid key \"paths\" on line 1",
        ),
        (
            "path \"x\" {\n  capabilities = [\"read\"]\n  capability = []\n}",
            "path \"x\": invalid key \"capability\" on line 3",
        ),
        (
            "path \"a/+*\" { capabilities = [\"read\"] }",
            "path \"a/+*\": invalid use of wildcards ('+*' is forbidden)",
        ),
        (
            "path \"/a/+*\" { capabilities = [\"read\"] }",
            "path \"a/+*\": invalid use of wildcards ('+*' is forbidden)",
        ),
        (
            "path \"a/{{x\" { capabilities = [\"read\"] }",
            "failed to validate policy templating: unbalanced templating characters",
        ),
        (
            "path \"a/}}x\" { capabilities = [\"read\"] }",
            "failed to validate policy templating: unbalanced templating characters",
        ),
        (
            "path \"x\" { capabilities = \"read\" }",
            "path \"x\": capabilities: expected a list of strings",
        ),
        (
            "path \"x\" { capabilities = [\"Read\"] }",
            "path \"x\": path \"x\": invalid capability \"Read\"",
        ),
        (
            "path \"x\" { policy = \"admin\" }",
            "path \"x\": invalid policy \"admin\"",
        ),
        (
            "path \"x\" { capabilities = [\"read\"] min_wrapping_ttl = \"1y\" }",
            "error parsing min_wrapping_ttl: time: unknown unit \"y\" in duration \"1y\"",
        ),
        (
            "path \"x\" { capabilities = [\"read\"] max_wrapping_ttl = true }",
            "error parsing max_wrapping_ttl: could not parse duration from input",
        ),
        (
            "path \"x\" { capabilities = [\"read\"] min_wrapping_ttl = \"2h\" max_wrapping_ttl = \"1h\" }",
            "max_wrapping_ttl cannot be less than min_wrapping_ttl",
        ),
        (
            "path \"x\" { capabilities = [\"read\"] expiration = \"tomorrow\" }",
            "path \"x\": invalid expiration time: could not parse string as date and time",
        ),
        (
            "path \"x\" { capabilities = [\"read\"] allowed_parameters = [\"a\"] }",
            "path \"x\": allowed_parameters: expected a map of parameter names to lists of values",
        ),
        (
            "path \"x\" { capabilities = [\"read\"] denied_parameters = { a = \"b\" } }",
            "path \"x\": denied_parameters: expected a map of parameter names to lists of values",
        ),
        ("path = \"x\"", "path: expected an object of path blocks"),
        ("path \"x\" = 1", "At 1:10: nested object expected: LBRACE got: ASSIGN"),
    ];
    for (text, want) in cases {
        let err = Policy::parse("p", text).expect_err(text);
        assert_eq!(err.to_string(), *want, "policy {text:?}");
    }
}

#[test]
fn scan_and_all_capability_names() {
    let p = pol(
        "p",
        r#"path "x" { capabilities = ["update", "scan", "sudo", "read", "list", "delete", "create", "patch"] }"#,
    );
    assert_eq!(
        p.rules[0].capabilities.names(),
        vec!["create", "delete", "list", "patch", "read", "scan", "sudo", "update"]
    );
    assert_eq!(p.rules[0].capabilities, Capabilities::ALL);
    assert_eq!(Capabilities::NONE.names(), vec!["deny"]);
    assert_eq!(
        (Capabilities::DENY | Capabilities::READ).names(),
        vec!["deny"]
    );
    let acl = Acl::new(&[p]);
    assert!(acl.allowed("x", Operation::Scan, None).is_ok());
    assert_eq!(Capabilities::from_name("scan"), Some(Capabilities::SCAN));
    assert_eq!(Capabilities::from_name("root"), None);
}

#[test]
fn legacy_policy_key() {
    let p = pol(
        "p",
        r#"
path "r" { policy = "read" }
path "w" { policy = "write" }
path "s" { policy = "sudo" }
path "d" { policy = "deny" capabilities = ["read"] }
path "c" { policy = "read" capabilities = ["update"] }
"#,
    );
    let caps: Vec<Vec<&str>> = p.rules.iter().map(|r| r.capabilities.names()).collect();
    assert_eq!(caps[0], vec!["list", "read"]);
    assert_eq!(caps[1], vec!["create", "delete", "list", "read", "update"]);
    assert_eq!(
        caps[2],
        vec!["create", "delete", "list", "read", "sudo", "update"]
    );
    assert_eq!(caps[3], vec!["deny"]);
    assert_eq!(caps[4], vec!["list", "read", "update"]);
}

#[test]
fn default_policy_text_and_behaviour() {
    assert!(DEFAULT_POLICY.starts_with("\n# Allow tokens to look up their own properties\n"));
    assert!(DEFAULT_POLICY.ends_with(
        "path \"identity/oidc/provider/+/authorize\" {\n    capabilities = [\"read\", \"update\"]\n}\n"
    ));
    assert_eq!(DEFAULT_POLICY.len(), 2270);
    let p = pol("default", DEFAULT_POLICY);
    assert!(p.templated);
    assert_eq!(p.rules.len(), 16);
    let acl = Acl::new(&[p]);
    for (path, want) in [
        ("auth/token/lookup-self", &["read"][..]),
        ("auth/token/renew-self", &["update"]),
        ("auth/token/revoke-self", &["update"]),
        ("sys/capabilities-self", &["update"]),
        ("sys/leases/renew", &["update"]),
        ("sys/leases/lookup", &["update"]),
        (
            "cubbyhole/foo",
            &["create", "delete", "list", "read", "update"],
        ),
        ("sys/wrapping/unwrap", &["update"]),
        ("sys/tools/hash/sha2-256", &["update"]),
        ("identity/oidc/provider/p/authorize", &["read", "update"]),
        ("identity/entity/id/{{identity.entity.id}}", &["deny"]),
        ("auth/token/create", &["deny"]),
    ] {
        assert_eq!(names(&acl, path), want, "{path}");
    }
}

#[test]
fn parameter_rules() {
    let acl = acl_one(
        r#"
path "p/allowed" {
  capabilities = ["create", "update", "read"]
  allowed_parameters = {
    "Name" = []
    "env"  = ["dev-*", "*-test", "*mid*", "prod"]
    "n"    = [1, true]
  }
}
path "p/star" {
  capabilities = ["update"]
  allowed_parameters = { "*" = [] }
  denied_parameters = { "secret" = [] "level" = ["high"] }
}
path "p/deny-all" {
  capabilities = ["update"]
  denied_parameters = { "*" = [] }
}
path "p/required" {
  capabilities = ["update"]
  required_parameters = ["Must"]
  allowed_parameters = { "*" = [], "other" = ["x"] }
}
path "p/lone-star" {
  capabilities = ["update"]
  allowed_parameters = { "v" = ["*"] }
}
"#,
    );
    let ok = |path: &str, op: Operation, p: Json| {
        acl.allowed(path, op, Some(p.as_object().unwrap())).is_ok()
    };
    use Operation::*;
    assert!(ok("p/allowed", Update, json!({"name": "anything"})));
    assert!(ok("p/allowed", Update, json!({"NAME": "anything"})));
    assert!(ok("p/allowed", Update, json!({"env": "dev-1"})));
    assert!(ok("p/allowed", Update, json!({"env": "a-test"})));
    assert!(ok("p/allowed", Update, json!({"env": "xmidx"})));
    assert!(ok("p/allowed", Update, json!({"env": "prod"})));
    assert!(!ok("p/allowed", Update, json!({"env": "production"})));
    assert!(!ok("p/allowed", Update, json!({"other": "x"})));
    assert!(ok("p/allowed", Create, json!({"n": 1})));
    assert!(ok("p/allowed", Create, json!({"n": 1.0})));
    assert!(ok("p/allowed", Create, json!({"n": true})));
    assert!(!ok("p/allowed", Create, json!({"n": 2})));
    assert!(!ok("p/allowed", Create, json!({"n": "1"})));
    // Read requests are checked too (query parameters), empty data always passes.
    assert!(!ok("p/allowed", Read, json!({"other": "x"})));
    assert!(ok("p/allowed", Read, json!({})));
    assert!(acl.allowed("p/allowed", Update, None).is_ok());

    assert!(ok("p/star", Update, json!({"anything": 1})));
    assert!(!ok("p/star", Update, json!({"secret": "x"})));
    assert!(!ok("p/star", Update, json!({"Secret": "x"})));
    assert!(!ok("p/star", Update, json!({"level": "high"})));
    assert!(ok("p/star", Update, json!({"level": "low"})));

    assert!(!ok("p/deny-all", Update, json!({"a": 1})));
    assert!(ok("p/deny-all", Update, json!({})));

    assert_eq!(
        acl.allowed("p/required", Update, None),
        Err(Denied::MissingRequiredParameter("Must".to_string()))
    );
    assert!(ok("p/required", Update, json!({"must": 1})));
    // The request key is not lowercased, only the required name (as in OpenBao).
    assert!(!ok("p/required", Update, json!({"Must": 1})));
    assert!(ok("p/required", Update, json!({"must": 1, "zzz": 2})));
    assert!(!ok("p/required", Update, json!({"must": 1, "other": "y"})));

    // A lone "*" value matches only the literal "*" (strutil.GlobbedStringsMatch).
    assert!(ok("p/lone-star", Update, json!({"v": "*"})));
    assert!(!ok("p/lone-star", Update, json!({"v": "x"})));
}

#[test]
fn parameter_merging_across_policies() {
    let acl = acl(&[
        (
            "a",
            r#"path "m" { capabilities = ["update"] allowed_parameters = { "k" = ["1"], "j" = [] } }"#,
        ),
        (
            "b",
            r#"path "m" { capabilities = ["create"] allowed_parameters = { "k" = ["2"], "j" = ["x"] } required_parameters = ["k"] }"#,
        ),
    ]);
    let check = |p: Json| acl.allowed("m", Operation::Update, Some(p.as_object().unwrap()));
    assert!(check(json!({"k": "1"})).is_ok());
    assert!(check(json!({"k": "2"})).is_ok());
    assert!(check(json!({"k": "3"})).is_err());
    assert!(check(json!({"k": "1", "j": "anything"})).is_ok());
    assert_eq!(
        check(json!({"j": "x"})),
        Err(Denied::MissingRequiredParameter("k".to_string()))
    );
}

#[test]
fn wrapping_ttl_bounds() {
    let acl = acl(&[
        (
            "a",
            r#"path "w" { capabilities = ["read"] min_wrapping_ttl = 60 max_wrapping_ttl = "1h" }"#,
        ),
        (
            "b",
            r#"path "w" { capabilities = ["read"] max_wrapping_ttl = "30m" }"#,
        ),
    ]);
    let p = pol(
        "x",
        r#"path "w" { capabilities = ["read"] min_wrapping_ttl = "1m" }"#,
    );
    assert_eq!(p.rules[0].min_wrapping_ttl, 60);
    assert_eq!(
        acl.allowed("w", Operation::Read, None),
        Err(Denied::WrappingTtl)
    );
    let at = |ttl| acl.allowed_wrapped("w", Operation::Read, None, Some(ttl));
    assert!(at(60).is_ok());
    assert!(at(1800).is_ok());
    assert_eq!(at(1801), Err(Denied::WrappingTtl));
    assert_eq!(at(59), Err(Denied::WrappingTtl));
}

#[test]
fn expiration_is_honoured_by_new_at() {
    let p = pol(
        "e",
        r#"
path "old" { capabilities = ["read"] expiration = "2020-01-01T00:00:00Z" }
path "new" { capabilities = ["read"] expiration = "2030-06-01T12:00:00.5+02:00" }
path "epoch" { capabilities = ["read"] expiration = "1700000000" }
"#,
    );
    assert_eq!(p.rules[0].expiration, Some(1_577_836_800));
    assert_eq!(p.rules[1].expiration, Some(1_906_538_400));
    assert_eq!(p.rules[2].expiration, Some(1_700_000_000));
    let now = 1_750_000_000;
    let acl = Acl::new_at(std::slice::from_ref(&p), now);
    assert!(acl.capabilities("old").is_denied());
    assert!(acl.capabilities("epoch").is_denied());
    assert_eq!(acl.capabilities("new"), Capabilities::READ);
    let acl = Acl::new(&[p]);
    assert_eq!(acl.capabilities("old"), Capabilities::READ);
}

#[test]
fn rfc3339_parsing() {
    assert_eq!(parse_absolute_time("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_absolute_time("2000-02-29T23:59:59Z"),
        Some(951_868_799)
    );
    assert_eq!(parse_absolute_time("1969-12-31T23:00:00-01:00"), Some(0));
    assert_eq!(parse_absolute_time("2001-02-29T00:00:00Z"), None);
    assert_eq!(parse_absolute_time("2000-01-01 00:00:00Z"), None);
    assert_eq!(parse_absolute_time("2000-01-01T00:00:00"), None);
    assert_eq!(parse_absolute_time("2000-01-01T00:00:00.Z"), None);
    assert_eq!(parse_absolute_time("2000-01-01T24:00:00Z"), None);
    assert_eq!(parse_absolute_time("é"), None);
}

#[test]
fn leading_slash_and_misc_keys() {
    let p = pol(
        "p",
        r#"
name = "ignored"
path "/secret/x" {
  capabilities = ["read"]
  comment = "why"
  mfa_methods = ["m"]
  pagination_limit = 10
  list_scan_response_keys_filter_path = "{{ .path }}"
  control_group = { ttl = "1h" }
}
"#,
    );
    assert_eq!(p.rules[0].raw_path, "/secret/x");
    assert_eq!(p.rules[0].pattern, "secret/x");
    assert_eq!(p.rules[0].comment.as_deref(), Some("why"));
    let acl = Acl::new(&[p]);
    assert_eq!(acl.capabilities("secret/x"), Capabilities::READ);
    // A policy with no paths parses and grants nothing.
    let empty = pol("e", "# nothing\n");
    assert!(empty.rules.is_empty());
}

#[test]
fn pattern_classification() {
    let p = pol(
        "p",
        r#"
path "a" { capabilities = ["read"] }
path "a*" { capabilities = ["read"] }
path "a/+/b" { capabilities = ["read"] }
path "+/b*" { capabilities = ["read"] }
path "a+b" { capabilities = ["read"] }
"#,
    );
    let flags: Vec<(bool, bool)> = p
        .rules
        .iter()
        .map(|r| (r.is_prefix, r.has_segment_wildcards))
        .collect();
    assert_eq!(
        flags,
        vec![
            (false, false),
            (true, false),
            (false, true),
            (false, true),
            (false, false)
        ]
    );
    // `a+b` is a literal path.
    let acl = Acl::new(&[p]);
    assert_eq!(acl.capabilities("a+b"), Capabilities::READ);
    assert!(acl.capabilities("axb").contains(Capabilities::READ)); // via a*
}

#[test]
fn policy_names() {
    assert_eq!(
        normalize_policy_name("  App-Read "),
        Ok("app-read".to_string())
    );
    assert_eq!(normalize_policy_name("   "), Err(PolicyError::EmptyName));
    assert_eq!(
        PolicyError::EmptyName.to_string(),
        "policy name must be provided in the URL"
    );
    assert_eq!(
        check_policy_writable("root").unwrap_err().to_string(),
        "cannot update \"root\" policy"
    );
    assert!(check_policy_writable("response-wrapping").is_err());
    assert!(check_policy_writable("default").is_ok());
    assert_eq!(
        check_policy_deletable("root").unwrap_err().to_string(),
        "cannot delete \"root\" policy"
    );
    assert_eq!(
        check_policy_deletable("default").unwrap_err().to_string(),
        "cannot delete default policy"
    );
    assert!(check_policy_deletable("app").is_ok());
}

#[test]
fn policy_parse_never_panics() {
    let mut state: u64 = 0xDEAD_BEEF_1234_5678;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        PRIO_A,
        APP_READ,
        DEFAULT_POLICY,
        r#"{"path":{"a/*":{"capabilities":["read"],"allowed_parameters":{"x":[1]}}}}"#,
    ];
    for seed in seeds {
        let bytes = seed.as_bytes();
        for cut in 0..=bytes.len() {
            if let Ok(s) = std::str::from_utf8(&bytes[..cut]) {
                if let Ok(p) = Policy::parse("f", s) {
                    let acl = Acl::new(&[p]);
                    let _ = acl.evaluate("secret/data/team/x");
                }
            }
        }
        for _ in 0..2_000 {
            let mut b = bytes.to_vec();
            for _ in 0..(rnd() % 4 + 1) {
                let i = (rnd() as usize) % b.len();
                b[i] = b"{}[]=,\"*+/ab#\n"[(rnd() as usize) % 14];
            }
            if let Ok(s) = std::str::from_utf8(&b) {
                if let Ok(p) = Policy::parse("f", s) {
                    let acl = Acl::new(&[p]);
                    for path in ["", "/", "secret/data/a/b/deep", "a//b", "+", "*"] {
                        let _ = acl.evaluate(path);
                        let _ = acl.allowed(path, Operation::List, None);
                    }
                }
            }
        }
    }
}

#[test]
fn may_reach_prefix_finds_rules_below_a_mount() {
    let p = Policy::parse(
        "t",
        r#"path "secret/data/app/*" { capabilities = ["read"] }
path "kv/+/x" { capabilities = ["read"] }
path "other/data/x" { capabilities = ["deny"] }"#,
    )
    .unwrap();
    let acl = Acl::new(&[p]);
    assert!(acl.may_reach_prefix("secret/"));
    assert!(acl.may_reach_prefix("kv/"));
    assert!(!acl.may_reach_prefix("other/"));
    assert!(!acl.may_reach_prefix("sys2/"));
    assert!(Acl::root().may_reach_prefix("anything/"));
}
