//! The files `k8s bootstrap --apply` leaves behind: written only when their bytes or mode
//! change (so a second run touches nothing), mode 0600, never through a symlink; and the
//! `.gitignore` line that keeps the env file out of git.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::output::write_private;

/// Writes `bytes` to `path` with mode 0600 unless it is already a regular file holding
/// exactly `bytes` with that mode. Returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let same = meta.file_type().is_file()
            && meta.permissions().mode() & 0o777 == 0o600
            && std::fs::read(path).is_ok_and(|old| old == bytes);
        if same {
            return Ok(false);
        }
    }
    write_private(path, bytes, 0o600)?;
    Ok(true)
}

/// Creates `dir` (and its parents) when it is missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// What git says of a path: `None` when git is not installed or the path is outside a work
/// tree.
fn git_ignores(dir: &Path, name: &str) -> Option<bool> {
    let inside = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--is-inside-work-tree"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !inside.status.success() || String::from_utf8_lossy(&inside.stdout).trim() != "true" {
        return None;
    }
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", "--", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    match st.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

/// A file name as a `.gitignore` pattern matching only itself.
fn gitignore_pattern(name: &str) -> String {
    let mut p = String::new();
    for (i, c) in name.chars().enumerate() {
        if "*?[]\\".contains(c) || (i == 0 && (c == '#' || c == '!')) {
            p.push('\\');
        }
        p.push(c);
    }
    if p.ends_with(' ') {
        p.pop();
        p.push_str("\\ ");
    }
    p
}

/// Makes sure git ignores `path` (whose directory exists): when `git check-ignore` says it
/// does not, appends its file name to the `.gitignore` of its directory. Returns what to tell
/// the user.
pub fn ensure_git_ignored(path: &Path) -> Result<Vec<String>> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(vec![]);
    };
    if git_ignores(dir, name) != Some(false) {
        return Ok(vec![]);
    }
    let gi = dir.join(".gitignore");
    let old = match std::fs::read(&gi) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", gi.display())),
    };
    let mut line = String::new();
    if !old.is_empty() && !old.ends_with(b"\n") {
        line.push('\n');
    }
    line.push_str(&gitignore_pattern(name));
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&gi)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .with_context(|| format!("appending to {}", gi.display()))?;
    let mut said = vec![format!(
        "Added {name} to {} (the env file holds secrets)",
        gi.display()
    )];
    if git_ignores(dir, name) == Some(false) {
        said.push(format!(
            "warning: git still does not ignore {}: is it tracked? (`git rm --cached {}`)",
            path.display(),
            path.display()
        ));
    }
    Ok(said)
}

/// A warning when git would not ignore `path` (a manifest written with --out); changes
/// nothing.
pub fn warn_if_not_ignored(path: &Path) -> Option<String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let name = path.file_name()?.to_str()?;
    (git_ignores(dir, name) == Some(false)).then(|| {
        format!(
            "warning: {} holds secret values and git does not ignore it",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_only_the_name() {
        assert_eq!(gitignore_pattern(".k8s-tokens"), ".k8s-tokens");
        assert_eq!(gitignore_pattern("#x*"), "\\#x\\*");
        assert_eq!(gitignore_pattern("!a[1]"), "\\!a\\[1\\]");
        assert_eq!(gitignore_pattern("a "), "a\\ ");
    }

    #[test]
    fn unchanged_files_are_not_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("airlock-k8s-files-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("x.env");
        assert!(write_if_changed(&f, b"A=1\n").unwrap());
        assert!(!write_if_changed(&f, b"A=1\n").unwrap());
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(write_if_changed(&f, b"A=1\n").unwrap());
        assert!(write_if_changed(&f, b"A=2\n").unwrap());
        assert_eq!(std::fs::read(&f).unwrap(), b"A=2\n");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
