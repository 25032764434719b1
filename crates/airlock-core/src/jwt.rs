//! JSON Web Tokens as the JWT/OIDC and Kubernetes auth methods see them: splitting a compact
//! JWS, and every claim check that does not involve a key — times with leeways, issuer,
//! audience, subject, bound claims (exact or glob, nested through JSON pointers), claim
//! mappings into token metadata. Signature verification lives with the keys, in the server.
//! Time is a parameter; error texts follow Vault's.

use base64::Engine;
use serde_json::{Map, Value};

/// Longest token accepted (real ones are a few KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// A compact JWS split into its parts. Nothing in it is trusted until the signature over
/// `signing_input` has been verified.
pub struct Jws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for Jws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("alg", &self.alg())
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// Decodes unpadded (or padded) base64url.
pub fn b64url(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(i, _) => {
                format!("illegal base64 data at input byte {i}")
            }
            other => format!("illegal base64 data: {other}"),
        })
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("malformed token: {what} is not a JSON object")),
    }
}

impl Jws {
    /// Splits `header.claims.signature`.
    pub fn parse(token: &str) -> Result<Jws, String> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN {
            return Err("malformed token: larger than 64 KiB".into());
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            // Vault reports the base64 error of the first segment for most garbage.
            b64url(token.split('.').next().unwrap_or(""))?;
            return Err("malformed token: a JWT has three dot-separated parts".into());
        };
        let header = json_object(&b64url(h)?, "header")?;
        let claims = json_object(&b64url(c)?, "claims")?;
        let signature = b64url(s)?;
        Ok(Jws {
            header,
            claims,
            signing_input: token.as_bytes()[..h.len() + 1 + c.len()].to_vec(),
            signature,
        })
    }

    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or("")
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }
}

/// Signature algorithms Airlock verifies. `none` and the HMAC family are never accepted:
/// a shared-secret JWT would let anyone holding the verification key mint logins.
pub const SUPPORTED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Checks the header's `alg` against the allowed list (empty = every supported one).
pub fn check_alg(alg: &str, allowed: &[String]) -> Result<(), String> {
    if !SUPPORTED_ALGS.contains(&alg) {
        return Err(format!("unsupported signing algorithm \"{alg}\""));
    }
    if !allowed.is_empty() && !allowed.iter().any(|a| a == alg) {
        return Err(format!(
            "signing algorithm \"{alg}\" is not in jwt_supported_algs"
        ));
    }
    Ok(())
}

/// What the standard claims must satisfy.
#[derive(Default, Debug, Clone)]
pub struct Expected<'a> {
    pub now: i64,
    pub issuer: Option<&'a str>,
    pub audiences: &'a [String],
    pub subject: Option<&'a str>,
    /// Seconds; Vault's defaults are 60 (skew) and 150 (expiration and not-before).
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    /// When false, a token without `exp` is accepted (Kubernetes legacy secret tokens).
    pub require_exp: bool,
}

fn num(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

/// `exp`, `nbf`, `iat`, `iss`, `aud`, `sub`. The error is the text after "error validating
/// token: ".
pub fn validate_standard(claims: &Map<String, Value>, e: &Expected<'_>) -> Result<(), String> {
    let skew = e.clock_skew_leeway.max(0);
    match num(claims.get("exp")) {
        Some(exp)
            if e.now
                > exp
                    .saturating_add(skew)
                    .saturating_add(e.expiration_leeway.max(0)) =>
        {
            return Err("invalid expiration time (exp) claim: token is expired".into());
        }
        Some(_) => {}
        None if claims.contains_key("exp") => {
            return Err("invalid expiration time (exp) claim: not a number".into())
        }
        // Vault's text for a missing `exp` (the zero time has passed).
        None if e.require_exp => {
            return Err("invalid expiration time (exp) claim: token is expired".into())
        }
        None => {}
    }
    if let Some(nbf) = num(claims.get("nbf")) {
        if e.now
            .saturating_add(skew)
            .saturating_add(e.not_before_leeway.max(0))
            < nbf
        {
            return Err("invalid not before (nbf) claim: token not yet valid".into());
        }
    }
    if let Some(iat) = num(claims.get("iat")) {
        if e.now
            .saturating_add(skew)
            .saturating_add(e.not_before_leeway.max(0))
            < iat
        {
            return Err("invalid issued at (iat) claim: token issued in the future".into());
        }
    }
    if let Some(iss) = e.issuer.filter(|i| !i.is_empty()) {
        if claims.get("iss").and_then(Value::as_str) != Some(iss) {
            return Err("invalid issuer (iss) claim".into());
        }
    }
    let token_aud: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !e.audiences.is_empty() && !token_aud.iter().any(|a| e.audiences.iter().any(|b| b == a)) {
        return Err(
            "invalid audience (aud) claim: audience claim does not match any expected audience"
                .into(),
        );
    }
    if let Some(sub) = e.subject.filter(|s| !s.is_empty()) {
        if claims.get("sub").and_then(Value::as_str) != Some(sub) {
            return Err("invalid subject (sub) claim".into());
        }
    }
    Ok(())
}

/// A claim by name or, when it starts with `/`, by JSON pointer (`/kubernetes.io/namespace`).
pub fn get_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(pointer) = name.strip_prefix('/') {
        let mut cur: Option<&Value> = None;
        for (i, raw) in pointer.split('/').enumerate() {
            let seg = raw.replace("~1", "/").replace("~0", "~");
            cur = if i == 0 {
                claims.get(&seg)
            } else {
                match cur? {
                    Value::Object(m) => m.get(&seg),
                    Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                }
            };
        }
        cur
    } else {
        claims.get(name)
    }
}

