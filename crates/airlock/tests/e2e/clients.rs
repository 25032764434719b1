//! Real Vault clients against Airlock: hvac, the `bao` CLI, and the differential
//! compatibility suite replayed against a real OpenBao and Airlock side by side.

use std::process::Command;

use crate::util::*;

/// Runs a client script and fails the test with its whole output if it fails.
fn run_flow(what: &str, mut cmd: Command) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{what} failed:\n{text}");
}

#[test]
fn hvac_flow() {
    if !require("python3 with hvac (pip install hvac)", python_has("hvac")) {
        return;
    }
    let p = start_dev();
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/clients/hvac_flow.py"))
        .env("VAULT_ADDR", &p.addr)
        .env("VAULT_TOKEN", "root");
    run_flow("hvac flow", cmd);
}

#[test]
fn bao_cli_flow() {
    let bao = openbao();
    if !require("the OpenBao CLI (../shared/tools/openbao)", bao.is_some()) {
        return;
    }
    let p = start_dev();
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("tests/clients/bao_cli_flow.sh"))
        .env("BAO", bao.unwrap_or_default())
        .env("VAULT_ADDR", &p.addr)
        .env("VAULT_TOKEN", "root");
    run_flow("bao CLI flow", cmd);
}

#[test]
fn differential_compat_against_openbao() {
    let bao = openbao();
    if !require(
        "the OpenBao server (../shared/tools/openbao)",
        bao.is_some(),
    ) {
        return;
    }
    let reference = start_openbao(&bao.unwrap());
    let p = start_dev();
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/compat/run.py")).args([
        "--a",
        &reference.addr,
        "--a-token",
        "root",
        "--b",
        &p.addr,
        "--b-token",
        "root",
    ]);
    run_flow("differential compatibility against OpenBao", cmd);
}
