//! Stand-ins for identity providers, served over HTTPS by the test (certificate from a test
//! CA, name `localhost`):
//! - an OIDC issuer: `/.well-known/openid-configuration` and `/jwks` (keys can be rotated),
//!   and for the browser flow `/authorize` (signs the user in at once) and `/token`;
//! - a Kubernetes API server's TokenReview endpoint (`authentication.k8s.io/v1`), answering
//!   as the API server documents it, for the tokens the test registers.
//!
//! Tokens are signed here: RS256 with the committed test-only RSA keys, ES256 and EdDSA with
//! keys generated per run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn pem_der(path: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(crate::util::repo_root().join(path)).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A signing key with its JWK.
pub enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct Key {
    pub kid: String,
    pub signer: Signer,
}

impl Key {
    pub fn rsa(kid: &str, path: &str) -> Key {
        Key {
            kid: kid.into(),
            signer: Signer::Rsa(RsaKeyPair::from_pkcs8(&pem_der(path)).unwrap()),
        }
    }
    pub fn ec(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let p8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Ec(EcdsaKeyPair::from_pkcs8(alg, p8.as_ref(), &rng).unwrap()),
        }
    }
    pub fn ed(kid: &str) -> Key {
        let p8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Ed(Ed25519KeyPair::from_pkcs8(p8.as_ref()).unwrap()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(k) => {
                let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "x": b64(&p[1..33]), "y": b64(&p[33..])})
            }
            Signer::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": b64(k.public_key().as_ref())})
            }
        }
    }

    /// A compact JWS over `claims` with this key (header `alg` overridable for attacks).
    pub fn sign_with_alg(&self, alg: &str, claims: &Value) -> String {
        let header = json!({"alg": alg, "kid": self.kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Rsa(k) => {
                let mut s = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut s)
                    .unwrap();
                s
            }
            Signer::Ec(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_alg(self.alg(), claims)
    }
}

/// A service account the fake API server knows: token → identity.
#[derive(Clone)]
pub struct Account {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Default)]
pub struct State {
    pub jwks: Vec<Value>,
    pub accounts: HashMap<String, Account>,
    /// The bearer the TokenReview endpoint accepts (None: any bearer equal to the token).
    pub reviewer: Option<String>,
    pub reviews: Vec<Value>,
    pub jwks_fetches: usize,
    /// The browser flow: the registered client (id, secret), the key ID tokens are signed
    /// with, the claims they carry (besides iss/aud/nonce/times), issued codes, and a switch
    /// to send a wrong nonce.
    pub client: Option<(String, String)>,
    pub id_key: Option<Arc<Key>>,
    pub id_claims: Value,
    pub codes: HashMap<String, (String, String)>,
    pub wrong_nonce: bool,
    pub token_requests: usize,
    /// TCP connections accepted (connection reuse shows here).
    pub connections: usize,
}