/// A scalar claim as text (strings, numbers, booleans).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `*` matches any run of characters (including none); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// `bound_claims`: every listed claim must be present and match one of its values (string
/// equality, or glob when `glob`). A list-valued claim matches when any element does. The
/// error is the text after "error validating claims: ".
pub fn validate_bound_claims(
    claims: &Map<String, Value>,
    bound: &Map<String, Value>,
    glob: bool,
) -> Result<(), String> {
    for (name, expected) in bound {
        let want: Vec<String> = match expected {
            Value::Array(a) => a.iter().filter_map(scalar_text).collect(),
            v => scalar_text(v).into_iter().collect(),
        };
        let Some(actual) = get_claim(claims, name) else {
            return Err(format!("claim \"{name}\" is missing"));
        };
        let have: Vec<String> = match actual {
            Value::Array(a) => a.iter().filter_map(scalar_text).collect(),
            v => scalar_text(v).into_iter().collect(),
        };
        let hit = have.iter().any(|h| {
            want.iter()
                .any(|w| if glob { glob_match(w, h) } else { w == h })
        });
        if !hit {
            return Err(format!(
                "claim \"{name}\" does not match any associated bound claim values"
            ));
        }
    }
    Ok(())
}

/// `claim_mappings`: claim → metadata key. Missing claims are skipped; a claim that is not a
/// scalar is an error.
pub fn map_claims(
    claims: &Map<String, Value>,
    mappings: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (claim, key) in mappings {
        if let Some(v) = get_claim(claims, claim) {
            let s = scalar_text(v)
                .ok_or_else(|| format!("error converting claim '{claim}' to string"))?;
            out.insert(key.clone(), s);
        }
    }
    Ok(out)
}

/// The alias name from `user_claim`.
pub fn user_claim(claims: &Map<String, Value>, name: &str) -> Result<String, String> {
    get_claim(claims, name)
        .and_then(scalar_text)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("claim \"{name}\" not found in token"))
}

