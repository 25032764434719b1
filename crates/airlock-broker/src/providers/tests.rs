//! The catalog's invariants and spot checks.
use super::*;

/// A DNS label as the broker accepts it: 1-63 of `[a-z0-9-]`, no leading/trailing `-`.
fn valid_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// Exact host (≥2 labels) or `*.` followed by a suffix of ≥2 labels.
fn valid_host(h: &str) -> bool {
    let rest = h.strip_prefix("*.").unwrap_or(h);
    let labels: Vec<&str> = rest.split('.').collect();
    labels.len() >= 2 && labels.iter().all(|l| valid_label(l))
}

fn valid_env(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn valid_header(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[test]
fn names_are_unique_sorted_and_lower_case() {
    let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "catalog must stay sorted by name");
    sorted.dedup();
    assert_eq!(sorted.len(), PROVIDERS.len(), "duplicate provider name");
    for p in PROVIDERS {
        assert!(!p.name.is_empty());
        assert!(
            p.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}",
            p.name
        );
        assert!(!p.title.is_empty(), "{}", p.name);
    }
}

#[test]
fn hosts_are_valid() {
    for p in PROVIDERS {
        assert!(!p.hosts.is_empty(), "{}", p.name);
        for h in p.hosts {
            assert!(valid_host(h), "{}: host {h}", p.name);
            assert_eq!(
                p.hosts.iter().filter(|x| *x == h).count(),
                1,
                "{}: duplicate host {h}",
                p.name
            );
        }
    }
    // The checker itself.
    for bad in [
        "",
        "com",
        "*.com",
        "a.*.com",
        "**.a.com",
        "API.x.com",
        "a_b.com",
        "a..com",
        "-a.com",
        "*",
    ] {
        assert!(!valid_host(bad), "{bad}");
    }
    for good in ["api.x.ai", "*.supabase.co", "api-inference.huggingface.co"] {
        assert!(valid_host(good), "{good}");
    }
}

#[test]
fn injection_is_well_formed() {
    for p in PROVIDERS {
        assert_eq!(p.format.matches("{}").count(), 1, "{}", p.name);
        assert!(
            !p.format.bytes().any(|b| b < 0x20 || b == 0x7f),
            "{}",
            p.name
        );
        // Every preset injects somewhere, or signs (and then injects nowhere).
        assert!(
            !p.header.is_empty() || !p.query.is_empty() || p.signing == "aws_sigv4" || p.url_path,
            "{}",
            p.name
        );
        if !p.signing.is_empty() {
            assert!(p.header.is_empty() && p.query.is_empty(), "{}", p.name);
        }
        if !p.header.is_empty() {
            assert!(valid_header(p.header), "{}: header {}", p.name, p.header);
        }
        if !p.query.is_empty() {
            assert!(
                p.query
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{}",
                p.name
            );
        }
        assert!(
            !matches!(
                p.header,
                "host" | "connection" | "content-length" | "transfer-encoding"
            ),
            "{}",
            p.name
        );
        for (k, v) in p.extra_headers {
            assert!(valid_header(k), "{}: extra header {k}", p.name);
            assert_ne!(*k, p.header, "{}", p.name);
            assert!(!v.is_empty() && !v.contains("{}"), "{}", p.name);
        }
        for path in p.paths {
            assert!(path.starts_with('/') && !path.contains(".."), "{}", p.name);
        }
        assert!(valid_env(p.env), "{}: env {}", p.name, p.env);
        assert_eq!(p.env, p.env.to_ascii_uppercase(), "{}", p.name);
        assert!(!p.note.contains('\n'), "{}", p.name);
    }
}

#[test]
fn the_listed_providers_exist() {
    for n in [
        "openai",
        "anthropic",
        "gemini",
        "mistral",
        "groq",
        "together",
        "fireworks",
        "openrouter",
        "deepseek",
        "xai",
        "cohere",
        "perplexity",
        "huggingface",
        "github",
        "gitlab",
        "stripe",
        "slack",
        "linear",
        "notion",
        "sentry",
        "cloudflare",
        "twilio",
        "sendgrid",
        "resend",
        "postmark",
        "datadog",
        "vercel",
        "supabase",
        "airtable",
        "asana",
        "assemblyai",
        "digitalocean",
        "figma",
        "firecrawl",
        "heroku",
        "hubspot",
        "intercom",
        "jina",
        "netlify",
        "nvidia",
        "pagerduty",
        "serper",
        "stability",
    ] {
        assert!(find(n).is_some(), "{n}");
    }
    assert!(PROVIDERS.len() >= 50);
}

