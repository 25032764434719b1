//! `airlock broker login`: the authorization-code flow with PKCE (the test plays the browser
//! with curl) and the device-code flow, against a stand-in OAuth server over TLS that checks
//! the PKCE verifier (S256), the redirect URI and the client; the tokens land in Airlock's KV,
//! never on the terminal.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sha2::Digest;

use crate::broker::setup;
use crate::idp::form;
use crate::util::*;

#[derive(Default)]
struct State {
    /// code → (challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    device_polls: u32,
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
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let q = form(req.uri().query().unwrap_or(""));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let f = form(&String::from_utf8_lossy(&body));
    let mut s = st.lock().unwrap();
    match path.as_str() {
        "/authorize" => {
            let ok = q.get("client_id").map(String::as_str) == Some("airlock-cli")
                && q.get("response_type").map(String::as_str) == Some("code")
                && q.get("code_challenge_method").map(String::as_str) == Some("S256");
            if !ok {
                return reply(400, json!({"error": "invalid_request"}));
            }
            let code = format!("code-{}", s.codes.len());
            let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
            s.codes.insert(
                code.clone(),
                (
                    q.get("code_challenge").cloned().unwrap_or_default(),
                    redirect.clone(),
                ),
            );
            let location = format!(
                "{redirect}?code={code}&state={}",
                q.get("state").cloned().unwrap_or_default()
            );
            Response::builder()
                .status(302)
                .header("location", location)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        "/device/code" => reply(
            200,
            json!({"device_code": "dc-1", "user_code": "WDJB-MJHT",
            "verification_uri": "https://localhost/device", "interval": 1, "expires_in": 60}),
        ),
        "/token" => match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let Some((challenge, redirect)) = f.get("code").and_then(|c| s.codes.remove(c))
                else {
                    return reply(400, json!({"error": "invalid_grant"}));
                };
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(verifier.as_bytes()));
                if computed != challenge || f.get("redirect_uri") != Some(&redirect) {
                    return reply(
                        400,
                        json!({"error": "invalid_grant", "error_description": "PKCE or redirect mismatch"}),
                    );
                }
                reply(
                    200,
                    json!({"access_token": "at-browser", "refresh_token": "rt-from-browser", "expires_in": 3600}),
                )
            }
            Some("urn:ietf:params:oauth:grant-type:device_code")
                if f.get("device_code").map(String::as_str) == Some("dc-1") =>
            {
                s.device_polls += 1;
                if s.device_polls < 3 {
                    return reply(400, json!({"error": "authorization_pending"}));
                }
                reply(
                    200,
                    json!({"access_token": "at-device", "refresh_token": "rt-from-device", "expires_in": 3600}),
                )
            }
            _ => reply(400, json!({"error": "unsupported_grant_type"})),
        },
        _ => reply(404, json!({"error": "not found"})),
    }
}

/// The stand-in on https://localhost:PORT; (port, CA PEM, runtime).
fn start() -> (u16, String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ca = airlock_broker::ca::Ca::generate_named(None, "airlock-test-oauth CA").unwrap();
    let cfg = ca.leaf_config(&["localhost".to_string()]).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let st = Arc::new(Mutex::new(State::default()));
    rt.spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, st) = (acceptor.clone(), st.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |r| {
                    let st = st.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(st, r).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, ca.cert_pem().to_string(), rt)
}

#[test]
fn broker_login_stores_tokens_from_pkce_and_device_flows() {
    if !require(
        "curl",
        Command::new("curl").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let s = setup("broker-login");
    let (port, ca_pem, _rt) = start();
    let ca = s.dir.join("oauth-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let base = format!("https://localhost:{port}");
    let login = |extra: &[&str], store: &str| {
        let mut c = Command::new(bin());
        c.args([
            "broker",
            "login",
            "linear",
            "--client-id",
            "airlock-cli",
            "--no-browser",
            "--store",
            store,
        ])
        .args([
            "--auth-url",
            &format!("{base}/authorize"),
            "--token-url",
            &format!("{base}/token"),
        ])
        .args(["--device-url", &format!("{base}/device/code"), "--ca-cert"])
        .arg(&ca)
        .args(extra)
        .env("AIRLOCK_ADDR", &s.server.addr)
        .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    // Browser flow: read the URL the CLI prints, follow it as a browser would.
    let mut child = login(&[], "secret/agents/linear");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim()
                .starts_with("https://")
                .then(|| l.trim().to_string())
        })
        .expect("the authorization URL");
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("state="),
        "{url}"
    );
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}",
            "--cacert",
        ])
        .arg(&ca)
        .arg(&url)
        .output()
        .unwrap();
    let redirect = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    let page = Command::new("curl")
        .args(["-sS", &redirect])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("Signed in"));
    let out = child.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("kind = \"oauth2_refresh_token\"") && !printed.contains("rt-from-browser"),
        "{printed}"
    );
    let kv = req(&s.server, "GET", "/v1/secret/data/agents/linear", None);
    assert_eq!(kv.body["data"]["data"]["refresh_token"], "rt-from-browser");
    assert_eq!(kv.body["data"]["data"]["client_id"], "airlock-cli");

    // Device flow: two polls pending, then tokens.
    let out = login(&["--device"], "secret/agents/linear-ci")
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WDJB-MJHT") && !err.contains("rt-from-device"),
        "{err}"
    );
    let kv = req(&s.server, "GET", "/v1/secret/data/agents/linear-ci", None);
    assert_eq!(kv.body["data"]["data"]["refresh_token"], "rt-from-device");
    // A provider without the endpoints asked for is a clear error.
    let out = Command::new(bin())
        .args(["broker", "login", "nowhere", "--client-id", "x", "--device"])
        .env("AIRLOCK_ADDR", &s.server.addr)
        .env("AIRLOCK_TOKEN", s.server.token.as_deref().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token endpoint"));
}
