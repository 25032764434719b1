//! `airlock-bench pki`: certificate issuing against OpenBao's. Both servers get a `pki/`
//! mount with an EC P-256 root and a role `web` issuing EC P-256 certificates for
//! `*.example.com`, and a token whose policy allows only `pki/issue/web`; then
//! `pki/issue/web` runs at each connection count on each server in turn (a fresh key pair
//! and a stored certificate per request). A sample certificate is checked to be a PEM chain.
//!
//! Usage: `airlock-bench pki [--seconds 10] [--conns 1,8] [--airlock PATH] [--bao PATH]`

use std::sync::Arc;

use anyhow::{bail, Result};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;

use crate::{
    common_args, drive, print_header, print_row, request, rss_kib, start_airlock, start_openbao,
    token_with_policy, Common, TapMkdir,
};

async fn prepare(addr: &str, root: &str) -> Result<String> {
    let r = Some(root);
    let steps = [
        (
            "POST",
            "/v1/sys/mounts/pki",
            json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
        ),
        (
            "POST",
            "/v1/pki/root/generate/internal",
            json!({"common_name": "Bench Root", "key_type": "ec", "key_bits": 256, "ttl": "8760h"}),
        ),
        (
            "POST",
            "/v1/pki/roles/web",
            json!({"allowed_domains": "example.com", "allow_subdomains": true,
                   "key_type": "ec", "key_bits": 256, "max_ttl": "72h"}),
        ),
    ];
    for (m, p, b) in steps {
        let (s, v) = request(addr, m, p, r, Some(b)).await?;
        if s >= 300 {
            bail!("{m} {p} at {addr}: {s} {v}");
        }
    }
    let policy = "path \"pki/issue/web\" { capabilities = [\"create\", \"update\"] }\n";
    let token = token_with_policy(addr, root, "pki-bench", policy).await?;
    let (s, v) = request(
        addr,
        "POST",
        "/v1/pki/issue/web",
        Some(&token),
        Some(json!({"common_name": "sample.example.com", "ttl": "1h"})),
    )
    .await?;
    let cert = v["data"]["certificate"].as_str().unwrap_or("");
    if s != 200 || !cert.starts_with("-----BEGIN CERTIFICATE-----") {
        bail!("a sample issue at {addr} failed: {s} {v}");
    }
    Ok(token)
}

pub async fn run(args: &[String]) -> Result<()> {
    let Common {
        secs,
        conns,
        airlock,
        bao,
    } = common_args(args, 10, "1,8")?;
    let dir = std::env::temp_dir().join(format!("airlock-bench-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = start_airlock(&airlock, &dir.join("a").tap_mkdir()?).await?;
    let b = start_openbao(&bao, &dir.join("b").tap_mkdir()?).await?;
    let ta = prepare(&a.addr, &a.root).await?;
    let tb = prepare(&b.addr, &b.root).await?;
    print_header(12);
    for &c in &conns {
        let mut stats = Vec::new();
        for (addr, token) in [(&a.addr, &ta), (&b.addr, &tb)] {
            let token = token.clone();
            let make =
                move |host: &str, conn: usize, i: u64| -> Result<hyper::Request<Full<Bytes>>> {
                    let body =
                        json!({"common_name": format!("h{conn}-{i}.example.com"), "ttl": "1h"});
                    Ok(hyper::Request::builder()
                        .method("POST")
                        .uri("/v1/pki/issue/web")
                        .header("host", host)
                        .header("x-vault-token", &token)
                        .body(Full::new(Bytes::from(body.to_string())))?)
                };
            stats.push(drive(addr, c, secs, Arc::new(make)).await?);
        }
        print_row(12, "issue-p256", c, &stats[0], &stats[1]);
    }
    println!(
        "RSS after the runs: airlock {:.1} MiB, openbao {:.1} MiB",
        rss_kib(a.child.id()) as f64 / 1024.0,
        rss_kib(b.child.id()) as f64 / 1024.0
    );
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
