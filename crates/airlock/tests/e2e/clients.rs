//! Real Vault clients against Airlock: hvac, the `bao` CLI, and the differential
//! compatibility suite replayed against a real OpenBao and Airlock side by side.

use std::process::Command;

use crate::util::*;

#[test]
fn hvac_flow() {
    if !require("python3 with hvac (pip install hvac)", python_has("hvac")) {
        return;
    }
    let p = start_dev();
    let out = Command::new("python3")
        .arg(repo_root().join("tests/clients/hvac_flow.py"))
        .env("VAULT_ADDR", &p.addr)
        .env("VAULT_TOKEN", "root")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "hvac flow failed:\n{text}");
}

#[test]
fn bao_cli_flow() {
    let bao = openbao();
    if !require("the OpenBao CLI (../shared/tools/openbao)", bao.is_some()) {
        return;
    }
    let p = start_dev();
    let out = Command::new("bash")
        .arg(repo_root().join("tests/clients/bao_cli_flow.sh"))
        .env("BAO", bao.unwrap())
        .env("VAULT_ADDR", &p.addr)
        .env("VAULT_TOKEN", "root")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bao CLI flow failed:\n{text}");
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
    let out = Command::new("python3")
        .arg(repo_root().join("tests/compat/run.py"))
        .args([
            "--a",
            &reference.addr,
            "--a-token",
            "root",
            "--b",
            &p.addr,
            "--b-token",
            "root",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "compatibility differences against OpenBao:\n{text}"
    );
}