#[test]
fn find_is_case_insensitive() {
    let p = find("OpenAI").unwrap();
    assert_eq!(p.name, "openai");
    assert_eq!(p.env, "OPENAI_API_KEY");
    assert_eq!(find("ANTHROPIC").map(|p| p.header), Some("x-api-key"));
    assert!(find("nope").is_none());
    assert!(find("").is_none());
    assert!(find(" openai").is_none());
}

#[test]
fn spot_checks() {
    let a = find("anthropic").unwrap();
    assert_eq!(a.extra_headers, &[("anthropic-version", "2023-06-01")]);
    let g = find("gemini").unwrap();
    assert_eq!(
        (g.header, g.format, g.query),
        ("x-goog-api-key", "{}", "key")
    );
    let gh = find("github").unwrap();
    assert_eq!(gh.env, "GITHUB_TOKEN");
    assert!(gh.hosts.contains(&"uploads.github.com"));
    assert_eq!(find("gitlab").unwrap().header, "private-token");
    assert_eq!(find("linear").unwrap().format, "{}");
    assert_eq!(
        find("notion").unwrap().extra_headers,
        &[("notion-version", "2022-06-28")]
    );
    assert_eq!(find("twilio").unwrap().format, "Basic {}");
    assert_eq!(find("huggingface").unwrap().env, "HF_TOKEN");
    assert_eq!(find("supabase").unwrap().hosts, &["*.supabase.co"]);
    assert_eq!(find("datadog").unwrap().header, "dd-api-key");
    assert_eq!(find("pagerduty").unwrap().format, "Token token={}");
    assert_eq!(find("figma").unwrap().header, "x-figma-token");
    assert_eq!(find("assemblyai").unwrap().format, "{}");
    assert_eq!(find("serper").unwrap().hosts, &["google.serper.dev"]);
    assert_eq!(
        find("cohere").unwrap().hosts,
        &["api.cohere.com", "api.cohere.ai"]
    );
}

#[test]
fn the_aws_preset_makes_a_signing_binding() {
    let b = crate::config::parse_binding(&serde_json::json!({
        "name": "aws", "provider": "aws", "secret": "secret/aws/prod",
        "services": ["s3"], "regions": "us-east-1,eu-west-1"
    }))
    .unwrap();
    let aws = b.aws.as_ref().unwrap();
    assert_eq!(aws.services, ["s3"]);
    assert_eq!(aws.regions, ["us-east-1", "eu-west-1"]);
    assert_eq!(b.env, "AWS_ACCESS_KEY_ID");
    assert!(b.header.is_none() && b.query.is_none() && !b.body);
    assert_eq!(b.wanted().len(), 4);
    for (bad, why) in [
        (
            serde_json::json!({"name": "a", "provider": "aws", "secret": "secret/aws#k"}),
            "without `#key`",
        ),
        (
            serde_json::json!({"name": "a", "provider": "aws", "secret": "s/a", "header": "x-k"}),
            "do not apply",
        ),
        (
            serde_json::json!({"name": "a", "signing": "gcp", "secret": "s/a", "hosts": ["x.com"]}),
            "not one of",
        ),
        (
            serde_json::json!({"name": "a", "secret": "s/a#k", "hosts": ["x.com"], "header": "x", "services": ["s3"]}),
            "need `signing",
        ),
    ] {
        let e = crate::config::parse_binding(&bad).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn minting_presets_make_minting_bindings() {
    let gh = crate::config::parse_binding(&serde_json::json!({
        "name": "gh", "provider": "github-app", "secret": "secret/agents/gh"
    }))
    .unwrap();
    assert_eq!(gh.mint.as_ref().unwrap().kind, "github_app");
    assert_eq!(gh.header.as_deref(), Some("authorization"));
    assert_eq!(gh.format, "Bearer {}");
    assert_eq!(gh.wanted().len(), 3);
    let gc = crate::config::parse_binding(&serde_json::json!({
        "name": "gc", "provider": "google-cloud", "secret": "secret/agents/gcp"
    }))
    .unwrap();
    let m = gc.mint.unwrap();
    assert_eq!(m.kind, "google_service_account");
    assert_eq!(
        m.scope.as_deref(),
        Some("https://www.googleapis.com/auth/cloud-platform")
    );
    // Signing and minting kinds are all known ones.
    for p in PROVIDERS {
        assert!(["", "aws_sigv4"].contains(&p.signing), "{}", p.name);
        assert!(
            ["", "github_app", "google_service_account"].contains(&p.mint),
            "{}",
            p.name
        );
    }
    assert!(PROVIDERS.len() >= 45, "{}", PROVIDERS.len());
}
