//! Error messages and the rest of the policy checks.

use super::*;

#[test]
fn error_messages_match_openbao() {
    // sys/025 (OpenBao also quotes the capability; a field value is never echoed here).
    let err =
        Policy::parse("broken", r#"path "secret/*" { capabilities = ["reed"] }"#).unwrap_err();
    assert_eq!(
        format!("failed to parse policy: {err}"),
        "failed to parse policy: path \"secret/*\": path \"secret/*\": invalid capability"
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
            "invalid key on line 1",
        ),
        (
            "path \"x\" {\n  capabilities = [\"read\"]\n  capability = []\n}",
            "path \"x\": invalid key on line 3",
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
            "path \"x\": path \"x\": invalid capability",
        ),
        (
            "path \"x\" { policy = \"admin\" }",
            "path \"x\": invalid policy",
        ),
        (
            "path \"x\" { capabilities = [\"read\"] min_wrapping_ttl = \"1y\" }",
            "error parsing min_wrapping_ttl: time: unknown unit in duration",
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
        r#"path "x" { capabilities = ["update", "scan", "sudo", "read", "list", "delete", "create", "patch", "subscribe"] }"#,
    );
    assert_eq!(
        p.rules[0].capabilities.names(),
        vec![
            "create",
            "delete",
            "list",
            "patch",
            "read",
            "scan",
            "subscribe",
            "sudo",
            "update"
        ]
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
