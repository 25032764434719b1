use super::*;

/// A test-only RSA key (generated for these tests; it protects nothing).
const PKCS1: &str = include_str!("test-key-pkcs1.pem");
const PKCS8: &str = include_str!("test-key-pkcs8.pem");

fn verify_jwt(jwt: &str, pem: &str) -> Value {
    use tokio_rustls::rustls::pki_types::{pem::PemObject, PrivateKeyDer};
    let key = match PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap() {
        PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        _ => panic!("not RSA"),
    }
    .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let sig = b64.decode(parts[2]).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        key.public().as_ref(),
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
    .expect("the JWT signature verifies");
    serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap()
}

fn vals(
    pairs: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<Zeroizing<String>> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| Zeroizing::new(v.to_string()))
    }
}

#[test]
fn oauth2_requests_and_answers() {
    let m = parse(&json!({"kind": "oauth2_client_credentials", "token_url": "https://auth.test/token", "scope": "read write"})).unwrap();
    let r = request(
        &m,
        vals(&[("client_id", "app"), ("client_secret", "s&cret")]),
        100,
    )
    .unwrap();
    assert_eq!(r.url, "https://auth.test/token");
    assert_eq!(
        r.form.unwrap().as_str(),
        "grant_type=client_credentials&client_id=app&client_secret=s%26cret&scope=read%20write"
    );
    let a = answer(
        &m,
        br#"{"access_token":"at1","expires_in":60,"token_type":"Bearer"}"#,
        100,
    )
    .unwrap();
    assert_eq!((a.token.as_str(), a.expires), ("at1", 160));
    assert!(answer(&m, br#"{"error":"invalid_client"}"#, 0)
        .err()
        .unwrap()
        .contains("invalid_client"));
    let m = parse(&json!({"kind": "oauth2_refresh_token", "token_url": "https://auth.test/token"}))
        .unwrap();
    assert_eq!(m.keys(), ["refresh_token", "client_id", "?client_secret"]);
    let r = request(
        &m,
        vals(&[("refresh_token", "rt1"), ("client_id", "cli")]),
        0,
    )
    .unwrap();
    assert_eq!(
        r.form.unwrap().as_str(),
        "grant_type=refresh_token&refresh_token=rt1&client_id=cli"
    );
    let a = answer(&m, br#"{"access_token":"at2","refresh_token":"rt2"}"#, 0).unwrap();
    assert_eq!(a.refresh_token.unwrap().as_str(), "rt2");
    assert_eq!(a.expires, 3600);
    for bad in [
        json!({"kind": "oauth2_client_credentials"}),
        json!({"kind": "nope", "token_url": "https://x"}),
        json!({"kind": "oauth2_refresh_token", "token_url": "http://plain"}),
        json!({"kind": "google_service_account"}),
        json!({"kind": "github_app", "x": 1}),
    ] {
        assert!(parse(&bad).is_err(), "{bad}");
    }
    // Stale in the last tenth of life or the last 30 s.
    assert!(!stale(0, 3600, 3000) && stale(0, 3600, 3300) && stale(0, 3600, 3600));
    assert!(!stale(0, 20, 5) && stale(0, 20, 11));
}

#[test]
fn github_app_and_google_jwts_verify() {
    let m = parse(&json!({"kind": "github_app"})).unwrap();
    let pem: &'static str = PKCS1;
    let key: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
        ("app_id", "12345"),
        ("installation_id", "42"),
        ("private_key", pem),
    ]));
    let r = request(&m, vals(key), 1_000_000).unwrap();
    assert_eq!(
        r.url,
        "https://api.github.com/app/installations/42/access_tokens"
    );
    let claims = verify_jwt(&r.bearer.unwrap(), PKCS1);
    assert_eq!(claims["iss"], "12345");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    let a = answer(
        &m,
        br#"{"token":"ghs_x","expires_at":"2030-01-01T00:00:00Z"}"#,
        0,
    )
    .unwrap();
    assert_eq!((a.token.as_str(), a.expires), ("ghs_x", 1_893_456_000));

    let sa = json!({"type": "service_account", "client_email": "bot@p.iam.gserviceaccount.com",
                    "private_key": PKCS8, "token_uri": "https://oauth2.test/token"})
    .to_string();
    let sa: &'static str = Box::leak(sa.into_boxed_str());
    let key: &'static [(&'static str, &'static str)] =
        Box::leak(Box::new([("service_account", sa)]));
    let m = parse(&json!({"kind": "google_service_account", "scope": "https://www.googleapis.com/auth/cloud-platform"})).unwrap();
    let r = request(&m, vals(key), 1_000_000).unwrap();
    assert_eq!(r.url, "https://oauth2.test/token");
    let form = r.form.unwrap();
    let assertion = form.split("assertion=").nth(1).unwrap();
    let claims = verify_jwt(assertion, PKCS8);
    assert_eq!(claims["iss"], "bot@p.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], "https://oauth2.test/token");
    assert!(sign_rs256(&json!({}), "not pem").is_err());
}