/// Group names from `groups_claim` (a list of strings, or one string).
pub fn groups(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, String> {
    match get_claim(claims, name) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.iter().filter_map(scalar_text).collect()),
        Some(v) => scalar_text(v)
            .map(|s| vec![s])
            .ok_or_else(|| format!("claim \"{name}\" could not be converted to string array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parse_splits_and_rejects_garbage() {
        let t = format!(
            "{}.{}.c2ln",
            enc(&json!({"alg":"RS256","kid":"k1"})),
            enc(&json!({"sub":"x"}))
        );
        let j = Jws::parse(&t).unwrap();
        assert_eq!((j.alg(), j.kid()), ("RS256", Some("k1")));
        assert_eq!(j.signature, b"sig");
        assert_eq!(j.signing_input, t.rsplit_once('.').unwrap().0.as_bytes());
        assert!(format!("{j:?}").contains("RS256"));
        assert!(Jws::parse("not.a.jwt").is_err());
        assert!(Jws::parse("!!.e30.e30")
            .unwrap_err()
            .contains("illegal base64 data at input byte 0"));
        assert!(Jws::parse("a.b").is_err());
        assert!(Jws::parse(&"a".repeat(MAX_TOKEN_LEN + 1))
            .unwrap_err()
            .contains("64 KiB"));
        assert!(Jws::parse("").is_err());
        let not_obj = format!("{}.{}.", enc(&json!([1])), enc(&json!({})));
        assert!(Jws::parse(&not_obj).is_err());
    }

    #[test]
    fn algorithms() {
        assert!(check_alg("RS256", &[]).is_ok());
        assert!(check_alg("EdDSA", &[]).is_ok());
        for bad in ["none", "HS256", "HS512", "", "rs256"] {
            assert!(check_alg(bad, &[]).is_err(), "{bad}");
        }
        assert!(check_alg("ES256", &["RS256".into()]).is_err());
    }

    #[test]
    fn times_with_leeways() {
        let c = claims(json!({"exp": 1000, "nbf": 900, "iat": 900}));
        let mut e = Expected {
            now: 950,
            require_exp: true,
            ..Default::default()
        };
        assert!(validate_standard(&c, &e).is_ok());
        e.now = 1001;
        assert!(validate_standard(&c, &e)
            .unwrap_err()
            .contains("token is expired"));
        e.expiration_leeway = 5;
        assert!(validate_standard(&c, &e).is_ok());
        e.now = 850;
        assert!(validate_standard(&c, &e)
            .unwrap_err()
            .contains("not yet valid"));
        e.clock_skew_leeway = 60;
        assert!(validate_standard(&c, &e).is_ok());
        let no_exp = claims(json!({}));
        assert!(validate_standard(
            &no_exp,
            &Expected {
                require_exp: true,
                ..Default::default()
            }
        )
        .is_err());
        assert!(validate_standard(&no_exp, &Expected::default()).is_ok());
        assert!(validate_standard(&claims(json!({"exp": "soon"})), &Expected::default()).is_err());
    }

    #[test]
    fn issuer_audience_subject() {
        let c = claims(json!({"exp": 10, "iss": "https://i", "aud": ["a", "b"], "sub": "s"}));
        let auds = vec!["b".to_string()];
        let e = Expected {
            now: 5,
            issuer: Some("https://i"),
            audiences: &auds,
            subject: Some("s"),
            ..Default::default()
        };
        assert!(validate_standard(&c, &e).is_ok());
        let other = vec!["z".to_string()];
        let e2 = Expected {
            audiences: &other,
            ..e.clone()
        };
        assert!(validate_standard(&c, &e2)
            .unwrap_err()
            .starts_with("invalid audience"));
        let e3 = Expected {
            issuer: Some("https://j"),
            ..e.clone()
        };
        assert_eq!(
            validate_standard(&c, &e3).unwrap_err(),
            "invalid issuer (iss) claim"
        );
        let e4 = Expected {
            subject: Some("t"),
            ..e
        };
        assert!(validate_standard(&c, &e4).is_err());
        let single = claims(json!({"aud": "b"}));
        assert!(validate_standard(
            &single,
            &Expected {
                audiences: &auds,
                ..Default::default()
            }
        )
        .is_ok());
    }

    #[test]
    fn bound_claims_exact_glob_lists_and_pointers() {
        let c = claims(json!({
            "repository": "my-org/my-repo",
            "ref": "refs/heads/main",
            "groups": ["dev", "ops"],
            "kubernetes.io": {"namespace": "prod"},
            "run": 42
        }));
        let b = claims(
            json!({"repository": "my-org/my-repo", "ref": ["refs/heads/main", "refs/tags/v1"]}),
        );
        assert!(validate_bound_claims(&c, &b, false).is_ok());
        let b = claims(json!({"ref": ["refs/tags/v1"]}));
        assert_eq!(
            validate_bound_claims(&c, &b, false).unwrap_err(),
            "claim \"ref\" does not match any associated bound claim values"
        );
        let b = claims(json!({"repository": "my-org/*"}));
        assert!(validate_bound_claims(&c, &b, false).is_err());
        assert!(validate_bound_claims(&c, &b, true).is_ok());
        let b = claims(json!({"groups": "ops", "/kubernetes.io/namespace": "prod", "run": "42"}));
        assert!(validate_bound_claims(&c, &b, false).is_ok());
        let b = claims(json!({"environment": "production"}));
        assert_eq!(
            validate_bound_claims(&c, &b, false).unwrap_err(),
            "claim \"environment\" is missing"
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "repo:my-org/*:ref:refs/heads/main",
            "repo:my-org/a/b:ref:refs/heads/main"
        ));
        assert!(!glob_match(
            "repo:my-org/*:ref:refs/heads/main",
            "repo:other/a:ref:refs/heads/main"
        ));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b", "a"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exact2"));
    }

    #[test]
    fn mappings_user_and_groups() {
        let c = claims(
            json!({"ref": "main", "n": 3, "obj": {}, "sub": "repo:x", "groups": ["a"], "g1": "solo"}),
        );
        let m: std::collections::BTreeMap<String, String> = [
            ("ref".to_string(), "git_ref".to_string()),
            ("n".into(), "num".into()),
            ("missing".into(), "m".into()),
        ]
        .into();
        let out = map_claims(&c, &m).unwrap();
        assert_eq!(out.get("git_ref").map(String::as_str), Some("main"));
        assert_eq!(out.get("num").map(String::as_str), Some("3"));
        assert!(!out.contains_key("m"));
        let bad: std::collections::BTreeMap<String, String> =
            [("obj".to_string(), "o".to_string())].into();
        assert!(map_claims(&c, &bad).is_err());
        assert_eq!(user_claim(&c, "sub").unwrap(), "repo:x");
        assert!(user_claim(&c, "email").is_err());
        assert_eq!(groups(&c, "groups").unwrap(), vec!["a"]);
        assert_eq!(groups(&c, "g1").unwrap(), vec!["solo"]);
        assert!(groups(&c, "none").unwrap().is_empty());
    }
}
