//! The Kubernetes deployment (`deploy/`): the Helm chart rendered by Helm's engine and
//! validated (Kubernetes schemas, checkov, security properties, the ESO examples against
//! ESO's schemas, `examples/kubernetes/setup.sh` against this binary), and the pod's view
//! of the rendered chart run with this binary, its environment and volumes resolved as the
//! kubelet resolves them: probes, key-file init, auto-unseal on restart, and two HA pods on
//! PostgreSQL (127.0.0.1:5432; required in CI, skipped elsewhere with a message) started
//! before init, the second unsealing on its own, each reporting its own address, both
//! alive but unready while the database is cut off. Both are Python scripts in
//! `deploy/test/`.

use std::process::Command;

use crate::util::*;

/// Python modules the scripts import (PyPI: helm-python-sdk, kubernetes-validate,
/// jsonschema, checkov; PyYAML comes with them).
fn python_deps(modules: &[&str]) -> bool {
    let missing: Vec<&str> = modules.iter().copied().filter(|m| !python_has(m)).collect();
    require(
        &format!(
            "python3 modules {missing:?} (python3 -m pip install helm-python-sdk kubernetes-validate checkov jsonschema)"
        ),
        missing.is_empty(),
    )
}

/// Runs a script and fails the test with its whole output if it fails.
fn run_script(what: &str, mut cmd: Command) {
    let out = cmd.current_dir(repo_root()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{what} failed:\n{text}");
}

#[test]
fn kube_chart_renders_validates_and_passes_checkov() {
    if !python_deps(&[
        "helm_python",
        "kubernetes_validate",
        "jsonschema",
        "checkov",
        "yaml",
    ]) {
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("deploy/test/check_chart.py"))
        .args(["--airlock", bin()]);
    run_script("deploy/test/check_chart.py", cmd);
}

#[test]
fn kube_pod_view_runs_the_rendered_server() {
    if !python_deps(&["helm_python", "yaml"]) {
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("deploy/test/pod_view.py"))
        .arg(bin());
    run_script("deploy/test/pod_view.py", cmd);
}