pub struct Idp {
    pub url: String,
    pub ca_pem: String,
    pub state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn start() -> Idp {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ca = airlock_broker::ca::Ca::generate_named(None, "airlock-test-idp CA").unwrap();
    let cfg = ca
        .leaf_config(&["localhost".to_string(), "idp.test".to_string()])
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("https://localhost:{port}");
    let state = Arc::new(Mutex::new(State::default()));
    let st = Arc::clone(&state);
    let issuer = url.clone();
    rt.spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            if let Ok(mut s) = st.lock() {
                s.connections += 1;
            }
            let acceptor = acceptor.clone();
            let st = Arc::clone(&st);
            let issuer = issuer.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let st = Arc::clone(&st);
                    let issuer = issuer.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(st, &issuer, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Idp {
        url,
        ca_pem: ca.cert_pem().to_string(),
        state,
        _rt: rt,
    }
}

fn reply(status: u16, v: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

async fn handle(
    st: Arc<Mutex<State>>,
    issuer: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.starts_with("Basic "))
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match path.as_str() {
        "/.well-known/openid-configuration" => reply(
            200,
            json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
                   "authorization_endpoint": format!("{issuer}/authorize"),
                   "token_endpoint": format!("{issuer}/token"),
                   "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"]}),
        ),
        "/authorize" => {
            // The user signs in at once: redirect back with a code (the location is also in
            // the body, for clients that do not expose headers).
            let q = form(&query);
            let mut s = st.lock().unwrap();
            let ok = s.client.as_ref().map(|c| c.0.as_str())
                == q.get("client_id").map(String::as_str)
                && q.get("response_type").map(String::as_str) == Some("code")
                && q.get("scope")
                    .is_some_and(|sc| sc.split(' ').any(|x| x == "openid"));
            if !ok {
                return reply(400, json!({"error": "invalid_request"}));
            }
            let code = format!("code-{}-{}", now(), s.codes.len());
            let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
            s.codes.insert(
                code.clone(),
                (
                    q.get("nonce").cloned().unwrap_or_default(),
                    redirect.clone(),
                ),
            );
            let location = format!(
                "{redirect}?code={code}&state={}",
                q.get("state").cloned().unwrap_or_default()
            );
            Response::builder()
                .status(302)
                .header("location", &location)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    json!({"location": location}).to_string(),
                )))
                .unwrap()
        }
        "/token" => {
            let f = form(&String::from_utf8_lossy(&body));
            let mut s = st.lock().unwrap();
            s.token_requests += 1;
            let Some((id, secret)) = s.client.clone() else {
                return reply(400, json!({"error": "invalid_client"}));
            };
            // client_secret_basic: base64 of the form-encoded id and secret (RFC 6749 §2.3.1).
            let presented = basic
                .as_deref()
                .and_then(|b| b.strip_prefix("Basic "))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .and_then(|s| {
                    let (u, p) = s.split_once(':')?;
                    let f = form(&format!("u={u}&p={p}"));
                    Some((f.get("u")?.clone(), f.get("p")?.clone()))
                });
            if presented != Some((id.clone(), secret.clone())) {
                return reply(401, json!({"error": "invalid_client"}));
            }

            let Some((nonce, redirect)) = f.get("code").and_then(|c| s.codes.remove(c)) else {
                return reply(400, json!({"error": "invalid_grant"}));
            };
            if f.get("grant_type").map(String::as_str) != Some("authorization_code")
                || f.get("redirect_uri") != Some(&redirect)
            {
                return reply(400, json!({"error": "invalid_grant"}));
            }
            let mut claims = s.id_claims.clone();
            claims["iss"] = json!(issuer);
            claims["aud"] = json!(id);
            claims["nonce"] = json!(if s.wrong_nonce {
                "not-the-nonce".to_string()
            } else {
                nonce
            });
            claims["iat"] = json!(now());
            claims["exp"] = json!(now() + 300);
            let id_token = s.id_key.as_ref().unwrap().sign(&claims);
            reply(
                200,
                json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}),
            )
        }
        "/jwks" => {
            let mut s = st.lock().unwrap();
            s.jwks_fetches += 1;
            reply(200, json!({ "keys": s.jwks }))
        }
        "/apis/authentication.k8s.io/v1/tokenreviews" => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut s = st.lock().unwrap();
            s.reviews.push(json!({"bearer": bearer, "body": v}));
            let token = v
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or("");
            let allowed = match (&s.reviewer, &bearer) {
                (Some(r), Some(b)) => r == b,
                (None, Some(b)) => b == token,
                _ => false,
            };
            if !allowed
                || v["kind"] != "TokenReview"
                || v["apiVersion"] != "authentication.k8s.io/v1"
            {
                return reply(
                    401,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                         "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
                );
            }
            let auds = v.pointer("/spec/audiences").cloned().unwrap_or(json!([]));
            let status = match s.accounts.get(token) {
                Some(a) => json!({
                    "authenticated": true,
                    "user": {
                        "username": format!("system:serviceaccount:{}:{}", a.namespace, a.name),
                        "uid": a.uid,
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", a.namespace), "system:authenticated"],
                    },
                    "audiences": auds,
                }),
                None => json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"}),
            };
            reply(
                201,
                json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                       "metadata": {"creationTimestamp": null}, "spec": v["spec"], "status": status}),
            )
        }
        _ => reply(404, json!({"error": "not found"})),
    }
}

/// A query string or form body, decoded.
pub fn form(s: &str) -> HashMap<String, String> {
    let dec = |x: &str| crate::upstream::percent_decode(&x.replace('+', " "));
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// Claims shaped like a GitHub Actions OIDC token.
pub fn github_claims(issuer: &str, repo: &str, git_ref: &str, env: &str, exp: i64) -> Value {
    let owner = repo.split('/').next().unwrap_or("");
    json!({
        "iss": issuer,
        "aud": format!("https://github.com/{owner}"),
        "sub": format!("repo:{repo}:environment:{env}"),
        "repository": repo,
        "repository_owner": owner,
        "repository_id": "74",
        "ref": git_ref,
        "ref_type": "branch",
        "sha": "d6f4c2b9a1e0f00dbe1f0e3c7a5b9d8e7f6a5b4c",
        "workflow": "deploy",
        "job_workflow_ref": format!("{repo}/.github/workflows/deploy.yml@{git_ref}"),
        "environment": env,
        "actor": "octocat",
        "event_name": "push",
        "run_id": "1234567890",
        "jti": format!("jti-{}", now()),
        "iat": now() - 5,
        "nbf": now() - 10,
        "exp": exp,
    })
}

/// A projected service-account token's claims.
pub fn k8s_claims(a: &Account, aud: &str, issuer: &str) -> Value {
    json!({
        "aud": [aud],
        "iss": issuer,
        "sub": format!("system:serviceaccount:{}:{}", a.namespace, a.name),
        "iat": now(),
        "nbf": now(),
        "exp": now() + 600,
        "kubernetes.io": {"namespace": a.namespace, "serviceaccount": {"name": a.name, "uid": a.uid}},
    })
}
