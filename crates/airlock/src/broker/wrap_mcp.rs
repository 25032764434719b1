//! `airlock broker wrap-mcp`: the I/O around `airlock_broker::mcp` (read the file, store
//! the moved secrets, write the profile, the backup and the rewritten file).

use super::*;

pub(super) async fn wrap_mcp(a: WrapArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", a.file.display()))?;
    // MCP hosts start servers from their own working directory and often with a short PATH:
    // the profile and this binary are named by absolute paths.
    let profile = a
        .profile
        .as_deref()
        .map(|p| std::path::absolute(p).with_context(|| format!("profile path {p}")))
        .transpose()?;
    let airlock_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "airlock".into());
    let opts = airlock_broker::mcp::WrapOptions {
        airlock_bin,
        profile: profile.as_ref().map(|p| p.display().to_string()),
        kv_mount: a.mount.clone(),
        kv_prefix: a.prefix.clone(),
    };
    // `${env:NAME}` values are what the host would take from its environment: this shell's.
    let env_of = |n: &str| std::env::var(n).ok();
    let out = airlock_broker::mcp::wrap_with_env(&doc, &opts, &env_of)
        .map_err(|e| anyhow!("{}: {e}", a.file.display()))?;
    for (s, why) in &out.skipped {
        println!("skipped {s}: {why}");
    }
    if out.wrapped.is_empty() {
        println!("{}: nothing to change", a.file.display());
        return Ok(ExitCode::SUCCESS);
    }
    for e in &out.extracted {
        println!("{}: {} → {}#{}", e.server, e.var, e.path, e.key);
    }
    for (server, var, reference) in &out.unresolved {
        println!(
            "{server}: {var} = {reference} is not set in this environment: left as it is (the host passes the real value). Set it and run again to move it into Airlock."
        );
    }
    if a.dry_run {
        println!("dry run: {} server(s) would be wrapped", out.wrapped.len());
        return Ok(ExitCode::SUCCESS);
    }
    if !out.extracted.is_empty() {
        let cl = Client::from_env()?;
        cl.require_token()?;
        // Group by path; `patch` keeps keys already stored there.
        let mut by_path: HashMap<&str, serde_json::Map<String, Value>> = HashMap::new();
        for e in &out.extracted {
            by_path
                .entry(e.path.as_str())
                .or_default()
                .insert(e.key.clone(), Value::String(e.value.clone()));
        }
        for (path, data) in by_path {
            crate::kv::merge_write(&cl, path, data)
                .await
                .with_context(|| format!("storing the secrets of {path} in Airlock"))?;
        }
    }
    // The profile first: if it cannot be written, the mcp.json is left as it was.
    let existing_text = match (&profile, a.write_profile) {
        (Some(p), true) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(String::new()),
            Err(e) => return Err(anyhow!("reading profile {}: {e}", p.display())),
        },
        _ => None,
    };
    let existing = match &existing_text {
        Some(t) if !t.trim().is_empty() => {
            let p = config::parse_profile(t, "the profile").map_err(|e| anyhow!(e))?;
            airlock_broker::mcp::Existing {
                agents: p.agents.iter().map(|a| a.name.clone()).collect(),
                bindings: p.bindings.iter().map(|b| b.name.clone()).collect(),
            }
        }
        _ => airlock_broker::mcp::Existing::default(),
    };
    let snippet = airlock_broker::mcp::profile_snippet(&out.extracted, &out.wrapped, &existing);
    if let (Some(p), Some(old)) = (&profile, &existing_text) {
        let mut new_profile = old.clone();
        if !new_profile.is_empty() && !new_profile.ends_with('\n') {
            new_profile.push('\n');
        }
        new_profile.push_str(&snippet);
        config::parse_profile(&new_profile, &p.display().to_string())
            .map_err(|e| anyhow!("the profile would not parse after the addition: {e}"))?;
        crate::output::write_private(p, new_profile.as_bytes(), 0o600)?;
        println!(
            "profile {} now defines the wrapped servers' agents",
            p.display()
        );
    }
    // The backup still holds the original secrets: readable by the owner only.
    let backup = PathBuf::from(format!("{}.bak", a.file.display()));
    crate::output::write_private(&backup, text.as_bytes(), 0o600)?;
    let new_text = serde_json::to_string_pretty(&out.doc)? + "\n";
    let tmp = PathBuf::from(format!("{}.tmp", a.file.display()));
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&a.file)?.permissions().mode() & 0o777
    };
    crate::output::write_private(&tmp, new_text.as_bytes(), mode)?;
    std::fs::rename(&tmp, &a.file)?;
    println!(
        "wrapped {} server(s); backup at {} (it still holds the secrets: delete it once the servers work)",
        out.wrapped.len(),
        backup.display()
    );
    if !a.write_profile && !snippet.trim().is_empty() {
        let target = profile
            .as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default();
        println!(
            "\nEach wrapped server runs as an agent of the same name. Add to your profile{target}:\n\n{}",
            snippet.trim_end()
        );
    }
    Ok(ExitCode::SUCCESS)
}
