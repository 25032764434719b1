//! `airlock-bench ui`: the web UI's cold-cache load, Airlock's against OpenBao's (its UI
//! enabled), measured in headless Chromium by `crates/airlock/tests/ui/bench.mjs` (needs
//! Node, `/usr/bin/chromium` and `npm ci` in that folder). Also prints the size of the
//! files Airlock ships, raw and gzip-compressed.
//!
//! Usage: `airlock-bench ui [--runs 10] [--airlock PATH] [--bao PATH]`

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::{arg, bao_path, start_airlock, start_openbao_with, TapMkdir};

pub async fn run(args: &[String]) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let runs = arg(args, "--runs").unwrap_or_else(|| "10".into());
    let airlock = arg(args, "--airlock")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/airlock"));
    let bao = bao_path(args, &root)?;
    let ui = root.join("crates/airlock/tests/ui");
    if !ui.join("node_modules/playwright-core").exists() {
        bail!("run `npm ci --prefix crates/airlock/tests/ui` first");
    }
    let assets = root.join("crates/airlock-ui/assets");
    let files = [
        "index.html",
        "app.css",
        "favicon.svg",
        "app.js",
        "api.js",
        "dom.js",
    ];
    let mut raw = 0usize;
    let mut all = Vec::new();
    for f in files {
        let b = std::fs::read(assets.join(f))?;
        raw += b.len();
        all.extend(b);
    }
    for e in std::fs::read_dir(assets.join("pages"))? {
        let b = std::fs::read(e?.path())?;
        raw += b.len();
        all.extend(b);
    }
    let gz = Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut i) = c.stdin.take() {
                i.write_all(&all)?;
            }
            c.wait_with_output()
        })
        .map(|o| o.stdout.len())
        .unwrap_or(0);
    println!(
        "Airlock's UI files: {:.1} KiB raw, {:.1} KiB gzip -9 (budget 500 KiB compressed)",
        raw as f64 / 1024.0,
        gz as f64 / 1024.0
    );
    let dir = std::env::temp_dir().join(format!("airlock-bench-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let a = start_airlock(&airlock, &dir.join("a").tap_mkdir()?).await?;
    let b = start_openbao_with(&bao, &dir.join("b").tap_mkdir()?, true).await?;
    let out = Command::new("node")
        .arg("bench.mjs")
        .current_dir(&ui)
        .env("A_URL", &a.addr)
        .env("A_TOKEN", &a.root)
        .env("B_URL", &b.addr)
        .env("RUNS", runs)
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!("the browser benchmark failed");
    }
    Ok(())
}
