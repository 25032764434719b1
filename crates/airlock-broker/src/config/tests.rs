//! Tests of profile, binding and agent validation.

use super::*;

const GOOD: &str = r#"
[broker]
egress = "inspect"
allow_private = ["10.0.0.0/8"]

[[binding]]
name = "openai"
provider = "openai"
secret = "secret/agents/voice#OPENAI_API_KEY"
paths = ["/v1/"]

[[binding]]
name = "internal"
secret = "secret/agents/voice#INTERNAL"
hosts = ["*.internal.example.com"]
port = 8443
header = "X-Token"
methods = ["get", "POST"]
extra_headers = { "x-client" = "airlock" }

[agents.voice]
bindings = ["openai"]
egress = "allowlist"
allow_hosts = ["pypi.org"]
"#;

#[test]
fn parses_a_full_profile() {
    let p = parse_profile(GOOD, "airlock.toml").unwrap();
    assert_eq!(p.egress, Some(Egress::Inspect));
    assert_eq!(p.bindings.len(), 2);
    let o = &p.bindings[0];
    assert_eq!(o.env, "OPENAI_API_KEY");
    assert_eq!(o.header.as_deref(), Some("authorization"));
    assert_eq!(o.format, "Bearer {}");
    assert_eq!(o.dest.path_prefixes, vec!["/v1/".to_string()]);
    let i = &p.bindings[1];
    assert_eq!(i.env, "INTERNAL");
    assert_eq!(i.header.as_deref(), Some("x-token"));
    assert_eq!(i.dest.port, 8443);
    assert_eq!(i.dest.methods, vec!["GET", "POST"]);
    assert_eq!(i.extra_headers, vec![("x-client".into(), "airlock".into())]);
    assert_eq!(p.agents[0].egress, Egress::Allowlist);
    assert_eq!(select(&p, Some("voice")).unwrap().len(), 1);
    assert!(select(&p, Some("nobody")).is_err());
}

#[test]
fn errors_name_the_line_and_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "[[binding]]\nname = \"a\"\nsecret = \"secret/x#K\"\nhosts = [\"a/b\"]\nheader = \"x\"\n",
                            "airlock.toml:4: binding \"a\": host \"a/b\" is not a valid DNS name",
        ),
        (
            "\n\n[[binding]]\nname = \"a\"\nsecret = \"secret/x#K\"\nhosts = [\"a.com\"]\nheader = \"x\"\n\n[[binding]]\nname = \"b\"\nsecret = \"nohash\"\n",
                            "airlock.toml:11: binding \"b\": secret \"nohash\" must be",
        ),
        (
            "[[binding]]\nname = \"a\"\nsecret = \"secret/x#K\"\nhosts = [\"a.com\"]\nheader = \"x\"\nport = 70000\n",
                            "airlock.toml:6: binding \"a\": port 70000 is not in 1-65535",
        ),
        (
            "[[binding]]\nname = \"a\"\nsecret = \"secret/x#K\"\nhosts = [\"a.com\"]\n",
            "nowhere to inject",
        ),
        (
            "[[binding]]\nname = \"a\"\nsecret = \"secret/x#K\"\nhost = \"a.com\"\nheader = \"x\"\nhdr = 1\n",
                            "airlock.toml:6: unknown field `hdr`",
        ),
        (
            "[[binding]]\nname = \"a\"\nprovider = \"nope\"\nsecret = \"secret/x#K\"\n",
                            "airlock.toml:3: binding \"a\": unknown provider \"nope\"",
        ),
        (
            "[[binding]]\nname = \"a\"\nsecret = \"secret/x#K\"\nhost = \"a.com\"\nheader = \"x\"\npaths = [\"/v1/../x\"]\n",
            "path prefix",
        ),
        (
            "[[binding]]\nname = \"a\"\nsecret = \"secret/x#K\"\nhost = \"a.com\"\nformat = \"Bearer\"\nheader = \"x\"\n",
            "exactly once",
        ),
        ("x = = 1\n", "airlock.toml:1:"),
        (
            "[agents.v]\nbindings = [\"missing\"]\n",
            "names binding \"missing\", which is not defined",
        ),
        ("[broker]\negress = \"open\"\n", "not one of tunnel"),
    ];
    for (text, want) in cases {
        let e = parse_profile(text, "airlock.toml").unwrap_err();
        assert!(e.contains(want), "{text:?}\n→ {e}\nwant {want}");
    }
}

#[test]
fn provider_fields_can_be_overridden() {
    let b = parse_binding(&serde_json::json!({
        "name": "anth", "provider": "anthropic", "secret": "secret/a#K",
        "extra_headers": {"anthropic-version": "2024-01-01"}, "env": "MY_KEY"
    }))
    .unwrap();
    assert_eq!(b.env, "MY_KEY");
    assert_eq!(b.header.as_deref(), Some("x-api-key"));
    assert_eq!(
        b.extra_headers,
        vec![("anthropic-version".into(), "2024-01-01".into())]
    );
}
